using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

public class NormalizationTests
{
    private static void SetAffine(Parameter? weight, Parameter? bias, ulong seed)
    {
        var g = new Generator(seed);
        using (GradMode.NoGrad())
        {
            weight?.Data.CopyFrom(Tensor.Uniform(g, 0.5, 1.5, weight.Data.Shape.ToArray()));
            bias?.Data.CopyFrom(Tensor.Uniform(g, -0.5, 0.5, bias.Data.Shape.ToArray()));
        }
    }

    /// <summary>Batch norm of [N, C, L] computed from the definition in the test.</summary>
    private static double[] BatchNormReference(double[] x, int n, int c, int l, double[] gamma, double[] beta, double eps)
    {
        var y = new double[x.Length];
        for (int ch = 0; ch < c; ch++)
        {
            var vals = new List<double>();
            for (int i = 0; i < n; i++)
                for (int j = 0; j < l; j++) vals.Add(x[(i * c + ch) * l + j]);
            double mean = vals.Average();
            double var = vals.Sum(v => (v - mean) * (v - mean)) / vals.Count;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < l; j++)
                {
                    int at = (i * c + ch) * l + j;
                    y[at] = gamma[ch] * (x[at] - mean) / Math.Sqrt(var + eps) + beta[ch];
                }
        }
        return y;
    }

    [Fact]
    public void BatchNorm2d_Training_LargeMeanSmallSpread_KeepsTheVariance()
    {
        // float32 values 1000 + 0.01·N(0, 1), and a different offset per example: the per-segment moments are combined around
        // the channel's mean exactly (a one-pass E[x²] − μ² would lose every digit of a variance of 1e-4 at a mean of 1000)
        const int n = 5, c = 3, h = 4, w = 7;
        var noise = Tensor.RandN(new Generator(3), n, c, h, w).ToDoubleArray();
        var data = new float[noise.Length];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(1000 + 0.05 * (i / (c * h * w)) + 0.01 * noise[i]);
        var x = Tensor.FromArray(data, n, c, h, w);
        var y = NormOps.BatchNorm(x, null, null, null, null, 1e-12, out var mean, out var var);
        var xd = data.Select(v => (double)v).ToArray();
        for (int ch = 0; ch < c; ch++)
        {
            var vals = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range((i * c + ch) * h * w, h * w)).Select(j => xd[j]).ToArray();
            double m = vals.Average(), v = vals.Sum(t => (t - m) * (t - m)) / vals.Length;
            Assert.True(Math.Abs(mean![ch] - m) <= 2e-7 * m, $"channel {ch}: mean {mean[ch]} vs {m}");
            Assert.True(Math.Abs(var![ch] - v) <= 1e-4 * v, $"channel {ch}: var {var[ch]} vs {v}");
        }
        var expected = BatchNormReference(xd, n, c, h * w, [1, 1, 1], [0, 0, 0], 1e-12);
        // y: x − μ in float32 at 1000 is exact to 6e-5, i.e. 2e-3 of a standard deviation of ~0.03
        TestTensors.AllClose(expected, y.ToDoubleArray(), 0, 2e-3, "batch_norm");
    }

    [Theory]
    [InlineData(new[] { 8, 3 })]
    [InlineData(new[] { 5, 4, 7 })]
    [InlineData(new[] { 2, 33 })]
    public void BatchNorm1d_Training_MatchesDefinition(int[] shape)
    {
        var bn = new BatchNorm1d(shape[1]);
        SetAffine(bn.Weight, bn.Bias, 1);
        var x = Tensor.RandN(new Generator(2), shape) * 3 + 1;
        var y = bn.Forward(x);
        var expected = BatchNormReference(x.ToDoubleArray(), shape[0], shape[1], shape.Length == 3 ? shape[2] : 1,
            bn.Weight!.Data.ToDoubleArray(), bn.Bias!.Data.ToDoubleArray(), 1e-5);
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-5, 1e-5, "batch_norm");
    }

    [Theory]
    [InlineData(new[] { 6, 3 })]
    [InlineData(new[] { 4, 2, 5 })]
    [InlineData(new[] { 3, 1 })]
    public void BatchNorm1d_Training_GradientMatchesFiniteDifferences(int[] shape)
    {
        var bn = new BatchNorm1d(shape[1]);
        var gamma = TestTensors.AwayFromZero(3, 0.5, 1.5, positive: true, shape[1]);
        var beta = TestTensors.Leaf(4, shape[1]);
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], null, null, 1e-5, out _, out _),
            [TestTensors.Leaf(5, shape), gamma, beta], name: "batch_norm");
    }

    [Theory]
    [InlineData(new[] { 3, 4, 2, 3 }, true)]
    [InlineData(new[] { 5, 3, 7 }, true)]
    [InlineData(new[] { 4, 3, 2, 2 }, false)]
    public void BatchNormRelu_Fused_GradientMatchesFiniteDifferences(int[] shape, bool training)
    {
        // relu(batch_norm(x)) as one op; the inputs keep the normalised values away from ReLU's kink
        var gamma = TestTensors.AwayFromZero(3, 0.5, 1.5, positive: true, shape[1]);
        var beta = TestTensors.Leaf(4, shape[1]);
        var rm = training ? null : Tensor.FromArray(Enumerable.Range(0, shape[1]).Select(c => 0.1 * c).ToArray());
        var rv = training ? null : Tensor.FromArray(Enumerable.Range(0, shape[1]).Select(c => 1 + 0.5 * c).ToArray());
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], rm, rv, 1e-5, out _, out _, out _, null, relu: true),
            [TestTensors.Leaf(5, shape), gamma, beta], name: "batch_norm_relu");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchNormRelu_Fused_BitwiseTheTwoOps(bool training)
    {
        // float32 [6, 5, 4, 3]: values, and the gradients of x, γ and β, against batch_norm then relu as two graph nodes
        var gen = new Generator(11);
        var x0 = Tensor.RandN(gen, 6, 5, 4, 3) * 2 + 0.5;
        var g = Tensor.RandN(gen, 6, 5, 4, 3);
        var rm = training ? null : Tensor.RandN(gen, 5);
        var rv = training ? null : Tensor.Uniform(gen, 0.5, 2, 5);
        (float[] Y, float[] Dx, float[] Dgamma, float[] Dbeta) Run(bool fused)
        {
            var x = x0.Detach();
            x.RequiresGrad = true;
            var gamma = Tensor.Uniform(new Generator(12), -1, 1.5, 5);
            var beta = Tensor.Uniform(new Generator(13), -0.5, 0.5, 5);
            gamma.RequiresGrad = beta.RequiresGrad = true;
            var y = fused ? NormOps.BatchNorm(x, gamma, beta, rm, rv, 1e-5, out _, out _, out _, null, relu: true)
                : NormOps.BatchNorm(x, gamma, beta, rm, rv, 1e-5, out _, out _).Relu();
            y.Backward(g);
            return (y.ToArray(), x.Grad!.ToArray(), gamma.Grad!.ToArray(), beta.Grad!.ToArray());
        }
        var (want, got) = (Run(false), Run(true));
        Assert.Contains(0f, got.Y);
        Assert.Equal(want.Y, got.Y);
        Assert.Equal(want.Dx, got.Dx);
        Assert.Equal(want.Dgamma, got.Dgamma);
        Assert.Equal(want.Dbeta, got.Dbeta);
    }

    [Theory]
    [InlineData(new[] { 3, 4, 2, 3 }, true)]
    [InlineData(new[] { 5, 3, 7 }, true)]
    [InlineData(new[] { 4, 3, 2, 2 }, false)]
    public void BatchNormAddRelu_Fused_GradientMatchesFiniteDifferences(int[] shape, bool training)
    {
        // relu(batch_norm(x) + r) as one op, gradients of x, γ, β and r; r of magnitude 0.5-1.5 with random signs, so some sums are
        // rectified, and only sums well away from ReLU's kink are kept (the check's steps do not cross it)
        var gamma = TestTensors.AwayFromZero(3, 0.5, 1.5, positive: true, shape[1]);
        var beta = TestTensors.Leaf(4, shape[1]);
        var rm = training ? null : Tensor.FromArray(Enumerable.Range(0, shape[1]).Select(c => 0.1 * c).ToArray());
        var rv = training ? null : Tensor.FromArray(Enumerable.Range(0, shape[1]).Select(c => 1 + 0.5 * c).ToArray());
        var x = TestTensors.Leaf(5, shape);
        var r = TestTensors.AwayFromZero(6, 0.5, 1.5, positive: false, shape);
        double[] sums;
        using (GradMode.NoGrad())
            sums = (NormOps.BatchNorm(x, gamma, beta, rm, rv, 1e-5, out _, out _) + r).ToDoubleArray();
        var kept = sums.Select(v => Math.Abs(v) > 0.05).ToArray();
        Assert.Contains(sums, v => v < -0.05);
        Assert.Contains(sums, v => v > 0.05);
        var keep = Tensor.FromArray(kept.Select(k => k ? 1.0 : 0.0).ToArray(), shape);
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], rm, rv, 1e-5, out _, out _, out _, null, relu: true, residual: t[3]) * keep,
            [x, gamma, beta, r], name: "batch_norm_add_relu");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchNormAddRelu_Fused_BitwiseTheThreeOps(bool training)
    {
        // float32 [6, 5, 4, 3]: values, and the gradients of x, γ, β and r, against batch_norm, + and relu as three graph nodes
        var gen = new Generator(21);
        var x0 = Tensor.RandN(gen, 6, 5, 4, 3) * 2 + 0.5;
        var r0 = Tensor.RandN(gen, 6, 5, 4, 3);
        var g = Tensor.RandN(gen, 6, 5, 4, 3);
        var rm = training ? null : Tensor.RandN(gen, 5);
        var rv = training ? null : Tensor.Uniform(gen, 0.5, 2, 5);
        (float[] Y, float[] Dx, float[] Dgamma, float[] Dbeta, float[] Dr) Run(bool fused)
        {
            var x = x0.Detach();
            var r = r0.Detach();
            x.RequiresGrad = r.RequiresGrad = true;
            var gamma = Tensor.Uniform(new Generator(22), -1, 1.5, 5);
            var beta = Tensor.Uniform(new Generator(23), -0.5, 0.5, 5);
            gamma.RequiresGrad = beta.RequiresGrad = true;
            var y = fused ? NormOps.BatchNorm(x, gamma, beta, rm, rv, 1e-5, out _, out _, out _, null, relu: true, residual: r)
                : (NormOps.BatchNorm(x, gamma, beta, rm, rv, 1e-5, out _, out _) + r).Relu();
            y.Backward(g);
            return (y.ToArray(), x.Grad!.ToArray(), gamma.Grad!.ToArray(), beta.Grad!.ToArray(), r.Grad!.ToArray());
        }
        var (want, got) = (Run(false), Run(true));
        Assert.Contains(0f, got.Y);
        Assert.Contains(0f, got.Dr);
        Assert.Equal(want.Y, got.Y);
        Assert.Equal(want.Dx, got.Dx);
        Assert.Equal(want.Dgamma, got.Dgamma);
        Assert.Equal(want.Dbeta, got.Dbeta);
        Assert.Equal(want.Dr, got.Dr);
    }

    [Fact]
    public void ForwardAddRelu_FusedUnlessHooked_AndRefusesAResidualOfAnotherShape()
    {
        var x = Tensor.RandN(new Generator(24), 4, 3, 5, 5);
        var r = Tensor.RandN(new Generator(25), 4, 3, 5, 5);
        var bn = new BatchNorm2d(3);
        SetAffine(bn.Weight, bn.Bias, 26);
        var fused = bn.ForwardAddRelu(x, r);
        Assert.Equal("batch_norm_add_relu", fused.GradFn?.Op);
        using (bn.RegisterForwardHook((_, _, _) => { }))
        {
            var unfused = bn.ForwardAddRelu(x, r);
            Assert.Equal("relu", unfused.GradFn?.Op);
            Assert.Equal(fused.ToArray(), unfused.ToArray());
            // a residual that would broadcast is refused on the hooked path as on the fused one
            var hooked = Assert.Throws<ArgumentException>(() => bn.ForwardAddRelu(x, Tensor.Zeros(1, 3, 5, 5)));
            Assert.Contains("[1, 3, 5, 5]", hooked.Message);
        }
        Assert.Throws<ArgumentException>(() => bn.ForwardAddRelu(x, Tensor.Zeros(1, 3, 5, 5)));
        var e = Assert.Throws<ArgumentException>(() => bn.ForwardAddRelu(x, Tensor.Zeros(4, 3, 5, 4)));
        Assert.Contains("[4, 3, 5, 4]", e.Message);
        Assert.Contains("[4, 3, 5, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => NormOps.BatchNorm(x, null, null, null, null, 1e-5, out _, out _, out _, null, relu: false, residual: r));
        Assert.Contains("ReLU", e.Message);
    }

    [Fact]
    public void SequentialAndForwardRelu_BatchNormThenRelu_FusedUnlessHooked()
    {
        var x = Tensor.RandN(new Generator(14), 4, 3, 5, 5);
        var bn = new BatchNorm2d(3);
        SetAffine(bn.Weight, bn.Bias, 15);
        var seq = new Sequential(bn, new Relu());
        var fused = seq.Forward(x);
        Assert.Equal("batch_norm_relu", fused.GradFn?.Op);
        Assert.Equal("batch_norm_relu", bn.ForwardRelu(x).GradFn?.Op);
        Tensor? seen = null;
        using (bn.RegisterForwardHook((_, _, y) => seen = y))
        {
            var unfused = seq.Forward(x);
            Assert.Equal("relu", unfused.GradFn?.Op);
            Assert.Equal("relu", bn.ForwardRelu(x).GradFn?.Op);
            Assert.Equal(fused.ToArray(), unfused.ToArray());
            Assert.True(seen!.ToArray().Any(v => v < 0), "the hook sees the batch norm's output before the ReLU");
        }
    }

    [Fact]
    public void BatchNorm1d_Eval_GradientMatchesFiniteDifferences()
    {
        var rm = Tensor.FromArray([0.5, -1, 2]);
        var rv = Tensor.FromArray([1.5, 0.25, 4]);
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], rm, rv, 1e-5, out _, out _),
            [TestTensors.Leaf(6, 4, 3), TestTensors.Leaf(7, 3), TestTensors.Leaf(8, 3)], name: "batch_norm eval");
    }

    [Fact]
    public void BatchNorm1d_RunningStatistics_FollowPyTorchUpdateAndAreUsedInEval()
    {
        var bn = new BatchNorm1d(2, momentum: 0.1);
        // Channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: 0, 0, 4, 4 (mean 2, unbiased 16/3).
        var x = Tensor.FromArray([1f, 0, 2, 0, 3, 4, 6, 4], 4, 2);
        bn.Forward(x);
        Assert.Equal([0.3, 0.2], bn.RunningMean!.ToDoubleArray().Select(v => Math.Round(v, 6)));
        Assert.Equal(0.9 + 0.1 * 14.0 / 3, bn.RunningVar!.ToDoubleArray()[0], 1e-6);
        Assert.Equal(0.9 + 0.1 * 16.0 / 3, bn.RunningVar.ToDoubleArray()[1], 1e-6);
        Assert.Equal(1.0, bn.NumBatchesTracked!.Item());

        bn.Eval();
        var y = bn.Forward(Tensor.FromArray([1.3f, 0.2f], 1, 2)).ToDoubleArray();
        Assert.Equal((1.3 - 0.3) / Math.Sqrt(0.9 + 0.1 * 14.0 / 3 + 1e-5), y[0], 1e-5);
        Assert.Equal(0.0, y[1], 1e-6);
        Assert.Equal(1.0, bn.NumBatchesTracked.Item());
    }

    [Fact]
    public void BatchNorm1d_StateDictNames_AreTorchs()
    {
        Assert.Equal(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"], new BatchNorm1d(4).StateDict().Select(kv => kv.Key));
    }

    [Fact]
    public void BatchNorm1d_WrongChannels_ThrowsNamingShape()
    {
        var e = Assert.Throws<ArgumentException>(() => new BatchNorm1d(4).Forward(Tensor.Zeros(8, 3)));
        Assert.Contains("[8, 3]", e.Message);
        Assert.Contains("BatchNorm1d", e.Message);
        Assert.Throws<ArgumentException>(() => new BatchNorm1d(4).Forward(Tensor.Zeros(1, 4)));
    }

    [Theory]
    [InlineData(new[] { 4, 5 }, 1)]
    [InlineData(new[] { 2, 3, 33 }, 1)]
    [InlineData(new[] { 2, 3, 4 }, 2)]
    public void LayerNorm_MatchesDefinitionAndFiniteDifferences(int[] shape, int normalizedDims)
    {
        var normShape = shape[^normalizedDims..];
        var ln = new LayerNorm(normShape);
        SetAffine(ln.Weight, ln.Bias, 9);
        var x = Tensor.RandN(new Generator(10), shape) * 2 - 1;
        var xv = x.ToDoubleArray();
        int d = normShape.Aggregate(1, (a, b) => a * b);
        var gv = ln.Weight!.Data.ToDoubleArray();
        var bv = ln.Bias!.Data.ToDoubleArray();
        var expected = new double[xv.Length];
        for (int r = 0; r < xv.Length / d; r++)
        {
            var row = xv.Skip(r * d).Take(d).ToArray();
            double mean = row.Average(), var = row.Sum(v => (v - mean) * (v - mean)) / d;
            for (int j = 0; j < d; j++) expected[r * d + j] = gv[j] * (row[j] - mean) / Math.Sqrt(var + 1e-5) + bv[j];
        }
        TestTensors.AllClose(expected, ln.Forward(x).ToDoubleArray(), 1e-5, 1e-5, "layer_norm");

        GradCheck.Assert(t => NormOps.LayerNorm(t[0], d, t[1], t[2], 1e-5),
            [TestTensors.Leaf(11, shape), TestTensors.AwayFromZero(12, 0.5, 1.5, true, normShape), TestTensors.Leaf(13, normShape)], name: "layer_norm");
    }

    [Fact]
    public void LayerNorm_WithoutAffine_GradientMatchesFiniteDifferences()
    {
        GradCheck.Assert(t => NormOps.LayerNorm(t[0], 7, null, null, 1e-5), [TestTensors.Leaf(14, 3, 7)], name: "layer_norm");
    }

    [Fact]
    public void LayerNorm_WrongTrailingShape_ThrowsNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => new LayerNorm(5).Forward(Tensor.Zeros(2, 4)));
        Assert.Contains("[2, 4]", e.Message);
        Assert.Contains("[5]", e.Message);
    }
}
