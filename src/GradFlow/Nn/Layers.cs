using System.Globalization;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// Dropout (Srivastava et al. 2014), as <c>torch.nn.Dropout</c>: in training, each element is zeroed
/// with probability p and the survivors scaled by 1/(1 − p); in evaluation, the identity. The masks
/// come from the module's own seeded <see cref="Generator"/>, so runs are reproducible.
/// </summary>
public sealed class Dropout : Module
{
    private readonly Generator _generator;

    /// <summary>A dropout layer with drop probability <paramref name="p"/> and mask seed <paramref name="seed"/>.</summary>
    public Dropout(double p = 0.5, ulong seed = 0)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentException($"Dropout: p must be in [0, 1), got {p}.");
        P = p;
        _generator = new Generator(seed);
    }

    /// <summary>Drop probability.</summary>
    public double P { get; }

    /// <summary>The mask generator (its state goes into checkpoints so that a resumed run draws the same masks).</summary>
    public Generator MaskGenerator => _generator;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (!Training || P == 0) return input;
        var mask = Tensor.Zeros(input.DType, input.Shape.ToArray());
        double keep = 1 / (1 - P);
        for (int i = 0; i < mask.Count; i++)
            if (_generator.NextDouble() >= P) mask.SetFlatRaw(i, keep);
        return input * mask;
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => "p=" + P.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// A residual connection (He et al. 2016): <c>y = s(x) + f(x)</c>, with s the identity or, when
/// the branch changes the shape, a projection module. With <c>zeroInit</c> the branch is scaled by a
/// learnt scalar <c>alpha</c> that starts at 0, <c>y = s(x) + α·f(x)</c> (ReZero, Bachlechner et al.
/// 2020; the same idea as Fixup and zero-γ BatchNorm): the block is the identity at initialisation,
/// so a deep stack neither explodes nor vanishes at the start, while α and f learn.
/// </summary>
/// <remarks>
/// Gradient flow: <c>∂y/∂x = I + ∂f/∂x</c>, so the backpropagated signal has an identity path through
/// every block whatever the branch does. Children: <c>branch</c>, and <c>shortcut</c> when projecting.
/// </remarks>
public sealed class Residual : Module
{
    /// <summary>Wraps <paramref name="branch"/>; <paramref name="shortcut"/> maps x to the branch's output shape when they differ.</summary>
    public Residual(Module branch, Module? shortcut = null, bool zeroInit = false)
    {
        Branch = RegisterModule("branch", branch);
        if (shortcut is not null) Shortcut = RegisterModule("shortcut", shortcut);
        if (zeroInit) Alpha = RegisterParameter("alpha", Tensor.Zeros(1));
    }

    /// <summary>f.</summary>
    public Module Branch { get; private set; }

    /// <summary>s, or null for the identity.</summary>
    public Module? Shortcut { get; private set; }

    /// <summary>α (starts at 0), or null when the branch is not scaled.</summary>
    public Parameter? Alpha { get; }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        if (Alpha is not null)
            using (GradMode.NoGrad()) Alpha.Data.FillInPlace(0);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var f = Branch.Forward(input);
        return Sum(nameof(Residual), input, Shortcut is null ? input : Shortcut.Forward(input), f, Alpha);
    }

    /// <summary><c>s + f</c>, or <c>s + α·f</c> with <paramref name="alpha"/>; throws naming <paramref name="module"/> when the shapes differ.</summary>
    internal static Tensor Sum(string module, Tensor input, Tensor s, Tensor f, Parameter? alpha)
    {
        CheckShapes(module, input, s, f);
        if (alpha is null) return s + f;
        Tensor a = alpha;
        if (a.DType != f.DType) a = a.To(f.DType);
        return s + f * a;
    }

    /// <summary>Throws, naming <paramref name="module"/> and the shapes, when the branch's output f and the shortcut's s differ in shape.</summary>
    internal static void CheckShapes(string module, Tensor input, Tensor s, Tensor f)
    {
        if (!f.Shape.SequenceEqual(s.Shape))
            throw new ArgumentException(
                $"{module}: the branch maps {Shapes.Format(input.Shape)} to {Shapes.Format(f.Shape)} but the shortcut gives {Shapes.Format(s.Shape)}; give a projection shortcut.");
    }

    /// <inheritdoc />
    protected override void OnChildReplaced(string name, Module module)
    {
        if (name == "branch") Branch = module;
        else Shortcut = module;
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => Alpha is null ? "" : "zero_init=True";
}

/// <summary>
/// A lookup table (as <c>torch.nn.Embedding</c>): row i of <c>weight</c> [numEmbeddings, dim],
/// initialised N(0, 1). The input holds integral indices (as floats, or through
/// <see cref="Lookup"/> as an <see cref="IndexTensor"/>); the output has the input's shape plus dim.
/// Backward: rows of the gradient are added into the rows they came from (repeats accumulate).
/// </summary>
public sealed class Embedding : Module
{
    private readonly Generator? _generator;

    /// <summary>An embedding of <paramref name="numEmbeddings"/> rows of <paramref name="embeddingDim"/>, weights N(0, <paramref name="std"/>²) (default 1, PyTorch's) from <paramref name="generator"/>.</summary>
    public Embedding(int numEmbeddings, int embeddingDim, Generator generator, double std = 1.0)
    {
        if (!(std > 0)) throw new ArgumentException($"Embedding: std must be positive, got {std}.");
        Std = std;
        ArgumentOutOfRangeException.ThrowIfLessThan(numEmbeddings, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(embeddingDim, 1);
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        Weight = RegisterParameter("weight", Tensor.Zeros(numEmbeddings, embeddingDim));
        ResetParameters();
    }

    /// <summary>The table, [numEmbeddings, embeddingDim].</summary>
    public Parameter Weight { get; }

    /// <summary>Standard deviation of the initial table.</summary>
    public double Std { get; }

    /// <inheritdoc />
    public override void ResetParameters() => Init.Normal(Weight.Data, _generator!, 0, Std);

    /// <summary>Looks up <paramref name="indices"/> (any shape).</summary>
    public Tensor Lookup(IndexTensor indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var flat = IndexTensor.FromArray(indices.ToArray(), indices.Count);
        var rows = ((Tensor)Weight).IndexSelect(0, flat);
        return rows.Reshape([.. indices.Shape.ToArray(), Weight.Shape[1]]);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var v = input.ToDoubleArray();
        var idx = new int[v.Length];
        for (int i = 0; i < v.Length; i++)
        {
            if (v[i] != Math.Floor(v[i]) || v[i] < 0 || v[i] >= Weight.Shape[0])
                throw new ArgumentException($"Embedding: input element {i} is {v[i]}, not an index in [0, {Weight.Shape[0]}).");
            idx[i] = (int)v[i];
        }
        return Lookup(IndexTensor.FromArray(idx, input.Rank == 0 ? [1] : input.Shape.ToArray()));
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"{Weight.Shape[0]}, {Weight.Shape[1]}";
}
