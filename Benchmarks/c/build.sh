#!/bin/sh
# Builds the C reference kernels into Benchmarks/c/bin/ with the flags of Benchmarks/README.md
# (-ffp-contract=off: no fused multiply-add, so the checksums match the Swift kernels).
set -eu
cd "$(dirname "$0")"
mkdir -p bin
for kernel in pi mandelbrot matmul nbody; do
    gcc -O3 -march=native -ffp-contract=off -std=gnu11 -Wall -o "bin/$kernel" "$kernel.c" -lm
done
