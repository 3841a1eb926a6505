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

    public static TheoryData<int, int, int, int, int, int, int, int, int> FlatShapes => new()
    {
        // N, C, H, W, Cout, K, P, D, groups (stride 1)
        { 3, 3, 7, 5, 2, 3, 1, 1, 1 },
        { 2, 16, 28, 28, 16, 3, 1, 1, 1 },  // cnn-resnet's layer
        { 4, 1, 12, 13, 16, 3, 1, 1, 1 },   // one input channel (cnn-resnet's stem): the input gradient by im2col
        { 2, 4, 12, 13, 5, 3, 1, 1, 1 },    // four input channels: the input gradient's tile mostly zero rows
        { 2, 4, 9, 11, 6, 3, 0, 1, 2 },     // groups, no padding
        { 2, 2, 8, 9, 3, 3, 2, 2, 1 },      // dilation 2
        { 2, 5, 6, 7, 17, 5, 2, 1, 1 },     // 5×5, Cout not a multiple of any tile
        { 2, 3, 5, 6, 4, 3, 3, 1, 1 },      // padding 3 > D·(K − 1): the input gradient falls back to im2col
        { 1, 6, 33, 35, 9, 2, 1, 1, 3 },    // even kernel, long rows
        { 2, 8, 9, 11, 6, 3, 1, 1, 2 },     // groups of four input channels (the one-pass backward per group)
        { 2, 4, 8, 9, 5, 3, 2, 2, 1 },      // dilation 2 with four input channels
        { 3, 4, 5, 3, 4, 3, 1, 1, 1 },      // rows narrower than a vector: the weight tiles' tail spans padding rows
        { 2, 4, 10, 15, 6, 3, 1, 1, 1 },    // rows of exactly one 512-bit vector (Wp 16, OW 15): the scattered stores' shortest rows
        { 2, 3, 9, 14, 10, 5, 2, 1, 1 },    // Wp 16 over OW 14: every vector starts a row
        { 2, 3, 8, 16, 5, 7, 1, 1, 1 },     // Wp 17 over OW 12: a vector's second store clipped to the next row's 12 columns, last row included
        { 1, 2, 17, 20, 11, 3, 1, 2, 1 },   // dilation 2, Wp 21 over OW 18: three dropped columns per row, 11 channels (a partial tile block)
    };

    /// <summary>The flat implicit-GEMM path (stride 1) on every instruction-set path, and the public dispatch.</summary>
    [Theory]
    [MemberData(nameof(FlatShapes))]
    public void FlatPath_EveryInstructionSet_MatchesDirectLoops(int n, int c, int h, int w, int cout, int k, int p, int d, int groups)
    {
        var shape = Shape(n, c, h, w, cout, k, k, 1, p, d, groups);
        Assert.True(GradFlow.Kernels.ConvFlat.Applies(shape));
        foreach (var isa in KernelIsa.All) CheckAgainstLoops(shape, false, isa);
        CheckAgainstLoops(shape, false, null, publicEntry: true);
    }

    /// <summary>
    /// The one-pass backward (each image's dy padded once for both gradients) gives bitwise the two passes' dx and dw, on every
    /// instruction-set path; the shapes it does not take (no zero row below dy's planes, padding past D·(K − 1)) are refused.
    /// </summary>
    [Theory]
    [MemberData(nameof(FlatShapes))]
    public void FlatOnePassBackward_EveryInstructionSet_IsBitwiseTheTwoPasses(int n, int c, int h, int w, int cout, int k, int p, int d, int groups)
    {
        var shape = Shape(n, c, h, w, cout, k, k, 1, p, d, groups);
        var x = KernelLengths.Values(n * c * h * w, 7);
        var wt = KernelLengths.Values(cout * (c / groups) * k * k, 8);
        var gy = KernelLengths.Values(n * cout * shape.OH * shape.OW, 9);
        foreach (var isa in KernelIsa.All)
        {
            bool takes = GradFlow.Kernels.ConvFlat.AppliesToBackward(shape, isa);
            // taken exactly where both flat gradients run and the PH' = D·(K − 1) − P padding rows of Wp = W + P below dy's
            // planes hold the weight tiles' reads past the flat output OH·Wp (rounded up to the path's vector)
            int wp = w + p, q = shape.OH * wp, lanes = isa == InstructionSet.Avx512 ? 16 : isa == InstructionSet.Avx2 ? 8 : 1;
            bool room = (d * (k - 1) - p) * wp >= (q + lanes - 1) / lanes * lanes - q;
            Assert.Equal(GradFlow.Kernels.ConvFlat.AppliesToInputGradient(shape) && GradFlow.Kernels.ConvFlat.AppliesToWeightGradient(shape, isa) && room, takes);
            var (dx, dw) = (new float[x.Length], new float[wt.Length]);
            if (!takes)
            {
                var ex = Assert.Throws<ArgumentException>(() => ConvKernels.BackwardFlat(shape, x, wt, gy, dx, dw, isa));
                Assert.Contains("one-pass", ex.Message);
                continue;
            }
            var (dx2, dw2) = (new float[x.Length], new float[wt.Length]);
            Array.Fill(dx, float.NaN);
            Array.Fill(dw, float.NaN);
            ConvKernels.BackwardFlat(shape, x, wt, gy, dx, dw, isa);
            ConvKernels.BackwardInputFlat(shape, wt, gy, dx2, isa);
            ConvKernels.BackwardWeightFlat(shape, x, gy, dw2, isa);
            Assert.Equal(dx2, dx);
            Assert.Equal(dw2, dw);
        }
        // the public entry: whichever path it takes, the bits of the public two-pass entries
        var (pdx, pdw, qdx, qdw) = (new float[x.Length], new float[wt.Length], new float[x.Length], new float[wt.Length]);
        ConvKernels.Backward<float>(shape, x, wt, gy, pdx, pdw);
        ConvKernels.BackwardInput<float>(shape, wt, gy, qdx);
        ConvKernels.BackwardWeight<float>(shape, x, gy, qdw);
        Assert.Equal(qdx, pdx);
        Assert.Equal(qdw, pdw);
        // a gradient not asked for (an empty span) is skipped, with the operand only it reads
        var (odx, odw) = (new float[x.Length], new float[wt.Length]);
        ConvKernels.Backward<float>(shape, x, default, gy, default, odw);
        ConvKernels.Backward<float>(shape, default, wt, gy, odx, default);
        Assert.Equal(qdx, odx);
        Assert.Equal(qdw, odw);
    }

    /// <summary>
    /// The weight gradient's flat dy is kept between calls on a thread, its zeros trusted while the layout is the same. It was keyed by
    /// the input's layout: after a k = 2 convolution of a padded 2×2 input, a k = 3 one of the same input found its key and kept the
    /// other's dy where it needed zeros (83 % off, found comparing `grads` with PyTorch). Every instruction-set path, on one thread
    /// (the scratch is the thread's) and on two.
    /// </summary>
    [Theory]
    [InlineData(2, 2, 3, 2, 1)] // the probe's: 2×2, k 3 then k 2, padding 1
    [InlineData(4, 4, 3, 2, 1)]
    [InlineData(3, 5, 3, 1, 1)]
    public void FlatWeightGradient_AfterAnotherConvOfTheSameInput_IsStillRight(int h, int w, int k1, int k2, int p)
    {
        var s1 = Shape(1, 8, h, w, 8, k1, k1, 1, p, 1, 1);
        var s2 = Shape(1, 8, h, w, 8, k2, k2, 1, p, 1, 1);
        var x = KernelLengths.Values(8 * h * w, 1);
        var gy1 = KernelLengths.Values(8 * s1.OH * s1.OW, 2);
        var gy2 = KernelLengths.Values(8 * s2.OH * s2.OW, 3);
        var expected = new double[8 * 8 * k1 * k1];
        for (int o = 0; o < 8; o++) for (int c = 0; c < 8; c++) for (int kh = 0; kh < k1; kh++) for (int kw = 0; kw < k1; kw++)
            for (int oh = 0; oh < s1.OH; oh++) for (int ow = 0; ow < s1.OW; ow++)
            {
                int ih = oh - p + kh, iw = ow - p + kw;
                if (ih >= 0 && iw >= 0 && ih < h && iw < w)
                    expected[((o * 8 + c) * k1 + kh) * k1 + kw] += (double)gy1[(o * s1.OH + oh) * s1.OW + ow] * x[(c * h + ih) * w + iw];
            }
        double scale = expected.Max(Math.Abs);
        foreach (var isa in KernelIsa.All)
        {
            if (!GradFlow.Kernels.ConvFlat.AppliesToWeightGradient(s1, isa) || !GradFlow.Kernels.ConvFlat.AppliesToWeightGradient(s2, isa)) continue;
            float[] Run()
            {
                var (dw1, dw2) = (new float[expected.Length], new float[8 * 8 * k2 * k2]);
                ConvKernels.BackwardWeightFlat(s1, x, gy1, dw1, isa);
                ConvKernels.BackwardWeightFlat(s2, x, gy2, dw2, isa);
                ConvKernels.BackwardWeightFlat(s1, x, gy1, dw1, isa);
                return dw1;
            }
            var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
            foreach (var dw in new[] { one, two })
                for (int i = 0; i < dw.Length; i++)
                    Assert.True(Math.Abs(dw[i] - expected[i]) <= 1e-5 * scale, $"{isa}: dw[{i}] = {dw[i]}, expected {expected[i]}");
        }
    }

    [Fact]
    public void FlatPath_OneAndTwoThreads_AreBitwiseEqual()
    {
        var shape = Shape(8, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1);
        var x = KernelLengths.Values(8 * 16 * 28 * 28, 1);
        var wt = KernelLengths.Values(16 * 16 * 9, 2);
        var gy = KernelLengths.Values(x.Length, 3);
        float[][] Run()
        {
            var (y, dx, dw, dx1, dw1) = (new float[x.Length], new float[x.Length], new float[wt.Length], new float[x.Length], new float[wt.Length]);
            ConvKernels.ForwardFlat(shape, x, wt, default, y, KernelIsa.Best);
            ConvKernels.BackwardInputFlat(shape, wt, gy, dx, KernelIsa.Best);
            ConvKernels.BackwardWeightFlat(shape, x, gy, dw, KernelIsa.Best);
            ConvKernels.BackwardFlat(shape, x, wt, gy, dx1, dw1, KernelIsa.Best);
            return [y, dx, dw, dx1, dw1];
        }
        var (one, two) = GradFlow.Tests.TestSupport.KernelThreadCounts.OneAndTwo(Run);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void FlatPath_ShapesItDoesNotTake_ThrowNamingTheShape()
    {
        var strided = Shape(1, 2, 6, 6, 2, 3, 3, 2, 1, 1, 1);
        var ex = Assert.Throws<ArgumentException>(() => ConvKernels.ForwardFlat(strided, new float[72], new float[36], default, new float[18], KernelIsa.Best));
        Assert.Contains("stride 1", ex.Message);
        var wide = Shape(1, 2, 6, 6, 2, 3, 3, 1, 3, 1, 1);
        ex = Assert.Throws<ArgumentException>(() => ConvKernels.BackwardInputFlat(wide, new float[36], new float[200], new float[72], KernelIsa.Best));
        Assert.Contains("padding", ex.Message);
    }

    private static void CheckAgainstLoops(ConvShape shape, bool direct, InstructionSet? flat = null, bool publicEntry = false)
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
        if (publicEntry)
        {
            ConvKernels.Forward<float>(shape, x, wt, bias, y);
            ConvKernels.BackwardInput<float>(shape, wt, gy, dx);
            ConvKernels.BackwardWeight<float>(shape, x, gy, dw);
        }
        else if (flat is { } isa)
        {
            ConvKernels.ForwardFlat(shape, x, wt, bias, y, isa);
            if (GradFlow.Kernels.ConvFlat.AppliesToInputGradient(shape)) ConvKernels.BackwardInputFlat(shape, wt, gy, dx, isa);
            else ConvKernels.BackwardInput<float>(shape, wt, gy, dx, direct);
            ConvKernels.BackwardWeightFlat(shape, x, gy, dw, isa);
        }
        else
        {
            ConvKernels.Forward<float>(shape, x, wt, bias, y, direct);
            ConvKernels.BackwardInput<float>(shape, wt, gy, dx, direct);
            ConvKernels.BackwardWeight<float>(shape, x, gy, dw, direct);
        }
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
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - ey[i]) <= 1e-5 * (mag[i] + 1), $"direct={direct} flat={flat} y[{i}] = {y[i]}, expected {ey[i]}");
        for (int i = 0; i < dx.Length; i++) Assert.True(Math.Abs(dx[i] - edx[i]) <= 1e-4 * (Math.Abs(edx[i]) + 1), $"direct={direct} flat={flat} dx[{i}] = {dx[i]}, expected {edx[i]}");
        for (int i = 0; i < dw.Length; i++) Assert.True(Math.Abs(dw[i] - edw[i]) <= 1e-4 * (Math.Abs(edw[i]) + 10), $"direct={direct} flat={flat} dw[{i}] = {dw[i]}, expected {edw[i]}");
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
