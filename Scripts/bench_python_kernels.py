#!/usr/bin/env python3
"""The compute kernels in NumPy, at the reference sizes of Benchmarks/README.md.

Monte Carlo π (20 000 000 samples, Philox4x32-10 vectorised in uint64), Mandelbrot 1600×1200×256,
matmul 1024 (numpy @, whatever BLAS numpy links, on OPENBLAS_NUM_THREADS threads) and N-body 4096×10 (unless --no-nbody).
Every run's checksum is verified; a wrong one exits non-zero. Prints one JSON object per line
in the format of `swiftmp bench kernels`, names prefixed `numpy.`:

    {"name":"numpy.kernels.pi.20000000","value":0.37,"unit":"s","max":…,"min":…,"runs":3,"hits":15710491}

Usage: Scripts/bench_python_kernels.py [--repetitions N] [--no-nbody] [kernel …]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
LOW = np.uint64(0xFFFFFFFF)
SHIFT = np.uint64(32)


def philox_blocks(blocks, seed):
    """Philox4x32-10 of the counters (blocks as two words, stream 0) under key `seed` (lo, hi):
    the four output words, each a uint64 array of values < 2^32."""
    c0, c1 = blocks & LOW, blocks >> SHIFT
    c2 = c3 = np.zeros_like(blocks)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = c0 * PHILOX_M[0]
        p1 = c2 * PHILOX_M[1]
        c0, c1, c2, c3 = (p1 >> SHIFT) ^ c1 ^ np.uint64(k0), p1 & LOW, (p0 >> SHIFT) ^ c3 ^ np.uint64(k1), p0 & LOW
        k0, k1 = (k0 + PHILOX_W[0]) & 0xFFFFFFFF, (k1 + PHILOX_W[1]) & 0xFFFFFFFF
    return c0, c1, c2, c3


def pi_hits(samples, seed=12345, block=1 << 21):
    """Hits among `samples` points. Sample k is draw k of RandomStream(seed, stream 0): block k // 2
    of Philox4x32-10, words (x0, x1) for even k and (x2, x3) for odd k, as x and y in units of
    2^-32; a hit is x² + y² < 2^64, exactly."""
    hits = 0
    with np.errstate(over="ignore"):
        for start in range(0, samples, block):
            k = np.arange(start, min(start + block, samples), dtype=np.uint64)
            x0, x1, x2, x3 = philox_blocks(k >> np.uint64(1), seed)
            odd = (k & np.uint64(1)).astype(bool)
            x = np.where(odd, x2, x0)
            y = np.where(odd, x3, x1)
            xx = x * x
            hits += int(np.count_nonzero(xx + y * y >= xx))
    return hits


def mandelbrot_sum(width=1600, height=1200, limit=256):
    """Σn over the image; only the pixels still iterating are updated (same IEEE operations)."""
    cr = -2.0 + np.arange(width, dtype=np.float64) * (3.0 / width)
    ci = -1.2 + np.arange(height, dtype=np.float64) * (2.4 / height)
    cr, ci = [a.ravel() for a in np.meshgrid(cr, ci)]
    zr = np.zeros_like(cr)
    zi = np.zeros_like(cr)
    total = 0
    for _ in range(limit):
        zr2 = zr * zr
        zi2 = zi * zi
        alive = zr2 + zi2 <= 4.0
        if not alive.all():
            cr, ci, zr, zi, zr2, zi2 = (a[alive] for a in (cr, ci, zr, zi, zr2, zi2))
        if cr.size == 0:
            break
        total += cr.size
        zi = 2.0 * zr * zi + ci
        zr = zr2 - zi2 + cr
    return total


def matmul_checksums(n=1024):
    i = np.arange(n, dtype=np.int64)[:, None]
    j = np.arange(n, dtype=np.int64)[None, :]
    a = ((3 * i + 7 * j) % 11 - 3).astype(np.float64)
    b = ((5 * i + 3 * j) % 13 - 4).astype(np.float64)
    start, cpu_start = time.perf_counter(), time.thread_time()
    c = a @ b
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    weight = (i + 2 * j + 1).astype(np.float64)
    return seconds, int(c.sum()), int((c * weight).sum()), cpu


def nbody_checksums(n=4096, steps=10, block=256):
    idx = np.arange(n)
    x, y, z = (((m * idx) % 4096) / 4096 - 0.5 for m in (7919, 6271, 3319))
    vx, vy, vz = np.zeros(n), np.zeros(n), np.zeros(n)
    mass = np.full(n, 1.0 / n)
    eps2, dt = 1e-3 ** 2, 1e-3
    for _ in range(steps):
        ax, ay, az = np.empty(n), np.empty(n), np.empty(n)
        for start in range(0, n, block):
            rows = slice(start, start + block)
            dx = x[None, :] - x[rows, None]
            dy = y[None, :] - y[rows, None]
            dz = z[None, :] - z[rows, None]
            r2 = dx * dx + dy * dy + dz * dz + eps2
            w = mass / (r2 * np.sqrt(r2))
            ax[rows], ay[rows], az[rows] = (w * dx).sum(1), (w * dy).sum(1), (w * dz).sum(1)
        vx += ax * dt; vy += ay * dt; vz += az * dt
        x += vx * dt; y += vy * dt; z += vz * dt
    kinetic = 0.5 * float((mass * (vx * vx + vy * vy + vz * vz)).sum())
    return kinetic, float((x * x + y * y + z * z).sum())


def figure(name, times, **exact):
    fields = {"name": name, "value": float(f"{statistics.median(times):.6g}"), "unit": "s",
              "max": float(f"{max(times):.6g}"), "min": float(f"{min(times):.6g}"), "runs": len(times)}
    fields.update(exact)
    print(json.dumps(fields, separators=(",", ":")), flush=True)


def check(condition, message):
    if not condition:
        sys.exit(f"bench_python_kernels: checksum mismatch: {message}")


def close(value, reference):
    return abs(value - reference) <= 1e-9 * abs(reference)


def timed(repetitions, body):
    """(wall seconds per run, last result) of `repetitions` runs of `body`."""
    times, result = [], None
    for _ in range(repetitions):
        start = time.perf_counter()
        result = body()
        times.append(time.perf_counter() - start)
    return times, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="runs per kernel (the median is reported)")
    parser.add_argument("--no-nbody", action="store_true", help="skip the N-body kernel (the slowest)")
    parser.add_argument("kernels", nargs="*", help="pi, mandelbrot, matmul, nbody (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.kernels) - {"pi", "mandelbrot", "matmul", "nbody"})
    if unknown:
        parser.error(f"unknown kernel {unknown[0]!r}; kernels: pi mandelbrot matmul nbody")
    if args.repetitions < 1:
        parser.error(f"--repetitions must be at least 1 (got {args.repetitions})")
    kernels = args.kernels or ["pi", "mandelbrot", "matmul"] + ([] if args.no_nbody else ["nbody"])

    if "pi" in kernels:
        times, hits = timed(args.repetitions, lambda: pi_hits(20_000_000))
        check(hits == 15_710_491, f"pi: {hits} hits instead of 15710491")
        figure("numpy.kernels.pi.20000000", times, hits=hits)
    if "mandelbrot" in kernels:
        times, total = timed(args.repetitions, mandelbrot_sum)
        check(total == 113_169_525, f"mandelbrot: Σn = {total} instead of 113169525")
        figure("numpy.kernels.mandelbrot.1600x1200x256", times, sum=total)
    if "matmul" in kernels:
        matmul_checksums(64)  # untimed: BLAS loads its kernels and starts its threads here
        runs = [matmul_checksums() for _ in range(args.repetitions)]
        _, total, weighted, _ = runs[-1]
        check((total, weighted) == (4_294_950_921, 6_594_902_263_792),
              f"matmul: checksums {total}, {weighted}")
        # OPENBLAS_NUM_THREADS=1 (Benchmarks/compare-kernels.sh) times BLAS on one core.
        # cpu: this thread's CPU time, BLAS's own when it runs on one thread.
        figure("numpy.kernels.matmul.1024", [r[0] for r in runs], sum=total, weighted=weighted,
               blas_threads=os.environ.get("OPENBLAS_NUM_THREADS", "default"),
               cpu=float(f"{statistics.median(r[3] for r in runs):.6g}"))
    if "nbody" in kernels:
        times, (kinetic, squares) = timed(args.repetitions, nbody_checksums)
        check(close(kinetic, 1.8135481578192069e-4) and close(squares, 1023.5783750684968),
              f"nbody: {kinetic!r}, {squares!r} outside 1e-9 of the reference")
        figure("numpy.kernels.nbody.4096x10", times, kinetic=kinetic, squares=squares)


if __name__ == "__main__":
    main()
