/* Mandelbrot 1600 x 1200, at most 256 iterations, in AVX-512 intrinsics: the best C for an
   AVX-512 core (Benchmarks/README.md). Each row runs G groups of eight pixels at once (their
   dependency chains interleave); each lane runs exactly the scalar recurrence with separate
   multiplies and adds (no FMA), so the counts, and Σn = 113 169 525, are the scalar ones.
   Usage: mandelbrot_avx512 [runs]. Prints one JSON line like mandelbrot.c (mandelbrot_common.h:
   the problem and the report). */
#include <immintrin.h>
#include "mandelbrot_common.h"

enum { G = 4 };

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
    return mandelbrot_main(argc, argv, "c-avx512");
}
