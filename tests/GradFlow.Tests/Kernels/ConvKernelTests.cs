using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// ConvKernels and PoolKernels at the span level, against loops written here. In this namespace, so
/// KernelFallbackTests re-runs them with AVX-512 and then AVX2 switched off (the GEMM and
/// TensorPrimitives paths under im2col/col2im).
/// </summary>
public class ConvKernelTests
{
    public static TheoryData<int, int, int, int, int, int, int, int, int> Shapes => new()
    {
        // C, H, W, KH, KW, S, P, D, groups
        { 1, 1, 1, 1, 1, 1, 0, 1, 1 },
        { 3, 7, 5, 3, 3, 1, 1, 1, 1 },
        { 4, 9, 11, 3, 2, 2, 1, 1, 2 },
        { 2, 8, 8, 2, 3, 3, 2, 2, 1 },
        { 6, 5, 6, 3, 3, 1, 1, 1, 6 },
        { 5, 33, 35, 5, 5, 1, 2, 1, 1 }, // long rows: every SIMD tail of the stride-1 copies
        { 4, 9, 8, 3, 3, 2, 1, 2, 4 },    // depthwise, strided and dilated
        { 3, 40, 37, 3, 5, 1, 2, 1, 3 },  // depthwise, long rows
        { 1, 12, 13, 3, 3, 1, 1, 1, 1 },  // one input channel (a stem): the direct path too
    };

    private static ConvShape Shape(int n, int c, int h, int w, int cout, int kh, int kw, int s, int p, int d, int groups) =>
        new(n, c, h, w, cout, kh, kw, s, s, p, p, d, d, groups);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Col2Im_IsTheAdjointOfIm2Col(int c, int h, int w, int kh, int kw, int s, int p, int d, int groups)
    {
        var shape = Shape(1, c, h, w, groups, kh, kw, s, p, d, groups);
        int rows = c * kh * kw, cols = shape.OH * shape.OW;
        var x = KernelLengths.Values(c * h * w, 1);
        var r = KernelLengths.Values(rows * cols, 2);
        var col = new float[rows * cols];
        var back = new float[c * h * w];
        ConvKernels.Im2Col<float>(shape, x, col);
        ConvKernels.Col2Im<float>(shape, r, back);
        // ⟨im2col(x), r⟩ = ⟨x, col2im(r)⟩, and im2col reads exactly the definition's pixels.
        double left = 0, right = 0;
        for (int i = 0; i < col.Length; i++) left += (double)col[i] * r[i];
        for (int i = 0; i < x.Length; i++) right += (double)x[i] * back[i];
        Assert.Equal(left, right, Math.Abs(left) * 1e-5 + 1e-4);
        for (int ch = 0; ch < c; ch++)
            for (int a = 0; a < kh; a++)
                for (int b = 0; b < kw; b++)
                    for (int i = 0; i < shape.OH; i++)
                        for (int j = 0; j < shape.OW; j++)
                        {
                            int ih = i * s - p + a * d, iw = j * s - p + b * d;
                            float expected = ih < 0 || ih >= h || iw < 0 || iw >= w ? 0 : x[(ch * h + ih) * w + iw];
                            Assert.Equal(expected, col[((ch * kh + a) * kw + b) * cols + i * shape.OW + j]);
                        }
    }

    /// <summary>Both paths where the direct one can run (one input channel per group), else the GEMM path.</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardAndGradients_MatchDirectLoops(int c, int h, int w, int kh, int kw, int s, int p, int d, int groups)
    {
        var shape = Shape(3, c, h, w, 2 * groups, kh, kw, s, p, d, groups);
        foreach (bool direct in shape.Cig == 1 ? new[] { true, false } : [false])
            CheckAgainstLoops(shape, direct);
    }

    private static void CheckAgainstLoops(ConvShape shape, bool direct)
    {
        int n = shape.N, c = shape.C, h = shape.H, w = shape.W, cout = shape.Cout, kh = shape.KH, kw = shape.KW, s = shape.SH, p = shape.PH,
            d = shape.DH, groups = shape.Groups;
        int oh = shape.OH, ow = shape.OW, cig = c / groups, cog = cout / groups;
        var x = KernelLengths.Values(n * c * h * w, 3);
        var wt = KernelLengths.Values(cout * cig * kh * kw, 4);
        var bias = KernelLengths.Values(cout, 5);
        var gy = KernelLengths.Values(n * cout * oh * ow, 6);
        var y = new float[gy.Length];
        var dx = new float[x.Length];
        var dw = new float[wt.Length];
        ConvKernels.Forward<float>(shape, x, wt, bias, y, direct);
        ConvKernels.BackwardInput<float>(shape, wt, gy, dx, direct);
        ConvKernels.BackwardWeight<float>(shape, x, gy, dw, direct);
        var ey = new double[y.Length];
        var edx = new double[x.Length];
        var edw = new double[wt.Length];
        var mag = new double[y.Length];
        for (int b = 0; b < n; b++)
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        int at = ((b * cout + o) * oh + i) * ow + j;
                        ey[at] = bias[o];
                        for (int ci = 0; ci < cig; ci++)
                            for (int a = 0; a < kh; a++)
                                for (int e = 0; e < kw; e++)
                                {
                                    int ih = i * s - p + a * d, iw = j * s - p + e * d;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                    int xi = ((b * c + o / cog * cig + ci) * h + ih) * w + iw, wi = ((o * cig + ci) * kh + a) * kw + e;
                                    ey[at] += (double)wt[wi] * x[xi];
                                    mag[at] += Math.Abs((double)wt[wi] * x[xi]);
                                    edx[xi] += (double)wt[wi] * gy[at];
                                    edw[wi] += (double)x[xi] * gy[at];
                                }
                    }
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - ey[i]) <= 1e-5 * (mag[i] + 1), $"direct={direct} y[{i}] = {y[i]}, expected {ey[i]}");
        for (int i = 0; i < dx.Length; i++) Assert.True(Math.Abs(dx[i] - edx[i]) <= 1e-4 * (Math.Abs(edx[i]) + 1), $"direct={direct} dx[{i}] = {dx[i]}, expected {edx[i]}");
        for (int i = 0; i < dw.Length; i++) Assert.True(Math.Abs(dw[i] - edw[i]) <= 1e-4 * (Math.Abs(edw[i]) + 10), $"direct={direct} dw[{i}] = {dw[i]}, expected {edw[i]}");
    }

    [Fact]
    public void Kernels_WrongSpanLengths_ThrowArgumentException()
    {
        var shape = Shape(1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1);
        Assert.Throws<ArgumentException>(() => ConvKernels.Forward<float>(shape, new float[49], new float[36], default, new float[50]));
        Assert.Throws<ArgumentException>(() => ConvKernels.BackwardWeight<float>(shape, new float[50], new float[50], new float[35]));
        var pool = new PoolShape(2, 4, 4, 2, 2, 2, 2, 0, 0);
        Assert.Throws<ArgumentException>(() => PoolKernels.MaxForward<float>(pool, new float[32], new float[8], new int[7]));
        Assert.Throws<ArgumentException>(() => PoolKernels.AvgBackward<float>(pool, true, new float[9], new float[32]));
    }
}
