using GradFlow.Autograd;
using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Recurrent;

/// <summary>The sequence tasks: layout, the defining properties of every example, statistics within sampling error, determinism.</summary>
public class SequenceTasksTests
{
    [Fact]
    public void Adding_EveryExample_HasOneMarkerPerHalfAndTheirSumAsTarget()
    {
        const int n = 500, length = 13;
        var data = SequenceTasks.Adding(n, length, seed: 3);
        Assert.Equal([n, length, 2], data.Inputs.Shape.ToArray());
        Assert.Equal([n, 1], data.Targets!.Shape.ToArray());
        var x = data.Inputs.ToArray();
        var y = data.Targets.ToArray();
        for (int e = 0; e < n; e++)
        {
            var marked = new List<int>();
            for (int t = 0; t < length; t++)
            {
                float v = x[(e * length + t) * 2], m = x[(e * length + t) * 2 + 1];
                Assert.InRange(v, 0f, 1f);
                Assert.True(v < 1f);
                Assert.True(m == 0 || m == 1, $"marker {m}");
                if (m == 1) marked.Add(t);
            }
            Assert.Equal(2, marked.Count);
            Assert.InRange(marked[0], 0, length / 2 - 1);
            Assert.InRange(marked[1], length / 2, length - 1);
            Assert.Equal(x[(e * length + marked[0]) * 2] + x[(e * length + marked[1]) * 2], y[e]);
        }
    }

    [Fact]
    public void Adding_TargetStatistics_MatchTheBaselineWithinSamplingError()
    {
        // The target u₁ + u₂ is triangular on [0, 2]: mean 1, variance 1/6 (the constant predictor's MSE),
        // fourth central moment 1/15, so the sample variance has standard error √((1/15 − 1/36)/n).
        const int n = 20_000;
        var y = SequenceTasks.Adding(n, 20, seed: 11).Targets!.ToDoubleArray();
        double mean = y.Average();
        double mse = y.Sum(v => (v - 1) * (v - 1)) / n;
        Assert.InRange(mean, 1 - 5 * Math.Sqrt(1.0 / 6 / n), 1 + 5 * Math.Sqrt(1.0 / 6 / n));
        double se = Math.Sqrt((1.0 / 15 - 1.0 / 36) / n);
        Assert.InRange(mse, SequenceTasks.AddingBaselineMse - 5 * se, SequenceTasks.AddingBaselineMse + 5 * se);
        Assert.Equal(0.1667, SequenceTasks.AddingBaselineMse, 4);
    }

    [Fact]
    public void Adding_MarkerPositions_CoverEachHalfUniformly()
    {
        const int n = 8000, length = 10;
        var x = SequenceTasks.Adding(n, length, seed: 5).Inputs.ToArray();
        var counts = new int[length];
        for (int e = 0; e < n; e++)
            for (int t = 0; t < length; t++)
                if (x[(e * length + t) * 2 + 1] == 1) counts[t]++;
        // Each position of a half holds its marker with probability 1/5: n/5 ± 5 binomial standard deviations.
        double expected = n / 5.0, sd = Math.Sqrt(n * 0.2 * 0.8);
        Assert.All(counts, c => Assert.InRange(c, expected - 5 * sd, expected + 5 * sd));
    }

    [Fact]
    public void Copy_Sequences_HaveTheDefinedLayout()
    {
        const int n = 200, delay = 7, k = 4, a = 5;
        var data = SequenceTasks.Copy(n, delay, k, a, seed: 2);
        int length = delay + 2 * k, classes = a + 2;
        Assert.Equal([n, length, classes], data.Inputs.Shape.ToArray());
        Assert.Equal([n, length, classes], data.Targets!.Shape.ToArray());
        var x = data.Inputs.ToArray();
        var y = data.Targets.ToArray();
        int Class(float[] v, int e, int t)
        {
            var row = v.AsSpan((e * length + t) * classes, classes);
            Assert.Equal(1f, row.ToArray().Sum());
            Assert.Equal(classes - 1, row.ToArray().Count(p => p == 0));
            return row.IndexOf(1f);
        }
        var symbolCounts = new int[classes];
        for (int e = 0; e < n; e++)
        {
            var data_ = Enumerable.Range(0, k).Select(t => Class(x, e, t)).ToArray();
            Assert.All(data_, s => Assert.InRange(s, 1, a));
            foreach (int s in data_) symbolCounts[s]++;
            for (int t = k; t < length; t++) Assert.Equal(t == k + delay - 1 ? a + 1 : 0, Class(x, e, t));
            for (int t = 0; t < k + delay; t++) Assert.Equal(0, Class(y, e, t));
            Assert.Equal(data_, Enumerable.Range(k + delay, k).Select(t => Class(y, e, t)));
        }
        // Symbols uniform over 1..A: n·K/A each within 5 binomial standard deviations.
        double expected = n * k / (double)a, sd = Math.Sqrt(n * k * (1.0 / a) * (1 - 1.0 / a));
        for (int s = 1; s <= a; s++) Assert.InRange(symbolCounts[s], expected - 5 * sd, expected + 5 * sd);
        Assert.Equal(10 * Math.Log(8) / 120, SequenceTasks.CopyBaselineCrossEntropy(100), 12);
    }

    [Fact]
    public void Tasks_SameSeed_SameData_OtherSeed_OtherData()
    {
        Assert.Equal(SequenceTasks.Adding(50, 9, seed: 1).Inputs.ToArray(), SequenceTasks.Adding(50, 9, seed: 1).Inputs.ToArray());
        Assert.NotEqual(SequenceTasks.Adding(50, 9, seed: 1).Inputs.ToArray(), SequenceTasks.Adding(50, 9, seed: 2).Inputs.ToArray());
        Assert.Equal(SequenceTasks.Copy(20, 5, seed: 1).Targets!.ToArray(), SequenceTasks.Copy(20, 5, seed: 1).Targets!.ToArray());
        Assert.NotEqual(SequenceTasks.Copy(20, 5, seed: 1).Targets!.ToArray(), SequenceTasks.Copy(20, 5, seed: 2).Targets!.ToArray());
    }

    [Fact]
    public void Tasks_BadSizes_Throw()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SequenceTasks.Adding(10, 1));
        Assert.Contains("length 1", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SequenceTasks.Adding(0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => SequenceTasks.Copy(10, 0));
    }

    [Fact]
    public void FashionMnistRows_StepTIsImageRowT()
    {
        var dir = DataResolver.ResolveFashionMnist(null); // throws with install instructions when the package is missing
        var rows = SequenceTasks.FashionMnistRows(dir, MnistSplit.Test);
        var flat = FashionMnist.Load(dir, MnistSplit.Test, ImageLayout.Flat, standardise: true);
        Assert.Equal([10_000, 28, 28], rows.Inputs.Shape.ToArray());
        Assert.Equal(10, rows.ClassCount);
        Assert.Equal(flat.Labels!.ToArray(), rows.Labels!.ToArray());
        // Example 17, step 9 (row 9) = pixels 9·28 .. 9·28 + 27 of the flat image.
        var seq = rows.Inputs.ToArray().AsSpan((17 * 28 + 9) * 28, 28).ToArray();
        var img = flat.Inputs.ToArray().AsSpan(17 * 784 + 9 * 28, 28).ToArray();
        Assert.Equal(img, seq);
    }

    [Fact]
    [Trait("Category", "Training")]
    public void Lstm_AddingProblem_LearnsWellBelowTheBaseline()
    {
        // T = 20, an LSTM with 32 units (forget-gate bias 1) and a linear head on the last step, Adam,
        // 600 steps of 32: the test MSE must fall far below the 0.167 of a model that cannot remember.
        // (It sits on that plateau for about 250 steps, then drops to about 0.002.)
        var train = SequenceTasks.Adding(600 * 32, 20, seed: 1);
        var test = SequenceTasks.Adding(1000, 20, seed: 2);
        var g = new Generator(7);
        var lstm = new Lstm(2, 32, g, batchFirst: true);
        lstm.InitForgetGateBias(1.0);
        var head = new Linear(32, 1, g);
        var opt = new Adam(lstm.Parameters().Concat(head.Parameters()), learningRate: 1e-2);
        Tensor Predict(Tensor x)
        {
            var h = lstm.Forward(x, null).State.H;
            return head.Forward(h.Reshape(x.Shape[0], 32));
        }
        var loader = new DataLoader(train, batchSize: 32, seed: 3);
        foreach (var batch in loader.Epoch(0))
        {
            opt.ZeroGrad();
            Losses.Mse(Predict(batch.Inputs), batch.Targets!).Backward();
            opt.Step();
        }
        double mse;
        using (GradMode.NoGrad()) mse = Losses.Mse(Predict(test.Inputs), test.Targets!).Item();
        Assert.True(mse < 0.02, $"test MSE {mse} after 600 steps (baseline {SequenceTasks.AddingBaselineMse:F3})");
    }
}
