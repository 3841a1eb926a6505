using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

public class RewritesTests
{
    private static NetworkDescription Mlp(string text) => Shorthands.FromSpec(ModelSpec.Parse(text));

    // ---- swap activation

    [Fact]
    public void SwapActivation_Mlp_EqualsTheSpecWithTheOtherActivation()
    {
        Assert.Equal(Mlp("mlp 8-6x4-3 act=relu norm=batch"), Rewrites.SwapActivation(Mlp("mlp 8-6x4-3 act=sigmoid norm=batch"), Activation.Relu));
        Assert.Equal(Mlp("mlp 8-6x4-3 act=relu residual=zero"), Rewrites.SwapActivation(Mlp("mlp 8-6x4-3 act=tanh residual=zero"), Activation.Relu, Activation.Tanh));
    }

    [Fact]
    public void SwapActivation_ResNetInScope_TouchesOnlyThatStage()
    {
        var d = Rewrites.SwapActivation(Shorthands.ResNet(20), Activation.Sigmoid, scope: "layer2");
        var acts = d.Shapes().Where(s => s.Block is ActBlock || s.Block is ResidualBlock { Post: not null } && !s.IsShortcut).ToArray();
        Assert.All(acts.Where(s => s.Path.StartsWith("layer2.", StringComparison.Ordinal)), s => Assert.Equal(Activation.Sigmoid, KindOf(s.Block)));
        Assert.All(acts.Where(s => !s.Path.StartsWith("layer2.", StringComparison.Ordinal)), s => Assert.Equal(Activation.Relu, KindOf(s.Block)));
        Assert.Equal(6, acts.Count(s => KindOf(s.Block) == Activation.Sigmoid));   // 3 blocks: inner relu and post-activation
    }

    private static Activation KindOf(Block b) => b is ActBlock a ? a.Kind : ((ResidualBlock)b).Post!.Value;

    [Fact]
    public void SwapActivation_CnnShorthand_EqualsTheShorthandWithTheOtherAct()
    {
        Assert.Equal(NetworkDescription.Parse("cnn 1x28x28-c8-c16s2-gap-10 act=tanh"),
            Rewrites.SwapActivation(NetworkDescription.Parse("cnn 1x28x28-c8-c16s2-gap-10 act=relu"), Activation.Tanh));
    }

    // ---- insert norm

    [Theory]
    [InlineData("mlp 8-6x4-3 act=tanh", "mlp 8-6x4-3 act=tanh norm=batch")]
    [InlineData("mlp 8-6-5-3 act=relu residual=yes dropout=0.2", "mlp 8-6-5-3 act=relu residual=yes dropout=0.2 norm=batch")]
    public void InsertNorm_Mlp_EqualsTheSpecWithBatchNorm(string without, string with)
    {
        Assert.Equal(Mlp(with), Rewrites.InsertNorm(Mlp(without), NormalizationKind.Batch));
        // applied twice, nothing more is inserted
        Assert.Equal(Mlp(with), Rewrites.InsertNorm(Rewrites.InsertNorm(Mlp(without), NormalizationKind.Batch), NormalizationKind.Batch));
    }

    [Fact]
    public void InsertNorm_Cnn_EqualsTheShorthandWithTheNorm()
    {
        var plain = NetworkDescription.Parse("cnn 3x16x16-c8-c16s2-p-f32-10 norm=none");
        var withGroupNorm = Rewrites.InsertNorm(plain, NormalizationKind.Group, 4);
        Assert.Equal(3, withGroupNorm.Shapes().Count(s => s.Block is NormBlock { Kind: NormalizationKind.Group, Groups: 4 }));
        var batch = Rewrites.InsertNorm(plain, NormalizationKind.Batch);
        // the shorthand with norm=batch also drops the (redundant) conv biases; otherwise the same blocks
        Assert.Equal(NetworkDescription.Parse("cnn 3x16x16-c8-c16s2-p-f32-10 norm=batch"), Rewrites.Map(batch, b => b is ConvBlock c ? c with { Bias = false } : b));
        Assert.Equal([10], NetworkBuilder.Build(batch, new Generator(0)).Forward(Tensor.RandN(new Generator(1), 2, 3, 16, 16)).Shape.ToArray()[1..]);
    }

    [Theory]
    [InlineData("resnet20")]
    [InlineData("resnet8 in=1x28x28 width=8 shortcut=b")]
    public void InsertNorm_NormFreeResNet_EqualsTheResNetWithBatchNorm(string resnet)
    {
        // conv1 and every block's conv1 precede an activation, and every block's conv2 ends its branch: each gets the BatchNorm
        // that the ResNet with norm=batch has there (He et al. 2016), and nothing else does (option B's projection shortcut is
        // no branch, and keeps its own norm or lack of one)
        var d = Rewrites.InsertNorm(NetworkDescription.Parse(resnet + " norm=none"), NormalizationKind.Batch);
        var batch = NetworkDescription.Parse(resnet + " norm=batch");
        Assert.Equal(batch.Shapes().Where(s => !s.IsShortcut).Count(s => s.Block is NormBlock), d.Shapes().Count(s => s.Block is NormBlock));
        Assert.Equal(NormalisedConvs(batch), NormalisedConvs(d));
        Assert.Equal(NetworkBuilder.Build(d, new Generator(0)).ParameterCount(), d.ParameterCount());
    }

    /// <summary>The path of the conv that each norm outside the shortcuts follows, in order.</summary>
    private static string[] NormalisedConvs(NetworkDescription n)
    {
        string? conv = null;
        var result = new List<string>();
        foreach (var s in n.Shapes().Where(s => !s.IsShortcut))
            if (s.Block is ConvBlock) conv = s.Path;
            else if (s.Block is NormBlock) result.Add(conv ?? "(none)");
        return result.ToArray();
    }

    // ---- wrap in a residual

    [Theory]
    [InlineData("mlp 8-6x4-3 act=tanh norm=batch", "mlp 8-6x4-3 act=tanh norm=batch residual=zero")]
    [InlineData("mlp 8-6-5-3 act=relu dropout=0.2", "mlp 8-6-5-3 act=relu dropout=0.2 residual=zero")]
    public void WrapResidual_Mlp_EqualsTheSpecWithZeroResiduals(string plain, string residual)
    {
        Assert.Equal(Mlp(residual), Rewrites.WrapResidual(Mlp(plain)));
    }

    [Fact]
    public void WrapResidual_Cnn_EachLayerIsItsShortcutAtInitialisation()
    {
        // with α = 0 a wrapped same-shape layer passes x on, so the wrapped 3-layer net equals its head alone
        var d = NetworkDescription.Create([4, 6, 6], n => n.Conv(4, 3, padding: 1).Act(Activation.Sigmoid)
            .Conv(4, 3, padding: 1).Act(Activation.Sigmoid).Flatten().Linear(3, name: "fc"));
        var wrapped = Rewrites.WrapResidual(d);
        Assert.Equal(2, wrapped.Root.Blocks.OfType<ResidualBlock>().Count());
        var net = NetworkBuilder.Build(wrapped, new Generator(5));
        var x = Tensor.RandN(new Generator(6), 2, 4, 6, 6);
        var fc = (Linear)net.NamedModules().First(m => m.Name == "fc").Module;
        Assert.Equal(fc.Forward(x.Flatten(1)).ToArray(), net.Forward(x).ToArray());
    }

    [Fact]
    public void WrapResidual_PlainStageInScope_AddsProjectionWhereTheShapeChanges()
    {
        var d = Rewrites.WrapResidual(NetworkDescription.Parse("plain20 in=1x8x8"), scope: "layer2.0");
        var wrapped = d.Shapes().Where(s => s.Block is ResidualBlock && !s.IsShortcut).Select(s => s.Path).ToArray();
        // layer2.0's two layers: conv1-bn1-relu (16 → 32 channels, stride 2: projected) and conv2-bn2-act (same shape: identity)
        Assert.Equal(["layer2.0.0", "layer2.0.1"], wrapped);
        Assert.Equal(["layer2.0.0.shortcut"], d.Shapes().Where(s => s.IsShortcut).Select(s => s.Path));
        Assert.Contains(d.Shapes(), s => s.Path == "layer2.0.0.branch.conv1");
        Assert.Contains("layer2.0.0.shortcut.0.weight", NetworkBuilder.Build(d, new Generator(0)).StateDict().Select(kv => kv.Key));
    }

    // ---- change init

    [Fact]
    public void ChangeInit_Mlp_EqualsTheSpecWithThatInit()
    {
        Assert.Equal(Mlp("mlp 8-6x3-3 act=relu init=he-normal out-init=he-normal"),
            Rewrites.ChangeInit(Mlp("mlp 8-6x3-3 act=relu init=normal:1"), new InitScheme(InitKind.KaimingNormal)));
        var partial = Rewrites.ChangeInit(Mlp("mlp 8-6x3-3 act=relu init=normal:1 out-init=normal:0.5"), new InitScheme(InitKind.Orthogonal), "layers.2");
        Assert.Equal([InitKind.Normal, InitKind.Orthogonal, InitKind.Normal, InitKind.Normal],
            partial.Root.Blocks.OfType<LinearBlock>().Select(l => l.Init!.Value.Kind));
    }

    [Fact]
    public void ChangeInit_ResNet_ChangesEveryConvAndTheFc()
    {
        var d = Rewrites.ChangeInit(Shorthands.ResNet(20, shortcut: ShortcutKind.Projection), new InitScheme(InitKind.Normal, 0.01));
        Assert.All(d.Shapes().Select(s => s.Block).OfType<ConvBlock>(), c => Assert.Equal(new InitScheme(InitKind.Normal, 0.01), c.Init));
        Assert.Equal(new InitScheme(InitKind.Normal, 0.01), d.Shapes().Select(s => s.Block).OfType<LinearBlock>().Single().Init);
        var w = NetworkBuilder.Build(d, new Generator(0)).StateDict().First(kv => kv.Key == "layer3.2.conv2.weight").Value.ToDoubleArray();
        Assert.InRange(Math.Sqrt(w.Sum(v => v * v) / w.Length), 0.0095, 0.0105);
    }

    [Fact]
    public void ChangeRecurrentInit_Lstm_EqualsTheSpecWithThatInit()
    {
        Assert.Equal(NetworkDescription.Parse("lstm 2-16x2-1 init=orthogonal forget-bias=1"),
            Rewrites.ChangeRecurrentInit(NetworkDescription.Parse("lstm 2-16x2-1 forget-bias=1"), new RecurrentInit(RecurrentInitKind.Orthogonal)));
    }

    // ---- switch cell

    [Fact]
    public void SwitchCell_Rnn_EqualsTheSpecOfTheOtherCell()
    {
        Assert.Equal(NetworkDescription.Parse("lstm 2-16x2-1 init=orthogonal"),
            Rewrites.SwitchCell(NetworkDescription.Parse("rnn 2-16x2-1 act=tanh init=orthogonal"), RecurrentCellKind.Lstm));
        Assert.Equal(NetworkDescription.Parse("gru 2-16-1"), Rewrites.SwitchCell(NetworkDescription.Parse("lstm 2-16-1 forget-bias=1"), RecurrentCellKind.Gru));
        var built = NetworkBuilder.Build(Rewrites.SwitchCell(NetworkDescription.Parse("rnn 3-8-2"), RecurrentCellKind.Gru), new Generator(0));
        Assert.Equal([24, 8], built.StateDict().First(kv => kv.Key == "rnn.weight_hh_l0").Value.Shape.ToArray());
    }

    [Fact]
    public void Rewrites_WithoutTheirBlocks_LeaveTheDescriptionUnchanged()
    {
        var mlp = Mlp("mlp 8-6x2-3");
        Assert.Equal(mlp, Rewrites.SwitchCell(mlp, RecurrentCellKind.Lstm));
        var lstm = NetworkDescription.Parse("lstm 2-16-1");
        Assert.Equal(lstm, Rewrites.InsertNorm(lstm, NormalizationKind.Layer));
        Assert.Equal(lstm, Rewrites.WrapResidual(lstm));
        Assert.Equal(lstm, Rewrites.SwapActivation(lstm, Activation.Relu));
        var resnet = Shorthands.ResNet(20);
        Assert.Equal(resnet, Rewrites.ChangeRecurrentInit(resnet, new RecurrentInit(RecurrentInitKind.Orthogonal)));
        Assert.Equal(resnet, Rewrites.SwapActivation(resnet, Activation.Tanh, scope: "nowhere"));
    }
}
