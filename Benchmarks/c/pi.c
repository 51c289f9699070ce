/* Monte Carlo pi, 20 000 000 samples, seed 12345: sample k is draw k of the Philox4x32-10
   stream (seed, stream 0) — block k/2, words (x0, x1) for even k and (x2, x3) for odd k — as
   x and y in units of 2^-32; a hit is x^2 + y^2 < 2^64, exactly (the Swift kernel's definition,
   Benchmarks/README.md).
   Usage: pi [runs]. Prints one JSON line: hits, median/min/max wall seconds. */
#include <stdint.h>
#include <stdio.h>
#include "common.h"

/* x^2 + y^2 < 2^64: no carry out of 64 bits. */
static inline long hit(uint64_t x, uint64_t y) {
    uint64_t xx = x * x;
    return xx + y * y >= xx;
}

/* Philox4x32-10 of the counter (b, 0) under the key seed: the four words into c. */
static inline void philox(uint64_t b, uint64_t seed, uint32_t c[4]) {
    uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)c0 * 0xD2511F53u, p1 = (uint64_t)c2 * 0xCD9E8D57u;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    c[0] = c0; c[1] = c1; c[2] = c2; c[3] = c3;
}

/* The hits of every block's two samples.
   Each block is independent of the others, so the compiler vectorises the loop over blocks. */
static long count_hits(uint64_t seed, long samples) {
    long hits = 0;
    for (long b = 0; b < (samples + 1) / 2; b++) {
        uint32_t c[4];
        philox((uint64_t)b, seed, c);
        hits += hit(c[0], c[1]) + hit(c[2], c[3]);
    }
    /* An odd count: the last block's second sample is not part of the problem. */
    if (samples % 2) {
        uint32_t c[4];
        philox((uint64_t)samples / 2, seed, c);
        hits -= hit(c[2], c[3]);
    }
    return hits;
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    long hits = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        hits = count_hits(12345, 20000000);
        times[r] = now_seconds() - t0;
        cpus[r] = cpu_seconds() - c0;
    }
    double m = median(times, runs);
    printf("{\"kernel\":\"pi\",\"impl\":\"c\",\"hits\":%ld,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           hits, m, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
