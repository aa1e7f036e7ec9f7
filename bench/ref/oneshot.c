/* oneshot: the minimal C sender for the start-up case. One datagram, then exit.
 * Usage: oneshot IP PORT PAYLOAD */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: oneshot IP PORT PAYLOAD\n");
        return 2;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || sendto(fd, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("oneshot");
        return 3;
    }
    return 0;
}
