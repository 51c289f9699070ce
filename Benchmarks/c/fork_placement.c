/* Where a forked child runs, and what that does to fork + exit + wait: the experiment behind
 * Benchmarks/reports/process-start.md and SameCPUStart (Sources/Multiprocessing/Process/).
 *
 *   fork_placement wait ROUNDS ANON_KIB LIBRARY...
 *       after dlopen'ing every LIBRARY (RTLD_GLOBAL, as floor.c) and writing ANON_KIB KiB of
 *       anonymous memory (the shape of floor --padded), ROUNDS rounds of five ways to fork a child that only _exits, and
 *       wait for it, in rotating order; each way's figure in a round is the median of 50
 *       (milliseconds from fork to reaped):
 *         waitpid         fork, blocking waitpid (floor.c's figure)
 *         pidfd-block     fork, pidfd_open, blocking ppoll on it, waitid
 *         pidfd-yield     fork, pidfd_open, ppoll(0) + sched_yield for up to 1 ms, then as above
 *                         (what Process.join did while the machine had a CPU free)
 *         pinned          the forking thread held to its current CPU around fork (the child
 *                         inherits it and lifts it first thing), blocking waitpid
 *         pinned-unpin    as pinned, and the parent also gives the child its affinity back
 *                         right after the fork (what SameCPUStart does)
 *   fork_placement busy ROUNDS
 *       the cost of queueing the child behind its parent when the parent does not wait:
 *       (a) fork a child that spins 1 ms, the parent spins 2 ms, then waits;
 *       (b) fork 4 children that spin 5 ms each, then wait for all; unpinned, pinned and
 *       pinned-unpin in turn; medians over the rounds (ms).
 *
 * One line per way: name, median [min-max] over the rounds. Every system call is checked; a
 * failure ends the program with its name. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define FORKS 50
#define MAX_ROUNDS 200

static cpu_set_t all_cpus;

static void fail(const char *what) {
    fprintf(stderr, "fork_placement: %s failed: %s\n", what, strerror(errno));
    exit(1);
}

static void spin(double seconds) {
    double end = now_seconds() + seconds;
    while (now_seconds() < end) {}
}

/* Forks a child that spins `child_seconds` then _exits; pin: 0 no, 1 pinned, 2 pinned-unpin. */
static pid_t start_child(int pin, double child_seconds) {
    if (pin) {
        int cpu = sched_getcpu();
        if (cpu < 0) fail("sched_getcpu");
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) fail("sched_setaffinity");
    }
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        if (pin && sched_setaffinity(0, sizeof all_cpus, &all_cpus) != 0) _exit(3);
        if (child_seconds > 0) spin(child_seconds);
        _exit(0);
    }
    if (pin && sched_setaffinity(0, sizeof all_cpus, &all_cpus) != 0) fail("sched_setaffinity");
    if (pin == 2 && sched_setaffinity(pid, sizeof all_cpus, &all_cpus) != 0) fail("sched_setaffinity (child)");
    return pid;
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fork_placement: child %d ended with status %d\n", (int)pid, status);
        exit(1);
    }
}

static void reap_pidfd(pid_t pid, int yield) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) fail("pidfd_open");
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    if (yield) {
        double until = now_seconds() + 1e-3;
        struct timespec zero = {0, 0};
        while (now_seconds() < until) {
            int ready = ppoll(&entry, 1, &zero, NULL);
            if (ready < 0 && errno != EINTR) fail("ppoll");
            if (ready > 0) break;
            sched_yield();
        }
    }
    while (ppoll(&entry, 1, NULL, NULL) < 0) {
        if (errno != EINTR) fail("ppoll");
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PIDFD, (id_t)fd, &info, WEXITED) != 0) fail("waitid");
    if (info.si_code != CLD_EXITED || info.si_status != 0) {
        fprintf(stderr, "fork_placement: child %d did not exit with 0\n", (int)pid);
        exit(1);
    }
    if (close(fd) != 0) fail("close");
}

/* Median ms of fork + exit + wait, `way` as in the header. */
static double fork_wait(int way) {
    double times[FORKS];
    for (int i = 0; i < FORKS; i++) {
        double start = now_seconds();
        pid_t pid = start_child(way == 3 ? 1 : way == 4 ? 2 : 0, 0);
        if (way == 1 || way == 2) reap_pidfd(pid, way == 2);
        else reap(pid);
        times[i] = (now_seconds() - start) * 1e3;
    }
    return median(times, FORKS);
}

static void print_line(const char *name, double *values, int count) {
    double copy[MAX_ROUNDS];
    memcpy(copy, values, sizeof(double) * (size_t)count);
    double middle = median(copy, count);
    printf("%-14s %.3f [%.3f-%.3f]\n", name, middle, copy[0], copy[count - 1]);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fork_placement wait ROUNDS ANON_KIB LIBRARY... | fork_placement busy ROUNDS\n");
        return 2;
    }
    int rounds = run_count(argc - 1, argv + 1);
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    if (sched_getaffinity(0, sizeof all_cpus, &all_cpus) != 0) fail("sched_getaffinity");
    if (strcmp(argv[1], "wait") == 0) {
        if (argc < 4) return 2;
        for (int i = 4; i < argc; i++) {
            if (dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL) == NULL) {
                fprintf(stderr, "fork_placement: dlopen %s: %s\n", argv[i], dlerror());
                return 1;
            }
        }
        size_t bytes = (size_t)atol(argv[3]) * 1024;
        char *pad = malloc(bytes ? bytes : 1);
        if (pad == NULL) fail("malloc");
        memset(pad, 1, bytes);
        static const char *names[] = {"waitpid", "pidfd-block", "pidfd-yield", "pinned", "pinned-unpin"};
        static double results[5][MAX_ROUNDS];
        for (int round = 0; round < rounds; round++) {
            for (int k = 0; k < 5; k++) {
                int way = (k + round) % 5;
                results[way][round] = fork_wait(way);
            }
        }
        for (int way = 0; way < 5; way++) print_line(names[way], results[way], rounds);
        return 0;
    }
    if (strcmp(argv[1], "busy") == 0) {
        static const char *names[] = {"unpinned", "pinned", "pinned-unpin"};
        static double one[3][MAX_ROUNDS], four[3][MAX_ROUNDS];
        for (int round = 0; round < rounds; round++) {
            for (int k = 0; k < 3; k++) {
                int pin = (k + round) % 3;
                double start = now_seconds();
                pid_t pid = start_child(pin, 1e-3);
                spin(2e-3);
                reap(pid);
                one[pin][round] = (now_seconds() - start) * 1e3;
                start = now_seconds();
                pid_t pids[4];
                for (int i = 0; i < 4; i++) pids[i] = start_child(pin, 5e-3);
                for (int i = 0; i < 4; i++) reap(pids[i]);
                four[pin][round] = (now_seconds() - start) * 1e3;
            }
        }
        for (int pin = 0; pin < 3; pin++) {
            char name[64];
            snprintf(name, sizeof name, "%s/1+2ms", names[pin]);
            print_line(name, one[pin], rounds);
            snprintf(name, sizeof name, "%s/4x5ms", names[pin]);
            print_line(name, four[pin], rounds);
        }
        return 0;
    }
    fprintf(stderr, "fork_placement: unknown mode %s\n", argv[1]);
    return 2;
}
