using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class NormKernelTests
{
    public static TheoryData<int> Lengths => KernelLengths.All;

    private const int Segments = 3;

    /// <summary>Values in about [97, 103]: a large mean, so deviations must be taken from the mean, not from E[x²] − μ².</summary>
    private static float[] Shifted(int count, int seed) => KernelLengths.Values(count, seed).Select(v => v + 100f).ToArray();

    private static double[] SegmentMeans(float[] x, int length)
    {
        var mean = new double[Segments];
        for (int s = 0; s < Segments; s++)
            for (int j = 0; j < length; j++) mean[s] += x[s * length + j] / (double)length;
        return mean;
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentSumsAndSquaredDeviations_EveryPath_MatchDoubleReference(int length)
    {
        var x = Shifted(Segments * length, length);
        var mean = SegmentMeans(x, length);
        foreach (var isa in KernelIsa.All)
        {
            var sum = new double[Segments];
            var ss = new double[Segments];
            NormKernels.SegmentSums<float>(x, Segments, length, sum, isa);
            NormKernels.SegmentSquaredDeviations<float>(x, Segments, length, mean, ss, isa);
            for (int s = 0; s < Segments; s++)
            {
                double refSum = 0, refSs = 0;
                for (int j = 0; j < length; j++)
                {
                    float xv = x[s * length + j];
                    refSum += xv;
                    // float deviation from the float mean, as the kernel: exact up to float rounding of x − μ
                    double d = (double)(xv - (float)mean[s]);
                    refSs += d * d;
                }
                Assert.True(Math.Abs(sum[s] - refSum) <= 1e-6 * Math.Abs(refSum), $"{isa} n={length} segment {s}: sum {sum[s]} vs {refSum}");
                Assert.True(Math.Abs(ss[s] - refSs) <= 1e-5 * refSs + 1e-9, $"{isa} n={length} segment {s}: ss {ss[s]} vs {refSs}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentMoments_EveryPath_MatchDoubleReference(int length)
    {
        var x = Shifted(Segments * length, length + 13);
        foreach (var isa in KernelIsa.All)
        {
            var (sum, center, ss) = (new double[Segments], new double[Segments], new double[Segments]);
            NormKernels.SegmentMoments<float>(x, Segments, length, sum, center, ss, isa);
            for (int s = 0; s < Segments; s++)
            {
                double refSum = 0;
                for (int j = 0; j < length; j++) refSum += x[s * length + j];
                Assert.True(Math.Abs(sum[s] - refSum) <= 1e-6 * Math.Abs(refSum), $"{isa} n={length} segment {s}: sum {sum[s]} vs {refSum}");
                // the center is the segment's own mean rounded to float, and ss the squared deviations around it
                Assert.Equal((double)(float)(sum[s] / length), center[s]);
                double refSs = 0;
                for (int j = 0; j < length; j++)
                {
                    double d = (double)(x[s * length + j] - (float)center[s]);
                    refSs += d * d;
                }
                Assert.True(Math.Abs(ss[s] - refSs) <= 1e-5 * refSs + 1e-9, $"{isa} n={length} segment {s}: ss {ss[s]} vs {refSs}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentGradientSums_EveryPath_MatchDoubleReference(int length)
    {
        var x = Shifted(Segments * length, length);
        var g = KernelLengths.Values(Segments * length, length + 7);
        var mean = SegmentMeans(x, length);
        foreach (var isa in KernelIsa.All)
        {
            var sumG = new double[Segments];
            var sumGDev = new double[Segments];
            NormKernels.SegmentGradientSums<float>(g, x, Segments, length, mean, sumG, sumGDev, isa);
            for (int s = 0; s < Segments; s++)
            {
                double r1 = 0, r2 = 0, m1 = 0, m2 = 0;
                for (int j = 0; j < length; j++)
                {
                    int at = s * length + j;
                    double d = (double)(x[at] - (float)mean[s]);
                    r1 += g[at];
                    r2 += g[at] * d;
                    m1 += Math.Abs(g[at]);
                    m2 += Math.Abs(g[at] * d);
                }
                Assert.True(Math.Abs(sumG[s] - r1) <= 1e-6 * m1 + 1e-9, $"{isa} n={length}: Σg {sumG[s]} vs {r1}");
                Assert.True(Math.Abs(sumGDev[s] - r2) <= 1e-6 * m2 + 1e-9, $"{isa} n={length}: Σg(x−μ) {sumGDev[s]} vs {r2}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentAffineAndGradient_EveryPath_MatchScalarDefinition(int length)
    {
        var x = Shifted(Segments * length, length);
        var g = KernelLengths.Values(Segments * length, length + 3);
        var mean = SegmentMeans(x, length);
        double[] scale = [0.5, -1.25, 2.0], shift = [0.1, 0, -3], a = [1.5, 0.25, -2], b = [-0.3, 0.7, 0], c = [0.01, -0.2, 1];
        foreach (var isa in KernelIsa.All)
        {
            var y = new float[x.Length];
            var dx = new float[x.Length];
            NormKernels.SegmentAffine<float>(x, Segments, length, mean, scale, shift, y, isa);
            NormKernels.SegmentAffineGradient<float>(g, x, Segments, length, mean, a, b, c, dx, isa);
            for (int s = 0; s < Segments; s++)
                for (int j = 0; j < length; j++)
                {
                    int at = s * length + j;
                    double dev = x[at] - (float)mean[s];
                    double ry = dev * scale[s] + shift[s], rdx = a[s] * g[at] + b[s] * dev + c[s];
                    Assert.True(Math.Abs(y[at] - ry) <= 1e-5 * (Math.Abs(dev * scale[s]) + Math.Abs(shift[s])) + 1e-6, $"{isa} n={length} at {at}: y {y[at]} vs {ry}");
                    Assert.True(Math.Abs(dx[at] - rdx) <= 1e-5 * (Math.Abs(a[s] * g[at]) + Math.Abs(b[s] * dev) + Math.Abs(c[s])) + 1e-6,
                        $"{isa} n={length} at {at}: dx {dx[at]} vs {rdx}");
                }
        }
    }

    [Fact]
    public void SegmentPasses_OneAndTwoThreads_AreBitwiseEqual()
    {
        const int segments = 64 * 16, length = 784;
        var x = Shifted(segments * length, 1);
        var g = KernelLengths.Values(segments * length, 2);
        var mean = Enumerable.Range(0, segments).Select(s => 100.0 + s % 3 * 0.01).ToArray();
        var ones = Enumerable.Repeat(0.5, segments).ToArray();
        (double[], double[], double[], float[], float[]) Run()
        {
            var sum = new double[segments];
            var s1 = new double[segments];
            var s2 = new double[segments];
            var y = new float[x.Length];
            var dx = new float[x.Length];
            NormKernels.SegmentSums<float>(x, segments, length, sum);
            NormKernels.SegmentGradientSums<float>(g, x, segments, length, mean, s1, s2);
            NormKernels.SegmentAffine<float>(x, segments, length, mean, ones, ones, y);
            NormKernels.SegmentAffineGradient<float>(g, x, segments, length, mean, ones, ones, ones, dx);
            return (sum, s1, s2, y, dx);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
        Assert.Equal(one.Item4, two.Item4);
        Assert.Equal(one.Item5, two.Item5);
    }

    [Fact]
    public void SegmentMoments_OneAndTwoThreads_AreBitwiseEqual()
    {
        const int segments = 64 * 16, length = 784;
        var x = Shifted(segments * length, 3);
        (double[], double[], double[]) Run()
        {
            var (sum, center, ss) = (new double[segments], new double[segments], new double[segments]);
            NormKernels.SegmentMoments<float>(x, segments, length, sum, center, ss);
            return (sum, center, ss);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
    }

    [Fact]
    public void SegmentMoments_WrongLengths_ThrowNamingTheSpans()
    {
        var ex = Assert.Throws<ArgumentException>(() => NormKernels.SegmentMoments<float>(new float[12], 3, 4, new double[3], new double[2], new double[3]));
        Assert.Contains("center has 2", ex.Message);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void LayerNormRows_EveryPath_MatchDoubleDefinition(int d)
    {
        // rows of d values around 100 (a large mean), per-element γ and β, and an upstream gradient
        var x = Shifted(Segments * d, d);
        var g = KernelLengths.Values(Segments * d, d + 5);
        var gamma = KernelLengths.Values(d, d + 9).Select(v => 1 + v).ToArray();
        var beta = KernelLengths.Values(d, d + 11);
        var mean = SegmentMeans(x, d);
        var rstd = new double[Segments];
        for (int r = 0; r < Segments; r++)
        {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (x[r * d + j] - mean[r]) * (x[r * d + j] - mean[r]);
            rstd[r] = 1 / Math.Sqrt(ss / d + 1e-5);
        }
        foreach (var isa in KernelIsa.All)
        {
            var y = new float[x.Length];
            var dx = new float[x.Length];
            var dgamma = new double[d];
            var dbeta = new double[d];
            NormKernels.RowAffine<float>(x, Segments, d, mean, rstd, gamma, beta, y, isa);
            NormKernels.RowNormGradient<float>(g, x, Segments, d, mean, rstd, gamma, dx, dgamma, dbeta, isa);
            var rg = new double[d];
            var rb = new double[d];
            for (int r = 0; r < Segments; r++)
            {
                double s1 = 0, s2 = 0, m = 0;
                for (int j = 0; j < d; j++)
                {
                    int at = r * d + j;
                    double xhat = (x[at] - (float)mean[r]) * rstd[r], gh = g[at] * (double)gamma[j];
                    s1 += gh;
                    s2 += gh * xhat;
                    m += Math.Abs(gh);
                    rg[j] += g[at] * xhat;
                    rb[j] += g[at];
                    double ry = xhat * gamma[j] + beta[j];
                    Assert.True(Math.Abs(y[at] - ry) <= 1e-5 * (Math.Abs(xhat * gamma[j]) + Math.Abs(beta[j])) + 1e-6, $"{isa} d={d} at {at}: y {y[at]} vs {ry}");
                }
                for (int j = 0; j < d; j++)
                {
                    int at = r * d + j;
                    double xhat = (x[at] - (float)mean[r]) * rstd[r], gh = g[at] * (double)gamma[j];
                    double rdx = rstd[r] * (gh - s1 / d - xhat * s2 / d);
                    double scale = rstd[r] * (Math.Abs(gh) + m / d * (1 + Math.Abs(xhat)));
                    Assert.True(Math.Abs(dx[at] - rdx) <= 1e-5 * scale + 1e-6, $"{isa} d={d} at {at}: dx {dx[at]} vs {rdx}");
                }
            }
            for (int j = 0; j < d; j++)
            {
                Assert.True(Math.Abs(dgamma[j] - rg[j]) <= 1e-5 * Segments * 4 + 1e-6, $"{isa} d={d}: dγ[{j}] {dgamma[j]} vs {rg[j]}");
                Assert.True(Math.Abs(dbeta[j] - rb[j]) <= 1e-6 * Segments + 1e-7, $"{isa} d={d}: dβ[{j}] {dbeta[j]} vs {rb[j]}");
            }
        }
    }

    [Fact]
    public void LayerNormRows_OneAndTwoThreads_AreBitwiseEqual()
    {
        const int rows = 4096, d = 96;
        var x = Shifted(rows * d, 3);
        var g = KernelLengths.Values(rows * d, 4);
        var gamma = KernelLengths.Values(d, 5);
        var mean = Enumerable.Range(0, rows).Select(r => 100.0 + r % 5 * 0.01).ToArray();
        var rstd = Enumerable.Range(0, rows).Select(r => 1.5 + r % 3 * 0.25).ToArray();
        (float[], float[], double[], double[]) Run()
        {
            var y = new float[x.Length];
            var dx = new float[x.Length];
            var dgamma = new double[d];
            var dbeta = new double[d];
            NormKernels.RowAffine<float>(x, rows, d, mean, rstd, gamma, gamma, y);
            NormKernels.RowNormGradient<float>(g, x, rows, d, mean, rstd, gamma, dx, dgamma, dbeta);
            return (y, dx, dgamma, dbeta);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
        Assert.Equal(one.Item4, two.Item4);
    }

    [Fact]
    public void LayerNormRows_WrongAffineLength_ThrowsNamingIt()
    {
        var ex = Assert.Throws<ArgumentException>(() => NormKernels.RowAffine<float>(new float[12], 3, 4, new double[3], new double[3], new float[3], default, new float[12]));
        Assert.Contains("gamma has 3 elements, expected 4", ex.Message);
    }

    [Fact]
    public void SegmentSums_WrongLengths_ThrowNamingTheSpans()
    {
        var ex = Assert.Throws<ArgumentException>(() => NormKernels.SegmentSums<float>(new float[10], 3, 4, new double[3]));
        Assert.Contains("10 elements", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => NormKernels.SegmentSums<float>(new float[12], 3, 4, new double[2]));
        Assert.Contains("sum has 2", ex.Message);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentReluPasses_EveryPath_BitwiseTheNormThenReluKernels(int length)
    {
        // shifts put about half of each segment below zero; the composition: affine, ReLU, ReLU's backward at the affine, then the plain passes
        var x = Shifted(Segments * length, length + 21);
        var g = KernelLengths.Values(Segments * length, length + 22);
        var mean = SegmentMeans(x, length);
        double[] scale = [0.5, -1.25, 2.0], shift = [0.1, 0, -0.3], a = [1.5, 0.25, -2], b = [-0.3, 0.7, 0], c = [0.01, -0.2, 1];
        foreach (var isa in KernelIsa.All)
        {
            var z = new float[x.Length];
            NormKernels.SegmentAffine<float>(x, Segments, length, mean, scale, shift, z, isa);
            var relu = new float[x.Length];
            ActivationKernels.Relu<float>(z, relu, isa);
            var masked = new float[x.Length];
            ActivationKernels.ReluBackward<float>(z, g, masked, isa);
            var (w1, w2) = (new double[Segments], new double[Segments]);
            NormKernels.SegmentGradientSums<float>(masked, x, Segments, length, mean, w1, w2, isa);
            var wantDx = new float[x.Length];
            NormKernels.SegmentAffineGradient<float>(masked, x, Segments, length, mean, a, b, c, wantDx, isa);

            var y = new float[x.Length];
            NormKernels.SegmentAffineRelu<float>(x, Segments, length, mean, scale, shift, y, isa);
            var (s1, s2) = (new double[Segments], new double[Segments]);
            NormKernels.SegmentReluGradientSums<float>(g, x, Segments, length, mean, scale, shift, s1, s2, isa);
            var dx = new float[x.Length];
            NormKernels.SegmentReluAffineGradient<float>(g, x, Segments, length, mean, scale, shift, a, b, c, dx, isa);
            Assert.True(relu.SequenceEqual(y), $"{isa} n={length}: relu(affine)");
            Assert.True(w1.SequenceEqual(s1) && w2.SequenceEqual(s2), $"{isa} n={length}: masked sums");
            Assert.True(wantDx.SequenceEqual(dx), $"{isa} n={length}: masked dx");
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SegmentAddReluPasses_EveryPath_BitwiseTheNormAddReluKernels(int length)
    {
        // the composition: affine, + r, ReLU, ReLU's backward at the sum, then the plain sums; against the fused forward and the
        // backward sums that mask g by the fused output
        var x = Shifted(Segments * length, length + 31);
        var r = KernelLengths.Values(Segments * length, length + 32);
        var g = KernelLengths.Values(Segments * length, length + 33);
        var mean = SegmentMeans(x, length);
        double[] scale = [0.5, -1.25, 2.0], shift = [0.1, 0, -0.3];
        foreach (var isa in KernelIsa.All)
        {
            var z = new float[x.Length];
            NormKernels.SegmentAffine<float>(x, Segments, length, mean, scale, shift, z, isa);
            var sum = z.Zip(r, (a, b) => a + b).ToArray();
            var relu = new float[x.Length];
            ActivationKernels.Relu<float>(sum, relu, isa);
            var masked = new float[x.Length];
            ActivationKernels.ReluBackward<float>(sum, g, masked, isa);
            var (w1, w2) = (new double[Segments], new double[Segments]);
            NormKernels.SegmentGradientSums<float>(masked, x, Segments, length, mean, w1, w2, isa);

            var y = new float[x.Length];
            NormKernels.SegmentAffineAddRelu<float>(x, r, Segments, length, mean, scale, shift, y, isa);
            var gr = new float[x.Length];
            var (s1, s2) = (new double[Segments], new double[Segments]);
            NormKernels.SegmentMaskedGradientSums<float>(g, y, x, Segments, length, mean, gr, s1, s2, isa);
            Assert.True(relu.SequenceEqual(y), $"{isa} n={length}: relu(affine + r)");
            Assert.True(masked.SequenceEqual(gr), $"{isa} n={length}: masked g");
            Assert.True(w1.SequenceEqual(s1) && w2.SequenceEqual(s2), $"{isa} n={length}: masked sums");
        }
    }

    [Fact]
    public void SegmentAddReluPasses_NaNAndZero_FollowReluKernels()
    {
        // a NaN sum passes forward and backward; a sum of exactly 0 (or −0) gives y = 0 and gradient 0
        float[] x = [float.NaN, 2f, 3f, 4f, 2f, -1f, 7f, 9f], r = [0f, 0f, -1f, 1f, -0f, 0f, -6f, -9f];
        double[] mean = [2], scale = [1], shift = [0];
        float[] g = [1, 1, 1, 1, 1, 1, 1, 1];
        var y = new float[8];
        NormKernels.SegmentAffineAddRelu<float>(x, r, 1, 8, mean, scale, shift, y);
        Assert.True(float.IsNaN(y[0]));
        Assert.Equal([0f, 0f, 3f, 0f, 0f, 0f, 0f], y[1..]);
        var gr = new float[8];
        var (s1, s2) = (new double[1], new double[1]);
        NormKernels.SegmentMaskedGradientSums<float>(g, y, x, 1, 8, mean, gr, s1, s2);
        Assert.True(gr[0] == 1f && gr[3] == 1f && gr.Where((_, i) => i != 0 && i != 3).All(v => v == 0));
        Assert.Equal(2, s1[0]);
        Assert.True(double.IsNaN(s2[0]));
        var e = Assert.Throws<ArgumentException>(() => NormKernels.SegmentAffineAddRelu<float>(x, new float[7], 1, 8, mean, scale, shift, y));
        Assert.Contains("7 elements", e.Message);
    }

    [Fact]
    public void SegmentAddReluPasses_OneAndTwoThreads_AreBitwiseEqual()
    {
        const int segments = 64 * 16, length = 784;
        var x = Shifted(segments * length, 34);
        var r = KernelLengths.Values(segments * length, 35);
        var g = KernelLengths.Values(segments * length, 36);
        var mean = Enumerable.Repeat(100.0, segments).ToArray();
        var half = Enumerable.Repeat(0.5, segments).ToArray();
        (float[], float[], double[], double[]) Run()
        {
            var y = new float[x.Length];
            NormKernels.SegmentAffineAddRelu<float>(x, r, segments, length, mean, half, half, y);
            var gr = new float[x.Length];
            var (s1, s2) = (new double[segments], new double[segments]);
            NormKernels.SegmentMaskedGradientSums<float>(g, y, x, segments, length, mean, gr, s1, s2);
            return (y, gr, s1, s2);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
        Assert.Equal(one.Item4, two.Item4);
    }

    [Fact]
    public void SegmentReluPasses_NaNAndZero_FollowReluKernels()
    {
        // z = NaN passes forward and backward (as relu and its backward: z < 0 and z ≤ 0 are false), z = 0 gives y = 0 and gradient 0
        float[] x = [float.NaN, 2f, 3f, 4f, 2f, -1f, 7f, 9f];
        double[] mean = [2], scale = [1], shift = [0];
        float[] g = [1, 1, 1, 1, 1, 1, 1, 1];
        var y = new float[8];
        NormKernels.SegmentAffineRelu<float>(x, 1, 8, mean, scale, shift, y);
        Assert.True(float.IsNaN(y[0]));
        Assert.Equal([0f, 1f, 2f, 0f, 0f, 5f, 7f], y[1..]);
        var (s1, s2) = (new double[1], new double[1]);
        NormKernels.SegmentReluGradientSums<float>(g, x, 1, 8, mean, scale, shift, s1, s2);
        Assert.Equal(5, s1[0]); // z = NaN, 1, 2, 5, 7 pass g = 1; z = 0, 0, −3 do not
        Assert.True(double.IsNaN(s2[0]));
        var dx = new float[8];
        NormKernels.SegmentReluAffineGradient<float>(g, x, 1, 8, mean, scale, shift, [1], [0], [0], dx);
        Assert.True(float.IsNaN(dx[0])); // b·(x − μ) with x NaN, as the plain affine gradient
        Assert.Equal([0f, 1f, 1f, 0f, 0f, 1f, 1f], dx[1..]);
    }

    [Fact]
    public void SegmentReluPasses_OneAndTwoThreads_AreBitwiseEqual()
    {
        const int segments = 64 * 16, length = 784;
        var x = Shifted(segments * length, 9);
        var g = KernelLengths.Values(segments * length, 10);
        var mean = Enumerable.Repeat(100.0, segments).ToArray();
        var half = Enumerable.Repeat(0.5, segments).ToArray();
        (float[], double[], double[], float[]) Run()
        {
            var y = new float[x.Length];
            NormKernels.SegmentAffineRelu<float>(x, segments, length, mean, half, half, y);
            var (s1, s2) = (new double[segments], new double[segments]);
            NormKernels.SegmentReluGradientSums<float>(g, x, segments, length, mean, half, half, s1, s2);
            var dx = new float[x.Length];
            NormKernels.SegmentReluAffineGradient<float>(g, x, segments, length, mean, half, half, half, half, half, dx);
            return (y, s1, s2, dx);
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Item1, two.Item1);
        Assert.Equal(one.Item2, two.Item2);
        Assert.Equal(one.Item3, two.Item3);
        Assert.Equal(one.Item4, two.Item4);
    }
}
