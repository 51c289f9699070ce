/* All-pairs N-body, N = 4096, 10 steps, scalar in-order reduction (Benchmarks/README.md).
   Usage: nbody [runs]. Prints one JSON line: kinetic energy, sum |p|^2, median/min/max seconds.
   The problem, the steps and the report: nbody_common.h. */
#include <math.h>
#include "nbody_common.h"

static void accelerations(void) {
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
}

int main(int argc, char **argv) {
    return nbody_main(argc, argv, "c");
}
