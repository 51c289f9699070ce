/* Shared helpers for the C reference kernels: a monotonic clock, a CPU clock and a median. */
#ifndef KERNELS_COMMON_H
#define KERNELS_COMMON_H
#include <stdlib.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The calling thread's CPU time: on a shared machine, the time the scheduler gave the run
   (reported as "cpu" beside the wall times). */
static inline double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts `times` in place and returns the median. */
static double median(double *times, int count) {
    qsort(times, (size_t)count, sizeof(double), compare_doubles);
    return count % 2 ? times[count / 2] : 0.5 * (times[count / 2 - 1] + times[count / 2]);
}

/* The number of timed runs: argv[1], default 1. */
static int run_count(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 1;
    return runs > 0 ? runs : 1;
}
#endif
