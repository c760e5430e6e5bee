/*
 * `mapper [--undumpable] FILE...`: maps each FILE read-only (as the dynamic loader maps a shared
 * library), prints "mapped" and sleeps until killed. With --undumpable it first sets
 * PR_SET_DUMPABLE to 0, so that its /proc/PID entries (maps, exe, environ) pass the kernel's
 * ptrace read check only for a reader with CAP_SYS_PTRACE. The image collector's "in use"
 * tests (tests/image_scan_e2e.rs). Built with `cc -static -O2`.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--undumpable") == 0) {
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
            perror("prctl");
            return 1;
        }
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
            perror(argv[i]);
            return 1;
        }
        if (mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        close(fd);
    }
    printf("mapped\n");
    fflush(stdout);
    for (;;) {
        pause();
    }
}
