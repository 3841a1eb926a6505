using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

public class DiagnoserTests
{
    private static TrainingConfig Teacher(string model) => new() { Model = model, Data = "teacher", Seed = 1, BatchSize = 64, Threads = 1 };

    [Fact]
    public void Preflight_DeepSigmoid_FindsVanishingWithDepthCauseAndReluRemedyFirst()
    {
        var (d, sample) = Trials.Preflight(Teacher("mlp 64-64x20-4 act=sigmoid init=xavier-uniform"));
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.VanishingGradient);
        Assert.True(sample.GradientRatio < 1e-6, $"ratio {sample.GradientRatio}");
        Assert.Equal("saturating activation × depth", p.Causes[0].Name);
        Assert.Contains("0.25^20", p.Causes[0].Facts);
        Assert.StartsWith("activation:relu", p.Remedies[0].Id);
        // the affected layers are the lower ones, contiguous from layer 1
        Assert.Equal(Enumerable.Range(1, p.Layers.Length), p.Layers);
        Assert.Contains("falls below the threshold at layer", p.Summary);
    }

    [Theory]
    [InlineData("mlp 64-64x20-4 act=relu init=he-normal")]
    [InlineData("mlp 64-64x20-4 act=tanh init=xavier-uniform")]
    [InlineData("mlp 64-64x20-4 act=sigmoid init=xavier-uniform norm=batch")]
    [InlineData("mlp 64-64x20-4 act=relu init=he-normal residual=zero")]
    public void Preflight_RemediedDeepNets_AreHealthy(string model)
    {
        var (d, _) = Trials.Preflight(Teacher(model));
        Assert.True(d.Healthy, string.Join("; ", d.Problems.Select(p => p.Summary)));
    }

    [Fact]
    public void Preflight_LargeInit_FindsExplodingWithInitScaleCause()
    {
        var (d, _) = Trials.Preflight(Teacher("mlp 64-64x20-4 act=relu init=normal:0.5"));
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.ExplodingGradient);
        Assert.Equal("initial weight scale too large for the fan-in", p.Causes[0].Name);
        Assert.Equal("init:he", p.Remedies[0].Id);
    }

    [Fact]
    public void Preflight_TanhWithHugeWeights_FindsSaturation()
    {
        var (d, _) = Trials.Preflight(Teacher("mlp 64-64x5-4 act=tanh init=normal:2"));
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.Saturation);
        Assert.Contains(1, p.Layers);
        Assert.StartsWith("init:xavier", p.Remedies[0].Id);
    }

    private static MonitorSample Sample(long step, double loss, double[] signals, double dead = double.NaN, double norm = 1)
    {
        var layers = signals.Select((s, i) => new LayerStats { LayerIndex = i + 1, BackpropagatedSignalRms = s, DeadUnits = dead }).ToArray();
        return new MonitorSample { Step = step, Loss = loss, GlobalGradientNorm = norm, Layers = layers };
    }

    [Theory]
    [InlineData(0.9e-3, true)]
    [InlineData(1.1e-3, false)]
    public void Vanishing_ThresholdIsTheSetting(double ratio, bool expected)
    {
        var samples = Enumerable.Range(0, 5).Select(i => Sample(i * 10, 1.0 / (i + 1), [ratio, 0.1, 1.0])).ToArray();
        var d = Diagnoser.Diagnose(samples, Teacher("mlp 64-8x2-4"));
        Assert.Equal(expected, d.Problems.Any(p => p.Kind == ProblemKind.VanishingGradient));
        var strict = Diagnoser.Diagnose(samples, Teacher("mlp 64-8x2-4"), settings: new DiagnosisSettings { VanishingRatio = 1e-4 });
        Assert.DoesNotContain(strict.Problems, p => p.Kind == ProblemKind.VanishingGradient);
    }

    [Fact]
    public void Exploding_GradientNormGrowth_IsDetected()
    {
        var samples = Enumerable.Range(0, 5).Select(i => Sample(i, 1, [1, 1, 1], norm: Math.Pow(10, i * 1.2))).ToArray();
        var p = Assert.Single(Diagnoser.Diagnose(samples, Teacher("mlp 64-8x2-4")).Problems, x => x.Kind == ProblemKind.ExplodingGradient);
        Assert.Contains("grew", p.Summary);
        Assert.Contains(p.Remedies, r => r.Id == "clip:1");
    }

    [Fact]
    public void DyingRelu_MostUnitsDead_SuggestsLeakyRelu()
    {
        var samples = Enumerable.Range(0, 5).Select(i => Sample(i, 1.0 / (i + 1), [1, 1, 1], dead: 0.8)).ToArray();
        var p = Assert.Single(Diagnoser.Diagnose(samples, Teacher("mlp 64-8x2-4")).Problems, x => x.Kind == ProblemKind.DyingRelu);
        Assert.StartsWith("activation:leaky-relu", p.Remedies[0].Id);
    }

    [Fact]
    public void OscillatingAndStalled_FollowTheLossTrend()
    {
        var zigzag = Enumerable.Range(0, 12).Select(i => Sample(i, i % 2 == 0 ? 1.0 : 2.0, [1, 1])).ToArray();
        Assert.Contains(Diagnoser.Diagnose(zigzag, Teacher("mlp 64-8-4")).Problems, p => p.Kind == ProblemKind.OscillatingLoss);
        var flat = Enumerable.Range(0, 12).Select(i => Sample(i, 2.3 - i * 1e-4, [1, 1])).ToArray();
        Assert.Contains(Diagnoser.Diagnose(flat, Teacher("mlp 64-8-4")).Problems, p => p.Kind == ProblemKind.StalledLoss);
        var learning = Enumerable.Range(0, 12).Select(i => Sample(i, 2.3 * Math.Pow(0.8, i), [1, 1])).ToArray();
        Assert.True(Diagnoser.Diagnose(learning, Teacher("mlp 64-8-4")).Healthy);
    }

    [Fact]
    public void Trial_HugeLearningRate_ReportsNonFiniteAndWhereItAppeared()
    {
        var config = Teacher("mlp 64-64x4-4 act=relu init=normal:1") with { Optimizer = OptimizerKind.Sgd, LearningRate = 1e4 };
        var trial = Trials.Run(config, steps: 50, every: 1, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(StopReason.NonFiniteLoss, trial.Result.Stop);
        var p = Assert.Single(trial.Diagnosis.Problems, x => x.Kind == ProblemKind.NonFinite);
        Assert.NotNull(trial.Diagnosis.NonFiniteOrigin);
        Assert.Matches(@"layers\.\d+ \((Linear|Relu)\) at step \d+", trial.Diagnosis.NonFiniteOrigin!);
        Assert.Contains(p.Remedies, r => r.Id == "clip:1");
    }

    [Fact]
    public void Repair_DeepSigmoid_EndsHealthyWithAConfigTrainAccepts()
    {
        var config = Teacher("mlp 64-64x12-4 act=sigmoid init=xavier-uniform") with { Epochs = 1 };
        var result = Repairer.Repair(config, trialSteps: 60, maxAttempts: 4, cancellation: TestContext.Current.CancellationToken);
        Assert.False(result.Initial.Diagnosis.Healthy);
        Assert.True(result.Healthy, string.Join("; ", result.Final.Diagnosis.Problems.Select(p => p.Summary)));
        Assert.Contains(result.Attempts, a => a.Accepted);
        Assert.True(result.Cost > 0);
        var again = TrainingConfig.FromJson(result.Config.ToJson());
        Assert.NotNull(new Trainer(again));
    }
}
