/* startup: median wall time of RUNS runs of a command, spawned with posix_spawn and
 * reaped with waitpid, stdio on /dev/null. Prints "startup: median_us=M min_us=N".
 * Usage: startup RUNS CMD [ARGS...] */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: startup RUNS CMD [ARGS...]\n");
        return 2;
    }
    int runs = atoi(argv[1]);
    double *t = calloc(runs, sizeof *t);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
    for (int i = 0; i < runs; i++) {
        pid_t pid;
        int status;
        double start = now_us();
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) { perror("spawn"); return 3; }
        waitpid(pid, &status, 0);
        t[i] = now_us() - start;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "startup: %s failed (status %d)\n", argv[2], status);
            return 1;
        }
    }
    qsort(t, runs, sizeof *t, cmp);
    printf("startup: median_us=%.1f min_us=%.1f\n", t[runs / 2], t[0]);
    return 0;
}
