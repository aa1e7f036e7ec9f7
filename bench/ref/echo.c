/* echo: the reference echo server. Binds 127.0.0.1:0, announces "listening on ADDR" on
 * stderr, and reflects every datagram: recvmmsg batches of 64, one sendmmsg of the
 * replies per batch. Runs until SIGTERM. Usage: echo */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS 64
#define SLOT 65536

int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 3; }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    fprintf(stderr, "listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    char *bufs = malloc((size_t)SLOTS * SLOT);
    struct mmsghdr msgs[SLOTS];
    struct iovec iovs[SLOTS];
    struct sockaddr_in peers[SLOTS];
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < SLOTS; i++) {
            iovs[i].iov_base = bufs + (size_t)i * SLOT;
            iovs[i].iov_len = SLOT;
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        }
        int n = recvmmsg(fd, msgs, SLOTS, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("recvmmsg");
            return 3;
        }
        for (int i = 0; i < n; i++) iovs[i].iov_len = msgs[i].msg_len;
        int sent = 0;
        while (sent < n) {
            int r = sendmmsg(fd, msgs + sent, n - sent, 0);
            if (r < 0) { sent++; continue; } /* a vanished peer: skip it */
            sent += r;
        }
    }
}
