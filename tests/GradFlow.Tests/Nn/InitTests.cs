using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Tests.Nn;

public class InitTests
{
    /// <summary>Sample mean and variance in double.</summary>
    private static (double Mean, double Var) Moments(Tensor t)
    {
        var v = t.ToDoubleArray();
        double mean = v.Average();
        double var = v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1);
        return (mean, var);
    }

    /// <summary>
    /// Checks mean 0 and the stated variance within 5 standard errors: SE(mean) = σ/√n,
    /// SE(var) = σ²·√((κ − 1)/n) with kurtosis κ = 3 (normal) or 9/5 (uniform).
    /// </summary>
    private static void AssertMoments(Tensor t, double expectedVar, bool uniform)
    {
        var (mean, var) = Moments(t);
        int n = t.Count;
        double kurtosis = uniform ? 1.8 : 3.0;
        Assert.True(Math.Abs(mean) < 5 * Math.Sqrt(expectedVar / n), $"mean {mean}, expected 0 (var {expectedVar}, n {n})");
        Assert.True(Math.Abs(var - expectedVar) < 5 * expectedVar * Math.Sqrt((kurtosis - 1) / n), $"variance {var}, expected {expectedVar}");
    }

    [Theory]
    [InlineData(400, 300, 1.0)]
    [InlineData(256, 512, 5.0 / 3.0)]
    public void XavierUniform_Statistics_MatchGainAndFans(int fanOut, int fanIn, double gain)
    {
        var w = Init.XavierUniform(Tensor.Zeros(fanOut, fanIn), new Generator(1), gain);
        double bound = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
        Assert.All(w.ToArray(), v => Assert.InRange(v, -bound, bound));
        AssertMoments(w, bound * bound / 3, uniform: true);
    }

    [Fact]
    public void XavierNormal_Statistics_MatchGainAndFans()
    {
        var w = Init.XavierNormal(Tensor.Zeros(300, 500), new Generator(2), gain: 2);
        AssertMoments(w, 4 * 2.0 / 800, uniform: false);
    }

    [Theory]
    [InlineData(Nonlinearity.Relu, FanMode.FanIn)]
    [InlineData(Nonlinearity.Relu, FanMode.FanOut)]
    [InlineData(Nonlinearity.Tanh, FanMode.FanIn)]
    [InlineData(Nonlinearity.Selu, FanMode.FanIn)]
    public void KaimingNormal_Statistics_MatchGainOverFan(Nonlinearity nonlinearity, FanMode mode)
    {
        var w = Init.KaimingNormal(Tensor.Zeros(200, 700), new Generator(3), mode: mode, nonlinearity: nonlinearity);
        double gain = nonlinearity switch { Nonlinearity.Relu => Math.Sqrt(2), Nonlinearity.Tanh => 5.0 / 3, _ => 0.75 };
        int fan = mode == FanMode.FanIn ? 700 : 200;
        AssertMoments(w, gain * gain / fan, uniform: false);
    }

    [Fact]
    public void KaimingUniform_LeakyReluSlope_UsesItsGain()
    {
        var w = Init.KaimingUniform(Tensor.Zeros(300, 400), new Generator(4), a: 0.2, nonlinearity: Nonlinearity.LeakyRelu);
        double gain2 = 2.0 / (1 + 0.04);
        double bound = Math.Sqrt(3 * gain2 / 400);
        Assert.All(w.ToArray(), v => Assert.InRange(v, -bound, bound));
        AssertMoments(w, gain2 / 400, uniform: true);
    }

    [Fact]
    public void LecunNormal_Statistics_AreOneOverFanIn()
    {
        AssertMoments(Init.LecunNormal(Tensor.Zeros(500, 250), new Generator(5)), 1.0 / 250, uniform: false);
    }

    [Fact]
    public void CalculateGain_MatchesPyTorchTable()
    {
        Assert.Equal(1.0, Init.CalculateGain(Nonlinearity.Linear));
        Assert.Equal(1.0, Init.CalculateGain(Nonlinearity.Sigmoid));
        Assert.Equal(5.0 / 3.0, Init.CalculateGain(Nonlinearity.Tanh));
        Assert.Equal(Math.Sqrt(2), Init.CalculateGain(Nonlinearity.Relu));
        Assert.Equal(Math.Sqrt(2 / (1 + 0.01 * 0.01)), Init.CalculateGain(Nonlinearity.LeakyRelu));
        Assert.Equal(Math.Sqrt(2 / 1.25), Init.CalculateGain(Nonlinearity.LeakyRelu, 0.5));
        Assert.Equal(0.75, Init.CalculateGain(Nonlinearity.Selu));
    }

    [Theory]
    [InlineData(64, 64)]
    [InlineData(100, 30)]
    [InlineData(30, 100)]
    public void Orthogonal_RowsOrColumnsAreOrthonormalTimesGain(int rows, int cols)
    {
        const double gain = 1.5;
        var w = Init.Orthogonal(Tensor.Zeros(DType.Float64, rows, cols), new Generator(6), gain).ToDoubleArray();
        bool byRows = rows <= cols; // the smaller set of vectors is orthonormal
        int count = byRows ? rows : cols, length = byRows ? cols : rows;
        double At(int v, int i) => byRows ? w[v * cols + i] : w[i * cols + v];
        for (int a = 0; a < count; a++)
            for (int b = a; b < count; b++)
            {
                double dot = 0;
                for (int i = 0; i < length; i++) dot += At(a, i) * At(b, i);
                Assert.Equal(a == b ? gain * gain : 0.0, dot, 1e-10);
            }
    }

    [Fact]
    public void Orthogonal_SameSeed_SameWeights_DifferentSeed_Different()
    {
        var a = Init.Orthogonal(Tensor.Zeros(8, 8), new Generator(7)).ToArray();
        var b = Init.Orthogonal(Tensor.Zeros(8, 8), new Generator(7)).ToArray();
        var c = Init.Orthogonal(Tensor.Zeros(8, 8), new Generator(8)).ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Eye_SetsIdentity()
    {
        var w = Init.Eye(Tensor.Full(7, 3, 4)).ToArray();
        Assert.Equal([1f, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], w);
    }

    [Fact]
    public void Fans_Vector_ThrowsNamingShape()
    {
        var e = Assert.Throws<ArgumentException>(() => Init.XavierUniform(Tensor.Zeros(5), new Generator(1)));
        Assert.Contains("[5]", e.Message);
    }

    [Fact]
    public void Init_OnParameterRequiringGrad_WorksAndKeepsLeaf()
    {
        var p = new Parameter(Tensor.Zeros(10, 10));
        Init.KaimingUniform(p.Data, new Generator(1));
        Assert.True(p.Data.IsLeaf);
        Assert.True(p.Data.RequiresGrad);
        Assert.Contains(p.Data.ToArray(), v => v != 0);
    }
}
