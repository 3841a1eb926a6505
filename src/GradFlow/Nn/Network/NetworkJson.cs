using System.Text.Json;
using System.Text.Json.Nodes;
using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// The JSON form of a <see cref="NetworkDescription"/>: <c>{"input":[3,32,32],"root":BLOCK}</c>, each
/// block an object with a <c>"block"</c> discriminator (<c>linear</c>, <c>conv</c>, <c>pool</c>,
/// <c>adaptive-avg-pool</c>, <c>norm</c>, <c>act</c>, <c>dropout</c>, <c>flatten</c>, <c>sequence</c>,
/// <c>residual</c>, <c>recurrent</c>, <c>embedding</c>, <c>positions</c>, <c>transformer</c>), an optional <c>"name"</c> and its fields in the text form's words
/// (sizes as [h, w]). <see cref="ToJson"/> writes every field; <see cref="FromJson"/> takes the
/// defaults for missing ones, so the two round-trip exactly.
/// </summary>
public static class NetworkJson
{
    /// <summary>The JSON object of <paramref name="d"/>.</summary>
    public static JsonObject ToJson(NetworkDescription d)
    {
        ArgumentNullException.ThrowIfNull(d);
        return new JsonObject { ["input"] = new JsonArray(d.Input.Select(n => (JsonNode)n).ToArray()), ["root"] = Write(d.Root) };
    }

    /// <summary>Reads the JSON form; errors name the field (<c>root.blocks[3].out</c>).</summary>
    /// <exception cref="FormatException">naming the field that is wrong.</exception>
    public static NetworkDescription FromJson(JsonNode node)
    {
        if (node is not JsonObject o) throw new FormatException("network JSON: expected an object.");
        if (o["input"] is not JsonArray arr || arr.Count == 0) throw new FormatException("network JSON: field 'input' must be a non-empty array of sizes.");
        var input = arr.Select((n, i) => n is JsonValue v && v.TryGetValue(out int x) && x > 0 ? x : throw new FormatException($"network JSON: input[{i}] must be a positive integer.")).ToArray();
        if (Read(o["root"], "root") is not SequenceBlock root) throw new FormatException("network JSON: 'root' must be a sequence block.");
        return new NetworkDescription(input, root);
    }

    /// <summary>Parses JSON text (<see cref="FromJson"/>).</summary>
    public static NetworkDescription Parse(string text)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new FormatException($"network JSON: not valid JSON ({e.Message}).");
        }
        return FromJson(node ?? throw new FormatException("network JSON: empty."));
    }

    private static JsonArray Size(Size2d s) => [s.H, s.W];

    private static JsonObject Write(Block b)
    {
        var o = new JsonObject();
        void Kind(string kind)
        {
            o["block"] = kind;
            if (b.Name is { } name) o["name"] = name;
        }
        switch (b)
        {
            case LinearBlock l:
                Kind("linear");
                o["out"] = l.Out;
                o["bias"] = l.Bias;
                o["tied"] = l.Tied;
                o["init"] = l.Init?.ToString();
                break;
            case ConvBlock c:
                Kind("conv");
                o["out"] = c.Out;
                o["kernel"] = Size(c.Kernel);
                o["stride"] = Size(c.Stride);
                o["padding"] = Size(c.Padding);
                o["dilation"] = Size(c.Dilation);
                o["groups"] = c.Groups;
                o["bias"] = c.Bias;
                o["init"] = c.Init.ToString();
                break;
            case PoolBlock p:
                Kind("pool");
                o["kind"] = p.Kind == PoolKind.Max ? "max" : "avg";
                o["kernel"] = Size(p.Kernel);
                o["stride"] = p.Stride is { } stride ? Size(stride) : null;
                o["padding"] = Size(p.Padding);
                break;
            case AdaptiveAvgPoolBlock a:
                Kind("adaptive-avg-pool");
                o["size"] = Size(a.Size);
                break;
            case NormBlock n:
                Kind("norm");
                o["kind"] = n.Kind.ToString().ToLowerInvariant();
                o["groups"] = n.Groups;
                o["last"] = n.Last;
                break;
            case EmbeddingBlock e:
                Kind("embedding");
                o["vocab"] = e.Vocab;
                o["dim"] = e.Dim;
                o["std"] = e.Std;
                break;
            case PositionBlock p:
                Kind("positions");
                o["kind"] = NetworkText.NameOf(p.Kind);
                o["max"] = p.MaxLength;
                break;
            case TransformerLayerBlock t:
                Kind("transformer");
                o["heads"] = t.Heads;
                o["ff"] = t.Ff;
                o["norm"] = t.NormFirst ? "pre" : "post";
                o["act"] = NetworkText.NameOf(t.FeedForward);
                o["dropout"] = t.Dropout;
                o["rms"] = t.RmsNorm;
                o["causal"] = t.Causal;
                o["rope"] = t.Rotary;
                o["qkNorm"] = t.QkNorm;
                break;
            case ActBlock act:
                Kind("act");
                o["kind"] = ModelSpec.NameOf(act.Kind);
                break;
            case DropoutBlock d:
                Kind("dropout");
                o["p"] = d.P;
                break;
            case FlattenBlock:
                Kind("flatten");
                break;
            case SequenceBlock s:
                Kind("sequence");
                o["blocks"] = new JsonArray(s.Blocks.Select(x => (JsonNode)Write(x)).ToArray());
                break;
            case ResidualBlock r:
                Kind("residual");
                o["shortcut"] = NetworkText.NameOf(r.Shortcut);
                o["start"] = NetworkText.NameOf(r.Start);
                o["post"] = r.Post is { } post ? ModelSpec.NameOf(post) : null;
                o["branch"] = Write(r.Branch);
                break;
            case RecurrentBlock rec:
                Kind("recurrent");
                o["cell"] = NetworkText.NameOf(rec.Cell);
                o["hidden"] = rec.Hidden;
                o["layers"] = rec.Layers;
                o["init"] = rec.Init.ToString();
                o["forgetBias"] = rec.ForgetBias;
                o["output"] = rec.Output == RecurrentOutputKind.Last ? "last" : "sequence";
                break;
            default:
                throw new ArgumentException($"NetworkJson: unknown block {b.GetType().Name}.");
        }
        return o;
    }

    private static Block Read(JsonNode? node, string at)
    {
        if (node is not JsonObject o) throw new FormatException($"network JSON: {at} must be an object.");
        string kind = Str(o, "block", at);
        string? name = o["name"] is null ? null : Str(o, "name", at);
        var known = new HashSet<string> { "block", "name" };
        JsonNode? Field(string key)
        {
            known.Add(key);
            return o[key];
        }
        int Int(string key, int? fallback = null, int min = 1) => Field(key) switch
        {
            null when fallback is { } f => f,
            JsonValue v when v.TryGetValue(out int i) && i >= min => i,
            _ => throw new FormatException($"network JSON: {at}.{key} must be an integer ≥ {min}."),
        };
        bool Bool(string key, bool fallback) => Field(key) switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out bool x) => x,
            _ => throw new FormatException($"network JSON: {at}.{key} must be true or false."),
        };
        string Text(string key, string? fallback = null) => Field(key) switch
        {
            null when fallback is not null => fallback,
            JsonValue v when v.TryGetValue(out string? s) => s,
            _ => throw new FormatException($"network JSON: {at}.{key} must be a string."),
        };
        double Number(string key, double fallback) => Field(key) switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out double x) && double.IsFinite(x) => x,
            _ => throw new FormatException($"network JSON: {at}.{key} must be a number."),
        };
        Size2d Size(string key, int? fallback = null, int min = 1)
        {
            var n = Field(key);
            if (n is null && fallback is { } f) return f;
            if (n is JsonArray { Count: 2 } a && a[0] is JsonValue h && h.TryGetValue(out int hh) && a[1] is JsonValue w && w.TryGetValue(out int ww) && hh >= min && ww >= min)
                return (hh, ww);
            if (n is JsonValue one && one.TryGetValue(out int x) && x >= min) return x;
            throw new FormatException($"network JSON: {at}.{key} must be [h, w] or one size, each at least {min}.");
        }
        T Wrap<T>(string key, Func<T> parse)
        {
            try
            {
                return parse();
            }
            catch (FormatException e) when (!e.Message.StartsWith("network JSON", StringComparison.Ordinal))
            {
                throw new FormatException($"network JSON: {at}.{key}: {e.Message}");
            }
        }
        Block block = kind switch
        {
            "linear" => new LinearBlock(Int("out")) { Bias = Bool("bias", true), Tied = Bool("tied", false), Init = Field("init") is null ? null : Wrap("init", () => InitScheme.Parse(Text("init"))) },
            "conv" => new ConvBlock(Int("out"), Size("kernel"))
            {
                Stride = Size("stride", 1), Padding = Size("padding", 0, 0), Dilation = Size("dilation", 1), Groups = Int("groups", 1),
                Bias = Bool("bias", true), Init = Wrap("init", () => InitScheme.Parse(Text("init", "he-normal-fan-out"))),
            },
            "pool" => new PoolBlock(Text("kind") switch
            {
                "max" => PoolKind.Max,
                "avg" => PoolKind.Avg,
                var k => throw new FormatException($"network JSON: {at}.kind '{k}' is not max or avg."),
            }, Size("kernel"))
            {
                Stride = Field("stride") is null ? null : Size("stride"),
                Padding = Size("padding", 0, 0),
            },
            "adaptive-avg-pool" => new AdaptiveAvgPoolBlock(Size("size")),
            "norm" => new NormBlock(Text("kind") switch
            {
                "batch" => NormalizationKind.Batch,
                "layer" => NormalizationKind.Layer,
                "group" => NormalizationKind.Group,
                "rms" => NormalizationKind.Rms,
                var k => throw new FormatException($"network JSON: {at}.kind '{k}' is not batch, layer, group or rms."),
            }, Int("groups", 0, 0)) { Last = Bool("last", false) },
            "embedding" => new EmbeddingBlock(Int("vocab"), Int("dim")) { Std = Number("std", 1.0) },
            "positions" => new PositionBlock(Wrap("kind", () => NetworkText.ParsePositional(Text("kind"))), Int("max")),
            "transformer" => new TransformerLayerBlock(Int("heads"), Int("ff"))
            {
                NormFirst = Wrap("norm", () => NetworkText.ParseNormFirst(Text("norm", "post"))),
                FeedForward = Wrap("act", () => NetworkText.ParseFeedForward(Text("act", "relu"))),
                Dropout = Number("dropout", 0.1), RmsNorm = Bool("rms", false), Causal = Bool("causal", false),
                Rotary = Bool("rope", false), QkNorm = Bool("qkNorm", false),
            },
            "act" => new ActBlock(Wrap("kind", () => ModelSpec.ParseActivation(Text("kind")))),
            "dropout" => new DropoutBlock(Field("p") is JsonValue pv && pv.TryGetValue(out double p) ? p : throw new FormatException($"network JSON: {at}.p must be a number.")),
            "flatten" => new FlattenBlock(),
            "sequence" => new SequenceBlock((Field("blocks") as JsonArray ?? throw new FormatException($"network JSON: {at}.blocks must be an array."))
                .Select((c, i) => Read(c, $"{at}.blocks[{i}]")).ToArray()),
            "residual" => new ResidualBlock(
                Read(Field("branch"), at + ".branch") as SequenceBlock ?? throw new FormatException($"network JSON: {at}.branch must be a sequence block."),
                Wrap("shortcut", () => NetworkText.ParseShortcut(Text("shortcut", "identity"))),
                Wrap("start", () => NetworkText.ParseStart(Text("start", "full"))),
                Field("post") is null ? null : Wrap("post", () => ModelSpec.ParseActivation(Text("post")))),
            "recurrent" => new RecurrentBlock(Wrap("cell", () => NetworkText.ParseCell(Text("cell"))), Int("hidden"))
            {
                Layers = Int("layers", 1),
                Init = Wrap("init", () => RecurrentInit.Parse(Text("init", "default"))),
                ForgetBias = Field("forgetBias") switch
                {
                    null => null,
                    JsonValue fv when fv.TryGetValue(out double fb) => fb,
                    _ => throw new FormatException($"network JSON: {at}.forgetBias must be a number."),
                },
                Output = Text("output", "last") switch
                {
                    "last" => RecurrentOutputKind.Last,
                    "sequence" => RecurrentOutputKind.Sequence,
                    var x => throw new FormatException($"network JSON: {at}.output '{x}' is not last or sequence."),
                },
            },
            _ => throw new FormatException($"network JSON: {at}.block '{kind}' is not a block kind (linear, conv, pool, adaptive-avg-pool, norm, act, dropout, flatten, sequence, residual, recurrent, embedding, positions, transformer)."),
        };
        if (o.Select(kv => kv.Key).FirstOrDefault(k => !known.Contains(k)) is { } unknown)
            throw new FormatException($"network JSON: {at} ({kind}) has no field '{unknown}'.");
        return block with { Name = name };
    }

    private static string Str(JsonObject o, string key, string at) =>
        o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : throw new FormatException($"network JSON: {at}.{key} must be a string.");
}
