using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// One node of a <see cref="NetworkDescription"/>: an immutable record that says what a part of the
/// network computes, never how its weights are held. <see cref="NetworkBuilder"/> turns the tree into
/// modules; <see cref="Rewrites"/> turn a tree into another.
/// </summary>
/// <remarks>
/// <see cref="Name"/> is the block's state-dict name inside its parent: a block of a
/// <see cref="SequenceBlock"/> is named by its <see cref="Name"/>, or by its position (<c>0</c>,
/// <c>1</c>, … as in <c>torch.nn.Sequential</c>) when it has none. The root and a residual branch
/// are sequences too: named, they are one child module of that name (<c>layers</c>, <c>branch</c>);
/// unnamed, their blocks are the parent's own children (torchvision's <c>conv1</c>, <c>layer1</c>;
/// a BasicBlock's <c>conv1</c>, <c>bn1</c>).
/// </remarks>
public abstract record Block
{
    /// <summary>The state-dict name inside the parent, or null for the position (see the remarks).</summary>
    public string? Name { get; init; }
}

/// <summary>
/// A fully connected layer, <c>y = x·Wᵀ + b</c> on the last dimension (<see cref="Nn.Linear"/>):
/// input [..., F], output [..., <paramref name="Out"/>]. Its weight is as <see cref="Nn.Linear"/>'s
/// constructor draws it (PyTorch's U(±1/√F)), or re-initialised by <see cref="Init"/> for the activation
/// that follows it.
/// </summary>
/// <param name="Out">Output features.</param>
public sealed record LinearBlock(int Out) : Block
{
    /// <summary>Whether the layer has a bias (default true).</summary>
    public bool Bias { get; init; } = true;

    /// <summary>
    /// Weight tying (Press and Wolf 2017): the layer reads out through the weight of the nearest
    /// <see cref="EmbeddingBlock"/> before it (<c>logits = x·Eᵀ</c>, <see cref="TiedLinear"/>); it then has
    /// no weight of its own, no bias and no <see cref="Init"/>, and <see cref="Out"/> must be the vocabulary.
    /// </summary>
    public bool Tied { get; init; }

    /// <summary>
    /// How the weight is re-initialised after construction
    /// (<see cref="ModelBuilder.Initialise(Nn.Linear, InitScheme, Activation, Generator)"/>, as an MLP spec's
    /// layers are: <c>default</c> draws PyTorch's default a second time), or null to keep the
    /// constructor's draw (a ResNet's fc, a recurrent read-out).
    /// </summary>
    public InitScheme? Init { get; init; }
}

/// <summary>
/// A 2-D convolution over [C, H, W] (<see cref="Conv2d"/>), output
/// [<paramref name="Out"/>, ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1, …]. Defaults as PyTorch (stride 1, padding 0,
/// dilation 1, groups 1, bias) except the weight's initialisation, which is torchvision's ResNet one:
/// He normal with fan_out (<see cref="InitKind.KaimingNormalFanOut"/>).
/// </summary>
/// <param name="Out">Output channels.</param>
/// <param name="Kernel">Kernel size.</param>
public sealed record ConvBlock(int Out, Size2d Kernel) : Block
{
    /// <summary>Stride (default 1).</summary>
    public Size2d Stride { get; init; } = 1;

    /// <summary>Zero padding on each side (default 0).</summary>
    public Size2d Padding { get; init; } = 0;

    /// <summary>Spacing of the kernel taps (default 1).</summary>
    public Size2d Dilation { get; init; } = 1;

    /// <summary>Channel groups (default 1; the input channels for a depthwise convolution).</summary>
    public int Groups { get; init; } = 1;

    /// <summary>Whether the layer has a bias (default true, as PyTorch; ResNets have none before BatchNorm).</summary>
    public bool Bias { get; init; } = true;

    /// <summary>How the weight starts (default He normal, fan_out, ReLU gain: torchvision's ResNet).</summary>
    public InitScheme Init { get; init; } = new(InitKind.KaimingNormalFanOut);
}

/// <summary>The reduction of a <see cref="PoolBlock"/>.</summary>
public enum PoolKind
{
    /// <summary>Maximum of each window (<see cref="MaxPool2d"/>).</summary>
    Max,
    /// <summary>Mean of each window, padding counted (<see cref="AvgPool2d"/>).</summary>
    Avg,
}

/// <summary>2-D max or average pooling over [C, H, W]; the stride defaults to the kernel size.</summary>
/// <param name="Kind">Max or average.</param>
/// <param name="Kernel">Window size.</param>
public sealed record PoolBlock(PoolKind Kind, Size2d Kernel) : Block
{
    /// <summary>Stride, or null for the kernel size.</summary>
    public Size2d? Stride { get; init; }

    /// <summary>Padding on each side (default 0; at most half the kernel).</summary>
    public Size2d Padding { get; init; } = 0;
}

/// <summary>Adaptive average pooling of [C, H, W] to [C, <paramref name="Size"/>] (1: global average pooling).</summary>
/// <param name="Size">Output (H, W).</param>
public sealed record AdaptiveAvgPoolBlock(Size2d Size) : Block;

/// <summary>The normalisation of a <see cref="NormBlock"/>.</summary>
public enum NormalizationKind
{
    /// <summary>Batch normalisation (Ioffe and Szegedy 2015): <see cref="BatchNorm1d"/> on [F], <see cref="BatchNorm2d"/> on [C, H, W].</summary>
    Batch,
    /// <summary>Layer normalisation (Ba et al. 2016) over every dimension but the batch (<see cref="Nn.LayerNorm"/>).</summary>
    Layer,
    /// <summary>Group normalisation (Wu and He 2018) of the channels (the first dimension) in <see cref="NormBlock.Groups"/> groups (<see cref="GroupNorm"/>).</summary>
    Group,
    /// <summary>RMS normalisation (Zhang and Sennrich 2019) of the last dimension (<see cref="RmsNorm"/>).</summary>
    Rms,
}

/// <summary>A normalisation layer, γ = 1 and β = 0 at the start (a residual branch's last one may start at γ = 0, <see cref="BranchStart.ZeroGamma"/>).</summary>
/// <param name="Kind">Batch, layer or group.</param>
/// <param name="Groups">Groups of a group norm (0 otherwise).</param>
public sealed record NormBlock(NormalizationKind Kind, int Groups = 0) : Block
{
    /// <summary>Layer norm only: normalise the last dimension alone (each position of a sequence [T, D], as a transformer does), not every dimension.</summary>
    public bool Last { get; init; }
}

/// <summary>An element-wise activation (<see cref="Activations.Create"/>); shape unchanged.</summary>
/// <param name="Kind">The activation.</param>
public sealed record ActBlock(Activation Kind) : Block;

/// <summary>Dropout with drop probability <paramref name="P"/> in [0, 1) (<see cref="Nn.Dropout"/>); its mask seed is drawn from the build's generator.</summary>
/// <param name="P">Drop probability.</param>
public sealed record DropoutBlock(double P) : Block;

/// <summary>Flattens every dimension but the batch: [C, H, W] → [C·H·W].</summary>
public sealed record FlattenBlock : Block;

/// <summary>Blocks applied in order.</summary>
/// <param name="Blocks">The blocks, input side first.</param>
public sealed record SequenceBlock(IReadOnlyList<Block> Blocks) : Block
{
    /// <summary>A sequence of <paramref name="blocks"/>.</summary>
    public SequenceBlock(params Block[] blocks) : this((IReadOnlyList<Block>)blocks)
    {
    }

    /// <summary>Equal when the names and the blocks are equal, in order.</summary>
    public bool Equals(SequenceBlock? other) =>
        other is not null && Name == other.Name && Blocks.SequenceEqual(other.Blocks);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Name);
        foreach (var b in Blocks) h.Add(b);
        return h.ToHashCode();
    }
}

/// <summary>How a <see cref="ResidualBlock"/>'s shortcut adapts x where the branch changes the shape.</summary>
public enum ShortcutKind
{
    /// <summary>The identity; the branch must keep the shape.</summary>
    Identity,
    /// <summary>
    /// A projection where the shape changes (elsewhere the identity): a 1×1 convolution with the
    /// branch's stride followed by BatchNorm for images (torchvision's option B, child
    /// <c>shortcut.0</c>, <c>shortcut.1</c>); a bias-free Linear, Xavier-uniform, for vectors
    /// (child <c>shortcut</c>).
    /// </summary>
    Projection,
    /// <summary>
    /// He et al.'s option A where the shape changes (elsewhere the identity): x subsampled by the
    /// spatial stride (<c>x[:, :, ::s, ::s]</c>) and the new channels zero-padded on both sides; no
    /// parameters.
    /// </summary>
    ZeroPad,
}

/// <summary>How a <see cref="ResidualBlock"/>'s branch starts.</summary>
public enum BranchStart
{
    /// <summary>At its normal initial scale: <c>y = s(x) + f(x)</c>.</summary>
    Full,
    /// <summary>The branch's last norm starts at γ = 0 (Goyal et al. 2017; torchvision's <c>zero_init_residual</c>): the block starts as its shortcut.</summary>
    ZeroGamma,
    /// <summary><c>y = s(x) + α·f(x)</c> with a learnt scalar <c>alpha</c> starting at 0 (SkipInit, De and Smith 2020; ReZero, Bachlechner et al. 2020).</summary>
    Zero,
}

/// <summary>
/// A residual block (He et al. 2016): <c>y = post(s(x) + f(x))</c> with f the branch, s the shortcut
/// and post an optional activation after the sum (ReLU in a ResNet's BasicBlock).
/// </summary>
/// <param name="Branch">f. Named, it is the child <c>branch</c> (an MLP's <c>layers.3.branch.0.weight</c>); unnamed, its blocks are the block's own children (a BasicBlock's <c>conv1</c>).</param>
/// <param name="Shortcut">How s adapts x where f changes the shape.</param>
/// <param name="Start">How f starts.</param>
/// <param name="Post">The activation after the sum (child <c>act</c>), or null.</param>
public sealed record ResidualBlock(SequenceBlock Branch, ShortcutKind Shortcut = ShortcutKind.Identity, BranchStart Start = BranchStart.Full,
    Activation? Post = null) : Block;

/// <summary>What a <see cref="RecurrentBlock"/> passes on.</summary>
public enum RecurrentOutputKind
{
    /// <summary>The last layer's final hidden state, [H] (a sequence read out at its end).</summary>
    Last,
    /// <summary>The last layer's hidden state at every step, [T, H].</summary>
    Sequence,
}

/// <summary>
/// A stacked recurrent layer over [T, I] (batch first; <see cref="Rnn"/>, <see cref="Lstm"/>,
/// <see cref="Gru"/>) with PyTorch's parameter names (<c>weight_ih_l0</c>, <c>weight_hh_l0</c>, …).
/// W_hh starts as <see cref="Init"/> says and an LSTM's forget-gate bias as <see cref="ForgetBias"/>
/// (as <see cref="RecurrentSpec.Build"/>: applied once every module of the network is made).
/// </summary>
/// <param name="Cell">The recurrence.</param>
/// <param name="Hidden">Hidden units per layer.</param>
public sealed record RecurrentBlock(RecurrentCellKind Cell, int Hidden) : Block
{
    /// <summary>Stacked layers (default 1).</summary>
    public int Layers { get; init; } = 1;

    /// <summary>How W_hh starts (default PyTorch's U(±1/√H)).</summary>
    public RecurrentInit Init { get; init; } = new(RecurrentInitKind.Default);

    /// <summary>LSTM only: the total forget-gate bias, or null for PyTorch's draw.</summary>
    public double? ForgetBias { get; init; }

    /// <summary>The final hidden state (default) or every step's.</summary>
    public RecurrentOutputKind Output { get; init; }
}

/// <summary>
/// A token embedding (<see cref="Embedding"/>): [T] token indices (as numbers) → [T, <paramref name="Dim"/>],
/// a table [<paramref name="Vocab"/>, Dim] drawn N(0, <see cref="Std"/>²).
/// </summary>
/// <param name="Vocab">Number of tokens.</param>
/// <param name="Dim">Width of a token's vector.</param>
public sealed record EmbeddingBlock(int Vocab, int Dim) : Block
{
    /// <summary>Standard deviation of the initial table (default 1, PyTorch's; GPT-2 uses 0.02).</summary>
    public double Std { get; init; } = 1.0;
}

/// <summary>
/// Position encodings added to a sequence [T, D] (<see cref="PositionalEncoding"/>): a learnt table
/// [<paramref name="MaxLength"/>, D] or Vaswani et al.'s sinusoids; T ≤ MaxLength. Rotary positions are
/// an option of <see cref="TransformerLayerBlock"/> instead.
/// </summary>
/// <param name="Kind">Learned or sinusoidal.</param>
/// <param name="MaxLength">The longest sequence.</param>
public sealed record PositionBlock(PositionalKind Kind, int MaxLength) : Block;

/// <summary>
/// One transformer layer over a sequence [T, D] → [T, D] (<see cref="TransformerEncoderLayer"/>, PyTorch's
/// names): multi-head self-attention and a feed-forward of width <paramref name="Ff"/>, each a residual
/// sub-layer with its norm after the sum (Post-LN, PyTorch's default) or before the sub-layer
/// (<see cref="NormFirst"/>, Pre-LN).
/// </summary>
/// <param name="Heads">Attention heads; they divide D.</param>
/// <param name="Ff">Feed-forward width.</param>
public sealed record TransformerLayerBlock(int Heads, int Ff) : Block
{
    /// <summary>Pre-LN when true; Post-LN (default, as PyTorch) when false.</summary>
    public bool NormFirst { get; init; }

    /// <summary>The feed-forward (default ReLU, as PyTorch).</summary>
    public FeedForwardKind FeedForward { get; init; } = FeedForwardKind.Relu;

    /// <summary>Dropout of the sub-layers (default 0.1, as PyTorch).</summary>
    public double Dropout { get; init; } = 0.1;

    /// <summary>RMSNorm instead of LayerNorm.</summary>
    public bool RmsNorm { get; init; }

    /// <summary>Whether a position attends to itself and earlier positions only (a language model).</summary>
    public bool Causal { get; init; }

    /// <summary>Rotary positions on queries and keys.</summary>
    public bool Rotary { get; init; }

    /// <summary>LayerNorm of each head's queries and keys (QK normalisation).</summary>
    public bool QkNorm { get; init; }
}
