/* Dense float64 matrix multiply, n = 1024, by OpenBLAS's dgemm on one thread: the best
   reference for matmul (Benchmarks/README.md). The entries are small integers, so C is exact
   whatever order dgemm sums in (it fuses multiply-adds) and the checksums are the reference's
   bit for bit. Built by build.sh only when libopenblas is installed (libopenblas-dev).
   Usage: matmul_openblas [runs]. Prints one JSON line like matmul.c (matmul_common.h: the
   problem and the report), and OpenBLAS's core kernel in "core". */
#include <cblas.h>
#include "matmul_common.h"

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static void multiply(void) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, A, N, B, N, 0.0, C, N);
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    return matmul_main(argc, argv, "c-openblas", openblas_get_corename());
}
