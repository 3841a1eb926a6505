using System.Globalization;
using System.Text;
using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// The compact text form of a <see cref="NetworkDescription"/>; <see cref="Format"/> and
/// <see cref="Parse"/> round-trip exactly.
/// </summary>
/// <remarks>
/// <code>
/// network := "net" SP shape SP block                       shape: INT { "x" INT }, e.g. 3x32x32
/// block   := [ NAME ":" ] kind [ "(" key "=" value { "," key "=" value } ")" ] [ "[" { block } "]" ]
/// kind    := linear(out, bias, tied, init) | embedding(vocab, dim, std) | positions(kind, max)
///          | transformer(heads, ff, norm, act, dropout, rms, causal, rope, qk-norm) | rmsnorm | conv(out, k, s, p, d, g, bias, init) | maxpool(k, s, p) | avgpool(k, s, p)
///          | adaptiveavgpool(size) | batchnorm | layernorm(last) | groupnorm(groups) | ACTIVATION | dropout(p) | flatten
///          | seq[ blocks ] | residual(shortcut, start, post)[ branch ] | recurrent(cell, hidden, layers, init, forget-bias, output)
/// </code>
/// Sizes are <c>3</c> or <c>3x1</c>; only values other than the defaults are written (conv's init
/// default is he-normal-fan-out); the branch of a residual is one <c>seq</c>. e.g.
/// <c>net 784 layers:seq[linear(out=256) relu linear(out=10)]</c>.
/// </remarks>
public static class NetworkText
{
    private static readonly (string Name, RecurrentCellKind Cell)[] CellNames =
        [("rnn-tanh", RecurrentCellKind.RnnTanh), ("rnn-relu", RecurrentCellKind.RnnRelu), ("lstm", RecurrentCellKind.Lstm), ("gru", RecurrentCellKind.Gru)];

    /// <summary>The text form of <paramref name="d"/>.</summary>
    public static string Format(NetworkDescription d)
    {
        ArgumentNullException.ThrowIfNull(d);
        var sb = new StringBuilder("net ").Append(string.Join('x', d.Input)).Append(' ');
        Write(sb, d.Root);
        return sb.ToString();
    }

    /// <summary>Reads the text form.</summary>
    /// <exception cref="FormatException">naming the position and what was expected.</exception>
    public static NetworkDescription Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (!t.StartsWith("net ", StringComparison.Ordinal)) throw new FormatException($"network text: expected 'net SHAPE BLOCK', got '{Clip(t)}'.");
        int sp = t.IndexOf(' ', 4);
        if (sp < 0) throw new FormatException("network text: expected a block after the shape.");
        var input = ParseShape(t[4..sp]);
        var reader = new Reader(t, sp);
        var root = reader.Block();
        reader.End();
        if (root is not SequenceBlock seq) throw new FormatException("network text: the root must be a seq[...].");
        return new NetworkDescription(input, seq);
    }

    /// <summary>Parses <c>3x32x32</c>.</summary>
    public static int[] ParseShape(string s)
    {
        var parts = s.Split('x');
        var shape = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]) || shape[i] < 1)
                throw new FormatException($"shape '{s}' is not positive integers joined by 'x' (e.g. 3x32x32).");
        return shape;
    }

    /// <summary>Parses <c>batch</c>, <c>layer</c> or <c>group:G</c> into a norm block.</summary>
    public static NormBlock ParseNorm(string s) => s switch
    {
        "batch" => new NormBlock(NormalizationKind.Batch),
        "layer" => new NormBlock(NormalizationKind.Layer),
        _ when s.StartsWith("group:", StringComparison.Ordinal) && int.TryParse(s[6..], NumberStyles.None, CultureInfo.InvariantCulture, out int g) && g > 0
            => new NormBlock(NormalizationKind.Group, g),
        _ => throw new FormatException($"norm '{s}' is not valid (valid: batch, layer, group:G, none)."),
    };

    /// <summary>Parses <c>full</c>, <c>zero-gamma</c> or <c>zero</c>.</summary>
    public static BranchStart ParseStart(string s) => s switch
    {
        "full" => BranchStart.Full,
        "zero-gamma" => BranchStart.ZeroGamma,
        "zero" or "skipinit" => BranchStart.Zero,
        _ => throw new FormatException($"branch start '{s}' is not valid (valid: full, zero-gamma, zero)."),
    };

    internal static string NameOf(BranchStart s) => s switch { BranchStart.ZeroGamma => "zero-gamma", BranchStart.Zero => "zero", _ => "full" };

    internal static string NameOf(ShortcutKind s) => s switch { ShortcutKind.Projection => "projection", ShortcutKind.ZeroPad => "zero-pad", _ => "identity" };

    internal static ShortcutKind ParseShortcut(string s) => s switch
    {
        "identity" => ShortcutKind.Identity,
        "projection" or "b" => ShortcutKind.Projection,
        "zero-pad" or "a" => ShortcutKind.ZeroPad,
        _ => throw new FormatException($"shortcut '{s}' is not valid (valid: identity, projection, zero-pad)."),
    };

    internal static string NameOf(RecurrentCellKind c) => CellNames.First(n => n.Cell == c).Name;

    internal static RecurrentCellKind ParseCell(string s)
    {
        int i = Array.FindIndex(CellNames, n => n.Name == s);
        return i >= 0 ? CellNames[i].Cell : throw new FormatException($"cell '{s}' is not valid (valid: {string.Join(", ", CellNames.Select(n => n.Name))}).");
    }

    internal static string NameOf(NormalizationKind k) => k switch
    {
        NormalizationKind.Layer => "layernorm", NormalizationKind.Group => "groupnorm", NormalizationKind.Rms => "rmsnorm", _ => "batchnorm",
    };

    internal static string NameOf(PositionalKind k) => k switch { PositionalKind.Learned => "learned", PositionalKind.Sinusoidal => "sin", PositionalKind.Rotary => "rope", _ => "none" };

    internal static PositionalKind ParsePositional(string s) => s switch
    {
        "learned" => PositionalKind.Learned,
        "sin" or "sinusoidal" => PositionalKind.Sinusoidal,
        "rope" or "rotary" => PositionalKind.Rotary,
        "none" => PositionalKind.None,
        _ => throw new FormatException($"positions '{s}' is not valid (valid: learned, sin, rope, none)."),
    };

    internal static string NameOf(FeedForwardKind k) => k switch { FeedForwardKind.Gelu => "gelu", FeedForwardKind.SwiGlu => "swiglu", _ => "relu" };

    internal static FeedForwardKind ParseFeedForward(string s) => s switch
    {
        "relu" => FeedForwardKind.Relu,
        "gelu" => FeedForwardKind.Gelu,
        "swiglu" => FeedForwardKind.SwiGlu,
        _ => throw new FormatException($"feed-forward '{s}' is not valid (valid: relu, gelu, swiglu)."),
    };

    internal static bool ParseNormFirst(string s) => s switch
    {
        "pre" => true,
        "post" => false,
        _ => throw new FormatException($"norm '{s}' is not valid (valid: pre, post)."),
    };

    internal static string Size(Size2d s) => s.IsSquare ? Num(s.H) : Num(s.H) + "x" + Num(s.W);

    /// <summary>Parses <c>N</c> or <c>HxW</c>, each at least <paramref name="min"/> (1 for kernels and strides, 0 for padding).</summary>
    internal static Size2d ParseSize(string s, int min = 1)
    {
        var parts = s.Split('x');
        var v = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out v[i]) || v[i] < min)
                throw new FormatException($"size '{s}' is not N or HxW with each at least {min}.");
        return v.Length switch
        {
            1 => v[0],
            2 => (v[0], v[1]),
            _ => throw new FormatException($"size '{s}' is not N or HxW."),
        };
    }

    private static string Num(int v) => v.ToString(CultureInfo.InvariantCulture);

    internal static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";

    private static void Write(StringBuilder sb, Block b)
    {
        if (b.Name is { } name) sb.Append(name).Append(':');
        var args = new List<string>();
        switch (b)
        {
            case LinearBlock l:
                args.Add("out=" + Num(l.Out));
                if (!l.Bias) args.Add("bias=false");
                if (l.Tied) args.Add("tied=true");
                if (l.Init is { } init) args.Add("init=" + init);
                Call(sb, "linear", args);
                break;
            case ConvBlock c:
                args.Add("out=" + Num(c.Out));
                args.Add("k=" + Size(c.Kernel));
                if (c.Stride != new Size2d(1, 1)) args.Add("s=" + Size(c.Stride));
                if (c.Padding != new Size2d(0, 0)) args.Add("p=" + Size(c.Padding));
                if (c.Dilation != new Size2d(1, 1)) args.Add("d=" + Size(c.Dilation));
                if (c.Groups != 1) args.Add("g=" + Num(c.Groups));
                if (!c.Bias) args.Add("bias=false");
                if (c.Init != new InitScheme(InitKind.KaimingNormalFanOut)) args.Add("init=" + c.Init);
                Call(sb, "conv", args);
                break;
            case PoolBlock p:
                args.Add("k=" + Size(p.Kernel));
                if (p.Stride is { } stride) args.Add("s=" + Size(stride));
                if (p.Padding != new Size2d(0, 0)) args.Add("p=" + Size(p.Padding));
                Call(sb, p.Kind == PoolKind.Max ? "maxpool" : "avgpool", args);
                break;
            case AdaptiveAvgPoolBlock a:
                Call(sb, "adaptiveavgpool", ["size=" + Size(a.Size)]);
                break;
            case NormBlock n:
                if (n.Kind == NormalizationKind.Group || n.Groups != 0) args.Add("groups=" + Num(n.Groups));
                if (n.Last) args.Add("last=true");
                Call(sb, NameOf(n.Kind), args);
                break;
            case EmbeddingBlock e:
                args.Add("vocab=" + Num(e.Vocab));
                args.Add("dim=" + Num(e.Dim));
                if (e.Std != 1.0) args.Add("std=" + Num(e.Std));
                Call(sb, "embedding", args);
                break;
            case PositionBlock p:
                Call(sb, "positions", ["kind=" + NameOf(p.Kind), "max=" + Num(p.MaxLength)]);
                break;
            case TransformerLayerBlock t:
                args.Add("heads=" + Num(t.Heads));
                args.Add("ff=" + Num(t.Ff));
                args.Add("norm=" + (t.NormFirst ? "pre" : "post"));
                if (t.FeedForward != FeedForwardKind.Relu) args.Add("act=" + NameOf(t.FeedForward));
                if (t.Dropout != 0.1) args.Add("dropout=" + Num(t.Dropout));
                if (t.RmsNorm) args.Add("rms=true");
                if (t.Causal) args.Add("causal=true");
                if (t.Rotary) args.Add("rope=true");
                if (t.QkNorm) args.Add("qk-norm=true");
                Call(sb, "transformer", args);
                break;
            case ActBlock act:
                sb.Append(ModelSpec.NameOf(act.Kind));
                break;
            case DropoutBlock d:
                Call(sb, "dropout", ["p=" + Num(d.P)]);
                break;
            case FlattenBlock:
                sb.Append("flatten");
                break;
            case SequenceBlock s:
                sb.Append("seq[");
                for (int i = 0; i < s.Blocks.Count; i++)
                {
                    if (i > 0) sb.Append(' ');
                    Write(sb, s.Blocks[i]);
                }
                sb.Append(']');
                break;
            case ResidualBlock r:
                if (r.Shortcut != ShortcutKind.Identity) args.Add("shortcut=" + NameOf(r.Shortcut));
                if (r.Start != BranchStart.Full) args.Add("start=" + NameOf(r.Start));
                if (r.Post is { } post) args.Add("post=" + ModelSpec.NameOf(post));
                Call(sb, "residual", args);
                sb.Append('[');
                Write(sb, r.Branch);
                sb.Append(']');
                break;
            case RecurrentBlock rec:
                args.Add("cell=" + NameOf(rec.Cell));
                args.Add("hidden=" + Num(rec.Hidden));
                if (rec.Layers != 1) args.Add("layers=" + Num(rec.Layers));
                if (rec.Init != new RecurrentInit(RecurrentInitKind.Default)) args.Add("init=" + rec.Init);
                if (rec.ForgetBias is { } fb) args.Add("forget-bias=" + Num(fb));
                if (rec.Output != RecurrentOutputKind.Last) args.Add("output=sequence");
                Call(sb, "recurrent", args);
                break;
            default:
                throw new ArgumentException($"NetworkText: unknown block {b.GetType().Name}.");
        }
    }

    private static void Call(StringBuilder sb, string kind, List<string> args)
    {
        sb.Append(kind);
        if (args.Count > 0) sb.Append('(').Append(string.Join(',', args)).Append(')');
    }

    /// <summary>A recursive-descent reader of blocks.</summary>
    private sealed class Reader(string text, int pos)
    {
        private int _pos = pos;

        public void End()
        {
            SkipSpace();
            if (_pos < text.Length) throw Error("end of text");
        }

        public Block Block()
        {
            SkipSpace();
            int at = _pos;
            string word = Word();
            string? name = null;
            if (Peek() == ':')
            {
                _pos++;
                name = word;
                at = _pos;
                word = Word();
            }
            var args = Peek() == '(' ? Args() : new Dictionary<string, string>();
            var used = new HashSet<string>();
            string Arg(string key, string? fallback = null)
            {
                used.Add(key);
                return args.TryGetValue(key, out var v) ? v : fallback ?? throw new FormatException($"network text at {at}: {word} needs '{key}='.");
            }
            Block block;
            try
            {
                block = word switch
                {
                    "linear" => new LinearBlock(Int(Arg("out")))
                    {
                        Bias = Bool(Arg("bias", "true")), Tied = Bool(Arg("tied", "false")), Init = args.ContainsKey("init") ? InitScheme.Parse(Arg("init")) : null,
                    },
                    "embedding" => new EmbeddingBlock(Int(Arg("vocab")), Int(Arg("dim"))) { Std = Double(Arg("std", "1")) },
                    "positions" => new PositionBlock(ParsePositional(Arg("kind")), Int(Arg("max"))),
                    "transformer" => new TransformerLayerBlock(Int(Arg("heads")), Int(Arg("ff")))
                    {
                        NormFirst = ParseNormFirst(Arg("norm", "post")), FeedForward = ParseFeedForward(Arg("act", "relu")), Dropout = Double(Arg("dropout", "0.1")),
                        RmsNorm = Bool(Arg("rms", "false")), Causal = Bool(Arg("causal", "false")), Rotary = Bool(Arg("rope", "false")),
                        QkNorm = Bool(Arg("qk-norm", "false")),
                    },
                    "rmsnorm" => new NormBlock(NormalizationKind.Rms),
                    "conv" => new ConvBlock(Int(Arg("out")), ParseSize(Arg("k")))
                    {
                        Stride = ParseSize(Arg("s", "1")), Padding = ParseSize(Arg("p", "0"), 0), Dilation = ParseSize(Arg("d", "1")),
                        Groups = Int(Arg("g", "1")), Bias = Bool(Arg("bias", "true")), Init = InitScheme.Parse(Arg("init", "he-normal-fan-out")),
                    },
                    "maxpool" or "avgpool" => new PoolBlock(word == "maxpool" ? PoolKind.Max : PoolKind.Avg, ParseSize(Arg("k")))
                    {
                        Stride = args.ContainsKey("s") ? ParseSize(Arg("s")) : null, Padding = ParseSize(Arg("p", "0"), 0),
                    },
                    "adaptiveavgpool" => new AdaptiveAvgPoolBlock(ParseSize(Arg("size"))),
                    "batchnorm" => new NormBlock(NormalizationKind.Batch, Int0(Arg("groups", "0"))),
                    "layernorm" => new NormBlock(NormalizationKind.Layer, Int0(Arg("groups", "0"))) { Last = Bool(Arg("last", "false")) },
                    "groupnorm" => new NormBlock(NormalizationKind.Group, Int(Arg("groups"))),
                    "dropout" => new DropoutBlock(Double(Arg("p"))),
                    "flatten" => new FlattenBlock(),
                    "seq" => new SequenceBlock(Children().ToArray()),
                    "residual" => Residual(Arg("shortcut", "identity"), Arg("start", "full"), args.ContainsKey("post") ? Arg("post") : null),
                    "recurrent" => new RecurrentBlock(ParseCell(Arg("cell")), Int(Arg("hidden")))
                    {
                        Layers = Int(Arg("layers", "1")), Init = RecurrentInit.Parse(Arg("init", "default")),
                        ForgetBias = args.ContainsKey("forget-bias") ? Double(Arg("forget-bias")) : null,
                        Output = Arg("output", "last") switch
                        {
                            "last" => RecurrentOutputKind.Last,
                            "sequence" => RecurrentOutputKind.Sequence,
                            var o => throw new FormatException($"recurrent output '{o}' is not valid (valid: last, sequence)."),
                        },
                    },
                    _ => new ActBlock(ModelSpec.ParseActivation(word)),
                };
            }
            catch (FormatException e) when (!e.Message.StartsWith("network text", StringComparison.Ordinal))
            {
                throw new FormatException($"network text at {at} ({word}): {e.Message}");
            }
            if (args.Keys.FirstOrDefault(k => !used.Contains(k)) is { } unknown)
                throw new FormatException($"network text at {at}: {word} has no option '{unknown}'.");
            return block with { Name = name };
        }

        private ResidualBlock Residual(string shortcut, string start, string? post)
        {
            var children = Children();
            if (children.Count != 1 || children[0] is not SequenceBlock branch)
                throw new FormatException("a residual's brackets hold one seq[...], its branch.");
            return new ResidualBlock(branch, ParseShortcut(shortcut), ParseStart(start), post is null ? null : ModelSpec.ParseActivation(post));
        }

        private List<Block> Children()
        {
            SkipSpace();
            if (Peek() != '[') throw Error("'['");
            _pos++;
            var list = new List<Block>();
            while (true)
            {
                SkipSpace();
                if (Peek() == ']')
                {
                    _pos++;
                    return list;
                }
                if (_pos >= text.Length) throw Error("']'");
                list.Add(Block());
            }
        }

        private Dictionary<string, string> Args()
        {
            _pos++;
            int close = text.IndexOf(')', _pos);
            if (close < 0) throw Error("')'");
            var args = new Dictionary<string, string>();
            foreach (var part in text[_pos..close].Split(','))
            {
                int eq = part.IndexOf('=');
                if (eq <= 0) throw new FormatException($"network text at {_pos}: '{part}' is not key=value.");
                if (!args.TryAdd(part[..eq].Trim(), part[(eq + 1)..].Trim()))
                    throw new FormatException($"network text at {_pos}: '{part[..eq]}' is given twice.");
            }
            _pos = close + 1;
            return args;
        }

        private string Word()
        {
            int start = _pos;
            while (_pos < text.Length && (char.IsAsciiLetterOrDigit(text[_pos]) || text[_pos] is '-' or '_')) _pos++;
            if (_pos == start) throw Error("a block kind or name");
            return text[start.._pos];
        }

        private char Peek() => _pos < text.Length ? text[_pos] : '\0';

        private void SkipSpace()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        private FormatException Error(string expected) =>
            new($"network text at {_pos}: expected {expected}, got '{(_pos < text.Length ? Clip(text[_pos..]) : "end of text")}'.");

        private static int Int(string s) =>
            int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : throw new FormatException($"'{s}' is not a positive integer.");

        private static int Int0(string s) =>
            int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : throw new FormatException($"'{s}' is not an integer ≥ 0.");

        private static double Double(string s) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v : throw new FormatException($"'{s}' is not a number.");

        private static bool Bool(string s) => s switch
        {
            "true" => true,
            "false" => false,
            _ => throw new FormatException($"'{s}' is not true or false."),
        };
    }
}
