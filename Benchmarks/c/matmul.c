/* Dense float64 matrix multiply, n = 1024, i-k-j order tiled 64 (Benchmarks/README.md).
   Usage: matmul [runs]. Prints one JSON line: both checksums, GFLOP/s, median/min/max seconds. */
#include <stdio.h>
#include <string.h>
#include "common.h"

enum { N = 1024, T = 64 };
static double A[N * N], B[N * N], C[N * N];

static void multiply(void) {
    memset(C, 0, sizeof C);
    for (int ii = 0; ii < N; ii += T)
        for (int kk = 0; kk < N; kk += T)
            for (int jj = 0; jj < N; jj += T)
                for (int i = ii; i < ii + T; i++)
                    for (int k = kk; k < kk + T; k++) {
                        double a = A[i * N + k];
                        double *c = &C[i * N + jj];
                        const double *b = &B[k * N + jj];
                        for (int j = 0; j < T; j++) c[j] += a * b[j];
                    }
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i * N + j] = (double)((3 * i + 7 * j) % 11) - 3.0;
            B[i * N + j] = (double)((5 * i + 3 * j) % 13) - 4.0;
        }
    double times[runs], cpus[runs];
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        multiply();
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
    printf("{\"kernel\":\"matmul\",\"impl\":\"c\",\"sum\":%.0f,\"weighted\":%.0f,\"gflops\":%.2f,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           sum, weighted, 2.0 * N * N * N / m * 1e-9, m, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
