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

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var x = input;
        foreach (var m in _modules) x = m.Forward(x);
        return x;
    }

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
