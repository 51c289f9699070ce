/* Monte Carlo pi, 20 000 000 samples, seed 12345, scalar (the problem: pi_common.h,
   Benchmarks/README.md).
   Usage: pi [runs]. Prints one JSON line: hits, median/min/max wall seconds. */
#include "pi_common.h"

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

static void run(void) {
    pi_hits = count_hits(SEED, SAMPLES);
}

int main(int argc, char **argv) {
    return pi_main(argc, argv, "c");
}
