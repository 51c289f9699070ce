/* Shared helpers for the C reference kernels: a monotonic clock, a CPU clock, a median, the
   timing loop and the timing fields that end each kernel's JSON line. */
#ifndef KERNELS_COMMON_H
#define KERNELS_COMMON_H
#include <stdio.h>
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

/* Runs body() `runs` times: the wall and the CPU seconds of each run into times and cpus. */
static inline void time_runs(void (*body)(void), int runs, double *times, double *cpus) {
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        body();
        times[r] = now_seconds() - t0;
        cpus[r] = cpu_seconds() - c0;
    }
}

/* Ends a kernel's JSON line: median, min and max wall seconds, the run count, the median CPU
   seconds, then "}" and the newline. Sorts times and cpus. */
static inline void print_times(double *times, double *cpus, int runs) {
    double md = median(times, runs);
    printf("\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           md, times[0], times[runs - 1], runs, median(cpus, runs));
}
#endif
