using GradFlow.Tests.TestSupport;
using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Diagnostics;

/// <summary>The monitor on any module, its fused statistics, and its cost: nothing allocated per step.</summary>
public class MonitorCostTests
{
    private static readonly IndexTensor Labels = IndexTensor.FromArray(Enumerable.Range(0, 16).Select(i => i % 3).ToArray(), 16);

    [Fact]
    public void AnySequential_IsWatchedLikeTheEquivalentMlp()
    {
        var mlp = ModelBuilder.Build(ModelSpec.Parse("mlp 6-5x2-3 act=tanh"), new Generator(11));
        // the same weights in a plain Sequential the monitor has never seen
        var g = new Generator(99);
        var seq = new Sequential(new Linear(6, 5, g), new Tanh(), new Linear(5, 5, g), new Tanh(), new Linear(5, 3, g));
        var linears = seq.NamedModules().Select(t => t.Module).OfType<Linear>().ToArray();
        using (GradMode.NoGrad())
        for (int i = 0; i < 3; i++)
        {
            linears[i].Weight.Data.CopyFrom(mlp.Layers[i].Linear.Weight.Data);
            linears[i].Bias!.Data.CopyFrom(mlp.Layers[i].Linear.Bias!.Data);
        }
        var x = Tensor.RandN(new Generator(12), 16, 6);
        MonitorSample Sample(Module m)
        {
            using var mon = new GradientMonitor(m, 1);
            Assert.Equal(3, mon.Layers.Count);
            mon.BeginSample(0);
            var loss = Losses.CrossEntropy(m.Forward(x), Labels);
            loss.Backward();
            mon.RecordGradients(loss.Item());
            mon.EndSample();
            return mon.Last!;
        }
        var a = Sample(mlp);
        var b = Sample(seq);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(a.Layers[i].BackpropagatedSignalRms, b.Layers[i].BackpropagatedSignalRms, 1e-12);
            Assert.Equal(a.Layers[i].ParameterGradientNorm, b.Layers[i].ParameterGradientNorm, 1e-12);
            Assert.Equal(a.Layers[i].ActivationStd, b.Layers[i].ActivationStd, 1e-12);
            Assert.Equal(a.Layers[i].Saturation, b.Layers[i].Saturation);
        }
        Assert.True(a.Layers[0].BackpropagatedSignalRms > 0);
    }

    [Fact]
    public void ModuleWithoutLinear_IsRejectedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => new GradientMonitor(new Sequential(new Tanh()), 1));
        Assert.Contains("no Linear layer", e.Message);
    }

    [Fact]
    public void MonitoredSteps_AllocateNothingMoreThanPlainSteps()
    {
        // Same model twice: the difference of bytes allocated per step with and without the monitor
        // (sampling every step, update ratios included) must be below one object per step in steady state (MonitorAllocation.PerStepMargin).
        long PerStep(bool monitored)
        {
            var m = ModelBuilder.Build(ModelSpec.Parse("mlp 20-32x3-4 act=relu init=he-normal"), new Generator(5));
            var x = Tensor.RandN(new Generator(6), 16, 20);
            var y = IndexTensor.FromArray(Enumerable.Range(0, 16).Select(i => i % 4).ToArray(), 16);
            var opt = new Sgd(m.Parameters(), 0.01, momentum: 0.9);
            return MonitorAllocation.PerStep(m, opt, () => Losses.CrossEntropy(m.Forward(x), y), monitored);
        }
        PerStep(true);
        long plain = PerStep(false), monitored = PerStep(true);
        MonitorAllocation.AssertNoMoreThan(plain, monitored);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(67)]
    [InlineData(40_000)]
    [InlineData(100_003)]
    public void FusedStatistics_MatchPlainSums(int n)
    {
        var g = new Generator((ulong)n + 1);
        var t = n == 0 ? Tensor.FromArray(Array.Empty<float>(), 0) : Tensor.RandN(g, n);
        var v = t.ToDoubleArray();
        var mon = MeasureThroughMonitor(t);
        Assert.Equal(v.Sum(x => x * x), mon.SumSq, Math.Max(1e-9, v.Sum(x => x * x) * 1e-5));
        Assert.Equal(v.Length == 0 ? 0 : v.Max(Math.Abs), mon.MaxAbs, 1e-7);
        Assert.Equal(0, mon.NonFinite);
    }

    [Fact]
    public void FusedStatistics_CountNonFiniteAndKeepTheFiniteMax()
    {
        var data = Enumerable.Range(0, 1000).Select(i => (float)Math.Sin(i)).ToArray();
        data[3] = float.NaN;
        data[500] = float.PositiveInfinity;
        data[999] = float.NegativeInfinity;
        var r = MeasureThroughMonitor(Tensor.FromArray(data, 1000));
        Assert.Equal(3, r.NonFinite);
        Assert.True(double.IsPositiveInfinity(r.SumSq));
        Assert.Equal(data.Where(float.IsFinite).Max(Math.Abs), r.MaxAbs, 1e-7);
    }

    [Theory]
    [InlineData("sigmoid")]
    [InlineData("tanh")]
    [InlineData("hard-tanh")]
    [InlineData("hard-sigmoid")]
    public void Saturation_MatchesTheDerivativeDefinition(string act)
    {
        // pre-activations spread widely, so both saturated and unsaturated units occur, over a size with a SIMD tail
        var m = ModelBuilder.Build(ModelSpec.Parse($"mlp 5-37-2 act={act} init=normal:3"), new Generator(21));
        var x = Tensor.RandN(new Generator(22), 13, 5);
        float[]? y = null;
        using var capture = m.Layers[0].Activation!.RegisterForwardHook((_, _, output) => y = output.ToArray());
        using var mon = new GradientMonitor(m, 1);
        mon.BeginSample(0);
        m.Forward(x);
        mon.RecordGradients(0);
        mon.EndSample();
        // the definition, applied to the same float32 outputs
        double expected = y!.Count(v => act switch
        {
            "sigmoid" => v * (1 - v) < (float)(0.01 * 0.25),
            "tanh" => 1 - v * v < 0.01f,
            "hard-tanh" => v <= -1 || v >= 1,
            _ => v <= 0 || v >= 1,
        }) / (double)y!.Length;
        Assert.InRange(expected, 0.05, 0.95);
        Assert.Equal(expected, mon.Last!.Layers[0].Saturation, 1e-12);
    }

    [Fact]
    public void DeadUnits_AreColumnsZeroForEveryRow()
    {
        var y = new float[5 * 37];
        var rng = new Random(3);
        for (int i = 0; i < y.Length; i++) y[i] = rng.NextDouble() < 0.6 ? 0 : (float)rng.NextDouble();
        int dead = Enumerable.Range(0, 37).Count(j => Enumerable.Range(0, 5).All(r => y[r * 37 + j] == 0));
        Assert.InRange(dead, 1, 36);
        Assert.Equal(dead / 37.0, StatisticsKernel.DeadFraction(y, 5, 37, new float[37]), 1e-12);
    }

    [Fact]
    public void MeasureAll_EqualsMeasureOfEachTensor()
    {
        var g = new Generator(31);
        Tensor?[] tensors = [Tensor.RandN(g, 70_001), null, Tensor.RandN(g, 5), Tensor.FromArray(Array.Empty<float>(), 0),
            Tensor.RandN(g, 3).To(DType.Float64), Tensor.FromArray([1f, float.NaN, -3f], 3), Tensor.RandN(g, 32_768)];
        var all = new (double, double, long)[tensors.Length];
        var kernel = new StatisticsKernel();
        kernel.MeasureAll(tensors, all);
        for (int i = 0; i < tensors.Length; i++)
        {
            var expected = tensors[i] is { } t ? new StatisticsKernel().Measure(t) : (0, 0, 0);
            Assert.Equal(expected, all[i]);
        }
        Assert.Equal(1, all[5].Item3);
    }

    private static (double SumSq, double MaxAbs, long NonFinite) MeasureThroughMonitor(Tensor t) => new StatisticsKernel().Measure(t);
}
