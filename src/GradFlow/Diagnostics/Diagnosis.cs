using System.Text.Json.Serialization;

namespace GradFlow.Diagnostics;

/// <summary>The problems GradFlow detects.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ProblemKind>))]
public enum ProblemKind
{
    /// <summary>The backpropagated signal shrinks by orders of magnitude towards the input.</summary>
    VanishingGradient,
    /// <summary>The signal or the gradient norm grows by orders of magnitude.</summary>
    ExplodingGradient,
    /// <summary>Saturating activations (sigmoid, tanh) sit where their derivative is nearly zero.</summary>
    Saturation,
    /// <summary>ReLU units output zero for every example: they get no gradient and never recover.</summary>
    DyingRelu,
    /// <summary>NaN or infinity in the loss, activations or gradients.</summary>
    NonFinite,
    /// <summary>The loss stopped improving.</summary>
    StalledLoss,
    /// <summary>The loss goes up and down by large amounts.</summary>
    OscillatingLoss,
    /// <summary>A Post-LN transformer trained without a learning-rate warm-up: large gradients near the output at the start (Xiong et al. 2020).</summary>
    PostLnWithoutWarmup,
    /// <summary>Attention heads whose entropy fell toward 0 (one-hot attention) while the model does not learn (Zhai et al. 2023).</summary>
    AttentionEntropyCollapse,
}

/// <summary>A ranked cause of a problem, from facts about the model and the run.</summary>
/// <param name="Name">Short name (<c>saturating activation × depth</c>).</param>
/// <param name="Score">Ranking score (higher first).</param>
/// <param name="Facts">The numbers that support it.</param>
public sealed record Cause(string Name, double Score, string Facts);

/// <summary>A ranked remedy: a concrete change of the model spec and training config.</summary>
/// <param name="Id">Stable identifier (<c>activation:relu+he@1-12</c>).</param>
/// <param name="Description">What changes, in words.</param>
/// <param name="Scope">The layers it touches (empty = none, i.e. a training setting).</param>
public sealed record RemedySuggestion(string Id, string Description, int[] Scope)
{
    /// <summary>The score of the cause it addresses (what <c>gradflow repair</c> ranks remedies of all problems by).</summary>
    public double Score { get; init; }
}

/// <summary>One detected problem: where, the evidence, causes and remedies.</summary>
public sealed record Problem
{
    /// <summary>The kind.</summary>
    public required ProblemKind Kind { get; init; }

    /// <summary>log10 of how far past the threshold (≥ 0; larger is worse).</summary>
    public required double Severity { get; init; }

    /// <summary>Affected layer indices (1..L).</summary>
    public required int[] Layers { get; init; }

    /// <summary>Sampled steps where it was seen.</summary>
    public required long[] Steps { get; init; }

    /// <summary>One sentence: what, where, the numbers.</summary>
    public required string Summary { get; init; }

    /// <summary>The numbers, by name.</summary>
    public required IReadOnlyDictionary<string, double> Evidence { get; init; }

    /// <summary>Causes, most likely first.</summary>
    public IReadOnlyList<Cause> Causes { get; init; } = [];

    /// <summary>Remedies, best first.</summary>
    public IReadOnlyList<RemedySuggestion> Remedies { get; init; } = [];

    /// <summary>
    /// How sure the verdict is: the share of the calibration runs with this verdict whose full training
    /// ended broken (<see cref="DiagnosisSettings.Calibration"/>, Laplace-smoothed); NaN when not calibrated.
    /// </summary>
    public double Confidence { get; init; } = double.NaN;

    /// <summary>What <see cref="Confidence"/> rests on, in words ("38 of 43 calibration runs with this verdict ended broken").</summary>
    public string? ConfidenceBasis { get; init; }
}

/// <summary>
/// What a lower precision would lose at one layer, measured on the float32 run (<see cref="LayerStats.GradientBelowFp16Subnormal"/>,
/// <see cref="LayerStats.UpdatesSwallowedByBf16"/>): advice for training the model in fp16 or bf16, not a problem of this run.
/// </summary>
/// <param name="Layer">The monitored layer (1 = input side).</param>
/// <param name="Kind"><c>fp16-gradient-underflow</c> or <c>bf16-swallowed-updates</c>.</param>
/// <param name="Fraction">The median fraction over the diagnosis window (of the nonzero gradient values, or of the changed weights).</param>
/// <param name="Summary">What would be lost, in words.</param>
/// <param name="Advice">What to do about it.</param>
public sealed record PrecisionNote(int Layer, string Kind, double Fraction, string Summary, string Advice);

/// <summary>The verdict on a model or run (written as <c>diagnosis.json</c>).</summary>
/// <param name="Problems">Problems found, most severe first; empty when healthy.</param>
/// <param name="Samples">Monitor samples the verdict rests on.</param>
/// <param name="GradientRatio">Median gradient ratio over the window.</param>
/// <param name="NonFiniteOrigin">Where a NaN/Inf first appeared, when one did.</param>
public sealed record Diagnosis(IReadOnlyList<Problem> Problems, int Samples, double GradientRatio, string? NonFiniteOrigin = null)
{
    /// <summary>True when no problem was found.</summary>
    public bool Healthy => Problems.Count == 0;

    /// <summary>
    /// The samples the loss-trend rules (stall, oscillation) need, when the verdict had fewer and so did not judge the loss's trend
    /// (a one-step trial); null when it did. A healthy verdict with this set says only that no other rule fired.
    /// </summary>
    public int? TrendNeedsSamples { get; init; }

    /// <summary>What fp16 or bf16 would lose at each layer where it is a notable share (empty when nothing would be, or not measured).</summary>
    public IReadOnlyList<PrecisionNote> Precision { get; init; } = [];
}
