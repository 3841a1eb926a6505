using GradFlow.Autograd;
using GradFlow.Kernels;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Tensors;

/// <summary>
/// Conv2d and the pooling ops: forward against direct loops written here from the definitions,
/// gradients against float64 finite differences over odd sizes, strides 1–3, padding, dilation,
/// groups (1, 2, depthwise), non-square kernels and batches of 1 and 3; subgradients at ties;
/// bitwise equality on 1 and 2 kernel threads; error messages.
/// </summary>
public class ConvTests
{
    /// <summary>(N, C, H, W, Cout, KH, KW, stride, padding, dilation, groups, bias).</summary>
    public static TheoryData<int, int, int, int, int, int, int, (int, int), (int, int), (int, int), int, bool> ConvCases => new()
    {
        { 1, 1, 5, 5, 1, 3, 3, (1, 1), (0, 0), (1, 1), 1, true },
        { 3, 2, 7, 5, 3, 3, 2, (1, 1), (1, 0), (1, 1), 1, true },
        { 1, 3, 9, 7, 4, 3, 3, (2, 2), (1, 1), (1, 1), 1, false },
        { 3, 2, 8, 9, 2, 2, 3, (3, 2), (0, 1), (1, 1), 1, true },
        { 1, 2, 9, 9, 3, 3, 3, (1, 1), (2, 2), (2, 2), 1, true },
        { 3, 4, 6, 7, 6, 3, 1, (1, 2), (1, 0), (2, 1), 2, true },
        { 3, 3, 7, 7, 3, 3, 3, (1, 1), (1, 1), (1, 1), 3, true },   // depthwise
        { 1, 3, 7, 6, 6, 3, 3, (2, 1), (1, 1), (1, 1), 3, false },  // depthwise, multiplier 2
        { 3, 4, 5, 5, 6, 1, 1, (1, 1), (0, 0), (1, 1), 2, true },   // pointwise, grouped
        { 1, 2, 5, 3, 3, 5, 3, (3, 3), (2, 1), (1, 1), 1, true },   // kernel as large as the padded input
    };

    /// <summary>The definition: y[n, o, i, j] = b[o] + Σ W[o, c, kh, kw]·x[n, g·Cig + c, i·SH − PH + kh·DH, j·SW − PW + kw·DW].</summary>
    private static double[] ConvReference(double[] x, double[] w, double[]? b, int n, int c, int h, int wd, int cout, int kh, int kw,
        (int H, int W) s, (int H, int W) p, (int H, int W) d, int groups, out int oh, out int ow)
    {
        oh = (h + 2 * p.H - d.H * (kh - 1) - 1) / s.H + 1;
        ow = (wd + 2 * p.W - d.W * (kw - 1) - 1) / s.W + 1;
        int cig = c / groups, cog = cout / groups;
        var y = new double[n * cout * oh * ow];
        for (int i0 = 0; i0 < n; i0++)
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        double sum = b?[o] ?? 0;
                        int g = o / cog;
                        for (int ci = 0; ci < cig; ci++)
                            for (int a = 0; a < kh; a++)
                                for (int e = 0; e < kw; e++)
                                {
                                    int ih = i * s.H - p.H + a * d.H, iw = j * s.W - p.W + e * d.W;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    sum += w[((o * cig + ci) * kh + a) * kw + e] * x[((i0 * c + g * cig + ci) * h + ih) * wd + iw];
                                }
                        y[((i0 * cout + o) * oh + i) * ow + j] = sum;
                    }
        return y;
    }

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2d_MatchesDefinition(int n, int c, int h, int w, int cout, int kh, int kw, (int, int) stride, (int, int) padding,
        (int, int) dilation, int groups, bool bias)
    {
        var g = new Generator(3);
        var x = Tensor.RandN(g, n, c, h, w);
        var wt = Tensor.RandN(g, cout, c / groups, kh, kw);
        var b = bias ? Tensor.RandN(g, cout) : null;
        var y = Tensor.Conv2d(x, wt, b, stride, padding, dilation, groups);
        var expected = ConvReference(x.ToDoubleArray(), wt.ToDoubleArray(), b?.ToDoubleArray(), n, c, h, w, cout, kh, kw, stride, padding, dilation,
            groups, out int oh, out int ow);
        Assert.Equal([n, cout, oh, ow], y.Shape.ToArray());
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-5, 1e-5, "conv2d float32");
        var y64 = Tensor.Conv2d(x.To(DType.Float64), wt.To(DType.Float64), b?.To(DType.Float64), stride, padding, dilation, groups);
        TestTensors.AllClose(expected, y64.ToDoubleArray(), 1e-12, 1e-12, "conv2d float64");
    }

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2d_Backward_MatchesFiniteDifferences(int n, int c, int h, int w, int cout, int kh, int kw, (int, int) stride,
        (int, int) padding, (int, int) dilation, int groups, bool bias)
    {
        Tensor[] inputs = bias
            ? [TestTensors.Leaf(1, n, c, h, w), TestTensors.Leaf(2, cout, c / groups, kh, kw), TestTensors.Leaf(3, cout)]
            : [TestTensors.Leaf(1, n, c, h, w), TestTensors.Leaf(2, cout, c / groups, kh, kw)];
        GradCheck.Assert(t => Tensor.Conv2d(t[0], t[1], bias ? t[2] : null, stride, padding, dilation, groups), inputs, name: "conv2d");
    }

    [Fact]
    public void Conv2d_OnlyOneInputRequiresGrad_MatchesFiniteDifferences()
    {
        var x = TestTensors.Leaf(4, 2, 2, 5, 5);
        var w = TestTensors.Leaf(5, 3, 2, 3, 3);
        w.RequiresGrad = false;
        GradCheck.Assert(t => Tensor.Conv2d(t[0], t[1], stride: 2, padding: 1), [x, w], name: "conv2d dx only");
        x.RequiresGrad = false;
        w.RequiresGrad = true;
        GradCheck.Assert(t => Tensor.Conv2d(t[0], t[1], stride: 2, padding: 1), [x, w], name: "conv2d dw only");
    }

    [Fact]
    public void Conv2d_UnbatchedInput_IsABatchOfOne()
    {
        var g = new Generator(6);
        var x = Tensor.RandN(g, 2, 6, 5);
        var w = Tensor.RandN(g, 3, 2, 3, 3);
        var y = Tensor.Conv2d(x, w, padding: 1);
        Assert.Equal([3, 6, 5], y.Shape.ToArray());
        Assert.Equal(Tensor.Conv2d(x.Reshape(1, 2, 6, 5), w, padding: 1).ToArray(), y.ToArray());
        GradCheck.Assert(t => Tensor.Conv2d(t[0], t[1], padding: 1), [TestTensors.Leaf(7, 2, 6, 5), TestTensors.Leaf(8, 3, 2, 3, 3)], name: "conv2d unbatched");
    }

    [Fact]
    public void Conv2d_OneAndTwoKernelThreads_BitwiseIdentical()
    {
        // Large enough for parallel tasks, the weight gradient's chunks and GEMMs above the threading threshold.
        foreach (var (n, c, cout, groups, k) in new[] { (5, 8, 16, 1, 3), (9, 6, 6, 6, 3), (1, 16, 32, 1, 3), (4, 8, 8, 2, 1) })
        {
            var g = new Generator(9);
            var x = Tensor.RandN(g, n, c, 23, 21);
            var w = Tensor.RandN(g, cout, c / groups, k, k);
            var b = Tensor.RandN(g, cout);
            var v = Tensor.RandN(g, n, cout, 23, 21);
            float[][] Run(int threads)
            {
                try
                {
                    KernelThreads.SetCount(threads);
                    var (xl, wl, bl) = (x.Detach(), w.Detach(), b.Detach());
                    xl.RequiresGrad = wl.RequiresGrad = bl.RequiresGrad = true;
                    var y = Tensor.Conv2d(xl, wl, bl, padding: k / 2, groups: groups);
                    (y * v).Sum().Backward();
                    return [y.ToArray(), xl.Grad!.ToArray(), wl.Grad!.ToArray(), bl.Grad!.ToArray()];
                }
                finally
                {
                    SuiteSetup.RestoreKernelThreads();
                }
            }
            var one = Run(1);
            var two = Run(2);
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
        }
    }

    [Theory]
    [InlineData(new[] { 2, 3, 5, 5 }, new[] { 4, 2, 3, 3 }, 1, "not divisible by groups")] // 3 channels, groups 2 → checked first
    [InlineData(new[] { 2, 4, 5, 5 }, new[] { 3, 2, 3, 3 }, 2, "out_channels 3")]
    [InlineData(new[] { 2, 4, 5, 5 }, new[] { 4, 3, 3, 3 }, 1, "expects 3 input channels")]
    [InlineData(new[] { 2, 4, 2, 5 }, new[] { 4, 4, 3, 3 }, 1, "larger than the padded input")]
    [InlineData(new[] { 4, 5, 5 }, new[] { 4, 3, 3 }, 1, "weight must be")]
    [InlineData(new[] { 4, 5 }, new[] { 4, 4, 3, 3 }, 1, "input must be")]
    public void Conv2d_BadShapes_ThrowNamingOpArgumentAndShapes(int[] xShape, int[] wShape, int groupsOverride, string expected)
    {
        int groups = expected == "not divisible by groups" ? 2 : expected == "out_channels 3" ? 2 : groupsOverride;
        var e = Assert.Throws<ArgumentException>(() => Tensor.Conv2d(Tensor.Zeros(xShape), Tensor.Zeros(wShape), groups: groups));
        Assert.StartsWith("conv2d:", e.Message);
        Assert.Contains(expected, e.Message);
        if (xShape.Length == 4 && wShape.Length == 4) Assert.Contains(Shapes.Format(expected.StartsWith("out") || expected.StartsWith("expects") ? wShape : xShape), e.Message);
    }

    [Fact]
    public void Conv2d_BadArguments_ThrowNamingTheArgument()
    {
        var x = Tensor.Zeros(1, 2, 5, 5);
        var w = Tensor.Zeros(2, 2, 3, 3);
        Assert.Contains("stride", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, stride: 0)).Message);
        Assert.Contains("padding", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, padding: -1)).Message);
        Assert.Contains("dilation", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, dilation: (1, 0))).Message);
        Assert.Contains("dilation (3, 3)", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, dilation: 3)).Message);
        Assert.Contains("bias must be [2]", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, Tensor.Zeros(3))).Message);
        Assert.Contains("groups must be at least 1", Assert.Throws<ArgumentException>(() => Tensor.Conv2d(x, w, groups: 0)).Message);
    }

    // ---------------------------------------------------------------- pooling

    /// <summary>(N, C, H, W, kernel, stride, padding, dilation).</summary>
    public static TheoryData<int, int, int, int, (int, int), (int, int), (int, int), (int, int)> PoolCases => new()
    {
        { 1, 1, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1) },
        { 3, 2, 7, 5, (3, 3), (2, 2), (1, 1), (1, 1) },
        { 1, 3, 9, 7, (3, 2), (1, 1), (1, 1), (1, 1) },
        { 3, 2, 8, 9, (2, 3), (3, 2), (1, 1), (1, 1) },
        { 1, 2, 9, 9, (3, 3), (2, 1), (1, 0), (2, 2) },
        { 3, 1, 5, 6, (5, 3), (3, 3), (2, 1), (1, 1) },
    };

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void MaxPool2d_MatchesDefinitionAndFiniteDifferences(int n, int c, int h, int w, (int, int) kernel, (int, int) stride,
        (int, int) padding, (int, int) dilation)
    {
        var x = TestTensors.Leaf(11, n, c, h, w);
        var y = Tensor.MaxPool2d(x.Detach(), kernel, stride, padding, dilation);
        var expected = PoolReference(x.ToDoubleArray(), n * c, h, w, kernel, stride, padding, dilation,
            window => window.Count == 0 ? double.NegativeInfinity : window.Max(e => e.Value), out int oh, out int ow);
        Assert.Equal([n, c, oh, ow], y.Shape.ToArray());
        TestTensors.AllClose(expected, y.ToDoubleArray(), 0, 0, "max_pool2d");
        GradCheck.Assert(t => Tensor.MaxPool2d(t[0], kernel, stride, padding, dilation), [x], name: "max_pool2d");
    }

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void AvgPool2d_MatchesDefinitionAndFiniteDifferences(int n, int c, int h, int w, (int, int) kernel, (int, int) stride,
        (int, int) padding, (int, int) dilation)
    {
        if (dilation != (1, 1)) return; // avg_pool2d has no dilation (as PyTorch)
        var x = TestTensors.Leaf(12, n, c, h, w);
        foreach (bool includePad in new[] { true, false })
        {
            var y = Tensor.AvgPool2d(x.Detach(), kernel, stride, padding, includePad);
            (int KH, int KW) k = kernel;
            var expected = PoolReference(x.ToDoubleArray(), n * c, h, w, kernel, stride, padding, (1, 1),
                window => window.Sum(e => e.Value) / (includePad ? k.KH * k.KW : window.Count), out int oh, out int ow);
            Assert.Equal([n, c, oh, ow], y.Shape.ToArray());
            TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-6, 1e-6, $"avg_pool2d count_include_pad={includePad}");
            GradCheck.Assert(t => Tensor.AvgPool2d(t[0], kernel, stride, padding, includePad), [x], name: "avg_pool2d");
        }
    }

    /// <summary>Every window's input elements (value, flat index in the plane) reduced by <paramref name="reduce"/>, floor mode.</summary>
    private static double[] PoolReference(double[] x, int planes, int h, int w, (int H, int W) k, (int H, int W) s, (int H, int W) p,
        (int H, int W) d, Func<List<(double Value, int Index)>, double> reduce, out int oh, out int ow)
    {
        oh = (h + 2 * p.H - d.H * (k.H - 1) - 1) / s.H + 1;
        ow = (w + 2 * p.W - d.W * (k.W - 1) - 1) / s.W + 1;
        var y = new double[planes * oh * ow];
        for (int pl = 0; pl < planes; pl++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    var window = new List<(double, int)>();
                    for (int a = 0; a < k.H; a++)
                        for (int b = 0; b < k.W; b++)
                        {
                            int ih = i * s.H - p.H + a * d.H, iw = j * s.W - p.W + b * d.W;
                            if (ih >= 0 && ih < h && iw >= 0 && iw < w) window.Add((x[(pl * h + ih) * w + iw], ih * w + iw));
                        }
                    y[(pl * oh + i) * ow + j] = reduce(window);
                }
        return y;
    }

    [Fact]
    public void MaxPool2d_Ties_GradientGoesToFirstMaximumInScanOrder()
    {
        // One 3×3 plane, kernel 2, stride 1: overlapping windows; 5 appears at (0,1) and (1,0), 7 at (1,2) and (2,2).
        var x = Tensor.FromArray([1.0, 5, 2, 5, 3, 7, 0, 4, 7], 1, 1, 3, 3);
        x.RequiresGrad = true;
        var y = Tensor.MaxPool2d(x, 2, stride: 1);
        Assert.Equal([5.0, 7, 5, 7], y.ToDoubleArray());
        y.Backward(Tensor.FromArray([1.0, 10, 100, 1000], 1, 1, 2, 2));
        // Window (0,0) {1,5,5,3}: first 5 is (0,1). Window (0,1) {5,2,3,7}: 7 at (1,2). Window (1,0) {5,3,0,4}: 5 at (1,0).
        // Window (1,1) {3,7,4,7}: first 7 is (1,2). So (1,2) gets 10 + 1000.
        Assert.Equal([0.0, 1, 0, 100, 0, 1010, 0, 0, 0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void MaxPool2d_NaNInWindow_IsChosenAndPropagates()
    {
        var x = Tensor.FromArray([1.0, double.NaN, 2, 3], 1, 1, 2, 2);
        Assert.True(double.IsNaN(Tensor.MaxPool2d(x, 2).Item()));
    }

    [Theory]
    [InlineData(5, 7, 1, 1)]
    [InlineData(5, 7, 3, 2)]
    [InlineData(7, 5, 3, 4)]
    [InlineData(6, 6, 4, 4)]
    [InlineData(4, 3, 4, 3)]
    [InlineData(3, 5, 5, 7)] // output larger than input: windows repeat elements
    public void AdaptiveAvgPool2d_MatchesPyTorchWindowsAndFiniteDifferences(int h, int w, int oh, int ow)
    {
        var x = TestTensors.Leaf(13, 3, 2, h, w);
        var y = Tensor.AdaptiveAvgPool2d(x.Detach(), (oh, ow));
        Assert.Equal([3, 2, oh, ow], y.Shape.ToArray());
        var xv = x.ToDoubleArray();
        var expected = new double[6 * oh * ow];
        for (int p = 0; p < 6; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    // PyTorch: start = floor(i·H/OH), end = ceil((i + 1)·H/OH).
                    int h0 = (int)Math.Floor((double)i * h / oh), h1 = (int)Math.Ceiling((double)(i + 1) * h / oh);
                    int w0 = (int)Math.Floor((double)j * w / ow), w1 = (int)Math.Ceiling((double)(j + 1) * w / ow);
                    double sum = 0;
                    for (int a = h0; a < h1; a++)
                        for (int b = w0; b < w1; b++) sum += xv[(p * h + a) * w + b];
                    expected[(p * oh + i) * ow + j] = sum / ((h1 - h0) * (w1 - w0));
                }
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-12, 1e-12, "adaptive_avg_pool2d");
        GradCheck.Assert(t => Tensor.AdaptiveAvgPool2d(t[0], (oh, ow)), [x], name: "adaptive_avg_pool2d");
    }

    [Fact]
    public void Pooling_OneAndTwoKernelThreads_BitwiseIdentical()
    {
        var g = new Generator(14);
        var x = Tensor.RandN(g, 8, 16, 29, 31);
        var v = Tensor.RandN(g, 8, 16, 15, 16);
        var va = Tensor.RandN(g, 8, 16, 3, 5);
        float[][] Run(int threads)
        {
            try
            {
                KernelThreads.SetCount(threads);
                var results = new List<float[]>();
                foreach (var op in new Func<Tensor, Tensor>[] { t => Tensor.MaxPool2d(t, 3, 2, 1), t => Tensor.AvgPool2d(t, 3, 2, 1), t => Tensor.AdaptiveAvgPool2d(t, (3, 5)) })
                {
                    var xl = x.Detach();
                    xl.RequiresGrad = true;
                    var y = op(xl);
                    (y * (y.Shape[2] == 3 ? va : v)).Sum().Backward();
                    results.Add(y.ToArray());
                    results.Add(xl.Grad!.ToArray());
                }
                return results.ToArray();
            }
            finally
            {
                SuiteSetup.RestoreKernelThreads();
            }
        }
        var one = Run(1);
        var two = Run(2);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void Pooling_BadArguments_ThrowNamingOpArgumentAndShapes()
    {
        var x = Tensor.Zeros(2, 3, 4, 4);
        var e = Assert.Throws<ArgumentException>(() => Tensor.MaxPool2d(x, 3, padding: 2));
        Assert.StartsWith("max_pool2d:", e.Message);
        Assert.Contains("half of kernel_size", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.AvgPool2d(x, 5));
        Assert.StartsWith("avg_pool2d:", e.Message);
        Assert.Contains("larger than the padded input", e.Message);
        Assert.Contains("[2, 3, 4, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.MaxPool2d(Tensor.Zeros(3, 4), 2));
        Assert.Contains("[3, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.AdaptiveAvgPool2d(x, (0, 1)));
        Assert.StartsWith("adaptive_avg_pool2d:", e.Message);
        Assert.Contains("stride", Assert.Throws<ArgumentException>(() => Tensor.AvgPool2d(x, 2, stride: 0)).Message);
    }
}
