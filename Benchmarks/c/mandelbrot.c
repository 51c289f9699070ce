/* Mandelbrot 1600 x 1200, at most 256 iterations, scalar (Benchmarks/README.md).
   Usage: mandelbrot [runs]. Prints one JSON line: sum of counts, median/min/max seconds.
   The problem and the report: mandelbrot_common.h. */
#include "mandelbrot_common.h"

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
    return mandelbrot_main(argc, argv, "c");
}
