using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

public class GradientMonitorTests
{
    private static readonly IndexTensor Labels = IndexTensor.FromArray(Enumerable.Range(0, 32).Select(i => i % 3).ToArray(), 32);

    private static MonitorSample OneStep(Mlp m, Tensor x)
    {
        using var mon = new GradientMonitor(m, 1);
        mon.BeginSample(0);
        var loss = Losses.CrossEntropy(m.Forward(x), Labels);
        loss.Backward();
        mon.RecordGradients(loss.Item());
        mon.EndSample();
        return mon.Last!;
    }

    [Theory]
    [InlineData("mlp 12-16x3-4 act=tanh", false)]
    [InlineData("mlp 12-16x3-4 act=relu norm=batch residual=yes", false)]
    [InlineData("mlp 12-16x3-4 act=sigmoid", true)]
    [InlineData("resnet8 in=1x8x8 classes=4 width=8", true)]
    public void Monitored_TrainsTheSameBitsAsUnmonitored_ItsFusedOpsStayFused(string text, bool description)
    {
        // The monitor's hooks read the outputs only, so a linear layer or batch norm fused with its activation (and a
        // ResNet block's fused end) stays fused under it: the watched model computes exactly what the unwatched one does.
        bool image = text.StartsWith("resnet", StringComparison.Ordinal);
        var x = image ? Tensor.RandN(new Generator(2), 8, 1, 8, 8) : Tensor.RandN(new Generator(2), 8, 12);
        var y = IndexTensor.FromArray(Enumerable.Range(0, 8).Select(i => i % 4).ToArray(), 8);
        (float[][] Params, Dictionary<string, int> Ops, int Samples) Train(bool monitored)
        {
            Module model = description
                ? GradFlow.Nn.Network.NetworkBuilder.Build(GradFlow.Nn.Network.NetworkDescription.Parse(text), new Generator(1))
                : ModelBuilder.Build(ModelSpec.Parse(text), new Generator(1));
            var opt = new GradFlow.Optim.Sgd(model.Parameters(), learningRate: 0.05, momentum: 0.9);
            using var mon = monitored ? new GradientMonitor(model, every: 2) : null;
            Dictionary<string, int>? ops = null;
            for (int step = 0; step < 5; step++)
            {
                bool sample = mon is not null && step % 2 == 0;
                if (sample) mon!.BeginSample(step);
                opt.ZeroGrad();
                var logits = model.Forward(x);
                ops ??= TestSupport.TestGraphs.OpCounts(logits);
                var loss = Losses.CrossEntropy(logits, y);
                loss.Backward();
                if (sample) mon!.RecordGradients(loss.Item());
                opt.Step();
                if (sample) mon!.EndSample(opt);
            }
            return (model.Parameters().Select(p => p.Data.ToArray()).ToArray(), ops!, mon?.Samples.Count ?? 0);
        }
        var plain = Train(monitored: false);
        var watched = Train(monitored: true);
        Assert.Equal(3, watched.Samples);
        var fusedOps = plain.Ops.Keys.Where(op => op.StartsWith("linear_", StringComparison.Ordinal) || op.StartsWith("batch_norm_", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(fusedOps);
        foreach (var op in fusedOps) Assert.Equal(plain.Ops[op], watched.Ops.GetValueOrDefault(op));
        for (int i = 0; i < plain.Params.Length; i++) Assert.Equal(plain.Params[i], watched.Params[i]);
    }

    [Fact]
    public void Signal_EqualsRmsOfGradientWithRespectToLayerOutput()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 8-6x3-3 act=tanh"), new Generator(1));
        var x = Tensor.RandN(new Generator(2), 32, 8);
        var sample = OneStep(m, x);

        // Independent computation: rebuild the forward by hand, retain each layer output's gradient.
        var m2 = ModelBuilder.Build(ModelSpec.Parse("mlp 8-6x3-3 act=tanh"), new Generator(1));
        var outputs = new List<Tensor>();
        var h = x;
        foreach (var layer in m2.Layers)
        {
            h = Tensor.Linear(h, layer.Linear.Weight, layer.Linear.Bias!);
            if (layer.Activation is not null) h = h.Tanh();
            outputs.Add(h.RetainGrad());
        }
        Losses.CrossEntropy(h, Labels).Backward();
        for (int i = 0; i < 4; i++)
        {
            var gv = outputs[i].Grad!.ToDoubleArray();
            double rms = Math.Sqrt(gv.Sum(v => v * v) / gv.Length);
            Assert.Equal(rms, sample.Layers[i].BackpropagatedSignalRms, rms * 1e-5);
            var w = m2.Layers[i].Linear.Weight.Grad!.ToDoubleArray();
            Assert.Equal(Math.Sqrt(w.Sum(v => v * v)), sample.Layers[i].ParameterGradientNorm, 1e-5);
            Assert.Equal(w.Max(Math.Abs), sample.Layers[i].ParameterGradientMaxAbs, 1e-6);
        }
        Assert.Equal(sample.Layers[0].BackpropagatedSignalRms / sample.Layers[3].BackpropagatedSignalRms, sample.GradientRatio, 1e-12);
        Assert.Equal(sample.Layers[1].BackpropagatedSignalRms / sample.Layers[2].BackpropagatedSignalRms, sample.Layers[1].Gain, 1e-12);
    }

    [Fact]
    public void Saturation_CountsUnitsWithTinyDerivative()
    {
        // huge weights drive tanh into saturation: 1 − y² < 0.01 for almost every unit
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 8-64-3 act=tanh init=normal:5"), new Generator(3));
        var x = Tensor.RandN(new Generator(4), 32, 8);
        var sample = OneStep(m, x);
        var y = Tensor.Linear(x, m.Layers[0].Linear.Weight, m.Layers[0].Linear.Bias!).Tanh().ToArray();
        double expected = y.Count(v => 1 - (double)v * v < 0.01) / (double)y.Length;
        Assert.Equal(expected, sample.Layers[0].Saturation, 1e-12);
        Assert.True(expected > 0.8);
        Assert.True(double.IsNaN(sample.Layers[0].DeadUnits));
    }

    [Fact]
    public void DeadUnits_CountsReluUnitsZeroForTheWholeBatch()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 4-10-3 act=relu init=he-normal"), new Generator(5));
        using (GradMode.NoGrad())
        {
            var b = m.Layers[0].Linear.Bias!.Data;
            // kill units 0..3 with a large negative bias
            var v = b.ToArray();
            for (int j = 0; j < 4; j++) v[j] = -100;
            b.CopyFrom(Tensor.FromArray(v));
        }
        var sample = OneStep(m, Tensor.RandN(new Generator(6), 32, 4));
        var y = Tensor.Linear(Tensor.RandN(new Generator(6), 32, 4), m.Layers[0].Linear.Weight, m.Layers[0].Linear.Bias!).Relu().ToArray();
        int dead = Enumerable.Range(0, 10).Count(j => Enumerable.Range(0, 32).All(r => y[r * 10 + j] == 0));
        Assert.Equal(dead / 10.0, sample.Layers[0].DeadUnits);
        Assert.True(dead >= 4);
    }

    [Fact]
    public void Training_SamplesEveryKthStep_WithUpdateRatios()
    {
        var config = new TrainingConfig { Model = "mlp 2-8x2-2 act=tanh", Data = "circles", Epochs = 1, BatchSize = 100, Seed = 1, Threads = 1, Optimizer = OptimizerKind.Sgd, LearningRate = 0.1 };
        var trainer = new Trainer(config);
        var weightsBefore = NetworkWatch.Layers(trainer.Model)[1].Weight.Data.ToDoubleArray();
        using var mon = new GradientMonitor(trainer.Model, every: 7);
        trainer.AddObserver(mon);
        MonitorSample? first = null;
        mon.SampleCompleted += s => first ??= s;
        trainer.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(Enumerable.Range(0, 6).Select(i => (long)i * 7), mon.Samples.Select(s => s.Step));
        // step 0: ΔW = −lr·dW, so ||ΔW||/||W_after|| follows from the recorded gradient norm
        var after = first!.Layers[1];
        Assert.True(after.UpdateRatio > 0);
        Assert.All(mon.Samples, s => Assert.True(double.IsFinite(s.Loss) && s.GlobalGradientNorm > 0));
        Assert.NotEqual(weightsBefore, NetworkWatch.Layers(trainer.Model)[1].Weight.Data.ToDoubleArray());
    }

    [Fact]
    public void Monitor_NotSampling_LeavesNoSample_AndDisposeRemovesHooks()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 4-4-2"), new Generator(7));
        var mon = new GradientMonitor(m, 1);
        m.Forward(Tensor.RandN(new Generator(8), 3, 4)).Sum().Backward();
        Assert.Empty(mon.Samples);
        mon.Dispose();
        mon.BeginSample(0);
        m.Forward(Tensor.RandN(new Generator(8), 3, 4)).Sum().Backward();
        mon.EndSample();
        Assert.True(double.IsNaN(mon.Last!.Layers[0].BackpropagatedSignalRms));
    }
}
