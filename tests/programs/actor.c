/*
 * `actor MODE ...`: the workload side of the benchmark report (bench/live/report.rs).
 *
 *   actor exec COUNT GAP_MS MARKER   COUNT times: print "<realtime ns> MARKER-<i>", then fork
 *                                    and exec `/bin/sh -c ": MARKER-<i>; sleep 0.2"` (a shell
 *                                    spawned by a non-shell parent, which a default rule
 *                                    reports, living long enough for a poll to see it), wait
 *                                    for it, pause GAP_MS.
 *   actor file COUNT GAP_MS MARKER   COUNT times: print "<realtime ns> MARKER-<i>", then create
 *                                    /etc/MARKER-<i> (a write below /etc), pause GAP_MS.
 *   actor rate RATE SECONDS MARKER   for SECONDS, RATE times a second: fork and exec
 *                                    `sleeper 1 MARKER-<i>` without waiting (children are
 *                                    reaped as they exit); prints the number spawned at the end.
 *
 * exec and file start after a 500 ms pause, so that a tracer seizing the actor when it appears
 * holds it before the first sample. The timestamp is taken right before the action, on the same clock the benchmark uses when a
 * line of the monitor's output arrives, so the difference is the action-to-alert latency.
 * Built with `cc -static -O2`.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0) {
    }
}

static long long now_ns(int clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void reap(void) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: actor exec|file|rate N GAP_MS|SECONDS MARKER\n");
        return 2;
    }
    const char *mode = argv[1];
    long count = strtol(argv[2], NULL, 10);
    long third = strtol(argv[3], NULL, 10);
    const char *marker = argv[4];
    char name[256];
    if (strcmp(mode, "exec") == 0 || strcmp(mode, "file") == 0) {
        sleep_ms(500);
        for (long i = 0; i < count; i++) {
            snprintf(name, sizeof name, "%s-%ld", marker, i);
            printf("%lld %s\n", now_ns(CLOCK_REALTIME), name);
            fflush(stdout);
            if (mode[0] == 'e') {
                char script[300];
                /* The trailing `:` keeps the shell itself alive for the 200 ms: a shell
                   runs its last command by exec'ing it in place. */
                snprintf(script, sizeof script, ": %s; sleep 0.2; :", name);
                pid_t child = fork();
                if (child < 0) {
                    perror("fork");
                    return 1;
                }
                if (child == 0) {
                    char *args[] = {"sh", "-c", script, NULL};
                    execv("/bin/sh", args);
                    _exit(127);
                }
                while (waitpid(child, NULL, 0) < 0) {
                }
            } else {
                char path[300];
                snprintf(path, sizeof path, "/etc/%s", name);
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd >= 0) {
                    if (write(fd, "x\n", 2) < 0) {
                        perror("write");
                    }
                    close(fd);
                }
            }
            sleep_ms(third);
        }
        return 0;
    }
    if (strcmp(mode, "rate") == 0) {
        long long period = 1000000000LL / (count > 0 ? count : 1);
        long long start = now_ns(CLOCK_MONOTONIC);
        long long end = start + third * 1000000000LL;
        long spawned = 0;
        for (long long next = start; next < end; next += period) {
            long long now = now_ns(CLOCK_MONOTONIC);
            if (next > now) {
                struct timespec left = {(next - now) / 1000000000LL, (next - now) % 1000000000LL};
                while (nanosleep(&left, &left) != 0) {
                }
            }
            snprintf(name, sizeof name, "%s-%ld", marker, spawned);
            pid_t child = fork();
            if (child == 0) {
                char *args[] = {"sleeper", "1", name, NULL};
                execvp("sleeper", args);
                _exit(127);
            }
            if (child > 0) {
                spawned++;
            }
            reap();
        }
        while (wait(NULL) > 0) {
        }
        printf("%ld\n", spawned);
        return 0;
    }
    fprintf(stderr, "actor: unknown mode %s\n", mode);
    return 2;
}
