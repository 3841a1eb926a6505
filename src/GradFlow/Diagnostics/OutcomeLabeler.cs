using System.Globalization;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// What one full training run of a configuration did: its result against chance, and the mechanism
/// the monitor saw over the whole run. Stored with the generated catalogue, so that re-labelling
/// needs no re-training.
/// </summary>
public sealed record RunOutcome
{
    /// <summary>Test accuracy at the end (classification; NaN for regression or a run stopped before its first evaluation).</summary>
    public double TestAccuracy { get; init; } = double.NaN;

    /// <summary>Test loss at the end (NaN when the run stopped before its first evaluation).</summary>
    public double TestLoss { get; init; } = double.NaN;

    /// <summary>Mean training loss of the last sampled stretch of the run.</summary>
    public double FinalTrainLoss { get; init; } = double.NaN;

    /// <summary>The loss of a model that knows nothing of the inputs: the entropy of the training labels' class frequencies, the training targets' variance for regression (<see cref="Trials.ChanceLoss"/>).</summary>
    public double ChanceLoss { get; init; }

    /// <summary>Classes (0 for regression).</summary>
    public int Classes { get; init; }

    /// <summary>NaN or infinity in the loss or the gradients at any point.</summary>
    public bool NonFinite { get; init; }

    /// <summary>Median gradient ratio over the run (through time for recurrent models).</summary>
    public double GradientRatio { get; init; } = double.NaN;

    /// <summary>Largest fraction of dead units of any layer, averaged over the second half of the run.</summary>
    public double DeadFraction { get; init; } = double.NaN;

    /// <summary>Largest saturation of any layer, averaged over the second half of the run.</summary>
    public double Saturation { get; init; } = double.NaN;

    /// <summary>Largest update ratio of any layer over the run.</summary>
    public double UpdateRatio { get; init; } = double.NaN;

    /// <summary>Largest global gradient norm over the first sampled one.</summary>
    public double GradientGrowth { get; init; } = double.NaN;

    /// <summary>Fraction of successive changes of the sampled mean loss that flip sign, second half of the run.</summary>
    public double LossSignFlips { get; init; } = double.NaN;

    /// <summary>Wall time of the run in seconds (information only: nothing is judged by it).</summary>
    public double Seconds { get; init; }

    /// <summary>
    /// How much of the group's best result the run reached, from chance (0) to the best (1):
    /// (accuracy − 1/K)/(best − 1/K) for classification, (chance − loss)/(chance − best loss) for
    /// regression. 0 for a run that went non-finite.
    /// </summary>
    public double Score(RunOutcome best)
    {
        ArgumentNullException.ThrowIfNull(best);
        if (NonFinite) return 0;
        if (Classes > 0)
        {
            double chance = 1.0 / Classes;
            return double.IsFinite(TestAccuracy) ? (TestAccuracy - chance) / Math.Max(1e-9, best.TestAccuracy - chance) : 0;
        }
        return double.IsFinite(TestLoss) ? (ChanceLoss - TestLoss) / Math.Max(1e-12, ChanceLoss - best.TestLoss) : 0;
    }

    /// <summary>Higher is better: accuracy for classification, minus the test loss for regression.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double Merit => NonFinite ? double.NegativeInfinity : Classes > 0 ? (double.IsNaN(TestAccuracy) ? double.NegativeInfinity : TestAccuracy) : (double.IsNaN(TestLoss) ? double.NegativeInfinity : -TestLoss);
}

/// <summary>
/// Labels configurations by what their full training runs did (never by intent): a run is
/// <b>healthy</b> when it reaches at least <see cref="HealthyScore"/> of the best result of its group
/// (same task, optimiser family and budget, <see cref="CatalogueGrammar.GroupOf"/>) and ends below the
/// chance loss; <b>broken</b> when it went non-finite, ends at or above the chance loss, or reaches
/// less than <see cref="BrokenScore"/>; <b>ambiguous</b> in between (dropped and counted). A broken
/// run's problem is the mechanism its monitor showed over the run, in this order: non-finite; exploding
/// (loss far above chance, gradient ratio above 1e3, or gradient norm grown a thousandfold); vanishing
/// (gradient ratio below 1e-3); dying ReLU (over half a layer's units dead); saturation (over half a
/// layer's units saturated); oscillating loss; otherwise a stalled loss. Every mechanism that holds is kept.
/// </summary>
public static class OutcomeLabeler
{
    /// <summary>A healthy run reaches at least this share of its group's best score.</summary>
    public const double HealthyScore = 0.9;

    /// <summary>A run below this share of its group's best score is broken.</summary>
    public const double BrokenScore = 0.6;

    /// <summary>Trains <paramref name="config"/> for its full budget with the monitor (40 samples) and measures the outcome.</summary>
    public static RunOutcome Measure(TrainingConfig config, DataBundle? data = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var trainer = new Trainer(config with { CheckpointEvery = null }, data);
        using var monitor = new GradientMonitor(trainer.Model, (int)Math.Max(1, trainer.StepBudget / 40));
        trainer.AddObserver(monitor);
        var result = trainer.Run(cancellation: cancellation);
        var samples = monitor.Samples.ToArray();
        var test = trainer.Data.Test;
        int classes = test.IsClassification ? test.ClassCount : 0;
        double chance = Trials.ChanceLoss(trainer.Data.Train);
        bool recurrent = samples.Any(s => s.TimeSignal is not null);
        var late = samples.Skip(samples.Length / 2).Where(s => s.Layers.Length > 0).ToArray();
        double LateMax(Func<LayerStats, double> f) => late.Length == 0 ? double.NaN
            : Enumerable.Range(0, late[0].Layers.Length).Select(i => late.Select(s => f(s.Layers[i])).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average())
                .Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
        var finite = samples.Where(s => s.NonFinite == 0 && double.IsFinite(s.GlobalGradientNorm)).ToArray();
        var losses = late.Select(s => double.IsNaN(s.MeanLoss) ? s.Loss : s.MeanLoss).Where(double.IsFinite).ToArray();
        int flips = 0;
        for (int i = 2; i < losses.Length; i++)
            if (Math.Sign(losses[i] - losses[i - 1]) * Math.Sign(losses[i - 1] - losses[i - 2]) < 0) flips++;
        var last = result.Epochs.Count > 0 ? result.Epochs[^1] : null;
        return new RunOutcome
        {
            TestAccuracy = classes > 0 && last is not null ? last.TestAccuracy : double.NaN,
            TestLoss = last?.TestLoss ?? double.NaN,
            FinalTrainLoss = samples.Select(s => double.IsNaN(s.MeanLoss) ? s.Loss : s.MeanLoss).TakeLast(3).DefaultIfEmpty(double.NaN).Average(),
            ChanceLoss = chance,
            Classes = classes,
            NonFinite = result.Stop == StopReason.NonFiniteLoss || samples.Any(s => s.NonFinite > 0) || last is not null && !double.IsFinite(last.TestLoss),
            GradientRatio = Diagnoser.Median(finite.Select(s => recurrent ? Diagnoser.TimeRatio(s) : s.GradientRatio)),
            DeadFraction = LateMax(l => l.DeadUnits),
            Saturation = LateMax(l => l.Saturation),
            UpdateRatio = samples.SelectMany(s => s.Layers.Select(l => l.UpdateRatio)).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max(),
            GradientGrowth = finite.Length < 2 || !(finite[0].GlobalGradientNorm > 0) ? double.NaN : finite.Max(s => s.GlobalGradientNorm) / finite[0].GlobalGradientNorm,
            LossSignFlips = losses.Length < 3 ? double.NaN : (double)flips / (losses.Length - 2),
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>Every mechanism <paramref name="o"/> shows, most telling first (empty for none).</summary>
    public static IReadOnlyList<ProblemKind> Mechanisms(RunOutcome o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var kinds = new List<ProblemKind>();
        if (o.NonFinite) kinds.Add(ProblemKind.NonFinite);
        if (o.FinalTrainLoss > 3 * o.ChanceLoss || o.GradientRatio > 1e3 || o.GradientGrowth > 1e3) kinds.Add(ProblemKind.ExplodingGradient);
        if (o.GradientRatio < 1e-3) kinds.Add(ProblemKind.VanishingGradient);
        if (o.DeadFraction > 0.5) kinds.Add(ProblemKind.DyingRelu);
        if (o.Saturation > 0.5) kinds.Add(ProblemKind.Saturation);
        if (o.LossSignFlips >= 0.6 && o.UpdateRatio > 0.1) kinds.Add(ProblemKind.OscillatingLoss);
        return kinds;
    }

    /// <summary>
    /// Labels every named outcome against its group's best. Returns, per name, the label (null =
    /// healthy), the mechanisms, the score and the name of the group's best run; ambiguous runs get
    /// <c>Ambiguous = true</c>.
    /// </summary>
    public static IReadOnlyList<OutcomeLabel> Label(IReadOnlyList<(string Name, TrainingConfig Config, RunOutcome Outcome)> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var labels = new List<OutcomeLabel>();
        foreach (var group in runs.GroupBy(r => CatalogueGrammar.GroupOf(r.Config)))
        {
            var best = group.MaxBy(r => r.Outcome.Merit);
            foreach (var (name, _, o) in group)
            {
                double score = o.Score(best.Outcome);
                var mechanisms = Mechanisms(o);
                bool broken = AtOrAboveChance(o) || score < BrokenScore;
                bool healthy = IsHealthy(o, best.Outcome);
                ProblemKind? kind = broken ? (mechanisms.Count > 0 ? mechanisms[0] : ProblemKind.StalledLoss) : null;
                labels.Add(new OutcomeLabel(name, kind, !broken && !healthy, mechanisms, score, best.Name, group.Key));
            }
        }
        return labels;
    }

    /// <summary>Whether a run's outcome earns the healthy label against its group's best: finite, a final loss below chance and at least <see cref="HealthyScore"/> of the best's score.</summary>
    public static bool IsHealthy(RunOutcome outcome, RunOutcome best)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        ArgumentNullException.ThrowIfNull(best);
        return !AtOrAboveChance(outcome) && outcome.Score(best) >= HealthyScore;
    }

    private static bool AtOrAboveChance(RunOutcome o) => o.NonFinite || !(o.FinalTrainLoss < o.ChanceLoss);

    /// <summary>The reason for a label, in words, for the catalogue's <c>why</c> field.</summary>
    public static string Why(OutcomeLabel label, RunOutcome o)
    {
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(o);
        var inv = CultureInfo.InvariantCulture;
        string result = o.NonFinite ? "went non-finite"
            : o.Classes > 0 ? string.Create(inv, $"test accuracy {o.TestAccuracy:P1}, {label.Score:F2} of the way from chance to the group's best")
            : string.Create(inv, $"test MSE {o.TestLoss:G3}, {label.Score:F2} of the way from chance to the group's best");
        string mech = string.Create(inv, $"final train loss {o.FinalTrainLoss:G3} (chance {o.ChanceLoss:G3}); gradient ratio {o.GradientRatio:E1}, dead {o.DeadFraction:F2}, saturated {o.Saturation:F2}, update ratio {o.UpdateRatio:G2}, gradient growth {o.GradientGrowth:G2}");
        return $"outcome of the full run: {result}; {mech}";
    }
}

/// <summary>The outcome label of one run.</summary>
/// <param name="Name">The run.</param>
/// <param name="Kind">The problem (null: healthy or ambiguous).</param>
/// <param name="Ambiguous">Neither healthy nor broken: dropped from the catalogue.</param>
/// <param name="Mechanisms">Every mechanism the run showed.</param>
/// <param name="Score">Share of the group's best result reached.</param>
/// <param name="Best">The group's best run (the reference a repair must reach).</param>
/// <param name="Group">The group key.</param>
public sealed record OutcomeLabel(string Name, ProblemKind? Kind, bool Ambiguous, IReadOnlyList<ProblemKind> Mechanisms, double Score, string Best, string Group);
