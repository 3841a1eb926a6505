using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GradFlow.Nn;

/// <summary>Normalisation inserted after a hidden layer's linear map (before its activation).</summary>
public enum NormKind
{
    /// <summary>None.</summary>
    None,
    /// <summary>BatchNorm1d (Ioffe and Szegedy 2015).</summary>
    Batch,
    /// <summary>LayerNorm (Ba et al. 2016).</summary>
    Layer,
}

/// <summary>Whether a hidden layer is wrapped in a residual connection <c>x + f(x)</c>.</summary>
public enum ResidualKind
{
    /// <summary>Plain layer.</summary>
    None,
    /// <summary><c>x + f(x)</c> with the branch at its normal initial scale.</summary>
    Full,
    /// <summary><c>x + α·f(x)</c> with a learnt scalar α starting at 0 (ReZero, Bachlechner et al. 2020; cf. Fixup, zero-γ BN): identity at initialisation.</summary>
    ZeroInit,
}

/// <summary>One hidden layer of an MLP: <c>Linear → [norm] → activation → [dropout]</c>, optionally residual.</summary>
public sealed record LayerSpec(int Width, Activation Activation, InitScheme Init, NormKind Norm = NormKind.None,
    ResidualKind Residual = ResidualKind.None, double Dropout = 0);

/// <summary>
/// A multi-layer perceptron described by data: input size, hidden layers, output size and the
/// output layer's initialiser. Remedies transform specs; <see cref="ModelBuilder"/> builds them.
/// </summary>
/// <remarks>
/// Text grammar (docs/model-spec.md):
/// <code>
/// spec    := "mlp" SP sizes { SP option }
/// sizes   := INT "-" hidden { "-" hidden } "-" INT        input, hidden layers, output
/// hidden  := INT [ "x" INT ]                              width, optionally repeated
/// option  := key "=" value
/// key     := act | init | norm | residual | dropout | out-init
/// </code>
/// e.g. <c>mlp 784-256x8-10 act=tanh init=xavier-uniform norm=none residual=no</c>. Options apply to
/// every hidden layer. The JSON form (<see cref="ToJson"/>) lists layers one by one, so a remedy can
/// change some layers only.
/// </remarks>
public sealed record ModelSpec(int Input, IReadOnlyList<LayerSpec> Hidden, int Output, InitScheme OutputInit) : INetworkSpec
{
    /// <summary>Number of linear layers (hidden + output): the layer indices of the model are 1..this.</summary>
    public int LinearLayers => Hidden.Count + 1;

    private static readonly (string Name, Activation Kind)[] ActivationNames =
    [
        ("identity", Activation.Identity), ("sigmoid", Activation.Sigmoid), ("tanh", Activation.Tanh), ("relu", Activation.Relu),
        ("leaky-relu", Activation.LeakyRelu), ("prelu", Activation.PRelu), ("elu", Activation.Elu), ("selu", Activation.Selu),
        ("gelu", Activation.Gelu), ("gelu-tanh", Activation.GeluTanh), ("silu", Activation.Silu), ("swish", Activation.Silu),
        ("mish", Activation.Mish), ("softplus", Activation.Softplus), ("hard-sigmoid", Activation.HardSigmoid), ("hard-tanh", Activation.HardTanh),
    ];

    /// <summary>The text name of an activation (<c>leaky-relu</c>).</summary>
    public static string NameOf(Activation a) => ActivationNames.First(n => n.Kind == a).Name;

    /// <summary>Parses an activation name; throws listing the valid ones.</summary>
    public static Activation ParseActivation(string text)
    {
        int i = Array.FindIndex(ActivationNames, n => n.Name == text.Trim().ToLowerInvariant());
        if (i < 0) throw new FormatException($"unknown activation '{text}' (valid: {string.Join(", ", ActivationNames.Select(n => n.Name))}).");
        return ActivationNames[i].Kind;
    }

    private static string NameOf(NormKind n) => n switch { NormKind.Batch => "batch", NormKind.Layer => "layer", _ => "none" };

    private static string NameOf(ResidualKind r) => r switch { ResidualKind.Full => "yes", ResidualKind.ZeroInit => "zero", _ => "no" };

    private static NormKind ParseNorm(string s) => s switch
    {
        "none" => NormKind.None,
        "batch" or "batchnorm" => NormKind.Batch,
        "layer" or "layernorm" => NormKind.Layer,
        _ => throw new FormatException($"unknown norm '{s}' (valid: none, batch, layer)."),
    };

    private static ResidualKind ParseResidual(string s) => s switch
    {
        "no" or "none" or "false" => ResidualKind.None,
        "yes" or "true" or "full" => ResidualKind.Full,
        "zero" => ResidualKind.ZeroInit,
        _ => throw new FormatException($"unknown residual '{s}' (valid: no, yes, zero)."),
    };

    /// <summary>Parses the text grammar; errors name the offending token.</summary>
    public static ModelSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2 || tokens[0] != "mlp")
            throw new FormatException($"model spec '{text}': expected 'mlp IN-HIDDEN...-OUT [key=value ...]', e.g. 'mlp 784-256x8-10 act=relu'.");
        var sizes = tokens[1].Split('-');
        if (sizes.Length < 2) throw new FormatException($"model spec: sizes '{tokens[1]}' need at least input and output, e.g. 784-10.");
        int input = ParsePositive(sizes[0], "input size");
        int output = ParsePositive(sizes[^1], "output size");
        var widths = new List<int>();
        foreach (var h in sizes[1..^1])
        {
            var parts = h.Split('x');
            if (parts.Length > 2) throw new FormatException($"model spec: hidden size '{h}' is not WIDTH or WIDTHxCOUNT.");
            int w = ParsePositive(parts[0], "hidden width");
            int count = parts.Length == 2 ? ParsePositive(parts[1], "layer count") : 1;
            if (count > 10000) throw new FormatException($"model spec: '{h}' asks for {count} layers (at most 10000).");
            for (int i = 0; i < count; i++) widths.Add(w);
        }
        Activation act = Activation.Relu;
        InitScheme init = new(InitKind.Default), outInit = new(InitKind.Default);
        NormKind norm = NormKind.None;
        ResidualKind residual = ResidualKind.None;
        double dropout = 0;
        foreach (var opt in tokens[2..])
        {
            int eq = opt.IndexOf('=');
            if (eq <= 0) throw new FormatException($"model spec: option '{opt}' is not key=value.");
            string key = opt[..eq].ToLowerInvariant(), value = opt[(eq + 1)..].ToLowerInvariant();
            switch (key)
            {
                case "act": act = ParseActivation(value); break;
                case "init": init = InitScheme.Parse(value); break;
                case "out-init": outInit = InitScheme.Parse(value); break;
                case "norm": norm = ParseNorm(value); break;
                case "residual": residual = ParseResidual(value); break;
                case "dropout":
                    if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out dropout) || dropout < 0 || dropout >= 1)
                        throw new FormatException($"model spec: dropout '{value}' must be a number in [0, 1).");
                    break;
                default: throw new FormatException($"model spec: unknown option '{key}' (valid: act, init, out-init, norm, residual, dropout).");
            }
        }
        return new ModelSpec(input, widths.Select(w => new LayerSpec(w, act, init, norm, residual, dropout)).ToArray(), output, outInit);
    }

    /// <summary>The text form when every hidden layer has the same options, else null (use <see cref="ToJson"/>).</summary>
    public string? ToText()
    {
        if (Hidden.Count > 0 && Hidden.Any(h => h with { Width = Hidden[0].Width } != Hidden[0] with { Width = Hidden[0].Width })) return null;
        var sb = new StringBuilder("mlp ").Append(Input);
        int i = 0;
        while (i < Hidden.Count)
        {
            int j = i;
            while (j < Hidden.Count && Hidden[j].Width == Hidden[i].Width) j++;
            sb.Append('-').Append(Hidden[i].Width);
            if (j - i > 1) sb.Append('x').Append(j - i);
            i = j;
        }
        sb.Append('-').Append(Output);
        if (Hidden.Count > 0)
        {
            var h = Hidden[0];
            sb.Append(" act=").Append(NameOf(h.Activation)).Append(" init=").Append(h.Init)
              .Append(" norm=").Append(NameOf(h.Norm)).Append(" residual=").Append(NameOf(h.Residual));
            if (h.Dropout > 0) sb.Append(" dropout=").Append(h.Dropout.ToString("R", CultureInfo.InvariantCulture));
        }
        if (OutputInit != new InitScheme(InitKind.Default)) sb.Append(" out-init=").Append(OutputInit);
        return sb.ToString();
    }

    /// <summary>
    /// Learnable parameters, as <see cref="ModelBuilder.Build"/> will create them: per hidden layer
    /// Linear (in·width + width), norm weight and bias (2·width), a PReLU slope, a residual projection
    /// (in·width, when the width changes) and ReZero's α; then the output Linear.
    /// </summary>
    /// <exception cref="OverflowException">beyond <see cref="long.MaxValue"/>.</exception>
    public long ParameterCount()
    {
        long n = 0, prev = Input;
        checked
        {
            foreach (var h in Hidden)
            {
                long w = h.Width;
                n += prev * w + w;
                if (h.Norm != NormKind.None) n += 2 * w;
                if (h.Activation == Activation.PRelu) n += 1;
                if (h.Residual != ResidualKind.None && prev != w) n += prev * w;
                if (h.Residual == ResidualKind.ZeroInit) n += 1;
                prev = w;
            }
            return n + prev * Output + Output;
        }
    }

    /// <summary>The JSON form: <c>{"kind":"mlp","input":..,"output":..,"outputInit":..,"layers":[{"width":..,"activation":..,"init":..,"norm":..,"residual":..,"dropout":..}]}</c>.</summary>
    public JsonObject ToJson()
    {
        var layers = new JsonArray();
        foreach (var h in Hidden)
            layers.Add(new JsonObject
            {
                ["width"] = h.Width,
                ["activation"] = NameOf(h.Activation),
                ["init"] = h.Init.ToString(),
                ["norm"] = NameOf(h.Norm),
                ["residual"] = NameOf(h.Residual),
                ["dropout"] = h.Dropout,
            });
        return new JsonObject
        {
            ["kind"] = "mlp",
            ["input"] = Input,
            ["output"] = Output,
            ["outputInit"] = OutputInit.ToString(),
            ["layers"] = layers,
        };
    }

    /// <summary>Reads the JSON form; errors name the field (<c>layers[3].activation</c>).</summary>
    public static ModelSpec FromJson(JsonNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node is not JsonObject o) throw new FormatException("model JSON: expected an object.");
        string kind = Str(o, "kind", "kind");
        if (kind != "mlp") throw new FormatException($"model JSON: field 'kind' is '{kind}', expected 'mlp'.");
        OnlyFields(o, "model JSON", "kind", "input", "output", "outputInit", "layers");
        int input = Int(o, "input", "input"), output = Int(o, "output", "output");
        var outInit = o["outputInit"] is null ? new InitScheme(InitKind.Default) : Wrap("outputInit", () => InitScheme.Parse(Str(o, "outputInit", "outputInit")));
        if (o["layers"] is not JsonArray arr) throw new FormatException("model JSON: field 'layers' must be an array.");
        var hidden = new List<LayerSpec>();
        for (int i = 0; i < arr.Count; i++)
        {
            string at = $"layers[{i}]";
            if (arr[i] is not JsonObject l) throw new FormatException($"model JSON: {at} must be an object.");
            OnlyFields(l, $"model JSON: {at}", "width", "activation", "init", "norm", "residual", "dropout");
            int width = Int(l, "width", at + ".width");
            var act = Wrap(at + ".activation", () => ParseActivation(Str(l, "activation", at + ".activation")));
            var init = l["init"] is null ? new InitScheme(InitKind.Default) : Wrap(at + ".init", () => InitScheme.Parse(Str(l, "init", at + ".init")));
            var norm = l["norm"] is null ? NormKind.None : Wrap(at + ".norm", () => ParseNorm(Str(l, "norm", at + ".norm")));
            var res = l["residual"] is null ? ResidualKind.None : Wrap(at + ".residual", () => ParseResidual(Str(l, "residual", at + ".residual")));
            double dropout = 0;
            if (l["dropout"] is { } d)
            {
                if (d is not JsonValue dv || !dv.TryGetValue(out dropout) || dropout < 0 || dropout >= 1)
                    throw new FormatException($"model JSON: {at}.dropout must be a number in [0, 1).");
            }
            hidden.Add(new LayerSpec(width, act, init, norm, res, dropout));
        }
        return new ModelSpec(input, hidden, output, outInit);
    }

    /// <summary>
    /// Refuses a field of <paramref name="o"/> not among <paramref name="known"/>, naming it and the known ones: a misspelt field
    /// (<c>"dropuot": 0.5</c>) was ignored, and the model trained without it.
    /// </summary>
    internal static void OnlyFields(JsonObject o, string where, params string[] known)
    {
        foreach (var (name, _) in o)
            if (Array.IndexOf(known, name) < 0)
                throw new FormatException($"{where}: unknown field '{name}' (the fields are {string.Join(", ", known)}).");
    }

    /// <summary>Parses either form: JSON when the text starts with '{', else the text grammar.</summary>
    public static ModelSpec ParseAny(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.TrimStart().StartsWith('{')) return Parse(text);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new FormatException($"model JSON: not valid JSON ({e.Message}).");
        }
        return FromJson(node ?? throw new FormatException("model JSON: empty."));
    }

    /// <inheritdoc />
    public override string ToString() => ToText() ?? ToJson().ToJsonString();

    /// <summary>
    /// A compact readable form: the text form when uniform, else the sizes and runs of equal layers,
    /// e.g. <c>mlp 784-256x20-10: layers 1-18 relu he-normal; 19 sigmoid xavier-uniform norm=batch; 20 sigmoid xavier-uniform</c>.
    /// </summary>
    public string Describe()
    {
        if (ToText() is { } text) return text;
        var sb = new StringBuilder("mlp ").Append(Input);
        foreach (var h in Hidden) sb.Append('-').Append(h.Width);
        sb.Append('-').Append(Output).Append(':');
        int i = 0;
        while (i < Hidden.Count)
        {
            int j = i;
            while (j + 1 < Hidden.Count && Hidden[j + 1] with { Width = Hidden[i].Width } == Hidden[i]) j++;
            var h = Hidden[i];
            sb.Append(i == 0 ? " layers " : "; ").Append(i == j ? $"{i + 1}" : $"{i + 1}-{j + 1}").Append(' ').Append(NameOf(h.Activation)).Append(' ').Append(h.Init);
            if (h.Norm != NormKind.None) sb.Append(" norm=").Append(NameOf(h.Norm));
            if (h.Residual != ResidualKind.None) sb.Append(" residual=").Append(NameOf(h.Residual));
            if (h.Dropout > 0) sb.Append(" dropout=").Append(h.Dropout.ToString("R", CultureInfo.InvariantCulture));
            i = j + 1;
        }
        return sb.ToString();
    }

    private static T Wrap<T>(string field, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (FormatException e) when (!e.Message.StartsWith("model JSON", StringComparison.Ordinal))
        {
            throw new FormatException($"model JSON: {field}: {e.Message}");
        }
    }

    private static string Str(JsonObject o, string key, string field) =>
        o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : throw new FormatException($"model JSON: field '{field}' must be a string.");

    private static int Int(JsonObject o, string key, string field) =>
        o[key] is JsonValue v && v.TryGetValue(out int i) && i > 0 ? i : throw new FormatException($"model JSON: field '{field}' must be a positive integer.");

    private static int ParsePositive(string s, string what) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new FormatException($"model spec: {what} '{s}' is not a positive integer.");
}
