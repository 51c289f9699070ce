/* Dense float64 matrix multiply, n = 1024, by OpenBLAS's dgemm on one thread: the best
   reference for matmul (Benchmarks/README.md). The entries are small integers, so C is exact
   whatever order dgemm sums in (it fuses multiply-adds) and the checksums are the reference's
   bit for bit. Built by build.sh only when libopenblas is installed (libopenblas-dev).
   Usage: matmul_openblas [runs]. Prints one JSON line like matmul.c, and OpenBLAS's
   configuration (its core kernel) in "config". */
#include <cblas.h>
#include <stdio.h>
#include "common.h"

enum { N = 1024 };
static double A[N * N], B[N * N], C[N * N];

extern void openblas_set_num_threads(int);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    openblas_set_num_threads(1);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i * N + j] = (double)((3 * i + 7 * j) % 11) - 3.0;
            B[i * N + j] = (double)((5 * i + 3 * j) % 13) - 4.0;
        }
    double times[runs], cpus[runs];
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, A, N, B, N, 0.0, C, N);
        times[r] = now_seconds() - t0;
        cpus[r] = cpu_seconds() - c0;
    }
    double sum = 0, weighted = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            sum += C[i * N + j];
            weighted += C[i * N + j] * (double)(i + 2 * j + 1);
        }
    double m = median(times, runs);
    printf("{\"kernel\":\"matmul\",\"impl\":\"c-openblas\",\"core\":\"%s\",\"sum\":%.0f,\"weighted\":%.0f,\"gflops\":%.2f,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           openblas_get_corename(), sum, weighted, 2.0 * N * N * N / m * 1e-9, m, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
