/* rtt: a round-trip client. Sends COUNT requests of SIZE bytes (each starting with its
 * 32-bit sequence number) to IP:PORT with INFLIGHT outstanding at once, and checks
 * every reply: right length (else merged/cut), known sequence, first time (else
 * duplicate). With INFLIGHT 1 it measures round-trip times.
 * Usage: rtt IP PORT COUNT SIZE INFLIGHT
 * Prints "rtt: replies=R lost=L bad=B dup=D seconds=T p50_us=X p99_us=Y". */
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
    if (argc != 6) { fprintf(stderr, "usage: rtt IP PORT COUNT SIZE INFLIGHT\n"); return 2; }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    uint32_t count = atoi(argv[3]);
    size_t size = atoi(argv[4]);
    uint32_t inflight = atoi(argv[5]);
    if (size < 4) size = 4;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    connect(fd, (struct sockaddr *)&to, sizeof to);
    char *req = calloc(1, size), *rep = malloc(65536);
    char *seen = calloc(count, 1);
    double *sent_at = calloc(count, sizeof *sent_at), *rtts = calloc(count, sizeof *rtts);
    uint32_t next = 0, replies = 0, bad = 0, dup = 0, nrtt = 0;
    double start = now();
    while (next < count && next < inflight) {
        memcpy(req, &next, 4);
        sent_at[next] = now();
        send(fd, req, size, 0);
        next++;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0) break; /* 1 s without a reply: the rest are lost */
        ssize_t n = recv(fd, rep, 65536, MSG_DONTWAIT);
        if (n < 0) continue;
        double t = now();
        uint32_t seq;
        memcpy(&seq, rep, 4);
        if ((size_t)n != size || seq >= count) { bad++; }
        else if (seen[seq]) { dup++; }
        else {
            seen[seq] = 1;
            replies++;
            rtts[nrtt++] = t - sent_at[seq];
        }
        if (next < count) {
            memcpy(req, &next, 4);
            sent_at[next] = now();
            send(fd, req, size, 0);
            next++;
        } else if (replies + bad >= count) {
            break;
        }
    }
    double secs = now() - start;
    qsort(rtts, nrtt, sizeof *rtts, cmp);
    double p50 = nrtt ? rtts[nrtt / 2] : 0, p99 = nrtt ? rtts[(size_t)(nrtt * 0.99)] : 0;
    printf("rtt: replies=%u lost=%u bad=%u dup=%u seconds=%.6f p50_us=%.1f p99_us=%.1f\n",
           replies, count - replies, bad, dup, secs, p50 * 1e6, p99 * 1e6);
    return 0;
}
