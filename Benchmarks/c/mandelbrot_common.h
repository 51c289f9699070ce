/* The Mandelbrot problem of mandelbrot.c (scalar) and mandelbrot_avx512.c (AVX-512
   intrinsics): 1600 x 1200 pixels, at most 256 iterations (Benchmarks/README.md). The program
   that includes this header defines render(), the only part that differs; this header holds
   the rest: the counts, the timed runs, the checksum and the JSON line. */
#ifndef MANDELBROT_COMMON_H
#define MANDELBROT_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include "common.h"

enum { W = 1600, H = 1200, MAXIT = 256 };
static uint16_t counts[W * H];

/* Defined by the including program: into counts[py * W + px], the number of iterations
   z <- z^2 + c from z = 0 (at most MAXIT) before |z|^2 > 4, for the pixel's
   c = (-2.0 + px * (3.0 / W)) + (-1.2 + py * (2.4 / H)) i. */
static void render(void);

/* Times argv[1] (default 1) renderings and prints the JSON line with "impl": impl. */
static int mandelbrot_main(int argc, char **argv, const char *impl) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    time_runs(render, runs, times, cpus);
    long sum = 0;
    for (int i = 0; i < W * H; i++) sum += counts[i];
    printf("{\"kernel\":\"mandelbrot\",\"impl\":\"%s\",\"sum\":%ld,", impl, sum);
    print_times(times, cpus, runs);
    return 0;
}
#endif
