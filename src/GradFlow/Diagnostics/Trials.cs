using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// Records where a NaN or infinity first appears in the forward pass: the first module (in execution
/// order) whose output holds a non-finite value, with its name, type and the step. Forward hooks on
/// every leaf module; they scan outputs only while no origin has been found.
/// </summary>
public sealed class NonFiniteTracer : ITrainingObserver, IDisposable
{
    private readonly List<IDisposable> _handles = [];
    private long _step;

    /// <summary>Hooks every module of <paramref name="model"/> that has no children.</summary>
    public NonFiniteTracer(Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var (name, m) in model.NamedModules())
        {
            if (m.NamedChildren().Any()) continue;
            string label = $"{name} ({m.GetType().Name})";
            _handles.Add(m.RegisterForwardHook((_, input, output) =>
            {
                if (Origin is not null || IsFinite(output)) return;
                Origin = IsFinite(input) ? $"{label} at step {_step}" : $"the input of {label} at step {_step}";
            }));
        }
    }

    /// <summary>"layers.12 (Linear) at step 40", or null while everything is finite.</summary>
    public string? Origin { get; private set; }

    void ITrainingObserver.OnStepStart(StepInfo step) => _step = step.Step;

    /// <summary>Removes the hooks.</summary>
    public void Dispose()
    {
        foreach (var h in _handles) h.Dispose();
    }

    private static bool IsFinite(Tensor t)
    {
        if (t.Storage is float[])
        {
            var v = t.Span<float>();
            float s = System.Numerics.Tensors.TensorPrimitives.Sum(v);
            if (float.IsFinite(s)) return true;
            foreach (float x in v) if (!float.IsFinite(x)) return false;
            return true;
        }
        return t.ToDoubleArray().All(double.IsFinite);
    }
}

/// <summary>
/// What a verdict on a training run reads, watched on a <see cref="Trainer"/>: the gradient monitor, the non-finite tracer and
/// the first step's predicted update ratio, and the training labels' chance level. A trial (<see cref="Trials.Run"/>) and a
/// monitored training run (<c>gradflow train --monitor</c>) judge with the same evidence, so the same run gets the same verdict.
/// </summary>
public sealed class RunWatch : IDisposable
{
    private readonly Trainer _trainer;
    private readonly TrainingConfig _config;
    private readonly FirstStepPredictor _predictor;

    /// <summary>
    /// Adds the watch's observers to <paramref name="trainer"/>; <paramref name="config"/> is the run judged (a trial's schedule and
    /// budget are the full run's). The monitor samples every <paramref name="every"/> steps, or more often when the trainer's steps
    /// would give the loss-trend rules of <paramref name="settings"/> too few samples (<see cref="Trials.SampleEvery"/>), unless
    /// <paramref name="exactEvery"/>.
    /// </summary>
    public RunWatch(Trainer trainer, TrainingConfig config, int every, bool exactEvery = false, DiagnosisSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(config);
        _trainer = trainer;
        _config = config;
        if (!exactEvery) every = Trials.SampleEvery(every, (int)Math.Min(int.MaxValue, trainer.StepBudget), settings ?? new DiagnosisSettings());
        Monitor = new GradientMonitor(trainer.Model, every);
        Tracer = new NonFiniteTracer(trainer.Model);
        _predictor = new FirstStepPredictor(config, Monitor.Layers);
        trainer.AddObserver(Tracer).AddObserver(Monitor).AddObserver(_predictor);
        ChanceLoss = Trials.ChanceLoss(trainer.Data.Train, config.LabelSmoothing);
        LossFloor = Trials.LossFloor(trainer.Data.Train, config.LabelSmoothing);
        ZeroOutputLoss = Trials.ZeroOutputLoss(trainer.Data.Train);
        settings ??= new DiagnosisSettings();
        if (settings.LinearProgress > 0 && !config.Stream)
        {
            LinearBaselineSteps = (int)Math.Min(settings.LinearBaselineSteps, trainer.StepBudget);
            LinearBaselineLoss = Trials.LinearBaseline(config, trainer.Data, LinearBaselineSteps, settings.LinearBaselineMaxWeights);
        }
        _startWeightScales = Diagnoser.WeightScales(trainer.Model);
    }

    /// <summary>The weight scales before the watch's first step (<see cref="Diagnoser.WeightScales"/>): the init-scale cause reads these, not the trained weights.</summary>
    private readonly double[]? _startWeightScales;

    /// <summary>The training labels' chance level (<see cref="Trials.ChanceLoss"/>, under the run's label smoothing).</summary>
    public double ChanceLoss { get; }

    /// <summary>The lowest loss the run can reach (<see cref="Trials.LossFloor"/>: above 0 under label smoothing).</summary>
    public double LossFloor { get; }

    /// <summary>The loss of all-zero outputs on the training labels (<see cref="Trials.ZeroOutputLoss"/>).</summary>
    public double ZeroOutputLoss { get; }

    /// <summary>The first step's predicted update ratio, the largest over the layers (NaN before the first step; a resumed run has it from its checkpoint).</summary>
    public double PredictedUpdateRatio => _predictor.Ratio;

    /// <summary>The loss a linear model of the same inputs reaches in <see cref="LinearBaselineSteps"/> steps (<see cref="Trials.LinearBaseline"/>), NaN when there is none.</summary>
    public double LinearBaselineLoss { get; } = double.NaN;

    /// <summary>The steps of <see cref="LinearBaselineLoss"/> (0 when there is none).</summary>
    public int LinearBaselineSteps { get; }

    /// <summary>
    /// Appends the monitor's samples to <paramref name="run"/>'s metrics file (<see cref="MonitorLog.WriteTo"/>), and before the first
    /// of them the facts that the samples do not carry (<see cref="MonitorLog.WatchLine"/>), so that the file alone gives the verdict
    /// this watch gives (the dashboard's live verdict).
    /// </summary>
    public void WriteTo(RunDirectory run)
    {
        ArgumentNullException.ThrowIfNull(run);
        Action<MonitorSample>? watchLine = null;
        watchLine = sample =>
        {
            Monitor.SampleCompleted -= watchLine; // once, before the first sample's line
            run.AppendLine(MonitorLog.WatchLine(sample.Step, ChanceLoss, PredictedUpdateRatio, ZeroOutputLoss, LossFloor, LinearBaselineLoss, LinearBaselineSteps));
        };
        Monitor.SampleCompleted += watchLine;
        // only a resumed run's metrics file holds lines before this watch's (a new run's directory is empty or cleared)
        _resumedMetrics = File.Exists(run.Metrics) && new FileInfo(run.Metrics).Length > 0 ? run.Metrics : null;
        MonitorLog.WriteTo(Monitor, run);
    }

    /// <summary>The metrics file of a resumed run (<see cref="WriteTo"/>), whose samples before this watch's first are its earlier part; else null.</summary>
    private string? _resumedMetrics;

    /// <summary>The per-layer statistics, sampled every <c>every</c> steps.</summary>
    public GradientMonitor Monitor { get; }

    /// <summary>Where a non-finite value first appeared.</summary>
    public NonFiniteTracer Tracer { get; }

    /// <summary>The verdict on the run that ended with <paramref name="result"/>, from all the evidence watched.</summary>
    public Diagnosis Diagnose(TrainingResult result, DiagnosisSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        double? badLoss = result.Stop == StopReason.NonFiniteLoss ? double.NaN : null;
        IReadOnlyList<MonitorSample> samples = Monitor.Samples;
        // a resumed run: its samples before the resumption are part of the run the verdict is on; judged on the new ones alone, a run
        // stalled at chance was called healthy "over 3 samples"; a run resumed after its last sample (a finished run) has only those
        if (_resumedMetrics is not null)
        {
            // read after training: the trainer has dropped the lines past the checkpoint it resumed from
            long first = samples.Count > 0 ? samples[0].Step : long.MaxValue;
            var earlier = MonitorLog.ReadSamples(_resumedMetrics).Where(s => s.Step < first).ToArray();
            if (earlier.Length > 0) samples = [.. earlier, .. samples];
        }
        return Diagnoser.Diagnose(samples, _config, _trainer.Model, settings, Tracer.Origin, badLoss, Monitor.RecentLosses(),
            predictedUpdateRatio: _predictor.Ratio, chanceLoss: ChanceLoss, zeroOutputLoss: ZeroOutputLoss, lossFloor: LossFloor, wholeRunSteps: WholeRunSteps(result),
            startWeightScales: _startWeightScales, linearBaseline: (LinearBaselineLoss, LinearBaselineSteps));
    }

    /// <summary>
    /// The judged run's configured steps when <paramref name="result"/> ended where the run ends, else null: the budget ended it, or a
    /// trial's step limit exactly as long as the run did (a trial limited by steps before the run's budget ends before the run's end).
    /// </summary>
    public long? WholeRunSteps(TrainingResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        long budget = _trainer.BudgetOf(_config);
        bool atEnd = result.Stop == StopReason.Completed ? result.Steps >= budget : result.Stop == StopReason.MaxSteps && result.Steps == budget;
        return atEnd ? budget : null;
    }

    /// <summary>Removes the monitor's and the tracer's hooks.</summary>
    public void Dispose()
    {
        Monitor.Dispose();
        Tracer.Dispose();
    }

    /// <summary>
    /// The largest <see cref="Trials.PredictedUpdateRatio"/> over the layers, from the first step's gradients (before its update). A
    /// resumed run took its first step before the resumption, so every checkpoint keeps the ratio (as a double's bits): without it the
    /// resumed run's verdict named another update ratio, score and learning-rate remedy than the same run uninterrupted.
    /// </summary>
    private sealed class FirstStepPredictor(TrainingConfig config, IReadOnlyList<MonitoredLayer> layers) : ITrainingObserver
    {
        public double Ratio { get; private set; } = double.NaN;

        public void OnBackward(StepInfo step)
        {
            if (step.Step != 0) return;
            Ratio = layers.Select(l => Trials.PredictedUpdateRatio(config, l.Weight)).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
        }

        public string? CheckpointState() => BitConverter.DoubleToInt64Bits(Ratio).ToString("x16", CultureInfo.InvariantCulture);

        public void RestoreCheckpointState(string state) =>
            Ratio = long.TryParse(state, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long bits) && state.Length == 16
                ? BitConverter.Int64BitsToDouble(bits)
                : throw new InvalidDataException($"checkpoint: the first step's predicted update ratio '{state}' is not a double's bits.");
    }
}

/// <summary>The outcome of a monitored trial run.</summary>
/// <param name="Config">The config that ran.</param>
/// <param name="Diagnosis">The verdict.</param>
/// <param name="Samples">Monitor samples.</param>
/// <param name="Result">The training result.</param>
/// <param name="Steps">Optimiser steps taken.</param>
public sealed record TrialResult(TrainingConfig Config, Diagnosis Diagnosis, IReadOnlyList<MonitorSample> Samples, TrainingResult Result, long Steps)
{
    /// <summary>Steps of the first look whose verdict this trial replaced (<see cref="Trials.Run"/>'s second look), else 0.</summary>
    public long EarlierSteps { get; init; }

    /// <summary>The configured run's steps when the trial covered all of them (<see cref="RunWatch.WholeRunSteps"/>), else null.</summary>
    public long? WholeRunSteps { get; init; }

    /// <summary>Every step trained to reach this verdict: the trial's and an earlier look's (what a repair's cost counts).</summary>
    public long StepsSpent => Steps + EarlierSteps;

    /// <summary>Mean loss of the last samples (lower is better), NaN when none is finite.</summary>
    public double FinalLoss => Samples.Where(s => double.IsFinite(s.Loss)).TakeLast(5).Select(s => s.Loss).DefaultIfEmpty(double.NaN).Average();

    /// <summary>Test accuracy at the end of the trial.</summary>
    public double TestAccuracy => Result.FinalTestAccuracy;
}

/// <summary>Preflight checks and short monitored trials, the building blocks of diagnose and repair.</summary>
public static class Trials
{
    /// <summary>
    /// One forward and backward pass on one batch (no optimiser step) with the monitor: forecasts
    /// vanishing or exploding gradients from the per-layer gains and saturation before any training,
    /// and divergence from the update ratio that the optimiser's first steps will have
    /// (<see cref="PredictedUpdateRatio"/>, recorded as each layer's <see cref="LayerStats.UpdateRatio"/>).
    /// </summary>
    public static (Diagnosis Diagnosis, MonitorSample Sample) Preflight(TrainingConfig config, DataBundle? data = null, DiagnosisSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var trainer = new Trainer(config with { Epochs = 1 }, data);
        using var monitor = new GradientMonitor(trainer.Model, every: 1);
        using var tracer = new NonFiniteTracer(trainer.Model);
        var batch = trainer.Loader.Epoch(0).First();
        monitor.BeginSample(0);
        var loss = trainer.Loss(trainer.Model.Forward(batch.Inputs), batch);
        Autograd.BackwardEngine.Backward(loss);
        monitor.RecordGradients(loss.Item());
        monitor.EndSample();
        var sample = monitor.Last!;
        foreach (var layer in monitor.Layers)
            sample.Layers[layer.Index - 1].UpdateRatio = PredictedUpdateRatio(config, layer.Weight);
        var diagnosis = Diagnoser.Diagnose([sample], config, trainer.Model, settings, tracer.Origin, preflight: true, chanceLoss: ChanceLoss(trainer.Data.Train, config.LabelSmoothing),
            zeroOutputLoss: ZeroOutputLoss(trainer.Data.Train), lossFloor: LossFloor(trainer.Data.Train, config.LabelSmoothing));
        return (diagnosis, sample);
    }

    /// <summary>
    /// The loss of a model that knows nothing about <paramref name="data"/>'s inputs: the best constant
    /// prediction's. For classification that is the entropy of the class frequencies, −Σ p_k ln p_k (the
    /// cross-entropy of predicting the frequencies; ln K when the K classes are balanced): a character
    /// model that learned only how often each character occurs sits there, well below ln K. For
    /// regression, the targets' variance (the mean squared error of predicting their mean).
    /// </summary>
    /// <remarks>
    /// Under label smoothing ε = <paramref name="labelSmoothing"/> the best constant prediction of the smoothed targets
    /// q = (1 − ε)·one-hot + ε/K is their mean p = (1 − ε)·f + ε/K (f the class frequencies), and its loss is the entropy of p.
    /// Regression ignores ε.
    /// </remarks>
    public static double ChanceLoss(Data.Dataset data, double labelSmoothing = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.IsClassification) return LabelEntropy(data.ClassCounts(), labelSmoothing);
        var y = data.Targets!.ToDoubleArray();
        int perExample = y.Length / Math.Max(1, data.Count);
        double variance = 0;
        for (int j = 0; j < perExample; j++)
        {
            double mean = 0;
            for (int i = j; i < y.Length; i += perExample) mean += y[i];
            mean /= data.Count;
            for (int i = j; i < y.Length; i += perExample) variance += (y[i] - mean) * (y[i] - mean);
        }
        return variance / y.Length;
    }

    /// <summary>
    /// The training loss that a linear model of the run's inputs reaches in <paramref name="steps"/> steps: one linear map from the
    /// flattened example to the model's outputs, trained on <paramref name="data"/> with the run's batch size, seed, loss and label
    /// smoothing by Adam at 1e-2 (a convex problem: one setting serves every task), constant rate, no clipping; the mean loss of its
    /// last 10 steps. The yardstick of the stall rule <see cref="DiagnosisSettings.LinearProgress"/>: how far the run has come next to
    /// what the inputs give away to the simplest model. NaN for a model whose examples are not fixed-size vectors, images or arrays
    /// (token ids, recurrent and attention layers: one linear map of a sequence is no yardstick for them), or whose output per example
    /// is not one vector, for more than <paramref name="maxWeights"/> weights (<see cref="DiagnosisSettings.LinearBaselineMaxWeights"/>),
    /// and for <paramref name="steps"/> &lt; 1.
    /// </summary>
    public static double LinearBaseline(TrainingConfig config, DataBundle data, int steps, long maxWeights = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(data);
        if (steps < 1) return double.NaN;
        var description = config.Description();
        var shapes = description.Shapes();
        if (description.Input.Count == 0 || shapes.Count == 0 || shapes[^1].Output is not [int outputs]
            || shapes.Any(b => b.Block is Nn.Network.RecurrentBlock or Nn.Network.EmbeddingBlock or Nn.Network.PositionBlock or Nn.Network.TransformerLayerBlock)
            || description.Input.Aggregate(1L, (a, n) => a * n) * outputs > maxWeights)
            return double.NaN;
        string input = string.Join('x', description.Input);
        string model = description.Input.Count == 1
            ? string.Create(CultureInfo.InvariantCulture, $"net {input} seq[linear(out={outputs})]")
            : string.Create(CultureInfo.InvariantCulture, $"net {input} seq[flatten linear(out={outputs})]");
        var linear = new TrainingConfig
        {
            Model = model, Data = config.Data, Seed = config.Seed, BatchSize = config.BatchSize, LabelSmoothing = config.LabelSmoothing,
            Optimizer = OptimizerKind.Adam, LearningRate = 1e-2, Epochs = steps, MaxSteps = steps, CheckpointEvery = null, Threads = config.Threads,
        };
        var trainer = new Trainer(linear, data);
        var losses = new LastLosses(10);
        trainer.AddObserver(losses);
        trainer.Run();
        return losses.Mean;
    }

    /// <summary>Keeps the mean of the last few steps' losses.</summary>
    private sealed class LastLosses(int count) : ITrainingObserver
    {
        private readonly Queue<double> _last = new(count);

        public double Mean => _last.Count == 0 ? double.NaN : _last.Average();

        public void OnStepEnd(StepInfo step)
        {
            if (_last.Count == count) _last.Dequeue();
            _last.Enqueue(step.Loss);
        }
    }

    /// <summary>
    /// The lowest loss a run can reach: 0, except under label smoothing ε = <paramref name="labelSmoothing"/>, whose smoothed targets
    /// q = (1 − ε + ε/K on the label, ε/K elsewhere) have a cross-entropy of at least their own entropy H(q), reached by predicting q.
    /// At ε = 0.8 on two classes that is 0.673 against a chance level of ln 2 = 0.693, so a converged run sits at 97 % of chance.
    /// </summary>
    public static double LossFloor(Data.Dataset data, double labelSmoothing)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!data.IsClassification || labelSmoothing <= 0) return 0;
        double k = data.ClassCount, on = 1 - labelSmoothing + labelSmoothing / k, off = labelSmoothing / k;
        return -(on * Math.Log(on)) - (k > 1 ? (k - 1) * off * Math.Log(off) : 0);
    }

    /// <summary>
    /// The loss of a model whose outputs are all zero: ln K for K classes (zero logits predict them uniformly), the targets' mean
    /// square for regression. A loss above it means outputs that are worse than none, so large and wrong; a loss above the chance
    /// level alone does not (a regression net that starts near zero on targets of mean 1 and spread 0.4 is at 7 × the variance
    /// before its first step).
    /// </summary>
    public static double ZeroOutputLoss(Data.Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.IsClassification) return Math.Log(Math.Max(1, data.ClassCounts().Length));
        var y = data.Targets!.ToDoubleArray();
        double sum = 0;
        foreach (double v in y) sum += v * v;
        return y.Length == 0 ? double.NaN : sum / y.Length;
    }

    /// <summary>
    /// The entropy in nats of the class frequencies f of <paramref name="counts"/> (0 for an empty or one-class set), or under label
    /// smoothing ε = <paramref name="labelSmoothing"/> of the smoothed targets' mean (1 − ε)·f + ε/K.
    /// </summary>
    public static double LabelEntropy(ReadOnlySpan<int> counts, double labelSmoothing = 0)
    {
        long total = 0;
        foreach (int c in counts) total += c;
        double entropy = 0;
        foreach (int c in counts)
        {
            double p = (1 - labelSmoothing) * c / Math.Max(1, total) + labelSmoothing / counts.Length;
            if (p > 0) entropy -= p * Math.Log(p);
        }
        return entropy;
    }

    /// <summary>
    /// ||ΔW|| / ||W|| that the configured optimiser's early steps give <paramref name="weight"/> with its
    /// current gradient: SGD lr·||g||/||W||, times 1/(1−μ) with momentum μ (the step a persistent
    /// gradient reaches); Adam, AdamW and Adagrad move every element by about lr in their first
    /// steps (m̂/√v̂ = ±1), so lr·√n/||W||; RMSprop without bias correction divides by
    /// √((1−α)g²) = 0.1|g| at α = 0.99 in its first step, so 10·lr·√n/||W|| (times 1/(1−μ) with momentum).
    /// </summary>
    public static double PredictedUpdateRatio(TrainingConfig config, Parameter weight)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weight);
        var w = weight.Data.ToDoubleArray();
        double wNorm = Math.Sqrt(w.Sum(v => v * v));
        if (wNorm == 0) return double.NaN;
        double momentum = 1 / (1 - config.Momentum);
        double perElement = Math.Sqrt(w.Length) / wNorm;
        switch (config.Optimizer)
        {
            case OptimizerKind.Sgd:
                if (weight.Grad is not { } g) return double.NaN;
                var gd = g.ToDoubleArray();
                return config.LearningRate * Math.Sqrt(gd.Sum(v => v * v)) / wNorm * momentum;
            case OptimizerKind.RmsProp:
                return config.LearningRate / Math.Sqrt(1 - 0.99) * perElement * momentum;
            default:
                return config.LearningRate * perElement;
        }
    }

    /// <summary>
    /// Trains <paramref name="config"/> for <paramref name="steps"/> steps (or its own budget) with the
    /// monitor sampling every <paramref name="every"/> steps (more often in a trial too short to give the loss-trend rules
    /// their samples, <see cref="SampleEvery"/>, unless <paramref name="exactEvery"/>: a user's explicit choice), and diagnoses the run. With
    /// <paramref name="runDirectory"/>, the run's config, metrics (epoch and step lines) and
    /// <c>diagnosis.json</c> are written there.
    /// </summary>
    /// <remarks>
    /// A second look: a recurrent model's trial that ends on a plateau, every problem found a vanishing gradient (through
    /// time), a stalled loss or an oscillating one, is run again for twice the steps (at most the run's budget) and that
    /// trial is the verdict. Gated cells trained by adaptive optimisers on a long-range task sit at chance for hundreds of
    /// steps before they leave it, with the gradient through time still small: on the generated catalogue's calibration
    /// half, 5 of its 7 healthy adding-problem runs were flagged after 300 steps; after 600, 3 were, and every broken one
    /// was still detected (after 900, 2, but two broken runs lost their verdict's family). docs/diagnosis.md.
    /// </remarks>
    public static TrialResult Run(TrainingConfig config, int? steps = null, int every = 10, DataBundle? data = null,
        string? runDirectory = null, DiagnosisSettings? settings = null, CancellationToken cancellation = default,
        ITrainingObserver? observer = null, bool exactEvery = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        var first = RunOnce(config, steps, every, exactEvery, data, runDirectory, settings, cancellation, observer, out int budget, out bool recurrent);
        if (steps is { } s && SecondLook(first, recurrent, s, budget) is int longer)
            return RunOnce(config, longer, every, exactEvery, data, runDirectory, settings, cancellation, observer, out _, out _) with { EarlierSteps = first.Steps };
        return first;
    }

    /// <summary>
    /// Steps between the monitor samples of a trial of <paramref name="length"/> steps: <paramref name="every"/>, or fewer where
    /// that would leave the loss-trend rules (stalled, oscillating) fewer than their <see cref="DiagnosisSettings.TrendSamples"/>
    /// samples. A trial that a small data set's budget cuts short (10 epochs of 4 batches: 40 steps) was otherwise judged on 4
    /// samples, too few for those rules: a run still at the chance level at the end of its whole budget was called healthy.
    /// </summary>
    public static int SampleEvery(int every, int length, DiagnosisSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return length >= (long)every * settings.TrendSamples ? every : Math.Max(1, length / settings.TrendSamples);
    }

    /// <summary>
    /// The steps of the second look at <paramref name="trial"/> (see <see cref="Run"/>), or null: a recurrent model, a verdict
    /// made only of a vanishing gradient, a stalled loss and an oscillating loss, a trial that ran all its steps, and a budget
    /// with room for more.
    /// </summary>
    internal static int? SecondLook(TrialResult trial, bool recurrent, int steps, int budget)
    {
        if (!recurrent || trial.Diagnosis.Healthy || trial.Steps < steps || budget <= steps) return null;
        foreach (var p in trial.Diagnosis.Problems)
            if (p.Kind is not (ProblemKind.VanishingGradient or ProblemKind.StalledLoss or ProblemKind.OscillatingLoss)
                || p.Causes.Any(c => c.Name == Diagnoser.SmallStepsCause)) return null;
        return (int)Math.Min(2L * steps, budget);
    }

    private static TrialResult RunOnce(TrainingConfig config, int? steps, int every, bool exactEvery, DataBundle? data, string? runDirectory,
        DiagnosisSettings? settings, CancellationToken cancellation, ITrainingObserver? observer, out int budget, out bool recurrent)
    {
        // the trial is the run's first steps, so it ends at the run's own step limit when that comes first (`diagnose --max-steps 20`
        // trained 30 steps, and said the run ended at 20)
        var trialConfig = steps is { } s ? config with { MaxSteps = config.MaxSteps is { } m ? Math.Min(s, m) : s, CheckpointEvery = null } : config;
        // the trial is the first steps of the configured run: its learning-rate schedule spans the run's budget, not the trial
        var trainer = new Trainer(trialConfig, data, scheduleOf: config);
        budget = (int)Math.Min(int.MaxValue, trainer.BudgetOf(config)); // the configured run's (StepBudget is the trial's)
        recurrent = trainer.Model.NamedModules().Any(c => c.Module is RecurrentLayer);
        using var watch = new RunWatch(trainer, config, every, exactEvery, settings);
        if (observer is not null) trainer.AddObserver(observer);
        RunDirectory? run = null;
        if (runDirectory is not null)
        {
            // a run already there is replaced, its own files only: nothing else in the directory is deleted (`diagnose --out .` deleted
            // the working directory and everything in it)
            run = new RunDirectory(runDirectory);
            run.Clear();
            watch.WriteTo(run);
        }
        var result = trainer.Run(runDirectory, cancellation: cancellation);
        var diagnosis = watch.Diagnose(result, settings);
        if (run is not null) AtomicFile.WriteAllText(Path.Combine(run.Path, "diagnosis.json"), DiagnosisJson.Serialize(diagnosis));
        return new TrialResult(config, diagnosis, watch.Monitor.Samples.ToArray(), result, result.Steps) { WholeRunSteps = watch.WholeRunSteps(result) };
    }
}

/// <summary>
/// A <see cref="TrialResult"/> as JSON, to send it from the process that ran it to the others (repair and evaluate under
/// mpirun): its config, verdict, training result and steps, and of its monitor samples the step, epoch and losses only (what
/// <see cref="TrialResult.FinalLoss"/>, the repair's choices and every report read; not the per-layer statistics).
/// </summary>
public static class TrialWire
{
    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The wire form (public for the serialiser; build it with <see cref="From"/>).</summary>
    public sealed record Form(string Config, Diagnosis Diagnosis, TrainingResult Result, long Steps, SampleLoss[] Samples, long EarlierSteps = 0,
        long? WholeRunSteps = null);

    /// <summary>A monitor sample's step, epoch, loss and mean loss.</summary>
    public sealed record SampleLoss(long Step, int Epoch, double Loss, double MeanLoss);

    /// <summary>The wire form of <paramref name="trial"/>.</summary>
    public static Form From(TrialResult trial)
    {
        ArgumentNullException.ThrowIfNull(trial);
        return new Form(trial.Config.ToJson(), trial.Diagnosis, trial.Result, trial.Steps,
            [.. trial.Samples.Select(s => new SampleLoss(s.Step, s.Epoch, s.Loss, s.MeanLoss))], trial.EarlierSteps, trial.WholeRunSteps);
    }

    /// <summary>The trial a wire form describes (its samples without per-layer statistics).</summary>
    public static TrialResult To(Form form)
    {
        ArgumentNullException.ThrowIfNull(form);
        return new TrialResult(TrainingConfig.FromJson(form.Config, "trial"), form.Diagnosis,
            [.. form.Samples.Select(s => new MonitorSample { Step = s.Step, Epoch = s.Epoch, Loss = s.Loss, MeanLoss = s.MeanLoss, Layers = [] })],
            form.Result, form.Steps) { EarlierSteps = form.EarlierSteps, WholeRunSteps = form.WholeRunSteps };
    }

    /// <summary>The trial as one JSON text.</summary>
    public static string Serialize(TrialResult trial) => JsonSerializer.Serialize(From(trial), Options);

    /// <summary>Reads a trial that <see cref="Serialize"/> wrote.</summary>
    /// <exception cref="FormatException">when the text is not a trial.</exception>
    public static TrialResult Parse(string json)
    {
        try
        {
            return To(JsonSerializer.Deserialize<Form>(json, Options) ?? throw new FormatException("trial: null."));
        }
        catch (JsonException e)
        {
            throw new FormatException($"trial: {e.Message}");
        }
    }
}

/// <summary>The JSON form of a <see cref="Diagnosis"/> (<c>diagnosis.json</c>; schema in docs/diagnosis.md).</summary>
public static class DiagnosisJson
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // "2.2E+004", not "2.2E\u002B004"
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary><c>{"healthy":…,"gradient_ratio":…,"samples":…,"trend_samples_needed":… (null when the loss trend was judged),"non_finite_origin":…,"problems":[{"kind":"vanishing-gradient","severity":…,"layers":[…],"steps":[…],"summary":"…","evidence":{…},"causes":[{"name","score","facts"}],"remedies":[{"id","description","scope"}]}]}</c></summary>
    public static string Serialize(Diagnosis d)
    {
        ArgumentNullException.ThrowIfNull(d);
        return JsonSerializer.Serialize(new
        {
            healthy = d.Healthy,
            gradient_ratio = d.GradientRatio,
            samples = d.Samples,
            trend_samples_needed = d.TrendNeedsSamples,
            non_finite_origin = d.NonFiniteOrigin,
            problems = d.Problems,
            precision = d.Precision,
        }, Options);
    }
}
