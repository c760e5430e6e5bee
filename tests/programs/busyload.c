/*
 * A paced busy workload for the profile learning benchmark (bench/live/learn.rs).
 *
 * `busyload run SECONDS EXECS_PER_S PROGRAM_FORMAT PROGRAMS CONNS_PER_S PORT DESTINATIONS
 * HOLD_MS`: for SECONDS, starts EXECS_PER_S programs a second, in turn the PROGRAMS paths that
 * PROGRAM_FORMAT (a printf format of one int) names, and makes CONNS_PER_S TCP connections a
 * second, in turn to the DESTINATIONS addresses 198.18.(d / 5).(1 + d % 5) on PORT, each held
 * open about HOLD_MS milliseconds (as a service's requests and pooled connections are; a
 * connection closed at once is gone before a scan of the socket tables can see it). Paced by
 * the clock, so that a slow second is caught up on in the next. Prints `execs N conns M
 * failed_execs F failed_conns G seconds S` when done.
 *
 * `busyload listen PORT`: accepts connections on 0.0.0.0:PORT and holds the last 16,384 open
 * (closing the oldest), for ever.
 *
 * Without arguments (as the programs started by `run`, hard links of this binary): exits 0.
 *
 * Built with `cc -static -O2` (tests/support/src/programs.rs).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void raise_fd_limit(void) {
    struct rlimit limit = {65536, 65536};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) perror("busyload setrlimit");
}

#define HELD_ACCEPTED 16384
static int accepted[HELD_ACCEPTED];

static int listen_forever(int port) {
    raise_fd_limit();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0) {
        perror("busyload listen");
        return 1;
    }
    long n = 0;
    for (int i = 0; i < HELD_ACCEPTED; i++) accepted[i] = -1;
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) continue;
        int slot = (int)(n++ % HELD_ACCEPTED);
        if (accepted[slot] >= 0) close(accepted[slot]);
        accepted[slot] = c;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 0;
    if (strcmp(argv[1], "listen") == 0 && argc == 3) return listen_forever(atoi(argv[2]));
    if (strcmp(argv[1], "run") != 0 || argc != 10) {
        fprintf(stderr, "usage: busyload run SECONDS EXECS_PER_S FORMAT PROGRAMS CONNS_PER_S PORT DESTINATIONS HOLD_MS\n");
        return 2;
    }
    raise_fd_limit();
    double seconds = atof(argv[2]);
    double exec_rate = atof(argv[3]);
    const char *format = argv[4];
    int programs = atoi(argv[5]);
    double conn_rate = atof(argv[6]);
    int port = atoi(argv[7]);
    int destinations = atoi(argv[8]);
    long held_max = (long)(conn_rate * atof(argv[9]) / 1000.0);
    if (held_max < 1) held_max = 1;
    if (held_max > 30000) held_max = 30000;
    int *held = calloc((size_t)held_max, sizeof(int));
    for (long i = 0; i < held_max; i++) held[i] = -1;
    long next_held = 0;
    long execs = 0, conns = 0, failed_execs = 0, failed_conns = 0;
    char path[4096];
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        long exec_due = (long)(elapsed * exec_rate), conn_due = (long)(elapsed * conn_rate);
        while (execs + failed_execs < exec_due) {
            snprintf(path, sizeof path, format, (int)((execs + failed_execs) % programs));
            pid_t pid = fork();
            if (pid == 0) {
                char *child_argv[] = {path, NULL};
                execv(path, child_argv);
                _exit(127);
            }
            if (pid > 0) execs++;
            else failed_execs++;
        }
        while (conns + failed_conns < conn_due) {
            int d = (int)((conns + failed_conns) % destinations);
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in addr = {0};
            addr.sin_family = AF_INET;
            addr.sin_port = htons(port);
            addr.sin_addr.s_addr = htonl((198u << 24) | (18u << 16) | ((unsigned)(d / 5) << 8) | (1u + d % 5));
            if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
                conns++;
                long slot = next_held++ % held_max;
                if (held[slot] >= 0) close(held[slot]);
                held[slot] = fd;
            } else {
                failed_conns++;
                if (fd >= 0) close(fd);
            }
        }
        int status;
        while (waitpid(-1, &status, WNOHANG) > 0) {
        }
        usleep(1000);
    }
    int status;
    while (waitpid(-1, &status, 0) > 0) {
    }
    printf("execs %ld conns %ld failed_execs %ld failed_conns %ld seconds %.3f\n", execs, conns,
           failed_execs, failed_conns, now() - start);
    return 0;
}
