using GradFlow.Nn;

namespace GradFlow.Tests.Nn;

public class ModelSpecTests
{
    [Fact]
    public void Parse_RepeatedHiddenLayersAndOptions_BuildsEveryLayer()
    {
        var s = ModelSpec.Parse("mlp 784-256x3-128-10 act=tanh init=xavier-uniform norm=batch residual=zero dropout=0.1 out-init=he-normal");
        Assert.Equal(784, s.Input);
        Assert.Equal(10, s.Output);
        Assert.Equal([256, 256, 256, 128], s.Hidden.Select(h => h.Width));
        Assert.All(s.Hidden, h =>
        {
            Assert.Equal(Activation.Tanh, h.Activation);
            Assert.Equal(InitKind.XavierUniform, h.Init.Kind);
            Assert.Equal(NormKind.Batch, h.Norm);
            Assert.Equal(ResidualKind.ZeroInit, h.Residual);
            Assert.Equal(0.1, h.Dropout);
        });
        Assert.Equal(InitKind.KaimingNormal, s.OutputInit.Kind);
        Assert.Equal(5, s.LinearLayers);
    }

    [Fact]
    public void Parse_Defaults_AreReluAndPyTorchInit()
    {
        var s = ModelSpec.Parse("mlp 2-16-2");
        Assert.Equal(Activation.Relu, Assert.Single(s.Hidden).Activation);
        Assert.Equal(InitKind.Default, s.Hidden[0].Init.Kind);
    }

    [Theory]
    [InlineData("mlp 784-256x8-10 act=sigmoid init=normal:1 norm=none residual=no")]
    [InlineData("mlp 20-64-32x2-3 act=leaky-relu init=orthogonal:1.2 norm=layer residual=yes dropout=0.25 out-init=xavier-normal")]
    [InlineData("mlp 5-1")]
    [InlineData("mlp 8-16-4 init=default:3 out-init=default:3")]
    [InlineData("mlp 8-16-4 init=lsuv:2 out-init=lsuv:0.5")]
    public void ToText_RoundTripsThroughParse(string text)
    {
        var s = ModelSpec.Parse(text);
        var again = ModelSpec.Parse(s.ToText()!);
        Assert.Equal(s.ToText(), again.ToText());
        Assert.Equal(s.Hidden, again.Hidden);
        Assert.Equal(s.OutputInit, again.OutputInit);
    }

    [Fact]
    public void Json_RoundTrip_KeepsPerLayerDifferences()
    {
        var s = ModelSpec.Parse("mlp 10-8x3-2 act=tanh");
        var changed = s with { Hidden = [s.Hidden[0] with { Activation = Activation.Relu, Init = new InitScheme(InitKind.KaimingNormal) }, s.Hidden[1], s.Hidden[2]] };
        Assert.Null(changed.ToText());
        var back = ModelSpec.ParseAny(changed.ToJson().ToJsonString());
        Assert.Equal(changed.Hidden, back.Hidden);
        Assert.Equal(changed.Input, back.Input);
    }

    [Theory]
    [InlineData("cnn 1-2", "expected 'mlp")]
    [InlineData("mlp 784", "at least input and output")]
    [InlineData("mlp 784-0-10", "hidden width '0'")]
    [InlineData("mlp 784-12y3-10", "hidden width '12y3'")]
    [InlineData("mlp 4-4-2 act=relux", "unknown activation 'relux'")]
    [InlineData("mlp 4-4-2 init=glorot", "unknown initialiser 'glorot'")]
    [InlineData("mlp 4-4-2 init=normal", "needs a standard deviation")]
    [InlineData("mlp 4-4-2 norm=group", "unknown norm 'group'")]
    [InlineData("mlp 4-4-2 dropout=1.5", "dropout '1.5'")]
    [InlineData("mlp 4-4-2 depth=3", "unknown option 'depth'")]
    [InlineData("mlp 4-4-2 act", "not key=value")]
    public void Parse_BadSpec_ThrowsNamingTheToken(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ModelSpec.Parse(text));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("""{"kind":"mlp","input":4,"output":2,"layers":[{"width":3,"activation":"tanhh"}]}""", "layers[0].activation")]
    [InlineData("""{"kind":"mlp","input":4,"output":2,"layers":[{"width":-3,"activation":"tanh"}]}""", "layers[0].width")]
    [InlineData("""{"kind":"mlp","input":4,"layers":[]}""", "'output'")]
    [InlineData("""{"kind":"mlp","input":4,"output":2,"layers":[{"width":3,"activation":"tanh","dropout":2}]}""", "layers[0].dropout")]
    [InlineData("""{"kind":"mlp",""", "not valid JSON")]
    [InlineData("""{"kind":"mlp","input":4,"output":2,"layers":[{"width":3,"activation":"tanh","dropuot":0.5}]}""", "layers[0]: unknown field 'dropuot'")]
    [InlineData("""{"kind":"mlp","input":4,"output":2,"ouputInit":"xavier-uniform","layers":[]}""", "unknown field 'ouputInit'")]
    public void ParseAny_BadJson_ThrowsNamingTheField(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ModelSpec.ParseAny(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void InitScheme_TextForms_RoundTrip()
    {
        foreach (var t in new[] { "default", "xavier-uniform", "xavier-normal", "he-uniform", "he-normal", "lecun-normal", "orthogonal", "normal:0.05", "lsuv", "orthogonal:2" })
            Assert.Equal(t, InitScheme.Parse(t).ToString());
        Assert.Equal(InitKind.KaimingUniform, InitScheme.Parse("kaiming-uniform").Kind);
    }
}
