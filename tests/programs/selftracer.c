/*
 * `selftracer MS MARKER`: a minimal debugger. It forks a child that asks to be traced by it
 * (PTRACE_TRACEME) and execs `sleeper MS MARKER` (found in PATH); the parent resumes every
 * stop of the child, passing signals through, until the child exits, and exits with the
 * child's exit code. The child is thus traced by its parent, as under strace or gdb.
 * Built with `cc -static -O2`.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: selftracer MS MARKER\n");
        return 2;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) {
            perror("PTRACE_TRACEME");
            _exit(126);
        }
        char *args[] = {"sleeper", argv[1], argv[2], NULL};
        execvp("sleeper", args);
        _exit(127);
    }
    for (;;) {
        int status;
        if (waitpid(child, &status, 0) < 0) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status)) {
            return WEXITSTATUS(status);
        }
        if (WIFSIGNALED(status)) {
            return 128 + WTERMSIG(status);
        }
        int sig = WSTOPSIG(status);
        /* The exec SIGTRAP of a PTRACE_TRACEME child is not passed on. */
        ptrace(PTRACE_CONT, child, NULL, (void *)(long)(sig == SIGTRAP ? 0 : sig));
    }
}
