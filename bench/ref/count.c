/* count: the other end of a receiver's stdout pipe. Reads until EOF and prints
 * "count: bytes=B lines=L seconds=T", T from the first read with data to the last
 * (lines: for receivers that print one line per datagram). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    static char buf[1 << 20];
    unsigned long long bytes = 0, lines = 0;
    double first = 0, last = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) != 0) {
        if (n < 0) continue;
        last = now();
        if (!bytes) first = last;
        bytes += n;
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    }
    printf("count: bytes=%llu lines=%llu seconds=%.6f\n", bytes, lines, last - first);
    return 0;
}
