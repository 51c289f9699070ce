/* The N-body problem of nbody.c (scalar) and nbody_avx512.c (AVX-512 intrinsics): N = 4096
   bodies, 10 steps (Benchmarks/README.md). The program that includes this header defines
   accelerations(), the only part that differs; this header holds the rest: the state, the
   initial positions, the steps, the timed runs, the checksums and the JSON line. */
#ifndef NBODY_COMMON_H
#define NBODY_COMMON_H
#include <stdio.h>
#include "common.h"

enum { N = 4096, STEPS = 10 };
static const double eps2 = 1e-3 * 1e-3, dt = 1e-3;
static double x[N], y[N], z[N], vx[N], vy[N], vz[N], m[N], ax[N], ay[N], az[N];

/* Defined by the including program: into ax[i], ay[i], az[i], for every body i, the sum over j
   in order of (p_j - p_i) * m_j / (r^2 * sqrt(r^2)), with r^2 = |p_j - p_i|^2 + eps2. */
static void accelerations(void);

static void simulate(void) {
    for (int i = 0; i < N; i++) {
        x[i] = (double)((7919L * i) % 4096) / 4096.0 - 0.5;
        y[i] = (double)((6271L * i) % 4096) / 4096.0 - 0.5;
        z[i] = (double)((3319L * i) % 4096) / 4096.0 - 0.5;
        vx[i] = vy[i] = vz[i] = 0.0;
        m[i] = 1.0 / N;
    }
    for (int s = 0; s < STEPS; s++) {
        accelerations();
        for (int i = 0; i < N; i++) {
            vx[i] += ax[i] * dt; vy[i] += ay[i] * dt; vz[i] += az[i] * dt;
            x[i] += vx[i] * dt; y[i] += vy[i] * dt; z[i] += vz[i] * dt;
        }
    }
}

/* Times argv[1] (default 1) simulations and prints the JSON line with "impl": impl. */
static int nbody_main(int argc, char **argv, const char *impl) {
    int runs = run_count(argc, argv);
    double times[runs], cpus[runs];
    time_runs(simulate, runs, times, cpus);
    double kinetic = 0.0, squares = 0.0;
    for (int i = 0; i < N; i++) {
        kinetic += 0.5 * m[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]);
        squares += x[i] * x[i] + y[i] * y[i] + z[i] * z[i];
    }
    printf("{\"kernel\":\"nbody\",\"impl\":\"%s\",\"kinetic\":%.17g,\"squares\":%.17g,", impl, kinetic, squares);
    print_times(times, cpus, runs);
    return 0;
}
#endif
