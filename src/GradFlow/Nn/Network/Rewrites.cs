namespace GradFlow.Nn.Network;

/// <summary>
/// Remedies as pure functions description → description, for every family that has the blocks they
/// touch. A <c>scope</c> is a block path (<c>layer2</c>, <c>layers.3</c>): the rewrite touches the blocks
/// at or under it; null touches the whole network. Paths are those of <see cref="NetworkDescription.Shapes"/>.
/// </summary>
public static class Rewrites
{
    /// <summary>Every activation (<see cref="ActBlock"/> and a residual's post-activation) of kind <paramref name="from"/> (any, when null) in scope becomes <paramref name="to"/>.</summary>
    public static NetworkDescription SwapActivation(NetworkDescription d, Activation to, Activation? from = null, string? scope = null) =>
        Map(d, scope, (b, _) => b switch
        {
            ActBlock a when from is null || a.Kind == from => a with { Kind = to },
            ResidualBlock { Post: { } p } r when from is null || p == from => r with { Post = to },
            _ => b,
        });

    /// <summary>
    /// A norm of <paramref name="kind"/> after every Linear or Conv in scope that an activation directly
    /// follows (a hidden layer: <c>linear, act</c> becomes <c>linear, norm, act</c>) or that ends a residual
    /// branch (a ResNet block's conv2, whose output the sum takes: He et al. 2016 normalise it before the
    /// sum, as <c>resnetN norm=batch</c> does); the output layer and layers already normalised are left
    /// alone. Unnamed blocks after it are renumbered, as in <c>torch.nn.Sequential</c>.
    /// </summary>
    public static NetworkDescription InsertNorm(NetworkDescription d, NormalizationKind kind, int groups = 0, string? scope = null) =>
        MapSequences(d, scope, (s, inScope, branch) =>
        {
            var blocks = new List<Block>();
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                blocks.Add(s.Blocks[i]);
                if (inScope(i) && s.Blocks[i] is LinearBlock or ConvBlock
                    && (i + 1 < s.Blocks.Count ? s.Blocks[i + 1] is ActBlock : branch))
                    blocks.Add(new NormBlock(kind, groups));
            }
            return blocks;
        });

    /// <summary>
    /// Every hidden layer in scope (a Linear or Conv, its norms, its activation) becomes the branch
    /// (named <c>branch</c>) of a residual block starting as <paramref name="start"/> (default
    /// <see cref="BranchStart.Zero"/>: α = 0, so each block is its shortcut at initialisation), with a
    /// projection where the layer changes the shape.
    /// </summary>
    public static NetworkDescription WrapResidual(NetworkDescription d, BranchStart start = BranchStart.Zero, string? scope = null) =>
        MapSequences(d, scope, (s, inScope) =>
        {
            var blocks = new List<Block>();
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                int j = i + 1;
                while (j < s.Blocks.Count && s.Blocks[j] is NormBlock) j++;
                if (inScope(i) && s.Blocks[i] is LinearBlock or ConvBlock && j < s.Blocks.Count && s.Blocks[j] is ActBlock)
                {
                    var branch = new SequenceBlock(s.Blocks.Skip(i).Take(j - i + 1).ToArray()) { Name = "branch" };
                    blocks.Add(new ResidualBlock(branch, ShortcutKind.Projection, start));
                    i = j;
                }
                else blocks.Add(s.Blocks[i]);
            }
            return blocks;
        });

    /// <summary>Every Linear and Conv in scope starts as <paramref name="init"/>.</summary>
    public static NetworkDescription ChangeInit(NetworkDescription d, InitScheme init, string? scope = null) =>
        Map(d, scope, (b, _) => b switch
        {
            LinearBlock l => l with { Init = init },
            ConvBlock c => c with { Init = init },
            _ => b,
        });

    /// <summary>Every recurrent block in scope has its W_hh start as <paramref name="init"/>.</summary>
    public static NetworkDescription ChangeRecurrentInit(NetworkDescription d, RecurrentInit init, string? scope = null) =>
        Map(d, scope, (b, _) => b is RecurrentBlock r ? r with { Init = init } : b);

    /// <summary>Every recurrent block in scope uses <paramref name="cell"/> (a forget bias is kept for an LSTM only).</summary>
    public static NetworkDescription SwitchCell(NetworkDescription d, RecurrentCellKind cell, string? scope = null) =>
        Map(d, scope, (b, _) => b is RecurrentBlock r ? r with { Cell = cell, ForgetBias = cell == RecurrentCellKind.Lstm ? r.ForgetBias : null } : b);

    /// <summary>Every block in scope replaced by <paramref name="rewrite"/>'s answer (children before their parent): the general form of the rewrites above.</summary>
    public static NetworkDescription Map(NetworkDescription d, Func<Block, Block> rewrite, string? scope = null)
    {
        ArgumentNullException.ThrowIfNull(rewrite);
        return Map(d, scope, (b, _) => rewrite(b));
    }

    private static bool InScope(string path, string? scope) =>
        scope is null || path == scope || path.StartsWith(scope + ".", StringComparison.Ordinal);

    /// <summary>Rewrites every block in scope with <paramref name="f"/>, children before their parent.</summary>
    private static NetworkDescription Map(NetworkDescription d, string? scope, Func<Block, string, Block> f)
    {
        ArgumentNullException.ThrowIfNull(d);
        return Walk(d, scope, (s, _, _) => s.Blocks, (b, path) => InScope(path, scope) ? f(b, path) : b);
    }

    /// <summary>
    /// Post-LN → Pre-LN (Xiong et al. 2020): every transformer layer in scope puts its norms before its
    /// sub-layers, so the residual path from the output to the input is the identity; where a sequence's
    /// last such layer changed and no norm follows it, a final norm of the last dimension (the layers' own
    /// kind, LayerNorm or RMSNorm) is inserted after it, as Pre-LN transformers end. Idempotent.
    /// </summary>
    public static NetworkDescription PreLayerNorm(NetworkDescription d, string? scope = null) =>
        MapSequences(d, scope, (s, inScope) =>
        {
            var blocks = new List<Block>();
            int last = -1;
            for (int i = 0; i < s.Blocks.Count; i++)
                if (inScope(i) && s.Blocks[i] is TransformerLayerBlock { NormFirst: false }) last = i;
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                var b = s.Blocks[i];
                blocks.Add(inScope(i) && b is TransformerLayerBlock t ? t with { NormFirst = true } : b);
                if (i == last && (i + 1 >= s.Blocks.Count || s.Blocks[i + 1] is not NormBlock))
                {
                    bool rms = ((TransformerLayerBlock)b).RmsNorm;
                    blocks.Add(new NormBlock(rms ? NormalizationKind.Rms : NormalizationKind.Layer) { Last = !rms });
                }
            }
            return blocks;
        });

    /// <summary>
    /// QK normalisation (Henry et al. 2020; Dehghani et al. 2023): every transformer layer in scope
    /// layer-normalises each head's queries and keys, which bounds the attention logits and so keeps the
    /// attention entropy from collapsing (Zhai et al. 2023 discuss the collapse).
    /// </summary>
    public static NetworkDescription QkNorm(NetworkDescription d, string? scope = null) =>
        Map(d, scope, (b, _) => b is TransformerLayerBlock t ? t with { QkNorm = true } : b);

    /// <summary>Rewrites the block list of every sequence (the root and residual branches included); <c>inScope(i)</c> says whether block i is in scope.</summary>
    private static NetworkDescription MapSequences(NetworkDescription d, string? scope, Func<SequenceBlock, Func<int, bool>, IReadOnlyList<Block>> f) =>
        MapSequences(d, scope, (s, inScope, _) => f(s, inScope));

    /// <summary>The same, also told whether the sequence is a residual block's branch.</summary>
    private static NetworkDescription MapSequences(NetworkDescription d, string? scope, Func<SequenceBlock, Func<int, bool>, bool, IReadOnlyList<Block>> f)
    {
        ArgumentNullException.ThrowIfNull(d);
        return Walk(d, scope, (s, prefix, branch) => f(s, i => InScope(ShapeInference.Join(prefix, ShapeInference.ChildName(s.Blocks[i], i)), scope), branch), (b, _) => b);
    }

    private static NetworkDescription Walk(NetworkDescription d, string? scope, Func<SequenceBlock, string, bool, IReadOnlyList<Block>> sequence,
        Func<Block, string, Block> leaf)
    {
        SequenceBlock Seq(SequenceBlock s, string prefix, bool branch)
        {
            var children = s.Blocks.Select((b, i) => Block(b, ShapeInference.Join(prefix, ShapeInference.ChildName(b, i)))).ToArray();
            var rewritten = s with { Blocks = children };
            return rewritten with { Blocks = sequence(rewritten, prefix, branch).ToArray() };
        }
        Block Block(Block b, string path) => b switch
        {
            SequenceBlock s => leaf(Seq(s, path, branch: false), path),
            ResidualBlock r => leaf(r with { Branch = Seq(r.Branch, r.Branch.Name is { } n ? ShapeInference.Join(path, n) : path, branch: true) }, path),
            _ => leaf(b, path),
        };
        return d with { Root = Seq(d.Root, d.Root.Name ?? "", branch: false) };
    }
}
