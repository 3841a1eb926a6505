using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Diagnostics;

public class NetworkFactsTests
{
    [Theory]
    [InlineData("mlp 10-8x4-2 act=sigmoid init=xavier-uniform")]
    [InlineData("mlp 10-8-6-8-2 act=tanh norm=layer residual=yes")]
    [InlineData("mlp 10-8x3-2 act=relu init=he-normal norm=batch residual=zero")]
    [InlineData("mlp 10-8x2-2 act=gelu init=default:3 out-init=he-normal")]
    public void Hidden_OfAnMlpSpecsDescription_IsTheSpecsHiddenLayers(string text)
    {
        var spec = ModelSpec.Parse(text);
        Assert.Equal(spec.Hidden, NetworkFacts.Hidden(NetworkDescription.Parse(text)));
    }

    [Fact]
    public void Layers_FollowTheMonitorsNumbering_OnAResNetAndAPlainNet()
    {
        foreach (var text in new[] { "resnet20 in=1x12x12", "plain8 in=1x12x12", "cnn 1x12x12-c4-p-c8-f16-3 act=tanh norm=group:2", "lstm 3-8x2-2" })
        {
            var d = NetworkDescription.Parse(text);
            var watched = NetworkWatch.Layers(NetworkBuilder.Build(d, new Generator(1)));
            var facts = NetworkFacts.Layers(d);
            Assert.Equal(watched.Count, facts.Count);
            for (int i = 0; i < facts.Count; i++)
            {
                Assert.Equal(watched[i].Index, facts[i].Index);
                Assert.Equal(watched[i].Kind, facts[i].Activation);
                Assert.StartsWith(facts[i].Path, watched[i].Name, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Layers_OfAResNet_AreTheStemTheBlocksAndTheClassifier()
    {
        var facts = NetworkFacts.Layers(NetworkDescription.Parse("resnet20 in=1x12x12"));
        Assert.Equal(11, facts.Count);
        Assert.Equal(("conv1", NormalizationKind.Batch, 16), (facts[0].Path, facts[0].Norm!.Value, facts[0].Width));
        Assert.All(facts.Skip(1).Take(9), f => Assert.Equal(Activation.Relu, f.Residual!.Post));
        Assert.Equal([16, 16, 16, 32, 32, 32, 64, 64, 64], facts.Skip(1).Take(9).Select(f => f.Width));
        Assert.Equal("fc", facts[^1].Path);
        var hidden = NetworkFacts.Hidden(NetworkDescription.Parse("resnet20 in=1x12x12"));
        Assert.Equal(10, hidden.Count);
        Assert.All(hidden.Skip(1), h => Assert.Equal(ResidualKind.Full, h.Residual));
        Assert.All(NetworkFacts.Hidden(NetworkDescription.Parse("resnet20 in=1x12x12 start=zero-gamma")).Skip(1), h => Assert.Equal(ResidualKind.ZeroInit, h.Residual));
    }
}
