/* The Monte Carlo pi problem of pi.c (scalar) and pi_avx512.c (AVX-512 intrinsics): 20 000 000
   samples, seed 12345; sample k is draw k of the Philox4x32-10 stream (seed, stream 0) — block
   k/2, words (x0, x1) for even k and (x2, x3) for odd k — as x and y in units of 2^-32; a hit is
   x^2 + y^2 < 2^64, exactly (the Swift kernel's definition, Benchmarks/README.md). The program
   that includes this header defines run(), the only part that differs (how it counts the hits);
   this header holds the rest: the scalar sample, the timed runs and the JSON line. */
#ifndef PI_COMMON_H
#define PI_COMMON_H
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

enum { SEED = 12345, SAMPLES = 20000000 };

/* Set by run(): the hits of the last run. */
static long pi_hits;

/* Defined by the including program: one timed run, the hits among the SAMPLES samples of
   SEED into pi_hits. */
static void run(void);

/* Times argv[1] (default 1) runs and prints the JSON line with "impl": impl. */
static int pi_main(int argc, char **argv, const char *impl) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    time_runs(run, runs, times, cpus);
    printf("{\"kernel\":\"pi\",\"impl\":\"%s\",\"hits\":%ld,", impl, pi_hits);
    print_times(times, cpus, runs);
    return 0;
}
#endif
