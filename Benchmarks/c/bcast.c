/* The C reference for `swiftmp bench broadcast` under mpirun: MPI_Bcast of the same bytes
 * (default 1 GiB) from rank 0 to every other rank, each repetition into freshly allocated
 * memory on the receivers (as a broadcast's copy is new memory), each receiver then reading
 * one byte per 4 KiB page. Prints one JSON line: the median seconds from a barrier before the
 * broadcast to a barrier after every rank read it (rank 0's clock).
 *
 *   mpicc -O2 -o bcast Benchmarks/c/bcast.c && Scripts/mpirun.sh -np 3 ./bcast [bytes] [repetitions] */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* MPI counts are int: a broadcast over 2 GiB goes in pieces of at most 1 GiB. */
static void broadcast(unsigned char *buffer, size_t bytes) {
    const size_t piece = (size_t)1 << 30;
    for (size_t offset = 0; offset < bytes; offset += piece) {
        size_t count = bytes - offset < piece ? bytes - offset : piece;
        MPI_Bcast(buffer + offset, (int)count, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)1 << 30;
    int repetitions = argc > 2 ? atoi(argv[2]) : 3;
    if (bytes == 0 || repetitions < 1 || repetitions > 1000) {
        if (rank == 0) fprintf(stderr, "usage: bcast [bytes > 0] [repetitions 1-1000]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    unsigned char *source = NULL;
    if (rank == 0) {
        source = malloc(bytes);
        if (!source) MPI_Abort(MPI_COMM_WORLD, 1);
        for (size_t i = 0; i < bytes; i++) source[i] = (unsigned char)(i * 7);
    }
    double times[1000];
    uint64_t checksum = 0;
    for (int r = 0; r < repetitions; r++) {
        unsigned char *buffer = source;
        if (rank != 0) {
            buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (buffer == MAP_FAILED) MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        broadcast(buffer, bytes);
        uint64_t sum = 0;
        if (rank != 0)
            for (size_t i = 0; i < bytes; i += 4096) sum += buffer[i];
        MPI_Barrier(MPI_COMM_WORLD);
        times[r] = MPI_Wtime() - start;
        checksum += sum;
        if (rank != 0) munmap(buffer, bytes);
    }
    uint64_t total = 0;
    MPI_Reduce(&checksum, &total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        uint64_t expected = 0;
        for (size_t i = 0; i < bytes; i += 4096) expected += source[i];
        expected *= (uint64_t)repetitions * (uint64_t)(size - 1);
        qsort(times, (size_t)repetitions, sizeof *times, compare);
        double median = repetitions % 2 ? times[repetitions / 2] : (times[repetitions / 2 - 1] + times[repetitions / 2]) / 2;
        printf("{\"name\":\"c.mpi_bcast.%zuB\",\"value\":%.6f,\"unit\":\"s\",\"min\":%.6f,\"max\":%.6f,\"ranks\":%d,\"correct\":%s}\n",
               bytes, median, times[0], times[repetitions - 1], size, total == expected ? "true" : "false");
        free(source);
    }
    MPI_Finalize();
    return 0;
}
