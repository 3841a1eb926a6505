using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// A test that sets the process-wide kernel thread count from a thread of its own for seconds: alone, so no other test's
/// count (or its snapshot and restore of the count) changes under it, or is left changed by it.
/// </summary>
[CollectionDefinition("ThreadCountChanges", DisableParallelization = true)]
public sealed class ThreadCountChangesCollection;

[Collection("ThreadCountChanges")]
public class ThreadCountChangeTests
{
    [Fact]
    public void DepthCutProduct_WhileAnotherThreadChangesTheCount_WritesOnlyItsOutputAndTheSameBits()
    {
        // A product cut along k (40×70×2600, a weight gradient's shape) sums its parts into C in row runs on the kernel
        // threads. Meanwhile another thread (a test, or a user's code) sets the thread count, and a third keeps the pool
        // busy so that the product's jobs often run inline on its own thread, where nothing stops the count from changing
        // between the jobs' tasks. The row runs were cut by the count read at each task: a task of a 2-way cut run after the
        // count went back to 1 summed rows [m, 2m), past the end of C (heap corruption, the likely cause of the CI runs whose
        // test process died). Every product must write C and nothing after it, with the bits of the uncontested product.
        const int m = 40, n = 70, k = 2600, rounds = 8000;
        var rng = new Random(11);
        var a = new float[k * m];
        var b = new float[k * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);
        var expected = new float[m * n];
        KernelThreads.SetCount(1);
        Gemm.Multiply(true, false, m, n, k, 1f, a, m, b, n, 0f, expected, n);
        // C followed by m guard rows (a 2-way cut's second run of rows past the end of C lands in them)
        var buffer = new float[2 * m * n];
        var stop = new ManualResetEventSlim();
        var flipper = new Thread(() =>
        {
            for (int i = 0; !stop.IsSet; i++) KernelThreads.SetCount(1 + (i & 1));
        }) { IsBackground = true };
        var holder = new Thread(() =>
        {
            while (!stop.IsSet) KernelThreads.Run(2, _ => Thread.SpinWait(200));
        }) { IsBackground = true };
        string? failure = null;
        try
        {
            flipper.Start();
            holder.Start();
            for (int r = 0; r < rounds && failure is null; r++)
            {
                Array.Fill(buffer, -7f);
                Gemm.Multiply(true, false, m, n, k, 1f, a, m, b, n, 0f, buffer.AsSpan(0, m * n), n);
                int guard = Array.FindIndex(buffer, m * n, v => v != -7f);
                int differs = -1;
                for (int i = 0; i < expected.Length && differs < 0; i++)
                    if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(buffer[i])) differs = i;
                if (guard >= 0) failure = $"round {r}: the product wrote element {guard} past its output of {m * n}";
                else if (differs >= 0) failure = $"round {r}: element {differs} is {buffer[differs]}, uncontested {expected[differs]}";
            }
        }
        finally
        {
            stop.Set();
            Assert.True(flipper.Join(TimeSpan.FromMinutes(1)) && holder.Join(TimeSpan.FromMinutes(1)), "the helper threads did not end");
            SuiteSetup.RestoreKernelThreads();
        }
        Assert.True(failure is null, failure);
    }
}
