using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

public sealed class PrecisionLossTests
{
    // 2^-24 = 5.96e-8 (fp16's smallest subnormal), 2^-14 = 6.10e-5 (its smallest normal)
    private static readonly float[] Pattern = [0f, 1e-9f, -3e-8f, 1e-6f, -2e-5f, 1e-3f, -0.5f, float.NaN, float.PositiveInfinity, 7e-5f, 5.9e-8f, 6.0e-8f];
    private const int NonzeroPerPattern = 9, BelowSubnormalPerPattern = 3, BelowNormalPerPattern = 6;

    [Theory]
    [InlineData(1)]    // shorter than a vector: the scalar tail only
    [InlineData(7)]    // 84 values: vectors and a tail
    [InlineData(1000)]
    public void Fp16Underflow_CountsTheNonzeroValuesBelowEachThreshold(int repeats)
    {
        var g = Enumerable.Repeat(Pattern, repeats).SelectMany(p => p).ToArray();
        var (nonzero, sub, normal) = PrecisionLoss.Fp16Underflow(g);
        Assert.Equal(NonzeroPerPattern * repeats, nonzero);
        Assert.Equal(BelowSubnormalPerPattern * repeats, sub);
        Assert.Equal(BelowNormalPerPattern * repeats, normal);
    }

    [Theory]
    [InlineData(1f, 0.003f, true)]        // half a bf16 ulp of 1 is 2^-8 = 0.0039
    [InlineData(1f, -0.003f, true)]
    [InlineData(1f, 0.005f, false)]
    [InlineData(1024f, 3f, true)]         // of 1024: 4
    [InlineData(1024f, 5f, false)]
    [InlineData(-0.75f, 0.0014f, true)]   // of 0.75 (2^-1·1.5): 2^-9 = 0.00195
    [InlineData(-0.75f, 0.0025f, false)]
    [InlineData(0f, 1e-30f, false)]       // a zero weight registers any update
    public void Bf16Swallowed_ComparesTheUpdateWithHalfABf16UlpOfTheWeight(float w, float delta, bool swallowed)
    {
        foreach (int n in new[] { 1, 37 })
        {
            var before = Enumerable.Repeat(w, n).ToArray();
            var after = before.Select(x => x + delta).ToArray();
            var (updated, count) = PrecisionLoss.Bf16Swallowed(after, before);
            Assert.Equal(n, updated);
            Assert.Equal(swallowed ? n : 0, count);
        }
        // unchanged weights are not updates
        Assert.Equal((0L, 0L), PrecisionLoss.Bf16Swallowed([w, w], [w, w]));
    }

    [Fact]
    public void Bf16Swallowed_AgreesWithRoundingToBf16_ForBf16Weights()
    {
        // for a weight a bf16 can hold, an update below half its ulp rounds back to it (away from binade edges and ties)
        var gen = new Random(5);
        for (int i = 0; i < 2000; i++)
        {
            float w = ToBf16((float)(gen.NextDouble() * 4 + 1.1) * (gen.Next(2) == 0 ? 1 : -1) * MathF.Pow(2, gen.Next(-20, 20)));
            float half = PrecisionLoss.HalfUlpBf16(w);
            float delta = half * (float)(gen.NextDouble() * 1.8 + 0.1) * (gen.Next(2) == 0 ? 1 : -1);
            if (Math.Abs(Math.Abs(delta) / half - 1) < 1e-3) continue;
            if ((BitConverter.SingleToUInt32Bits(w) & 0x7FFFFF) == 0) continue; // a power of two: the spacing below it is half as wide
            bool swallowed = PrecisionLoss.Bf16Swallowed([w + delta], [w]).Swallowed == 1;
            Assert.Equal(ToBf16(w + delta) == w, swallowed);
        }
    }

    private static float ToBf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        bits += 0x7FFF + ((bits >> 16) & 1); // round to nearest, ties to even
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }

    [Fact]
    public void Monitor_ReportsTheGradientsAnFp16RunWouldLose_AndTheUpdatesABf16WeightWouldSwallow()
    {
        // the same model and batch, the loss scaled by 1 and by 1e-9: the weight gradients scale with it
        MonitorSample Step(double scale, double lr)
        {
            var config = new TrainingConfig { Model = "mlp 4-8x2-3 act=tanh", Data = "teacher", Seed = 1, Threads = 1 };
            var model = ModelBuilder.Build(ModelSpec.Parse(config.Model), new Generator(1));
            var x = Tensor.RandN(new Generator(2), 16, 4);
            var labels = IndexTensor.FromArray(Enumerable.Range(0, 16).Select(i => i % 3).ToArray());
            var optimizer = new GradFlow.Optim.Sgd(model.Parameters(), lr) { TrackUpdates = true };
            using var mon = new GradientMonitor(model, 1);
            mon.BeginSample(0);
            var loss = Losses.CrossEntropy(model.Forward(x), labels) * scale;
            loss.Backward();
            mon.RecordGradients(loss.Item());
            optimizer.Step();
            mon.EndSample(optimizer);
            return mon.Last!;
        }
        var plain = Step(1, 1e-2);
        var tiny = Step(1e-9, 1e-2);
        Assert.All(plain.Layers, l => Assert.True(l.GradientBelowFp16Subnormal < 0.05, $"layer {l.LayerIndex}: {l.GradientBelowFp16Subnormal}"));
        Assert.All(tiny.Layers, l => Assert.True(l.GradientBelowFp16Subnormal > 0.95, $"layer {l.LayerIndex}: {l.GradientBelowFp16Subnormal}"));
        Assert.All(tiny.Layers, l => Assert.True(l.GradientBelowFp16Normal >= l.GradientBelowFp16Subnormal));
        // the backpropagated signal dL/dh scales with the loss too
        Assert.All(plain.Layers, l => Assert.True(l.SignalBelowFp16Subnormal < 0.05, $"layer {l.LayerIndex}: {l.SignalBelowFp16Subnormal}"));
        Assert.All(tiny.Layers, l => Assert.True(l.SignalBelowFp16Subnormal > 0.95, $"layer {l.LayerIndex}: {l.SignalBelowFp16Subnormal}"));
        // with the loss scaled by 1e-4, SGD's updates are about 1e-7 of the weights: float32 registers them (its half
        // ulp is 3e-8 of a weight at most) but a bf16 weight (half ulp at least 2e-3 of it) would not move
        var small = Step(1e-4, 1e-2);
        Assert.All(small.Layers, l => Assert.True(l.UpdatesSwallowedByBf16 > 0.95, $"layer {l.LayerIndex}: {l.UpdatesSwallowedByBf16}"));
        Assert.True(plain.Layers.Average(l => l.UpdatesSwallowedByBf16) < 0.9, string.Join(", ", plain.Layers.Select(l => l.UpdatesSwallowedByBf16)));
        string line = MonitorLog.ToJsonLine(tiny);
        Assert.Contains("\"grad_below_fp16_subnormal\":", line);
        Assert.Contains("\"update_bf16_swallowed\":", line);
        Assert.Contains("\"signal_below_fp16_subnormal\":", line);
    }

    [Fact]
    public void Diagnosis_NotesWhatFp16AndBf16WouldLose_AndTheLossScale_WithoutChangingTheVerdict()
    {
        // layer 1: 30 % of its gradients below 2^-24, updates all registered; layer 2: none lost, 80 % of updates swallowed;
        // the largest gradient seen is 0.02, so the loss scale is the largest 2^k with 2^k·0.02 ≤ 2^15: 2^20
        MonitorSample Sample(int step) => new()
        {
            Step = step, Loss = 1.0 / (step + 1), GlobalGradientNorm = 1,
            Layers =
            [
                new LayerStats { LayerIndex = 1, BackpropagatedSignalRms = 0.5, ParameterGradientMaxAbs = 1e-6, GradientBelowFp16Subnormal = 0.30, UpdatesSwallowedByBf16 = 0.0 },
                new LayerStats { LayerIndex = 2, BackpropagatedSignalRms = 1.0, ParameterGradientMaxAbs = 0.02, GradientBelowFp16Subnormal = 0.0, UpdatesSwallowedByBf16 = 0.8 },
            ],
        };
        var config = new TrainingConfig { Model = "mlp 4-8-3", Data = "teacher", Seed = 1 };
        var samples = Enumerable.Range(0, 6).Select(i => Sample(i * 10)).ToArray();
        var d = Diagnoser.Diagnose(samples, config);
        Assert.True(d.Healthy);
        var fp16 = Assert.Single(d.Precision, n => n.Kind == "fp16-gradient-underflow");
        Assert.Equal(1, fp16.Layer);
        Assert.Equal(0.30, fp16.Fraction, 12);
        Assert.Contains("1048576 (2^20", fp16.Advice);
        var bf16 = Assert.Single(d.Precision, n => n.Kind == "bf16-swallowed-updates");
        Assert.Equal(2, bf16.Layer);
        Assert.Contains("fp32 master weights", bf16.Advice);
        Assert.Contains("\"precision\"", DiagnosisJson.Serialize(d));
        // below the settings' fractions: no note
        var quiet = Diagnoser.Diagnose(samples, config, settings: new DiagnosisSettings { Fp16LossFraction = 0.5, Bf16SwallowedFraction = 0.9 });
        Assert.Empty(quiet.Precision);
    }
}
