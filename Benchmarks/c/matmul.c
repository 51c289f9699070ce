/* Dense float64 matrix multiply, n = 1024, i-k-j order tiled 64 (Benchmarks/README.md).
   Usage: matmul [runs]. Prints one JSON line: both checksums, GFLOP/s, median/min/max seconds.
   The problem and the report: matmul_common.h. */
#include <string.h>
#include "matmul_common.h"

enum { T = 64 };

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
    return matmul_main(argc, argv, "c", NULL);
}
