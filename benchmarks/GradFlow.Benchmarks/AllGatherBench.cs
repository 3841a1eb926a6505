// `mpirun -np N GradFlow.Benchmarks --allgather`: the all-gather of GradFlow's communicator (P/Invoke on libmpi) at
// several message sizes, one JSON line per size from rank 0; benchmarks/mpi_allgather.c times the same calls from C,
// so the two show what the binding costs (docs/distributed.md). Then the ordered reduction of mlp-wide's gradient without
// compute, blocking in one piece (an all-to-all and an all-gather, as before the buckets) against non-blocking in its 3 buckets
// (DataParallel's calls), interleaved.
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
        Reduction(world);
    }

    /// <summary>mlp-wide's 2,913,290 gradients (784-1024x3-10), one micro-batch per process: the whole flat gradient at once, or its buckets.</summary>
    private static void Reduction(ICommunicator world)
    {
        int size = world.Size;
        int[] buckets = [1024 * 10 + 10 + 1024 * 1024 + 1024, 1024 * 1024 + 1024, 784 * 1024 + 1024]; // as DataParallel forms them at 1 MiB
        int total = buckets.Sum();
        var reduce = world.Duplicate();
        var gather = world.Duplicate();
        int Slice(int n) => (n + size - 1) / size;
        var send = new float[buckets.Sum(b => Slice(b) * size)];
        var receive = new float[send.Length];
        var sums = new float[buckets.Sum(Slice)];
        var gathered = new float[sums.Length * size];
        void Blocking()
        {
            int s = Slice(total);
            world.AllToAll(send.AsSpan(0, s * size), receive.AsSpan(0, s * size));
            world.AllGather(sums.AsSpan(0, s), gathered.AsSpan(0, s * size));
        }
        void Bucketed()
        {
            var a = new ICommunicationRequest[buckets.Length];
            var g = new ICommunicationRequest[buckets.Length];
            for (int b = 0, at = 0; b < buckets.Length; at += Slice(buckets[b]) * size, b++)
                a[b] = reduce.StartAllToAll(send.AsMemory(at, Slice(buckets[b]) * size), receive.AsMemory(at, Slice(buckets[b]) * size));
            for (int b = 0, at = 0; b < buckets.Length; at += Slice(buckets[b]), b++)
            {
                a[b].Wait();
                g[b] = gather.StartAllGather(sums.AsMemory(at, Slice(buckets[b])), gathered.AsMemory(at * size, Slice(buckets[b]) * size));
            }
            foreach (var r in g) r.Wait();
        }
        double[] blocking = new double[7], bucketed = new double[7];
        Blocking();
        Bucketed();
        for (int i = 0; i < blocking.Length; i++)
        {
            foreach (bool b in (bool[])[false, true])
            {
                world.Barrier();
                var clock = Stopwatch.StartNew();
                for (int rep = 0; rep < 5; rep++)
                    if (b) Bucketed();
                    else Blocking();
                world.Barrier();
                (b ? bucketed : blocking)[i] = clock.Elapsed.TotalMicroseconds / 5;
            }
        }
        Array.Sort(blocking);
        Array.Sort(bucketed);
        if (world.Rank == 0)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"reduction\":\"mlp-wide\",\"processes\":{size},\"floats\":{total},\"blocking_median_us\":{blocking[3]:F0},\"buckets_median_us\":{bucketed[3]:F0}}}"));
    }
}
