namespace GradFlow.Diagnostics;

/// <summary>
/// Thresholds of the detectors, with their defaults and reasons (docs/diagnosis.md gives the
/// derivations and the calibration). Settings, not literals: every detector reads them from here.
/// </summary>
public sealed record DiagnosisSettings
{
    /// <summary>
    /// Vanishing when the gradient ratio (signal RMS at layer 1 over layer L) is below this: three orders
    /// of magnitude. A sigmoid layer passes at most 1/4 of the signal times its weight gain, so five
    /// unnormalised sigmoid layers already reach 0.25⁵ ≈ 1e-3; healthy nets (ReLU+He, tanh+Xavier at
    /// depth 20) stay within 1e-1..1e1 (calibration table in docs/diagnosis.md).
    /// </summary>
    public double VanishingRatio { get; init; } = 1e-3;

    /// <summary>Exploding when the gradient ratio exceeds this (the mirror image of <see cref="VanishingRatio"/>).</summary>
    public double ExplodingRatio { get; init; } = 1e3;

    /// <summary>Exploding also when the global gradient norm grows by more than this factor across the window.</summary>
    public double ExplodingGrowth { get; init; } = 1e3;

    /// <summary>A layer is saturated when more than this fraction of its units have a derivative below 1% of the maximum.</summary>
    public double SaturatedFraction { get; init; } = 0.5;

    /// <summary>Dying ReLU when more than this fraction of a layer's units output zero for the whole sampled batch.</summary>
    public double DeadFraction { get; init; } = 0.5;

    /// <summary>Stalled when the loss improved by less than this fraction between the first and second half of the window.</summary>
    public double StallImprovement { get; init; } = 0.01;

    /// <summary>Stalled loss also needs the loss to have improved by less than this fraction since the first sample: a loss that fell far and then flattened has converged.</summary>
    public double StallOverallImprovement { get; init; } = 0.1;

    /// <summary>Oscillating when at least this fraction of successive loss changes flip sign…</summary>
    public double OscillationSignFlips { get; init; } = 0.6;

    /// <summary>…and the loss changes are larger than this fraction of the mean loss (RMS)…</summary>
    public double OscillationAmplitude { get; init; } = 0.25;

    /// <summary>…and the loss is not making progress: the second half of the window improved on the first by less than this fraction (minibatch noise on a falling loss is not oscillation).</summary>
    public double OscillationProgress { get; init; } = 0.05;

    /// <summary>The oscillation amplitude is measured against the recent mean loss, but at least this fraction of the first sample's loss (changes of a nearly solved task are not oscillation).</summary>
    public double OscillationFloor { get; init; } = 0.01;

    /// <summary>A loss at the chance level whose changes flip sign this often (<see cref="OscillationSignFlips"/>) while some step moved a layer's weights by more than this fraction of their norm is bouncing, not descending (the labeller's oscillating mechanism).</summary>
    public double BouncingUpdateRatio { get; init; } = 0.1;

    /// <summary>Update ratio ||ΔW||/||W|| above which the learning rate counts as too large (rule of thumb: about 1e-3 is healthy).</summary>
    public double LargeUpdateRatio { get; init; } = 1e-1;

    /// <summary>Update ratio below which a stalled run's learning rate counts as too small: the weights barely move.</summary>
    public double SmallUpdateRatio { get; init; } = 1e-3;

    /// <summary>
    /// The update ratio a learning-rate remedy aims for, as the preflight predicts it (momentum's
    /// amplification included): the healthy configurations of the catalogue predict 0.014-0.044 (Adam)
    /// and 0.15-0.38 (SGD with momentum 0.9).
    /// </summary>
    public double TargetUpdateRatio { get; init; } = 0.1;

    /// <summary>Preflight: a predicted first-step update ratio ||ΔW||/||W|| above this forecasts divergence (an exploding gradient).</summary>
    public double DivergentUpdateRatio { get; init; } = 1.0;

    /// <summary>
    /// Exploding forward signal when the recent training loss exceeds this multiple of the chance level
    /// (the entropy of the class frequencies, the targets' variance for regression): knowing nothing would do better.
    /// </summary>
    public double FarAboveChance { get; init; } = 3;

    /// <summary>
    /// Stalled loss also when the recent loss is at or above this fraction of the chance level, whatever
    /// its trend: the model has learnt almost nothing. Calibrated on the generated catalogue's calibration
    /// half with 300-step trials (a quarter of its shortest budget): runs that ended healthy were below 0.92
    /// of chance there but for 3 MLPs of 76 runs (and 5 gated recurrent cells still on the adding problem's
    /// plateau). Shorter trials call slow starters stalled: a 3-layer sigmoid MLP on the teacher task is at
    /// 0.96 of chance after 200 steps and ends as well as ReLU.
    /// </summary>
    public double ChanceStall { get; init; } = 0.92;

    /// <summary>
    /// A run is stalled when, after at least <see cref="LinearBaselineSteps"/> steps, it has come less than this share of the way
    /// from the chance level that a linear model of the same inputs comes in that many steps (<see cref="Trials.LinearBaseline"/>):
    /// a deep network that learns five times slower than logistic regression on its own inputs will not make up for it. Calibration
    /// half with 300-step trials (the conv nets included, 2026-12-07): no run that ended healthy was below 0.22 of the linear
    /// model's way, the broken runs below 0.2 that the chance-level stall missed were at 0.15 and 0.17 (a hard-tanh conv net, a
    /// teacher MLP with dying units). 0 turns the rule off.
    /// </summary>
    public double LinearProgress { get; init; } = 0.2;

    /// <summary>Steps the linear baseline trains (at most the run's budget): the trial's length.</summary>
    public int LinearBaselineSteps { get; init; } = 300;

    /// <summary>
    /// The linear baseline is a yardstick only where it learns: its loss must be at or below this fraction of the chance level
    /// (Fashion-MNIST 0.19-0.42 and the teacher tasks 0.31-0.39 after 300 steps; the spirals, circles and the adding problem,
    /// which a linear model cannot learn, 0.92-1.03).
    /// </summary>
    public double LinearBaselineMaxOverChance { get; init; } = 0.8;

    /// <summary>
    /// No linear baseline for inputs × outputs above this many weights: it trains before every watched run (<c>train --monitor</c>
    /// too), so its cost is bounded to about a second of 300 steps (Fashion-MNIST 7 840 weights, CIFAR-10 30 720; a 224 × 224 image
    /// into 1 000 classes would be 150 million, minutes of training and 1.8 GB of weights and Adam state).
    /// </summary>
    public long LinearBaselineMaxWeights { get; init; } = 1 << 20;

    /// <summary>
    /// Saturated or dead units, and an oscillating loss, are reported only while the loss is at or above this
    /// fraction of the chance level: a network that learns well with some units saturated or dead is not stopped
    /// by them (calibration half: healthy runs with 57-86 % saturated or 64-77 % dead units had losses of
    /// 0.002-0.52 of chance), and the swings of a loss far below chance are minibatch noise on a task being learnt.
    /// </summary>
    public double HarmlessBelowChance { get; init; } = 0.6;

    /// <summary>A precision note on fp16 when more than this fraction of a layer's nonzero weight-gradient values lie below fp16's smallest subnormal (median over the window).</summary>
    public double Fp16LossFraction { get; init; } = 0.01;

    /// <summary>A precision note on bf16 when more than this fraction of a layer's weight updates are below half a bf16 ulp (median over the window).</summary>
    public double Bf16SwallowedFraction { get; init; } = 0.5;

    /// <summary>
    /// Per verdict kind: of the runs of the generated catalogue's calibration half (300-step trials, a
    /// recurrent model's plateau looked at again after 600: <see cref="Trials.Run"/>) with this verdict, how many ended broken after full training, and how many there were. A
    /// verdict's confidence is (broken + 1)/(runs + 2). Measured with <c>gradflow evaluate --catalogue
    /// tests/catalogue/generated.json --split calibration</c> (docs/diagnosis.md; re-measured 2026-12-07 with the conv nets in the
    /// half and the linear-baseline stall).
    /// </summary>
    public IReadOnlyDictionary<ProblemKind, (int Broken, int Runs)> Calibration { get; init; } = new Dictionary<ProblemKind, (int, int)>
    {
        [ProblemKind.VanishingGradient] = (42, 45),
        [ProblemKind.ExplodingGradient] = (10, 11),
        [ProblemKind.Saturation] = (7, 7),
        [ProblemKind.DyingRelu] = (7, 7),
        [ProblemKind.NonFinite] = (5, 5),
        [ProblemKind.StalledLoss] = (86, 93),
        [ProblemKind.OscillatingLoss] = (14, 14),
    };

    /// <summary>
    /// A run of at least this many consecutive hidden layers without a shortcut is a deep plain stack, named as a
    /// cause of a vanishing, exploding or stalled run: He et al. 2016 (Fig. 6) found plain nets of 32, 44 and 56
    /// layers training worse than the plain 20-layer one with healthy signals (BatchNorm), and their ResNets of the
    /// same depths better. The plain-20 of that figure (19 hidden layers) stays below it.
    /// </summary>
    public int PlainDepth { get; init; } = 30;

    /// <summary>A head's attention has collapsed when its entropy is below this fraction of ln S (S keys; Zhai et al. 2023).</summary>
    public double EntropyCollapseFraction { get; init; } = 0.1;

    /// <summary>
    /// Post-LN's signature at initialisation (Xiong et al. 2020): the parameter-gradient norm of the last transformer
    /// layer over that of the first, at the first sample, above which the gradients near the output are "large".
    /// </summary>
    public double PostLnGradientGrowth { get; init; } = 2;

    /// <summary>Samples the windowed rules look at (the medians of the last this-many samples).</summary>
    public int Window { get; init; } = 5;

    /// <summary>Minimum samples before the loss-trend rules (stalled, oscillating) speak.</summary>
    public int TrendSamples { get; init; } = 8;

    /// <summary>
    /// Steps below which a whole run that ends at the chance level is called a short run, with more epochs among its remedies:
    /// the default diagnosis trial's 200 steps, the least a verdict reads. A longer run at chance has a stall to cure, not a
    /// budget to stretch.
    /// </summary>
    public int ShortRunSteps { get; init; } = 200;
}
