using System.Globalization;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// Remedies as transformations of a training config (its model spec and its settings). Each remedy
/// has an id, <c>kind:argument[@first-last]</c>; the optional layer range limits a model change to
/// those hidden layers (the faulty ones), so the smallest change can be tried first:
/// <list type="table">
/// <item><term><c>activation:relu@a-b</c></term><description>ReLU with its matched He-normal init (also <c>leaky-relu</c>, <c>gelu</c>, <c>selu</c>+LeCun, <c>tanh</c>+Xavier)</description></item>
/// <item><term><c>init:xavier@a-b</c></term><description>re-initialise: <c>xavier</c> (gain of the activation), <c>he</c>, <c>orthogonal</c>, <c>lsuv</c></description></item>
/// <item><term><c>norm:batch@a-b</c></term><description>insert BatchNorm (or <c>layer</c>) before the activation</description></item>
/// <item><term><c>residual:zero@a-b</c></term><description>wrap the layers in residual connections with zero-initialised branches</description></item>
/// <item><term><c>norm:pre-ln</c></term><description>transformers: every Post-LN layer becomes Pre-LN, with a final LayerNorm (<c>norm:qk</c>: QK normalisation in every layer)</description></item>
/// <item><term><c>warmup:100</c></term><description>warm the learning rate up linearly over the first 100 steps</description></item>
/// <item><term><c>clip:1</c></term><description>clip the global gradient norm at 1</description></item>
/// <item><term><c>lr:0.1</c></term><description>multiply the learning rate by 0.1</description></item>
/// <item><term><c>epochs:5</c></term><description>train 5 times longer (the epochs, and a step limit if set)</description></item>
/// <item><term><c>optimizer:adam</c></term><description>switch optimiser, at learning rate 1e-3 (<c>optimizer:adam=0.01</c>: at 0.01)</description></item>
/// <item><term><c>recipe:standard</c></term><description>the standard recipe at once: an MLP's hidden layers become ReLU with He-normal init in residual blocks with zero-started branches; a recurrent network's cell a GRU; the gradient norm clipped at 1 (norms, widths and depth are kept); a conv net's the ResNet recipe (ReLU, He init, BatchNorm after each conv, zero-started residual blocks); a transformer's layers Pre-LN with QK normalisation and a warm-up</description></item>
/// <item><term><c>cell:lstm</c></term><description>recurrent networks: switch the cell (<c>lstm</c> with forget-gate bias 1, <c>gru</c>)</description></item>
/// <item><term><c>init:orthogonal</c></term><description>recurrent networks: W_hh orthogonal (<c>identity</c>: the IRNN)</description></item>
/// <item><term><c>forget-bias:1</c></term><description>LSTM: the forget-gate bias</description></item>
/// </list>
/// Remedies combine with <c> + </c> (<c>recipe:standard + optimizer:adam</c>): applied left to right.
/// On an MLP or recurrent spec (<see cref="TrainingConfig.Spec"/>) a remedy rewrites the spec, as it
/// always has; on any other description (a conv net, a ResNet, a <c>net …</c> text) it is the same
/// rewrite of the description (<see cref="DescriptionRemedies"/>, with <see cref="Nn.Network.Rewrites"/>),
/// the range counting the description's hidden layers (<see cref="NetworkFacts"/>).
/// </summary>
public static class Remedies
{
    /// <summary>
    /// Whether <paramref name="after"/> (a remedy applied to <paramref name="before"/>) trains something else: any field but the
    /// model changed, or the model's description did. A spec rewritten with what it already had is re-rendered in full
    /// (<c>init=he-normal</c> becomes <c>init=he-normal norm=none residual=no</c>), so the model strings differ for the same model:
    /// <c>init:he</c> on an He net is no change, and is neither offered nor tried.
    /// </summary>
    public static bool Changes(TrainingConfig before, TrainingConfig after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        if (after == before) return false;
        if (after with { Model = before.Model } != before) return true;
        return after.Description().ToString() != before.Description().ToString();
    }

    /// <summary>
    /// Whether remedy <paramref name="id"/> changes what <paramref name="config"/> trains (<see cref="Changes(TrainingConfig, TrainingConfig)"/>),
    /// or null when it does not apply to it (its rewrite throws).
    /// </summary>
    public static bool? Changes(string id, TrainingConfig config)
    {
        try
        {
            return Changes(config, Apply(id, config));
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Applies remedy <paramref name="id"/> to <paramref name="config"/>; throws <see cref="FormatException"/> for an unknown id.</summary>
    public static TrainingConfig Apply(string id, TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(config);
        if (id.Contains('+', StringComparison.Ordinal))
            return id.Split('+', StringSplitOptions.TrimEntries).Aggregate(config, (c, part) =>
                part.Length > 0 ? Apply(part, c) : throw new FormatException($"remedy '{id}': empty part in a combination."));
        var (kind, arg, range) = Split(id);
        switch (kind)
        {
            case "clip": return config with { ClipNorm = Number(id, arg) };
            case "warmup":
                return config with
                {
                    WarmupSteps = int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out int w) && w >= 1
                        ? w
                        : throw new FormatException($"remedy '{id}': '{arg}' is not a positive whole number of steps."),
                };
            case "lr": return config with { LearningRate = config.LearningRate * Number(id, arg) };
            case "epochs":
                int times = int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out int f) && f >= 2
                    ? f
                    : throw new FormatException($"remedy '{id}': '{arg}' is not a whole factor of at least 2.");
                return config with { Epochs = checked(config.Epochs * times), MaxSteps = config.MaxSteps is { } m ? checked(m * times) : null };
            case "optimizer":
                int eq = arg.IndexOf('=');
                string name = eq < 0 ? arg : arg[..eq];
                var target = EnumNames.TryParse<OptimizerKind>(name, out var o)
                    ? o
                    : throw new FormatException($"remedy '{id}': unknown optimizer '{name}' ({string.Join(", ", EnumNames.All<OptimizerKind>())}).");
                return config with
                {
                    Optimizer = KeepDecoupledDecay(config, target),
                    LearningRate = eq < 0 ? 1e-3 : Number(id, arg[(eq + 1)..]),
                    Nesterov = config.Nesterov && target == OptimizerKind.Sgd, // SGD's own momentum; another optimizer has none
                };
            case "recipe" when arg != "standard":
                throw new FormatException($"remedy '{id}': unknown recipe '{arg}' (standard).");
        }
        if (config.Spec() is not { } network) return DescriptionRemedies.Apply(id, kind, arg, range, config);
        if (kind == "recipe")
        {
            if (range is not null) throw new FormatException($"remedy '{id}': a recipe applies to the whole network (no @range).");
            var clipped = config with { ClipNorm = Math.Min(config.ClipNorm ?? 1, 1) };
            return network switch
            {
                RecurrentSpec r => clipped with { Model = (r with { Cell = RecurrentCellKind.Gru, ForgetBias = null, Init = KeepInit(r.Init) }).ToString() },
                ModelSpec m => clipped with
                {
                    Model = (m with
                    {
                        Hidden = m.Hidden.Select(h => h with
                        {
                            Activation = Activation.Relu,
                            Init = new InitScheme(InitKind.KaimingNormal),
                            Residual = m.Hidden.Count >= 2 ? ResidualKind.ZeroInit : h.Residual,
                        }).ToArray(),
                    }).ToString(),
                },
                _ => throw new FormatException($"remedy '{id}': no recipe for {config.Model}."),
            };
        }
        if (network is RecurrentSpec recurrent) return config with { Model = ApplyRecurrent(id, kind, arg, range is not null, recurrent).ToString() };
        var spec = (ModelSpec)network;
        int first = range?.First ?? 1, last = Math.Min(range?.Last ?? spec.Hidden.Count, spec.Hidden.Count);
        if (first < 1 || first > last && spec.Hidden.Count > 0 && range is not null)
            throw new FormatException($"remedy '{id}': layer range {first}-{last} is outside the hidden layers 1-{spec.Hidden.Count}.");
        ModelSpec Layers(Func<LayerSpec, LayerSpec> change) => spec with
        {
            Hidden = spec.Hidden.Select((h, i) => i + 1 >= first && i + 1 <= last ? change(h) : h).ToArray(),
        };
        TrainingConfig WithModel(ModelSpec s) => config with { Model = s.ToString() };
        return kind switch
        {
            "activation" => WithModel(Layers(h => arg switch
            {
                "relu" => h with { Activation = Activation.Relu, Init = new InitScheme(InitKind.KaimingNormal) },
                "leaky-relu" => h with { Activation = Activation.LeakyRelu, Init = new InitScheme(InitKind.KaimingNormal) },
                "gelu" => h with { Activation = Activation.Gelu, Init = new InitScheme(InitKind.KaimingNormal) },
                "selu" => h with { Activation = Activation.Selu, Init = new InitScheme(InitKind.LecunNormal) },
                "tanh" => h with { Activation = Activation.Tanh, Init = new InitScheme(InitKind.XavierUniform) },
                _ => throw new FormatException($"remedy '{id}': unknown activation '{arg}' (relu, leaky-relu, gelu, selu, tanh)."),
            })),
            "init" => arg == "lsuv"
                ? WithModel(Layers(h => h with { Init = new InitScheme(InitKind.Lsuv) }) with { OutputInit = new InitScheme(InitKind.Lsuv) })
                : WithModel(Layers(h => h with
                {
                    Init = arg switch
                    {
                        "xavier" => new InitScheme(InitKind.XavierUniform),
                        "he" => new InitScheme(InitKind.KaimingNormal),
                        "orthogonal" => new InitScheme(InitKind.Orthogonal),
                        _ => throw new FormatException($"remedy '{id}': unknown initialiser '{arg}' (xavier, he, orthogonal, lsuv)."),
                    },
                })),
            "norm" => WithModel(Layers(h => h with
            {
                Norm = arg switch
                {
                    "batch" => NormKind.Batch,
                    "layer" => NormKind.Layer,
                    _ => throw new FormatException($"remedy '{id}': unknown norm '{arg}' (batch, layer)."),
                },
            })),
            "residual" => WithModel(Layers(h => h with
            {
                Residual = arg switch
                {
                    "zero" => ResidualKind.ZeroInit,
                    "full" => ResidualKind.Full,
                    _ => throw new FormatException($"remedy '{id}': unknown residual '{arg}' (zero, full)."),
                },
            })),
            _ => throw new FormatException($"remedy '{id}': unknown remedy kind '{kind}' (activation, init, norm, residual, clip, lr, optimizer, recipe)."),
        };
    }

    /// <summary>
    /// The remedies of a recurrent network: <c>cell:lstm</c> (with forget-gate bias 1), <c>cell:gru</c>,
    /// <c>cell:rnn</c>; <c>init:orthogonal</c> (W_hh's gate blocks orthogonal), <c>init:identity</c> (the
    /// IRNN: ReLU units, W_hh = I, zero biases); <c>forget-bias:V</c> (LSTM).
    /// </summary>
    private static RecurrentSpec ApplyRecurrent(string id, string kind, string arg, bool hasRange, RecurrentSpec spec)
    {
        if (hasRange) throw new FormatException($"remedy '{id}': a recurrent network's remedies apply to every layer (no @range).");
        return kind switch
        {
            "cell" => arg switch
            {
                "lstm" => spec with { Cell = RecurrentCellKind.Lstm, ForgetBias = 1, Init = KeepInit(spec.Init) },
                "gru" => spec with { Cell = RecurrentCellKind.Gru, ForgetBias = null, Init = KeepInit(spec.Init) },
                "rnn" or "rnn-tanh" => spec with { Cell = RecurrentCellKind.RnnTanh, ForgetBias = null },
                _ => throw new FormatException($"remedy '{id}': unknown cell '{arg}' (lstm, gru, rnn)."),
            },
            "init" => arg switch
            {
                "orthogonal" => spec with { Init = new RecurrentInit(RecurrentInitKind.Orthogonal) },
                "identity" => spec.IsVanilla
                    ? spec with { Cell = RecurrentCellKind.RnnRelu, Init = new RecurrentInit(RecurrentInitKind.Identity) }
                    : throw new FormatException($"remedy '{id}': the identity initialisation (IRNN) is for a vanilla RNN."),
                "default" => spec with { Init = new RecurrentInit(RecurrentInitKind.Default) },
                _ => throw new FormatException($"remedy '{id}': unknown recurrent initialiser '{arg}' (orthogonal, identity, default)."),
            },
            "forget-bias" => spec.Cell == RecurrentCellKind.Lstm
                ? spec with { ForgetBias = double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v : throw new FormatException($"remedy '{id}': '{arg}' is not a number.") }
                : throw new FormatException($"remedy '{id}': forget-bias applies to an LSTM."),
            _ => throw new FormatException($"remedy '{id}': '{kind}' does not apply to a recurrent network (cell, init, forget-bias, clip, lr, optimizer)."),
        };
    }

    // identity (IRNN) is a ReLU RNN's start; a gated cell takes the orthogonal start instead, the default otherwise
    internal static RecurrentInit KeepInit(RecurrentInit init) => init.Kind switch
    {
        RecurrentInitKind.Orthogonal => new RecurrentInit(RecurrentInitKind.Orthogonal),
        _ => new RecurrentInit(RecurrentInitKind.Default),
    };

    /// <summary>
    /// The standard recipe for a run the diagnosis found broken, or null when the config already follows it:
    /// <c>recipe:standard</c>, and Adam (1e-3 for an MLP, 1e-2 for a recurrent network, whose gates need larger
    /// steps to leave the plateau within a short budget, and for a conv net, whose recipe puts a BatchNorm after every conv) when the
    /// optimiser is implicated — the trial's loss
    /// stalled, or a learning-rate cause was named. (Adam at 3e-3 for MLPs was measured too: on the calibration
    /// half it repaired the two-dimensional spirals that learn too slowly at 1e-3, but lost more Fashion-MNIST
    /// runs than it gained: 74 of 82 repaired against 75. For the generated catalogue's conv nets, with the recipe that keeps them
    /// plain, 1e-2 repaired 10 of the calibration half's 16 broken runs against 6 at 3e-3; with the zero-started residual wrapping
    /// it had, 3e-3 repaired 5 against 4 at 1e-3.)
    /// </summary>
    public static RemedySuggestion? Recipe(Diagnosis diagnosis, TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(diagnosis);
        ArgumentNullException.ThrowIfNull(config);
        if (diagnosis.Healthy) return null;
        var spec = config.Spec();
        // a description that is not a spec, read once
        var description = spec is null ? config.Description() : null;
        bool recurrent = spec is RecurrentSpec || description is not null && DescriptionRemedies.IsRecurrent(description);
        bool optimiser = diagnosis.Problems.Any(p => p.Kind == ProblemKind.StalledLoss ||
            p.Causes.Any(c => c.Name.StartsWith("learning rate", StringComparison.Ordinal) || c.Name == "plain SGD"));
        bool conv = !recurrent && description is not null && DescriptionRemedies.HasConv(description);
        double lr = recurrent || conv ? 1e-2 : 1e-3;
        // a transformer already on Adam keeps its learning rate: Pre-LN and the warm-up are its cure (Xiong et al. 2020)
        bool transformer = description is not null && NetworkFacts.Flatten(description.Root).Any(b => b is Nn.Network.TransformerLayerBlock);
        bool adamAlready = config.Optimizer is OptimizerKind.Adam or OptimizerKind.AdamW && (transformer || config.LearningRate >= lr / 2 && config.LearningRate <= lr * 3);
        string id = optimiser && !adamAlready
            ? "recipe:standard + " + (recurrent || conv ? string.Create(CultureInfo.InvariantCulture, $"optimizer:adam={lr:G}") : "optimizer:adam")
            : "recipe:standard";
        // a run that ends at chance within its whole budget also gets the steps it may lack (else the recipe is judged on as few)
        bool shortRun = diagnosis.Problems.Any(p => p.Causes.Any(c => c.Name == Diagnoser.ShortRunCause));
        if (shortRun) id += string.Create(CultureInfo.InvariantCulture, $" + epochs:{Diagnoser.LongerRun}");
        if (!Changes(config, Apply(id, config))) return null;
        string model = transformer
            ? "Pre-LN transformer layers with QK normalisation" + (!HasWarmup(config) ? $" and a {DefaultWarmup(config)}-step warm-up" : "")
            : recurrent
            ? "a GRU cell (its update gate carries the signal through time)"
            : conv
                ? DescriptionRemedies.RecipeKeepsConvLayers(description!)
                    ? "ReLU hidden layers with He init and BatchNorm after every conv"
                    : "ReLU hidden layers with He init and BatchNorm in residual blocks whose branches start at zero (the ResNet recipe)"
                : "ReLU hidden layers with He-normal init in residual blocks whose branches start at zero";
        string opt = !id.Contains("optimizer", StringComparison.Ordinal) ? ""
            : KeepDecoupledDecay(config, OptimizerKind.Adam) == OptimizerKind.AdamW
                ? string.Create(CultureInfo.InvariantCulture, $", AdamW at {lr:G} (the weight decay {config.WeightDecay:G} stays decoupled)")
                : string.Create(CultureInfo.InvariantCulture, $", Adam at {lr:G}");
        return new RemedySuggestion(id, $"the standard recipe at once: {model}{opt}, the gradient norm clipped at 1{(shortRun ? $", trained {Diagnoser.LongerRun} times longer" : "")}", []);
    }

    /// <summary>
    /// The optimiser a switch to <paramref name="target"/> gives: Adam becomes AdamW when the config has weight
    /// decay and is not already Adam, so the decay stays decoupled. Adam's weight decay is an L2 term added to the
    /// gradient, which Adam then normalises: 0.01 carried over from AdamW (or from SGD, where it shrinks the weights
    /// by lr·λ per step, as AdamW's does) dominates the small gradients of a run on a plateau and keeps it there
    /// (measured on the adding problem: a GRU at Adam 1e-2 ends at test MSE 0.16 with λ = 0.01 as L2, 0.0005 with it
    /// decoupled).
    /// </summary>
    internal static OptimizerKind KeepDecoupledDecay(TrainingConfig config, OptimizerKind target) =>
        target == OptimizerKind.Adam && config.WeightDecay > 0 && config.Optimizer != OptimizerKind.Adam ? OptimizerKind.AdamW : target;

    /// <summary>
    /// The warm-up the diagnosis proposes: a tenth of the config's step limit (at least 1), or 100 steps when it
    /// has none (Vaswani et al. 2017 warm up over 4,000 of 100,000 steps; short runs need a larger share).
    /// </summary>
    public static int DefaultWarmup(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.MaxSteps is { } m ? Math.Max(1, m / 10) : 100;
    }

    /// <summary>
    /// Whether <paramref name="config"/> warms its learning rate up: over at least half the steps of <see cref="DefaultWarmup"/>. A
    /// shorter warm-up (<c>--warmup 1</c>) reaches the full rate before the Post-LN layers' large initial gradients have settled, so
    /// the transformer rules treat it as none and propose the default one.
    /// </summary>
    public static bool HasWarmup(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.WarmupSteps > 0 && 2L * config.WarmupSteps >= DefaultWarmup(config);
    }

    /// <summary>The id of a remedy on a range of hidden layers (no range when it covers all of them).</summary>
    public static string Id(string kind, string arg, int first, int last, int hiddenLayers) =>
        first <= 1 && last >= hiddenLayers ? $"{kind}:{arg}" : $"{kind}:{arg}@{first}-{last}";

    private static (string Kind, string Arg, (int First, int Last)? Range) Split(string id)
    {
        int colon = id.IndexOf(':');
        if (colon <= 0) throw new FormatException($"remedy '{id}': expected kind:argument[@first-last].");
        string kind = id[..colon], rest = id[(colon + 1)..];
        int at = rest.IndexOf('@');
        if (at < 0) return (kind, rest, null);
        var parts = rest[(at + 1)..].Split('-');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int a) ||
            !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int b) || a > b)
            throw new FormatException($"remedy '{id}': bad layer range '{rest[(at + 1)..]}' (expected first-last).");
        return (kind, rest[..at], (a, b));
    }

    private static double Number(string id, string arg) =>
        double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 && double.IsFinite(v)
            ? v
            : throw new FormatException($"remedy '{id}': '{arg}' is not a positive number.");
}
