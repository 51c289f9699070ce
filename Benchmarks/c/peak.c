/* The core's measured peak: its clock, and double-precision GFLOP/s of a tight loop of
   independent vector operations at each width (the ceiling the kernels are reported against).
   - clock: a chain of dependent 64-bit integer adds (one cycle each) timed for ~0.2 s;
   - fma{128,256,512}: 12 independent accumulator chains of fused multiply-adds (2 flops per
     lane) — enough to cover the FMA latency on two pipes;
   - muladd512: the same with separate multiplies and adds (what the no-FMA kernels can use).
   Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID). Each figure is the best of `runs` (default 5) repetitions: the machine is shared, and the
   best is the closest to an idle core. Usage: peak [runs]. Prints one JSON line. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU time of this thread: the figures are per cycle the core gave us, not per wall second
   (on a shared machine the scheduler takes the core away for whole slices). */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double clock_hz(void) {
    const long iterations = 400000000;
    uint64_t value = 0;
    double t0 = now_seconds();
    for (long i = 0; i < iterations; i++) __asm__ volatile("add $1, %0" : "+r"(value));
    double t = now_seconds() - t0;
    return iterations / t;
}

/* Twelve independent accumulators in registers (named, so the compiler cannot spill an array),
   and an empty asm that claims to read and write them, so the loop cannot be folded. */
#define CHAINS 12
#define TOUCH(a) __asm__ volatile("" : "+v"(a##0), "+v"(a##1), "+v"(a##2), "+v"(a##3), "+v"(a##4), \
    "+v"(a##5), "+v"(a##6), "+v"(a##7), "+v"(a##8), "+v"(a##9), "+v"(a##10), "+v"(a##11))
#define DEFINE_FMA(name, type, set1, fma, bits)                                              \
    static double name(long iterations) {                                                     \
        type x = set1(1.0000001), y = set1(0.9999999);                                        \
        type a0 = set1(0), a1 = set1(1), a2 = set1(2), a3 = set1(3), a4 = set1(4),            \
             a5 = set1(5), a6 = set1(6), a7 = set1(7), a8 = set1(8), a9 = set1(9),            \
             a10 = set1(10), a11 = set1(11);                                                  \
        double t0 = now_seconds();                                                            \
        for (long i = 0; i < iterations; i++) {                                               \
            a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y); a3 = fma(a3, x, y);   \
            a4 = fma(a4, x, y); a5 = fma(a5, x, y); a6 = fma(a6, x, y); a7 = fma(a7, x, y);   \
            a8 = fma(a8, x, y); a9 = fma(a9, x, y); a10 = fma(a10, x, y); a11 = fma(a11, x, y); \
            TOUCH(a);                                                                         \
        }                                                                                     \
        return 2.0 * (bits / 64) * CHAINS * (double)iterations / (now_seconds() - t0) * 1e-9; \
    }
DEFINE_FMA(fma128, __m128d, _mm_set1_pd, _mm_fmadd_pd, 128)
DEFINE_FMA(fma256, __m256d, _mm256_set1_pd, _mm256_fmadd_pd, 256)
DEFINE_FMA(fma512, __m512d, _mm512_set1_pd, _mm512_fmadd_pd, 512)

/* Six chains multiply, six add: one flop per lane per operation (the no-FMA kernels' peak). */
static double muladd512(long iterations) {
    __m512d x = _mm512_set1_pd(1.0000001), y = _mm512_set1_pd(1e-9);
    __m512d a0 = x, a1 = y, a2 = x, a3 = y, a4 = x, a5 = y, a6 = x, a7 = y, a8 = x, a9 = y,
            a10 = x, a11 = y;
    double t0 = now_seconds();
    for (long i = 0; i < iterations; i++) {
        a0 = _mm512_mul_pd(a0, x); a1 = _mm512_add_pd(a1, y);
        a2 = _mm512_mul_pd(a2, x); a3 = _mm512_add_pd(a3, y);
        a4 = _mm512_mul_pd(a4, x); a5 = _mm512_add_pd(a5, y);
        a6 = _mm512_mul_pd(a6, x); a7 = _mm512_add_pd(a7, y);
        a8 = _mm512_mul_pd(a8, x); a9 = _mm512_add_pd(a9, y);
        a10 = _mm512_mul_pd(a10, x); a11 = _mm512_add_pd(a11, y);
        TOUCH(a);
    }
    return 8.0 * CHAINS * (double)iterations / (now_seconds() - t0) * 1e-9;
}

static double best(double (*f)(long), long iterations, int runs) {
    double b = 0;
    for (int r = 0; r < runs; r++) { double v = f(iterations); if (v > b) b = v; }
    return b;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    double hz = 0;
    for (int r = 0; r < runs; r++) { double v = clock_hz(); if (v > hz) hz = v; }
    const long it = 20000000;
    double f128 = best(fma128, it, runs), f256 = best(fma256, it, runs);
    double f512 = best(fma512, it, runs), ma512 = best(muladd512, it, runs);
    printf("{\"kernel\":\"peak\",\"impl\":\"c\",\"clock_ghz\":%.3f,\"fma128_gflops\":%.2f,"
           "\"fma256_gflops\":%.2f,\"fma512_gflops\":%.2f,\"muladd512_gflops\":%.2f,"
           "\"fma512_flops_per_cycle\":%.2f,\"muladd512_flops_per_cycle\":%.2f}\n",
           hz * 1e-9, f128, f256, f512, ma512, f512 * 1e9 / hz, ma512 * 1e9 / hz);
    return 0;
}
