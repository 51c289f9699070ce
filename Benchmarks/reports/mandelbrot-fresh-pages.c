/* What fresh memory costs the Mandelbrot image (1600 x 1200 UInt16 = 3 842 048 bytes, as
   malloc maps it for a new [UInt16]): mmap, then the image's pages mapped and written once,
   then munmap; thread CPU time, best and mean of 20, for five ways of mapping the pages:
     0  first touch, 4 KiB pages (no advice);
     1  what Mandelbrot.render does (kernels_prefault_for_writing): MADV_HUGEPAGE on the
        2 MiB-aligned part, then MADV_POPULATE_WRITE on the whole, then the writes;
     2  MADV_POPULATE_WRITE alone (4 KiB pages);
     3  the same bytes in a 2 MiB-aligned mapping advised huge pages as a whole (two huge
        pages; not what an Array's storage can get: it starts after malloc's and the
        array's headers, on a page already written);
     4  MADV_HUGEPAGE on the aligned part, no populate: the writes fault.
   Build and run: cc -O2 Benchmarks/reports/mandelbrot-fresh-pages.c -o fresh-pages && ./fresh-pages */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    const size_t n = 3842048, huge = (size_t)2 << 20;
    for (int mode = 0; mode < 5; mode++) {
        double best = 1e9, total = 0;
        for (int r = 0; r < 20; r++) {
            size_t length = mode == 3 ? n + huge : n;
            double t0 = cpu();
            char *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) { perror("mmap"); return 1; }
            char *q = p;
            if (mode == 3) {
                q = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
                if (madvise(q, 2 * huge, MADV_HUGEPAGE) != 0) perror("madvise");
            }
            if (mode == 1 || mode == 4) {
                uintptr_t start = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
                uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(huge - 1);
                if (end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) perror("madvise");
            }
            if (mode >= 1 && mode <= 3 && madvise(q, n, MADV_POPULATE_WRITE) != 0) perror("madvise");
            memset(q, 1, n);
            double t = cpu() - t0;
            total += t;
            if (t < best) best = t;
            if (munmap(p, length) != 0) { perror("munmap"); return 1; }
        }
        printf("mode %d: best %.3f ms, mean %.3f ms\n", mode, best * 1e3, total / 20 * 1e3);
    }
    return 0;
}
