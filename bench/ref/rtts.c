/* rtts: round trips to several ports, interleaved, one in flight. Each round sends one
 * request of SIZE bytes to every PORT in turn (the order rotating by round), waiting
 * for each reply, so every path is sampled in the same moments: the wake-up latency of
 * an idle machine, which swings by tens of microseconds from one second to the next,
 * falls on all of them alike. Compare paths by their medians.
 * Usage: rtts IP COUNT SIZE PORT...
 * Prints one line per port: "rtts: port=P replies=R lost=L p50_us=X p99_us=Y". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: rtts IP COUNT SIZE PORT...\n"); return 2; }
    uint32_t count = atoi(argv[2]);
    size_t size = atoi(argv[3]);
    int ports = argc - 4;
    if (size < 4) size = 4;
    int *fds = calloc(ports, sizeof *fds);
    double **rtts = calloc(ports, sizeof *rtts);
    uint32_t *got = calloc(ports, sizeof *got);
    for (int k = 0; k < ports; k++) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4 + k]))};
        inet_pton(AF_INET, argv[1], &to.sin_addr);
        fds[k] = socket(AF_INET, SOCK_DGRAM, 0);
        connect(fds[k], (struct sockaddr *)&to, sizeof to);
        rtts[k] = calloc(count, sizeof **rtts);
    }
    char *req = calloc(1, size), *rep = malloc(65536);
    for (uint32_t i = 0; i < count; i++) {
        for (int j = 0; j < ports; j++) {
            int k = (j + i) % ports;
            memcpy(req, &i, 4);
            double t0 = now();
            send(fds[k], req, size, 0);
            for (;;) {
                struct pollfd p = {.fd = fds[k], .events = POLLIN};
                if (poll(&p, 1, 1000) <= 0) break; /* lost */
                ssize_t n = recv(fds[k], rep, 65536, MSG_DONTWAIT);
                uint32_t seq;
                if (n != (ssize_t)size) continue;
                memcpy(&seq, rep, 4);
                if (seq != i) continue; /* a late reply to an earlier round */
                rtts[k][got[k]++] = now() - t0;
                break;
            }
        }
    }
    for (int k = 0; k < ports; k++) {
        uint32_t n = got[k];
        qsort(rtts[k], n, sizeof **rtts, cmp);
        double p50 = n ? rtts[k][n / 2] : 0, p99 = n ? rtts[k][(size_t)(n * 0.99)] : 0;
        printf("rtts: port=%s replies=%u lost=%u p50_us=%.1f p99_us=%.1f\n", argv[4 + k], n, count - n,
               p50 * 1e6, p99 * 1e6);
    }
    return 0;
}
