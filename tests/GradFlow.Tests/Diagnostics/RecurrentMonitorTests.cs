using GradFlow.Tests.TestSupport;
using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>The gradient monitor on recurrent models: layers, the signal through time, its log form and its cost.</summary>
public class RecurrentMonitorTests
{
    private const int Steps = 7, Batch = 4, Input = 2, Hidden = 6;

    private static SequenceRegressor Model(RecurrentCellKind cell, int numLayers, ulong seed = 1) =>
        new(cell, Input, Hidden, new Generator(seed), numLayers);

    private static Tensor X(ulong seed) => Tensor.RandN(new Generator(seed), Batch, Steps, Input);

    private static Tensor Y(ulong seed) => Tensor.RandN(new Generator(seed), Batch, 1);

    [Fact]
    public void Layers_OfASequenceRegressor_AreTheStackedLayersThenTheHead()
    {
        using var mon = new GradientMonitor(Model(RecurrentCellKind.RnnTanh, 2), 1);
        Assert.Equal(["rnn.weight_hh_l0", "rnn.weight_hh_l1", "head"], mon.Layers.Select(l => l.Name));
        Assert.Equal([1, 2, 3], mon.Layers.Select(l => l.Index));
        Assert.Equal([Activation.Tanh, Activation.Tanh, (Activation?)null], mon.Layers.Select(l => l.Kind));
        Assert.Equal([0, 1, -1], mon.Layers.Select(l => l.RecurrentLayer));
        var model = Model(RecurrentCellKind.Lstm, 1);
        using var lstm = new GradientMonitor(model, 1);
        Assert.Null(lstm.Layers[0].Kind);
        Assert.Same(model.Recurrent.WeightHh(0), lstm.Layers[0].Weight);
        Assert.Same(model.Recurrent, lstm.Layers[0].Output);
    }

    [Theory]
    [InlineData(RecurrentCellKind.RnnTanh)]
    [InlineData(RecurrentCellKind.Gru)]
    [InlineData(RecurrentCellKind.Lstm)]
    public void TimeSignal_OnSampledStepsOnly_EqualsTheProbedReference(RecurrentCellKind cell)
    {
        var model = Model(cell, 2);
        var opt = new Sgd(model.Parameters(), 0.05);
        using var mon = new GradientMonitor(model, every: 2);
        ITrainingObserver observer = mon;
        var info = new StepInfo { Model = model, Optimizer = opt };
        var reference = new List<double[][]>();
        for (int step = 0; step < 5; step++)
        {
            info.Step = step;
            observer.OnStepStart(info);
            var x = X((ulong)step + 100);
            var y = Y((ulong)step + 200);
            if (step % 2 == 0) reference.Add(Reference(model, x, y));
            opt.ZeroGrad();
            var loss = Losses.Mse(model.Forward(x), y);
            loss.Backward();
            info.Loss = loss.Item();
            observer.OnBackward(info);
            opt.Step();
            observer.OnStepEnd(info);
        }
        Assert.Equal([0L, 2, 4], mon.Samples.Select(s => s.Step));
        for (int i = 0; i < 3; i++)
        {
            var s = mon.Samples[i];
            Assert.NotNull(s.TimeSignal);
            Assert.Equal(2, s.TimeSignal.Length);
            for (int k = 0; k < 2; k++)
            {
                Assert.Equal(Steps, s.TimeSignal[k].Length);
                for (int t = 0; t < Steps; t++) Assert.Equal(reference[i][k][t], s.TimeSignal[k][t], reference[i][k][t] * 1e-9);
                // the layer's signal is the RMS over every step
                double all = Math.Sqrt(s.TimeSignal[k].Average(v => v * v));
                Assert.Equal(all, s.Layers[k].BackpropagatedSignalRms, all * 1e-12);
                Assert.True(s.Layers[k].ParameterGradientNorm > 0);
            }
            Assert.True(double.IsNaN(s.Layers[0].ActivationStd));  // statistics for the last stacked layer only
            Assert.True(s.Layers[1].ActivationStd > 0);
            Assert.True(s.Layers[2].BackpropagatedSignalRms > 0);  // the head, as before
        }
    }

    /// <summary>The per-step RMS of dL/dh_t of every stacked layer, for the same weights and batch, from probes armed by hand.</summary>
    private static double[][] Reference(SequenceRegressor model, Tensor x, Tensor y)
    {
        var rnn = model.Recurrent;
        var probes = Enumerable.Range(0, rnn.NumLayers).Select(_ => new RecurrentGradientProbe()).ToArray();
        var weights = model.Parameters().Select(p => p.Data.Detach()).ToArray();
        // a detached copy of the parameters, so the model's gradients are untouched
        var copy = new SequenceRegressor(model.Cell, Input, Hidden, new Generator(999), rnn.NumLayers);
        using (GradMode.NoGrad())
            foreach (var (p, w) in copy.Parameters().Zip(weights)) p.Data.CopyFrom(w);
        copy.Recurrent.ArmGradientProbes(probes);
        Losses.Mse(copy.Forward(x), y).Backward();
        return probes.Select(p => Enumerable.Range(0, p.Steps).Select(p.Rms).ToArray()).ToArray();
    }

    [Fact]
    public void TimeSignal_TanhRnnWithSmallRecurrentWeights_DecaysWithLag()
    {
        // one layer, read out at the last step only: dL/dh_{t−1} = (dL/dh_t ⊙ (1 − h_t²))·W_hh, so the
        // RMS shrinks by at least ||W_hh||₂ ≤ ||W_hh||_F per step back
        var model = Model(RecurrentCellKind.RnnTanh, 1, 3);
        using (GradMode.NoGrad()) model.Recurrent.WeightHh(0).Data.MulInPlace(0.5);
        var w = model.Recurrent.WeightHh(0).Data.ToDoubleArray();
        double norm = Math.Sqrt(w.Sum(v => v * v));
        Assert.True(norm < 1);
        using var mon = new GradientMonitor(model, 1);
        mon.BeginSample(0);
        var loss = Losses.Mse(model.Forward(X(5)), Y(6));
        loss.Backward();
        mon.RecordGradients(loss.Item());
        mon.EndSample();
        var signal = mon.Last!.TimeSignal![0];
        for (int t = Steps - 1; t > 0; t--) Assert.True(signal[t - 1] <= norm * signal[t] * (1 + 1e-5), $"t = {t - 1}");
        Assert.True(signal[0] / signal[Steps - 1] <= Math.Pow(norm, Steps - 1) * (1 + 1e-4));
        Assert.True(signal[0] > 0);
        // saturation of h is measured as for a tanh layer
        Assert.InRange(mon.Last.Layers[0].Saturation, 0, 1);
    }

    [Fact]
    public void TimeSignal_SequencesOfDifferentLengths_AreKeptPerSample()
    {
        var model = Model(RecurrentCellKind.Gru, 1);
        using var mon = new GradientMonitor(model, 1);
        int[] lengths = [5, 2, 9, 1, 3];
        for (int i = 0; i < lengths.Length; i++)
        {
            mon.BeginSample(i);
            var loss = Losses.Mse(model.Forward(Tensor.RandN(new Generator((ulong)i), Batch, lengths[i], Input)), Y(1));
            loss.Backward();
            mon.RecordGradients(loss.Item());
            mon.EndSample();
        }
        Assert.Equal(lengths, mon.Samples.Select(s => s.TimeSignal![0].Length));
        Assert.All(mon.Samples, s => Assert.All(s.TimeSignal![0], v => Assert.True(v > 0)));
        // a sample whose forward pass never ran has an empty row, and the unused probes are disarmed
        mon.BeginSample(99);
        mon.RecordGradients(0);
        mon.EndSample();
        Assert.Empty(mon.Last!.TimeSignal![0]);
        Assert.True(double.IsNaN(mon.Last.Layers[0].BackpropagatedSignalRms));
    }

    [Fact]
    public void Dispose_StopsArmingProbes()
    {
        var model = Model(RecurrentCellKind.Lstm, 2);
        var mon = new GradientMonitor(model, 1);
        void Step(long step)
        {
            mon.BeginSample(step);
            var loss = Losses.Mse(model.Forward(X(1)), Y(2));
            loss.Backward();
            mon.RecordGradients(loss.Item());
            mon.EndSample();
        }
        Step(0);
        Assert.All(mon.Last!.TimeSignal!, row => Assert.Equal(Steps, row.Length));
        mon.Dispose();
        Step(1);
        Assert.All(mon.Last!.TimeSignal!, Assert.Empty);
        Assert.True(double.IsNaN(mon.Last.Layers[0].BackpropagatedSignalRms));
    }

    [Fact]
    public void TimeSignal_IsNullWithoutRecurrentLayers()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 4-4-2"), new Generator(7));
        using var mon = new GradientMonitor(m, 1);
        mon.BeginSample(0);
        m.Forward(Tensor.RandN(new Generator(8), 3, 4)).Sum().Backward();
        mon.RecordGradients(0);
        mon.EndSample();
        Assert.Null(mon.Last!.TimeSignal);
        Assert.DoesNotContain("time_signal", MonitorLog.ToJsonLine(mon.Last));
    }

    [Fact]
    public void MonitorLog_RoundTripsTimeSignal_WithNullAndInfinities()
    {
        var sample = new MonitorSample
        {
            Step = 3,
            Layers = [new LayerStats { LayerIndex = 1 }],
            TimeSignal = [[0.5, double.NaN, 1e-300], [], [double.PositiveInfinity, double.NegativeInfinity, 0.1 + 0.2]],
        };
        var line = MonitorLog.ToJsonLine(sample);
        Assert.Contains("\"time_signal\":[[0.5,null,1E-300],[],[\"Infinity\",\"-Infinity\",0.30000000000000004]]", line);
        var back = MonitorLog.Parse(line);
        Assert.Equal(sample.TimeSignal.Length, back.TimeSignal!.Length);
        for (int k = 0; k < sample.TimeSignal.Length; k++) Assert.Equal(sample.TimeSignal[k], back.TimeSignal[k]);
        Assert.Null(MonitorLog.Parse(MonitorLog.ToJsonLine(new MonitorSample { Layers = [] })).TimeSignal);
    }

    [Fact]
    public void MonitoredRecurrentSteps_AllocateNothingMoreThanPlainSteps()
    {
        // as MonitorCostTests.MonitoredSteps_AllocateNothingMoreThanPlainSteps, on a 2-layer tanh RNN
        // regressor: sampling every step, probes, time signal and update ratios included
        long PerStep(bool monitored)
        {
            var m = Model(RecurrentCellKind.RnnTanh, 2, 5);
            var x = X(6);
            var y = Y(7);
            var opt = new Sgd(m.Parameters(), 0.01, momentum: 0.9);
            return MonitorAllocation.PerStep(m, opt, () => Losses.Mse(m.Forward(x), y), monitored);
        }
        PerStep(true);
        long plain = PerStep(false), monitored = PerStep(true);
        MonitorAllocation.AssertNoMoreThan(plain, monitored);
    }
}
