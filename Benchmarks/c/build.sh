#!/bin/sh
# Builds the C reference kernels into Benchmarks/c/bin/ with the flags of Benchmarks/README.md
# (-ffp-contract=off: no fused multiply-add, so the checksums match the Swift kernels), and the
# floor program of the process and IPC figures (floor.c).
#
# Two sets of references: the plain scalar ones (pi, mandelbrot, matmul, nbody), and the best
# C for this CPU — AVX-512 intrinsics (pi_avx512, mandelbrot_avx512, nbody_avx512, built when
# the compiler's -march=native has AVX-512F), OpenBLAS's dgemm on one thread (matmul_openblas,
# built when libopenblas-dev is installed), and peak (the core's clock and vector GFLOP/s).
# The two programs of a kernel share <kernel>_common.h (the problem, the timed runs, the
# checksums and the JSON line) and differ only in the kernel's loop.
set -eu
cd "$(dirname "$0")"
mkdir -p bin
flags="-O3 -march=native -ffp-contract=off -std=gnu11 -Wall"
for kernel in pi mandelbrot matmul nbody; do
    gcc $flags -o "bin/$kernel" "$kernel.c" -lm
done
if gcc -march=native -dM -E - </dev/null | grep -q __AVX512F__; then
    for kernel in pi mandelbrot nbody; do
        gcc $flags -o "bin/${kernel}_avx512" "${kernel}_avx512.c" -lm
    done
    gcc $flags -DEXACT -o bin/nbody_avx512_exact nbody_avx512.c -lm
    gcc -O2 -march=native -std=gnu11 -Wall -Wno-unused-function -o bin/peak peak.c
else
    echo "build.sh: no AVX-512F with -march=native: the AVX-512 references are not built" >&2
fi
if gcc $flags -o bin/matmul_openblas matmul_openblas.c -lopenblas 2>/dev/null; then :; else
    rm -f bin/matmul_openblas
    echo "build.sh: libopenblas not found (Scripts/install-deps.sh --bench installs libopenblas-dev): matmul_openblas not built" >&2
fi
# The operating system's floor under the process and IPC figures (fork, socketpair, pipes, a
# Unix socket): -ldl for the --padded mode's dlopen.
gcc -O2 -std=gnu11 -Wall -o bin/floor floor.c -ldl
# Where a forked child runs and how its parent waits (Benchmarks/reports/process-start.md).
gcc -O2 -std=gnu11 -Wall -o bin/fork_placement fork_placement.c -ldl
