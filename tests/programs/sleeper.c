/*
 * `sleeper MS [MARKER...]`: sleeps MS milliseconds, then exits 0. The remaining arguments are
 * ignored; tests put unique markers there so that the monitor's events for this very process
 * can be found by command line. Built with `cc -static -O2` so that exec maps no loader or
 * shared library and the process lives as close to MS as possible.
 */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (ms > 0) {
        struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&left, &left) != 0) {
        }
    }
    return 0;
}
