using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// Modules run in order under names of their own (<c>conv1</c>, <c>bn1</c>, <c>layer1</c>): a
/// <see cref="Sequential"/> whose children are named, as a torch module whose <c>forward</c> calls its
/// attributes in turn. A recurrent child marked <c>readLast</c> passes on the last layer's final hidden
/// state [B, H] rather than every step's output (as <see cref="SequenceRegressor"/> reads it).
/// </summary>
public class Chain : Module
{
    private readonly List<Step> _steps = [];

    /// <summary>Appends <paramref name="module"/> as child <paramref name="name"/>.</summary>
    /// <param name="name">The child's state-dict name.</param>
    /// <param name="module">The module.</param>
    /// <param name="readLast">For a <see cref="RecurrentLayer"/>: pass on its final hidden state instead of its output sequence.</param>
    public Chain Add(string name, Module module, bool readLast = false)
    {
        RegisterModule(name, module);
        _steps.Add(new Step(name, module, readLast));
        return this;
    }

    /// <summary>The children in order.</summary>
    public IReadOnlyList<Module> Modules => _steps.Select(s => s.Module).ToArray();

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => Step.Run(_steps, input);

    /// <inheritdoc />
    protected override void OnChildReplaced(string name, Module module)
    {
        int i = _steps.FindIndex(s => s.Name == name);
        _steps[i] = _steps[i] with { Module = module };
    }

    /// <summary>One child of a chain or an inline residual branch.</summary>
    internal sealed record Step(string Name, Module Module, bool ReadLast)
    {
        public Tensor Apply(Tensor x)
        {
            if (!ReadLast) return Module.Forward(x);
            var h = ((RecurrentLayer)Module).Forward(x, null).State.H;    // [L, B, H]
            int layers = h.Shape[0], batch = h.Shape[1], hidden = h.Shape[2];
            var last = layers == 1 ? h : h.Narrow(0, layers - 1, 1);
            return last.Reshape(batch, hidden);
        }

        /// <summary>The steps in order; two plain steps that fuse as in a <see cref="Sequential"/> run as one op.</summary>
        public static Tensor Run(List<Step> steps, Tensor x) => Run(steps, steps.Count, x);

        /// <summary>The first <paramref name="count"/> steps, as <see cref="Run(List{Step}, Tensor)"/>.</summary>
        public static Tensor Run(List<Step> steps, int count, Tensor x)
        {
            for (int i = 0; i < count; i++)
            {
                if (i + 1 < count && !steps[i].ReadLast && !steps[i + 1].ReadLast
                    && Sequential.TryFused(steps[i].Module, steps[i + 1].Module, x) is Tensor fused)
                {
                    x = fused;
                    i++;
                    continue;
                }
                x = steps[i].Apply(x);
            }
            return x;
        }
    }
}

/// <summary>
/// A network built from a <see cref="NetworkDescription"/> (<see cref="NetworkBuilder.Build"/>): the
/// root's modules under their PyTorch names. Input [N, ...the description's input shape]; an input
/// with the same number of elements per example is reshaped to it (an MLP reads [N, 1, 28, 28] images
/// as [N, 784], as <see cref="Mlp"/> does); for a sequence input [T, I], any length T runs.
/// </summary>
public sealed class Network : Chain
{
    internal Network(NetworkDescription description) => Description = description;

    /// <summary>The description this network was built from.</summary>
    public NetworkDescription Description { get; }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var shape = Description.Input;
        bool sequence = shape.Count == 2 && input.Rank == 3 && input.Shape[2] == shape[1];
        // a token model (an embedding first) reads any length up to its context, as a generator does
        sequence |= shape.Count == 1 && input.Rank == 2 && input.Shape[1] <= shape[0] && Description.Root.Blocks.FirstOrDefault() is EmbeddingBlock;
        if (!sequence && (input.Rank != shape.Count + 1 || !input.Shape[1..].ToArray().SequenceEqual(shape)))
        {
            long per = shape.Aggregate(1L, (a, n) => a * n);
            if (input.Rank >= 2 && input.Count / input.Shape[0] == per && input.Count % input.Shape[0] == 0)
                input = input.Reshape([input.Shape[0], .. shape]);
            else
                throw new ArgumentException($"Network: expected input [N, {string.Join(", ", shape)}], got {Shapes.Format(input.Shape)}.");
        }
        return base.ForwardCore(input);
    }
}

/// <summary>
/// A residual block as built from a <see cref="ResidualBlock"/>: <c>y = post(s(x) + f(x))</c>, or
/// <c>post(s(x) + α·f(x))</c> with the learnt scalar <c>alpha</c> (starts at 0) for
/// <see cref="BranchStart.Zero"/>. The branch's modules are either its own children (torchvision's
/// BasicBlock: <c>conv1</c>, <c>bn1</c>, <c>conv2</c>, <c>bn2</c>) or one child <c>branch</c>; then come
/// <c>shortcut</c> when x must be adapted and <c>act</c> for the activation after the sum.
/// </summary>
/// <remarks>Gradient flow: ∂y/∂x = post′·(∂s/∂x + ∂f/∂x), so the signal has a path around every branch.</remarks>
public sealed class ResidualUnit : Module
{
    private readonly List<Chain.Step> _branch = [];

    internal ResidualUnit(IReadOnlyList<(string Name, Module Module, bool ReadLast)> branch, Module? shortcut, bool zeroAlpha, Module? post)
    {
        if (zeroAlpha) Alpha = RegisterParameter("alpha", Tensor.Zeros(1));
        foreach (var (name, module, readLast) in branch)
        {
            RegisterModule(name, module);
            _branch.Add(new Chain.Step(name, module, readLast));
        }
        if (shortcut is not null) Shortcut = RegisterModule("shortcut", shortcut);
        if (post is not null) Post = RegisterModule("act", post);
    }

    /// <summary>The branch's modules in order (one <c>branch</c> container, or the inline modules).</summary>
    public IReadOnlyList<Module> Branch => _branch.Select(s => s.Module).ToArray();

    /// <summary>s, or null for the identity.</summary>
    public Module? Shortcut { get; private set; }

    /// <summary>The activation after the sum, or null.</summary>
    public Module? Post { get; private set; }

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
        // A branch ending in a batch norm, under a ReLU after the sum (torchvision's BasicBlock): relu(bn(h) + s(x)) as one op, when
        // the norm has no hook and no forward hook reads the ReLU's input (BatchNormBase.ForwardAddRelu; the ReLU's output and
        // backward hooks, the gradient monitor's, run on the op's output). The same values and gradients as the three ops.
        if (Alpha is null && Post is Relu { TakesFusedOutput: true } post && _branch.Count > 0 && _branch[^1] is { ReadLast: false, Module: BatchNormBase { HasHooks: false } norm })
        {
            var h = Chain.Step.Run(_branch, _branch.Count - 1, input);
            var s = Shortcut is null ? input : Shortcut.Forward(input);
            Residual.CheckShapes(nameof(ResidualUnit), input, s, h);
            return post.Complete(norm.ForwardFused(h, relu: true, s));
        }
        var f = Chain.Step.Run(_branch, input);
        var y = Residual.Sum(nameof(ResidualUnit), input, Shortcut is null ? input : Shortcut.Forward(input), f, Alpha);
        return Post is null ? y : Post.Forward(y);
    }

    /// <inheritdoc />
    protected override void OnChildReplaced(string name, Module module)
    {
        if (name == "shortcut") Shortcut = module;
        else if (name == "act") Post = module;
        else
        {
            int i = _branch.FindIndex(s => s.Name == name);
            _branch[i] = _branch[i] with { Module = module };
        }
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => Alpha is null ? "" : "zero_init=True";
}

/// <summary>
/// He et al.'s option-A shortcut (2016, §4.2): x subsampled by the stride, <c>x[:, :, ::s, ::s]</c>, and
/// zero channels added on both sides (<c>F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))</c> in the usual
/// CIFAR ResNet), so the shortcut has no parameters. Input [N, C, H, W], output
/// [N, before + C + after, ⌊(H − 1)/s⌋ + 1, ⌊(W − 1)/s⌋ + 1].
/// </summary>
/// <param name="stride">The subsampling step.</param>
/// <param name="before">Zero channels in front.</param>
/// <param name="after">Zero channels behind.</param>
public sealed class ChannelPadShortcut(Size2d stride, int before, int after) : Module
{
    /// <summary>The subsampling step.</summary>
    public Size2d Stride { get; } = stride;

    /// <summary>Zero channels in front of x's.</summary>
    public int Before { get; } = before;

    /// <summary>Zero channels behind x's.</summary>
    public int After { get; } = after;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank != 4) throw new ArgumentException($"ChannelPadShortcut: expected [N, C, H, W], got {Shapes.Format(input.Shape)}.");
        // A 1×1 max pool with stride s picks x[:, :, ::s, ::s] (and routes the gradient back there).
        var x = Stride == new Size2d(1, 1) ? input : Tensor.MaxPool2d(input, 1, Stride, 0, 1);
        if (Before == 0 && After == 0) return x;
        int n = x.Shape[0], h = x.Shape[2], w = x.Shape[3];
        var parts = new List<Tensor>();
        if (Before > 0) parts.Add(Tensor.Zeros(x.DType, n, Before, h, w));
        parts.Add(x);
        if (After > 0) parts.Add(Tensor.Zeros(x.DType, n, After, h, w));
        return Tensor.Concat([.. parts], 1);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"stride={Stride}, pad=({Before}, {After})";
}
