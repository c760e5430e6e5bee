/*
 * The emulated task's PID 1, playing the part of Fargate's pause process: it does nothing but
 * reap the orphans that the kernel reparents to it, and exit on SIGTERM or SIGINT (as the ECS
 * pause container does). When the init of a PID namespace exits, the kernel kills every other
 * process of the namespace: that is how the harness ends a task. Built with `cc -static -O2`
 * by the test harness.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
    (void)signo;
    _exit(0);
}

static void reap(int signo) {
    (void)signo;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = reap;
    action.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &action, NULL);
    action.sa_handler = stop;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    for (;;) {
        pause();
    }
}
