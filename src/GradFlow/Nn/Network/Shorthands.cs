using System.Globalization;

namespace GradFlow.Nn.Network;

/// <summary>
/// The short model texts and what they expand into: today's specs (<c>mlp …</c>, <c>rnn|lstm|gru …</c>),
/// the CIFAR ResNets of He et al. 2016 (<c>resnet20|32|56|110</c>) with their plain counterparts
/// (<c>plain20</c>, …), and plain CNNs (<c>cnn …</c>). docs/model-spec.md has the grammar.
/// </summary>
public static class Shorthands
{
    /// <summary>The description of either kind of spec (<see cref="NetworkSpecs.ParseAny"/>'s result).</summary>
    public static NetworkDescription FromSpec(INetworkSpec spec) => spec switch
    {
        ModelSpec m => FromSpec(m),
        RecurrentSpec r => FromSpec(r),
        _ => throw new ArgumentException($"Shorthands: unknown spec type {spec?.GetType().Name}.", nameof(spec)),
    };

    /// <summary>
    /// The description of an MLP spec: input [Input]; root <c>layers</c>; per hidden layer
    /// <c>linear, [norm], act</c> (or that inside a residual with a named <c>branch</c> and a projection
    /// where the width changes), then its dropout; then the output linear. Builds to the same parameter
    /// names, shapes and (same seed) values as <see cref="ModelBuilder.Build"/>.
    /// </summary>
    public static NetworkDescription FromSpec(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var blocks = new List<Block>();
        foreach (var h in spec.Hidden)
        {
            var layer = new List<Block> { new LinearBlock(h.Width) { Init = h.Init } };
            if (h.Norm != NormKind.None) layer.Add(new NormBlock(h.Norm == NormKind.Batch ? NormalizationKind.Batch : NormalizationKind.Layer));
            layer.Add(new ActBlock(h.Activation));
            if (h.Residual == ResidualKind.None) blocks.AddRange(layer);
            else
                blocks.Add(new ResidualBlock(new SequenceBlock(layer.ToArray()) { Name = "branch" }, ShortcutKind.Projection,
                    h.Residual == ResidualKind.ZeroInit ? BranchStart.Zero : BranchStart.Full));
            if (h.Dropout > 0) blocks.Add(new DropoutBlock(h.Dropout));
        }
        blocks.Add(new LinearBlock(spec.Output) { Init = spec.OutputInit });
        return new NetworkDescription([spec.Input], new SequenceBlock(blocks.ToArray()) { Name = "layers" });
    }

    /// <summary>
    /// The description of a recurrent spec: input [T, Input] (T is not part of the spec; the
    /// description says 1, and any length runs), <c>rnn</c> (the recurrent block, read at its end) and
    /// <c>head</c> (the linear read-out): <see cref="SequenceRegressor"/>'s names and, for the same seed, values.
    /// </summary>
    public static NetworkDescription FromSpec(RecurrentSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return NetworkDescription.Create([1, spec.Input], n => n
            .Recurrent(spec.Cell, spec.Hidden, spec.Layers, spec.Init, spec.ForgetBias, name: "rnn")
            .Linear(spec.Output, name: "head"));
    }

    /// <summary>
    /// A CIFAR ResNet of He et al. 2016, §4.2 (depth 6n + 2), with torchvision's names: <c>conv1</c>
    /// (3×3, 16), <c>bn1</c>, ReLU, <c>layer1..3</c> of n BasicBlocks each (16, 32, 64 channels; the first
    /// block of layer2 and layer3 has stride 2), <c>avgpool</c>, <c>flatten</c>, <c>fc</c>. A BasicBlock is
    /// <c>conv1, bn1, relu, conv2, bn2</c> plus the shortcut, then ReLU; a plain net has the same blocks
    /// without the shortcut. Convs are bias-free, He normal fan_out; the fc keeps PyTorch's default.
    /// </summary>
    /// <param name="depth">6n + 2: 20, 32, 44, 56, 110, ….</param>
    /// <param name="residual">False for the plain counterpart.</param>
    /// <param name="input">[C, H, W] of one image (default [3, 32, 32]).</param>
    /// <param name="classes">Outputs of the fc.</param>
    /// <param name="shortcut">Option A (<see cref="ShortcutKind.ZeroPad"/>, the paper's CIFAR choice) or B (<see cref="ShortcutKind.Projection"/>).</param>
    /// <param name="start">How each branch starts (zero-γ: Goyal et al. 2017; zero: SkipInit).</param>
    /// <param name="width">Channels of layer1 (16 in the paper; 2× and 4× in layer2 and layer3).</param>
    /// <param name="norm">Whether the blocks have BatchNorm (false: no bn, and the convs get biases).</param>
    public static NetworkDescription ResNet(int depth, bool residual = true, int[]? input = null, int classes = 10,
        ShortcutKind shortcut = ShortcutKind.ZeroPad, BranchStart start = BranchStart.Full, int width = 16, bool norm = true)
    {
        if (depth < 8 || (depth - 2) % 6 != 0) throw new ArgumentException($"ResNet: depth {depth} is not 6n + 2 with n ≥ 1 (20, 32, 44, 56, 110).", nameof(depth));
        if (classes < 1 || width < 1) throw new ArgumentException($"ResNet: classes {classes} and width {width} must be positive.");
        if (!norm && start == BranchStart.ZeroGamma) throw new ArgumentException("ResNet: start zero-gamma needs BatchNorm (norm=none has no γ).");
        int n = (depth - 2) / 6;
        void Unit(SequenceBuilder b, int channels, int stride)
        {
            b.Conv(channels, 3, stride, 1, bias: !norm, name: "conv1");
            if (norm) b.Norm(NormalizationKind.Batch, name: "bn1");
            b.Act(Activation.Relu, name: "relu");
            b.Conv(channels, 3, 1, 1, bias: !norm, name: "conv2");
            if (norm) b.Norm(NormalizationKind.Batch, name: "bn2");
        }
        void Stage(SequenceBuilder s, int channels, int firstStride)
        {
            for (int i = 0; i < n; i++)
            {
                int stride = i == 0 ? firstStride : 1;
                if (residual) s.Residual(b => Unit(b, channels, stride), shortcut, start, Activation.Relu);
                else s.Sequence(b => { Unit(b, channels, stride); b.Act(Activation.Relu, name: "act"); });
            }
        }
        return NetworkDescription.Create(input ?? [3, 32, 32], r =>
        {
            r.Conv(width, 3, 1, 1, bias: !norm, name: "conv1");
            if (norm) r.Norm(NormalizationKind.Batch, name: "bn1");
            r.Act(Activation.Relu, name: "relu")
             .Sequence(s => Stage(s, width, 1), "layer1")
             .Sequence(s => Stage(s, 2 * width, 2), "layer2")
             .Sequence(s => Stage(s, 4 * width, 2), "layer3")
             .AdaptiveAvgPool(1, "avgpool").Flatten("flatten")
             .Linear(classes, name: "fc");
        });
    }

    /// <summary>
    /// Parses <c>resnetD|plainD [in=CxHxW] [classes=K] [shortcut=a|b] [start=full|zero-gamma|zero] [width=W] [norm=batch|none]</c>
    /// (<see cref="ResNet"/>; defaults in=3x32x32, classes=10, shortcut=a, start=full, width=16, norm=batch).
    /// </summary>
    /// <exception cref="FormatException">naming the token that is wrong.</exception>
    public static NetworkDescription CifarResNet(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        bool residual = tokens.Length > 0 && tokens[0].StartsWith("resnet", StringComparison.Ordinal);
        string digits = tokens.Length == 0 ? "" : tokens[0][(residual ? 6 : 5)..];
        if (!int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int depth) || depth < 8 || (depth - 2) % 6 != 0)
            throw new FormatException($"model '{text}': expected resnetD or plainD with D = 6n + 2 (20, 32, 44, 56, 110).");
        int[] input = [3, 32, 32];
        int classes = 10, width = 16;
        var shortcut = ShortcutKind.ZeroPad;
        var start = BranchStart.Full;
        bool norm = true;
        foreach (var (key, value) in Options(tokens[1..], tokens[0]))
        {
            switch (key)
            {
                case "in": input = NetworkText.ParseShape(value); break;
                case "classes": classes = Positive(value, key); break;
                case "width": width = Positive(value, key); break;
                case "shortcut":
                    shortcut = value switch
                    {
                        "a" or "zero-pad" => ShortcutKind.ZeroPad,
                        "b" or "projection" => ShortcutKind.Projection,
                        _ => throw new FormatException($"model: shortcut '{value}' is not valid (valid: a, b)."),
                    };
                    break;
                case "start": start = NetworkText.ParseStart(value); break;
                case "norm":
                    norm = value switch
                    {
                        "batch" => true,
                        "none" => false,
                        _ => throw new FormatException($"model: norm '{value}' is not valid for a ResNet (valid: batch, none)."),
                    };
                    break;
                default: throw new FormatException($"model: unknown option '{key}' for {tokens[0]} (valid: in, classes, shortcut, start, width, norm).");
            }
        }
        if (!residual && (shortcut != ShortcutKind.ZeroPad || start != BranchStart.Full))
            throw new FormatException($"model: {tokens[0]} has no shortcuts; 'shortcut' and 'start' apply to resnetD.");
        try
        {
            return ResNet(depth, residual, input, classes, shortcut, start, width, norm);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"model '{text}': {e.Message}");
        }
    }

    /// <summary>
    /// Parses a plain CNN: <c>cnn CxHxW-item-…-K [act=relu] [norm=batch|group:G|none] [init=…]</c> where an
    /// item is <c>cN</c> (3×3 conv of N channels, padding 1, then the norm and the activation), <c>cNs2</c>
    /// (stride 2), <c>cNxR</c> (R such convs), <c>p</c> (2×2 max pool), <c>gap</c> (global average pool) or
    /// <c>fN</c> (a hidden linear layer of N with the activation), and K the classes (flatten, then a linear).
    /// e.g. <c>cnn 1x28x28-c16-c32s2-c64s2-gap-10 act=relu norm=batch</c>.
    /// </summary>
    /// <exception cref="FormatException">naming the token that is wrong.</exception>
    public static NetworkDescription Cnn(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2 || tokens[0] != "cnn")
            throw new FormatException($"model '{text}': expected 'cnn CxHxW-ITEM-...-CLASSES [key=value ...]', e.g. 'cnn 1x28x28-c16-c32s2-gap-10'.");
        var items = tokens[1].Split('-');
        if (items.Length < 2) throw new FormatException($"model: '{tokens[1]}' needs the input shape and the classes, e.g. 1x28x28-c16-10.");
        var input = NetworkText.ParseShape(items[0]);
        int classes = Positive(items[^1], "classes");
        var act = Activation.Relu;
        NormBlock? norm = new(NormalizationKind.Batch);
        InitScheme? init = null;
        foreach (var (key, value) in Options(tokens[2..], "cnn"))
        {
            switch (key)
            {
                case "act": act = ModelSpec.ParseActivation(value); break;
                case "norm": norm = value == "none" ? null : NetworkText.ParseNorm(value); break;
                case "init": init = InitScheme.Parse(value); break;
                default: throw new FormatException($"model: unknown option '{key}' for cnn (valid: act, norm, init).");
            }
        }
        var b = new SequenceBuilder();
        bool flat = false;
        foreach (var item in items[1..^1])
        {
            if (item == "p") b.Pool(PoolKind.Max, 2);
            else if (item == "gap") b.AdaptiveAvgPool(1);
            else if (item.StartsWith('f') && int.TryParse(item[1..], NumberStyles.None, CultureInfo.InvariantCulture, out int f) && f > 0)
            {
                if (!flat) b.Flatten();
                flat = true;
                b.Linear(f, init: init);
                if (norm is not null) b.Add(norm);
                b.Act(act);
            }
            else if (item.StartsWith('c') && ParseConv(item[1..]) is var (channels, stride, repeat))
            {
                if (flat) throw new FormatException($"model: conv '{item}' after a linear layer.");
                for (int r = 0; r < repeat; r++)
                {
                    b.Conv(channels, 3, r == 0 ? stride : 1, 1, bias: norm is null, init: init);
                    if (norm is not null) b.Add(norm);
                    b.Act(act);
                }
            }
            else throw new FormatException($"model: cnn item '{item}' is not cN, cNsS, cNxR, p, gap or fN.");
        }
        if (!flat) b.Flatten();
        b.Linear(classes);
        return new NetworkDescription(input, b.ToSequence(null));
    }

    /// <summary>
    /// A character- or token-level language model (a decoder-only transformer):
    /// <c>transformer vocab=V [d=128] [heads=4] [layers=4] [ff=4d] [ctx=128] [norm=pre|post] [pos=learned|sin|rope|none]
    /// [tie=yes|no] [act=gelu|relu|swiglu] [dropout=0] [rms=no|yes] [qk-norm=no|yes]</c>. Input [ctx] token indices; blocks
    /// <c>tok_emb</c> (N(0, 0.02²)), <c>pos_emb</c> (learned or sinusoidal positions), <c>layers</c> (the causal
    /// transformer layers 0..L−1), <c>norm</c> (Pre-LN only: the final LayerNorm or RMSNorm of the last dimension),
    /// <c>head</c> (the read-out to V logits per position, without bias; tied to <c>tok_emb</c> by default).
    /// Output [ctx, V].
    /// </summary>
    /// <exception cref="FormatException">naming the option that is wrong.</exception>
    public static NetworkDescription Transformer(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2 || tokens[0] != "transformer")
            throw new FormatException($"model '{text}': expected 'transformer vocab=V [d=128 heads=4 layers=4 ff=512 ctx=128 norm=pre pos=learned tie=yes ...]'.");
        int? vocab = null;
        int d = 128, heads = 4, layers = 4, ctx = 128;
        int? ff = null;
        bool pre = true, tie = true, rms = false, qk = false;
        var pos = PositionalKind.Learned;
        var act = FeedForwardKind.Gelu;
        double dropout = 0;
        foreach (var (key, value) in Options(tokens[1..], "transformer"))
        {
            switch (key)
            {
                case "vocab": vocab = Positive(value, "vocab"); break;
                case "d": d = Positive(value, "d"); break;
                case "heads": heads = Positive(value, "heads"); break;
                case "layers": layers = Positive(value, "layers"); break;
                case "ff": ff = Positive(value, "ff"); break;
                case "ctx": ctx = Positive(value, "ctx"); break;
                case "norm": pre = NetworkText.ParseNormFirst(value); break;
                case "pos": pos = NetworkText.ParsePositional(value); break;
                case "tie": tie = YesNo(value, "tie"); break;
                case "act": act = NetworkText.ParseFeedForward(value); break;
                case "rms": rms = YesNo(value, "rms"); break;
                case "qk-norm": qk = YesNo(value, "qk-norm"); break;
                case "dropout":
                    dropout = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double p) && p >= 0 && p < 1
                        ? p : throw new FormatException($"model: transformer dropout '{value}' is not a number in [0, 1).");
                    break;
                default:
                    throw new FormatException($"model: unknown option '{key}' for transformer (valid: vocab, d, heads, layers, ff, ctx, norm, pos, tie, act, dropout, rms, qk-norm).");
            }
        }
        if (vocab is null) throw new FormatException("model: transformer needs vocab=V (the number of tokens).");
        var layer = new TransformerLayerBlock(heads, ff ?? 4 * d)
        {
            NormFirst = pre, FeedForward = act, Dropout = dropout, RmsNorm = rms, Causal = true, Rotary = pos == PositionalKind.Rotary, QkNorm = qk,
        };
        var b = new SequenceBuilder();
        b.Add(new EmbeddingBlock(vocab.Value, d) { Std = 0.02 }, "tok_emb");
        if (pos is PositionalKind.Learned or PositionalKind.Sinusoidal) b.Add(new PositionBlock(pos, ctx), "pos_emb");
        b.Sequence(s =>
        {
            for (int i = 0; i < layers; i++) s.Add(layer);
        }, "layers");
        if (pre) b.Add(new NormBlock(rms ? NormalizationKind.Rms : NormalizationKind.Layer) { Last = !rms }, "norm");
        b.Add(new LinearBlock(vocab.Value) { Bias = false, Tied = tie }, "head");
        return new NetworkDescription([ctx], b.ToSequence(null));
    }

    private static bool YesNo(string s, string what) => s switch
    {
        "yes" or "true" => true,
        "no" or "false" => false,
        _ => throw new FormatException($"model: transformer {what} '{s}' is not yes or no."),
    };

    private static (int Channels, int Stride, int Repeat)? ParseConv(string s)
    {
        int repeat = 1, stride = 1;
        int x = s.IndexOf('x');
        if (x >= 0)
        {
            if (!int.TryParse(s[(x + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out repeat) || repeat < 1) return null;
            s = s[..x];
        }
        int st = s.IndexOf('s');
        if (st >= 0)
        {
            if (!int.TryParse(s[(st + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out stride) || stride < 1) return null;
            s = s[..st];
        }
        return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c > 0 ? (c, stride, repeat) : null;
    }

    private static IEnumerable<(string Key, string Value)> Options(IEnumerable<string> tokens, string kind)
    {
        foreach (var opt in tokens)
        {
            int eq = opt.IndexOf('=');
            if (eq <= 0) throw new FormatException($"model: option '{opt}' of {kind} is not key=value.");
            yield return (opt[..eq].ToLowerInvariant(), opt[(eq + 1)..].ToLowerInvariant());
        }
    }

    private static int Positive(string s, string what) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new FormatException($"model: {what} '{s}' is not a positive integer.");
}
