using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>Remedies on descriptions that are not specs: conv nets, ResNets, 'net …' texts of MLPs and recurrent networks.</summary>
public class DescriptionRemediesTests
{
    private static NetworkDescription Of(TrainingConfig c) => NetworkDescription.Parse(c.Model);

    private static TrainingConfig Config(string model) => new() { Model = model, LearningRate = 0.01 };

    private static IEnumerable<Block> All(NetworkDescription d) => NetworkFacts.Flatten(d.Root);

    [Theory]
    [InlineData("activation:relu@2-3")]
    [InlineData("activation:tanh")]
    [InlineData("norm:batch")]
    [InlineData("norm:layer@1-2")]
    [InlineData("residual:zero")]
    [InlineData("residual:full@2-4")]
    [InlineData("init:orthogonal@3-4")]
    [InlineData("init:he")]
    [InlineData("recipe:standard")]
    public void Remedy_OnTheNetTextOfAnMlpSpec_GivesTheSpecRemedysDescription(string id)
    {
        const string spec = "mlp 10-8x4-2 act=sigmoid init=xavier-uniform";
        var byspec = Remedies.Apply(id, Config(spec));
        var bytext = Remedies.Apply(id, Config(NetworkText.Format(NetworkDescription.Parse(spec))));
        Assert.StartsWith("net ", bytext.Model, StringComparison.Ordinal);
        Assert.Equal(Of(byspec), Of(bytext));
        Assert.Equal(byspec with { Model = "" }, bytext with { Model = "" });
    }

    [Theory]
    [InlineData("cell:gru")]
    [InlineData("cell:lstm")]
    [InlineData("init:orthogonal")]
    [InlineData("init:identity")]
    [InlineData("recipe:standard")]
    public void Remedy_OnTheNetTextOfARecurrentSpec_GivesTheSpecRemedysDescription(string id)
    {
        const string spec = "rnn 2-16x2-1";
        var byspec = Remedies.Apply(id, Config(spec));
        var bytext = Remedies.Apply(id, Config(NetworkText.Format(NetworkDescription.Parse(spec))));
        Assert.Equal(Of(byspec), Of(bytext));
        Assert.Equal(byspec.ClipNorm, bytext.ClipNorm);
    }

    [Fact]
    public void Activation_OnAConvNet_SwapsTheHiddenActivationsWithHeInit_NotTheOutput()
    {
        var config = Config("cnn 1x12x12-c4-p-c8-f16-3 act=sigmoid");
        var d = Of(Remedies.Apply("activation:relu", config));
        var acts = All(d).OfType<ActBlock>().Select(a => a.Kind).ToArray();
        Assert.Equal([Activation.Relu, Activation.Relu, Activation.Relu], acts);
        Assert.All(All(d).OfType<ConvBlock>(), c => Assert.Equal(InitKind.KaimingNormalFanOut, c.Init.Kind));
        var linears = All(d).OfType<LinearBlock>().ToArray();
        Assert.Equal(InitKind.KaimingNormal, linears[0].Init!.Value.Kind);
        Assert.Equal(All(Of(config)).OfType<LinearBlock>().Last(), linears[^1]);
    }

    [Fact]
    public void Activation_OnARange_ChangesOnlyThoseLayers()
    {
        var d = Of(Remedies.Apply("activation:relu@2-2", Config("cnn 1x12x12-c4-c4-c4-3 act=tanh")));
        Assert.Equal([Activation.Tanh, Activation.Relu, Activation.Tanh], All(d).OfType<ActBlock>().Select(a => a.Kind));
    }

    [Fact]
    public void NormAndResidual_OnAPlainConvNet_InsertBatchNormAndWrapEachLayer_AndTheResultBuildsAndRuns()
    {
        var config = Config("cnn 1x12x12-c4-c8s2-c8-3 act=relu norm=none");
        var normed = Of(Remedies.Apply("norm:batch", config));
        Assert.Equal(3, All(normed).OfType<NormBlock>().Count(n => n.Kind == NormalizationKind.Batch));
        var wrapped = Of(Remedies.Apply("residual:zero", config));
        var blocks = All(wrapped).OfType<ResidualBlock>().ToArray();
        Assert.Equal(3, blocks.Length);
        Assert.All(blocks, r => Assert.Equal(BranchStart.Zero, r.Start));
        var net = NetworkBuilder.Build(wrapped, new Generator(1));
        Assert.Equal([2, 3], net.Forward(Tensor.RandN(new Generator(2), 2, 1, 12, 12)).Shape.ToArray());
    }

    [Fact]
    public void ResidualZero_OnAResNetsBlocks_StartsThemAtZeroGamma_AndWrapsAPlainStem()
    {
        // hidden layers of ResNet-8: the stem conv (1) and the three blocks (2-4)
        var blocksOnly = Of(Remedies.Apply("residual:zero@2-4", Config("resnet8 in=1x12x12")));
        Assert.Equal(NetworkDescription.Parse("resnet8 in=1x12x12 start=zero-gamma"), blocksOnly);
        var all = All(Of(Remedies.Apply("residual:zero", Config("resnet8 in=1x12x12")))).OfType<ResidualBlock>().ToArray();
        Assert.Equal([BranchStart.Zero, BranchStart.ZeroGamma, BranchStart.ZeroGamma, BranchStart.ZeroGamma], all.Select(r => r.Start));
    }

    /// <summary>The standard recipe's description of <paramref name="config"/>, checked for what every recipe does: ReLU everywhere, clipping at 1.</summary>
    private static NetworkDescription StandardRecipe(TrainingConfig config)
    {
        var repaired = Remedies.Apply("recipe:standard", config);
        var d = Of(repaired);
        Assert.Equal(1.0, repaired.ClipNorm);
        Assert.All(All(d).OfType<ActBlock>(), a => Assert.Equal(Activation.Relu, a.Kind));
        return d;
    }

    /// <summary>
    /// A conv stack shallower than a deep plain stack (<see cref="DiagnosisSettings.PlainDepth"/>) gets ReLU, He init and a BatchNorm
    /// after every conv and stays plain; a residual net keeps its blocks' start (the zero-started wrapping cost the generated
    /// catalogue's narrow conv nets up to 25 points of accuracy).
    /// </summary>
    [Fact]
    public void Recipe_OnAShallowConvNet_NormalisesEveryConv_AndKeepsItsShape()
    {
        var d = StandardRecipe(Config("cnn 1x12x12-c8x3-gap-3 act=sigmoid norm=none"));
        Assert.Empty(All(d).OfType<ResidualBlock>());
        Assert.Equal(3, All(d).OfType<NormBlock>().Count(n => n.Kind == NormalizationKind.Batch));
        Assert.All(All(d).OfType<ConvBlock>(), c => Assert.Equal(InitKind.KaimingNormalFanOut, c.Init.Kind));
        var resnet = Of(Remedies.Apply("recipe:standard", Config("resnet8 in=1x12x12 classes=3 width=4 start=full")));
        Assert.All(All(resnet).OfType<ResidualBlock>(), r => Assert.Equal(BranchStart.Full, r.Start));
        Assert.Equal(3, All(resnet).OfType<ResidualBlock>().Count());
        // a ResNet without norms gets the BatchNorms of the ResNet with them: after the stem and after both convs of every block,
        // the second one before the sum, where He et al. have it (until 2026-12-07 each block's conv2 was left without one)
        var bare = Of(Remedies.Apply("recipe:standard", Config("resnet8 in=1x12x12 classes=3 width=4 norm=none")));
        Assert.All(All(bare).OfType<ResidualBlock>(), r => Assert.Equal(2, NetworkFacts.Flatten(r.Branch).OfType<NormBlock>().Count()));
        Assert.Equal(1 + 2 * 3, All(bare).OfType<NormBlock>().Count());
    }

    [Fact]
    public void Recipe_OnADeepPlainConvNetWithoutNorms_IsTheResNetRecipe()
    {
        var config = Config("cnn 1x12x12-c8x30-gap-3 act=sigmoid norm=none");
        var d = StandardRecipe(config);
        var blocks = All(d).OfType<ResidualBlock>().ToArray();
        Assert.Equal(30, blocks.Length);
        Assert.All(blocks, r =>
        {
            Assert.Equal(BranchStart.Zero, r.Start);
            Assert.Contains(r.Branch.Blocks, b => b is NormBlock { Kind: NormalizationKind.Batch });
        });
        Assert.Equal(d.OutputShape(), NetworkDescription.Parse(config.Model).OutputShape());
        var net = NetworkBuilder.Build(d, new Generator(1));
        Assert.Equal([4, 3], net.Forward(Tensor.RandN(new Generator(2), 4, 1, 12, 12)).Shape.ToArray());
    }

    [Fact]
    public void Lsuv_OnAConvNet_IsRefusedNamingIt()
    {
        var e = Assert.Throws<FormatException>(() => Remedies.Apply("init:lsuv", Config("cnn 1x12x12-c4-3")));
        Assert.Contains("LSUV applies to Linear layers only", e.Message);
    }

    [Fact]
    public void Range_OutsideTheHiddenLayers_IsRefused()
    {
        var e = Assert.Throws<FormatException>(() => Remedies.Apply("norm:batch@4-5", Config("cnn 1x12x12-c4-c4-3")));
        Assert.Contains("outside the hidden layers 1-2", e.Message);
    }
}
