using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class ElementwiseKernelTests
{
    public static TheoryData<int> Lengths => KernelLengths.All;

    /// <summary>Values in about [−3, 3] with exact zeros and the clamp boundaries sprinkled in.</summary>
    private static float[] Values(int n, int seed)
    {
        var x = KernelLengths.Values(n, seed);
        for (int i = 0; i < n; i += 5) x[i] = (i / 5 % 4) switch { 0 => 0f, 1 => -0f, 2 => -1f, _ => 2f };
        return x;
    }

    private static double SignRef(double x) => x > 0 ? 1 : x < 0 ? -1 : 0;

    [Theory]
    [MemberData(nameof(Lengths))]
    public void AllKernels_Float_MatchReferenceFormulas_OnEveryPath(int n)
    {
        var x = Values(n, seed: n);
        var dy = KernelLengths.Values(n, seed: n + 1);
        var a = KernelLengths.Values(n, seed: n + 2);
        var b = KernelLengths.Values(n, seed: n + 3);
        var cond = Enumerable.Range(0, n).Select(i => i % 3 == 0 ? 0f : i % 3 == 1 ? 1f : -2.5f).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var sign = new float[n];
            var abs = new float[n];
            var clamp = new float[n];
            var where = new float[n];
            ElementwiseKernels.Sign<float>(x, sign, isa);
            ElementwiseKernels.AbsBackward<float>(x, dy, abs, isa);
            ElementwiseKernels.ClampBackward<float>(x, -1f, 2f, dy, clamp, isa);
            ElementwiseKernels.Where<float>(cond, a, b, where, isa);
            string at = $"{KernelIsa.Name(isa)} n={n}";
            for (int i = 0; i < n; i++)
            {
                Assert.True(sign[i] == SignRef(x[i]), $"sign {at} x={x[i]}: {sign[i]}");
                Assert.True(abs[i] == SignRef(x[i]) * dy[i], $"abs backward {at} x={x[i]}: {abs[i]}");
                Assert.True(clamp[i] == (x[i] >= -1 && x[i] <= 2 ? dy[i] : 0), $"clamp backward {at} x={x[i]}: {clamp[i]}");
                Assert.True(where[i] == (cond[i] != 0 ? a[i] : b[i]), $"where {at} i={i}: {where[i]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void AllKernels_Double_MatchReferenceFormulas_OnEveryPath(int n)
    {
        var x = Values(n, seed: n + 10).Select(v => (double)v).ToArray();
        var dy = KernelLengths.Values(n, seed: n + 11).Select(v => (double)v).ToArray();
        var cond = Enumerable.Range(0, n).Select(i => i % 2 == 0 ? 0.0 : 3.0).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var sign = new double[n];
            var abs = new double[n];
            var clamp = new double[n];
            var where = new double[n];
            ElementwiseKernels.Sign<double>(x, sign, isa);
            ElementwiseKernels.AbsBackward<double>(x, dy, abs, isa);
            ElementwiseKernels.ClampBackward<double>(x, -1.0, 2.0, dy, clamp, isa);
            ElementwiseKernels.Where<double>(cond, x, dy, where, isa);
            string at = $"{KernelIsa.Name(isa)} n={n}";
            for (int i = 0; i < n; i++)
            {
                Assert.True(sign[i] == SignRef(x[i]), $"sign {at} x={x[i]}: {sign[i]}");
                Assert.True(abs[i] == SignRef(x[i]) * dy[i], $"abs backward {at} x={x[i]}: {abs[i]}");
                Assert.True(clamp[i] == (x[i] >= -1 && x[i] <= 2 ? dy[i] : 0), $"clamp backward {at} x={x[i]}: {clamp[i]}");
                Assert.True(where[i] == (cond[i] != 0 ? x[i] : dy[i]), $"where {at} i={i}: {where[i]}");
            }
        }
    }

    [Fact]
    public void AbsBackward_FiniteDifferencesAwayFromZero_Match()
    {
        double[] x = [-2.5, -0.3, 0.7, 1.9];
        double[] ones = [1, 1, 1, 1];
        var d = new double[4];
        ElementwiseKernels.AbsBackward<double>(x, ones, d);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal((Math.Abs(x[i] + 1e-6) - Math.Abs(x[i] - 1e-6)) / 2e-6, d[i], 1e-9);
    }

    [Fact]
    public void SpecialValues_FollowDocumentedRules_OnEveryPath()
    {
        // cycled through 67 positions so they land in vector lanes and the scalar tail
        float[] specials = [0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e-40f, -1e-40f];
        var x = Enumerable.Range(0, 67).Select(i => specials[i % specials.Length]).ToArray();
        var dy = Enumerable.Repeat(3f, x.Length).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var sign = new float[x.Length];
            var abs = new float[x.Length];
            var clamp = new float[x.Length];
            var where = new float[x.Length];
            ElementwiseKernels.Sign<float>(x, sign, isa);
            ElementwiseKernels.AbsBackward<float>(x, dy, abs, isa);
            ElementwiseKernels.ClampBackward<float>(x, 0f, 1f, dy, clamp, isa);
            ElementwiseKernels.Where<float>(x, dy, new float[x.Length], where, isa);
            for (int i = 0; i < x.Length; i++)
            {
                float v = x[i];
                float wantSign = float.IsNaN(v) ? float.NaN : v > 0 ? 1 : v < 0 ? -1 : 0;
                Assert.Equal(wantSign, sign[i]);
                Assert.Equal(float.IsNaN(v) ? float.NaN : 3 * wantSign, abs[i]);
                Assert.Equal(v >= 0 && v <= 1 ? 3f : 0f, clamp[i]); // NaN and the boundaries: PyTorch's rule
                Assert.Equal(v != 0 ? 3f : 0f, where[i]); // NaN ≠ 0 counts as true
            }
        }
    }

    [Fact]
    public void Kernels_MismatchedLengths_ThrowNamingTheOp()
    {
        var ex = Assert.Throws<ArgumentException>(() => ElementwiseKernels.Where<float>(new float[4], new float[4], new float[3], new float[4]));
        Assert.Contains("where", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => ElementwiseKernels.AbsBackward<float>(new float[4], new float[4], new float[2]));
        Assert.Contains("abs backward", ex.Message);
    }
}
