using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>A model described by data: an MLP (<see cref="ModelSpec"/>) or a recurrent network (<see cref="RecurrentSpec"/>).</summary>
public interface INetworkSpec
{
    /// <summary>Input features (per example for an MLP, per time step for a recurrent network).</summary>
    int Input { get; }

    /// <summary>Outputs (classes, or regression targets).</summary>
    int Output { get; }

    /// <summary>A compact readable form.</summary>
    string Describe();
}

/// <summary>Parses and builds any model spec (docs/model-spec.md).</summary>
public static class NetworkSpecs
{
    private static readonly string[] RecurrentKinds = ["rnn", "lstm", "gru"];

    /// <summary>
    /// The spec a model text is written as, or null when it is not a spec: a text whose first word is
    /// <c>mlp</c>, <c>rnn</c>, <c>lstm</c> or <c>gru</c>, or a JSON object with a <c>"kind"</c> field, is
    /// parsed by <see cref="ParseAny"/> (and may throw); anything else (a network description, a
    /// <c>resnet20</c> or <c>cnn …</c> shorthand) gives null.
    /// </summary>
    public static INetworkSpec? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('{'))
        {
            try
            {
                if (JsonNode.Parse(text) is not JsonObject o || !o.ContainsKey("kind")) return null;
            }
            catch (JsonException)
            {
                return null;
            }
            return ParseAny(text);
        }
        string first = trimmed.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        return first == "mlp" || RecurrentKinds.Contains(first) ? ParseAny(text) : null;
    }

    /// <summary>
    /// Parses either grammar, text or JSON: <c>mlp …</c> (or JSON kind <c>mlp</c>) is a
    /// <see cref="ModelSpec"/>; <c>rnn</c>, <c>lstm</c>, <c>gru</c> a <see cref="RecurrentSpec"/>.
    /// </summary>
    /// <exception cref="FormatException">naming the token or field that is wrong.</exception>
    public static INetworkSpec ParseAny(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('{'))
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new FormatException($"model JSON: not valid JSON ({e.Message}).");
            }
            if (node is JsonObject o && o["kind"] is JsonValue k && k.TryGetValue(out string? kind) && RecurrentKinds.Contains(kind))
                return RecurrentSpec.FromJson(o);
            return ModelSpec.FromJson(node ?? throw new FormatException("model JSON: empty."));
        }
        string first = trimmed.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        if (RecurrentKinds.Contains(first)) return RecurrentSpec.Parse(text);
        if (first == "mlp") return ModelSpec.Parse(text);
        throw new FormatException($"model spec '{text}': expected a kind first: mlp, rnn, lstm or gru (e.g. 'mlp 784-256x8-10 act=relu', 'lstm 2-64-1').");
    }

    /// <summary>
    /// The number of learnable parameters the model of <paramref name="spec"/> has, computed from the
    /// spec without building it (so a model too large to allocate can be refused up front).
    /// </summary>
    /// <exception cref="OverflowException">when the count exceeds <see cref="long.MaxValue"/>.</exception>
    public static long ParameterCount(INetworkSpec spec) => spec switch
    {
        ModelSpec m => m.ParameterCount(),
        RecurrentSpec r => r.ParameterCount(),
        _ => throw new ArgumentException($"unknown spec type {spec?.GetType().Name}.", nameof(spec)),
    };

    /// <summary>
    /// Builds <paramref name="spec"/>, every random number drawn from <paramref name="generator"/>;
    /// <paramref name="lsuvBatch"/> is needed by MLP layers initialised with LSUV.
    /// </summary>
    public static Module Build(INetworkSpec spec, Generator generator, Tensor? lsuvBatch = null) => spec switch
    {
        ModelSpec m => ModelBuilder.Build(m, generator, lsuvBatch),
        RecurrentSpec r => r.Build(generator),
        _ => throw new ArgumentException($"unknown spec type {spec?.GetType().Name}.", nameof(spec)),
    };
}

/// <summary>How the recurrent weights W_hh of a <see cref="RecurrentSpec"/> start.</summary>
public enum RecurrentInitKind
{
    /// <summary>PyTorch's default, U(±1/√H), times the scale.</summary>
    Default,
    /// <summary>Each gate block orthogonal times the gain (Saxe et al. 2014): every singular value equals the gain.</summary>
    Orthogonal,
    /// <summary>Each gate block the identity times the gain (with ReLU and zero biases: the IRNN of Le et al. 2015).</summary>
    Identity,
    /// <summary>N(0, std²) for every element.</summary>
    Normal,
}

/// <summary>The initialisation of W_hh: a kind and its scale (gain, or the standard deviation for <see cref="RecurrentInitKind.Normal"/>).</summary>
/// <param name="Kind">The scheme.</param>
/// <param name="Scale">Multiplier of the default, gain of orthogonal and identity, std of normal.</param>
public readonly record struct RecurrentInit(RecurrentInitKind Kind, double Scale = 1)
{
    /// <summary><c>default</c>, <c>default:3</c>, <c>orthogonal</c>, <c>orthogonal:1.5</c>, <c>identity</c>, <c>normal:0.3</c>.</summary>
    public static RecurrentInit Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Trim().ToLowerInvariant().Split(':');
        if (parts.Length > 2) throw new FormatException($"recurrent init '{text}': expected NAME or NAME:SCALE.");
        var kind = parts[0] switch
        {
            "default" => RecurrentInitKind.Default,
            "orthogonal" => RecurrentInitKind.Orthogonal,
            "identity" => RecurrentInitKind.Identity,
            "normal" => RecurrentInitKind.Normal,
            _ => throw new FormatException($"unknown recurrent init '{parts[0]}' (valid: default, orthogonal, identity, normal:STD; each optionally :SCALE)."),
        };
        if (parts.Length == 1)
        {
            if (kind == RecurrentInitKind.Normal) throw new FormatException("recurrent init 'normal' needs its standard deviation: normal:STD.");
            return new RecurrentInit(kind);
        }
        if (!double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double scale) || !(scale > 0) || !double.IsFinite(scale))
            throw new FormatException($"recurrent init '{text}': scale '{parts[1]}' must be a positive number.");
        return new RecurrentInit(kind, scale);
    }

    /// <inheritdoc />
    public override string ToString()
    {
        string name = Kind.ToString().ToLowerInvariant();
        return Kind != RecurrentInitKind.Normal && Scale == 1 ? name : name + ":" + Scale.ToString("R", CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// A recurrent network described by data: a stacked RNN, LSTM or GRU read out by a linear layer on
/// the last layer's final hidden state (a <see cref="SequenceRegressor"/>; its outputs are the
/// regression targets or the class logits). Input [B, T, Input].
/// </summary>
/// <remarks>
/// Text grammar, the MLP's with the cell as the kind (docs/model-spec.md):
/// <code>
/// spec   := ("rnn" | "lstm" | "gru") SP INT "-" INT [ "x" INT ] "-" INT { SP key "=" value }
///           input features per step, hidden units [x stacked layers], outputs
/// key    := act (rnn: tanh | relu) | init (W_hh: default[:S] orthogonal[:G] identity[:G] normal:STD) | forget-bias (lstm: number)
/// </code>
/// e.g. <c>rnn 2-64-1 act=tanh</c>, <c>lstm 2-64-1 forget-bias=1</c>, <c>gru 28-128x2-10 init=orthogonal</c>.
/// </remarks>
/// <param name="Cell">The recurrence.</param>
/// <param name="Input">Features per time step.</param>
/// <param name="Hidden">Hidden units per layer.</param>
/// <param name="Layers">Stacked recurrent layers.</param>
/// <param name="Output">Outputs of the read-out.</param>
/// <param name="Init">How W_hh starts (every layer).</param>
/// <param name="ForgetBias">LSTM only: the total forget-gate bias, or null for PyTorch's default draw.</param>
public sealed record RecurrentSpec(RecurrentCellKind Cell, int Input, int Hidden, int Layers, int Output,
    RecurrentInit Init = default, double? ForgetBias = null) : INetworkSpec
{
    /// <summary>The kind's text name: <c>rnn</c>, <c>lstm</c> or <c>gru</c>.</summary>
    public string KindName => Cell switch { RecurrentCellKind.Lstm => "lstm", RecurrentCellKind.Gru => "gru", _ => "rnn" };

    /// <summary>
    /// Learnable parameters: per layer G gate blocks (1 RNN, 3 GRU, 4 LSTM) of W_ih [G·H, in],
    /// W_hh [G·H, H] and two biases [G·H], then the head Linear(H, outputs).
    /// </summary>
    /// <exception cref="OverflowException">beyond <see cref="long.MaxValue"/>.</exception>
    public long ParameterCount()
    {
        long g = Cell switch { RecurrentCellKind.Lstm => 4, RecurrentCellKind.Gru => 3, _ => 1 };
        long h = Hidden, n = 0;
        checked
        {
            for (int l = 0; l < Layers; l++) n += g * h * ((l == 0 ? Input : h) + h + 2);
            return n + h * Output + Output;
        }
    }

    /// <summary>Whether the cell is a vanilla RNN (tanh or ReLU).</summary>
    public bool IsVanilla => Cell is RecurrentCellKind.RnnTanh or RecurrentCellKind.RnnRelu;

    /// <summary>Parses the text grammar; errors name the offending token.</summary>
    public static RecurrentSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2 || tokens[0] is not ("rnn" or "lstm" or "gru"))
            throw new FormatException($"model spec '{text}': expected 'rnn|lstm|gru IN-HIDDEN[xLAYERS]-OUT [key=value ...]', e.g. 'lstm 2-64-1'.");
        var sizes = tokens[1].Split('-');
        if (sizes.Length != 3)
            throw new FormatException($"model spec: sizes '{tokens[1]}' must be IN-HIDDEN-OUT or IN-HIDDENxLAYERS-OUT (one recurrent width), e.g. 2-64-1 or 28-128x2-10.");
        int input = ParsePositive(sizes[0], "input size"), output = ParsePositive(sizes[2], "output size");
        var hiddenParts = sizes[1].Split('x');
        if (hiddenParts.Length > 2) throw new FormatException($"model spec: hidden size '{sizes[1]}' is not WIDTH or WIDTHxLAYERS.");
        int hidden = ParsePositive(hiddenParts[0], "hidden width");
        int layers = hiddenParts.Length == 2 ? ParsePositive(hiddenParts[1], "layer count") : 1;
        if (layers > 64) throw new FormatException($"model spec: '{sizes[1]}' asks for {layers} recurrent layers (at most 64).");
        var cell = tokens[0] switch { "lstm" => RecurrentCellKind.Lstm, "gru" => RecurrentCellKind.Gru, _ => RecurrentCellKind.RnnTanh };
        var init = new RecurrentInit(RecurrentInitKind.Default);
        double? forgetBias = null;
        foreach (var opt in tokens[2..])
        {
            int eq = opt.IndexOf('=');
            if (eq <= 0) throw new FormatException($"model spec: option '{opt}' is not key=value.");
            string key = opt[..eq].ToLowerInvariant(), value = opt[(eq + 1)..].ToLowerInvariant();
            switch (key)
            {
                case "act":
                    if (tokens[0] != "rnn") throw new FormatException($"model spec: 'act' applies to rnn only ({tokens[0]} has fixed gate activations).");
                    cell = ParseAct(value);
                    break;
                case "init": init = RecurrentInit.Parse(value); break;
                case "forget-bias":
                    if (tokens[0] != "lstm") throw new FormatException($"model spec: 'forget-bias' applies to lstm only.");
                    forgetBias = ParseNumber(value, "forget-bias");
                    break;
                default: throw new FormatException($"model spec: unknown option '{key}' for {tokens[0]} (valid: {(tokens[0] == "rnn" ? "act, init" : tokens[0] == "lstm" ? "init, forget-bias" : "init")}).");
            }
        }
        return new RecurrentSpec(cell, input, hidden, layers, output, init, forgetBias);
    }

    private static RecurrentCellKind ParseAct(string value) => value switch
    {
        "tanh" => RecurrentCellKind.RnnTanh,
        "relu" => RecurrentCellKind.RnnRelu,
        _ => throw new FormatException($"model spec: rnn activation '{value}' is not valid (valid: tanh, relu)."),
    };

    /// <summary>The text form (every spec has one).</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(KindName).Append(' ').Append(Input).Append('-').Append(Hidden);
        if (Layers > 1) sb.Append('x').Append(Layers);
        sb.Append('-').Append(Output);
        if (IsVanilla) sb.Append(" act=").Append(Cell == RecurrentCellKind.RnnRelu ? "relu" : "tanh");
        sb.Append(" init=").Append(Init);
        if (ForgetBias is { } fb) sb.Append(" forget-bias=").Append(fb.ToString("R", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <inheritdoc />
    public string Describe() => ToString();

    /// <summary>The JSON form: <c>{"kind":"lstm","input":2,"hidden":64,"layers":1,"output":1,"act":null,"init":"default","forgetBias":1}</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["kind"] = KindName,
        ["input"] = Input,
        ["hidden"] = Hidden,
        ["layers"] = Layers,
        ["output"] = Output,
        ["act"] = IsVanilla ? (Cell == RecurrentCellKind.RnnRelu ? "relu" : "tanh") : null,
        ["init"] = Init.ToString(),
        ["forgetBias"] = ForgetBias,
    };

    /// <summary>Reads the JSON form; errors name the field.</summary>
    public static RecurrentSpec FromJson(JsonObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        string kind = o["kind"] is JsonValue kv && kv.TryGetValue(out string? k) ? k : throw new FormatException("model JSON: field 'kind' must be a string.");
        var cell = kind switch
        {
            "lstm" => RecurrentCellKind.Lstm,
            "gru" => RecurrentCellKind.Gru,
            "rnn" => o["act"] is JsonValue av && av.TryGetValue(out string? act) ? Wrap("act", () => ParseAct(act)) : RecurrentCellKind.RnnTanh,
            _ => throw new FormatException($"model JSON: field 'kind' is '{kind}', expected rnn, lstm or gru."),
        };
        ModelSpec.OnlyFields(o, "model JSON", "kind", "act", "input", "hidden", "layers", "output", "init", "forgetBias");
        if (kind != "rnn" && o["act"] is JsonValue { } a && a.GetValueKind() != JsonValueKind.Null)
            throw new FormatException($"model JSON: field 'act' applies to rnn only.");
        int layers = o["layers"] is null ? 1 : Int(o, "layers");
        var init = o["init"] is JsonValue iv && iv.TryGetValue(out string? initText) ? Wrap("init", () => RecurrentInit.Parse(initText)) : new RecurrentInit(RecurrentInitKind.Default);
        double? forgetBias = null;
        if (o["forgetBias"] is JsonValue fv && fv.GetValueKind() != JsonValueKind.Null)
        {
            if (kind != "lstm") throw new FormatException("model JSON: field 'forgetBias' applies to lstm only.");
            forgetBias = fv.TryGetValue(out double f) && double.IsFinite(f) ? f : throw new FormatException("model JSON: field 'forgetBias' must be a number.");
        }
        return new RecurrentSpec(cell, Int(o, "input"), Int(o, "hidden"), layers, Int(o, "output"), init, forgetBias);
    }

    /// <summary>
    /// Builds the model: a <see cref="SequenceRegressor"/> (batch-first) drawn from
    /// <paramref name="generator"/> with PyTorch's defaults, then W_hh of every layer as
    /// <see cref="Init"/> says (identity also zeroes the biases and draws W_ih from N(0, 0.001²), the
    /// IRNN of Le et al. 2015), then the forget-gate bias.
    /// </summary>
    public SequenceRegressor Build(Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var model = new SequenceRegressor(Cell, Input, Hidden, generator, Layers, batchFirst: true, outputSize: Output);
        Initialise(model.Recurrent, Init, ForgetBias, generator);
        return model;
    }

    /// <summary>
    /// Initialises W_hh of every stacked layer of <paramref name="rnn"/> as <paramref name="init"/> says
    /// (identity also zeroes the biases and draws W_ih from N(0, 0.001²), the IRNN of Le et al. 2015),
    /// then an LSTM's forget-gate bias to <paramref name="forgetBias"/> when given.
    /// </summary>
    internal static void Initialise(RecurrentLayer rnn, RecurrentInit init, double? forgetBias, Generator generator)
    {
        using (GradMode.NoGrad())
        {
            for (int l = 0; l < rnn.NumLayers; l++)
            {
                var w = rnn.WeightHh(l).Data;
                switch (init.Kind)
                {
                    case RecurrentInitKind.Default:
                        if (init.Scale != 1) w.MulInPlace(init.Scale);
                        break;
                    case RecurrentInitKind.Orthogonal:
                        Nn.Init.OrthogonalRecurrent(w, generator, init.Scale);
                        break;
                    case RecurrentInitKind.Identity:
                        Nn.Init.IdentityRecurrent(w, init.Scale);
                        Nn.Init.Normal(rnn.WeightIh(l).Data, generator, 0, 0.001);
                        if (rnn.BiasIh(l) is { } bi) Nn.Init.Constant(bi.Data, 0);
                        if (rnn.BiasHh(l) is { } bh) Nn.Init.Constant(bh.Data, 0);
                        break;
                    case RecurrentInitKind.Normal:
                        Nn.Init.Normal(w, generator, 0, init.Scale);
                        break;
                }
            }
            if (forgetBias is { } fb && rnn is Lstm lstm) lstm.InitForgetGateBias(fb);
        }
    }

    private static T Wrap<T>(string field, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (FormatException e)
        {
            throw new FormatException($"model JSON: {field}: {e.Message}");
        }
    }

    private static int Int(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue(out int i) && i > 0 ? i : throw new FormatException($"model JSON: field '{key}' must be a positive integer.");

    private static int ParsePositive(string s, string what) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new FormatException($"model spec: {what} '{s}' is not a positive integer.");

    private static double ParseNumber(string s, string what) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? v
            : throw new FormatException($"model spec: {what} '{s}' is not a number.");
}
