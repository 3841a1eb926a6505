// `mpirun -np N GradFlow.Benchmarks --allgather`: the all-gather of GradFlow's communicator (P/Invoke on libmpi) at
// several message sizes, one JSON line per size from rank 0; benchmarks/mpi_allgather.c times the same calls from C,
// so the two show what the binding costs (docs/distributed.md).
using System.Diagnostics;
using System.Globalization;
using GradFlow.Training;

internal static class AllGatherBench
{
    public static void Run()
    {
        var world = Communicators.FromEnvironment();
        foreach (int n in (int[])[1, 1024, 65536, 1 << 20, 4 << 20])
        {
            var send = new float[n];
            var receive = new float[(long)n * world.Size];
            for (int i = 0; i < n; i++) send[i] = world.Rank + i;
            for (int i = 0; i < 5; i++) world.AllGather(send, receive);
            int reps = n >= 1 << 20 ? 20 : 1000;
            world.Barrier();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) world.AllGather(send, receive);
            world.Barrier();
            double us = clock.Elapsed.TotalMicroseconds / reps;
            if (receive[n] != 1) throw new InvalidOperationException("all-gather: rank 1's first value did not arrive.");
            if (world.Rank == 0)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"binding\":\"gradflow-pinvoke\",\"processes\":{world.Size},\"floats\":{n},\"microseconds\":{us:F2}}}"));
        }
    }
}
