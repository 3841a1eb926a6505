using System.Text;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>Called after a module's forward with (module, input, output).</summary>
public delegate void ForwardHook(Module module, Tensor input, Tensor output);

/// <summary>
/// Called after a module's forward with (module, output): a hook that does not read the module's input, so a container
/// may compute the module's output in one fused op with the module before it and still run the hook (see
/// <see cref="Module.RegisterOutputHook"/>).
/// </summary>
public delegate void OutputHook(Module module, Tensor output);

/// <summary>Called during backward with (module, dL/d(output)), when the gradient w.r.t. the module's output is complete.</summary>
public delegate void BackwardHook(Module module, Tensor gradOutput);

/// <summary>
/// Base class of every layer and model: named parameters, buffers and child modules (their names
/// make PyTorch's state-dict keys, <c>layers.0.weight</c>), train/eval mode, and forward and
/// backward hooks.
/// </summary>
/// <remarks>
/// A module is a constructor that registers its parameters and children, <see cref="ResetParameters"/>,
/// and <see cref="ForwardCore"/>. <see cref="Forward"/> is the public entry point: it calls
/// <see cref="ForwardCore"/> and then runs the hooks. With no hook registered the cost is three null
/// checks. Registration order is kept everywhere (parameters, buffers, children, hooks), so
/// iteration order, and with it every seeded initialisation, is deterministic.
/// </remarks>
public abstract class Module
{
    private readonly List<(string Name, Parameter Parameter)> _parameters = [];
    private readonly List<(string Name, Tensor? Buffer)> _buffers = [];
    private readonly List<(string Name, Module Module)> _children = [];
    // copy-on-write arrays: a forward iterates them without copying, and a hook may remove itself
    private ForwardHook[]? _forwardHooks;
    private OutputHook[]? _outputHooks;
    private BackwardHook[]? _backwardHooks;

    /// <summary>True in training mode (the default), false in evaluation mode.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Runs the module: <see cref="ForwardCore"/>, then the forward hooks and the output hooks, and arranges the backward hooks.</summary>
    public Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var output = ForwardCore(input);
        if (_forwardHooks is { } fh)
            foreach (var hook in fh) hook(this, input, output);
        return Complete(output);
    }

    /// <summary>
    /// What <see cref="Forward"/> does after the module's computation and its forward hooks: the output hooks, and the
    /// backward hooks' pass-through node. A container that computed this module's output in one op with the module before
    /// it (<see cref="TakesFusedOutput"/>) calls it in place of <see cref="Forward"/> and uses the tensor it returns.
    /// </summary>
    internal Tensor Complete(Tensor output)
    {
        if (_outputHooks is { } oh)
            foreach (var hook in oh) hook(this, output);
        if (_backwardHooks is not null && output.RequiresGrad)
        {
            // A pass-through node gives the hook the gradient w.r.t. this module's output even when
            // the output tensor is shared with another module (e.g. an identity).
            output = output.Clone();
            output.RegisterHook(g =>
            {
                if (_backwardHooks is { } bh)
                    foreach (var hook in bh) hook(this, g);
                return null;
            });
        }
        return output;
    }

    /// <summary>Whether any hook is registered on this module (a container may then not fuse it with the module after it, whose op would hide its output).</summary>
    internal bool HasHooks => _forwardHooks is not null || _outputHooks is not null || _backwardHooks is not null;

    /// <summary>
    /// Whether a container may compute this module's output in one op with the module before it and then call
    /// <see cref="Complete"/>: no forward hook reads its input, which the fused op does not make. Output and backward hooks
    /// (the gradient monitor's) leave the fusion on.
    /// </summary>
    internal bool TakesFusedOutput => _forwardHooks is null;

    /// <summary>The module's computation (called by <see cref="Forward"/>).</summary>
    protected abstract Tensor ForwardCore(Tensor input);

    /// <summary>Re-initialises this module's own parameters to their defaults (children re-initialise themselves). Default: nothing.</summary>
    public virtual void ResetParameters()
    {
    }

    // ---------------------------------------------------------------- registration

    /// <summary>Registers a parameter under <paramref name="name"/> and returns it.</summary>
    protected Parameter RegisterParameter(string name, Tensor data)
    {
        CheckName(name);
        var p = new Parameter(data);
        _parameters.Add((name, p));
        return p;
    }

    /// <summary>Registers a buffer (state that is saved but not learnt, e.g. running statistics).</summary>
    protected Tensor RegisterBuffer(string name, Tensor data)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(data);
        _buffers.Add((name, data));
        return data;
    }

    /// <summary>Registers a child module under <paramref name="name"/> and returns it.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(module);
        _children.Add((name, module));
        return module;
    }

    /// <summary>Replaces the child registered as <paramref name="name"/> (remedies swap layers this way).</summary>
    /// <exception cref="ArgumentException">when there is no such child.</exception>
    public void ReplaceChild(string name, Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        int i = _children.FindIndex(c => c.Name == name);
        if (i < 0) throw new ArgumentException($"ReplaceChild: {GetType().Name} has no child named '{name}'.");
        _children[i] = (name, module);
        OnChildReplaced(name, module);
    }

    /// <summary>Lets a container update its own references after <see cref="ReplaceChild"/>.</summary>
    protected virtual void OnChildReplaced(string name, Module module)
    {
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"{GetType().Name}: invalid member name '{name}' (non-empty, no '.').");
        if (_parameters.Exists(p => p.Name == name) || _buffers.Exists(b => b.Name == name) || _children.Exists(c => c.Name == name))
            throw new ArgumentException($"{GetType().Name}: a member named '{name}' is already registered.");
    }

    // ---------------------------------------------------------------- traversal

    /// <summary>Direct children with their names.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => _children;

    /// <summary>This module (name "") and every descendant, depth first, with dotted names (<c>layers.0</c>).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in _children)
            foreach (var m in child.NamedModules(prefix.Length == 0 ? name : prefix + "." + name))
                yield return m;
    }

    /// <summary>Every parameter with its state-dict name (<c>layers.0.weight</c>), own before children's.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (name, p) in _parameters) yield return (Join(prefix, name), p);
        foreach (var (name, child) in _children)
            foreach (var p in child.NamedParameters(Join(prefix, name)))
                yield return p;
    }

    /// <summary>Every parameter, in <see cref="NamedParameters"/> order.</summary>
    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Every buffer with its state-dict name.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers(string prefix = "")
    {
        foreach (var (name, b) in _buffers)
            if (b is not null) yield return (Join(prefix, name), b);
        foreach (var (name, child) in _children)
            foreach (var b in child.NamedBuffers(Join(prefix, name)))
                yield return b;
    }

    /// <summary>
    /// The state dict: every parameter's and buffer's tensor under its PyTorch name, in registration
    /// order (per module: parameters, then buffers, then children).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict(string prefix = "")
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, p) in _parameters) result.Add(new(Join(prefix, name), p.Data));
        foreach (var (name, b) in _buffers)
            if (b is not null) result.Add(new(Join(prefix, name), b));
        foreach (var (name, child) in _children) result.AddRange(child.StateDict(Join(prefix, name)));
        return result;
    }

    /// <summary>
    /// Copies values from <paramref name="state"/> into the parameters and buffers of the same names.
    /// With <paramref name="strict"/>, missing or unexpected keys are an error; shapes must match.
    /// </summary>
    /// <exception cref="ArgumentException">naming the key and both shapes, or the missing/unexpected keys.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        var own = StateDict();
        var ownNames = own.Select(kv => kv.Key).ToHashSet();
        if (strict)
        {
            var missing = ownNames.Where(n => !state.ContainsKey(n)).ToArray();
            var unexpected = state.Keys.Where(n => !ownNames.Contains(n)).ToArray();
            if (missing.Length > 0 || unexpected.Length > 0)
                throw new ArgumentException(
                    $"LoadStateDict: missing keys [{string.Join(", ", missing)}], unexpected keys [{string.Join(", ", unexpected)}].");
        }
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var source)) continue;
            if (!target.Shape.SequenceEqual(source.Shape))
                throw new ArgumentException(
                    $"LoadStateDict: '{name}' has shape {Shapes.Format(source.Shape)} in the state dict but {Shapes.Format(target.Shape)} in the model.");
            using (GradMode.NoGrad()) target.CopyFrom(source.DType == target.DType ? source : source.To(target.DType).Detach());
        }
    }

    // ---------------------------------------------------------------- modes and gradients

    /// <summary>Sets training mode on this module and every descendant; returns this.</summary>
    public Module Train(bool mode = true)
    {
        foreach (var (_, m) in NamedModules()) m.Training = mode;
        return this;
    }

    /// <summary>Sets evaluation mode (<c>Train(false)</c>).</summary>
    public Module Eval() => Train(false);

    /// <summary>Clears every parameter's gradient (sets it to null, as PyTorch's <c>set_to_none=True</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.Grad = null;
    }

    /// <summary>Total number of parameter elements.</summary>
    public long ParameterCount() => Parameters().Sum(p => (long)p.Count);

    // ---------------------------------------------------------------- hooks

    /// <summary>
    /// Registers a hook run after every forward with (module, input, output). The module then always runs as itself:
    /// a container does not fuse it with the module before it, since the hook reads the input. A hook that needs only the
    /// output should be an output hook (<see cref="RegisterOutputHook"/>).
    /// </summary>
    /// <returns>A handle whose <c>Dispose</c> removes the hook.</returns>
    public IDisposable RegisterForwardHook(ForwardHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _forwardHooks = [.. _forwardHooks ?? [], hook];
        return new Removal(() => _forwardHooks = Without(_forwardHooks, hook));
    }

    /// <summary>
    /// Registers a hook run after every forward with (module, output), after the forward hooks. It does not see the input,
    /// so a container may still compute this module's output in one op with the module before it (a linear layer and its
    /// activation, a batch norm and its ReLU, the end of a residual block): the hook sees the same output, and the model
    /// computes the same numbers watched or not.
    /// </summary>
    /// <returns>A handle whose <c>Dispose</c> removes the hook.</returns>
    public IDisposable RegisterOutputHook(OutputHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _outputHooks = [.. _outputHooks ?? [], hook];
        return new Removal(() => _outputHooks = Without(_outputHooks, hook));
    }

    /// <summary>
    /// Registers a hook run during backward with (module, dL/d(output)) — the backpropagated signal at
    /// this module's output. It takes effect from the next <see cref="Forward"/>.
    /// </summary>
    public IDisposable RegisterBackwardHook(BackwardHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        _backwardHooks = [.. _backwardHooks ?? [], hook];
        return new Removal(() => _backwardHooks = Without(_backwardHooks, hook));
    }

    private static T[]? Without<T>(T[]? hooks, T hook) where T : Delegate
    {
        if (hooks is null) return null;
        int i = Array.IndexOf(hooks, hook);
        if (i < 0) return hooks;
        var rest = hooks.Where((_, k) => k != i).ToArray();
        return rest.Length == 0 ? null : rest;
    }

    private sealed class Removal(Action remove) : IDisposable
    {
        private Action? _remove = remove;

        public void Dispose()
        {
            _remove?.Invoke();
            _remove = null;
        }
    }

    // ---------------------------------------------------------------- repr

    /// <summary>The one-line description inside the parentheses of the repr, e.g. <c>in_features=784, out_features=10, bias=True</c>.</summary>
    protected virtual string ExtraRepr() => "";

    /// <summary>A PyTorch-style repr: the type, its extra repr, and its children indented.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(GetType().Name).Append('(').Append(ExtraRepr());
        if (_children.Count > 0)
        {
            sb.Append('\n');
            foreach (var (name, child) in _children)
            {
                var lines = child.ToString().Split('\n');
                sb.Append("  (").Append(name).Append("): ").Append(lines[0]).Append('\n');
                for (int i = 1; i < lines.Length; i++) sb.Append("  ").Append(lines[i]).Append('\n');
            }
        }
        return sb.Append(')').ToString();
    }

    private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;
}
