/* All-pairs N-body, N = 4096, 10 steps, in AVX-512 intrinsics: the best C for an AVX-512
   core (Benchmarks/README.md). Sixteen bodies i per pass over j, as two 8-lane groups; each
   lane sums over j in order. No FMA. Two ways to compute 1/(r²·√r²), chosen at build time:
     -DEXACT: m_j / (r² · √r²) with vsqrtpd and vdivpd, correctly rounded, so every lane is
              bit-identical with nbody.c's scalar loop;
     default: vrsqrt14pd (14 bits) refined by two Newton steps y ← y·(1.5 − ½r²·y²) to a few
              ulp, then (1/√r²)³ — the spec's 1e-9 relative tolerance on the checksums allows
              it, and it avoids the slow divide and square-root units.
   Usage: nbody_avx512 [runs]. Prints one JSON line like nbody.c (nbody_common.h: the problem,
   the steps and the report). */
#include <immintrin.h>
#include "nbody_common.h"

/* m_j / (r² · √r²), per lane. */
static inline __m512d factor(__m512d r2, __m512d mj) {
#ifdef EXACT
    return _mm512_div_pd(mj, _mm512_mul_pd(r2, _mm512_sqrt_pd(r2)));
#else
    const __m512d half = _mm512_set1_pd(0.5), three_halves = _mm512_set1_pd(1.5);
    __m512d h = _mm512_mul_pd(half, r2), s = _mm512_rsqrt14_pd(r2);
    for (int k = 0; k < 2; k++)
        s = _mm512_mul_pd(s, _mm512_sub_pd(three_halves, _mm512_mul_pd(h, _mm512_mul_pd(s, s))));
    return _mm512_mul_pd(mj, _mm512_mul_pd(_mm512_mul_pd(s, s), s));
#endif
}

static void accelerations(void) {
    const __m512d e = _mm512_set1_pd(eps2);
    for (int i = 0; i < N; i += 16) {
        __m512d xa = _mm512_loadu_pd(&x[i]), ya = _mm512_loadu_pd(&y[i]), za = _mm512_loadu_pd(&z[i]);
        __m512d xb = _mm512_loadu_pd(&x[i + 8]), yb = _mm512_loadu_pd(&y[i + 8]), zb = _mm512_loadu_pd(&z[i + 8]);
        __m512d sxa = _mm512_setzero_pd(), sya = sxa, sza = sxa, sxb = sxa, syb = sxa, szb = sxa;
        for (int j = 0; j < N; j++) {
            __m512d xj = _mm512_set1_pd(x[j]), yj = _mm512_set1_pd(y[j]), zj = _mm512_set1_pd(z[j]);
            __m512d mj = _mm512_set1_pd(m[j]);
            __m512d dxa = _mm512_sub_pd(xj, xa), dya = _mm512_sub_pd(yj, ya), dza = _mm512_sub_pd(zj, za);
            __m512d dxb = _mm512_sub_pd(xj, xb), dyb = _mm512_sub_pd(yj, yb), dzb = _mm512_sub_pd(zj, zb);
            __m512d r2a = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(dxa, dxa),
                _mm512_mul_pd(dya, dya)), _mm512_mul_pd(dza, dza)), e);
            __m512d r2b = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(dxb, dxb),
                _mm512_mul_pd(dyb, dyb)), _mm512_mul_pd(dzb, dzb)), e);
            __m512d fa = factor(r2a, mj), fb = factor(r2b, mj);
            sxa = _mm512_add_pd(sxa, _mm512_mul_pd(dxa, fa));
            sya = _mm512_add_pd(sya, _mm512_mul_pd(dya, fa));
            sza = _mm512_add_pd(sza, _mm512_mul_pd(dza, fa));
            sxb = _mm512_add_pd(sxb, _mm512_mul_pd(dxb, fb));
            syb = _mm512_add_pd(syb, _mm512_mul_pd(dyb, fb));
            szb = _mm512_add_pd(szb, _mm512_mul_pd(dzb, fb));
        }
        _mm512_storeu_pd(&ax[i], sxa); _mm512_storeu_pd(&ay[i], sya); _mm512_storeu_pd(&az[i], sza);
        _mm512_storeu_pd(&ax[i + 8], sxb); _mm512_storeu_pd(&ay[i + 8], syb); _mm512_storeu_pd(&az[i + 8], szb);
    }
}

int main(int argc, char **argv) {
    return nbody_main(argc, argv, "c-avx512");
}
