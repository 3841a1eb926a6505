using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

public class NetworkWatchTests
{
    private static string NameOf(Module model, Parameter p) => model.NamedParameters().First(t => ReferenceEquals(t.Parameter, p)).Name;

    [Theory]
    [InlineData("mlp 6-5x3-3 act=tanh norm=batch dropout=0.1")]
    [InlineData("mlp 6-5-7-3 act=relu residual=zero norm=layer")]
    [InlineData("mlp 4-3-2 act=sigmoid residual=yes")]
    public void Layers_OfModelSpecDescription_MatchTheMlpLayers(string text)
    {
        var spec = ModelSpec.Parse(text);
        var mlp = ModelBuilder.Build(spec, new Generator(1));
        var net = NetworkBuilder.Build(Shorthands.FromSpec(spec), new Generator(1));
        var layers = NetworkWatch.Layers(net);
        Assert.Equal(mlp.Layers.Count, layers.Count);
        for (int i = 0; i < layers.Count; i++)
        {
            var (expected, actual) = (mlp.Layers[i], layers[i]);
            Assert.Equal(expected.Index, actual.Index);
            Assert.Equal(NameOf(mlp, expected.Linear.Weight), NameOf(net, actual.Weight));
            Assert.Equal(expected.Output.GetType(), actual.Output.GetType() == typeof(ResidualUnit) ? typeof(Residual) : actual.Output.GetType());
            Assert.Equal(expected.Activation is null ? null : Activations.KindOf(expected.Activation), actual.Kind);
        }
    }

    [Fact]
    public void Layers_OfResNet20_AreStemBlocksAndHead()
    {
        var net = NetworkBuilder.Build(Shorthands.ResNet(20), new Generator(1));
        var layers = NetworkWatch.Layers(net);
        Assert.Equal(["conv1", "layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2", "layer3.0", "layer3.1", "layer3.2", "fc"],
            layers.Select(l => l.Name));
        Assert.Equal(Enumerable.Range(1, 11), layers.Select(l => l.Index));
        Assert.Equal("layer2.0.conv2.weight", NameOf(net, layers[4].Weight));
        Assert.IsType<ResidualUnit>(layers[4].Output);
        Assert.Equal(Activation.Relu, layers[4].Kind);
        Assert.IsType<Relu>(layers[0].Output);
        Assert.Null(layers[^1].Kind);
    }

    [Fact]
    public void Layers_OfPlainNet_AreEveryConv()
    {
        var layers = NetworkWatch.Layers(NetworkBuilder.Build(Shorthands.ResNet(20, residual: false), new Generator(1)));
        Assert.Equal(20, layers.Count);
        Assert.Equal("layer3.2.conv2", layers[^2].Name);
        Assert.All(layers.Take(19), l => Assert.Equal(Activation.Relu, l.Kind));
    }

    [Fact]
    public void Layers_OfRecurrentDescription_AreStackedLayersThenHead()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("rnn 2-8x2-1 act=relu"), new Generator(1));
        var layers = NetworkWatch.Layers(net);
        Assert.Equal(["rnn.weight_hh_l0", "rnn.weight_hh_l1", "head"], layers.Select(l => l.Name));
        Assert.Equal([0, 1, -1], layers.Select(l => l.RecurrentLayer));
        Assert.Equal(Activation.Relu, layers[0].Kind);
    }

    [Fact]
    public void Monitor_OnResNet_MeasuresEveryUnitsSignal()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet20 in=1x12x12 classes=3"), new Generator(1));
        using var mon = new GradientMonitor(net, NetworkWatch.Layers(net), every: 1);
        mon.BeginSample(0);
        var labels = IndexTensor.FromArray([0, 1, 2, 0], 4);
        var loss = Losses.CrossEntropy(net.Forward(Tensor.RandN(new Generator(2), 4, 1, 12, 12)), labels);
        loss.Backward();
        mon.RecordGradients(loss.Item());
        mon.EndSample();
        var sample = mon.Last!;
        Assert.Equal(11, sample.Layers.Length);
        Assert.All(sample.Layers, l => Assert.True(l.BackpropagatedSignalRms > 0 && double.IsFinite(l.BackpropagatedSignalRms), $"layer {l.LayerIndex}"));
        Assert.All(sample.Layers, l => Assert.True(l.ParameterGradientNorm > 0, $"layer {l.LayerIndex}"));
        Assert.All(sample.Layers.Take(10), l => Assert.True(l.ActivationMean > 0, $"layer {l.LayerIndex}: mean of a relu output"));
        Assert.True(double.IsFinite(sample.GradientRatio));
    }

    [Fact]
    public void Monitor_DiscoveryConstructorOnNetwork_UsesTheDescriptionsLayers()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("lstm 2-6x2-1"), new Generator(1));
        using var mon = new GradientMonitor(net, every: 1);
        Assert.Equal(NetworkWatch.Layers(net).Select(l => l.Name), mon.Layers.Select(l => l.Name));
        mon.BeginSample(0);
        var loss = (net.Forward(Tensor.RandN(new Generator(2), 3, 5, 2)) * 1.0).Sum();
        loss.Backward();
        mon.RecordGradients(loss.Item());
        mon.EndSample();
        Assert.Equal(2, mon.Last!.TimeSignal!.Length);
        Assert.All(mon.Last.TimeSignal, t => Assert.Equal(5, t.Length));
    }

    [Fact]
    public void Monitor_LayerListWithForeignWeight_Throws()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("mlp 4-3-2"), new Generator(1));
        var other = NetworkBuilder.Build(NetworkDescription.Parse("mlp 4-3-2"), new Generator(1));
        Assert.Throws<ArgumentException>(() => new GradientMonitor(net, NetworkWatch.Layers(other)));
        Assert.Throws<ArgumentException>(() => new GradientMonitor(net, []));
        var layers = NetworkWatch.Layers(net);
        Assert.Throws<ArgumentException>(() => new GradientMonitor(net, [layers[1], layers[0]]));
    }
}
