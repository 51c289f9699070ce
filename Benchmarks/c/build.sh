#!/bin/sh
# Builds the C reference kernels into Benchmarks/c/bin/ with the flags of Benchmarks/README.md
# (-ffp-contract=off: no fused multiply-add, so the checksums match the Swift kernels), and the
# floor program of the process and IPC figures (floor.c).
set -eu
cd "$(dirname "$0")"
mkdir -p bin
for kernel in pi mandelbrot matmul nbody; do
    gcc -O3 -march=native -ffp-contract=off -std=gnu11 -Wall -o "bin/$kernel" "$kernel.c" -lm
done
# The operating system's floor under the process and IPC figures (fork, socketpair, pipes, a
# Unix socket): -ldl for the --padded mode's dlopen.
gcc -O2 -std=gnu11 -Wall -o bin/floor floor.c -ldl
