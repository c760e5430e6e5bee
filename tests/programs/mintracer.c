/*
 * `mintracer [--exit] PID`: the least a ptrace tracer can do, for measuring the floor of the
 * tracer's overhead (bench/live/tracer.rs runs it side by side with tasksentry). It seizes
 * PID with the options tasksentry uses (TRACEFORK | TRACEVFORK | TRACECLONE | TRACEEXEC, plus
 * TRACEEXIT with --exit), then blocks in waitpid(-1, __WALL) and resumes every stop at once,
 * reading nothing: signal-delivery stops get their signal back, group-stops PTRACE_LISTEN.
 * Exits when it has no tracee left. On exit it prints the stops it handled, by kind, to stderr.
 * Built with `cc -static -O2`.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

int main(int argc, char **argv) {
    int with_exit = argc == 3 && strcmp(argv[1], "--exit") == 0;
    if (argc != 2 && !with_exit) {
        fprintf(stderr, "usage: mintracer [--exit] PID\n");
        return 2;
    }
    pid_t pid = (pid_t)strtol(argv[argc - 1], NULL, 10);
    long options = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                   PTRACE_O_TRACEEXEC | (with_exit ? PTRACE_O_TRACEEXIT : 0);
    if (ptrace(PTRACE_SEIZE, pid, 0, (void *)options) != 0) {
        perror("PTRACE_SEIZE");
        return 1;
    }
    /* Counts by kind: 0 signal, 1 fork/vfork/clone, 2 exec, 3 exit event, 4 event-stop,
     * 5 group-stop, 6 exits (not stops). */
    long counts[7] = {0};
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, __WALL);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (!WIFSTOPPED(status)) {
            counts[6]++;
            continue;
        }
        int sig = WSTOPSIG(status);
        int event = (status >> 16) & 0xff;
        int resume = 0;
        switch (event) {
        case 0:
            counts[0]++;
            resume = sig;
            break;
        case PTRACE_EVENT_FORK:
        case PTRACE_EVENT_VFORK:
        case PTRACE_EVENT_CLONE:
            counts[1]++;
            break;
        case PTRACE_EVENT_EXEC:
            counts[2]++;
            break;
        case PTRACE_EVENT_EXIT:
            counts[3]++;
            break;
        case PTRACE_EVENT_STOP:
            if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
                counts[5]++;
                ptrace(PTRACE_LISTEN, p, 0, 0);
                continue;
            }
            counts[4]++;
            break;
        }
        ptrace(PTRACE_CONT, p, 0, (void *)(long)resume);
    }
    fprintf(stderr,
            "mintracer: signal %ld, fork %ld, exec %ld, exit-event %ld, event-stop %ld, "
            "group-stop %ld, exits %ld\n",
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]);
    return 0;
}
