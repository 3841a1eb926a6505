using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Diagnostics;

/// <summary>The gradient monitor on conv nets: dead channels, saturation, BatchNorm statistics, signal per conv layer and per residual block.</summary>
public class ConvMonitorTests
{
    private static readonly IndexTensor Labels = IndexTensor.FromArray(Enumerable.Range(0, 8).Select(i => i % 3).ToArray(), 8);

    private static Tensor Images(int seed = 2) => Tensor.RandN(new Generator((ulong)seed), 8, 1, 6, 6);

    private static MonitorSample OneStep(GradFlow.Nn.Network.Network net, Tensor x)
    {
        using var mon = new GradientMonitor(net, 1);
        mon.BeginSample(0);
        var loss = Losses.CrossEntropy(net.Forward(x), Labels);
        BackwardEngine.Backward(loss);
        mon.RecordGradients(loss.Item());
        mon.EndSample();
        return mon.Last!;
    }

    private static void Set(Tensor t, int index, float value) => t.Span<float>()[index] = value;

    private static Module Child(Module m, string name) => m.NamedModules().Single(t => t.Name == name).Module;

    [Fact]
    public void DeadChannels_AChannelZeroAtEveryPositionOfEveryExample_IsDead_OneNonZeroValueKeepsItAlive()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("cnn 1x6x6-c4-c4-3 act=relu norm=none"), new Generator(1));
        var conv = (Conv2d)Child(net, "0");
        using (GradMode.NoGrad())
        {
            // channels 1 and 2: weight 0, bias −1: ReLU gives 0 everywhere; channel 3: weight 0, bias +1: alive
            foreach (int c in new[] { 1, 2, 3 })
            {
                for (int k = 0; k < 9; k++) Set(conv.Weight.Data, c * 9 + k, 0);
                Set(conv.Bias!.Data, c, c == 3 ? 1 : -1);
            }
        }
        var x = Images();
        var sample = OneStep(net, x);
        var y = Child(net, "1").Forward(conv.Forward(x)).ToArray();    // [8, 4, 6, 6]
        int dead = Enumerable.Range(0, 4).Count(c => Enumerable.Range(0, 8).All(b => Enumerable.Range(0, 36).All(p => y[(b * 4 + c) * 36 + p] == 0)));
        Assert.Equal(2, dead);
        Assert.Equal(0.5, sample.Layers[0].DeadUnits);

        // a channel that is 0 everywhere but at one position of one example is alive
        using (GradMode.NoGrad())
        {
            for (int k = 0; k < 9; k++) Set(conv.Weight.Data, 1 * 9 + k, 0);
            Set(conv.Weight.Data, 1 * 9 + 4, 1);     // the centre tap: y = relu(x − 1)
        }
        var sparse = Tensor.Full(-5, 8, 1, 6, 6);
        Set(sparse, 3 * 36 + 14, 3);                // one example, one pixel above 1
        Assert.Equal(0.25, OneStep(net, sparse).Layers[0].DeadUnits);
    }

    [Fact]
    public void Saturation_OfASigmoidConvLayer_IsTheFractionOfPositionsWithASmallDerivative()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("cnn 1x6x6-c4-3 act=sigmoid norm=none init=normal:3"), new Generator(1));
        var x = Images();
        var sample = OneStep(net, x);
        var y = Child(net, "1").Forward(Child(net, "0").Forward(x)).ToDoubleArray();
        double expected = y.Count(v => v * (1 - v) < 0.01 * 0.25) / (double)y.Length;
        Assert.InRange(expected, 0.2, 0.95);
        Assert.Equal(expected, sample.Layers[0].Saturation, 1e-9);
        Assert.Equal(Activation.Sigmoid, sample.Layers[0].Activation);
    }

    [Fact]
    public void ResNet_SignalPerConvLayerAndPerBlock_AndTheBatchNormStatisticsOfEachLayer()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("resnet8 in=1x6x6 classes=3 width=4"), new Generator(1));
        var sample = OneStep(net, Images());
        var layers = NetworkWatch.Layers(net);
        Assert.Equal(["conv1", "layer1.0", "layer2.0", "layer3.0", "fc"], layers.Select(l => l.Name));
        Assert.All(sample.Layers, l => Assert.True(l.BackpropagatedSignalRms > 0 && double.IsFinite(l.BackpropagatedSignalRms)));
        // the norm of each layer: bn1 of the stem, each block's bn2, none for the classifier
        string[] norms = ["bn1", "layer1.0.bn2", "layer2.0.bn2", "layer3.0.bn2"];
        for (int i = 0; i < norms.Length; i++)
        {
            var bn = (BatchNorm2d)Child(net, norms[i]);
            Assert.Same(bn, layers[i].Norm);
            var mean = bn.RunningMean!.ToDoubleArray();
            var variance = bn.RunningVar!.ToDoubleArray();
            Assert.Equal(mean.Average(Math.Abs), sample.Layers[i].NormRunningMean, 1e-12);
            Assert.Equal(variance.Average(), sample.Layers[i].NormRunningVar, 1e-12);
            Assert.NotEqual(1.0, sample.Layers[i].NormRunningVar);    // one training-mode forward moved them from (0, 1)
        }
        Assert.True(double.IsNaN(sample.Layers[^1].NormRunningMean));

        var parsed = MonitorLog.Parse(MonitorLog.ToJsonLine(sample));
        Assert.Equal(sample.Layers.Select(l => l.NormRunningVar), parsed.Layers.Select(l => l.NormRunningVar));
    }

    [Fact]
    public void PlainCnnWithoutNorms_HasNoBatchNormStatistics_AndDeadChannelsAreMeasured()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("cnn 1x6x6-c4-p-c4-3 act=relu norm=none"), new Generator(1));
        var sample = OneStep(net, Images());
        Assert.Equal(3, sample.Layers.Length);
        Assert.All(sample.Layers, l => Assert.True(double.IsNaN(l.NormRunningMean)));
        Assert.All(sample.Layers.Take(2), l => Assert.InRange(l.DeadUnits, 0, 1));
    }
}
