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
/// <item><term><c>clip:1</c></term><description>clip the global gradient norm at 1</description></item>
/// <item><term><c>lr:0.1</c></term><description>multiply the learning rate by 0.1</description></item>
/// <item><term><c>optimizer:adam</c></term><description>switch optimiser</description></item>
/// </list>
/// </summary>
public static class Remedies
{
    /// <summary>Applies remedy <paramref name="id"/> to <paramref name="config"/>; throws <see cref="FormatException"/> for an unknown id.</summary>
    public static TrainingConfig Apply(string id, TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(config);
        var (kind, arg, range) = Split(id);
        var spec = ModelSpec.ParseAny(config.Model);
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
            "clip" => config with { ClipNorm = Number(id, arg) },
            "lr" => config with { LearningRate = config.LearningRate * Number(id, arg) },
            "optimizer" => config with
            {
                Optimizer = Enum.TryParse<OptimizerKind>(arg.Replace("-", "", StringComparison.Ordinal), ignoreCase: true, out var o)
                    ? o
                    : throw new FormatException($"remedy '{id}': unknown optimizer '{arg}'."),
                LearningRate = 1e-3,
            },
            _ => throw new FormatException($"remedy '{id}': unknown remedy kind '{kind}' (activation, init, norm, residual, clip, lr, optimizer)."),
        };
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
