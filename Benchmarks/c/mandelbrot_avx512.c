/* Mandelbrot 1600 x 1200, at most 256 iterations, in AVX-512 intrinsics: the best C for an
   AVX-512 core (Benchmarks/README.md). Each row runs G groups of eight pixels at once (their
   dependency chains interleave); each lane runs exactly the scalar recurrence with separate
   multiplies and adds (no FMA), so the counts, and Σn = 113 169 525, are the scalar ones.
   Usage: mandelbrot_avx512 [runs]. Prints one JSON line like mandelbrot.c. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include "common.h"

enum { W = 1600, H = 1200, MAXIT = 256, G = 4 };
static uint16_t counts[W * H];

static void render(void) {
    const double dx = 3.0 / W;
    const __m512d four = _mm512_set1_pd(4.0), two = _mm512_set1_pd(2.0);
    const __m512d lane = _mm512_set_pd(7, 6, 5, 4, 3, 2, 1, 0);
    for (int py = 0; py < H; py++) {
        const __m512d ci = _mm512_set1_pd(-1.2 + py * (2.4 / H));
        for (int px = 0; px < W; px += 8 * G) {
            __m512d cr[G], zr[G], zi[G];
            __m512i n[G];
            __mmask8 active[G];
            for (int g = 0; g < G; g++) {
                __m512d x = _mm512_add_pd(_mm512_set1_pd((double)(px + 8 * g)), lane);
                cr[g] = _mm512_add_pd(_mm512_set1_pd(-2.0), _mm512_mul_pd(x, _mm512_set1_pd(dx)));
                zr[g] = zi[g] = _mm512_setzero_pd();
                n[g] = _mm512_setzero_si512();
                active[g] = 0xFF;
            }
            for (int it = 0; it < MAXIT; it++) {
                unsigned any = 0;
                for (int g = 0; g < G; g++) {
                    __m512d zr2 = _mm512_mul_pd(zr[g], zr[g]), zi2 = _mm512_mul_pd(zi[g], zi[g]);
                    active[g] = _mm512_mask_cmp_pd_mask(active[g], _mm512_add_pd(zr2, zi2), four,
                                                       _CMP_LE_OQ);
                    any |= active[g];
                    n[g] = _mm512_mask_sub_epi64(n[g], active[g], n[g], _mm512_set1_epi64(-1));
                    zi[g] = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(two, zr[g]), zi[g]), ci);
                    zr[g] = _mm512_add_pd(_mm512_sub_pd(zr2, zi2), cr[g]);
                }
                if (!any) break;
            }
            for (int g = 0; g < G; g++) {
                int left = W - (px + 8 * g);
                if (left <= 0) break;
                __m128i c16 = _mm512_cvtepi64_epi16(n[g]);
                if (left >= 8) _mm_storeu_si128((__m128i *)&counts[py * W + px + 8 * g], c16);
                else _mm_mask_storeu_epi16(&counts[py * W + px + 8 * g], (__mmask8)((1u << left) - 1), c16);
            }
        }
    }
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    long sum = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        render();
        times[r] = now_seconds() - t0;
        cpus[r] = cpu_seconds() - c0;
    }
    for (int i = 0; i < W * H; i++) sum += counts[i];
    double m = median(times, runs);
    printf("{\"kernel\":\"mandelbrot\",\"impl\":\"c-avx512\",\"sum\":%ld,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           sum, m, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
