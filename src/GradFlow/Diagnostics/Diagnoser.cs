using System.Globalization;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// Turns monitor samples into a <see cref="Diagnosis"/>: the detectors (windowed rules with the
/// thresholds of <see cref="DiagnosisSettings"/>), then for each problem its causes, ranked from
/// facts about the model (activation × depth, weight scale against fan-in, normalisation, learning
/// rate against gradient scale, clipping), and its remedies, ranked, smallest change first.
/// Verdicts never depend on an accuracy target. docs/diagnosis.md states every rule.
/// </summary>
public static partial class Diagnoser
{
    /// <summary>
    /// Diagnoses <paramref name="samples"/> of a run of <paramref name="config"/> (whose model is <paramref name="model"/>, when available for
    /// weight facts). <paramref name="startWeightScales"/>: the weight scales the run started from (<see cref="WeightScales"/> of the
    /// model before its first step), which the init-scale cause reads instead of the model's present weights; without them it reads the
    /// present ones (a preflight's model has taken no step). <paramref name="zeroOutputLoss"/>: the loss of all-zero outputs
    /// (<see cref="Trials.ZeroOutputLoss"/>), which a loss must pass to be an exploding forward signal; NaN: the chance level alone decides.
    /// <paramref name="lossFloor"/>: the lowest loss the run can reach (<see cref="Trials.LossFloor"/>, above 0 under label smoothing); the
    /// rules read a loss by where it lies between that floor and the chance level (<see cref="ModelFacts.OverChance"/>).
    /// <paramref name="linearBaseline"/>: the loss a linear model of the same inputs reaches in that many steps (<see cref="Trials.LinearBaseline"/>),
    /// the stall rule's yardstick; NaN: none.
    /// </summary>
    public static Diagnosis Diagnose(IReadOnlyList<MonitorSample> samples, TrainingConfig config, Module? model = null,
        DiagnosisSettings? settings = null, string? nonFiniteOrigin = null, double? nonFiniteLoss = null, IReadOnlyList<double>? recentLosses = null,
        bool preflight = false, double predictedUpdateRatio = double.NaN, double chanceLoss = double.NaN, long? wholeRunSteps = null,
        IReadOnlyList<double>? startWeightScales = null, double zeroOutputLoss = double.NaN, double lossFloor = 0,
        (double Loss, int Steps) linearBaseline = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(config);
        settings ??= new DiagnosisSettings();
        var facts = new ModelFacts(config, model, samples, settings)
        {
            IsPreflight = preflight, PredictedUpdateRatio = predictedUpdateRatio, ChanceLoss = chanceLoss, WholeRunSteps = wholeRunSteps,
            StartWeightScales = startWeightScales, ZeroOutputLoss = zeroOutputLoss, LossFloor = lossFloor,
            LinearBaselineLoss = linearBaseline.Steps > 0 ? linearBaseline.Loss : double.NaN, LinearBaselineSteps = linearBaseline.Steps,
        };
        var problems = new List<Problem>();
        var window = samples.Where(s => s.Layers.Length > 0).TakeLast(settings.Window).ToArray();
        // recurrent models: the ratio that matters is through time (first step over last step of the top recurrent layer)
        bool recurrent = facts.Recurrent is not null;
        // (only finite samples: a blown-up step's signal says nothing about how it decays)
        if (recurrent) window = window.Where(s => TopTimeSignal(s) is not null && s.NonFinite == 0 && double.IsFinite(s.GlobalGradientNorm)).ToArray();
        double ratio = recurrent ? Median(window.Select(TimeRatio)) : Median(window.Select(s => s.GradientRatio));
        // saturated or dead units, and a swinging loss, are a problem when they stop the learning: not while the loss is far
        // below chance (the swings of a small loss are minibatch noise on a task being learnt)
        bool farBelowChance = facts.OverChance(Median(window.Select(TrendLoss))) < settings.HarmlessBelowChance;

        if (nonFiniteLoss is not null || samples.Any(s => s.NonFinite > 0 || !double.IsFinite(s.Loss) && !double.IsNaN(s.Loss)))
            problems.Add(NonFinite(samples, facts, nonFiniteOrigin, nonFiniteLoss));
        if (window.Length > 0 && recurrent)
        {
            if (ratio < settings.VanishingRatio) problems.Add(VanishingThroughTime(window, facts, ratio, settings));
            var exploding = Exploding(window, facts, ratio, settings, nonFiniteLoss is null ? 1 : LossGrowth(recentLosses),
                preflight ? window[^1].Layers.Select(l => l.UpdateRatio).Where(double.IsFinite).DefaultIfEmpty(0).Max() : 0);
            if (exploding is not null) problems.Add(exploding);
        }
        else if (window.Length > 0)
        {
            if (ratio < settings.VanishingRatio) problems.Add(Vanishing(window, facts, ratio, settings));
            var exploding = Exploding(window, facts, ratio, settings, nonFiniteLoss is null ? 1 : LossGrowth(recentLosses),
                preflight ? window[^1].Layers.Select(l => l.UpdateRatio).Where(double.IsFinite).DefaultIfEmpty(0).Max() : 0);
            if (exploding is not null) problems.Add(exploding);
            var saturation = farBelowChance ? null : PerLayer(window, facts, ProblemKind.Saturation, l => l.Saturation, settings.SaturatedFraction, "saturated units");
            if (saturation is not null) problems.Add(saturation);
            var dead = farBelowChance ? null : PerLayer(window, facts, ProblemKind.DyingRelu, l => l.DeadUnits, settings.DeadFraction, "dead units");
            if (dead is not null) problems.Add(dead);
        }
        if (window.Length > 0 && AboveChance(window, facts, settings) is { } above)
        {
            // the same failure seen from the loss: merged into an exploding verdict already found, else one of its own
            int i = problems.FindIndex(p => p.Kind == ProblemKind.ExplodingGradient);
            if (i < 0) problems.Add(above);
            else problems[i] = problems[i] with { Evidence = new Dictionary<string, double>(problems[i].Evidence.Concat(above.Evidence.Where(e => !problems[i].Evidence.ContainsKey(e.Key)))) };
        }
        var trend = samples.Where(s => double.IsFinite(TrendLoss(s))).ToArray();
        if (trend.Length >= settings.TrendSamples)
        {
            var oscillating = farBelowChance ? null : Oscillating(trend, facts, settings);
            if (oscillating is not null) problems.Add(oscillating);
            else
            {
                var stalled = Stalled(trend, facts, settings, problems);
                if (stalled is not null) problems.Add(stalled);
                if (stalled is not null && BouncingAtChance(trend, facts, settings) is { } bouncing) problems.Add(bouncing);
            }
        }
        if (facts.Transformer is not null) TransformerRules(problems, samples, facts, settings);
        return new Diagnosis(problems.OrderByDescending(p => p.Severity).Select(p => WithConfidence(WithoutNoOps(p, config), settings)).ToArray(), samples.Count, ratio, nonFiniteOrigin)
        {
            Precision = PrecisionNotes(samples.Where(s => s.Layers.Length > 0).TakeLast(settings.Window).ToArray(), settings),
            // (a preflight is a forecast from one step, which no trend rule reads)
            TrendNeedsSamples = !preflight && trend.Length < settings.TrendSamples ? settings.TrendSamples : null,
        };
    }

    /// <summary>
    /// <paramref name="p"/> without the remedies that would train the same thing (<see cref="Remedies.Changes(string, TrainingConfig)"/>):
    /// a fallback such as re-initialising with He, offered for every non-finite run, says nothing to a run that starts with He. A
    /// remedy that does not apply to the config (its rewrite throws) stays, as before.
    /// </summary>
    private static Problem WithoutNoOps(Problem p, TrainingConfig config)
    {
        bool Keep(RemedySuggestion r) => Remedies.Changes(r.Id, config) != false;
        return p.Remedies.All(Keep) ? p : p with { Remedies = p.Remedies.Where(Keep).ToArray() };
    }

    /// <summary>
    /// Per layer, what fp16 gradients and bf16 weights would lose (medians over the window), where it passes the settings'
    /// fractions. The fp16 advice names the static loss scale that lifts the gradients most while the largest one seen stays
    /// below 2¹⁵ (fp16's largest finite number is 65 504): the largest power of two S with S·max|dL/dW| ≤ 2¹⁵.
    /// </summary>
    private static PrecisionNote[] PrecisionNotes(MonitorSample[] window, DiagnosisSettings s)
    {
        if (window.Length == 0) return [];
        double maxGrad = window.SelectMany(w => w.Layers).Select(l => l.ParameterGradientMaxAbs).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
        double scale = maxGrad > 0 ? Math.Pow(2, Math.Floor(Math.Log2(32768 / maxGrad))) : double.NaN;
        var notes = new List<PrecisionNote>();
        var inv = CultureInfo.InvariantCulture;
        for (int i = 0; i < window[0].Layers.Length; i++)
        {
            int layer = window[0].Layers[i].LayerIndex;
            double lost = Median(window.Select(w => w.Layers[i].GradientBelowFp16Subnormal).Where(double.IsFinite));
            if (lost > s.Fp16LossFraction)
                notes.Add(new PrecisionNote(layer, "fp16-gradient-underflow", lost,
                    string.Create(inv, $"layer {layer}: {lost:P1} of the weight gradient's values are below fp16's smallest subnormal 2^-24; an fp16 run would lose them"),
                    scale > 1
                        ? string.Create(inv, $"scale the loss by {scale:F0} (2^{Math.Log2(scale):F0}, the largest power of two that keeps the largest gradient seen, {maxGrad:G3}, below 2^15) and unscale the gradients before the update, or keep such layers in fp32")
                        : "keep such layers in fp32: their gradients span more than fp16's range"));
            double swallowed = Median(window.Select(w => w.Layers[i].UpdatesSwallowedByBf16).Where(double.IsFinite));
            if (swallowed > s.Bf16SwallowedFraction)
                notes.Add(new PrecisionNote(layer, "bf16-swallowed-updates", swallowed,
                    string.Create(inv, $"layer {layer}: {swallowed:P0} of the weight updates are smaller than half a bf16 ulp of their weight; a bf16 weight would not move"),
                    "keep fp32 master weights (update in fp32, round to bf16 for the forward pass)"));
        }
        return notes.ToArray();
    }

    private static Problem WithConfidence(Problem p, DiagnosisSettings s) =>
        s.Calibration.TryGetValue(p.Kind, out var c)
            ? p with
            {
                Confidence = (c.Broken + 1.0) / (c.Runs + 2.0),
                ConfidenceBasis = string.Create(CultureInfo.InvariantCulture, $"{c.Broken} of {c.Runs} calibration runs with this verdict ended broken; ({c.Broken} + 1) / ({c.Runs} + 2), so that few runs do not claim certainty"),
            }
            : p;

    // ---------------------------------------------------------------- detectors

    /// <summary>
    /// A loss far above the chance level (the entropy of the class frequencies, the targets' variance for regression):
    /// a model that knew nothing would do better, so its outputs are large and confidently wrong. That
    /// is the forward signal grown out of scale — through a residual stack whose branches add their full
    /// output, weights too large, or steps too large — whether or not the backpropagated signal's ratio
    /// across layers shows it (a residual stack keeps that ratio near 1 while every layer's signal grows).
    /// </summary>
    private static Problem? AboveChance(MonitorSample[] window, ModelFacts f, DiagnosisSettings s)
    {
        double loss = Median(window.Select(TrendLoss)), over = f.OverChance(loss);
        // large outputs: far above chance (NaN, so no verdict, without a chance level above the floor), and worse than outputs of
        // zero (a regression net still near zero on targets far from zero is many times the targets' variance without any large
        // output: slow, not exploding)
        if (!(over > s.FarAboveChance) || loss <= f.ZeroOutputLoss) return null;
        var last = window[^1];
        // forward growth: the activation spread at the last hidden layer over that at the first
        var stds = last.Layers.Take(Math.Max(1, last.Layers.Length - 1)).Select(l => l.ActivationStd).ToArray();
        double growth = stds.Length >= 2 && stds[0] > 0 ? stds[^1] / stds[0] : double.NaN;
        var causes = new List<Cause>();
        f.AddFullResidual(causes);
        f.AddInitScale(causes, wantSmall: false);
        f.AddLearningRate(causes);
        f.AddNoNormalisation(causes);
        if (double.IsFinite(growth) && growth > 10)
            causes.Add(new Cause("forward signal grows with depth", 1 + Math.Log10(growth),
                string.Create(CultureInfo.InvariantCulture, $"the activations' standard deviation grows {growth:G3}× from hidden layer 1 to hidden layer {stds.Length}")));
        var remedies = new RankedRemedies(causes);
        if (f.ZeroStartResidualRemedy() is { } rezero) remedies.Add("full-gain residual", rezero);
        if (causes.Any(c => c.Name.StartsWith("initial weight scale", StringComparison.Ordinal)))
            remedies.Add("initial weight scale", f.Remedy("init", f.MatchedInit, 1, f.Hidden.Count, $"re-initialise with {f.MatchedInit} (variance matched to fan-in and activation gain)"));
        // a lower learning rate only when the steps are large: with small ones it contradicted a stall's "raise it" beside it
        // (an LSTM at SGD 1e-3 was offered lr:0.1 and lr:3 at once)
        if (causes.Any(c => c.Name.StartsWith("learning rate", StringComparison.Ordinal))) remedies.Add("learning rate", f.LearningRateRemedy());
        if (!f.HasNorm && f.Recurrent is null && f.Hidden.Count > 0) remedies.Add("no normalisation", f.Remedy("norm", "batch", 1, f.Hidden.Count, "insert BatchNorm before every hidden activation"));
        if (f.Config.ClipNorm is null) remedies.Add(null, new RemedySuggestion("clip:1", "clip the global gradient norm at 1", []));
        return new Problem
        {
            Kind = ProblemKind.ExplodingGradient,
            Severity = Math.Log10(over / s.FarAboveChance) + 0.2,
            Layers = last.Layers.Select(l => l.LayerIndex).ToArray(),
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"exploding forward signal: the training loss {loss:G3} is {over:G3}× the chance level {f.ChanceLoss:G3}{f.FloorNote} (threshold {s.FarAboveChance:G2}×): the outputs are large and confidently wrong{(double.IsFinite(growth) && growth > 10 ? string.Create(CultureInfo.InvariantCulture, $"; the activations grow {growth:G3}× through the hidden layers") : "")}"),
            Evidence = new Dictionary<string, double> { ["loss_over_chance"] = over, ["chance_loss"] = f.ChanceLoss, ["forward_growth"] = growth },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    private static Problem Vanishing(MonitorSample[] window, ModelFacts f, double ratio, DiagnosisSettings s)
    {
        var last = window[^1];
        double top = last.Layers[^1].BackpropagatedSignalRms;
        // layers whose signal is below the threshold relative to the output layer
        var layers = last.Layers.Where(l => l.BackpropagatedSignalRms / top < s.VanishingRatio).Select(l => l.LayerIndex).ToArray();
        int boundary = layers.Length == 0 ? 1 : layers.Max();
        var causes = new List<Cause>();
        f.AddSaturatingDepth(causes);
        f.AddInitScale(causes, wantSmall: true, backward: true);
        f.AddNoNormalisation(causes);
        f.AddLearningRate(causes); // steps too large kill ReLU units, whose zero gradient then looks like a vanishing signal
        f.AddPlainDepth(causes);
        var remedies = new RankedRemedies(causes);
        if (causes.Any(c => c.Name.StartsWith("learning rate", StringComparison.Ordinal))) remedies.Add("learning rate", f.LearningRateRemedy());
        int hiddenLast = Math.Min(boundary + 1, f.Hidden.Count);
        if (f.SaturatingLayers.Length > 0)
            remedies.Add("saturating", f.Remedy("activation", "relu", 1, hiddenLast, $"switch hidden {Layers(1, hiddenLast)} to ReLU with He-normal initialisation (ReLU's derivative is 1 on its active side)"));
        if (causes.Any(c => c.Name.StartsWith("initial weight scale", StringComparison.Ordinal)))
            remedies.Add("initial weight scale", f.Remedy("init", f.MatchedInit, 1, f.Hidden.Count, $"re-initialise with {f.MatchedInit} (variance matched to fan-in and activation gain)"));
        if (!f.HasNorm) remedies.Add("no normalisation", f.Remedy("norm", "batch", 1, f.Hidden.Count, "insert BatchNorm before every hidden activation"));
        // shortcuts around the whole deep plain stack, else around the longest run of equal widths
        if (f.ShortcutRemedy() is { } shortcuts) remedies.Add("deep plain stack", shortcuts);
        else if (f.ResidualRange is { } rr) remedies.Add("no normalisation", f.Remedy("residual", "zero", rr.First, rr.Last, $"add residual connections with zero-initialised branches on {Layers(rr.First, rr.Last)}"), -0.1);
        if (!f.HasConv) remedies.Add(null, f.Remedy("init", "lsuv", 1, f.Hidden.Count, "re-initialise with LSUV (unit output variance layer by layer)"));
        return new Problem
        {
            Kind = ProblemKind.VanishingGradient,
            Severity = Math.Log10(s.VanishingRatio / ratio),
            Layers = layers,
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"vanishing gradient: the backpropagated signal at layer 1 is {ratio:E1} of that at layer {last.Layers.Length} (threshold {s.VanishingRatio:E0}); it falls below the threshold at layer {boundary} and every layer below it"),
            Evidence = new Dictionary<string, double>
            {
                ["gradient_ratio"] = ratio,
                ["signal_rms_layer_1"] = last.Layers[0].BackpropagatedSignalRms,
                ["signal_rms_layer_L"] = top,
                ["boundary_layer"] = boundary,
                ["min_gain"] = last.Layers.Take(last.Layers.Length - 1).Select(l => l.Gain).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Min(),
            },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    /// <summary>The top recurrent layer's signal through time (the layer the read-out reads), or null.</summary>
    internal static double[]? TopTimeSignal(MonitorSample s) =>
        s.TimeSignal is { Length: > 0 } t && t[^1].Length >= 2 && double.IsFinite(t[^1][^1]) && t[^1][^1] > 0 ? t[^1] : null;

    /// <summary>The signal at the first time step over that at the last, top recurrent layer (NaN without one).</summary>
    public static double TimeRatio(MonitorSample s) => TopTimeSignal(s) is { } t ? t[0] / t[^1] : double.NaN;

    /// <summary>The smallest lag k (steps back from the last) at which the signal is below <paramref name="threshold"/> of the last step's, or −1.</summary>
    public static int LagBelow(double[] signal, double threshold)
    {
        double top = signal[^1];
        for (int k = 1; k < signal.Length; k++)
            if (signal[^(k + 1)] / top < threshold) return k;
        return -1;
    }

    private static Problem VanishingThroughTime(MonitorSample[] window, ModelFacts f, double ratio, DiagnosisSettings s)
    {
        var last = window[^1];
        var signal = TopTimeSignal(last)!;
        int steps = signal.Length;
        int lag = LagBelow(signal, s.VanishingRatio);
        if (lag < 0) lag = steps - 1;
        var r = f.Recurrent!;
        var causes = new List<Cause>();
        if (r.IsVanilla)
            causes.Add(new Cause("vanilla recurrent cell", 4,
                $"a {(r.Cell == RecurrentCellKind.RnnRelu ? "ReLU" : "tanh")} RNN has no additive path through time: each step multiplies dL/dh by W_hhᵀ·diag(φ′), so the signal shrinks geometrically unless W_hh's singular values stay near 1 and units stay unsaturated (Bengio et al. 1994; Hochreiter and Schmidhuber 1997)"));
        f.AddRecurrentScale(causes, wantSmall: true);
        f.AddRecurrentScale(causes, wantSmall: false); // too large saturates the units: φ′ ≈ 0 stops the signal as surely
        if (r.Cell == RecurrentCellKind.Lstm && !(r.ForgetBias >= 0.5))
            causes.Add(new Cause("forget gate starts half closed", 2,
                string.Create(CultureInfo.InvariantCulture, $"forget-gate bias {(r.ForgetBias is { } fb ? fb.ToString("G3", CultureInfo.InvariantCulture) : "≈ 0 (default draw)")}: f ≈ σ(0) = 0.5 at the start, so the cell state keeps half its signal per step, 0.5^{steps - 1} = {Math.Pow(0.5, steps - 1):E1} over the sequence (Gers et al. 2000; Jozefowicz et al. 2015)")));
        causes.Add(new Cause("sequence length", 0.5 + Math.Log10(steps),
            string.Create(CultureInfo.InvariantCulture, $"T = {steps}: the first step's signal crosses {steps - 1} steps; it is below {s.VanishingRatio:E0} of the last step's from lag {lag} on, so dependencies longer than about {lag} step{(lag == 1 ? "" : "s")} get no gradient")));
        var remedies = new RankedRemedies(causes);
        var all = f.RecurrentLayers;
        if (r.IsVanilla)
        {
            // the GRU first: on the adding problem at T = 100 (Adam 1e-2) it learnt in 250-500 steps, the LSTM in 1000-1750 (docs/recurrent.md)
            remedies.Add("vanilla recurrent cell", new RemedySuggestion("cell:gru", "switch the cell to a GRU (the update gate's path z·h_(t−1) carries the signal, scaled by z ≈ 1)", all));
            remedies.Add("vanilla recurrent cell", new RemedySuggestion("cell:lstm", "switch the cell to an LSTM with forget-gate bias 1 (the cell state's additive path carries the signal, scaled by f ≈ 1)", all), -0.1);
            remedies.Add("recurrent weight scale", new RemedySuggestion("init:orthogonal", "start each W_hh orthogonal (every singular value 1: the weights neither shrink nor blow up the signal at the start; Saxe et al. 2014)", all));
            remedies.Add("recurrent weight scale", new RemedySuggestion("init:identity", "IRNN: ReLU units with W_hh = I and zero biases (Le et al. 2015)", all), -0.1);
        }
        else
        {
            if (r.Cell == RecurrentCellKind.Lstm && !(r.ForgetBias >= 0.5))
                remedies.Add("forget gate", new RemedySuggestion("forget-bias:1", "set the forget-gate bias to 1 so the cell state starts by keeping σ(1) ≈ 0.73 of its signal per step", all));
            if (r.Init.Kind != RecurrentInitKind.Orthogonal)
                remedies.Add(null, new RemedySuggestion("init:orthogonal", "start each gate block of W_hh orthogonal (Saxe et al. 2014)", all));
        }
        var evidence = new Dictionary<string, double>
        {
            ["time_ratio"] = ratio,
            ["signal_rms_first_step"] = signal[0],
            ["signal_rms_last_step"] = signal[^1],
            ["sequence_length"] = steps,
            ["lag_below_threshold"] = lag,
        };
        return new Problem
        {
            Kind = ProblemKind.VanishingGradient,
            Severity = Math.Log10(s.VanishingRatio / ratio),
            Layers = all,
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"vanishing gradient through time: the backpropagated signal dL/dh at the first of {steps} time steps is {(ratio == 0 ? "0 (it underflowed)" : ratio.ToString("E1", CultureInfo.InvariantCulture))} of that at the last (threshold {s.VanishingRatio:E0}); it falls below the threshold at lag {lag} (time step {steps - lag} of {steps})"),
            Evidence = evidence,
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    /// <summary>The last finite loss over the smallest before it, among the steps just before a non-finite loss (1 when unknown).</summary>
    private static double LossGrowth(IReadOnlyList<double>? losses)
    {
        if (losses is null) return 1;
        var finite = losses.Where(double.IsFinite).ToArray();
        if (finite.Length < 2) return 1;
        double low = finite.Take(finite.Length - 1).Min();
        return low > 0 ? finite[^1] / low : 1;
    }

    private static Problem? Exploding(MonitorSample[] window, ModelFacts f, double ratio, DiagnosisSettings s, double lossGrowth, double predictedUpdate)
    {
        double growth = window.Length >= 2 ? window[^1].GlobalGradientNorm / window[0].GlobalGradientNorm : 1;
        bool byRatio = ratio > s.ExplodingRatio;
        bool byGrowth = growth > s.ExplodingGrowth || double.IsPositiveInfinity(window[^1].GlobalGradientNorm);
        bool byLoss = lossGrowth > s.ExplodingGrowth;
        bool byStep = predictedUpdate > s.DivergentUpdateRatio;
        if (!byRatio && !byGrowth && !byLoss && !byStep) return null;
        var last = window[^1];
        double top = last.Layers[^1].BackpropagatedSignalRms;
        var layers = byRatio
            ? last.Layers.Where(l => !(l.BackpropagatedSignalRms / top <= s.ExplodingRatio)).Select(l => l.LayerIndex).ToArray()
            : last.Layers.Select(l => l.LayerIndex).ToArray();
        var causes = new List<Cause>();
        f.AddInitScale(causes, wantSmall: false, backward: true);
        f.AddRecurrentScale(causes, wantSmall: false);
        f.AddLearningRate(causes);
        f.AddNoNormalisation(causes);
        f.AddFullResidual(causes);
        f.AddPlainDepth(causes);
        if (f.Config.ClipNorm is null)
            causes.Add(new Cause("no gradient clipping", f.Recurrent is null ? 1 : 3, f.Recurrent is null
                ? "clipNorm is not set: nothing bounds a step when the gradient spikes"
                : "clipNorm is not set: a recurrent layer's gradient can grow by orders of magnitude in one step when a trajectory crosses a bifurcation (Pascanu et al. 2013), and nothing bounds that step"));
        var remedies = new RankedRemedies(causes);
        if (causes.Any(c => c.Name.StartsWith("recurrent weight scale", StringComparison.Ordinal)))
            remedies.Add("recurrent weight scale", new RemedySuggestion("init:orthogonal", "start each gate block of W_hh orthogonal (every singular value 1)", f.RecurrentLayers));
        if (causes.Any(c => c.Name.StartsWith("initial weight scale", StringComparison.Ordinal)))
            remedies.Add("initial weight scale", f.Remedy("init", f.MatchedInit, 1, f.Hidden.Count, $"re-initialise with {f.MatchedInit} (variance matched to fan-in and activation gain)"));
        if (causes.Any(c => c.Name.StartsWith("learning rate", StringComparison.Ordinal)) || byGrowth || byLoss || byStep)
            remedies.Add("learning rate", f.LearningRateRemedy());
        if (f.Config.ClipNorm is null) remedies.Add("no gradient clipping", new RemedySuggestion("clip:1", "clip the global gradient norm at 1", []));
        if (!f.HasNorm && f.Recurrent is null) remedies.Add("no normalisation", f.Remedy("norm", "batch", 1, f.Hidden.Count, "insert BatchNorm before every hidden activation"));
        if (f.ZeroStartResidualRemedy() is { } rezero) remedies.Add("full-gain residual", rezero);
        if (f.ShortcutRemedy() is { } shortcuts) remedies.Add("deep plain stack", shortcuts);
        return new Problem
        {
            Kind = ProblemKind.ExplodingGradient,
            Severity = Math.Max(Math.Max(byRatio ? Math.Log10(ratio / s.ExplodingRatio) : 0, byGrowth ? Math.Log10(Math.Max(1, growth) / s.ExplodingGrowth) : 0),
                Math.Max(byLoss ? Math.Log10(lossGrowth / s.ExplodingGrowth) : 0, byStep ? Math.Log10(predictedUpdate / s.DivergentUpdateRatio) : 0)),
            Layers = layers,
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = byRatio && f.Recurrent is not null
                ? string.Create(CultureInfo.InvariantCulture, $"exploding gradient through time: the backpropagated signal dL/dh at the first time step is {ratio:E1} times that at the last (step {TopTimeSignal(last)!.Length}; threshold {s.ExplodingRatio:E0})")
                : byRatio
                ? string.Create(CultureInfo.InvariantCulture, $"exploding gradient: the backpropagated signal at layer 1 is {ratio:E1} times that at layer {last.Layers.Length} (threshold {s.ExplodingRatio:E0})")
                : byGrowth
                    ? string.Create(CultureInfo.InvariantCulture, $"exploding gradient: the global gradient norm grew {growth:E1}× over the last {window.Length} samples (threshold {s.ExplodingGrowth:E0})")
                    : byLoss
                        ? string.Create(CultureInfo.InvariantCulture, $"exploding gradient in time: the loss grew {lossGrowth:E1}× within the last {GradientMonitor.RecentSteps} steps before it became non-finite (threshold {s.ExplodingGrowth:E0})")
                        : string.Create(CultureInfo.InvariantCulture, $"exploding gradient forecast: the optimiser's first steps will change a layer's weights by {predictedUpdate:G2}× their norm (threshold {s.DivergentUpdateRatio:G2}); steps that large make the weights and gradients grow"),
            Evidence = new Dictionary<string, double> { ["gradient_ratio"] = ratio, ["gradient_norm_growth"] = growth, ["loss_growth_before_non_finite"] = lossGrowth, ["predicted_update_ratio"] = predictedUpdate, ["global_gradient_norm"] = last.GlobalGradientNorm },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    private static Problem? PerLayer(MonitorSample[] window, ModelFacts f, ProblemKind kind, Func<LayerStats, double> value, double threshold, string what)
    {
        int n = window[^1].Layers.Length;
        var medians = Enumerable.Range(0, n).Select(i => Median(window.Select(s => value(s.Layers[i])))).ToArray();
        var layers = Enumerable.Range(0, n).Where(i => medians[i] > threshold).Select(i => i + 1).ToArray();
        if (layers.Length == 0) return null;
        double worst = layers.Max(l => medians[l - 1]);
        var causes = new List<Cause>();
        var remedies = new RankedRemedies(causes);
        int first = layers.Min(), last = Math.Min(layers.Max(), f.Hidden.Count);
        if (kind == ProblemKind.Saturation)
        {
            f.AddInitScale(causes, wantSmall: false);
            f.AddSaturatingDepth(causes);
            f.AddNoNormalisation(causes);
            remedies.Add("initial weight scale", f.Remedy("init", "xavier", first, last, $"re-initialise {Layers(first, last)} with Xavier (gain of the activation) so pre-activations stay in the linear region"), 0.5);
            if (!f.HasNorm) remedies.Add("no normalisation", f.Remedy("norm", "batch", first, last, $"insert BatchNorm before the activations of {Layers(first, last)}"));
            remedies.Add("saturating", f.Remedy("activation", "relu", first, last, $"switch {Layers(first, last)} to ReLU with He init (no saturation on the active side)"), -1);
        }
        else
        {
            f.AddLearningRate(causes);
            f.AddInitScale(causes, wantSmall: false);
            causes.Add(new Cause("ReLU's zero half-line", 1, "a ReLU unit whose pre-activation is negative for every input gets zero gradient and cannot recover"));
            remedies.Add("learning rate", f.LearningRateRemedy());
            remedies.Add("initial weight scale", f.Remedy("init", "he", first, last, $"re-initialise {Layers(first, last)} with He-normal"));
            remedies.Add("ReLU's zero half-line", f.Remedy("activation", "leaky-relu", first, last, $"switch {Layers(first, last)} to Leaky ReLU (slope 0.01 keeps a gradient on the negative side)"));
        }
        return new Problem
        {
            Kind = kind,
            Severity = Math.Log10(worst / threshold) + 0.1,
            Layers = layers,
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"{(kind == ProblemKind.Saturation ? "saturation" : "dying ReLU")}: {string.Join(", ", layers.Select(l => $"layer {l} {medians[l - 1]:P0}"))} {what} (threshold {threshold:P0})"),
            Evidence = layers.ToDictionary(l => $"layer_{l}", l => medians[l - 1]),
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    private static Problem NonFinite(IReadOnlyList<MonitorSample> samples, ModelFacts f, string? origin, double? loss)
    {
        var bad = samples.Where(s => s.NonFinite > 0 || double.IsInfinity(s.Loss)).ToArray();
        var layers = bad.SelectMany(s => s.Layers.Where(l => l.NonFinite > 0).Select(l => l.LayerIndex)).Distinct().Order().ToArray();
        var causes = new List<Cause>();
        f.AddLearningRate(causes);
        f.AddInitScale(causes, wantSmall: false);
        if (f.Config.ClipNorm is null) causes.Add(new Cause("no gradient clipping", 1, "clipNorm is not set"));
        var remedies = new RankedRemedies(causes);
        remedies.Add("learning rate", f.LearningRateRemedy());
        f.AddRecurrentScale(causes, wantSmall: false);
        if (f.Recurrent is null) remedies.Add("initial weight scale", f.Remedy("init", f.MatchedInit, 1, f.Hidden.Count, $"re-initialise with {f.MatchedInit}"));
        else remedies.Add("recurrent weight scale", new RemedySuggestion("init:orthogonal", "start each gate block of W_hh orthogonal (every singular value 1)", f.RecurrentLayers));
        if (f.Config.ClipNorm is null) remedies.Add("no gradient clipping", new RemedySuggestion("clip:1", "clip the global gradient norm at 1", []));
        string where = origin ?? (layers.Length > 0 ? $"layers {string.Join(", ", layers)}" : "the loss");
        long? step = bad.Length > 0 ? bad[0].Step : null;
        return new Problem
        {
            Kind = ProblemKind.NonFinite,
            Severity = 10,
            Layers = layers,
            Steps = bad.Select(s => s.Step).ToArray(),
            Summary = $"non-finite values: first seen in {where}{(step is null ? "" : $" at step {step}")}{(loss is { } l ? $"; the loss became {l.ToString(CultureInfo.InvariantCulture)}" : "")}",
            Evidence = new Dictionary<string, double> { ["non_finite_elements"] = bad.Sum(s => (double)s.NonFinite), ["first_step"] = step ?? double.NaN },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    private static Problem? Oscillating(MonitorSample[] trend, ModelFacts f, DiagnosisSettings s)
    {
        var recent = RecentTrend(trend, s);
        var d = recent.Zip(recent.Skip(1), (a, b) => b - a).ToArray();
        double flipFraction = SignFlips(d);
        // relative to the recent mean loss, but never to less than a fraction of the first loss: a loss that has
        // fallen to almost nothing (a solved task) has tiny changes that are large only relative to themselves
        double scale = Math.Max(recent.Average(), s.OscillationFloor * TrendLoss(trend[0]));
        double amplitude = Math.Sqrt(d.Average(x => x * x)) / Math.Max(1e-12, scale);
        int half = recent.Length / 2;
        double progress = (recent.Take(half).Average() - recent.Skip(half).Average()) / Math.Max(1e-12, Math.Abs(recent.Take(half).Average()));
        if (flipFraction < s.OscillationSignFlips || amplitude < s.OscillationAmplitude || progress >= s.OscillationProgress) return null;
        var causes = new List<Cause>();
        f.AddLearningRate(causes);
        causes.Add(new Cause("learning rate too large for the curvature", 2, string.Create(CultureInfo.InvariantCulture, $"learning rate {f.Config.LearningRate:G3}; {flipFraction:P0} of loss changes flip sign")));
        return new Problem
        {
            Kind = ProblemKind.OscillatingLoss,
            Severity = Math.Log10(amplitude / s.OscillationAmplitude) + 0.05,
            Layers = [],
            Steps = trend.TakeLast(recent.Length).Select(t => t.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture, $"oscillating loss: {flipFraction:P0} of successive changes flip sign, RMS change {amplitude:P0} of the mean loss"),
            Evidence = new Dictionary<string, double> { ["sign_flip_fraction"] = flipFraction, ["relative_amplitude"] = amplitude },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = [f.LearningRateRemedy(), new RemedySuggestion("clip:1", "clip the global gradient norm at 1", [])],
        };
    }

    /// <summary>
    /// A loss that stays at the chance level while it swings back and forth and the weights move a large fraction of
    /// themselves per step: the steps are too large to descend, so the loss bounces instead of falling (the oscillating
    /// mechanism of <see cref="OutcomeLabeler.Mechanisms"/>, read over the trial's recent samples). Its swings are small
    /// next to the loss itself, which is why <see cref="Oscillating"/>'s amplitude test does not see it.
    /// </summary>
    private static Problem? BouncingAtChance(MonitorSample[] trend, ModelFacts f, DiagnosisSettings s)
    {
        if (!double.IsFinite(f.ChanceLoss)) return null;
        var recent = RecentTrend(trend, s);
        double level = recent.Skip(recent.Length / 2).DefaultIfEmpty(double.NaN).Average();
        // at the chance level, not far above it: there the outputs are large and confidently wrong, the exploding forward
        // signal's verdict (a loss bouncing at 60 × chance was called "bouncing at the chance level")
        if (!(f.OverChance(level) >= s.ChanceStall) || f.OverChance(level) > s.FarAboveChance) return null;
        double flipFraction = SignFlips(recent.Zip(recent.Skip(1), (a, b) => b - a).ToArray());
        double update = trend.SelectMany(t => t.Layers.Select(l => l.UpdateRatio)).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
        if (flipFraction < s.OscillationSignFlips || !(update > s.BouncingUpdateRatio)) return null;
        var causes = new List<Cause>();
        f.AddLearningRate(causes);
        if (causes.Count == 0)
            causes.Add(new Cause("learning rate too large for the curvature", 2, string.Create(CultureInfo.InvariantCulture, $"learning rate {f.Config.LearningRate:G3}: update ratio up to {update:G2}")));
        return new Problem
        {
            Kind = ProblemKind.OscillatingLoss,
            Severity = 0.02,
            Layers = [],
            Steps = trend.TakeLast(recent.Length).Select(t => t.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"loss bouncing at the chance level: {flipFraction:P0} of successive changes flip sign (threshold {s.OscillationSignFlips:P0}) while a step moves the weights by up to {update:G2} of their norm (threshold {s.BouncingUpdateRatio:G2}): the steps are too large to descend"),
            Evidence = new Dictionary<string, double> { ["sign_flip_fraction"] = flipFraction, ["max_update_ratio"] = update, ["loss_over_chance"] = f.OverChance(level) },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = [f.LearningRateRemedy(), new RemedySuggestion("clip:1", "clip the global gradient norm at 1", [])],
        };
    }

    /// <summary>The trend rules' window: the trend losses of the last max(<c>TrendSamples</c>, 2·<c>Window</c>) samples.</summary>
    private static double[] RecentTrend(MonitorSample[] trend, DiagnosisSettings s) =>
        trend.TakeLast(Math.Max(s.TrendSamples, 2 * s.Window)).Select(TrendLoss).ToArray();

    /// <summary>Of successive loss changes <paramref name="d"/>, the fraction of consecutive pairs that flip sign (0 for fewer than two).</summary>
    private static double SignFlips(double[] d) =>
        d.Length < 2 ? 0 : (double)d.Zip(d.Skip(1), (a, b) => Math.Sign(a) * Math.Sign(b) < 0 ? 1 : 0).Sum() / (d.Length - 1);

    /// <summary>The cause of a stall at chance at the end of the whole configured run (<see cref="ModelFacts.WholeRunSteps"/>).</summary>
    internal const string ShortRunCause = "short run";

    /// <summary>The stall's cause when the weights barely move (the largest update ratio below <see cref="DiagnosisSettings.SmallUpdateRatio"/>).</summary>
    internal const string SmallStepsCause = "learning rate too small for the gradient scale";

    /// <summary>How many times longer the <c>epochs:F</c> remedy of a short run trains.</summary>
    internal const int LongerRun = 5;

    private static Problem? Stalled(MonitorSample[] trend, ModelFacts f, DiagnosisSettings s, List<Problem> found)
    {
        var recent = RecentTrend(trend, s);
        int half = recent.Length / 2;
        double before = recent.Take(half).Average(), after = recent.Skip(half).Average();
        // improvements of the part of the loss above its floor (label smoothing's: a converged run's loss barely moves in absolute terms)
        double floor = f.LossFloor;
        double improvement = (before - after) / Math.Max(1e-12, Math.Abs(before - floor));
        double start = TrendLoss(trend[0]);
        double overall = (start - after) / Math.Max(1e-12, Math.Abs(start - floor));
        // flat now, and it has not fallen far since the start (a loss that fell a long way and then flattened has
        // converged for this learning rate) ...
        bool flat = improvement < s.StallImprovement && overall < s.StallOverallImprovement;
        // ... or, whatever its trend, still at the chance level: after the trial it has learnt almost nothing (far above chance too,
        // even while falling: dropping the stall there lost two of the calibration half's stalled runs, at 30-90 × chance after the
        // trial, that never came down)
        bool atChance = f.OverChance(after) >= s.ChanceStall;
        // ... or, after (nearly: the last sample of a 300-step trial is at step 290) as many steps as the linear baseline took, it has
        // come a small part of the baseline's way from chance
        double last = TrendLoss(trend[^1]), linearOver = f.OverChance(f.LinearBaselineLoss);
        double linearShare = (1 - f.OverChance(last)) / (1 - linearOver);
        bool behindLinear = !flat && !atChance && trend[^1].Step + 1 >= 0.9 * f.LinearBaselineSteps && linearOver <= s.LinearBaselineMaxOverChance
            && linearShare < s.LinearProgress;
        if (!flat && !atChance && !behindLinear) return null;
        var causes = new List<Cause>();
        if (found.Any(p => p.Kind == ProblemKind.VanishingGradient))
            causes.Add(new Cause("vanishing gradient", 3, "the early layers receive almost no signal, so they do not learn"));
        f.AddLearningRate(causes);
        if (f.Config.Optimizer == OptimizerKind.Sgd && f.Config.Momentum == 0)
            causes.Add(new Cause("plain SGD", 1, "no momentum and no per-parameter scaling"));
        double update = f.MaxUpdateRatio;
        if (double.IsFinite(update) && update < s.SmallUpdateRatio)
            causes.Add(new Cause(SmallStepsCause, 1.5 + Math.Log10(s.SmallUpdateRatio / update),
                string.Create(CultureInfo.InvariantCulture, $"learning rate {f.Config.LearningRate:G3}: update ratio ||ΔW||/||W|| at most {update:G2} (healthy ≈ 1e-3 to 1e-2, threshold {s.SmallUpdateRatio:G2}): the weights barely move")));
        f.AddPlainDepth(causes);
        // the samples cover the whole configured run: a loss still at chance at its end may only need more steps
        bool shortRun = atChance && f.WholeRunSteps is long w && w < s.ShortRunSteps;
        if (shortRun)
            causes.Add(new Cause(ShortRunCause, 2, string.Create(CultureInfo.InvariantCulture,
                $"the whole run is {f.WholeRunSteps} steps ({f.Config.Epochs} epochs{(f.Config.MaxSteps is { } max ? $", at most {max} steps" : "")}), fewer than {s.ShortRunSteps}, and it ends at the chance level: a model may need more steps than that to leave it")));
        var remedies = new RankedRemedies(causes);
        if (f.ShortcutRemedy() is { } shortcuts) remedies.Add("deep plain stack", shortcuts);
        if (shortRun && f.WholeRunSteps is long whole) // (shortRun implies the steps are known)
            remedies.Add(ShortRunCause, new RemedySuggestion(string.Create(CultureInfo.InvariantCulture, $"epochs:{LongerRun}"),
                string.Create(CultureInfo.InvariantCulture, $"train {LongerRun} times longer ({whole} → {LongerRun * whole} steps)"), []));
        // a stall with steps that are too large (units killed, weights thrown about) needs a smaller rate, not a larger one
        if (causes.Any(c => c.Name.StartsWith("learning rate too large", StringComparison.Ordinal))) remedies.Add("learning rate too large", f.LearningRateRemedy());
        else
        {
            // Adam at 1e-3 (Kingma and Ba 2015) is the setting that trains most of the catalogue's tasks: the first change
            // for an optimiser that learns too slowly, or for Adam far from its usual rate
            if (f.Config.Optimizer is not (OptimizerKind.Adam or OptimizerKind.AdamW))
                remedies.Add("plain SGD", new RemedySuggestion("optimizer:adam", "switch to Adam with learning rate 1e-3 (per-parameter step sizes of about the learning rate)", []), 1);
            else if (f.Config.LearningRate < 5e-4)
                remedies.Add("learning rate too small", new RemedySuggestion(string.Create(CultureInfo.InvariantCulture, $"lr:{1e-3 / f.Config.LearningRate:G3}"),
                    string.Create(CultureInfo.InvariantCulture, $"raise the learning rate to Adam's usual 1e-3 (× {1e-3 / f.Config.LearningRate:G3})"), []), 1);
            remedies.Add(null, new RemedySuggestion("lr:3", "multiply the learning rate by 3", []));
        }
        return new Problem
        {
            Kind = ProblemKind.StalledLoss,
            Severity = 0.01,
            Layers = [],
            Steps = trend.TakeLast(recent.Length).Select(t => t.Step).ToArray(),
            Summary = behindLinear
                ? string.Create(CultureInfo.InvariantCulture, $"learning slower than a linear model: after {trend[^1].Step + 1} steps the loss {last:G3} has come {Math.Max(0, linearShare):P0} of the way from the chance level {f.ChanceLoss:G3}{f.FloorNote} that a linear model of the same inputs comes in {f.LinearBaselineSteps} steps (to {f.LinearBaselineLoss:G3}; threshold {s.LinearProgress:P0})")
                : flat
                ? string.Create(CultureInfo.InvariantCulture, $"stalled loss: {Change(improvement)} over the last {recent.Length} samples (threshold: improved by {s.StallImprovement:P0}); {Change(overall)} since the first sample (threshold: improved by {s.StallOverallImprovement:P0})")
                : f.OverChance(after) > s.FarAboveChance
                ? string.Create(CultureInfo.InvariantCulture, $"stalled loss: after {trend[^1].Step + 1} steps the loss {after:G3} is still {f.OverChance(after):G3} × the chance level {f.ChanceLoss:G3}{f.FloorNote} (the loss of the best constant prediction; threshold {s.ChanceStall:P0} of it): the model does worse than a constant prediction")
                : string.Create(CultureInfo.InvariantCulture, $"stalled loss: after {trend[^1].Step + 1} steps the loss {after:G3} is still {f.OverChance(after):P0} of the chance level {f.ChanceLoss:G3}{f.FloorNote} (the loss of the best constant prediction; threshold {s.ChanceStall:P0}): the model has learnt almost nothing"),
            Evidence = behindLinear
                ? new Dictionary<string, double> { ["loss"] = last, ["loss_over_chance"] = f.OverChance(last), ["linear_baseline_loss"] = f.LinearBaselineLoss, ["linear_share"] = linearShare }
                : new Dictionary<string, double> { ["relative_improvement"] = improvement, ["improvement_since_start"] = overall, ["loss"] = after, ["loss_over_chance"] = f.OverChance(after) },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = remedies.Ranked(),
        };
    }

    /// <summary>The loss the trend rules read: the mean since the previous sample when recorded (minibatch noise averaged out), else the sampled step's.</summary>
    private static double TrendLoss(MonitorSample s) => double.IsNaN(s.MeanLoss) ? s.Loss : s.MeanLoss;

    internal static double Median(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).Order().ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>"layer 19" or "layers 3-19".</summary>
    internal static string Layers(int a, int b) => a == b ? string.Create(CultureInfo.InvariantCulture, $"layer {a}") : string.Create(CultureInfo.InvariantCulture, $"layers {a}-{b}");

    /// <summary>"improved by 0.4 %" or, for a loss that rose, "worsened by 0.1 %" (never "improved by -0.1 %").</summary>
    internal static string Change(double improvement) =>
        improvement < 0 ? string.Create(CultureInfo.InvariantCulture, $"worsened by {-improvement:P1}") : string.Create(CultureInfo.InvariantCulture, $"improved by {improvement:P1}");

    /// <summary>Remedies ranked by the score of the cause each addresses (plus a small bias), ties in insertion order.</summary>
    private sealed class RankedRemedies(List<Cause> causes)
    {
        private readonly List<(double Score, int Order, RemedySuggestion Remedy)> _items = [];

        /// <summary>Adds <paramref name="remedy"/> for the cause whose name starts with <paramref name="cause"/> (null: no cause, lowest rank).</summary>
        public void Add(string? cause, RemedySuggestion remedy, double bias = 0)
        {
            if (_items.Any(i => i.Remedy.Id == remedy.Id)) return;
            double score = cause is null ? 0 : causes.Where(c => c.Name.StartsWith(cause, StringComparison.Ordinal)).Select(c => c.Score).DefaultIfEmpty(0.5).Max();
            _items.Add((score + bias, _items.Count, remedy));
        }

        public RemedySuggestion[] Ranked() => _items.OrderByDescending(i => i.Score).ThenBy(i => i.Order).Select(i => i.Remedy with { Score = i.Score }).ToArray();
    }

    /// <summary>
    /// What the through-time causes read of a network's recurrent blocks: the top block's cell (the one the
    /// read-out reads, whose signal through time the rules measure), its forget-gate bias and W_hh start, and
    /// the layer indices of every stacked recurrent layer (<see cref="NetworkFacts.Layers"/>).
    /// </summary>
    private sealed record RecurrentFacts(RecurrentCellKind Cell, double? ForgetBias, RecurrentInit Init, int[] Layers)
    {
        public bool IsVanilla => Cell is RecurrentCellKind.RnnTanh or RecurrentCellKind.RnnRelu;

        /// <summary>The facts of <paramref name="d"/>'s recurrent blocks, or null when it has none.</summary>
        public static RecurrentFacts? Of(Nn.Network.NetworkDescription d)
        {
            var top = NetworkFacts.Flatten(d.Root).OfType<Nn.Network.RecurrentBlock>().LastOrDefault();
            return top is null ? null
                : new RecurrentFacts(top.Cell, top.ForgetBias, top.Init, NetworkFacts.Layers(d).Where(l => l.Cell is not null).Select(l => l.Index).ToArray());
        }
    }

    /// <summary>
    /// The RMS of every monitored layer's weight (<see cref="NetworkWatch.Layers(Nn.Network.Network)"/>, in order) of <paramref name="model"/>, or null for a
    /// model that is not a <see cref="Nn.Network.Network"/>: what <see cref="RunWatch"/> keeps of the weights a run starts from.
    /// </summary>
    public static double[]? WeightScales(Module model) =>
        model is Nn.Network.Network n ? NetworkWatch.Layers(n).Select(WeightScale).ToArray() : null;

    /// <summary>√(Σw²/n) of a monitored layer's weight.</summary>
    private static double WeightScale(MonitoredLayer layer)
    {
        var w = layer.Weight.Data.ToDoubleArray();
        return Math.Sqrt(w.Sum(v => v * v) / w.Length);
    }

    /// <summary>Facts about the model and config that causes and remedies are ranked by.</summary>
    private sealed class ModelFacts
    {
        public ModelFacts(TrainingConfig config, Module? model, IReadOnlyList<MonitorSample> samples, DiagnosisSettings settings)
        {
            // a recurrent model has no MLP hidden layers: the MLP facts see an empty stack, the recurrent ones its
            // recurrent blocks (a recurrent spec's, or those of any description: a 'net …' text or JSON)
            // any other description: its hidden layers' facts in the same form (NetworkFacts.Hidden)
            var network = config.Spec();
            var description = config.Description();
            Recurrent = network is ModelSpec ? null : RecurrentFacts.Of(description);
            var hidden = network switch
            {
                ModelSpec m => m.Hidden,
                RecurrentSpec => [],
                _ => NetworkFacts.Hidden(description),
            };
            RecurrentLayers = Recurrent?.Layers ?? [];
            Transformer = network is null ? TransformerFacts.Of(description) : null;
            Hidden = hidden;
            HasConv = network is null && DescriptionRemedies.HasConv(description);
            Config = config;
            Weights = model is Nn.Network.Network n ? NetworkWatch.Layers(n) : null;
            Samples = samples;
            Settings = settings;
            SaturatingLayers = hidden.Select((h, i) => (h, i)).Where(t => Activations.Saturates(t.h.Activation)).Select(t => t.i + 1).ToArray();
            HasNorm = hidden.Any(h => h.Norm != NormKind.None);
            var act = hidden.Count > 0 ? hidden[0].Activation : Activation.Relu;
            MatchedInit = act is Activation.Relu or Activation.LeakyRelu or Activation.PRelu or Activation.Gelu or Activation.GeluTanh or Activation.Silu or Activation.Mish or Activation.Elu ? "he" : "xavier";
            // residual connections need equal widths: the longest run of equal-width hidden layers after the first
            int best = 0, bestStart = 0;
            for (int i = 1; i < hidden.Count;)
            {
                int j = i;
                while (j < hidden.Count && hidden[j].Width == hidden[i - 1].Width) j++;
                if (j - i > best) (best, bestStart) = (j - i, i);
                i = Math.Max(j, i + 1);
            }
            ResidualRange = best >= 2 ? (bestStart + 1, bestStart + best) : null;
            // the longest run of consecutive hidden layers that are not residual blocks (1-based, inclusive)
            int run = 0, runStart = 0;
            for (int i = 0; i < hidden.Count;)
            {
                int j = i;
                while (j < hidden.Count && hidden[j].Residual == ResidualKind.None) j++;
                if (j - i > run) (run, runStart) = (j - i, i);
                i = j + 1;
            }
            PlainRun = run == 0 ? null : (runStart + 1, runStart + run);
        }

        /// <summary>The hidden layers (every monitored layer but the output layer): an MLP spec's own, or <see cref="NetworkFacts.Hidden"/> of any other description; none for a recurrent spec.</summary>
        public IReadOnlyList<LayerSpec> Hidden { get; }

        /// <summary>Whether the model has conv layers (LSUV, which calibrates Linear layers, is then not offered).</summary>
        public bool HasConv { get; }
        /// <summary>The recurrent layers' facts, or null for a network without recurrent blocks.</summary>
        public RecurrentFacts? Recurrent { get; }
        public int[] RecurrentLayers { get; }
        /// <summary>The transformer layers' facts, or null for a network without them.</summary>
        public TransformerFacts? Transformer { get; }
        public TrainingConfig Config { get; }
        /// <summary>The model's monitored layers (weights and activations), when the model is known.</summary>
        public IReadOnlyList<MonitoredLayer>? Weights { get; }
        public IReadOnlyList<MonitorSample> Samples { get; }
        public DiagnosisSettings Settings { get; }
        public int[] SaturatingLayers { get; }
        public bool HasNorm { get; }
        public string MatchedInit { get; }
        public (int First, int Last)? ResidualRange { get; }

        /// <summary>The longest run of consecutive hidden layers without a shortcut (first and last layer index), or null.</summary>
        public (int First, int Last)? PlainRun { get; }

        /// <summary>Whether <see cref="PlainRun"/> is a deep plain stack (<see cref="DiagnosisSettings.PlainDepth"/> layers or more).</summary>
        private bool DeepPlain => PlainRun is { } p && p.Last - p.First + 1 >= Settings.PlainDepth;

        /// <summary>
        /// A deep plain stack as a cause (He et al. 2016): deeper plain nets train worse than shallower ones even
        /// when their signals are kept healthy (degradation), so depth without shortcuts is itself a cause of a
        /// run that does not learn, as well as compounding any per-layer gain below or above 1.
        /// </summary>
        public void AddPlainDepth(List<Cause> causes)
        {
            if (!DeepPlain) return;
            var (first, last) = PlainRun!.Value;
            int n = last - first + 1;
            causes.Add(new Cause("deep plain stack without shortcuts", 1 + n / 30.0,
                string.Create(CultureInfo.InvariantCulture,
                    $"hidden {Layers(first, last)}: {n} layers in sequence without a shortcut (threshold {Settings.PlainDepth}); deeper plain nets train worse than shallower ones even with healthy signals (degradation: He et al. 2016, plain-56 against plain-20), and each layer's gain compounds over all {n}")));
        }

        /// <summary>
        /// Residual shortcuts around the deep plain stack's layers (its first layer too when that is not hidden
        /// layer 1, which takes the input's layout), each branch starting at zero so the stack starts as the
        /// identity; a projection shortcut where a layer changes the shape. Null unless the stack is deep.
        /// </summary>
        public RemedySuggestion? ShortcutRemedy()
        {
            if (!DeepPlain) return null;
            var (first, last) = PlainRun!.Value;
            first = Math.Max(2, first);
            return Remedy("residual", "zero", first, last,
                $"add residual shortcuts around hidden {Layers(first, last)} with zero-initialised branches (a ResNet: identity shortcuts, projections where the shape changes)");
        }

        public RemedySuggestion Remedy(string kind, string arg, int first, int last, string description)
        {
            last = Math.Min(last, Hidden.Count);
            first = Math.Max(1, Math.Min(first, last));
            return new RemedySuggestion(Remedies.Id(kind, arg, first, last, Hidden.Count), description,
                Enumerable.Range(first, Math.Max(0, last - first + 1)).ToArray());
        }

        public void AddSaturatingDepth(List<Cause> causes)
        {
            if (SaturatingLayers.Length == 0) return;
            var act = Hidden[SaturatingLayers[0] - 1].Activation;
            double maxDerivative = act is Activation.Sigmoid or Activation.HardSigmoid ? 0.25 : 1.0;
            double bound = Math.Pow(maxDerivative, SaturatingLayers.Length);
            string name = ModelSpec.NameOf(act);
            // sigmoid's bound is structural (σ' ≤ 1/4 everywhere); tanh's derivative is 1 at 0, so tanh layers are a
            // cause only as far as they are measured to saturate
            double saturation = Samples.Count == 0 ? 0 : SaturatingLayers.Select(l => Samples[^1].Layers[l - 1].Saturation).Where(double.IsFinite).DefaultIfEmpty(0).Average();
            double score = maxDerivative < 1 ? 4 + SaturatingLayers.Length / 5.0 : 1 + SaturatingLayers.Length / 5.0 * Math.Min(1, 2 * saturation);
            causes.Add(new Cause("saturating activation × depth", score,
                maxDerivative < 1
                    ? string.Create(CultureInfo.InvariantCulture, $"{SaturatingLayers.Length} {name} layers: each multiplies the backpropagated signal by its derivative, at most {maxDerivative}; {maxDerivative}^{SaturatingLayers.Length} = {bound:E1}")
                    : string.Create(CultureInfo.InvariantCulture, $"{SaturatingLayers.Length} {name} layers: the derivative is 1 only at 0 and shrinks as units saturate; depth compounds every shrinking layer")));
        }

        /// <summary>
        /// The init's scale as a cause: each layer's weight RMS against the variance-preserving gain/√fan, read from the weights the run
        /// started from (<see cref="StartWeightScales"/>) when known; the worst layer names it, and the layers' ratios compound. A trial
        /// that diverged has weights many orders above any init, and read from them this cause blamed an He init for a learning rate's
        /// explosion and offered He again as the remedy.
        /// </summary>
        /// <param name="causes">Where the cause goes, when the worst layer is below 0.7 (<paramref name="wantSmall"/>) or above 1.5 of its scale.</param>
        /// <param name="wantSmall">Whether the problem is a signal too small (vanishing) rather than too large.</param>
        /// <param name="backward">
        /// Whether the problem is the backpropagated signal's (a vanishing or exploding gradient): it crosses each weight from its output
        /// side, so its scale per layer is std·√fan_out / gain (He's fan_out mode, torchvision's conv default), over the weights between
        /// the first monitored layer's output and the output layer's input (the first layer's weights are not on that path). Otherwise
        /// the forward signal's: std·√fan_in / gain over every hidden layer. The two differ only where a layer changes the width: a conv
        /// net whose 1-channel stem is He fan_out was told its stem was 0.35× too small and that "over 54 layers the signal scales by
        /// about 3.8E-025", the stem's ratio raised to the depth.
        /// </param>
        public void AddInitScale(List<Cause> causes, bool wantSmall, bool backward = false)
        {
            // the cause is a scale compounded over a chain of hidden layers; without one (a transformer's blocks) it explained
            // nothing ("over 0 layers the signal scales by about 1.0E+000")
            if (Weights is null || Hidden.Count == 0) return;
            var start = StartWeightScales is { } scales && scales.Count == Weights.Count ? scales : null;
            var worst = (Layer: 0, Ratio: 1.0, Std: 0.0, Target: 0.0, Fan: 0);
            double compound = 1;
            int chain = 0;
            for (int i = backward ? 1 : 0; i < Weights.Count - 1; i++)
            {
                var layer = Weights[i];
                // a norm after the weight makes its output, and the signal back through it, independent of the weight's scale
                // (a GroupNorm CNN at init normal:0.01 and normal:1 has the same gradient ratio, and was told its weights were too small)
                if (layer.RecurrentLayer >= 0 || layer.Norm is not null) continue;
                var weight = layer.Weight.Data;
                double std = start?[i] ?? WeightScale(layer);
                // Linear [out, in]: fan_in = in, fan_out = out; Conv [out, in/g, kh, kw]: in/g·kh·kw and out·kh·kw (PyTorch's fans)
                int fan = backward ? weight.Count / weight.Shape[1] : weight.Count / weight.Shape[0];
                var act = layer.Kind ?? Activation.Identity;
                double gain = Init.CalculateGain(Init.NonlinearityOf(act));
                double target = gain / Math.Sqrt(fan);
                double ratio = std / target;
                compound *= ratio;
                chain++;
                if (wantSmall ? ratio < worst.Ratio : ratio > worst.Ratio) worst = (layer.Index, ratio, std, target, fan);
            }
            if (worst.Layer == 0 || (wantSmall ? worst.Ratio > 0.7 : worst.Ratio < 1.5)) return;
            string side = backward ? "out" : "in", signal = backward ? "backpropagated signal" : "forward signal", fanName = "fan_" + side;
            causes.Add(new Cause($"initial weight scale too {(wantSmall ? "small" : "large")} for the fan-{side}",
                1 + Math.Abs(Math.Log2(worst.Ratio)),
                string.Create(CultureInfo.InvariantCulture,
                    $"layer {worst.Layer}: {(start is null ? "weight" : "initial weight")} std {worst.Std:G3} vs gain/√{fanName} = {worst.Target:G3} ({fanName} {worst.Fan}): {worst.Ratio:G3}× the scale that preserves the {signal}; the {chain} layer{(chain == 1 ? "'s ratio" : "s' ratios")} on its path compound to {compound:G3}")));
        }

        /// <summary>
        /// A vanilla RNN's W_hh scale as a cause: its largest singular value σ bounds the per-step gain
        /// of the backpropagated signal (|φ′| ≤ 1), so σ^(T−1) bounds the signal over the sequence
        /// (Pascanu et al. 2013): far below 1 it must vanish; above 1 it can explode.
        /// </summary>
        public void AddRecurrentScale(List<Cause> causes, bool wantSmall)
        {
            if (Recurrent is not { IsVanilla: true }) return;
            int steps = Samples.Select(TopTimeSignal).LastOrDefault(t => t is not null)?.Length ?? 0;
            // the initial W_hh of every recurrent layer (rebuilt from the description and seed, as the trainer builds
            // it: the trained one may have blown up)
            var initial = Nn.Network.NetworkBuilder.Build(Config.Description(), new Tensors.Generator(Config.Seed));
            double sigma = NetworkWatch.Layers(initial).Where(l => l.RecurrentLayer >= 0).Max(l => LargestSingularValue(l.Weight.Data));
            // PyTorch's default start has σ ≈ 1.15 for any H (U(±1/√H)): with φ′ < 1 that is neutral, not a cause
            if (wantSmall ? sigma > 0.9 : sigma < 1.5) return;
            string bound = steps > 1 ? string.Create(CultureInfo.InvariantCulture, $"; over {steps - 1} steps σ^{steps - 1} = {Math.Pow(sigma, steps - 1):E1}") : "";
            causes.Add(new Cause(wantSmall ? "recurrent weight scale too small" : "recurrent weight scale too large",
                1 + Math.Abs(Math.Log2(sigma)) * (wantSmall ? 1 : 2),
                string.Create(CultureInfo.InvariantCulture, $"largest singular value of the initial W_hh σ = {sigma:G3} ({(wantSmall ? "below" : "above")} 1): it bounds the signal's gain per step{bound}")));
        }

        /// <summary>The largest singular value of a [rows, H] matrix by power iteration on AᵀA (deterministic start).</summary>
        internal static double LargestSingularValue(Tensors.Tensor weight)
        {
            var a = weight.ToDoubleArray();
            int rows = weight.Shape[0], cols = weight.Shape[1];
            var v = new double[cols];
            var av = new double[rows];
            for (int j = 0; j < cols; j++) v[j] = 1 + 0.01 * j;
            double sigma = 0;
            for (int it = 0; it < 100; it++)
            {
                double norm = Math.Sqrt(v.Sum(x => x * x));
                if (norm == 0) return 0;
                for (int j = 0; j < cols; j++) v[j] /= norm;
                for (int i = 0; i < rows; i++)
                {
                    double sum = 0;
                    for (int j = 0; j < cols; j++) sum += a[i * cols + j] * v[j];
                    av[i] = sum;
                }
                double next = Math.Sqrt(av.Sum(x => x * x));
                Array.Clear(v);
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) v[j] += a[i * cols + j] * av[i];
                if (Math.Abs(next - sigma) <= 1e-10 * next) return next;
                sigma = next;
            }
            return sigma;
        }

        public void AddNoNormalisation(List<Cause> causes)
        {
            if (HasNorm || Hidden.Count < 3) return;
            causes.Add(new Cause("no normalisation", 0.5 + Hidden.Count / 20.0, $"{Hidden.Count} hidden layers without BatchNorm or LayerNorm: nothing rescales the signal between layers"));
        }

        /// <summary>
        /// The largest update ratio seen (preflight: predicted), as a persistent gradient makes it: SGD and
        /// RMSprop with momentum μ reach 1/(1−μ) times their first step. NaN when none was measured.
        /// </summary>
        public double MaxUpdateRatio
        {
            get
            {
                var ratios = Samples.SelectMany(s => s.Layers.Select(l => l.UpdateRatio)).Where(double.IsFinite).ToArray();
                double amplification = Config.Optimizer is OptimizerKind.Sgd or OptimizerKind.RmsProp && !IsPreflight ? 1 / (1 - Config.Momentum) : 1;
                double measured = ratios.Length == 0 ? double.NaN : ratios.Max() * amplification;
                // a step that overflowed the weights has no measurable ratio: the prediction from the first gradient stands in
                if (double.IsNaN(measured)) return PredictedUpdateRatio;
                return double.IsFinite(PredictedUpdateRatio) ? Math.Max(measured, PredictedUpdateRatio) : measured;
            }
        }

        /// <summary>The loss of a model that knows nothing (the entropy of the class frequencies, or the targets' variance), NaN when unknown.</summary>
        public double ChanceLoss { get; init; } = double.NaN;

        /// <summary>The lowest loss the run can reach (<see cref="Trials.LossFloor"/>): 0, or the smoothed targets' entropy under label smoothing.</summary>
        public double LossFloor { get; init; }

        /// <summary>
        /// Where <paramref name="loss"/> lies between the loss floor (0) and the chance level (1): (loss − floor) / (chance − floor), which
        /// is loss / chance without label smoothing. Every rule that compares a loss with the chance level reads this. NaN when the chance
        /// level is unknown, or not above the floor.
        /// </summary>
        public double OverChance(double loss) =>
            double.IsFinite(ChanceLoss) && ChanceLoss > LossFloor ? (loss - LossFloor) / (ChanceLoss - LossFloor) : double.NaN;

        /// <summary>The words a verdict adds after the chance level when the loss has a floor: how it was measured.</summary>
        internal string FloorNote => LossFloor > 0
            ? string.Create(CultureInfo.InvariantCulture, $", measured above the floor {LossFloor:G3} that label smoothing {Config.LabelSmoothing:G2} sets")
            : "";

        /// <summary>The configured run's steps when the samples cover all of it (a trial as long as the run's budget, a finished run), else null; below <see cref="DiagnosisSettings.ShortRunSteps"/> a stall at chance is a short run.</summary>
        public long? WholeRunSteps { get; init; }

        /// <summary>The loss of all-zero outputs (<see cref="Trials.ZeroOutputLoss"/>), NaN when unknown.</summary>
        public double ZeroOutputLoss { get; init; } = double.NaN;

        /// <summary>The loss a linear model of the same inputs reaches in <see cref="LinearBaselineSteps"/> steps (<see cref="Trials.LinearBaseline"/>), NaN when unknown.</summary>
        public double LinearBaselineLoss { get; init; } = double.NaN;

        /// <summary>The steps of <see cref="LinearBaselineLoss"/>.</summary>
        public int LinearBaselineSteps { get; init; }

        /// <summary>The weight scales the run started from, one per monitored layer (<see cref="Diagnoser.WeightScales"/>), or null.</summary>
        public IReadOnlyList<double>? StartWeightScales { get; init; }

        /// <summary>Whether the samples are a preflight's (its update ratios are already predictions, momentum included).</summary>
        public bool IsPreflight { get; init; }

        /// <summary>The largest update ratio predicted from the first step's gradient (<see cref="Trials.PredictedUpdateRatio"/>), NaN when unknown.</summary>
        public double PredictedUpdateRatio { get; init; } = double.NaN;

        /// <summary>
        /// Lower the learning rate by the factor that brings the largest update ratio to
        /// <see cref="DiagnosisSettings.TargetUpdateRatio"/>, rounded down to 1, 2 or 5 times a power of ten,
        /// and at least tenfold; tenfold when no update ratio was measured.
        /// </summary>
        public RemedySuggestion LearningRateRemedy()
        {
            double max = MaxUpdateRatio;
            double factor = 0.1;
            if (double.IsFinite(max) && max > 0)
            {
                double raw = Math.Min(0.1, Settings.TargetUpdateRatio / max);
                double decade = Math.Pow(10, Math.Floor(Math.Log10(raw)));
                double mantissa = raw / decade;
                factor = Math.Max(1e-6, decade * (mantissa >= 5 ? 5 : mantissa >= 2 ? 2 : 1));
            }
            string f = factor.ToString("G3", CultureInfo.InvariantCulture);
            return new RemedySuggestion($"lr:{f}", string.Create(CultureInfo.InvariantCulture,
                $"multiply the learning rate by {f} (to {Config.LearningRate * factor:G3}){(double.IsFinite(max) ? $": the update ratio {max:G2} becomes about {max * factor:G2}" : "")}"), []);
        }

        /// <summary>Start the full-gain residual branches at zero (from the first to the last such block), or null with fewer than two.</summary>
        public RemedySuggestion? ZeroStartResidualRemedy()
        {
            if (Hidden.Count(h => h.Residual == ResidualKind.Full) < 2) return null;
            int from = Hidden.TakeWhile(h => h.Residual != ResidualKind.Full).Count() + 1;
            int to = Hidden.Count - Hidden.Reverse().TakeWhile(h => h.Residual != ResidualKind.Full).Count();
            return Remedy("residual", "zero", from, to, "start the residual branches at zero (ReZero) so the stack is the identity at initialisation");
        }

        public void AddFullResidual(List<Cause> causes)
        {
            int n = Hidden.Count(h => h.Residual == ResidualKind.Full);
            if (n < 2) return;
            causes.Add(new Cause("full-gain residual branches", 2 + n / 10.0,
                string.Create(CultureInfo.InvariantCulture, $"{n} residual blocks add a unit-gain branch to the identity: the variance roughly doubles per block, 2^{n} = {Math.Pow(2, n):E1} (Zhang et al. 2019, Fixup)")));
        }

        public void AddLearningRate(List<Cause> causes)
        {
            double max = MaxUpdateRatio;
            if (!double.IsFinite(max)) return;
            if (max < Settings.LargeUpdateRatio) return;
            causes.Add(new Cause("learning rate too large for the gradient scale", 1.5 + Math.Log10(max / Settings.LargeUpdateRatio),
                string.Create(CultureInfo.InvariantCulture, $"learning rate {Config.LearningRate:G3}: update ratio ||ΔW||/||W|| up to {max:G3} (healthy ≈ 1e-3, threshold {Settings.LargeUpdateRatio:G3})")));
        }
    }
}
