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

    /// <summary>Update ratio ||ΔW||/||W|| above which the learning rate counts as too large (rule of thumb: about 1e-3 is healthy).</summary>
    public double LargeUpdateRatio { get; init; } = 1e-1;

    /// <summary>
    /// The update ratio a learning-rate remedy aims for, as the preflight predicts it (momentum's
    /// amplification included): the healthy configurations of the catalogue predict 0.014-0.044 (Adam)
    /// and 0.15-0.38 (SGD with momentum 0.9).
    /// </summary>
    public double TargetUpdateRatio { get; init; } = 0.1;

    /// <summary>Preflight: a predicted first-step update ratio ||ΔW||/||W|| above this forecasts divergence (an exploding gradient).</summary>
    public double DivergentUpdateRatio { get; init; } = 1.0;

    /// <summary>Samples the windowed rules look at (the medians of the last this-many samples).</summary>
    public int Window { get; init; } = 5;

    /// <summary>Minimum samples before the loss-trend rules (stalled, oscillating) speak.</summary>
    public int TrendSamples { get; init; } = 8;
}
