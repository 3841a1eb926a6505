using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// The Winograd F(2×2, 3×3) path (<see cref="ConvWinograd"/>) against the direct convolution in float64, within a bound
/// derived from float32 rounding, on every instruction-set path.
/// </summary>
/// <remarks>
/// The bound: Winograd computes each output as <c>y = Σ_c Σ_ξ a_ξ·U_ξ·V_ξ (+ bias)</c>, U = G g Gᵀ and V = Bᵀ d B, every
/// term of which passes through at most C + 8 float32 roundings: two adds in V, the one rounding of U, C fused
/// multiply-adds over the input channels, four adds in the output transform Aᵀ M A, one for the bias (Higham's
/// γ_n = n·u/(1 − n·u), u = 2⁻²⁴). One more n covers U's double evaluation and the float64 reference (both below 10⁻¹⁵
/// relative). So <c>|y − y_exact| ≤ γ_(C+9)·(Σ_c Σ_ξ |a_ξ|·(|G||g||G|ᵀ)_ξ·(|Bᵀ||d||B|)_ξ + |bias|)</c>, the magnitude
/// computed here in float64 from the inputs with the absolute values of the transform matrices. It is a worst case, not
/// the typical error, and it is not loosened: a wrong transform entry or tile offset produces errors of the size of the
/// outputs, orders of magnitude above it.
/// </remarks>
public class ConvWinogradTests
{
    public static TheoryData<int, int, int, int, int, int> Shapes => new()
    {
        // N, C, H, W, Cout, P (3×3, stride 1)
        { 1, 3, 7, 5, 5, 1 },     // odd sizes, C and Cout not multiples of any vector width
        { 3, 5, 9, 11, 17, 0 },   // no padding: odd output 7×9
        { 1, 17, 6, 7, 3, 1 },
        { 3, 16, 28, 28, 16, 1 }, // cnn-resnet's layer
        { 2, 4, 5, 6, 3, 2 },     // padding 2 (the input gradient of padding 0)
        { 2, 1, 1, 1, 2, 1 },     // one pixel: one tile, three quarters of it dropped
        { 1, 2, 3, 3, 1, 0 },     // one output pixel
        { 1, 6, 13, 40, 9, 1 },   // long rows: several blocks per image
        { 5, 8, 14, 14, 8, 1 },
        { 5, 16, 7, 7, 16, 1 },
        { 5, 32, 4, 4, 32, 1 },
    };

    private static ConvShape Shape(int n, int c, int h, int w, int cout, int p) => new(n, c, h, w, cout, 3, 3, 1, 1, p, p, 1, 1, 1);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_EveryInstructionSet_MatchesFloat64WithinTheRoundingBound(int n, int c, int h, int w, int cout, int p)
    {
        var s = Shape(n, c, h, w, cout, p);
        var x = KernelLengths.Values(s.N * s.C * s.H * s.W, 1);
        var wt = KernelLengths.Values(s.Cout * s.C * 9, 2);
        var bias = KernelLengths.Values(s.Cout, 3);
        var (exact, bound) = Reference(s, x, wt, bias);
        foreach (var isa in KernelIsa.All)
        {
            var y = Guarded(exact.Length);
            ConvKernels.ForwardWinograd(s, Guarded(x), wt, bias, y.AsSpan(0, exact.Length), isa);
            for (int i = 0; i < exact.Length; i++)
                Assert.True(Math.Abs(y[i] - exact[i]) <= bound[i], $"{isa} {s}: y[{i}] = {y[i]}, expected {exact[i]} ± {bound[i]}");
            AssertGuardIntact(y, exact.Length);
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void InputGradient_EveryInstructionSet_MatchesFloat64WithinTheRoundingBound(int n, int c, int h, int w, int cout, int p)
    {
        var s = Shape(n, c, h, w, cout, p);
        var wt = KernelLengths.Values(s.Cout * s.C * 9, 4);
        var dy = KernelLengths.Values(s.N * s.Cout * s.OH * s.OW, 5);
        // dx by the adjoint of the direct convolution, in float64.
        var exact = new double[s.N * s.C * s.H * s.W];
        for (int b = 0; b < s.N; b++)
            for (int o = 0; o < s.Cout; o++)
                for (int i = 0; i < s.OH; i++)
                    for (int j = 0; j < s.OW; j++)
                        for (int ci = 0; ci < s.C; ci++)
                            for (int a = 0; a < 3; a++)
                                for (int e = 0; e < 3; e++)
                                {
                                    int ih = i - p + a, iw = j - p + e;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    exact[((b * s.C + ci) * s.H + ih) * s.W + iw] += (double)wt[((o * s.C + ci) * 3 + a) * 3 + e] * dy[((b * s.Cout + o) * s.OH + i) * s.OW + j];
                                }
        // The bound of the forward that computes it: dy with the flipped, transposed weight at padding 2 − P.
        var t = Shape(s.N, s.Cout, s.OH, s.OW, s.C, 2 - p);
        var flipped = new float[wt.Length];
        for (int ci = 0; ci < s.C; ci++)
            for (int o = 0; o < s.Cout; o++)
                for (int a = 0; a < 3; a++)
                    for (int e = 0; e < 3; e++)
                        flipped[((ci * s.Cout + o) * 3 + a) * 3 + e] = wt[((o * s.C + ci) * 3 + 2 - a) * 3 + 2 - e];
        var (_, bound) = Reference(t, dy, flipped, new float[s.C]);
        foreach (var isa in KernelIsa.All)
        {
            var dx = Guarded(exact.Length);
            ConvKernels.BackwardInputWinograd(s, wt, Guarded(dy), dx.AsSpan(0, exact.Length), isa);
            for (int i = 0; i < exact.Length; i++)
                Assert.True(Math.Abs(dx[i] - exact[i]) <= bound[i], $"{isa} {s}: dx[{i}] = {dx[i]}, expected {exact[i]} ± {bound[i]}");
            AssertGuardIntact(dx, exact.Length);
        }
    }

    [Fact]
    public void EveryInstructionSet_GivesTheSameBits()
    {
        var s = Shape(2, 5, 11, 9, 6, 1);
        var x = KernelLengths.Values(s.N * s.C * s.H * s.W, 6);
        var wt = KernelLengths.Values(s.Cout * s.C * 9, 7);
        float[]? first = null;
        foreach (var isa in KernelIsa.All)
        {
            var y = new float[s.N * s.Cout * s.OH * s.OW];
            ConvKernels.ForwardWinograd(s, x, wt, default, y, isa);
            if (first is null) first = y;
            else Assert.Equal(first, y);
        }
    }

    [Fact]
    public void OneAndTwoThreads_AreBitwiseEqual()
    {
        var s = Shape(8, 16, 28, 28, 16, 1);
        var x = KernelLengths.Values(s.N * s.C * s.H * s.W, 8);
        var wt = KernelLengths.Values(16 * 16 * 9, 9);
        var gy = KernelLengths.Values(x.Length, 10);
        (float[], float[]) Run()
        {
            var (y, dx) = (new float[x.Length], new float[x.Length]);
            ConvKernels.ForwardWinograd(s, x, wt, default, y, KernelIsa.Best);
            ConvKernels.BackwardInputWinograd(s, wt, gy, dx, KernelIsa.Best);
            return (y, dx);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
    }

    [Theory]
    [InlineData(false, 4, 4, true)]    // 256-bit-wide FMAs: Winograd from 4 channels
    [InlineData(false, 3, 16, false)]
    [InlineData(false, 16, 3, false)]
    [InlineData(true, 16, 16, false)]  // full-width 512-bit FMAs: the flat path up to 16 channels (cnn-resnet's layers)
    [InlineData(true, 31, 64, false)]
    [InlineData(true, 32, 32, true)]   // and Winograd from 32
    [InlineData(true, 64, 40, true)]
    public void TheChoiceOfWinograd_FollowsTheChannelsAndTheDatapathWidth(bool fullWidth512, int c, int cout, bool winograd)
    {
        Assert.Equal(winograd, ConvKernels.PrefersWinograd(Shape(2, c, 8, 8, cout, 1), fullWidth512));
        // shapes Winograd does not take stay on the other paths whatever the machine
        Assert.False(ConvKernels.PrefersWinograd(new ConvShape(2, c, 8, 8, cout, 3, 3, 2, 2, 1, 1, 1, 1, 1), fullWidth512));
    }

    [Fact]
    public void TheFullWidthDatapath_IsReportedOnlyWithTheAvx512Path_AndTheDispatchFollowsIt()
    {
        // a fixed property of the machine: read once, and never claimed where the AVX-512 kernels do not run
        if (KernelIsa.Best != InstructionSet.Avx512) Assert.False(KernelIsa.FullWidth512);
        // the public forward and input gradient take the path the rule names for this machine (the two paths round
        // differently, so the bits show which one ran)
        var s = Shape(2, 16, 9, 8, 16, 1);
        var x = KernelLengths.Values(s.N * s.C * s.H * s.W, 12);
        var wt = KernelLengths.Values(s.Cout * s.C * 9, 13);
        var gy = KernelLengths.Values(s.N * s.Cout * s.OH * s.OW, 14);
        var (y, wantY, winY) = (new float[gy.Length], new float[gy.Length], new float[gy.Length]);
        var (dx, wantDx, winDx) = (new float[x.Length], new float[x.Length], new float[x.Length]);
        ConvKernels.Forward<float>(s, x, wt, default, y);
        ConvKernels.BackwardInput<float>(s, wt, gy, dx);
        ConvKernels.ForwardFlat(s, x, wt, default, wantY, KernelIsa.Best);
        ConvKernels.BackwardInputFlat(s, wt, gy, wantDx, KernelIsa.Best);
        ConvKernels.ForwardWinograd(s, x, wt, default, winY, KernelIsa.Best);
        ConvKernels.BackwardInputWinograd(s, wt, gy, winDx, KernelIsa.Best);
        Assert.NotEqual(wantY, winY);
        if (ConvKernels.PrefersWinograd(s, KernelIsa.FullWidth512)) (wantY, wantDx) = (winY, winDx);
        Assert.Equal(wantY, y);
        Assert.Equal(wantDx, dx);
    }

    [Fact]
    public void ShapesItDoesNotTake_ThrowNamingTheShape()
    {
        foreach (var s in new ConvShape[]
                 {
                     new(1, 2, 6, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1), // stride 2
                     new(1, 2, 6, 6, 2, 5, 5, 1, 1, 2, 2, 1, 1, 1), // 5×5
                     new(1, 2, 6, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 2), // groups
                     new(1, 2, 6, 6, 2, 3, 3, 1, 1, 3, 3, 1, 1, 1), // padding 3
                     new(1, 2, 9, 9, 2, 3, 3, 1, 1, 1, 1, 2, 2, 1), // dilation 2
                 })
        {
            var ex = Assert.Throws<ArgumentException>(() => ConvKernels.ForwardWinograd(s, new float[s.N * s.C * s.H * s.W],
                new float[s.Cout * s.GroupRows], default, new float[s.N * s.Cout * s.OH * s.OW], KernelIsa.Best));
            Assert.Contains("Winograd", ex.Message);
            Assert.Contains(s.ToString(), ex.Message);
        }
    }

    /// <summary>Guard floats after an array: the kernel reads and writes whole vectors near row ends and must stay inside its spans.</summary>
    private const int Guard = 64;

    /// <summary>An output array with NaN guards after its <paramref name="length"/> elements (the span passed is the front).</summary>
    private static float[] Guarded(int length)
    {
        var a = new float[length + Guard];
        a.AsSpan(length).Fill(float.NaN);
        return a;
    }

    /// <summary>An input as the front of a longer array whose tail is NaN: a read past the span that reached a result would show.</summary>
    private static ReadOnlySpan<float> Guarded(float[] values)
    {
        var a = Guarded(values.Length);
        values.CopyTo(a, 0);
        return a.AsSpan(0, values.Length);
    }

    private static void AssertGuardIntact(float[] a, int length)
    {
        for (int i = length; i < a.Length; i++) Assert.True(float.IsNaN(a[i]), $"element {i - length} past the output was written");
    }

    /// <summary>The direct convolution in float64 and, per output, the rounding bound of the remarks above.</summary>
    private static (double[] Exact, double[] Bound) Reference(ConvShape s, float[] x, float[] w, float[] bias)
    {
        double[,] bt = { { 1, 0, -1, 0 }, { 0, 1, 1, 0 }, { 0, -1, 1, 0 }, { 0, 1, 0, -1 } };
        double[,] g = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 }, { 0, 0, 1 } };
        double[,] at = { { 1, 1, 1, 0 }, { 0, 1, -1, -1 } };
        const double u = 1.0 / (1 << 24);
        double gamma = (s.C + 9) * u / (1 - (s.C + 9) * u);
        int oh = s.OH, ow = s.OW;
        var exact = new double[s.N * s.Cout * oh * ow];
        var bound = new double[exact.Length];
        // |U| = |G||g||G|ᵀ per (o, c).
        var absU = new double[s.Cout, s.C, 4, 4];
        for (int o = 0; o < s.Cout; o++)
            for (int c = 0; c < s.C; c++)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        for (int a = 0; a < 3; a++)
                            for (int b = 0; b < 3; b++)
                                absU[o, c, i, j] += Math.Abs(g[i, a]) * Math.Abs(w[((o * s.C + c) * 3 + a) * 3 + b]) * Math.Abs(g[j, b]);
        double Pixel(int n, int c, int r, int q) => r < 0 || r >= s.H || q < 0 || q >= s.W ? 0 : x[((n * s.C + c) * s.H + r) * s.W + q];
        var absV = new double[s.C, 4, 4];
        for (int n = 0; n < s.N; n++)
            for (int th = 0; 2 * th < oh; th++)
                for (int tw = 0; 2 * tw < ow; tw++)
                {
                    // |V| = |Bᵀ||d||B| of the tile's 4×4 window, per input channel.
                    Array.Clear(absV);
                    for (int c = 0; c < s.C; c++)
                        for (int i = 0; i < 4; i++)
                            for (int j = 0; j < 4; j++)
                                for (int a = 0; a < 4; a++)
                                    for (int b = 0; b < 4; b++)
                                        absV[c, i, j] += Math.Abs(bt[i, a]) * Math.Abs(Pixel(n, c, 2 * th - s.PH + a, 2 * tw - s.PW + b)) * Math.Abs(bt[j, b]);
                    for (int o = 0; o < s.Cout; o++)
                        for (int di = 0; di < 2 && 2 * th + di < oh; di++)
                            for (int dj = 0; dj < 2 && 2 * tw + dj < ow; dj++)
                            {
                                int r = 2 * th + di, q = 2 * tw + dj, at0 = ((n * s.Cout + o) * oh + r) * ow + q;
                                double sum = bias[o], mag = Math.Abs(bias[o]);
                                for (int c = 0; c < s.C; c++)
                                {
                                    for (int a = 0; a < 3; a++)
                                        for (int b = 0; b < 3; b++)
                                            sum += (double)w[((o * s.C + c) * 3 + a) * 3 + b] * Pixel(n, c, r - s.PH + a, q - s.PW + b);
                                    for (int i = 0; i < 4; i++)
                                        for (int j = 0; j < 4; j++)
                                            mag += Math.Abs(at[di, i]) * Math.Abs(at[dj, j]) * absU[o, c, i, j] * absV[c, i, j];
                                }
                                exact[at0] = sum;
                                bound[at0] = gamma * mag;
                            }
                }
        return (exact, bound);
    }
}
