using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

public class NetworkShapeTests
{
    [Fact]
    public void OutputShape_CnnThroughConvPoolFlattenLinear_FollowsTheFormulas()
    {
        var d = NetworkDescription.Create([3, 17, 12], n => n
            .Conv(8, (3, 2), stride: 2, padding: (1, 0))       // H: (17 + 2 − 3)/2 + 1 = 9, W: (12 − 2)/2 + 1 = 6
            .Pool(PoolKind.Max, 2, stride: 1)                   // 8 x 5
            .Conv(6, 3, dilation: 2, groups: 2)                 // 8 − 4 = 4, 5 − 4 = 1
            .AdaptiveAvgPool((2, 1)).Flatten().Linear(5));
        Assert.Equal([5], d.OutputShape());
        var shapes = d.Shapes();
        Assert.Equal(["0", "1", "2", "3", "4", "5"], shapes.Select(s => s.Path));
        Assert.Equal([8, 9, 6], shapes[0].Output);
        Assert.Equal([8, 8, 5], shapes[1].Output);
        Assert.Equal([6, 4, 1], shapes[2].Output);
        Assert.Equal([12], shapes[4].Output);
    }

    [Fact]
    public void OutputShape_AgreesWithTheBuiltNetwork()
    {
        foreach (var text in new[] { "resnet20 in=1x28x28", "plain20 in=3x9x9 classes=4", "cnn 1x28x28-c8-c16s2-p-f32-10 norm=group:4", "lstm 3-8x2-5", "mlp 6-5x2-3" })
        {
            var d = NetworkDescription.Parse(text);
            var net = NetworkBuilder.Build(d, new Generator(1));
            var y = net.Forward(Tensor.RandN(new Generator(2), [2, .. d.Input]));
            Assert.Equal([2, .. d.OutputShape()], y.Shape.ToArray());
        }
    }

    [Fact]
    public void Shapes_ResidualPathsNameTheBranchAndShortcut()
    {
        var paths = Shorthands.ResNet(20, shortcut: ShortcutKind.Projection).Shapes().Select(s => s.Path).ToArray();
        Assert.Contains("layer2.0", paths);
        Assert.Contains("layer2.0.conv1", paths);
        Assert.Contains("layer2.0.shortcut", paths);
        Assert.DoesNotContain("layer1.0.shortcut", paths);
        var mlp = Shorthands.FromSpec(ModelSpec.Parse("mlp 4-6-6-2 residual=yes")).Shapes().Select(s => s.Path).ToArray();
        Assert.Equal(["layers", "layers.0", "layers.0.branch", "layers.0.branch.0", "layers.0.branch.1", "layers.0.shortcut",
            "layers.1", "layers.1.branch", "layers.1.branch.0", "layers.1.branch.1", "layers.2"], mlp);
    }

    public static TheoryData<string, string> Mismatches() => new()
    {
        // a residual whose branch changes the channels with an identity shortcut
        { "net 16x8x8 layers:seq[conv(out=16,k=3,p=1) relu residual[branch:seq[conv(out=32,k=3,p=1) relu]]]", "layers.2: the branch maps [16, 8, 8] to [32, 8, 8] but the shortcut is the identity" },
        { "net 32 seq[linear(out=8) conv(out=4,k=3)]", "1: conv expects [C, H, W], gets [8]" },
        { "net 3x8x8 seq[conv(out=4,k=3,g=2)]", "0: conv groups 2 must divide its 3 input" },
        { "net 3x4x4 seq[conv(out=4,k=5)]", "0: conv kernel (5, 5)" },
        { "net 3x4x4 seq[maxpool(k=2,p=2)]", "0: pool kernel" },
        // windows larger than the (padded) input by less than a stride: the output size rounds down below 1
        { "net 4x1x1 seq[maxpool(k=2)]", "0: pool kernel (2, 2) does not fit a 1x1 input" },
        { "net 1x28x28 seq[avgpool(k=30)]", "0: pool kernel (30, 30) does not fit a 28x28 input" },
        { "net 3x1x1 seq[conv(out=4,k=2,s=2)]", "0: conv kernel (2, 2)" },
        { "net 3x5x5 seq[conv(out=4,k=4,s=3,d=2)]", "0: conv kernel (4, 4)" },
        { "net 6 seq[groupnorm(groups=4)]", "0: group norm of 4 groups" },
        { "net 3x4 seq[batchnorm]", "0: batch norm expects [F] or [C, H, W], gets [3, 4]" },
        { "net 3x8x8 seq[recurrent(cell=lstm,hidden=4)]", "0: recurrent expects [T, I]" },
        { "net 5x2 seq[recurrent(cell=gru,hidden=4,forget-bias=1)]", "0: forget bias applies to an LSTM only" },
        { "net 4 seq[residual(start=zero-gamma)[seq[linear(out=4) relu]]]", "0: start zero-gamma needs a norm" },
        { "net 4x8x8 seq[residual(shortcut=zero-pad)[seq[conv(out=2,k=1)]]]", "0: the branch maps [4, 8, 8] to [2, 8, 8]; a zero-pad shortcut cannot drop channels" },
        { "net 4 seq[a:relu a:tanh]", "a: block names must be unique" },
        { "net 4 seq[dropout(p=1)]", "0: dropout p 1 must be in [0, 1)" },
    };

    [Theory]
    [MemberData(nameof(Mismatches))]
    public void OutputShape_BlockDoesNotFit_ThrowsNamingThePath(string text, string message)
    {
        var d = NetworkText.Parse(text);
        var e = Assert.Throws<ArgumentException>(() => d.OutputShape());
        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => NetworkBuilder.Build(d, new Generator(0)));
    }

    [Fact]
    public void OutputShape_ConvChannelMismatchInsideNamedBranch_NamesTheBranchBlock()
    {
        // the brief's example path: layers.2.branch.0
        var d = NetworkDescription.Create([16, 8, 8], n => n
            .Conv(16, 3, padding: 1).Act(Activation.Relu)
            .Residual(b => b.Conv(16, 3, padding: 1, groups: 3), branchName: "branch"), rootName: "layers");
        var e = Assert.Throws<ArgumentException>(() => d.OutputShape());
        Assert.StartsWith("layers.2.branch.0: conv groups 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParameterCount_FromShapes_EqualsTheBuiltNetworksForEveryFamily()
    {
        foreach (var text in new[] { "mlp 6-5x2-3 act=prelu norm=layer residual=zero", "mlp 6-5-7-3 residual=yes norm=batch", "gru 3-8x3-2",
                     "lstm 2-5-1", "cnn 3x16x16-c8x2-p-c16s2-gap-10 norm=group:4", "plain56", "resnet44 shortcut=b start=zero" })
        {
            var d = NetworkDescription.Parse(text);
            Assert.Equal(NetworkBuilder.Build(d, new Generator(0)).ParameterCount(), d.ParameterCount());
        }
    }

    [Fact]
    public void Forward_InputOfAnotherShape_ReshapedWhenTheCountFits_ElseThrows()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("mlp 784-16-10"), new Generator(0));
        Assert.Equal([2, 10], net.Forward(Tensor.Zeros(2, 1, 28, 28)).Shape.ToArray());
        var e = Assert.Throws<ArgumentException>(() => net.Forward(Tensor.Zeros(2, 27, 28)));
        Assert.Contains("expected input [N, 784]", e.Message, StringComparison.Ordinal);
    }
}
