/* flood: the reference sender. Sends COUNT datagrams of SIZE bytes to IP:PORT, each
 * starting with its 64-bit sequence number (little endian), as fast as the kernel takes
 * them or paced at RATE per second.
 *   mode mmsg: sendmmsg, 64 datagrams per call
 *   mode gso:  UDP_SEGMENT, up to 64 segments per send (fewer when 64 x SIZE > 65507)
 * Usage: flood IP PORT COUNT SIZE mmsg|gso [RATE]
 * With FLOOD_PAYLOAD=FILE every datagram is that file's bytes instead (SIZE is ignored,
 * and no sequence number is written: a DNS query stays a DNS query).
 * Prints "flood: sent=N seconds=T" on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pace(double start, uint64_t sent, double rate) {
    if (rate <= 0) return;
    double due = start + sent / rate;
    double wait = due - now();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: flood IP PORT COUNT SIZE mmsg|gso [RATE]\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    uint64_t count = strtoull(argv[3], NULL, 10);
    size_t size = strtoul(argv[4], NULL, 10);
    static char fixed[65536];
    size_t fixed_len = 0;
    const char *payload = getenv("FLOOD_PAYLOAD");
    if (payload) {
        FILE *f = fopen(payload, "rb");
        if (!f) { perror(payload); return 2; }
        fixed_len = fread(fixed, 1, sizeof fixed, f);
        fclose(f);
        size = fixed_len;
    }
    int gso = strcmp(argv[5], "gso") == 0;
    double rate = argc > 6 ? atof(argv[6]) : 0;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) { perror("connect"); return 3; }
    int batch = 64;
    if (gso && batch * size > 65507) batch = 65507 / size;
    if (rate > 0 && batch > 16) batch = 16; /* smoother pacing */
    char *buf = calloc(64, size < 8 ? 8 : size);
    for (int i = 0; i < 64; i++) {
        if (payload) memcpy(buf + i * size, fixed, size);
        else memset(buf + i * size, 'x', size);
    }
    if (gso) {
        int seg = size;
        if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof seg) < 0) { perror("UDP_SEGMENT"); return 3; }
    }
    struct mmsghdr msgs[64];
    struct iovec iovs[64];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 64; i++) {
        iovs[i].iov_base = buf + i * size;
        iovs[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    double start = now();
    uint64_t sent = 0;
    while (sent < count) {
        pace(start, sent, rate);
        int n = count - sent < (uint64_t)batch ? (int)(count - sent) : batch;
        if (size >= 8 && !payload)
            for (int i = 0; i < n; i++) { uint64_t seq = sent + i; memcpy(buf + i * size, &seq, 8); }
        int done;
        if (gso) {
            ssize_t r = send(fd, buf, n * size, 0);
            done = r < 0 ? -1 : n;
        } else {
            done = sendmmsg(fd, msgs, n, 0);
        }
        if (done < 0) {
            if (errno == ECONNREFUSED || errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
            perror("send");
            return 3;
        }
        sent += done;
    }
    fprintf(stderr, "flood: sent=%llu seconds=%.6f\n", (unsigned long long)sent, now() - start);
    return 0;
}
