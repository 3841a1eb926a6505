using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Optim;

public class GradClipTests
{
    private static Parameter WithGrad(DType dtype, double[] weights, double[] grad, params int[] shape)
    {
        var p = new Parameter(OptimTesting.MakeTensor(dtype, weights).Reshape(shape).Detach());
        p.Grad = OptimTesting.MakeTensor(dtype, grad).Reshape(shape).Detach();
        return p;
    }

    /// <summary>Two parameters with gradients (3,4,0 | 12) of 2-norm 13, and one without a gradient.</summary>
    private static Parameter[] Sample(DType dtype)
    {
        var noGrad = new Parameter(Tensor.Ones(dtype, 2));
        return [WithGrad(dtype, [1, 1, 1], [3, -4, 0], 3), noGrad, WithGrad(dtype, [1], [12], 1)];
    }

    private static double[] AllGrads(Parameter[] ps) => ps.Where(p => p.Grad is not null).SelectMany(p => p.Grad!.ToDoubleArray()).ToArray();

    [Theory]
    [InlineData(DType.Float64)]
    [InlineData(DType.Float32)]
    public void ClipGradNorm_AboveMax_ReturnsNormAndRescalesToMaxNorm(DType dtype)
    {
        var ps = Sample(dtype);
        double total = GradClip.ClipGradNorm(ps, maxNorm: 2.6);
        Assert.Equal(13.0, total, 1e-12);
        var clipped = AllGrads(ps);
        double norm = Math.Sqrt(clipped.Sum(v => v * v));
        Assert.True(Math.Abs(norm - 2.6) <= 1e-6 * 2.6, $"clipped norm {norm:R}");
        double[] direction = [3 / 13.0, -4 / 13.0, 0, 12 / 13.0];
        for (int i = 0; i < direction.Length; i++) Assert.Equal(2.6 * direction[i], clipped[i], 1e-6);
        Assert.Null(ps[1].Grad);
    }

    [Fact]
    public void ClipGradNorm_BelowMax_LeavesGradientsUnchanged()
    {
        var ps = Sample(DType.Float64);
        var before = AllGrads(ps);
        Assert.Equal(13.0, GradClip.ClipGradNorm(ps, maxNorm: 13.5), 1e-12);
        Assert.Equal(before, AllGrads(ps));
    }

    [Fact]
    public void ClipGradNorm_RandomGradients_ReturnsIndependentlyComputedNorm()
    {
        var g = new Generator(42);
        Parameter[] ps =
        [
            new Parameter(Tensor.Zeros(DType.Float32, 7, 13)) { Grad = Tensor.Normal(g, 0, 3, DType.Float32, 7, 13) },
            new Parameter(Tensor.Zeros(DType.Float32, 13)) { Grad = Tensor.Normal(g, 0, 3, DType.Float32, 13) },
        ];
        double expected = Math.Sqrt(AllGrads(ps).Sum(v => v * v));
        double total = GradClip.ClipGradNorm(ps, maxNorm: 1.0);
        Assert.Equal(expected, total, 1e-12);
        double after = Math.Sqrt(AllGrads(ps).Sum(v => v * v));
        Assert.True(Math.Abs(after - 1.0) <= 1e-6, $"clipped norm {after:R}");
    }

    [Fact]
    public void ClipGradNorm_InfinityNorm_UsesLargestMagnitude()
    {
        var ps = Sample(DType.Float64);
        double total = GradClip.ClipGradNorm(ps, maxNorm: 6, normType: double.PositiveInfinity);
        Assert.Equal(12.0, total);
        var clipped = AllGrads(ps);
        Assert.True(Math.Abs(clipped.Max(Math.Abs) - 6) <= 1e-6 * 6);
        Assert.Equal(-4 * 6 / (12 + 1e-6), clipped[1], 1e-15);
    }

    [Fact]
    public void ClipGradNorm_OneNorm_SumsMagnitudes()
    {
        var ps = Sample(DType.Float64);
        Assert.Equal(19.0, GradClip.ClipGradNorm(ps, maxNorm: 100, normType: 1), 1e-12);
        Assert.Equal(Math.Pow(27 + 64 + 1728, 1 / 3.0), GradClip.ClipGradNorm(Sample(DType.Float64), maxNorm: 100, normType: 3), 1e-12);
    }

    [Theory]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "Infinity")]
    public void ClipGradNorm_NonFiniteWithErrorFlag_ThrowsNamingTheNorm(double bad, string shown)
    {
        var ps = Sample(DType.Float64);
        ps[2].Grad = Tensor.FromArray([bad], 1);
        var ex = Assert.Throws<InvalidOperationException>(() => GradClip.ClipGradNorm(ps, maxNorm: 1, errorIfNonfinite: true));
        Assert.Contains("ClipGradNorm", ex.Message);
        Assert.Contains("is " + shown, ex.Message);
        Assert.Equal([3.0, -4.0, 0.0], ps[0].Grad!.ToDoubleArray());
    }

    [Fact]
    public void ClipGradNorm_NonFiniteWithoutErrorFlag_ReturnsIt()
    {
        var ps = Sample(DType.Float64);
        ps[2].Grad = Tensor.FromArray([double.NaN], 1);
        Assert.True(double.IsNaN(GradClip.ClipGradNorm(ps, maxNorm: 1)));
    }

    [Fact]
    public void ClipGradNorm_BadArguments_Throw()
    {
        Assert.Equal("maxNorm", Assert.Throws<ArgumentException>(() => GradClip.ClipGradNorm(Sample(DType.Float64), -1)).ParamName);
        Assert.Equal("normType", Assert.Throws<ArgumentException>(() => GradClip.ClipGradNorm(Sample(DType.Float64), 1, normType: 0)).ParamName);
    }

    [Theory]
    [InlineData(DType.Float64)]
    [InlineData(DType.Float32)]
    public void ClipGradValue_ClampsEachElement(DType dtype)
    {
        var ps = Sample(dtype);
        GradClip.ClipGradValue(ps, 3.5);
        Assert.Equal([3.0, -3.5, 0.0, 3.5], AllGrads(ps));
    }

    /// <summary>
    /// AGC, λ = 0.1, ε = 1e-3, on a 3×4 weight (rows are units) and a 3-vector bias (elements are units);
    /// expected values computed by hand:
    /// row 0: ‖w‖ = 2, ‖g‖ = 1, ratio 0.5 &gt; 0.1 → g·0.1·2/1 = g·0.2;
    /// row 1: ‖w‖ = 10, ‖g‖ = 0.5, ratio 0.05 → unchanged;
    /// row 2: ‖w‖ = 0 → ε, ‖g‖ = 5, → g·0.1·1e-3/5 = g·2e-5;
    /// bias: |w| = (1, 0, 2), |g| = (0.05, 0.5, 1): unchanged; → 0.1·1e-3·sign; → 0.2·sign.
    /// </summary>
    [Theory]
    [InlineData(DType.Float64)]
    [InlineData(DType.Float32)]
    public void ClipGradAdaptive_MatrixRowsAndBiasElements_MatchHandComputed(DType dtype)
    {
        var weight = WithGrad(dtype,
            [1, 1, 1, 1, /**/ 6, 8, 0, 0, /**/ 0, 0, 0, 0],
            [0.5, -0.5, 0.5, 0.5, /**/ 0.3, 0, -0.4, 0, /**/ 3, 0, 0, -4],
            3, 4);
        var bias = WithGrad(dtype, [1, 0, -2], [0.05, -0.5, 1], 3);
        GradClip.ClipGradAdaptive([weight, bias], clipping: 0.1, eps: 1e-3);

        double[] expectedWeight = [0.1, -0.1, 0.1, 0.1, /**/ 0.3, 0, -0.4, 0, /**/ 6e-5, 0, 0, -8e-5];
        double[] expectedBias = [0.05, -1e-4, 0.2];
        double tol = dtype == DType.Float64 ? 1e-14 : 1e-6; // relative; zeros must stay exactly zero
        var w = weight.Grad!.ToDoubleArray();
        var b = bias.Grad!.ToDoubleArray();
        for (int i = 0; i < expectedWeight.Length; i++)
            Assert.True(Math.Abs(w[i] - expectedWeight[i]) <= tol * Math.Abs(expectedWeight[i]), $"weight grad {i}: expected {expectedWeight[i]}, got {w[i]:R}");
        for (int i = 0; i < expectedBias.Length; i++)
            Assert.True(Math.Abs(b[i] - expectedBias[i]) <= tol * Math.Abs(expectedBias[i]), $"bias grad {i}: expected {expectedBias[i]}, got {b[i]:R}");
    }
}
