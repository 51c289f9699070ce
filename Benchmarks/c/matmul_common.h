/* The matrix multiply of matmul.c (tiled C) and matmul_openblas.c (OpenBLAS's dgemm): dense
   float64, n = 1024, small-integer entries (Benchmarks/README.md). The program that includes
   this header defines multiply(), the only part that differs; this header holds the rest: the
   matrices and their entries, the timed runs, the checksums and the JSON line. */
#ifndef MATMUL_COMMON_H
#define MATMUL_COMMON_H
#include <stdio.h>
#include "common.h"

enum { N = 1024 };
static double A[N * N], B[N * N], C[N * N];

/* Defined by the including program: C = A B (row-major, n x n). */
static void multiply(void);

/* Sets A and B, times argv[1] (default 1) multiplies and prints the JSON line with
   "impl": impl, and "core": core after it unless core is NULL. */
static int matmul_main(int argc, char **argv, const char *impl, const char *core) {
    int runs = run_count(argc, argv);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i * N + j] = (double)((3 * i + 7 * j) % 11) - 3.0;
            B[i * N + j] = (double)((5 * i + 3 * j) % 13) - 4.0;
        }
    double times[runs], cpus[runs];
    time_runs(multiply, runs, times, cpus);
    double sum = 0, weighted = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            sum += C[i * N + j];
            weighted += C[i * N + j] * (double)(i + 2 * j + 1);
        }
    printf("{\"kernel\":\"matmul\",\"impl\":\"%s\",", impl);
    if (core) printf("\"core\":\"%s\",", core);
    printf("\"sum\":%.0f,\"weighted\":%.0f,\"gflops\":%.2f,", sum, weighted,
           2.0 * N * N * N / median(times, runs) * 1e-9);
    print_times(times, cpus, runs);
    return 0;
}
#endif
