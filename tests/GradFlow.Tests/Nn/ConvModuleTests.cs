using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

/// <summary>The convolutional-network modules: Conv2d, the pooling layers, BatchNorm2d and GroupNorm (names, defaults, init, reprs, gradients).</summary>
public class ConvModuleTests
{
    [Fact]
    public void Conv2d_DefaultInit_IsPyTorchsUniformWithFanIn()
    {
        // fan_in = C_in/groups·KH·KW = 4/2·3·5 = 30; weight and bias U(±1/√30).
        var conv = new Conv2d(4, 6, (3, 5), new Generator(1), groups: 2);
        Assert.Equal([6, 2, 3, 5], conv.Weight.Shape.ToArray());
        double bound = 1 / Math.Sqrt(30);
        var w = conv.Weight.Data.ToDoubleArray();
        var b = conv.Bias!.Data.ToDoubleArray();
        Assert.All(w.Concat(b), v => Assert.InRange(Math.Abs(v), 0, bound));
        Assert.True(w.Max() > 0.8 * bound && w.Min() < -0.8 * bound, "the weight should fill its range");
        double variance = w.Select(v => v * v).Average();
        Assert.InRange(variance, 0.6 * bound * bound / 3, 1.4 * bound * bound / 3); // U(±a) has variance a²/3
    }

    [Fact]
    public void Conv2d_StateDictAndRepr_AreTorchs()
    {
        var g = new Generator(2);
        var conv = new Conv2d(1, 16, 3, g, padding: 1, bias: false);
        Assert.Equal(["weight"], conv.StateDict().Select(kv => kv.Key));
        Assert.Equal("Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)", conv.ToString());
        var dw = new Conv2d(8, 8, (3, 1), g, stride: 2, dilation: (2, 1), groups: 8);
        Assert.Equal(["weight", "bias"], dw.StateDict().Select(kv => kv.Key));
        Assert.Equal("Conv2d(8, 8, kernel_size=(3, 1), stride=(2, 2), dilation=(2, 1), groups=8)", dw.ToString());
    }

    [Fact]
    public void Conv2d_Module_ComputesTheOpAndItsGradient()
    {
        var conv = new Conv2d(2, 3, 3, new Generator(3), stride: 2, padding: 1);
        var x = Tensor.RandN(new Generator(4), 2, 2, 7, 6);
        Assert.Equal(Tensor.Conv2d(x, conv.Weight, conv.Bias!.Data, 2, 1).ToArray(), conv.Forward(x).ToArray());
        // Float64 input: the module converts its parameters, so GradCheck can run through it.
        GradCheck.Assert(t => conv.Forward(t[0]), [TestTensors.Leaf(5, 2, 2, 7, 6)], name: "Conv2d module");
    }

    [Fact]
    public void Conv2d_BadArguments_ThrowNamingThem()
    {
        var g = new Generator(0);
        Assert.Contains("divisible by groups 2", Assert.Throws<ArgumentException>(() => new Conv2d(3, 4, 3, g, groups: 2)).Message);
        Assert.Contains("stride", Assert.Throws<ArgumentException>(() => new Conv2d(3, 4, 3, g, stride: 0)).Message);
        var e = Assert.Throws<ArgumentException>(() => new Conv2d(3, 4, 3, g).Forward(Tensor.Zeros(2, 4, 8, 8)));
        Assert.Contains("[2, 4, 8, 8]", e.Message);
        Assert.Contains("[4, 3, 3, 3]", e.Message);
    }

    [Fact]
    public void Pooling_Modules_HaveTorchDefaultsAndReprs()
    {
        var max = new MaxPool2d(2);
        Assert.Equal(new Size2d(2, 2), max.Stride);
        Assert.Equal("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)", max.ToString());
        Assert.Equal("MaxPool2d(kernel_size=(3, 2), stride=1, padding=1, dilation=1, ceil_mode=False)", new MaxPool2d((3, 2), 1, 1).ToString());
        Assert.Equal("AvgPool2d(kernel_size=3, stride=2, padding=1)", new AvgPool2d(3, 2, 1).ToString());
        Assert.Equal("AdaptiveAvgPool2d(output_size=1)", new AdaptiveAvgPool2d(1).ToString());
        Assert.Equal("Flatten(start_dim=1, end_dim=-1)", new Flatten().ToString());
        var x = Tensor.RandN(new Generator(6), 2, 3, 6, 5);
        Assert.Equal(Tensor.MaxPool2d(x, 2).ToArray(), max.Forward(x).ToArray());
        Assert.Equal(Tensor.AvgPool2d(x, 3, 2, 1).ToArray(), new AvgPool2d(3, 2, 1).Forward(x).ToArray());
        Assert.Equal([2, 3, 1, 1], new AdaptiveAvgPool2d(1).Forward(x).Shape.ToArray());
        Assert.Empty(max.StateDict());
    }

    [Fact]
    public void BatchNorm2d_Training_MatchesDefinitionAndUpdatesRunningStatisticsAsTorch()
    {
        var bn = new BatchNorm2d(3);
        Assert.Equal(["weight", "bias", "running_mean", "running_var", "num_batches_tracked"], bn.StateDict().Select(kv => kv.Key));
        Assert.Equal("BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)", bn.ToString());
        var x = Tensor.RandN(new Generator(7), 4, 3, 5, 2) * 2 + 1;
        var y = bn.Forward(x).ToDoubleArray();
        var xv = x.ToDoubleArray();
        for (int c = 0; c < 3; c++)
        {
            // Channel c over N, H, W: 4·10 = 40 values.
            var idx = Enumerable.Range(0, 4).SelectMany(n => Enumerable.Range((n * 3 + c) * 10, 10)).ToArray();
            double mean = idx.Average(i => xv[i]);
            double biased = idx.Average(i => (xv[i] - mean) * (xv[i] - mean));
            foreach (int i in idx) Assert.Equal((xv[i] - mean) / Math.Sqrt(biased + 1e-5), y[i], 1e-5);
            Assert.Equal(0.1 * mean, bn.RunningMean!.ToDoubleArray()[c], 1e-6);
            Assert.Equal(0.9 + 0.1 * biased * 40 / 39, bn.RunningVar!.ToDoubleArray()[c], 1e-5);
        }
        Assert.Equal(1.0, bn.NumBatchesTracked!.Item());
        bn.Eval();
        var rm = bn.RunningMean!.ToDoubleArray();
        var rv = bn.RunningVar!.ToDoubleArray();
        var ye = bn.Forward(x).ToDoubleArray();
        Assert.Equal((xv[0] - rm[0]) / Math.Sqrt(rv[0] + 1e-5), ye[0], 1e-5);
    }

    [Fact]
    public void BatchNorm2d_Gradient_MatchesFiniteDifferencesInTrainingAndEval()
    {
        var bn = new BatchNorm2d(3);
        var gamma = TestTensors.AwayFromZero(8, 0.5, 1.5, positive: true, 3);
        var beta = TestTensors.Leaf(9, 3);
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], null, null, 1e-5, out _, out _),
            [TestTensors.Leaf(10, 3, 3, 3, 2), gamma, beta], name: "batch_norm 2d training");
        var rm = Tensor.FromArray([0.5, -1, 2]);
        var rv = Tensor.FromArray([1.5, 0.25, 4]);
        GradCheck.Assert(t => NormOps.BatchNorm(t[0], t[1], t[2], rm, rv, 1e-5, out _, out _),
            [TestTensors.Leaf(11, 2, 3, 2, 3), gamma, beta], name: "batch_norm 2d eval");
        var e = Assert.Throws<ArgumentException>(() => bn.Forward(Tensor.Zeros(4, 3, 5)));
        Assert.Contains("BatchNorm2d: expected input [N, 3, H, W], got [4, 3, 5]", e.Message);
    }

    /// <summary>Group norm from its definition, in the test.</summary>
    private static double[] GroupNormReference(double[] x, int n, int c, int l, int groups, double[] gamma, double[] beta)
    {
        var y = new double[x.Length];
        int cg = c / groups;
        for (int i = 0; i < n; i++)
            for (int g = 0; g < groups; g++)
            {
                var idx = Enumerable.Range((i * c + g * cg) * l, cg * l).ToArray();
                double mean = idx.Average(k => x[k]);
                double var = idx.Average(k => (x[k] - mean) * (x[k] - mean));
                foreach (int k in idx)
                {
                    int ch = k / l % c;
                    y[k] = (x[k] - mean) / Math.Sqrt(var + 1e-5) * gamma[ch] + beta[ch];
                }
            }
        return y;
    }

    [Theory]
    [InlineData(new[] { 2, 6, 3, 5 }, 3)]
    [InlineData(new[] { 3, 4, 5, 5 }, 1)]
    [InlineData(new[] { 1, 4, 3, 3 }, 4)]
    [InlineData(new[] { 2, 6, 7 }, 2)]
    public void GroupNorm_MatchesDefinitionAndFiniteDifferences(int[] shape, int groups)
    {
        int c = shape[1];
        var gn = new GroupNorm(groups, c);
        Assert.Equal(["weight", "bias"], gn.StateDict().Select(kv => kv.Key));
        var gamma = TestTensors.AwayFromZero(12, 0.5, 1.5, positive: true, c);
        var beta = TestTensors.Leaf(13, c);
        using (GradMode.NoGrad())
        {
            gn.Weight!.Data.CopyFrom(gamma.To(DType.Float32).Detach());
            gn.Bias!.Data.CopyFrom(beta.To(DType.Float32).Detach());
        }
        var x = Tensor.RandN(new Generator(14), shape) * 2 + 0.5;
        int l = x.Count / (shape[0] * c);
        var expected = GroupNormReference(x.ToDoubleArray(), shape[0], c, l, groups, gamma.ToDoubleArray(), beta.ToDoubleArray());
        TestTensors.AllClose(expected, gn.Forward(x).ToDoubleArray(), 1e-5, 1e-5, "group_norm");
        GradCheck.Assert(t => NormOps.GroupNorm(t[0], groups, t[1], t[2], 1e-5), [TestTensors.Leaf(15, shape), gamma, beta], name: "group_norm");
    }

    [Fact]
    public void GroupNorm_WithoutAffine_GradientMatchesFiniteDifferences_AndReprIsTorchs()
    {
        Assert.Equal("GroupNorm(2, 4, eps=1e-05, affine=False)", new GroupNorm(2, 4, affine: false).ToString());
        Assert.Empty(new GroupNorm(2, 4, affine: false).StateDict());
        GradCheck.Assert(t => NormOps.GroupNorm(t[0], 2, null, null, 1e-5), [TestTensors.Leaf(16, 3, 4, 2, 3)], name: "group_norm no affine");
        Assert.Contains("num_channels 6 must be divisible by num_groups 4", Assert.Throws<ArgumentException>(() => new GroupNorm(4, 6)).Message);
        Assert.Contains("GroupNorm: expected input [N, 6, *], got [2, 4, 3]",
            Assert.Throws<ArgumentException>(() => new GroupNorm(3, 6).Forward(Tensor.Zeros(2, 4, 3))).Message);
    }
}
