/* The C side of `GradFlow.Benchmarks --allgather`: the same MPI_Allgather calls, sizes and repetitions,
   one JSON line per size from rank 0. Build: mpicc -O2 -o /tmp/mpi_allgather benchmarks/mpi_allgather.c */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int sizes[] = {1, 1024, 65536, 1 << 20, 4 << 20};
    for (int s = 0; s < 5; s++) {
        int n = sizes[s];
        float *send = malloc(sizeof(float) * n), *recv = malloc(sizeof(float) * (size_t)n * size);
        for (int i = 0; i < n; i++) send[i] = rank + i;
        for (int i = 0; i < 5; i++) MPI_Allgather(send, n, MPI_FLOAT, recv, n, MPI_FLOAT, MPI_COMM_WORLD);
        int reps = n >= (1 << 20) ? 20 : 1000;
        MPI_Barrier(MPI_COMM_WORLD);
        double t = MPI_Wtime();
        for (int i = 0; i < reps; i++) MPI_Allgather(send, n, MPI_FLOAT, recv, n, MPI_FLOAT, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double us = (MPI_Wtime() - t) * 1e6 / reps;
        if (rank == 0) printf("{\"binding\":\"c\",\"processes\":%d,\"floats\":%d,\"microseconds\":%.2f}\n", size, n, us);
        free(send);
        free(recv);
    }
    MPI_Finalize();
    return 0;
}
