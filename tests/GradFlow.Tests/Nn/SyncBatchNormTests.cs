using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

/// <summary>
/// Synchronised batch norm (<see cref="IBatchNormSync"/>): the examples of one batch shared by "processes" — threads of this test
/// summing through a barrier, the collective MPI provides in a job — give the whole batch's output and, weighed by each share, its
/// gradients (float64, so the comparison is tight). The whole batch's op is the one checked against finite differences and
/// PyTorch (<see cref="NormalizationTests"/>); across real processes, <c>MpiTrainingTests</c>.
/// </summary>
public class SyncBatchNormTests
{
    [Theory]
    [InlineData(new[] { 3, 4 }, new[] { 3, 2 })]       // [N, C, L] batch of 7 cut 3 + 4
    [InlineData(new[] { 2, 2, 3 }, new[] { 2, 3, 2, 2 })] // [N, C, H, W] batch of 7 cut 2 + 2 + 3
    public void BatchNorm_SharedByProcesses_GivesTheWholeBatchOutputAndGradients(int[] counts, int[] trailing)
    {
        int n = counts.Sum(), c = trailing[0], per = trailing.Aggregate(1, (a, b) => a * b);
        int[] shape = [n, .. trailing];
        var x = TestTensors.Leaf(1, shape);
        var upstream = Tensor.Normal(new Generator(2), 0, 1, DType.Float64, shape).ToDoubleArray();
        var gamma = TestTensors.AwayFromZero(3, 0.5, 1.5, positive: true, c);
        var beta = TestTensors.Leaf(4, c);

        // the whole batch: loss = Σ y·u / n
        var y = NormOps.BatchNorm(x, gamma, beta, null, null, 1e-5, out var mean, out var variance);
        BackwardEngine.Backward((y * Tensor.FromArray(upstream, shape)).Sum() * (1.0 / n));
        var (expectedY, expectedDx) = (y.ToDoubleArray(), x.Grad!.ToDoubleArray());

        // each process: its rows, loss = Σ y·u / n_r (its mean), share n_r / n
        int processes = counts.Length;
        var board = new Board(processes);
        var results = new (double[] Y, double[] Dx, double[] DGamma, double[] DBeta, double[] Mean, double[] Var, long Count)[processes];
        var errors = new Exception?[processes];
        var threads = Enumerable.Range(0, processes).Select(r => new Thread(() =>
        {
            try
            {
                int first = counts.Take(r).Sum(), rows = counts[r];
                int[] local = [rows, .. trailing];
                var xr = Tensor.FromArray(x.ToDoubleArray().AsSpan(first * per, rows * per).ToArray(), local);
                xr.RequiresGrad = true;
                var g = Tensor.FromArray(gamma.ToDoubleArray(), c);
                var b = Tensor.FromArray(beta.ToDoubleArray(), c);
                g.RequiresGrad = b.RequiresGrad = true;
                var sync = new ThreadSync(board, r, (double)rows / n);
                var yr = NormOps.BatchNorm(xr, g, b, null, null, 1e-5, out var m, out var v, out long count, sync);
                var u = Tensor.FromArray(upstream.AsSpan(first * per, rows * per).ToArray(), local);
                BackwardEngine.Backward((yr * u).Sum() * (1.0 / rows));
                results[r] = (yr.ToDoubleArray(), xr.Grad!.ToDoubleArray(), g.Grad!.ToDoubleArray(), b.Grad!.ToDoubleArray(), m!, v!, count);
            }
            catch (Exception e)
            {
                errors[r] = e;
            }
        }) { IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(120)), "a process thread did not end within 120 s");
        Assert.All(errors, e => Assert.Null(e));

        var dGamma = new double[c];
        var dBeta = new double[c];
        for (int r = 0, first = 0; r < processes; first += counts[r], r++)
        {
            double share = (double)counts[r] / n;
            for (int i = 0; i < counts[r] * per; i++)
            {
                Assert.Equal(expectedY[first * per + i], results[r].Y[i], 1e-12);
                // the data-parallel step weighs each process's gradient by its share
                Assert.Equal(expectedDx[first * per + i], share * results[r].Dx[i], 1e-12);
            }
            for (int ch = 0; ch < c; ch++)
            {
                dGamma[ch] += share * results[r].DGamma[ch];
                dBeta[ch] += share * results[r].DBeta[ch];
                Assert.Equal(mean![ch], results[r].Mean[ch], 1e-12);
                Assert.Equal(variance![ch], results[r].Var[ch], 1e-12);
            }
            Assert.Equal(n * per / c, results[r].Count);
        }
        var (expectedDGamma, expectedDBeta) = (gamma.Grad!.ToDoubleArray(), beta.Grad!.ToDoubleArray());
        for (int ch = 0; ch < c; ch++)
        {
            Assert.Equal(expectedDGamma[ch], dGamma[ch], 1e-12);
            Assert.Equal(expectedDBeta[ch], dBeta[ch], 1e-12);
        }
    }

    [Fact]
    public void BatchNorm_OneProcess_IsThePlainBatchNorm()
    {
        var x = TestTensors.Leaf(5, 6, 3);
        var plain = NormOps.BatchNorm(x, null, null, null, null, 1e-5, out _, out _).ToDoubleArray();
        var synced = NormOps.BatchNorm(x, null, null, null, null, 1e-5, out _, out _, out long count, new ThreadSync(new Board(1), 0, 1)).ToDoubleArray();
        Assert.Equal(plain, synced);
        Assert.Equal(6, count);
    }

    /// <summary>Where the threads put their values: each call, every thread writes its slot, waits for the others, and adds the slots in rank order.</summary>
    private sealed class Board(int processes)
    {
        public readonly Barrier Barrier = new(processes);
        public readonly double[][] Slots = new double[processes][];
    }

    private sealed class ThreadSync(Board board, int rank, double share) : IBatchNormSync
    {
        public double Share => share;

        public void Sum(Span<double> values)
        {
            board.Slots[rank] = values.ToArray();
            Meet();
            values.Clear();
            foreach (var slot in board.Slots)
                for (int i = 0; i < values.Length; i++) values[i] += slot[i];
            Meet();
        }

        // a process that never arrives (a mismatched number of sums) fails the test instead of hanging it
        private void Meet()
        {
            if (!board.Barrier.SignalAndWait(TimeSpan.FromSeconds(60)))
                throw new TimeoutException($"rank {rank}: the other processes did not reach the same sum within 60 s");
        }
    }
}
