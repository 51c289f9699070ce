/* The C reference for `mpi-selftest --pingpong`: the same measurement at the same thread level
 * (MPI_THREAD_FUNNELED), so the Swift layer's overhead shows side by side.
 * 8-byte one-way latency (µs, median of 10 000 round trips / 2) and 4 MiB bandwidth
 * (MB/s, bytes / (median of 50 round trips / 2)), between ranks 0 and 1. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count) {
    qsort(values, (size_t)count, sizeof *values, compare);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* Fills times (rank 0 only) with round-trip times in seconds. */
static void round_trips(int rank, size_t bytes, int warmup, int repetitions, double *times) {
    unsigned char *buffer = aligned_alloc(64, bytes);
    memset(buffer, 1, bytes);
    for (int i = 0; i < warmup + repetitions; i++) {
        if (rank == 0) {
            double start = MPI_Wtime();
            MPI_Send(buffer, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buffer, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            double elapsed = MPI_Wtime() - start;
            if (i >= warmup) times[i - warmup] = elapsed;
        } else if (rank == 1) {
            MPI_Recv(buffer, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buffer, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
    }
    free(buffer);
}

int main(int argc, char **argv) {
    int provided, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        if (rank == 0) fprintf(stderr, "pingpong: needs at least 2 ranks, got %d\n", size);
        MPI_Finalize();
        return 1;
    }
    enum { latency_reps = 10000, bandwidth_reps = 50 };
    static double latency[latency_reps], bandwidth[bandwidth_reps];
    const size_t large = (size_t)4 << 20;
    round_trips(rank, 8, 1000, latency_reps, latency);
    round_trips(rank, large, 5, bandwidth_reps, bandwidth);
    if (rank == 0) {
        printf("{\"name\":\"c.pingpong.latency_8B\",\"value\":%.3f,\"unit\":\"us\"}\n",
               median(latency, latency_reps) / 2 * 1e6);
        printf("{\"name\":\"c.pingpong.bandwidth_4MiB\",\"value\":%.3f,\"unit\":\"MB/s\"}\n",
               (double)large / (median(bandwidth, bandwidth_reps) / 2) / 1e6);
        fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
