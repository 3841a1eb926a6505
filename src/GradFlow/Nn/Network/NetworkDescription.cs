using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>One block of a description with its state-dict path and the per-example shapes around it.</summary>
/// <param name="Path">The module path (<c>layer2.0.conv1</c>; for a residual's shortcut, <c>layer2.0.shortcut</c>).</param>
/// <param name="Block">The block.</param>
/// <param name="Input">Its input shape, without the batch.</param>
/// <param name="Output">Its output shape, without the batch.</param>
public sealed record BlockShape(string Path, Block Block, int[] Input, int[] Output)
{
    /// <summary>Whether this is the shortcut of the residual <see cref="Block"/> (a projection or zero-pad where the branch changes the shape).</summary>
    public bool IsShortcut { get; init; }
}

/// <summary>
/// A network as data: the shape of one example and a tree of <see cref="Block"/>s, whatever the family
/// (MLP, conv net, ResNet, recurrent stack). Built by <see cref="NetworkBuilder"/> with PyTorch's
/// state-dict names, written and read as JSON (<see cref="NetworkJson"/>) and text
/// (<see cref="NetworkText"/>), rewritten by <see cref="Rewrites"/>; <see cref="Parse"/> also expands
/// the shorthands (<c>mlp …</c>, <c>lstm …</c>, <c>resnet20</c>, <c>cnn …</c>, docs/model-spec.md).
/// </summary>
/// <param name="Input">The shape of one example: [F] for vectors, [C, H, W] for images, [T, I] for sequences.</param>
/// <param name="Root">The blocks; named, the root is one child of that name (an MLP's <c>layers</c>), unnamed its blocks are the network's children.</param>
public sealed record NetworkDescription(IReadOnlyList<int> Input, SequenceBlock Root)
{
    /// <summary>Equal when the input shapes and the trees are equal.</summary>
    public bool Equals(NetworkDescription? other) => other is not null && Input.SequenceEqual(other.Input) && Root.Equals(other.Root);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Input.Count == 0 ? 0 : Input[0], Input.Count, Root);

    /// <summary>A description from a fluent body: <c>NetworkDescription.Create([784], n => n.Linear(256).Act(Activation.Relu).Linear(10))</c>.</summary>
    /// <param name="input">The shape of one example.</param>
    /// <param name="body">Adds the root's blocks.</param>
    /// <param name="rootName">The root's name (<c>layers</c> for an MLP), or null to make its blocks the network's children.</param>
    public static NetworkDescription Create(int[] input, Action<SequenceBuilder> body, string? rootName = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(body);
        var b = new SequenceBuilder();
        body(b);
        return new NetworkDescription(input, b.ToSequence(rootName));
    }

    /// <summary>The output shape of one example (<see cref="Shapes"/>).</summary>
    /// <exception cref="ArgumentException">naming the block path when a block does not fit its input.</exception>
    public int[] OutputShape() => ShapeInference.Run(this, null);

    /// <summary>
    /// The time steps T a flat row of <paramref name="values"/> numbers holds for a sequence input [T, I]: values / I, when that is
    /// whole, equals <paramref name="steps"/> if given (a config's <c>sequenceLength</c>, <c>--seq-len</c>), and the network runs
    /// at that length as at its own T (same output shape, same parameters). A recurrent network runs at any length: an <c>lstm 1-16-2</c>, whose
    /// description says T = 1, reads a row of 10 values as 10 steps. Null when the input is not a sequence, or the row does not
    /// hold a whole number of steps the network can run.
    /// </summary>
    public int? FlatSequenceSteps(int values, int? steps = null)
    {
        if (Input.Count != 2 || values < 1 || values % Input[1] != 0) return null;
        int length = values / Input[1];
        return (steps ?? length) == length && RunsAt(length) ? length : null;
    }

    /// <summary>
    /// Whether a sequence network runs on <paramref name="length"/> steps as on its own T: the same output shape and the same
    /// parameters (a linear after a flatten, or a norm over the whole sequence, has weights sized by T).
    /// </summary>
    private bool RunsAt(int length)
    {
        if (length == Input[0]) return true;
        try
        {
            var other = this with { Input = [length, Input[1]] };
            return other.OutputShape().AsSpan().SequenceEqual(OutputShape()) && other.ParameterCount() == ParameterCount();
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Every block with its path and shapes, in build order (a sequence before its blocks, a residual
    /// before its branch, its shortcut after).
    /// </summary>
    /// <exception cref="ArgumentException">naming the block path when a block does not fit its input, e.g. <c>layers.2.branch.0: conv expects [C, H, W], gets [32]</c>.</exception>
    public IReadOnlyList<BlockShape> Shapes()
    {
        var trace = new List<BlockShape>();
        ShapeInference.Run(this, trace);
        return trace;
    }

    /// <summary>
    /// The learnable parameters the built network has, from the shapes alone (so a model too large to
    /// allocate can be refused before it is built): weights and biases of Linear, Conv and recurrent
    /// blocks (G gate blocks of W_ih, W_hh and two biases per layer), γ and β of norms, PReLU's slope,
    /// α of a zero-started residual and the projection shortcuts (a Linear, or a 1×1 conv and its BatchNorm).
    /// </summary>
    /// <exception cref="OverflowException">beyond <see cref="long.MaxValue"/>.</exception>
    public long ParameterCount()
    {
        long n = 0;
        foreach (var s in Shapes()) n = checked(n + Parameters(s));
        return n;
    }

    private static long Parameters(BlockShape s)
    {
        checked
        {
            long Product(int[] shape) => shape.Aggregate(1L, (a, x) => a * x);
            return s.Block switch
            {
                ResidualBlock { Shortcut: ShortcutKind.Projection } when s.IsShortcut =>
                    s.Input.Length == 1 ? (long)s.Input[0] * s.Output[0] : (long)s.Input[0] * s.Output[0] + 2L * s.Output[0],
                ResidualBlock r when !s.IsShortcut => r.Start == BranchStart.Zero ? 1 : 0,
                LinearBlock { Tied: true } => 0,
                LinearBlock l => (long)s.Input[^1] * l.Out + (l.Bias ? l.Out : 0),
                EmbeddingBlock e => (long)e.Vocab * e.Dim,
                PositionBlock { Kind: PositionalKind.Learned } p => (long)p.MaxLength * s.Input[1],
                TransformerLayerBlock t => TransformerParameters(t, s.Input[1]),
                NormBlock { Kind: NormalizationKind.Rms } => s.Input[^1],
                NormBlock { Kind: NormalizationKind.Layer, Last: true } => 2L * s.Input[^1],
                ConvBlock c => (long)c.Out * (s.Input[0] / c.Groups) * c.Kernel.H * c.Kernel.W + (c.Bias ? c.Out : 0),
                NormBlock { Kind: NormalizationKind.Layer } => 2 * Product(s.Input),
                NormBlock => 2L * s.Input[0],
                ActBlock { Kind: Activation.PRelu } => 1,
                RecurrentBlock r => Enumerable.Range(0, r.Layers).Sum(l =>
                    (long)(r.Cell switch { RecurrentCellKind.Lstm => 4, RecurrentCellKind.Gru => 3, _ => 1 }) * r.Hidden
                    * ((l == 0 ? s.Input[1] : r.Hidden) + r.Hidden + 2)),
                _ => 0,
            };
        }
    }

    private static long TransformerParameters(TransformerLayerBlock t, long d)
    {
        checked
        {
            long inner = t.FeedForward == FeedForwardKind.SwiGlu ? 2L * t.Ff : t.Ff;
            long attention = 3 * d * d + 3 * d + d * d + d + (t.QkNorm ? 4 * (d / t.Heads) : 0);
            long ff = d * inner + inner + t.Ff * d + d;
            return attention + ff + (t.RmsNorm ? 2 * d : 4 * d);
        }
    }

    /// <summary>
    /// Parses any model text: JSON (a description, or a spec's JSON with its <c>"kind"</c>), the text form (<c>net 3x32x32 […]</c>), or a
    /// shorthand: <c>mlp …</c> (<see cref="ModelSpec"/>), <c>rnn|lstm|gru …</c>
    /// (<see cref="RecurrentSpec"/>), <c>resnet20|32|56|110 …</c> and <c>plain20|… …</c>
    /// (<see cref="Shorthands.CifarResNet"/>), <c>cnn …</c> (<see cref="Shorthands.Cnn"/>). The result's
    /// shapes are checked.
    /// </summary>
    /// <exception cref="FormatException">naming the token or field that is wrong.</exception>
    /// <exception cref="ArgumentException">when the blocks do not fit the input (naming the block path).</exception>
    public static NetworkDescription Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.TrimStart();
        NetworkDescription d;
        if (NetworkSpecs.TryParse(t) is { } spec) d = Shorthands.FromSpec(spec);
        else if (t.StartsWith('{')) d = NetworkJson.Parse(t);
        else
        {
            string first = t.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
            d = first switch
            {
                "net" => NetworkText.Parse(t),
                "cnn" => Shorthands.Cnn(t),
                "transformer" => Shorthands.Transformer(t),
                _ when first.StartsWith("resnet", StringComparison.Ordinal) || first.StartsWith("plain", StringComparison.Ordinal) => Shorthands.CifarResNet(t),
                _ => throw new FormatException(
                    $"model '{text}': expected JSON, 'net SHAPE [...]', or a shorthand: mlp, rnn, lstm, gru, cnn, resnetN, plainN, transformer (e.g. 'resnet20', 'mlp 784-256x8-10')."),
            };
        }
        d.OutputShape();
        return d;
    }

    /// <summary>One line for people: input and output shapes and the parameter count, e.g. <c>network [1, 28, 28] -> [10], 269,722 parameters</c>.</summary>
    public string Describe() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"network {ShapeInference.Format(Input)} -> {ShapeInference.Format(OutputShape())}, {ParameterCount():N0} parameters");

    /// <summary>The text form (<see cref="NetworkText.Format"/>).</summary>
    public override string ToString() => NetworkText.Format(this);
}

/// <summary>The shape walk shared by <see cref="NetworkDescription.Shapes"/> and the builder's naming.</summary>
internal static class ShapeInference
{
    public static int[] Run(NetworkDescription d, List<BlockShape>? trace)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (d.Input.Count == 0 || d.Input.Any(n => n < 1))
            throw new ArgumentException($"network: input shape {Format(d.Input)} must have positive sizes.");
        var x = d.Input.ToArray();
        var walk = trace ?? [];
        var y = d.Root.Name is { } name ? Block(d.Root, x, name, walk) : Blocks(d.Root, x, "", walk);
        CheckTied(walk);
        return y;
    }

    /// <summary>The embedding a tied linear at <paramref name="at"/> of <paramref name="trace"/> reads out through (the nearest before it), or null.</summary>
    public static BlockShape? TiedEmbedding(IReadOnlyList<BlockShape> trace, int at)
    {
        for (int i = at - 1; i >= 0; i--)
            if (trace[i].Block is EmbeddingBlock) return trace[i];
        return null;
    }

    private static void CheckTied(List<BlockShape> trace)
    {
        for (int i = 0; i < trace.Count; i++)
        {
            if (trace[i] is not { Block: LinearBlock { Tied: true } l } s) continue;
            if (TiedEmbedding(trace, i) is not { Block: EmbeddingBlock e } emb)
                throw Error(s.Path, "a tied linear needs an embedding before it, whose weight it reads out through.");
            if (l.Out != e.Vocab || s.Input[^1] != e.Dim)
                throw Error(s.Path, $"a tied linear maps {s.Input[^1]} to {l.Out} features but the embedding {emb.Path} is {e.Vocab}x{e.Dim}; out must be its vocabulary and the input its width.");
            if (l.Bias || l.Init is not null)
                throw Error(s.Path, "a tied linear has no bias and no init of its own (bias=false, no init).");
        }
    }

    /// <summary>The name of block <paramref name="index"/> of a sequence: its own, or its position.</summary>
    public static string ChildName(Block b, int index) => b.Name ?? index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The index of the activation block that follows block <paramref name="index"/> (past norms,
    /// dropout, pooling and flatten, which keep what the activation sees); −1 when the sequence ends
    /// first, −2 when another block (a weight, a residual) comes first.
    /// </summary>
    public static int FollowingActivation(IReadOnlyList<Block> blocks, int index)
    {
        for (int j = index + 1; j < blocks.Count; j++)
        {
            switch (blocks[j])
            {
                case ActBlock: return j;
                case NormBlock or DropoutBlock or PoolBlock or AdaptiveAvgPoolBlock or FlattenBlock: continue;
                default: return -2;
            }
        }
        return -1;
    }

    public static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    public static string Format(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>The blocks of <paramref name="s"/> in turn, named inside <paramref name="prefix"/>.</summary>
    public static int[] Blocks(SequenceBlock s, int[] x, string prefix, List<BlockShape>? trace)
    {
        var names = new HashSet<string>();
        for (int i = 0; i < s.Blocks.Count; i++)
        {
            var b = s.Blocks[i] ?? throw new ArgumentException($"{Join(prefix, i.ToString(System.Globalization.CultureInfo.InvariantCulture))}: block is null.");
            string name = ChildName(b, i);
            if (name.Length == 0 || name.Contains('.') || !names.Add(name))
                throw new ArgumentException($"{Join(prefix, name)}: block names must be unique, non-empty and without '.'.");
            x = Block(b, x, Join(prefix, name), trace);
        }
        return x;
    }

    public static int[] Block(Block b, int[] x, string path, List<BlockShape>? trace)
    {
        int at = trace?.Count ?? 0;
        trace?.Add(null!);
        var y = Infer(b, x, path, trace);
        if (trace is not null) trace[at] = new BlockShape(path, b, x, y);
        return y;
    }

    private static ArgumentException Error(string path, string message) => new($"{path}: {message}");

    private static int[] Infer(Block b, int[] x, string path, List<BlockShape>? trace)
    {
        switch (b)
        {
            case LinearBlock l:
                if (l.Out < 1) throw Error(path, $"linear out {l.Out} must be positive.");
                return [.. x[..^1], l.Out];
            case ConvBlock c:
            {
                if (x.Length != 3) throw Error(path, $"conv expects [C, H, W], gets {Format(x)}.");
                if (c.Out < 1 || c.Groups < 1) throw Error(path, $"conv out {c.Out} and groups {c.Groups} must be positive.");
                if (x[0] % c.Groups != 0 || c.Out % c.Groups != 0)
                    throw Error(path, $"conv groups {c.Groups} must divide its {x[0]} input and {c.Out} output channels.");
                int h = Out(x[1], c.Kernel.H, c.Stride.H, c.Padding.H, c.Dilation.H), w = Out(x[2], c.Kernel.W, c.Stride.W, c.Padding.W, c.Dilation.W);
                if (c.Kernel.H < 1 || c.Kernel.W < 1 || c.Stride.H < 1 || c.Stride.W < 1 || c.Dilation.H < 1 || c.Dilation.W < 1 || c.Padding.H < 0 || c.Padding.W < 0)
                    throw Error(path, "conv kernel, stride and dilation must be positive and padding not negative.");
                if (h < 1 || w < 1) throw Error(path, $"conv kernel {c.Kernel} (dilation {c.Dilation}, padding {c.Padding}) does not fit a {x[1]}x{x[2]} input.");
                return [c.Out, h, w];
            }
            case PoolBlock p:
            {
                if (x.Length != 3) throw Error(path, $"pool expects [C, H, W], gets {Format(x)}.");
                var s = p.Stride ?? p.Kernel;
                if (p.Kernel.H < 1 || p.Kernel.W < 1 || s.H < 1 || s.W < 1 || p.Padding.H < 0 || p.Padding.W < 0
                    || 2 * p.Padding.H > p.Kernel.H || 2 * p.Padding.W > p.Kernel.W)
                    throw Error(path, $"pool kernel {p.Kernel} and stride {s} must be positive, padding {p.Padding} at most half the kernel.");
                int h = Out(x[1], p.Kernel.H, s.H, p.Padding.H, 1), w = Out(x[2], p.Kernel.W, s.W, p.Padding.W, 1);
                if (h < 1 || w < 1) throw Error(path, $"pool kernel {p.Kernel} does not fit a {x[1]}x{x[2]} input.");
                return [x[0], h, w];
            }
            case AdaptiveAvgPoolBlock a:
                if (x.Length != 3) throw Error(path, $"adaptive average pool expects [C, H, W], gets {Format(x)}.");
                if (a.Size.H < 1 || a.Size.W < 1) throw Error(path, $"adaptive average pool size {a.Size} must be positive.");
                return [x[0], a.Size.H, a.Size.W];
            case NormBlock n:
                if (n.Last && n.Kind != NormalizationKind.Layer) throw Error(path, "last applies to a layer norm only (an RMS norm always normalises the last dimension).");
                switch (n.Kind)
                {
                    case NormalizationKind.Batch when x.Length is not (1 or 3):
                        throw Error(path, $"batch norm expects [F] or [C, H, W], gets {Format(x)}.");
                    case NormalizationKind.Group when n.Groups < 1 || x[0] % n.Groups != 0:
                        throw Error(path, $"group norm of {n.Groups} groups needs a positive group count dividing its {x[0]} channels.");
                    default:
                        return x;
                }
            case ActBlock:
                return x;
            case DropoutBlock dr:
                if (!(dr.P >= 0 && dr.P < 1)) throw Error(path, $"dropout p {dr.P} must be in [0, 1).");
                return x;
            case FlattenBlock:
                return [x.Aggregate(1, (a, n) => checked(a * n))];
            case SequenceBlock s:
                return Blocks(s, x, path, trace);
            case ResidualBlock r:
                return Residual(r, x, path, trace);
            case EmbeddingBlock e:
                if (x.Length != 1) throw Error(path, $"embedding expects token indices [T], gets {Format(x)}.");
                if (e.Vocab < 1 || e.Dim < 1 || !(e.Std > 0)) throw Error(path, $"embedding vocab {e.Vocab}, dim {e.Dim} and std {e.Std} must be positive.");
                return [x[0], e.Dim];
            case PositionBlock p:
                if (x.Length != 2) throw Error(path, $"positions expect a sequence [T, D], get {Format(x)}.");
                if (p.Kind is not (PositionalKind.Learned or PositionalKind.Sinusoidal)) throw Error(path, $"positions kind {p.Kind} is not learned or sinusoidal (rotary is an option of the transformer layers).");
                if (x[0] > p.MaxLength) throw Error(path, $"positions max {p.MaxLength} is shorter than the sequence of {x[0]}.");
                return x;
            case TransformerLayerBlock t:
                if (x.Length != 2) throw Error(path, $"transformer expects a sequence [T, D], gets {Format(x)}.");
                if (t.Heads < 1 || t.Ff < 1 || x[1] % t.Heads != 0) throw Error(path, $"transformer heads {t.Heads} must divide the width {x[1]} and ff {t.Ff} be positive.");
                if (t.Rotary && x[1] / t.Heads % 2 != 0) throw Error(path, $"rotary positions need an even head size, got {x[1]}/{t.Heads} = {x[1] / t.Heads}.");
                if (!(t.Dropout >= 0 && t.Dropout < 1)) throw Error(path, $"transformer dropout {t.Dropout} must be in [0, 1).");
                return x;
            case RecurrentBlock rec:
                if (x.Length != 2) throw Error(path, $"recurrent expects [T, I], gets {Format(x)}.");
                if (rec.Hidden < 1 || rec.Layers < 1) throw Error(path, $"recurrent hidden {rec.Hidden} and layers {rec.Layers} must be positive.");
                if (rec.ForgetBias is not null && rec.Cell != RecurrentCellKind.Lstm) throw Error(path, "forget bias applies to an LSTM only.");
                return rec.Output == RecurrentOutputKind.Last ? [rec.Hidden] : [x[0], rec.Hidden];
            default:
                throw Error(path, $"unknown block {b.GetType().Name}.");
        }
    }

    /// <summary>PyTorch's output size ⌊(size + 2p − d(k − 1) − 1)/s⌋ + 1, or 0 when the dilated kernel is wider than the
    /// padded input (C#'s division truncates toward zero, which would make a window up to a stride too wide fit).</summary>
    private static int Out(int size, int kernel, int stride, int padding, int dilation)
    {
        long span = (long)size + 2L * padding - (long)dilation * (kernel - 1) - 1;
        return stride < 1 || span < 0 ? 0 : (int)(span / stride + 1);
    }

    private static int[] Residual(ResidualBlock r, int[] x, string path, List<BlockShape>? trace)
    {
        var branch = r.Branch ?? throw Error(path, "residual branch is null.");
        var f = branch.Name is { } name ? Block(branch, x, Join(path, name), trace) : Blocks(branch, x, path, trace);
        if (r.Start == BranchStart.ZeroGamma && !branch.Blocks.Any(b => b is NormBlock))
            throw Error(path, "start zero-gamma needs a norm in the branch (its last norm starts at γ = 0).");
        if (!f.SequenceEqual(x))
        {
            string mismatch = $"the branch maps {Format(x)} to {Format(f)}";
            switch (r.Shortcut)
            {
                case ShortcutKind.Identity:
                    throw Error(path, $"{mismatch} but the shortcut is the identity; use a projection or zero-pad shortcut.");
                case ShortcutKind.Projection when x.Length == 1 && f.Length == 1:
                case ShortcutKind.Projection or ShortcutKind.ZeroPad when x.Length == 3 && f.Length == 3 && SubsampleStride(x, f) is not null:
                    if (r.Shortcut == ShortcutKind.ZeroPad && f[0] < x[0])
                        throw Error(path, $"{mismatch}; a zero-pad shortcut cannot drop channels, use a projection.");
                    trace?.Add(new BlockShape(Join(path, "shortcut"), r, x, f) { IsShortcut = true });
                    break;
                default:
                    throw Error(path, $"{mismatch}, which a {r.Shortcut.ToString().ToLowerInvariant()} shortcut cannot follow.");
            }
        }
        return f;
    }

    /// <summary>The stride s with ⌊(H − 1)/s⌋ + 1 = H_out in both dimensions (a 1×1 conv or <c>x[::s]</c>), or null.</summary>
    public static Size2d? SubsampleStride(int[] x, int[] f)
    {
        static int? Find(int size, int target)
        {
            for (int s = 1; s <= size; s++)
                if ((size - 1) / s + 1 == target) return s;
            return null;
        }
        return Find(x[1], f[1]) is { } h && Find(x[2], f[2]) is { } w ? new Size2d(h, w) : null;
    }
}
