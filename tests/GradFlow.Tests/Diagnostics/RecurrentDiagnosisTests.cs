using GradFlow.Data;
using GradFlow.Diagnostics;
using GradFlow.Nn.Network;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>Diagnosis and repair through time, on the adding problem (docs/diagnosis.md, "Through time").</summary>
public class RecurrentDiagnosisTests
{
    private static TrainingConfig Adding(string model, int length, double lr = 1e-2, double? clip = 1, OptimizerKind optimizer = OptimizerKind.Adam) => new()
    {
        Model = model, Data = "adding", SequenceLength = length, Optimizer = optimizer, LearningRate = lr, ClipNorm = clip,
        BatchSize = 32, Epochs = 1, MaxSteps = 4000, Seed = 0, Threads = 1,
    };

    [Fact]
    public void TanhRnn_Length100_VanishesThroughTime_AtTheLagWhereTheMeasuredSignalFallsBelowTheThreshold()
    {
        var trial = Trials.Run(Adding("rnn 2-64-1", 100), steps: 300, every: 20, cancellation: TestContext.Current.CancellationToken);
        var p = Assert.Single(trial.Diagnosis.Problems, x => x.Kind == ProblemKind.VanishingGradient);
        // the lag reported is the one in the last sample's measured profile (top layer), the ratio the window's median
        var signal = trial.Samples[^1].TimeSignal![^1];
        int lag = Enumerable.Range(1, signal.Length - 1).First(k => signal[^(k + 1)] / signal[^1] < new DiagnosisSettings().VanishingRatio);
        Assert.Equal(lag, p.Evidence["lag_below_threshold"]);
        Assert.True(lag < 50, $"lag {lag}: the first marker of the adding problem is at least 50 steps back");
        Assert.Contains($"falls below the threshold at lag {lag}", p.Summary);
        Assert.True(p.Evidence["time_ratio"] < 1e-3);
        Assert.Equal("vanilla recurrent cell", p.Causes[0].Name);
        Assert.Contains(p.Causes, c => c.Name == "sequence length" && c.Facts.Contains("T = 100"));
        Assert.Equal("cell:gru", p.Remedies[0].Id);
        Assert.Contains(p.Remedies, r => r.Id == "cell:lstm");
        Assert.Contains(p.Remedies, r => r.Id == "init:orthogonal");
    }

    [Fact]
    public void Gru_Length100_CarriesTheSignalThroughTime_OnceItHasLearnt()
    {
        var trial = Trials.Run(Adding("gru 2-64-1", 100), steps: 800, every: 40, cancellation: TestContext.Current.CancellationToken);
        Assert.DoesNotContain(trial.Diagnosis.Problems, p => p.Kind == ProblemKind.VanishingGradient);
        Assert.True(trial.Diagnosis.GradientRatio > 1e-3, $"time ratio {trial.Diagnosis.GradientRatio}");
        Assert.True(trial.Result.Epochs[^1].TestLoss < 0.05, $"test MSE {trial.Result.Epochs[^1].TestLoss}");
    }

    [Fact]
    public void LargeRecurrentInit_WithSgd_DivergesWithoutClipping_AndTheDiagnosisNamesTheScaleAndClipping()
    {
        // σ(W_hh) of an orthogonal start with gain 2 is exactly 2
        var trial = Trials.Run(Adding("rnn 2-64-1 init=orthogonal:2", 20, lr: 0.1, clip: null, optimizer: OptimizerKind.Sgd), steps: 500, every: 5, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(StopReason.NonFiniteLoss, trial.Result.Stop);
        var exploding = Assert.Single(trial.Diagnosis.Problems, p => p.Kind == ProblemKind.ExplodingGradient);
        Assert.Contains(exploding.Causes, c => c.Name == "recurrent weight scale too large" && c.Facts.Contains("σ = 2 "));
        Assert.Contains(exploding.Causes, c => c.Name == "no gradient clipping");
        Assert.Contains(exploding.Remedies, r => r.Id == "clip:1");
        Assert.Contains(trial.Diagnosis.Problems, p => p.Kind == ProblemKind.NonFinite);
    }

    [Fact]
    public void LargeRecurrentInit_WithSgd_TrainsWithClipping()
    {
        var config = Adding("rnn 2-64-1 init=default:3", 20, lr: 0.03, clip: null, optimizer: OptimizerKind.Sgd) with { MaxSteps = 12000 };
        var unclipped = new Trainer(config).Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(StopReason.NonFiniteLoss, unclipped.Stop);
        // 12 000 SGD steps of a chaotic trajectory: one seed's final loss moves with the last bits of any kernel (seeds 0-4
        // ended at 0.025-0.037, but a last-bit change of the head's bias gradient once took seed 0 to 0.066), so the claim
        // is the median of three seeds
        var clipped = Enumerable.Range(0, 3).AsParallel().AsOrdered()
            .Select(seed => new Trainer(config with { ClipNorm = 1, Seed = (ulong)seed }).Run(cancellation: TestContext.Current.CancellationToken))
            .ToArray();
        Assert.All(clipped, r => Assert.Equal(StopReason.MaxSteps, r.Stop));
        var losses = clipped.Select(r => r.Epochs[^1].TestLoss).Order().ToArray();
        Assert.True(losses[1] < 0.05, $"median test MSE {losses[1]} of {string.Join(", ", losses)} (baseline {SequenceTasks.AddingBaselineMse:F3})");
    }

    [Fact]
    public void Repair_TanhRnn_Length100_SwitchesToAGatedCellThatLearns()
    {
        var result = Repairer.Repair(Adding("rnn 2-64-1", 100), trialSteps: 1000, maxAttempts: 3, cancellation: TestContext.Current.CancellationToken);
        Assert.False(result.Initial.Diagnosis.Healthy);
        Assert.True(result.Healthy, string.Join("; ", result.Final.Diagnosis.Problems.Select(p => p.Summary)));
        Assert.StartsWith("gru ", result.Config.Model);
        Assert.True(result.Final.Result.Epochs[^1].TestLoss < 0.05, $"test MSE {result.Final.Result.Epochs[^1].TestLoss}");
    }

    private static MonitorSample Sample(long step, double[] signal) => new()
    {
        Step = step, Loss = 0.1, MeanLoss = 0.1, GlobalGradientNorm = 1,
        Layers = [new LayerStats { LayerIndex = 1, BackpropagatedSignalRms = 1e-3 }, new LayerStats { LayerIndex = 2, BackpropagatedSignalRms = 1e-2 }],
        TimeSignal = [signal],
    };

    [Fact]
    public void Rules_SignalGrowingBackThroughTime_IsAnExplosionThroughTime_WithClippingAmongTheRemedies()
    {
        // 50 steps, the signal growing ×1.25 per step back: the first step's is 1.25^49 ≈ 5.6e4 times the last's
        var signal = Enumerable.Range(0, 50).Select(t => Math.Pow(1.25, 49 - t)).ToArray();
        var d = Diagnoser.Diagnose(Enumerable.Range(0, 5).Select(i => Sample(i * 10, signal)).ToArray(), Adding("rnn 2-16-1", 50, clip: null));
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.ExplodingGradient);
        Assert.StartsWith("exploding gradient through time", p.Summary);
        Assert.Equal(Math.Pow(1.25, 49), d.GradientRatio, 1e-6 * Math.Pow(1.25, 49));
        Assert.Contains(p.Remedies, r => r.Id == "clip:1");
        Assert.DoesNotContain(d.Problems, x => x.Kind == ProblemKind.VanishingGradient);
    }

    [Fact]
    public void Rules_SignalDecayingThroughTime_VanishesAtTheFirstLagBelowTheThreshold()
    {
        // ×0.5 per step back: below 1e-3 of the last step's from lag 10 (0.5^10 ≈ 9.8e-4)
        var signal = Enumerable.Range(0, 40).Select(t => Math.Pow(0.5, 39 - t)).ToArray();
        var d = Diagnoser.Diagnose(Enumerable.Range(0, 5).Select(i => Sample(i * 10, signal)).ToArray(), Adding("gru 2-16-1", 40));
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.VanishingGradient);
        Assert.Equal(10, p.Evidence["lag_below_threshold"]);
        Assert.Equal(40, p.Evidence["sequence_length"]);
        Assert.DoesNotContain(p.Causes, c => c.Name == "vanilla recurrent cell");
        Assert.Contains(p.Remedies, r => r.Id == "init:orthogonal");
        // healthy when the decay stops at 0.9 per step: 0.9^39 ≈ 0.016
        var mild = Enumerable.Range(0, 40).Select(t => Math.Pow(0.9, 39 - t)).ToArray();
        Assert.True(Diagnoser.Diagnose(Enumerable.Range(0, 5).Select(i => Sample(i * 10, mild)).ToArray(), Adding("gru 2-16-1", 40)).Healthy);
    }

    /// <summary>Two vanilla recurrent blocks (no spec expresses this), the first starting orthogonal with gain 2 (σ(W_hh) = 2), and a linear read-out.</summary>
    private const string TwoRnnNet = "net 1x2 seq[enc:recurrent(cell=rnn-tanh,hidden=16,init=orthogonal:2,output=sequence) dec:recurrent(cell=rnn-tanh,hidden=16) head:linear(out=1)]";

    [Fact]
    public void Rules_OnANetTextWithRecurrentBlocks_AreTheThroughTimeRules_WithItsCellsAndInitialWeights()
    {
        var config = Adding(TwoRnnNet, 40);
        Assert.Null(config.Spec());
        // the layer ratio (1e-3 / 1e-2) is healthy; the signal through time halves per step back
        var signal = Enumerable.Range(0, 40).Select(t => Math.Pow(0.5, 39 - t)).ToArray();
        var d = Diagnoser.Diagnose(Enumerable.Range(0, 5).Select(i => Sample(i * 10, signal)).ToArray(), config);
        var p = Assert.Single(d.Problems, x => x.Kind == ProblemKind.VanishingGradient);
        Assert.StartsWith("vanishing gradient through time", p.Summary);
        Assert.Equal(10, p.Evidence["lag_below_threshold"]);
        Assert.Equal([1, 2], p.Layers);
        Assert.Equal("vanilla recurrent cell", p.Causes[0].Name);
        // σ of the initial W_hh, rebuilt from the description and seed: the first block's orthogonal start with gain 2
        Assert.Contains(p.Causes, c => c.Name == "recurrent weight scale too large" && c.Facts.Contains("σ = 2 "));
        Assert.Equal("cell:gru", p.Remedies[0].Id);
        Assert.Equal([1, 2], p.Remedies[0].Scope);
        var gru = NetworkDescription.Parse(Remedies.Apply("cell:gru", config).Model);
        Assert.All(NetworkFacts.Flatten(gru.Root).OfType<RecurrentBlock>(), b => Assert.Equal(GradFlow.Nn.RecurrentCellKind.Gru, b.Cell));
    }

    [Theory]
    [InlineData("rnn 2-16x2-1 init=orthogonal:0.5")]
    [InlineData("lstm 2-16-1")]
    [InlineData("gru 2-16-1")]
    public void Rules_OnTheNetTextOfARecurrentSpec_GiveTheSpecsDiagnosis(string spec)
    {
        var signal = Enumerable.Range(0, 40).Select(t => Math.Pow(0.5, 39 - t)).ToArray();
        var samples = Enumerable.Range(0, 5).Select(i => Sample(i * 10, signal)).ToArray();
        var bySpec = Diagnoser.Diagnose(samples, Adding(spec, 40));
        var byText = Diagnoser.Diagnose(samples, Adding(NetworkText.Format(NetworkDescription.Parse(spec)), 40));
        Assert.NotEmpty(bySpec.Problems);
        Assert.Equal(DiagnosisJson.Serialize(bySpec), DiagnosisJson.Serialize(byText));
    }
}
