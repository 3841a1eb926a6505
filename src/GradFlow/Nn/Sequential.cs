using GradFlow.Kernels;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// Modules applied in order, <c>y = m_n(...m_2(m_1(x)))</c>; children are named <c>0</c>, <c>1</c>, …
/// as in <c>torch.nn.Sequential</c>, so parameters are <c>0.weight</c>, or <c>layers.0.weight</c> when
/// the sequential is registered as <c>layers</c>.
/// </summary>
/// <example><code>var net = new Sequential(new Linear(784, 256), new Relu(), new Linear(256, 10));</code></example>
public sealed class Sequential : Module
{
    private readonly List<Module> _modules = [];

    /// <summary>A sequential of <paramref name="modules"/>, in order.</summary>
    public Sequential(params Module[] modules)
    {
        foreach (var m in modules) Add(m);
    }

    /// <summary>Appends a module (named by its position).</summary>
    public Sequential Add(Module module)
    {
        RegisterModule(_modules.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module);
        _modules.Add(module);
        return this;
    }

    /// <summary>The module at <paramref name="index"/>.</summary>
    public Module this[int index] => _modules[index];

    /// <summary>Number of modules.</summary>
    public int Count => _modules.Count;

    /// <summary>The modules in order.</summary>
    public IReadOnlyList<Module> Modules => _modules;

    /// <summary>
    /// Runs the modules in order. A <see cref="Linear"/> directly followed by <see cref="Relu"/>,
    /// <see cref="Tanh"/> or <see cref="Sigmoid"/>, neither watched by a hook, runs as one fused op
    /// (<see cref="Tensor.Linear(Tensor, Tensor, Tensor?, FusedActivation)"/>: the activation in the GEMM's
    /// epilogue, one graph node): the same values (up to the last bits of the vector activation) and
    /// gradients, one pass over the layer's output fewer. Likewise a hook-free batch norm directly followed by a
    /// <see cref="Relu"/> runs as one op (<see cref="BatchNormBase.ForwardFused"/>: the ReLU inside the norm's passes, bitwise
    /// the two ops). The activation may carry output and backward hooks (the gradient monitor's): they run on the fused op's
    /// output (<see cref="Module.Complete"/>). A hook on the first module, or a forward hook on the activation (it reads the
    /// activation's input, which the fused op does not make), makes both run as modules.
    /// </summary>
    protected override Tensor ForwardCore(Tensor input)
    {
        var x = input;
        for (int i = 0; i < _modules.Count; i++)
        {
            if (i + 1 < _modules.Count && TryFused(_modules[i], _modules[i + 1], x) is Tensor fused)
            {
                x = fused;
                i++;
                continue;
            }
            x = _modules[i].Forward(x);
        }
        return x;
    }

    /// <summary>
    /// <paramref name="module"/> then <paramref name="next"/> on <paramref name="x"/> as one fused op when they are a
    /// hook-free <see cref="Linear"/> and ReLU/tanh/σ, or a hook-free batch norm and ReLU, the activation without a forward
    /// hook (see <see cref="ForwardCore"/>); null when they do not fuse. Shared by every container that runs modules in order
    /// (also the network description's chains and residual branches).
    /// </summary>
    internal static Tensor? TryFused(Module module, Module next, Tensor x)
    {
        if (module is Linear linear && !linear.HasHooks && Fusable(next) is var act && act != FusedActivation.None)
            return next.Complete(linear.ForwardFused(x, act));
        if (module is BatchNormBase norm && !norm.HasHooks && Fusable(next) == FusedActivation.Relu)
            return next.Complete(norm.ForwardFused(x, relu: true));
        return null;
    }

    /// <summary>The activation a module applies when the GEMM epilogue can apply it and no forward hook reads its input; else None.</summary>
    private static FusedActivation Fusable(Module m) => !m.TakesFusedOutput ? FusedActivation.None : m switch
    {
        Relu => FusedActivation.Relu,
        Tanh => FusedActivation.Tanh,
        Sigmoid => FusedActivation.Sigmoid,
        _ => FusedActivation.None,
    };

    /// <inheritdoc />
    protected override void OnChildReplaced(string name, Module module) => _modules[int.Parse(name, System.Globalization.CultureInfo.InvariantCulture)] = module;
}

/// <summary>The identity, <c>y = x</c> (a placeholder, as <c>torch.nn.Identity</c>).</summary>
public sealed class Identity : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input;
}

/// <summary>Flattens dimensions <c>startDim..endDim</c> (defaults 1 and −1: everything but the batch).</summary>
public sealed class Flatten(int startDim = 1, int endDim = -1) : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Flatten(startDim, endDim);

    /// <inheritdoc />
    protected override string ExtraRepr() => $"start_dim={startDim}, end_dim={endDim}";
}
