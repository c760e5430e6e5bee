/*
 * `threadspawner COUNT MS MARKER`: a multi-threaded parent. It starts three idle threads and a
 * worker thread; the worker (not the main thread) COUNT times forks and execs
 * `sleeper MS MARKER-<i>` (found in PATH) and waits for it. Exits 0 when all children exited 0.
 * Built with `cc -static -O2` (glibc's threads are in libc).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static long count;
static const char *ms;
static const char *marker;
static int failures;

static void *idle(void *arg) {
    (void)arg;
    for (;;) {
        pause();
    }
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < count; i++) {
        char mark[256];
        snprintf(mark, sizeof mark, "%s-%ld", marker, i);
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            failures++;
            return NULL;
        }
        if (child == 0) {
            char *args[] = {"sleeper", (char *)ms, mark, NULL};
            execvp("sleeper", args);
            _exit(127);
        }
        int status;
        while (waitpid(child, &status, 0) < 0) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failures++;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: threadspawner COUNT MS MARKER\n");
        return 2;
    }
    count = strtol(argv[1], NULL, 10);
    ms = argv[2];
    marker = argv[3];
    pthread_t t;
    for (int i = 0; i < 3; i++) {
        pthread_create(&t, NULL, idle, NULL);
    }
    pthread_t w;
    pthread_create(&w, NULL, worker, NULL);
    pthread_join(w, NULL);
    return failures == 0 ? 0 : 1;
}
