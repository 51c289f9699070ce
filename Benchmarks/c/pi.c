/* Monte Carlo pi, 20 000 000 samples, counter-form SplitMix64 seed 12345 (Benchmarks/README.md).
   Usage: pi [runs]. Prints one JSON line: hits, median/min/max wall seconds. */
#include <stdint.h>
#include <stdio.h>
#include "common.h"

static inline uint64_t mix(uint64_t z) {
    z ^= z >> 30; z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27; z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double unit(uint64_t seed, uint64_t n) {
    return (double)(mix(seed + (n + 1) * 0x9E3779B97F4A7C15ULL) >> 11) * 0x1.0p-53;
}

static long count_hits(uint64_t seed, long samples) {
    long hits = 0;
    for (long k = 0; k < samples; k++) {
        double x = unit(seed, 2 * (uint64_t)k), y = unit(seed, 2 * (uint64_t)k + 1);
        hits += x * x + y * y < 1.0;
    }
    return hits;
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    double times[runs];
    long hits = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds();
        hits = count_hits(12345, 20000000);
        times[r] = now_seconds() - t0;
    }
    double m = median(times, runs);
    printf("{\"kernel\":\"pi\",\"impl\":\"c\",\"hits\":%ld,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d}\n",
           hits, m, times[0], times[runs - 1], runs);
    return 0;
}
