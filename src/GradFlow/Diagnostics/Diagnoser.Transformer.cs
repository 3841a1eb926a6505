using System.Globalization;
using GradFlow.Nn.Network;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>What the transformer rules read of a description: its transformer layers (Post-LN or Pre-LN, QK normalisation).</summary>
/// <param name="Layers">The transformer layers, input side first.</param>
internal sealed record TransformerFacts(IReadOnlyList<TransformerLayerBlock> Layers)
{
    /// <summary>Whether any layer is Post-LN (its norm after the residual sum).</summary>
    public bool PostLn => Layers.Any(l => !l.NormFirst);

    /// <summary>Whether every layer normalises its queries and keys.</summary>
    public bool QkNorm => Layers.All(l => l.QkNorm);

    /// <summary>The facts of <paramref name="d"/>'s transformer layers, or null when it has none.</summary>
    public static TransformerFacts? Of(NetworkDescription d)
    {
        var layers = NetworkFacts.Flatten(d.Root).OfType<TransformerLayerBlock>().ToArray();
        return layers.Length == 0 ? null : new TransformerFacts(layers);
    }
}

public static partial class Diagnoser
{
    /// <summary>The problems of a run that does not learn, which in a Post-LN transformer without warm-up name that as their cause.</summary>
    private static readonly ProblemKind[] Trouble =
        [ProblemKind.VanishingGradient, ProblemKind.ExplodingGradient, ProblemKind.NonFinite, ProblemKind.StalledLoss, ProblemKind.OscillatingLoss];

    /// <summary>
    /// The transformer rules (docs/diagnosis.md, "Transformers"): Post-LN without warm-up, attention-entropy
    /// collapse, and the transformer remedies (Pre-LN, warm-up, a lower learning rate, QK normalisation) put
    /// first on the vanishing, exploding, stalled and oscillating verdicts, whose remedies that do not change a
    /// transformer (the MLP rewrites of hidden layers it does not have) are dropped.
    /// </summary>
    private static void TransformerRules(List<Problem> problems, IReadOnlyList<MonitorSample> samples, ModelFacts f, DiagnosisSettings s)
    {
        var t = f.Transformer!;
        var first = samples.FirstOrDefault(x => x.Layers.Length > 0 && x.Blocks is { Length: > 0 });
        // Xiong et al.'s quantity: the parameter-gradient norm of each transformer layer (its two sub-layers' weights) by layer index
        double growth = double.NaN;
        if (first is not null)
        {
            double Norm(BlockStats b) => Math.Sqrt(Square(first.Layers[b.AttentionLayer - 1].ParameterGradientNorm) + Square(first.Layers[b.AttentionLayer].ParameterGradientNorm));
            growth = Norm(first.Blocks![^1]) / Norm(first.Blocks[0]);
        }
        bool trouble = problems.Any(p => Trouble.Contains(p.Kind));
        var transformerRemedies = TransformerRemedies(f, t);
        for (int i = 0; i < problems.Count; i++)
            if (Trouble.Contains(problems[i].Kind))
                problems[i] = problems[i] with
                {
                    // (the transformer remedies' learning rate replaces the problem's own: a stall's lr:3 beside their lower rate
                    // told the user to raise and to lower it at once)
                    Remedies = transformerRemedies.Select(r => r with { Score = r.Score - 0.5 })
                        .Concat(problems[i].Remedies.Where(r => transformerRemedies.All(x => x.Id != r.Id && !(IsLearningRate(x) && IsLearningRate(r)))
                            && Remedies.Changes(r.Id, f.Config) == true)).ToArray(),
                };
        if (t.PostLn && !Remedies.HasWarmup(f.Config) && (trouble || growth > s.PostLnGradientGrowth) && first is not null)
        {
            var causes = new List<Cause>
            {
                new("Post-LN without warm-up", 3, string.Create(CultureInfo.InvariantCulture,
                    $"{t.Layers.Count(l => !l.NormFirst)} of {t.Layers.Count} transformer layers normalise after the residual sum (Post-LN) and the learning rate {WarmupWords(f.Config)}: every gradient reaching the lower layers passes through each layer's norm, and at initialisation the gradients of the layers near the output are the largest (Xiong et al. 2020: O(d·√ln d) at the last layer, against O(d·√(ln d / L)) for Pre-LN), so full-size steps there disturb the rest before it has learnt")),
            };
            f.AddLearningRate(causes);
            problems.Add(new Problem
            {
                Kind = ProblemKind.PostLnWithoutWarmup,
                Severity = trouble ? problems.Where(p => Trouble.Contains(p.Kind)).Max(p => p.Severity) + 0.1 : Math.Log10(growth / s.PostLnGradientGrowth),
                Layers = first.Blocks!.SelectMany(b => new[] { b.AttentionLayer, b.AttentionLayer + 1 }).ToArray(),
                Steps = [first.Step],
                Summary = string.Create(CultureInfo.InvariantCulture,
                    $"Post-LN without warm-up: {(trouble ? "the run does not learn (" + string.Join(", ", problems.Where(p => Trouble.Contains(p.Kind)).Select(p => Catalogue.KindName(p.Kind))) + ")" : "the gradients grow toward the output")}; at the first sample the last transformer layer's parameter-gradient norm is {growth:G3}× the first's (Xiong et al. 2020; threshold {s.PostLnGradientGrowth:G2}× alone), and the learning rate {WarmupWords(f.Config)}"),
                Evidence = new Dictionary<string, double>
                {
                    ["gradient_norm_growth"] = growth,
                    ["post_ln_layers"] = t.Layers.Count(l => !l.NormFirst),
                    ["learning_rate"] = f.Config.LearningRate,
                },
                Causes = causes.OrderByDescending(c => c.Score).ToArray(),
                Remedies = transformerRemedies,
            });
        }
        if (EntropyCollapse(problems, samples, f, s, transformerRemedies) is { } collapse) problems.Add(collapse);
    }

    /// <summary>
    /// Attention-entropy collapse: in some transformer layer at least half of the heads have a median entropy over
    /// the window below <see cref="DiagnosisSettings.EntropyCollapseFraction"/> of ln S, and the model does not
    /// learn (a stalled, oscillating, exploding or non-finite verdict, or, while queries and keys are not normalised, a
    /// loss not far below chance) — a sharp head in a model that learns (a character model's head on the previous
    /// character) is not a problem.
    /// </summary>
    /// <remarks>
    /// With QK normalisation the logits cannot run away (Wortsman et al. 2023), so a sharp head there was learnt, and only
    /// an unstable or stalled loss makes it a problem. The loss level alone misjudged such a model: the KJV character model
    /// of docs/transformers.md (Pre-LN, QK-normalised, AdamW 0.03, seed 2) reaches 3.09 bits per character with its two
    /// first-layer heads at 0.16-0.19 nats and its loss at 0.70 of the letter-frequency level, and the verdict's one remedy,
    /// a lower rate, trained it to 3.24-3.26.
    /// </remarks>
    private static Problem? EntropyCollapse(List<Problem> problems, IReadOnlyList<MonitorSample> samples, ModelFacts f, DiagnosisSettings s,
        RemedySuggestion[] transformerRemedies)
    {
        var window = samples.Where(x => x.Blocks is { Length: > 0 }).TakeLast(s.Window).ToArray();
        if (window.Length == 0) return null;
        var blocks = window[^1].Blocks!;
        double maxEntropy = blocks[0].MaxEntropy;
        if (!(maxEntropy > 0)) return null;
        double threshold = s.EntropyCollapseFraction * maxEntropy;
        var collapsed = new List<(int Block, int Head, double Entropy)>();
        foreach (var b in blocks)
        {
            var heads = Enumerable.Range(0, b.AttentionEntropy.Length)
                .Select(h => (b.Block, h + 1, Median(window.Select(w => w.Blocks![b.Block - 1].AttentionEntropy[h])))).Where(x => x.Item3 < threshold).ToArray();
            if (2 * heads.Length >= b.AttentionEntropy.Length) collapsed.AddRange(heads);
        }
        if (collapsed.Count == 0) return null;
        double loss = Median(window.Select(TrendLoss));
        bool unstable = problems.Any(p => p.Kind is ProblemKind.StalledLoss or ProblemKind.OscillatingLoss or ProblemKind.ExplodingGradient or ProblemKind.NonFinite);
        bool notLearning = !f.Transformer!.QkNorm && double.IsFinite(f.ChanceLoss) && !(f.OverChance(loss) < s.HarmlessBelowChance);
        if (!unstable && !notLearning) return null;
        double worst = collapsed.Min(c => c.Entropy);
        var start = samples.First(x => x.Blocks is { Length: > 0 }).Blocks!;
        double startMean = collapsed.Average(c => start[c.Block - 1].AttentionEntropy[c.Head - 1]);
        var causes = new List<Cause>();
        if (!f.Transformer!.QkNorm)
            causes.Add(new Cause("attention logits unbounded", 2.5, string.Create(CultureInfo.InvariantCulture,
                $"queries and keys are not normalised, so the logits q·k/√d grow with their norms and the softmax turns one-hot: {collapsed.Count} head{(collapsed.Count == 1 ? "" : "s")} below {threshold:G3} nats ({s.EntropyCollapseFraction:G2}·ln S, ln S = {maxEntropy:G3}), lowest {worst:G3}; a one-hot head passes almost no gradient to its queries and keys (Zhai et al. 2023; Dehghani et al. 2023 normalise Q and K)")));
        f.AddLearningRate(causes);
        if (f.Transformer.PostLn && !Remedies.HasWarmup(f.Config))
            causes.Add(new Cause("Post-LN without warm-up", 1.5, "Post-LN at the full learning rate from the first step (Xiong et al. 2020)"));
        // QK normalisation first, then a lower learning rate, a warm-up, Pre-LN
        double Rank(RemedySuggestion r) => r.Id == "norm:qk" ? 3 : IsLearningRate(r) ? 2.5 : r.Id.StartsWith("warmup:", StringComparison.Ordinal) ? 2 : 1.5;
        return new Problem
        {
            Kind = ProblemKind.AttentionEntropyCollapse,
            Severity = Math.Log10(threshold / Math.Max(worst, 1e-6 * threshold)),
            Layers = collapsed.Select(c => blocks[c.Block - 1].AttentionLayer).Distinct().ToArray(),
            Steps = window.Select(w => w.Step).ToArray(),
            Summary = string.Create(CultureInfo.InvariantCulture,
                $"attention-entropy collapse: {string.Join(", ", collapsed.Select(c => $"layer {blocks[c.Block - 1].AttentionLayer} (the attention of transformer layer {c.Block}) head {c.Head} at {c.Entropy:G2}"))} nats (threshold {threshold:G2} = {s.EntropyCollapseFraction:G2}·ln {Math.Round(Math.Exp(maxEntropy))}; {startMean:G2} at the first sample) while {(unstable ? "the loss is unstable or stalled" : string.Create(CultureInfo.InvariantCulture, $"the loss {loss:G3} is not far below chance {f.ChanceLoss:G3}"))}"),
            Evidence = new Dictionary<string, double>
            {
                ["min_entropy"] = worst,
                ["max_entropy"] = maxEntropy,
                ["collapsed_heads"] = collapsed.Count,
                ["first_sample_entropy"] = startMean,
                ["loss_over_chance"] = f.OverChance(loss),
            },
            Causes = causes.OrderByDescending(c => c.Score).ToArray(),
            Remedies = transformerRemedies.Select(r => r with { Score = Rank(r) }).OrderByDescending(r => r.Score).ToArray(),
        };
    }

    /// <summary>The transformer remedies that change this config, best first: Pre-LN, a warm-up, QK normalisation, a lower learning rate.</summary>
    private static RemedySuggestion[] TransformerRemedies(ModelFacts f, TransformerFacts t)
    {
        int warmup = Remedies.DefaultWarmup(f.Config);
        var list = new List<RemedySuggestion>();
        if (t.PostLn)
            list.Add(new RemedySuggestion("norm:pre-ln", "switch to Pre-LN: each sub-layer reads a normalised copy and adds to an identity residual path, with a final LayerNorm (Xiong et al. 2020: well-behaved gradients at initialisation, no warm-up needed)", []) { Score = 3 });
        if (!Remedies.HasWarmup(f.Config))
            list.Add(new RemedySuggestion($"warmup:{warmup}", string.Create(CultureInfo.InvariantCulture, $"warm the learning rate up linearly over the first {warmup} steps (Vaswani et al. 2017; Xiong et al. 2020)"), []) { Score = 2.5 });
        if (!t.QkNorm)
            list.Add(new RemedySuggestion("norm:qk", "normalise each head's queries and keys (LayerNorm over the head dimension) so the attention logits stay bounded (Dehghani et al. 2023)", []) { Score = 2 });
        var lr = f.LearningRateRemedy();
        list.Add(lr with { Score = 1.5 });
        // only remedies that apply and change something (compared by the description: a rewrite that changes nothing still spells the model out)
        return list.Where(r => Remedies.Changes(r.Id, f.Config) == true).ToArray();
    }

    private static double Square(double x) => x * x;

    private static bool IsLearningRate(RemedySuggestion r) => r.Id.StartsWith("lr:", StringComparison.Ordinal);

    /// <summary>How the learning rate of a config without a warm-up (<see cref="Remedies.HasWarmup"/>) starts, for the verdicts' text.</summary>
    private static string WarmupWords(TrainingConfig c) => c.WarmupSteps == 0
        ? string.Create(CultureInfo.InvariantCulture, $"starts at its full {c.LearningRate:G3} (no warm-up)")
        : string.Create(CultureInfo.InvariantCulture, $"reaches its full {c.LearningRate:G3} after a warm-up of {c.WarmupSteps} step{(c.WarmupSteps == 1 ? "" : "s")}, under half the {Remedies.DefaultWarmup(c)} the warm-up remedy gives (too short to count)");
}
