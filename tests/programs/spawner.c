/*
 * `spawner COUNT MS MAX_GAP_MS MARKER`: prints its own pid, then COUNT times forks and execs
 * `sleeper MS MARKER-<i>` (found in PATH), waits for it, and pauses a pseudo-random 0 to
 * MAX_GAP_MS milliseconds, so that the runs fall at every phase of a monitor's scan interval.
 * The children of this process are exactly the sleepers, which lets a capture-rate benchmark
 * count the processes a monitor saw in any form (even before their exec) by parent pid.
 * Built with `cc -static -O2`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0) {
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: spawner COUNT MS MAX_GAP_MS MARKER\n");
        return 2;
    }
    long count = strtol(argv[1], NULL, 10);
    long max_gap = strtol(argv[3], NULL, 10);
    unsigned long state = (unsigned long)getpid() * 2654435761UL + (unsigned long)time(NULL);
    printf("%d\n", (int)getpid());
    fflush(stdout);
    for (long i = 0; i < count; i++) {
        char marker[256];
        snprintf(marker, sizeof marker, "%s-%ld", argv[4], i);
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child == 0) {
            char *args[] = {"sleeper", argv[2], marker, NULL};
            execvp("sleeper", args);
            perror("exec sleeper");
            _exit(127);
        }
        int status;
        while (waitpid(child, &status, 0) < 0) {
        }
        state = state * 6364136223846793005UL + 1442695040888963407UL;
        if (max_gap > 0) {
            sleep_ms((long)((state >> 33) % (unsigned long)(max_gap + 1)));
        }
    }
    return 0;
}
