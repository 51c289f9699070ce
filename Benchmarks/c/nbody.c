/* All-pairs N-body, N = 4096, 10 steps, scalar in-order reduction (Benchmarks/README.md).
   Usage: nbody [runs]. Prints one JSON line: kinetic energy, sum |p|^2, median/min/max seconds. */
#include <math.h>
#include <stdio.h>
#include "common.h"

enum { N = 4096, STEPS = 10 };
static double x[N], y[N], z[N], vx[N], vy[N], vz[N], m[N], ax[N], ay[N], az[N];

static void simulate(void) {
    const double eps2 = 1e-3 * 1e-3, dt = 1e-3;
    for (int i = 0; i < N; i++) {
        x[i] = (double)((7919L * i) % 4096) / 4096.0 - 0.5;
        y[i] = (double)((6271L * i) % 4096) / 4096.0 - 0.5;
        z[i] = (double)((3319L * i) % 4096) / 4096.0 - 0.5;
        vx[i] = vy[i] = vz[i] = 0.0;
        m[i] = 1.0 / N;
    }
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++) {
            double sx = 0.0, sy = 0.0, sz = 0.0;
            for (int j = 0; j < N; j++) {
                double dx = x[j] - x[i], dy = y[j] - y[i], dz = z[j] - z[i];
                double r2 = dx * dx + dy * dy + dz * dz + eps2;
                double f = m[j] / (r2 * sqrt(r2));
                sx += dx * f; sy += dy * f; sz += dz * f;
            }
            ax[i] = sx; ay[i] = sy; az[i] = sz;
        }
        for (int i = 0; i < N; i++) {
            vx[i] += ax[i] * dt; vy[i] += ay[i] * dt; vz[i] += az[i] * dt;
            x[i] += vx[i] * dt; y[i] += vy[i] * dt; z[i] += vz[i] * dt;
        }
    }
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    for (int r = 0; r < runs; r++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        simulate();
        times[r] = now_seconds() - t0;
        cpus[r] = cpu_seconds() - c0;
    }
    double kinetic = 0.0, squares = 0.0;
    for (int i = 0; i < N; i++) {
        kinetic += 0.5 * m[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]);
        squares += x[i] * x[i] + y[i] * y[i] + z[i] * z[i];
    }
    double md = median(times, runs);
    printf("{\"kernel\":\"nbody\",\"impl\":\"c\",\"kinetic\":%.17g,\"squares\":%.17g,\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"runs\":%d,\"cpu\":%.6f}\n",
           kinetic, squares, md, times[0], times[runs - 1], runs, median(cpus, runs));
    return 0;
}
