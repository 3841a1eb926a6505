using GradFlow.Data;
using GradFlow.Tensors;

namespace GradFlow.Tests.Data;

public class DataLoaderTests
{
    /// <summary>N examples whose input row i is [i, 1000 + i, 2000 + i] and whose label is i mod 3.</summary>
    private static Dataset Numbered(int n)
    {
        var x = new float[3 * n];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            x[3 * i] = i;
            x[3 * i + 1] = 1000 + i;
            x[3 * i + 2] = 2000 + i;
            y[i] = i % 3;
        }
        return Dataset.Classification(Tensor.FromArray(x, n, 3), IndexTensor.FromArray(y), 3);
    }

    private static List<int> Visited(DataLoader loader, int epoch)
    {
        var seen = new List<int>();
        foreach (var b in loader.Epoch(epoch))
        {
            var x = b.Inputs.ToArray();
            for (int r = 0; r < b.Count; r++)
            {
                int i = (int)x[3 * r];
                Assert.Equal(b.Indices[r], i);
                Assert.Equal(1000 + i, x[3 * r + 1]);
                Assert.Equal(2000 + i, x[3 * r + 2]);
                Assert.Equal(i % 3, b.Labels![r]);
                seen.Add(i);
            }
        }
        return seen;
    }

    [Theory]
    [InlineData(10, 3, false)]
    [InlineData(10, 3, true)]
    [InlineData(12, 4, false)]
    [InlineData(7, 10, false)]
    [InlineData(1, 1, false)]
    public void DataLoader_Epoch_VisitsEveryExampleExactlyOnce(int n, int batchSize, bool reuse)
    {
        var loader = new DataLoader(Numbered(n), batchSize, shuffle: true, seed: 5, reuseBuffers: reuse);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var seen = Visited(loader, epoch);
            Assert.Equal(Enumerable.Range(0, n), seen.Order());
        }
        Assert.Equal((n + batchSize - 1) / batchSize, loader.BatchCount);
    }

    [Fact]
    public void DataLoader_BatchShapes_LastBatchIsRemainder()
    {
        var loader = new DataLoader(Numbered(10), 4, seed: 1);
        var shapes = loader.Epoch(0).Select(b => b.Inputs.Shape.ToArray()).ToList();
        Assert.Equal([[4, 3], [4, 3], [2, 3]], shapes);
        Assert.Equal([0, 1, 2], loader.Epoch(0).Select(b => b.Index));
    }

    [Fact]
    public void DataLoader_DropLast_DropsShortBatchOnly()
    {
        var loader = new DataLoader(Numbered(10), 4, seed: 1, dropLast: true);
        Assert.Equal(2, loader.BatchCount);
        var batches = loader.Epoch(3).ToList();
        Assert.Equal(2, batches.Count);
        Assert.All(batches, b => Assert.Equal(4, b.Count));
        var seen = batches.SelectMany(b => b.Indices).ToList();
        Assert.Equal(8, seen.Distinct().Count());
        // The dropped examples are the last two of that epoch's order.
        Assert.Equal(loader.Order(3)[..8], seen);

        var exact = new DataLoader(Numbered(8), 4, dropLast: true);
        Assert.Equal(2, exact.Epoch(0).Count());
    }

    [Fact]
    public void DataLoader_SameSeedAndEpoch_SameOrder()
    {
        var a = new DataLoader(Numbered(50), 8, seed: 42);
        var b = new DataLoader(Numbered(50), 8, seed: 42);
        for (int e = 0; e < 4; e++) Assert.Equal(Visited(a, e), Visited(b, e));
        // Resuming: epoch 3 asked for first gives the same order as after epochs 0..2.
        var resumed = new DataLoader(Numbered(50), 8, seed: 42);
        Assert.Equal(Visited(a, 3), Visited(resumed, 3));
    }

    [Fact]
    public void DataLoader_DifferentEpochsOrSeeds_DifferentOrders()
    {
        var a = new DataLoader(Numbered(50), 8, seed: 42);
        var orders = Enumerable.Range(0, 5).Select(e => string.Join(",", a.Order(e))).ToList();
        Assert.Equal(5, orders.Distinct().Count());
        Assert.NotEqual(a.Order(0), new DataLoader(Numbered(50), 8, seed: 43).Order(0));
        Assert.NotEqual(Enumerable.Range(0, 50), a.Order(0));
    }

    [Fact]
    public void DataLoader_NoShuffle_SequentialOrder()
    {
        var loader = new DataLoader(Numbered(9), 4, shuffle: false);
        Assert.Equal(Enumerable.Range(0, 9), Visited(loader, 0));
        Assert.Equal(Enumerable.Range(0, 9), Visited(loader, 7));
    }

    [Fact]
    public void DataLoader_Shuffle_IsUniformOverFirstPosition()
    {
        // 4 examples, 4000 epochs: each lands first about 1000 times; a chi-square with 3 degrees of
        // freedom above 16.27 has probability 0.001 under a uniform shuffle.
        var loader = new DataLoader(Numbered(4), 4, seed: 9);
        var counts = new int[4];
        for (int e = 0; e < 4000; e++) counts[loader.Order(e)[0]]++;
        double chi2 = counts.Sum(c => (c - 1000.0) * (c - 1000.0) / 1000.0);
        Assert.True(chi2 < 16.27, $"first-position counts {string.Join(", ", counts)}, chi2 {chi2}");
    }

    [Fact]
    public void DataLoader_ReuseBuffers_WritesIntoSameTensors()
    {
        var loader = new DataLoader(Numbered(10), 4, seed: 2, reuseBuffers: true);
        var batches = new List<Batch>();
        foreach (var b in loader.Epoch(0)) batches.Add(b);
        Assert.Same(batches[0].Inputs, batches[1].Inputs);
        Assert.Same(batches[0].Labels, batches[1].Labels);
        Assert.NotSame(batches[0].Inputs, batches[2].Inputs);
        var again = loader.Epoch(1).First();
        Assert.Same(batches[0].Inputs, again.Inputs);

        var fresh = new DataLoader(Numbered(10), 4, seed: 2).Epoch(0).ToList();
        Assert.NotSame(fresh[0].Inputs, fresh[1].Inputs);
    }

    [Fact]
    public void DataLoader_Regression_BatchesTargetsAlongsideInputs()
    {
        int n = 7;
        var x = Tensor.FromArray(Enumerable.Range(0, n * 2).Select(i => (float)i).ToArray(), n, 2);
        var t = Tensor.FromArray(Enumerable.Range(0, n).Select(i => i * 0.5).ToArray(), n, 1);
        var loader = new DataLoader(Dataset.Regression(x, t), 3, seed: 4, reuseBuffers: true);
        int total = 0;
        foreach (var b in loader.Epoch(0))
        {
            Assert.Null(b.Labels);
            Assert.Equal(DType.Float64, b.Targets!.DType);
            for (int r = 0; r < b.Count; r++)
            {
                int i = b.Indices[r];
                Assert.Equal(2 * i, b.Inputs[r, 0]);
                Assert.Equal(i * 0.5, b.Targets[r, 0]);
            }
            total += b.Count;
        }
        Assert.Equal(n, total);
    }

    [Fact]
    public void DataLoader_BadBatchSize_Throws()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(Numbered(3), 0));
        Assert.Contains("batch size 0", e.Message);
    }

    // ---------------------------------------------------------------- Dataset

    [Fact]
    public void Dataset_Subset_CopiesSelectedRowsInOrder()
    {
        var d = Numbered(6);
        var s = d.Subset([4, 1, 4]);
        Assert.Equal(3, s.Count);
        Assert.Equal([4f, 1004, 2004, 1, 1001, 2001, 4, 1004, 2004], s.Inputs.ToArray());
        Assert.Equal([1, 1, 1], s.Labels!.ToArray());
        Assert.Equal(3, s.ClassCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Subset([6]));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Subset(5, 2));
    }

    [Fact]
    public void Dataset_Split_PartitionsInOrder()
    {
        var (a, b) = Numbered(10).Split(7);
        Assert.Equal(7, a.Count);
        Assert.Equal(3, b.Count);
        Assert.Equal(7f, b.Inputs[0, 0]);
        Assert.Equal(6f, a.Inputs[6, 0]);
    }

    [Fact]
    public void Dataset_RandomSplit_IsSeededPartition()
    {
        var d = Numbered(20);
        var (a, b) = d.RandomSplit(0.75, seed: 3);
        Assert.Equal(15, a.Count);
        Assert.Equal(5, b.Count);
        var all = a.Inputs.ToArray().Where((_, k) => k % 3 == 0).Concat(b.Inputs.ToArray().Where((_, k) => k % 3 == 0)).Select(v => (int)v);
        Assert.Equal(Enumerable.Range(0, 20), all.Order());
        var (a2, _) = d.RandomSplit(0.75, seed: 3);
        Assert.Equal(a.Inputs.ToArray(), a2.Inputs.ToArray());
        var (a3, _) = d.RandomSplit(0.75, seed: 4);
        Assert.NotEqual(a.Inputs.ToArray(), a3.Inputs.ToArray());
    }

    [Fact]
    public void Dataset_Classification_RejectsMismatchAndOutOfRangeLabels()
    {
        var x = Tensor.Zeros(3, 2);
        var e = Assert.Throws<ArgumentException>(() => Dataset.Classification(x, IndexTensor.FromArray([0, 1]), 2));
        Assert.Contains("[3]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Dataset.Classification(x, IndexTensor.FromArray([0, 2, 1]), 2));
        Assert.Contains("label 2 at position 1", e.Message);
        Assert.Throws<ArgumentException>(() => Dataset.Regression(x, Tensor.Zeros(2, 1)));
    }

    [Fact]
    public void Dataset_ClassCounts_CountsLabels()
    {
        Assert.Equal([3, 2, 2], Numbered(7).ClassCounts());
    }
}
