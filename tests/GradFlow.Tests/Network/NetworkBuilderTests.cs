using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Network;

public class NetworkBuilderTests
{
    public static TheoryData<string> MlpSpecs() =>
    [
        "mlp 6-5x2-3 act=tanh norm=batch",
        "mlp 8-16x3-4 act=relu init=he-normal dropout=0.1",
        "mlp 4-7-5-2 act=sigmoid init=xavier-uniform out-init=normal:0.05",
        "mlp 5-6-6-3 act=relu residual=zero init=he-normal norm=layer",
        "mlp 5-8-6-3 act=gelu residual=yes init=orthogonal",
        "mlp 3-4x2-2 act=prelu init=lecun-normal",
        "mlp 6-9-2 act=selu init=default:0.5",
        "mlp 6-9x2-2 act=tanh init=he-uniform:1.3 out-init=he-normal-fan-out",
    ];

    [Theory]
    [MemberData(nameof(MlpSpecs))]
    public void Build_DescriptionOfModelSpec_SameNamesShapesAndValuesAsModelBuilder(string text)
    {
        var spec = ModelSpec.Parse(text);
        var expected = ModelBuilder.Build(spec, new Generator(17)).StateDict().ToDictionary();
        var actual = NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(17)).StateDict().ToDictionary();
        Assert.Equal(expected.Select(kv => kv.Key), actual.Select(kv => kv.Key));
        foreach (var (key, t) in expected)
        {
            Assert.Equal(t.Shape.ToArray(), actual[key].Shape.ToArray());
            Assert.True(t.ToArray().SequenceEqual(actual[key].ToArray()), $"{text}: {key} differs");
        }
    }

    [Fact]
    public void Build_DescriptionOfModelSpec_SameOutputAsModelBuilder()
    {
        var spec = ModelSpec.Parse("mlp 6-5x3-3 act=tanh residual=yes norm=layer init=xavier-normal");
        var x = Tensor.RandN(new Generator(4), 5, 6);
        var expected = ModelBuilder.Build(spec, new Generator(2)).Forward(x).ToArray();
        var actual = NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(2)).Forward(x).ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Build_LsuvDescription_SameWeightsAsModelBuilder()
    {
        var spec = ModelSpec.Parse("mlp 6-8x2-3 act=tanh init=lsuv:1.5");
        var batch = Tensor.RandN(new Generator(9), 32, 6);
        var expected = ModelBuilder.Build(spec, new Generator(3), batch).StateDict().ToDictionary();
        var actual = NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(3), batch).StateDict().ToDictionary();
        foreach (var (key, t) in expected) Assert.Equal(t.ToArray(), actual[key].ToArray());
        Assert.Throws<ArgumentException>(() => NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(3)));
    }

    [Theory]
    [InlineData("lstm 2-16-1 forget-bias=1")]
    [InlineData("gru 3-8x2-4 init=orthogonal")]
    [InlineData("rnn 2-6x3-1 act=relu init=identity")]
    [InlineData("rnn 2-5-2 init=normal:0.3")]
    public void Build_DescriptionOfRecurrentSpec_SameStateDictAndOutputAsSequenceRegressor(string text)
    {
        var spec = RecurrentSpec.Parse(text);
        var expected = spec.Build(new Generator(8));
        var actual = NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(8));
        var e = expected.StateDict().ToDictionary();
        var a = actual.StateDict().ToDictionary();
        Assert.Equal(e.Select(kv => kv.Key), a.Select(kv => kv.Key));
        foreach (var (key, t) in e) Assert.Equal(t.ToArray(), a[key].ToArray());
        var x = Tensor.RandN(new Generator(1), 3, 7, spec.Input);
        Assert.Equal(expected.Forward(x).ToArray(), actual.Forward(x).ToArray());
    }

    [Fact]
    public void Build_ResNet20_HasTorchvisionCifarNames()
    {
        var net = NetworkBuilder.Build(Shorthands.ResNet(20, shortcut: ShortcutKind.Projection), new Generator(0));
        var names = net.StateDict().ToDictionary().Keys.ToHashSet();
        string[] expected =
        [
            "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
            "layer1.0.conv1.weight", "layer1.0.bn1.running_var", "layer1.2.conv2.weight", "layer1.2.bn2.bias",
            "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.running_mean", "layer3.0.shortcut.0.weight", "layer3.2.bn2.weight",
            "fc.weight", "fc.bias",
        ];
        Assert.All(expected, n => Assert.Contains(n, names));
        Assert.DoesNotContain("layer1.0.shortcut.0.weight", names);
        Assert.DoesNotContain(names, n => n.Contains("branch", StringComparison.Ordinal) || n.Contains("alpha", StringComparison.Ordinal));
        Assert.Equal([64, 32, 1, 1], net.StateDict().ToDictionary()["layer3.0.shortcut.0.weight"].Shape.ToArray());
    }

    [Theory]
    [InlineData(20, ShortcutKind.ZeroPad, 269_722)]
    [InlineData(20, ShortcutKind.Projection, 272_474)]
    [InlineData(32, ShortcutKind.ZeroPad, 464_154)]
    [InlineData(56, ShortcutKind.ZeroPad, 853_018)]
    [InlineData(110, ShortcutKind.ZeroPad, 1_727_962)]
    public void Build_CifarResNet_HasThePapersParameterCount(int depth, ShortcutKind shortcut, long parameters)
    {
        // He et al. 2016 Table 6: 0.27M, 0.46M, 0.85M, 1.7M (option A); the exact counts are PyTorch's (ResNetParityTests)
        var net = NetworkBuilder.Build(Shorthands.ResNet(depth, shortcut: shortcut), new Generator(0));
        Assert.Equal(parameters, net.ParameterCount());
        Assert.Equal(parameters, Shorthands.ResNet(depth, shortcut: shortcut).ParameterCount());
    }

    [Fact]
    public void Build_ResNet_ForwardGivesLogitsPerImage()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet20 in=1x28x28 classes=7"), new Generator(1));
        Assert.Equal([2, 7], net.Forward(Tensor.RandN(new Generator(2), 2, 1, 28, 28)).Shape.ToArray());
    }

    [Fact]
    public void Build_ZeroGamma_LastNormOfEachBranchStartsAtZero()
    {
        // option B: every block's last γ is 0
        var net = NetworkBuilder.Build(Shorthands.ResNet(20, shortcut: ShortcutKind.Projection, start: BranchStart.ZeroGamma), new Generator(1));
        var sd = net.StateDict().ToDictionary();
        Assert.All(sd.Where(kv => kv.Key.EndsWith("bn2.weight", StringComparison.Ordinal)), kv => Assert.All(kv.Value.ToArray(), v => Assert.Equal(0f, v)));
        Assert.All(sd.Where(kv => kv.Key.EndsWith("bn1.weight", StringComparison.Ordinal)), kv => Assert.All(kv.Value.ToArray(), v => Assert.Equal(1f, v)));
        // option A: a block whose zero-pad shortcut adds channels zeroes only the γ of the channels it carries (8..23 of 32, 16..47 of 64)
        var a = NetworkBuilder.Build(Shorthands.ResNet(20, start: BranchStart.ZeroGamma), new Generator(1)).StateDict().ToDictionary();
        Assert.All(a["layer1.0.bn2.weight"].ToArray(), v => Assert.Equal(0f, v));
        Assert.All(a["layer2.1.bn2.weight"].ToArray(), v => Assert.Equal(0f, v));
        Assert.Equal(Enumerable.Range(0, 32).Select(c => c is >= 8 and < 24 ? 0f : 1f), a["layer2.0.bn2.weight"].ToArray());
        Assert.Equal(Enumerable.Range(0, 64).Select(c => c is >= 16 and < 48 ? 0f : 1f), a["layer3.0.bn2.weight"].ToArray());
    }

    [Fact]
    public void Build_ZeroGammaOptionA_EveryChannelGetsAGradient()
    {
        // with every γ of a zero-pad block at 0, its padded channels were exactly 0 before the post-ReLU (gradient 0 there), so their γ and
        // β never had a gradient and stayed dead for the whole run
        var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet8 start=zero-gamma in=1x8x8 classes=3"), new Generator(2));
        var x = Tensor.RandN(new Generator(3), 6, 1, 8, 8);
        var loss = Losses.CrossEntropy(net.Forward(x), IndexTensor.FromArray([0, 1, 2, 0, 1, 2], 6));
        loss.Backward();
        foreach (var name in new[] { "layer2.0.bn2", "layer3.0.bn2" })
        {
            var p = net.NamedParameters().ToDictionary(t => t.Name, t => t.Parameter);
            var gb = p[$"{name}.bias"].Grad!.ToArray();
            Assert.All(gb, v => Assert.NotEqual(0f, v));
        }
    }

    [Fact]
    public void Build_ZeroStartResidual_BlockIsItsShortcutAtInitialisation()
    {
        // SkipInit: α = 0, so a block of the same shape passes relu(x) on; x is already ≥ 0 after a relu
        var d = NetworkDescription.Create([4, 6, 6], n => n
            .Act(Activation.Relu)
            .Residual(b => b.Conv(4, 3, padding: 1).Norm(NormalizationKind.Batch).Act(Activation.Relu).Conv(4, 3, padding: 1),
                start: BranchStart.Zero, post: Activation.Relu));
        var net = NetworkBuilder.Build(d, new Generator(3));
        Assert.Contains("1.alpha", net.StateDict().ToDictionary().Keys);
        var x = Tensor.RandN(new Generator(4), 2, 4, 6, 6);
        Assert.Equal(x.Relu().ToArray(), net.Forward(x).ToArray());
    }

    [Fact]
    public void Build_OptionAShortcut_SubsamplesAndZeroPadsChannels()
    {
        // a branch whose convs are all zero leaves relu(shortcut(x)): x[:, :, ::2, ::2] with 2 zero channels on each side
        var d = NetworkDescription.Create([4, 5, 5], n => n
            .Residual(b => b.Conv(8, 3, stride: 2, padding: 1, init: new InitScheme(InitKind.Normal, 1e-30)), ShortcutKind.ZeroPad));
        var net = NetworkBuilder.Build(d, new Generator(3));
        Assert.DoesNotContain(net.NamedParameters(), p => p.Name.Contains("shortcut", StringComparison.Ordinal));
        var x = Tensor.RandN(new Generator(4), 1, 4, 5, 5);
        var y = net.Forward(x);
        Assert.Equal([1, 8, 3, 3], y.Shape.ToArray());
        for (int c = 0; c < 8; c++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                {
                    double expected = c is < 2 or >= 6 ? 0 : x[0, c - 2, 2 * i, 2 * j];
                    Assert.Equal(expected, y[0, c, i, j], 1e-6);
                }
    }

    [Fact]
    public void Build_ResidualUnitsAndShortcuts_GradientsMatchFiniteDifferences()
    {
        // float64 input through option-A, option-B and α-scaled blocks (smooth activations: no kinks)
        foreach (var (shortcut, start) in new[] { (ShortcutKind.ZeroPad, BranchStart.Full), (ShortcutKind.Projection, BranchStart.Zero) })
        {
            var d = NetworkDescription.Create([2, 5, 5], n => n
                .Residual(b => b.Conv(4, 3, stride: 2, padding: 1).Norm(NormalizationKind.Batch).Act(Activation.Tanh).Conv(4, 3, padding: 1),
                    shortcut, start, Activation.Tanh)
                .Residual(b => b.Conv(4, 3, padding: 1).Norm(NormalizationKind.Group, 2), start: start, post: Activation.Silu)
                .AdaptiveAvgPool(1).Flatten().Linear(3));
            var net = NetworkBuilder.Build(d, new Generator(11));
            using (GradMode.NoGrad())
                foreach (var p in net.NamedParameters().Where(p => p.Name.EndsWith("alpha", StringComparison.Ordinal))) p.Parameter.Data.FillInPlace(0.7);
            GradCheck.Assert(t => net.Forward(t[0]), [TestTensors.Leaf(12, 3, 2, 5, 5)], name: $"residual network {shortcut} {start}");
        }
    }

    [Fact]
    public void Build_ResNet_FitsASmallBatch()
    {
        // the built modules train end to end: 40 SGD steps drive a ResNet-8 to fit 16 images of 4 classes
        var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet8 in=1x8x8 classes=4 width=8"), new Generator(1));
        var x = Tensor.RandN(new Generator(2), 16, 1, 8, 8);
        var labels = IndexTensor.FromArray(Enumerable.Range(0, 16).Select(i => i % 4).ToArray(), 16);
        var sgd = new GradFlow.Optim.Sgd(net.Parameters(), learningRate: 0.1, momentum: 0.9);
        double first = double.NaN, last = double.NaN;
        for (int step = 0; step < 40; step++)
        {
            sgd.ZeroGrad();
            var loss = Losses.CrossEntropy(net.Forward(x), labels);
            loss.Backward();
            sgd.Step();
            if (step == 0) first = loss.Item();
            last = loss.Item();
        }
        Assert.True(last < 0.2 * first, $"loss {first} → {last}");
    }

    [Fact]
    public void Build_ResNet_BranchesFuseBatchNormAndRelu_BitwiseTheUnfusedModules()
    {
        // A residual branch runs its steps as a Sequential does: a hook-free batch norm then ReLU as one op; the block's last
        // batch norm, the sum and the ReLU after it are one op too (relu(bn2(·) + shortcut)). With a forward hook on every module
        // (as the gradient monitor has) nothing fuses; outputs and gradients are the same bits.
        (float[] Y, float[][] Grads, Dictionary<string, int> Ops) Run(bool hooks)
        {
            var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet8 in=1x8x8 classes=4 width=8"), new Generator(1));
            net.Train();
            var handles = hooks ? net.NamedModules().Select(m => m.Module.RegisterForwardHook((_, _, _) => { })).ToList() : [];
            var x = Tensor.RandN(new Generator(2), 6, 1, 8, 8);
            var y = net.Forward(x);
            var ops = TestGraphs.OpCounts(y);
            (y * Tensor.RandN(new Generator(3), y.ShapeArray)).Sum().Backward();
            foreach (var h in handles) h.Dispose();
            return (y.ToArray(), net.Parameters().Select(p => p.Grad!.ToArray()).ToArray(), ops);
        }
        var fused = Run(hooks: false);
        var plain = Run(hooks: true);
        Assert.True(fused.Ops.GetValueOrDefault("batch_norm_relu") >= 3, string.Join(", ", fused.Ops));
        Assert.Equal(3, fused.Ops.GetValueOrDefault("batch_norm_add_relu")); // one per block, the option-A shortcuts included
        Assert.False(plain.Ops.ContainsKey("batch_norm_relu"));
        Assert.False(plain.Ops.ContainsKey("batch_norm_add_relu"));
        Assert.Equal(plain.Y, fused.Y);
        for (int i = 0; i < plain.Grads.Length; i++) Assert.Equal(plain.Grads[i], fused.Grads[i]);
    }

    [Fact]
    public void Build_SameSeed_SameWeights_DifferentSeed_DifferentWeights()
    {
        var d = Shorthands.ResNet(20);
        var a = NetworkBuilder.Build(d, new Generator(5)).StateDict().ToDictionary()["layer2.1.conv1.weight"].ToArray();
        var b = NetworkBuilder.Build(d, new Generator(5)).StateDict().ToDictionary()["layer2.1.conv1.weight"].ToArray();
        var c = NetworkBuilder.Build(d, new Generator(6)).StateDict().ToDictionary()["layer2.1.conv1.weight"].ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Build_ConvInit_IsHeNormalFanOutByDefault()
    {
        var w = NetworkBuilder.Build(NetworkDescription.Create([16, 8, 8], n => n.Conv(256, 3, padding: 1).Act(Activation.Relu)), new Generator(7))
            .StateDict().ToDictionary()["0.weight"].ToDoubleArray();
        double std = Math.Sqrt(w.Sum(v => v * v) / w.Length);
        double expected = Math.Sqrt(2.0 / (256 * 9));   // gain √2 over √fan_out
        Assert.InRange(std, 0.97 * expected, 1.03 * expected);
    }
}
