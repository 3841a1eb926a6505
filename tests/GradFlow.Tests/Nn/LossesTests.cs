using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

public class LossesTests
{
    private static readonly IndexTensor Labels = IndexTensor.FromArray([2, 0, 4, 4, 1], 5);

    /// <summary>Cross-entropy from its definition: −(1−ε)·log p[y] − (ε/C)·Σ log p, per row.</summary>
    private static double[] CrossEntropyReference(double[] x, int n, int c, int[] y, double eps)
    {
        var r = new double[n];
        for (int i = 0; i < n; i++)
        {
            var row = x.Skip(i * c).Take(c).ToArray();
            double lse = Math.Log(row.Sum(Math.Exp));
            double sumLogp = row.Sum(v => v - lse);
            r[i] = -(1 - eps) * (row[y[i]] - lse) - eps / c * sumLogp;
        }
        return r;
    }

    public static TheoryData<double, Reduction> CeCases => new()
    {
        { 0.0, Reduction.Mean }, { 0.0, Reduction.Sum }, { 0.0, Reduction.None }, { 0.1, Reduction.Mean }, { 0.3, Reduction.None },
    };

    [Theory]
    [MemberData(nameof(CeCases))]
    public void CrossEntropy_MatchesDefinitionAndFiniteDifferences(double smoothing, Reduction reduction)
    {
        var x = TestTensors.Leaf(1, 5, 5);
        var per = CrossEntropyReference(x.ToDoubleArray(), 5, 5, Labels.ToArray(), smoothing);
        var expected = reduction switch { Reduction.Mean => [per.Average()], Reduction.Sum => [per.Sum()], _ => per };
        TestTensors.AllClose(expected, Losses.CrossEntropy(x, Labels, smoothing, reduction).ToDoubleArray(), 1e-12, 1e-14, "cross_entropy");
        GradCheck.Assert(t => Losses.CrossEntropy(t[0], Labels, smoothing, reduction), [x], name: "cross_entropy");
    }

    [Fact]
    public void CrossEntropy_FusedBackward_EqualsComposedLogSoftmaxNll()
    {
        var x = TestTensors.Leaf(2, 5, 5);
        Losses.CrossEntropy(x, Labels).Backward();
        var fused = x.Grad!.ToDoubleArray();
        var x2 = x.Detach().Clone();
        x2.RequiresGrad = true;
        Losses.Nll(x2.LogSoftmax(-1), Labels).Backward();
        TestTensors.AllClose(x2.Grad!.ToDoubleArray(), fused, 1e-12, 1e-15, "fused vs composed");
    }

    [Fact]
    public void CrossEntropy_HugeLogits_StaysFinite()
    {
        var x = Tensor.FromArray([1000f, -1000f, 0f, 0f, 1e4f, 0f], 2, 3);
        var loss = Losses.CrossEntropy(x, IndexTensor.FromArray([1, 1], 2)).Item();
        // row 0: logsumexp 1000 − (−1000) = 2000; row 1: the target is the 1e4 logit, loss ≈ 0
        Assert.Equal(1000, loss, 1e-3);
    }

    [Fact]
    public void CrossEntropy_SingleExample_AcceptsVectorLogits()
    {
        var x = Tensor.FromArray([1.0, 2.0, 3.0]);
        double lse = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3));
        Assert.Equal(lse - 2, Losses.CrossEntropy(x, IndexTensor.FromArray([1], 1)).Item(), 1e-12);
    }

    [Fact]
    public void CrossEntropy_BadTarget_ThrowsNamingPositionAndShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(Tensor.Zeros(2, 3), IndexTensor.FromArray([0, 3], 2)));
        Assert.Contains("target 3 at position 1", e.Message);
        var s = Assert.Throws<ArgumentException>(() => Losses.CrossEntropy(Tensor.Zeros(2, 3), IndexTensor.FromArray([0, 1, 2], 3)));
        Assert.Contains("[3]", s.Message);
        Assert.Contains("[2, 3]", s.Message);
    }

    [Fact]
    public void Nll_MatchesDefinitionAndFiniteDifferences()
    {
        var x = TestTensors.Leaf(3, 5, 5);
        var v = x.ToDoubleArray();
        double expected = -Labels.ToArray().Select((y, i) => v[i * 5 + y]).Average();
        Assert.Equal(expected, Losses.Nll(x, Labels).Item(), 1e-14);
        GradCheck.Assert(t => Losses.Nll(t[0], Labels, Reduction.Sum), [x], name: "nll_loss");
    }

    [Fact]
    public void BinaryCrossEntropyWithLogits_MatchesDefinitionStablyAndFiniteDifferences()
    {
        var x = Tensor.FromArray([-3.0, -0.5, 0.0, 0.7, 2.5, 40.0]);
        var y = Tensor.FromArray([0.0, 1.0, 0.3, 1.0, 0.0, 1.0]);
        var expected = x.ToDoubleArray().Zip(y.ToDoubleArray(), (a, t) =>
        {
            double s = 1 / (1 + Math.Exp(-a));
            return a > 30 ? (1 - t) * a + Math.Exp(-a) : -(t * Math.Log(s) + (1 - t) * Math.Log(1 - s));
        }).ToArray();
        TestTensors.AllClose(expected, Losses.BinaryCrossEntropyWithLogits(x, y, Reduction.None).ToDoubleArray(), 1e-12, 1e-15, "bce");
        x.RequiresGrad = y.RequiresGrad = true;
        GradCheck.Assert(t => Losses.BinaryCrossEntropyWithLogits(t[0], t[1]), [x, y], name: "bce_with_logits");
        // the gradient at x = 0 is σ(0) − y, not a subgradient artefact
        var x0 = Tensor.FromArray([0.0]);
        x0.RequiresGrad = true;
        Losses.BinaryCrossEntropyWithLogits(x0, Tensor.FromArray([0.2])).Backward();
        Assert.Equal(0.3, x0.Grad!.Item(), 1e-15);
    }

    [Theory]
    [InlineData(Reduction.Mean)]
    [InlineData(Reduction.Sum)]
    [InlineData(Reduction.None)]
    public void RegressionLosses_MatchDefinitionsAndFiniteDifferences(Reduction reduction)
    {
        var x = TestTensors.Leaf(4, 3, 7);
        var t = TestTensors.Leaf(5, 3, 7);
        var d = x.ToDoubleArray().Zip(t.ToDoubleArray(), (a, b) => a - b).ToArray();
        double[] Reduce(IEnumerable<double> v) => reduction switch { Reduction.Mean => [v.Average()], Reduction.Sum => [v.Sum()], _ => v.ToArray() };
        TestTensors.AllClose(Reduce(d.Select(v => v * v)), Losses.Mse(x, t, reduction).ToDoubleArray(), 1e-13, 1e-15, "mse");
        TestTensors.AllClose(Reduce(d.Select(Math.Abs)), Losses.L1(x, t, reduction).ToDoubleArray(), 1e-13, 1e-15, "l1");
        const double delta = 0.8;
        TestTensors.AllClose(Reduce(d.Select(v => Math.Abs(v) < delta ? 0.5 * v * v : delta * (Math.Abs(v) - 0.5 * delta))),
            Losses.Huber(x, t, delta, reduction).ToDoubleArray(), 1e-13, 1e-15, "huber");
        GradCheck.Assert(u => Losses.Mse(u[0], u[1], reduction), [x, t], name: "mse_loss");
        GradCheck.Assert(u => Losses.L1(u[0], u[1], reduction), [x, t], name: "l1_loss");
        GradCheck.Assert(u => Losses.Huber(u[0], u[1], delta, reduction), [x, t], name: "huber_loss");
    }

    [Fact]
    public void Mse_ShapeMismatch_ThrowsNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Losses.Mse(Tensor.Zeros(3), Tensor.Zeros(3, 1)));
        Assert.Contains("mse_loss", e.Message);
        Assert.Contains("[3, 1]", e.Message);
    }
}
