using System.Globalization;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// Root-mean-square layer normalisation (Zhang and Sennrich 2019) over the last dimension:
/// <c>y = x / √(mean(x²) + ε) · γ</c>, γ [D] starting at ones; no centring and no bias. Built from the
/// differentiable ops (square, mean, add, pow, mul), so its backward is theirs.
/// </summary>
public sealed class RmsNorm : Module
{
    /// <summary>An RMSNorm over a last dimension of <paramref name="features"/>.</summary>
    public RmsNorm(int features, double eps = 1e-6)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        if (!(eps > 0)) throw new ArgumentException($"RmsNorm: eps must be positive, got {eps}.");
        Features = features;
        Eps = eps;
        Weight = RegisterParameter("weight", Tensor.Ones(features));
    }

    /// <summary>D.</summary>
    public int Features { get; }

    /// <summary>ε (default 1e-6).</summary>
    public double Eps { get; }

    /// <summary>γ [D].</summary>
    public Parameter Weight { get; }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        using (GradMode.NoGrad()) Weight.Data.FillInPlace(1);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank == 0 || input.Shape[^1] != Features)
            throw new ArgumentException($"RmsNorm: input shape {Shapes.Format(input.Shape)} does not end with {Features}.");
        var rstd = (input.Square().Mean(-1, keepDim: true) + Eps).Pow(-0.5);
        return input * rstd * Transformers.As(Weight, input);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => string.Create(CultureInfo.InvariantCulture, $"({Features},), eps={Eps}");
}

/// <summary>Position information of a transformer's inputs.</summary>
public enum PositionalKind
{
    /// <summary>None (only causal attention then tells positions apart).</summary>
    None,
    /// <summary>A learnt table of positions [maxLength, D] added to the token embedding (GPT-2).</summary>
    Learned,
    /// <summary>The fixed sinusoids of Vaswani et al. 2017 added to the token embedding.</summary>
    Sinusoidal,
    /// <summary>Rotary position embedding (Su et al. 2021) applied to queries and keys in every attention layer.</summary>
    Rotary,
}

/// <summary>
/// Added position encodings, [T, D] → [T, D] per example (batch [B, T, D]): learnt (child parameter
/// <c>weight</c> [maxLength, D], N(0, 0.02²) as GPT-2) or sinusoidal
/// (<c>PE[t, 2i] = sin(t/10000^(2i/D))</c>, <c>PE[t, 2i+1] = cos(…)</c>, no parameters).
/// </summary>
public sealed class PositionalEncoding : Module
{
    private readonly Generator? _generator;
    private readonly Tensor? _table;

    /// <summary>Positions 0..<paramref name="maxLength"/>−1 of width <paramref name="dim"/>.</summary>
    public PositionalEncoding(PositionalKind kind, int maxLength, int dim, Generator generator)
    {
        if (kind is not (PositionalKind.Learned or PositionalKind.Sinusoidal))
            throw new ArgumentException($"PositionalEncoding: {kind} is not an added encoding (rotary lives in the attention).");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        Kind = kind;
        MaxLength = maxLength;
        Dim = dim;
        if (kind == PositionalKind.Learned)
        {
            _generator = generator;
            Weight = RegisterParameter("weight", Tensor.Zeros(maxLength, dim));
            ResetParameters();
        }
        else _table = Sinusoids(maxLength, dim);
    }

    /// <summary>Learned or sinusoidal.</summary>
    public PositionalKind Kind { get; }

    /// <summary>Longest sequence.</summary>
    public int MaxLength { get; }

    /// <summary>D.</summary>
    public int Dim { get; }

    /// <summary>The learnt table, or null.</summary>
    public Parameter? Weight { get; }

    /// <summary>The sinusoid table [T, D] of Vaswani et al. 2017.</summary>
    public static Tensor Sinusoids(int length, int dim)
    {
        var v = new double[length * dim];
        for (int t = 0; t < length; t++)
            for (int j = 0; j < dim; j++)
            {
                double angle = t / Math.Pow(10000, 2 * (j / 2) / (double)dim);
                v[t * dim + j] = j % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle);
            }
        return Tensor.FromArray(v, [length, dim]).To(DType.Float32).Detach();
    }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        if (Weight is not null) Init.Normal(Weight.Data, _generator!, 0, 0.02);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank < 2 || input.Shape[^1] != Dim || input.Shape[^2] > MaxLength)
            throw new ArgumentException($"PositionalEncoding: input {Shapes.Format(input.Shape)} must be [..., T, {Dim}] with T ≤ {MaxLength}.");
        int t = input.Shape[^2];
        var table = Weight is not null ? ((Tensor)Weight).Narrow(0, 0, t) : _table!.Narrow(0, 0, t);
        return input + Transformers.As(table, input);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"{Kind.ToString().ToLowerInvariant()}, {MaxLength}, {Dim}";
}

/// <summary>
/// Multi-head self-attention with <c>torch.nn.MultiheadAttention</c>'s parameters and names
/// (<c>in_proj_weight</c> [3D, D] Xavier-uniform, <c>in_proj_bias</c> [3D] zeros, child <c>out_proj</c> a
/// Linear whose bias starts at 0), batch first: x [B, T, D] → [B, T, D]. Q, K, V = x·W_qᵀ + b_q, …;
/// each is split into H heads of D/H; <see cref="Tensor.ScaledDotProductAttention"/>; heads concatenated;
/// <c>out_proj</c>. Options beyond PyTorch's: causal masking, rotary positions on Q and K, and QK
/// normalisation (a LayerNorm over each head's D/H features of Q and K, children <c>q_norm</c> and
/// <c>k_norm</c>; Henry et al. 2020, Dehghani et al. 2023), which bounds the attention logits.
/// </summary>
public sealed class MultiheadAttention : Module
{
    private readonly Generator _generator;

    /// <summary>Self-attention of width <paramref name="embedDim"/> with <paramref name="numHeads"/> heads.</summary>
    public MultiheadAttention(int embedDim, int numHeads, Generator generator, bool causal = false, bool rotary = false, bool qkNorm = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(embedDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numHeads, 1);
        if (embedDim % numHeads != 0) throw new ArgumentException($"MultiheadAttention: {numHeads} heads must divide the width {embedDim}.");
        if (rotary && embedDim / numHeads % 2 != 0) throw new ArgumentException($"MultiheadAttention: rotary positions need an even head size, got {embedDim / numHeads}.");
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        EmbedDim = embedDim;
        NumHeads = numHeads;
        Causal = causal;
        Rotary = rotary;
        InProjWeight = RegisterParameter("in_proj_weight", Tensor.Zeros(3 * embedDim, embedDim));
        InProjBias = RegisterParameter("in_proj_bias", Tensor.Zeros(3 * embedDim));
        OutProj = RegisterModule("out_proj", new Linear(embedDim, embedDim, generator));
        if (qkNorm)
        {
            QNorm = RegisterModule("q_norm", new LayerNorm(embedDim / numHeads));
            KNorm = RegisterModule("k_norm", new LayerNorm(embedDim / numHeads));
        }
        ResetParameters();
    }

    /// <summary>D.</summary>
    public int EmbedDim { get; }

    /// <summary>H.</summary>
    public int NumHeads { get; }

    /// <summary>Whether query t sees keys up to t only.</summary>
    public bool Causal { get; }

    /// <summary>Whether Q and K are rotated by position (RoPE).</summary>
    public bool Rotary { get; }

    /// <summary>[W_q; W_k; W_v], [3D, D].</summary>
    public Parameter InProjWeight { get; }

    /// <summary>[b_q; b_k; b_v].</summary>
    public Parameter InProjBias { get; }

    /// <summary>The output projection.</summary>
    public Linear OutProj { get; }

    /// <summary>LayerNorm of each query head, or null.</summary>
    public LayerNorm? QNorm { get; }

    /// <summary>LayerNorm of each key head, or null.</summary>
    public LayerNorm? KNorm { get; }

    /// <summary>Key padding flags for the next forward (B·T, true = padding), or null. Cleared by nothing: set it per batch.</summary>
    public bool[]? KeyPaddingMask { get; set; }

    /// <summary>
    /// Called with the attention weights' row entropies of every sampled forward, when set: a
    /// [B, H] matrix of mean entropies (nats) over the queries (the monitor's attention entropy).
    /// </summary>
    public Action<double[,]>? EntropyObserver { get; set; }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        Init.XavierUniform(InProjWeight.Data, _generator);
        using (GradMode.NoGrad())
        {
            InProjBias.Data.FillInPlace(0);
            OutProj.Bias!.Data.FillInPlace(0);
        }
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank != 3 || input.Shape[2] != EmbedDim)
            throw new ArgumentException($"MultiheadAttention: input {Shapes.Format(input.Shape)} must be [B, T, {EmbedDim}] (batch first).");
        int b = input.Shape[0], t = input.Shape[1], h = NumHeads, dh = EmbedDim / h;
        var qkv = Tensor.Linear(input, Transformers.As(InProjWeight, input), Transformers.As(InProjBias, input));
        var mask = KeyPaddingMask;
        if (mask is not null && mask.Length != b * t)
            throw new ArgumentException($"MultiheadAttention: the key padding mask has {mask.Length} flags for a batch of {b}×{t}.");
        if (QNorm is null && !Rotary)
        {
            // the heads read and written in place in the packed projection: no split, reshape or permute copies
            return OutProj.Forward(Tensor.PackedSelfAttention(qkv, h, Causal, mask, entropy: EntropyObserver));
        }
        var parts = qkv.Split(EmbedDim, dim: 2);
        Tensor Heads(Tensor x) => x.Reshape(b, t, h, dh).Permute(0, 2, 1, 3);
        Tensor q = Heads(parts[0]), k = Heads(parts[1]), v = Heads(parts[2]);
        if (QNorm is not null)
        {
            q = QNorm.Forward(q);
            k = KNorm!.Forward(k);
        }
        if (Rotary)
        {
            q = Transformers.Rotate(q);
            k = Transformers.Rotate(k);
        }
        var o = Tensor.ScaledDotProductAttention(q, k, v, Causal, mask);
        if (EntropyObserver is { } observe) observe(Transformers.AttentionEntropy(q, k, Causal, mask));
        return OutProj.Forward(o.Permute(0, 2, 1, 3).Reshape(b, t, EmbedDim));
    }

    /// <inheritdoc />
    protected override string ExtraRepr() =>
        $"embed_dim={EmbedDim}, num_heads={NumHeads}, batch_first=True" + (Causal ? ", causal=True" : "") + (Rotary ? ", rotary=True" : "");
}

/// <summary>The feed-forward sub-layer of a transformer layer.</summary>
public enum FeedForwardKind
{
    /// <summary><c>linear2(relu(linear1(x)))</c> (Vaswani et al. 2017; PyTorch's default).</summary>
    Relu,
    /// <summary><c>linear2(gelu(linear1(x)))</c> (exact erf GELU; BERT, GPT-2).</summary>
    Gelu,
    /// <summary>
    /// <c>linear2(silu(a)·b)</c> with [a, b] = linear1(x) of width 2·ff (Shazeer 2020, as Llama's
    /// w1 and w3 stacked in one matrix).
    /// </summary>
    SwiGlu,
}

/// <summary>
/// One transformer encoder layer with <c>torch.nn.TransformerEncoderLayer</c>'s children and names
/// (<c>self_attn</c>, <c>linear1</c>, <c>dropout</c>, <c>linear2</c>, <c>norm1</c>, <c>norm2</c>,
/// <c>dropout1</c>, <c>dropout2</c>), batch first. Post-LN (Vaswani et al. 2017; PyTorch's default):
/// <c>x = norm1(x + drop1(attn(x)))</c>, <c>x = norm2(x + drop2(ff(x)))</c>. Pre-LN (<c>norm_first</c>;
/// Xiong et al. 2020): <c>x = x + drop1(attn(norm1(x)))</c>, <c>x = x + drop2(ff(norm2(x)))</c>, so the
/// residual path from output to input is the identity. The sub-layer outputs are exposed through
/// <see cref="SubLayerObserver"/> for the monitor.
/// </summary>
public sealed class TransformerEncoderLayer : Module
{
    /// <summary>A layer of width <paramref name="dModel"/>, <paramref name="heads"/> heads and feed-forward width <paramref name="ff"/>.</summary>
    public TransformerEncoderLayer(int dModel, int heads, int ff, Generator generator, bool normFirst = false,
        FeedForwardKind feedForward = FeedForwardKind.Relu, double dropout = 0.1, bool rmsNorm = false,
        bool causal = false, bool rotary = false, bool qkNorm = false, double eps = 1e-5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ff, 1);
        NormFirst = normFirst;
        FeedForward = feedForward;
        SelfAttn = RegisterModule("self_attn", new MultiheadAttention(dModel, heads, generator, causal, rotary, qkNorm));
        Linear1 = RegisterModule("linear1", new Linear(dModel, feedForward == FeedForwardKind.SwiGlu ? 2 * ff : ff, generator));
        Dropout = RegisterModule("dropout", new Dropout(dropout, generator.NextUInt64()));
        Linear2 = RegisterModule("linear2", new Linear(ff, dModel, generator));
        Norm1 = RegisterModule<Module>("norm1", rmsNorm ? new RmsNorm(dModel, eps) : new LayerNorm(dModel, eps));
        Norm2 = RegisterModule<Module>("norm2", rmsNorm ? new RmsNorm(dModel, eps) : new LayerNorm(dModel, eps));
        Dropout1 = RegisterModule("dropout1", new Dropout(dropout, generator.NextUInt64()));
        Dropout2 = RegisterModule("dropout2", new Dropout(dropout, generator.NextUInt64()));
    }

    /// <summary>Pre-LN when true, Post-LN when false.</summary>
    public bool NormFirst { get; }

    /// <summary>The feed-forward form.</summary>
    public FeedForwardKind FeedForward { get; }

    /// <summary>Self-attention.</summary>
    public MultiheadAttention SelfAttn { get; }

    /// <summary>First feed-forward layer.</summary>
    public Linear Linear1 { get; }

    /// <summary>Dropout inside the feed-forward.</summary>
    public Dropout Dropout { get; }

    /// <summary>Second feed-forward layer.</summary>
    public Linear Linear2 { get; }

    /// <summary>The attention sub-layer's norm.</summary>
    public Module Norm1 { get; }

    /// <summary>The feed-forward sub-layer's norm.</summary>
    public Module Norm2 { get; }

    /// <summary>Dropout on the attention sub-layer's output.</summary>
    public Dropout Dropout1 { get; }

    /// <summary>Dropout on the feed-forward sub-layer's output.</summary>
    public Dropout Dropout2 { get; }

    /// <summary>Called on each forward with the attention sub-layer's output and then the feed-forward's (before their residual sums), when set.</summary>
    public Action<TransformerSubLayer, Tensor>? SubLayerObserver { get; set; }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var x = input;
        if (NormFirst)
        {
            x = x + Dropout1.Forward(Observe(TransformerSubLayer.Attention, SelfAttn.Forward(Norm1.Forward(x))));
            return x + Dropout2.Forward(Observe(TransformerSubLayer.FeedForward, Ff(Norm2.Forward(x))));
        }
        x = Norm1.Forward(x + Dropout1.Forward(Observe(TransformerSubLayer.Attention, SelfAttn.Forward(x))));
        return Norm2.Forward(x + Dropout2.Forward(Observe(TransformerSubLayer.FeedForward, Ff(x))));
    }

    private Tensor Observe(TransformerSubLayer which, Tensor y)
    {
        SubLayerObserver?.Invoke(which, y);
        return y;
    }

    private Tensor Ff(Tensor x)
    {
        var z = Linear1.Forward(x);
        z = FeedForward switch
        {
            FeedForwardKind.Relu => z.Relu(),
            FeedForwardKind.Gelu => z.Gelu(),
            _ => SwiGlu(z),
        };
        return Linear2.Forward(Dropout.Forward(z));
    }

    private static Tensor SwiGlu(Tensor z)
    {
        var ab = z.Split(z.Shape[^1] / 2, dim: -1);
        return ab[0].Silu() * ab[1];
    }

    /// <inheritdoc />
    protected override string ExtraRepr() =>
        (NormFirst ? "norm_first=True" : "norm_first=False") + ", activation=" + FeedForward.ToString().ToLowerInvariant();
}

/// <summary>The two sub-layers of a transformer layer.</summary>
public enum TransformerSubLayer
{
    /// <summary>Self-attention.</summary>
    Attention,
    /// <summary>The feed-forward (MLP).</summary>
    FeedForward,
}

/// <summary>
/// A language-model read-out whose weight is another module's parameter (weight tying, Press and
/// Wolf 2017): <c>logits = x·Eᵀ</c> with E the token embedding [V, D]; the parameter is registered
/// once, by the embedding, so optimisers update it once with the sum of both gradients.
/// </summary>
public sealed class TiedLinear : Module
{
    /// <summary>Reads out through <paramref name="weight"/> [out, in].</summary>
    public TiedLinear(Parameter weight) => Weight = weight ?? throw new ArgumentNullException(nameof(weight));

    /// <summary>The shared weight (owned by another module).</summary>
    public Parameter Weight { get; }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => Tensor.Linear(input, Transformers.As(Weight, input));

    /// <inheritdoc />
    protected override string ExtraRepr() => $"in_features={Weight.Shape[1]}, out_features={Weight.Shape[0]}, tied=True";
}

/// <summary>Helpers shared by the transformer modules.</summary>
public static class Transformers
{
    /// <summary><paramref name="p"/> in the precision of <paramref name="like"/> (float64 gradient checks run float32 parameters through a differentiable cast).</summary>
    internal static Tensor As(Tensor p, Tensor like) => p.DType == like.DType ? p : p.To(like.DType);

    /// <summary>
    /// Rotary position embedding (Su et al. 2021) in the rotate-half form (GPT-NeoX, Llama): for x
    /// [..., T, D] with D even, x1 = x[..., :D/2], x2 = x[..., D/2:], angle θ_ti = t·10000^(−2i/D),
    /// <c>y = [x1·cos θ − x2·sin θ, x2·cos θ + x1·sin θ]</c>. A rotation, so norms are kept; backward is
    /// the opposite rotation (through the ops).
    /// </summary>
    public static Tensor Rotate(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2 || x.Shape[^1] % 2 != 0)
            throw new ArgumentException($"rotary: input {Shapes.Format(x.Shape)} must be [..., T, D] with D even.");
        int t = x.Shape[^2], half = x.Shape[^1] / 2;
        var cos = new double[t * half];
        var sin = new double[t * half];
        for (int p = 0; p < t; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(10000, -2.0 * i / (2 * half));
                cos[p * half + i] = Math.Cos(angle);
                sin[p * half + i] = Math.Sin(angle);
            }
        var c = Tensor.FromArray(cos, [t, half]).To(x.DType).Detach();
        var s = Tensor.FromArray(sin, [t, half]).To(x.DType).Detach();
        var x1 = x.Narrow(-1, 0, half);
        var x2 = x.Narrow(-1, half, half);
        return Tensor.Concat([x1 * c - x2 * s, x2 * c + x1 * s], dim: -1);
    }

    /// <summary>
    /// Mean entropy (nats) of each head's attention rows, [B, H]: <c>−Σ_j P_ij ln P_ij</c> averaged over
    /// the queries i that see at least one key (Zhai et al. 2023). Computed without the graph.
    /// </summary>
    public static double[,] AttentionEntropy(Tensor q, Tensor k, bool causal, bool[]? keyPadding)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        int b = q.Shape[0], h = q.Shape[1], t = q.Shape[2], s = k.Shape[2];
        Tensor p;
        using (GradMode.NoGrad())
        {
            var eye = Tensor.Zeros(q.DType, b, h, s, s);
            for (int n = 0; n < b * h; n++)
                for (int j = 0; j < s; j++) eye.SetFlatRaw((n * s + j) * s + j, 1);
            p = Tensor.ScaledDotProductAttention(q.Detach(), k.Detach(), eye, causal, keyPadding);
        }
        return p.Storage is float[] ? Tensor.RowEntropy<float>(p, b, h, t) : Tensor.RowEntropy<double>(p, b, h, t);
    }
}
