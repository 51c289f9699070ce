/* What the Swift kernels (Sources/Kernels) need from the C compiler and Swift cannot say:
   the vector width the module is compiled for, and a multiply-add that is fused exactly when
   the target has FMA. Swift compiles these inline functions with the same target CPU as the
   Swift code that calls them (plain `swift build`: x86-64 baseline, SSE2; with
   `-Xswiftc -target-cpu -Xswiftc native`: this machine's), so the choice is made at build
   time and costs nothing at run time. */
#ifndef KERNELS_SUPPORT_H
#define KERNELS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* The widest double vector the build's target has: 512 (AVX-512F), 256 (AVX) or 128. */
#if defined(__AVX512F__)
#define KERNELS_VECTOR_BITS 512
#elif defined(__AVX__)
#define KERNELS_VECTOR_BITS 256
#else
#define KERNELS_VECTOR_BITS 128
#endif

/* 1 when the target has fused multiply-add instructions. */
#if defined(__FMA__) || defined(__aarch64__)
#define KERNELS_HAS_FMA 1
#else
#define KERNELS_HAS_FMA 0
#endif

typedef double kernels_double8 __attribute__((ext_vector_type(8)));
typedef double kernels_double4 __attribute__((ext_vector_type(4)));
typedef long long kernels_long8 __attribute__((ext_vector_type(8)));
typedef short kernels_short8 __attribute__((ext_vector_type(8)));
typedef unsigned long long kernels_ulong8 __attribute__((ext_vector_type(8)));

/* a·b + c, one rounding (fused) when the target has FMA, two otherwise (LLVM's fmuladd).
   Only for sums that are exact either way (MatrixMultiply's integer matrices): Swift's
   `addingProduct` always fuses, and without FMA hardware it calls libm's fma per lane. */
static inline __attribute__((always_inline))
kernels_double8 kernels_muladd8(kernels_double8 a, kernels_double8 b, kernels_double8 c) {
#pragma clang fp contract(on)
    return a * b + c;
}

static inline __attribute__((always_inline))
kernels_double4 kernels_muladd4(kernels_double4 a, kernels_double4 b, kernels_double4 c) {
#pragma clang fp contract(on)
    return a * b + c;
}

/* 2·p + c with one rounding: one fused multiply-add when the target has FMA, else (p + p) + c.
   Both give the same bits, as p + p = 2·p exactly (a doubling only moves the exponent), so this
   is not a contraction of a rounded product: Mandelbrot (Sources/Kernels/Mandelbrot.swift)
   computes its 2·zr·zi + ci as kernels_twice_plus8(zr·zi, ci), one operation fewer per step
   with FMA. */
static inline __attribute__((always_inline))
kernels_double8 kernels_twice_plus8(kernels_double8 p, kernels_double8 c) {
#if KERNELS_HAS_FMA
    return __builtin_elementwise_fma((kernels_double8)2.0, p, c);
#else
    return (p + p) + c;
#endif
}

/* Mandelbrot's lane masks and iteration counts (Sources/Kernels/Mandelbrot.swift): a mask is
   a SIMDMask of eight 64-bit lanes (a compare of SIMD8<Double>), all ones where true; the
   counts are eight 16-bit lanes. Written in C because Swift's SIMD conversions and
   `replacing(with:where:)` go lane by lane; here each is one vector operation, and with
   AVX-512 a mask stays in a mask register: the select is one masked add on a 128-bit
   register, the compare of counts writes a mask register. */

/* Per lane, a where mask is true, else b. */
static inline __attribute__((always_inline))
kernels_short8 kernels_select8_short(kernels_long8 mask, kernels_short8 a, kernels_short8 b) {
    return __builtin_convertvector(mask, kernels_short8) < 0 ? a : b;
}

/* The mask of the lanes where a == b. */
static inline __attribute__((always_inline))
kernels_long8 kernels_equal8_short(kernels_short8 a, kernels_short8 b) {
    return __builtin_convertvector(a == b, kernels_long8);
}

/* x, its value hidden from the optimiser (with AVX-512; elsewhere x itself). Mandelbrot counts
   with kernels_select8_short(active, n + one, n): were `one` a known 1, LLVM would rewrite
   the select as n − active, which AVX-512 does in two instructions (vpmovm2w turns the mask
   register into a vector, vpsubw) instead of one masked vpaddw. */
static inline __attribute__((always_inline))
kernels_short8 kernels_opaque8_short(kernels_short8 x) {
#if defined(__AVX512F__)
    __asm__("" : "+v"(x));
#endif
    return x;
}

/* MonteCarloPi's hit count (Sources/Kernels/MonteCarloPi.swift), the same two tools on 64-bit
   lanes: per lane, a where mask is true (all ones), else b; and x with its value hidden from
   the optimiser (with AVX-512; elsewhere x itself). With them the count of the lanes under a
   compare's mask is one masked vpaddq (n + one where the mask is true), and the compare of a
   sum with one of its terms stays a compare (LLVM would otherwise see the carry-out idiom
   a + b < a and rewrite it as ~a < b, one more instruction). */
static inline __attribute__((always_inline))
kernels_ulong8 kernels_select8_ulong(kernels_long8 mask, kernels_ulong8 a, kernels_ulong8 b) {
    return mask < 0 ? a : b;
}

static inline __attribute__((always_inline))
kernels_ulong8 kernels_opaque8_ulong(kernels_ulong8 x) {
#if defined(__AVX512F__)
    __asm__("" : "+v"(x));
#endif
    return x;
}

/* An estimate of 1/√x per lane for positive normal x, with a relative error below
   2^-KERNELS_RSQRT_ESTIMATE_BITS: AVX-512's vrsqrt14pd (2^-14) when the target has it, else
   the integer estimate 0x5FE6EB50C7B537A9 − bits/2 (3.4 %), which needs two more Newton
   steps to reach double precision. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define KERNELS_RSQRT_ESTIMATE_BITS 14
static inline __attribute__((always_inline))
kernels_double8 kernels_rsqrt_estimate8(kernels_double8 x) {
    return (kernels_double8)_mm512_rsqrt14_pd((__m512d)x);
}
#else
#define KERNELS_RSQRT_ESTIMATE_BITS 4
static inline __attribute__((always_inline))
kernels_double8 kernels_rsqrt_estimate8(kernels_double8 x) {
    typedef unsigned long long kernels_u64x8 __attribute__((ext_vector_type(8)));
    kernels_u64x8 bits = (kernels_u64x8)x;
    return (kernels_double8)((kernels_u64x8)0x5FE6EB50C7B537A9ull - (bits >> 1));
}
#endif

/* Asks Linux to back the 2 MiB-aligned part of [p, p + bytes) with transparent huge pages
   (madvise MADV_HUGEPAGE; the system's setting is usually "madvise", which gives them only to
   ranges that ask, as NumPy does for its large arrays). For a buffer written from scratch —
   MatrixMultiply's product, the packed panel of B — first touching 8 MiB in 4 KiB pages costs
   2048 page faults, a few milliseconds. Advice only: 0 when the range was advised or holds no
   whole huge page, else madvise's -1 (errno set), and the range keeps its normal pages —
   slower to fill, nothing else. Elsewhere than Linux, 0 and nothing done. */
static inline int kernels_advise_huge_pages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (end <= start) return 0;
    return madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
    return 0;
#endif
}

/* Asks Linux to map the pages of [p, p + bytes) for writing now, in one call, when the range
   is fresh memory about to be written from scratch (Mandelbrot's image: 3.7 MiB, 940 pages):
   one madvise(MADV_POPULATE_WRITE) costs less than taking the 940 page faults one by one in
   the middle of the kernel's stores, and the 2 MiB-aligned part is first advised huge pages
   (kernels_advise_huge_pages). Only for ranges of at least 1 MiB whose last whole page is not
   resident (mincore): memory that malloc hands out again is mapped already, and the call
   would only walk its pages. The contents are unchanged. Advice only: 0 when nothing was to
   be done or the pages were mapped, else -1 (errno set; before Linux 5.14 MADV_POPULATE_WRITE
   is EINVAL) and the pages are mapped by the first writes, as without it. Elsewhere than
   Linux, 0 and nothing done. */
static inline int kernels_prefault_for_writing(void *p, size_t bytes) {
#if defined(__linux__)
    const long pageSize = sysconf(_SC_PAGESIZE);
    if (pageSize <= 0) return -1;
    const uintptr_t page = (uintptr_t)pageSize;
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~(page - 1);
    if (end <= start || end - start < ((uintptr_t)1 << 20)) return 0;
    unsigned char resident = 0;
    if (mincore((void *)(end - page), page, &resident) != 0) return -1;
    if (resident & 1) return 0;
    (void)kernels_advise_huge_pages(p, bytes);
#if defined(MADV_POPULATE_WRITE)
    return madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#else
    return madvise((void *)start, end - start, 23); /* MADV_POPULATE_WRITE, Linux 5.14 */
#endif
#else
    (void)p;
    (void)bytes;
    return 0;
#endif
}

#endif
