/* Mandelbrot 1600 x 1200, at most 256 iterations, scalar (Benchmarks/README.md).
   Usage: mandelbrot [runs]. Prints one JSON line: sum of counts, median/min/max seconds. */
#include <stdint.h>
#include <stdio.h>
#include "common.h"

enum { W = 1600, H = 1200, MAXIT = 256 };
static uint16_t counts[W * H];

static void render(void) {
    for (int py = 0; py < H; py++) {
        double ci = -1.2 + py * (2.4 / H);
        for (int px = 0; px < W; px++) {
            double cr = -2.0 + px * (3.0 / W), zr = 0.0, zi = 0.0;
            int n = 0;
            while (n < MAXIT) {
                double zr2 = zr * zr, zi2 = zi * zi;
                if (zr2 + zi2 > 4.0) break;
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                n++;
            }
            counts[py * W + px] = (uint16_t)n;
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
    printf("{\"kernel\":\"mandelbrot\",\"impl\":\"c\",\"sum\":%ld,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           sum, m, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
