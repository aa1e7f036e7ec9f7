/* relay: the reference relay, one session. Binds 127.0.0.1:0, announces "listening on
 * ADDR" on stderr, and relays between the last client and UPSTREAM: recvmmsg batches of
 * 64 on each socket, one sendmmsg per batch the other way; one poll over both.
 * Usage: relay UPSTREAM_IP UPSTREAM_PORT. Runs until SIGTERM. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS 64
#define SLOT 65536

static char *bufs;
static struct mmsghdr msgs[SLOTS];
static struct iovec iovs[SLOTS];
static struct sockaddr_in peers[SLOTS];

static int take(int fd) {
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < SLOTS; i++) {
        iovs[i].iov_base = bufs + (size_t)i * SLOT;
        iovs[i].iov_len = SLOT;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &peers[i];
        msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
    }
    int n = recvmmsg(fd, msgs, SLOTS, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++) iovs[i].iov_len = msgs[i].msg_len;
    return n;
}

static void give(int fd, int n, struct sockaddr_in *to) {
    for (int i = 0; i < n; i++) {
        msgs[i].msg_hdr.msg_name = to;
        msgs[i].msg_hdr.msg_namelen = to ? sizeof *to : 0;
    }
    int sent = 0;
    while (sent < n) {
        int r = sendmmsg(fd, msgs + sent, n - sent, 0);
        if (r < 0) { sent++; continue; }
        sent += r;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: relay UPSTREAM_IP UPSTREAM_PORT\n"); return 2; }
    int lfd = socket(AF_INET, SOCK_DGRAM, 0), ufd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET}, up = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    inet_pton(AF_INET, argv[1], &up.sin_addr);
    up.sin_port = htons(atoi(argv[2]));
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 3; }
    if (connect(ufd, (struct sockaddr *)&up, sizeof up) < 0) { perror("connect"); return 3; }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    fprintf(stderr, "listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    bufs = malloc((size_t)SLOTS * SLOT);
    struct sockaddr_in client = {0};
    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = ufd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; perror("poll"); return 3; }
        if (p[0].revents) {
            int n = take(lfd);
            if (n > 0) { client = peers[n - 1]; give(ufd, n, NULL); }
        }
        if (p[1].revents) {
            int n = take(ufd);
            if (n > 0 && client.sin_port) give(lfd, n, &client);
        }
    }
}
