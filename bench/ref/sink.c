/* sink: the reference receiver. Binds 127.0.0.1:0, announces "listening on ADDR" on
 * stderr, receives with recvmmsg (64 x 64 KiB), optionally with UDP_GRO (coalesced
 * buffers split by their segment size), counts datagrams, checks the sequence numbers
 * flood puts in them, and optionally writes every payload to stdout.
 * Exits when nothing arrived for IDLE_MS after the first datagram, or on SIGTERM.
 * Usage: sink [--gro] [--stdout] [--idle MS]
 * Prints "sink: received=N bytes=B out_of_order=O seconds=T" on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define SLOTS 64
#define SLOT 65536

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static char out[1 << 20];
static size_t outlen;
static void flush_out(void) {
    size_t off = 0;
    while (off < outlen) {
        ssize_t w = write(1, out + off, outlen - off);
        if (w <= 0) { if (errno == EINTR) continue; exit(0); }
        off += w;
    }
    outlen = 0;
}
static void emit(const char *p, size_t n) {
    if (outlen + n > sizeof out) flush_out();
    memcpy(out + outlen, p, n);
    outlen += n;
}

int main(int argc, char **argv) {
    int gro = 0, to_stdout = 0, idle_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gro")) gro = 1;
        else if (!strcmp(argv[i], "--stdout")) to_stdout = 1;
        else if (!strcmp(argv[i], "--idle") && i + 1 < argc) idle_ms = atoi(argv[++i]);
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 3; }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    if (gro) {
        int on = 1;
        if (setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) { perror("UDP_GRO"); return 3; }
    }
    fprintf(stderr, "listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    char *bufs = malloc((size_t)SLOTS * SLOT);
    struct mmsghdr msgs[SLOTS];
    struct iovec iovs[SLOTS];
    char ctrl[SLOTS][64];
    uint64_t received = 0, bytes = 0, out_of_order = 0, expect = 0;
    double first = 0, last = 0;
    while (!stop) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < SLOTS; i++) {
            iovs[i].iov_base = bufs + (size_t)i * SLOT;
            iovs[i].iov_len = SLOT;
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
        }
        int n = recvmmsg(fd, msgs, SLOTS, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN) {
                if (to_stdout) flush_out();
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, received ? idle_ms : 60000);
                if (r == 0) break;
                continue;
            }
            if (errno == EINTR) continue;
            perror("recvmmsg");
            return 3;
        }
        double t = now();
        if (!received) first = t;
        last = t;
        for (int i = 0; i < n; i++) {
            char *p = bufs + (size_t)i * SLOT;
            size_t len = msgs[i].msg_len, seg = len;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
                if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) { int s; memcpy(&s, CMSG_DATA(c), sizeof s); seg = s; }
            for (size_t off = 0; off < len; off += seg) {
                size_t l = len - off < seg ? len - off : seg;
                received++;
                bytes += l;
                if (l >= 8) {
                    uint64_t seq;
                    memcpy(&seq, p + off, 8);
                    if (seq != expect) out_of_order++;
                    expect = seq + 1;
                }
                if (to_stdout) emit(p + off, l);
            }
        }
    }
    if (to_stdout) flush_out();
    fprintf(stderr, "sink: received=%llu bytes=%llu out_of_order=%llu seconds=%.6f\n",
            (unsigned long long)received, (unsigned long long)bytes, (unsigned long long)out_of_order, last - first);
    return 0;
}
