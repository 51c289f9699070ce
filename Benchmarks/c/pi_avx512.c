/* Monte Carlo pi, 20 000 000 samples, seed 12345, in AVX-512 intrinsics: the best C for an
   AVX-512 core, same definition and hits as pi.c (Benchmarks/README.md). Eight Philox blocks
   per vector, one per 64-bit lane: vpmuludq multiplies the low 32 bits of each lane into the
   full 64-bit product, so hi() is a shift and lo() needs no mask until the output (the
   garbage above bit 31 of c1 and c3 only reaches bits that later multiplies ignore).
   Usage: pi_avx512 [runs]. Prints one JSON line like pi.c (pi_common.h: the problem, the
   scalar sample and the report). */
#include <immintrin.h>
#include "pi_common.h"

enum { U = 2 }; /* vectors of eight blocks per step, interleaved */

/* Hits (0 or 1 per lane, as a mask) of the samples x = low 32 bits of a, y = of b. */
static inline __mmask8 hits(__m512i a, __m512i b) {
    __m512i xx = _mm512_mul_epu32(a, a), yy = _mm512_mul_epu32(b, b);
    return _mm512_cmp_epu64_mask(_mm512_add_epi64(xx, yy), xx, _MM_CMPINT_NLT);
}

static long count_hits(uint64_t seed, long samples) {
    long blocks = samples / 2, hits_total = 0, b = 0;
    __m512i k0[10], k1[10];
    for (int r = 0; r < 10; r++) {
        k0[r] = _mm512_set1_epi64((uint32_t)((uint32_t)seed + (uint32_t)r * 0x9E3779B9u));
        k1[r] = _mm512_set1_epi64((uint32_t)((uint32_t)(seed >> 32) + (uint32_t)r * 0xBB67AE85u));
    }
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53u), m1 = _mm512_set1_epi64(0xCD9E8D57u);
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    for (; blocks - b >= 8 * U; b += 8 * U) {
        __m512i c0[U], c1[U], c2[U], c3[U];
        for (int u = 0; u < U; u++) {
            __m512i counter = _mm512_add_epi64(_mm512_set1_epi64(b + 8 * u), lane);
            c0[u] = counter;                      /* low 32 bits used */
            c1[u] = _mm512_srli_epi64(counter, 32);
            c2[u] = c3[u] = _mm512_setzero_si512();
        }
        for (int r = 0; r < 10; r++)
            for (int u = 0; u < U; u++) {
                __m512i p0 = _mm512_mul_epu32(c0[u], m0), p1 = _mm512_mul_epu32(c2[u], m1);
                c0[u] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[u], k0[r], 0x96);
                c2[u] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[u], k1[r], 0x96);
                c1[u] = p1;
                c3[u] = p0;
            }
        for (int u = 0; u < U; u++)
            hits_total += __builtin_popcount(hits(c0[u], c1[u])) + __builtin_popcount(hits(c2[u], c3[u]));
    }
    for (; b < blocks; b++) {
        uint32_t c[4];
        philox((uint64_t)b, seed, c);
        hits_total += hit(c[0], c[1]) + hit(c[2], c[3]);
    }
    if (samples % 2) {
        uint32_t c[4];
        philox((uint64_t)blocks, seed, c);
        hits_total += hit(c[0], c[1]);
    }
    return hits_total;
}

static void run(void) {
    /* Read through volatile: the compiler cannot compute the answer at build time. */
    static volatile uint64_t volatile_seed = SEED;
    static volatile long volatile_samples = SAMPLES;
    uint64_t seed = volatile_seed;
    long samples = volatile_samples;
    /* The work stays between the two clock reads. */
    __asm__ volatile("" : "+r"(seed), "+r"(samples) : : "memory");
    pi_hits = count_hits(seed, samples);
    __asm__ volatile("" : : "r"(pi_hits) : "memory");
}

int main(int argc, char **argv) {
    return pi_main(argc, argv, "c-avx512");
}
