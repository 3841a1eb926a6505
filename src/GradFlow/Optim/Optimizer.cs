using System.Globalization;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Optim;

/// <summary>
/// Base class of the optimisers: a fixed, ordered list of parameters, a learning rate that schedules
/// may change between steps, per-parameter state, and PyTorch-style state dicts.
/// </summary>
/// <remarks>
/// <para><see cref="Step"/> updates, in list order, every parameter whose <see cref="Parameter.Grad"/>
/// is set, and skips the others (as PyTorch). Updates are done in place, in the parameter's own
/// precision (float for float32 parameters), with <see cref="TensorPrimitives"/> over the storage.
/// Per-parameter state (momentum buffers, moment estimates, one scratch buffer) is allocated the first
/// time the parameter is updated and reused afterwards, so a step allocates nothing in steady state.</para>
/// <para>With <see cref="TrackUpdates"/> set, each step also records, per parameter, ||Δw||₂ and
/// ||w||₂ after the update (<see cref="UpdateNorms"/>, <see cref="WeightNorms"/>): the inputs of the
/// update ratio ||ΔW||/||W||. This costs one copy of the parameter and two reductions; when off it
/// costs one branch.</para>
/// </remarks>
public abstract class Optimizer
{
    private readonly Parameter[] _parameters;
    private readonly string[] _stateNames;
    private readonly Tensor?[][] _state;
    private readonly long[] _steps;
    private readonly Tensor?[,] _scratch;
    private readonly Tensor?[] _previous;
    private readonly double[] _updateNorms;
    private readonly double[] _weightNorms;
    private readonly double[] _swallowed;
    private double _learningRate;

    /// <summary>Takes the parameters in their enumeration order.</summary>
    /// <param name="name">The optimiser's name for error messages ("SGD", "Adam").</param>
    /// <param name="parameters">The parameters to optimise (at least one, no duplicates).</param>
    /// <param name="learningRate">Initial learning rate (≥ 0).</param>
    /// <param name="stateNames">PyTorch's names of the per-parameter state tensors (state-dict keys).</param>
    /// <exception cref="ArgumentException">when the list is empty, holds a parameter twice, or the learning rate is negative or not finite.</exception>
    protected Optimizer(string name, IEnumerable<Parameter> parameters, double learningRate, string[] stateNames)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(stateNames);
        Name = name;
        _parameters = parameters.ToArray();
        if (_parameters.Length == 0)
            throw new ArgumentException($"{name}: the parameter list is empty; pass the model's Parameters().", nameof(parameters));
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (_parameters[i] is null)
                throw new ArgumentException($"{name}: parameter {i} is null.", nameof(parameters));
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(_parameters[i], _parameters[j]))
                    throw new ArgumentException($"{name}: parameter {i} is the same object as parameter {j}; pass each parameter once.", nameof(parameters));
        }
        LearningRate = learningRate;
        _stateNames = stateNames;
        _state = new Tensor?[_parameters.Length][];
        for (int i = 0; i < _state.Length; i++) _state[i] = new Tensor?[stateNames.Length];
        _steps = new long[_parameters.Length];
        _scratch = new Tensor?[_parameters.Length, 2];
        _previous = new Tensor?[_parameters.Length];
        _updateNorms = new double[_parameters.Length];
        _weightNorms = new double[_parameters.Length];
        _swallowed = new double[_parameters.Length];
    }

    /// <summary>The optimiser's name, as in error messages and PyTorch ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad").</summary>
    public string Name { get; }

    /// <summary>The parameters, in the order given to the constructor (the indices of the state dict).</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>The learning rate of the next step (schedules set it).</summary>
    /// <exception cref="ArgumentException">when set to a negative or non-finite value.</exception>
    public double LearningRate
    {
        get => _learningRate;
        set
        {
            CheckNonNegative("lr", value);
            _learningRate = value;
        }
    }

    /// <summary>When set, each step records <see cref="UpdateNorms"/> and <see cref="WeightNorms"/>.</summary>
    public bool TrackUpdates { get; set; }

    /// <summary>
    /// Per parameter, ||w_after − w_before||₂ of the last step taken with <see cref="TrackUpdates"/> set
    /// (0 for a parameter skipped because it had no gradient).
    /// </summary>
    public ReadOnlySpan<double> UpdateNorms => _updateNorms;

    /// <summary>Per parameter, ||w||₂ after the last step taken with <see cref="TrackUpdates"/> set.</summary>
    public ReadOnlySpan<double> WeightNorms => _weightNorms;

    /// <summary>
    /// The update ratio ||ΔW||/||W|| of parameter <paramref name="index"/> at the last tracked step
    /// (∞ when ||W|| = 0 and ΔW ≠ 0; 0 when both are 0).
    /// </summary>
    public double UpdateRatio(int index)
    {
        double u = _updateNorms[index], w = _weightNorms[index];
        return u == 0 ? 0 : u / w;
    }

    /// <summary>
    /// Of the weights of parameter <paramref name="index"/> that the last tracked step changed, the fraction that
    /// changed by less than half a bf16 ulp of their value (<c>Kernels.PrecisionLoss.Bf16Swallowed</c>): the updates a
    /// bf16 copy of the weight would swallow. NaN when none changed.
    /// </summary>
    public double UpdatesSwallowedByBf16(int index) => _swallowed[index];

    /// <summary>Number of steps taken for parameter <paramref name="index"/> (steps where it had a gradient).</summary>
    public long StepCount(int index) => _steps[index];

    /// <summary>Updates every parameter that has a gradient, in order; parameters without one are untouched.</summary>
    /// <exception cref="ArgumentException">when a gradient's shape or element type differs from its parameter's.</exception>
    public void Step()
    {
        using var noGrad = GradMode.NoGrad();
        bool track = TrackUpdates;
        for (int i = 0; i < _parameters.Length; i++)
        {
            var w = _parameters[i].Data;
            var g = _parameters[i].Grad;
            if (g is null)
            {
                if (track)
                {
                    _updateNorms[i] = 0;
                    _weightNorms[i] = Norm(w);
                    _swallowed[i] = double.NaN;
                }
                continue;
            }
            if (g.DType != w.DType || !g.Shape.SequenceEqual(w.Shape))
                throw new ArgumentException(
                    $"{Name}: parameter {i} has shape {Shapes.Format(w.Shape)} ({w.DType}) but its gradient has shape {Shapes.Format(g.Shape)} ({g.DType}).");
            if (track) (_previous[i] ??= Tensor.Zeros(w.DType, w.ShapeArray)).CopyFrom(w);
            _steps[i]++;
            Update(i, w, g);
            if (track)
            {
                _updateNorms[i] = w.Is<float>()
                    ? TensorPrimitives.Distance<float>(w.Span<float>(), _previous[i]!.Span<float>())
                    : TensorPrimitives.Distance<double>(w.Span<double>(), _previous[i]!.Span<double>());
                _weightNorms[i] = Norm(w);
                var (updated, swallowed) = w.Is<float>() ? Kernels.PrecisionLoss.Bf16Swallowed(w.Span<float>(), _previous[i]!.Span<float>())
                    : Kernels.PrecisionLoss.Bf16Swallowed(w.Span<double>(), _previous[i]!.Span<double>());
                _swallowed[i] = updated == 0 ? double.NaN : (double)swallowed / updated;
            }
        }
        EndStep();
    }

    /// <summary>Called once after every parameter's <see cref="Update"/> of a step: an optimiser that deferred work (to run it for all parameters at once) finishes it here.</summary>
    protected virtual void EndStep()
    {
    }

    /// <summary>
    /// Sets every parameter's gradient to null (as PyTorch's <c>zero_grad(set_to_none=True)</c>). A
    /// gradient that the backward engine created is released for reuse: the next backward pass takes
    /// its storage again, so steps allocate no gradient storage. A reference to such a gradient (or a
    /// view of it) kept across this call throws on use; <c>Clone()</c> it first to keep the values.
    /// Gradients assigned by user code are only dropped.
    /// </summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            var g = p.Grad;
            p.Grad = null;
            if (g is { IsEngineGrad: true }) g.ReleaseStorage();
        }
    }

    /// <summary>
    /// Applies one update to <paramref name="weight"/> (in place) from <paramref name="gradient"/>
    /// (same shape and type). <see cref="StepCount"/> already counts this step.
    /// </summary>
    protected abstract void Update(int index, Tensor weight, Tensor gradient);

    /// <summary>The hyper-parameters other than the learning rate, by their PyTorch names, for the state dict.</summary>
    protected abstract IEnumerable<(string Name, double Value)> HyperParameters();

    /// <summary>
    /// Restores the hyper-parameters listed by <see cref="HyperParameters"/>: validates all of them
    /// first (throwing <see cref="ArgumentException"/>), then assigns.
    /// </summary>
    protected abstract void LoadHyperParameters(IReadOnlyDictionary<string, double> values);

    /// <summary>True once state slot <paramref name="slot"/> of parameter <paramref name="index"/> exists.</summary>
    protected bool HasState(int index, int slot) => _state[index][slot] is not null;

    /// <summary>State slot <paramref name="slot"/> of parameter <paramref name="index"/>, created (filled with <paramref name="initialValue"/>) on first use.</summary>
    protected Tensor State(int index, int slot, double initialValue = 0)
    {
        if (_state[index][slot] is { } s) return s;
        var w = _parameters[index].Data;
        var t = Tensor.Full(initialValue, w.DType, w.ShapeArray);
        _state[index][slot] = t;
        return t;
    }

    /// <summary>Work buffer <paramref name="which"/> (0 or 1) of parameter <paramref name="index"/>'s shape and type; contents unspecified.</summary>
    protected Tensor Scratch(int index, int which = 0)
    {
        var w = _parameters[index].Data;
        return _scratch[index, which] ??= Tensor.Zeros(w.DType, w.ShapeArray);
    }

    // ---------------------------------------------------------------- state dict

    /// <summary>
    /// A snapshot (copies) of the optimiser state under PyTorch's names: <c>state.{i}.{name}</c> for
    /// each existing state tensor of parameter i (e.g. <c>state.0.exp_avg</c>), <c>state.{i}.step</c>
    /// (float64 scalar) once parameter i has been stepped, and <c>param_groups.0.{name}</c> (float64
    /// scalars; booleans as 0/1) for the learning rate and every hyper-parameter.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict()
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        for (int i = 0; i < _parameters.Length; i++)
        {
            for (int s = 0; s < _stateNames.Length; s++)
                if (_state[i][s] is { } t)
                    result.Add(new(StateKey(i, _stateNames[s]), Tensor.Zeros(t.DType, t.ShapeArray).CopyFrom(t)));
            if (_steps[i] > 0) result.Add(new(StateKey(i, "step"), Tensor.Scalar(_steps[i], DType.Float64)));
        }
        result.Add(new("param_groups.0.lr", Tensor.Scalar(_learningRate, DType.Float64)));
        foreach (var (name, value) in HyperParameters())
            result.Add(new("param_groups.0." + name, Tensor.Scalar(value, DType.Float64)));
        return result;
    }

    /// <summary>
    /// Restores a state dict produced by <see cref="StateDict"/> of an optimiser of the same kind over
    /// parameters of the same shapes: afterwards, steps continue bit for bit as they would have.
    /// State tensors absent from the dict are cleared (the parameter had not been stepped).
    /// </summary>
    /// <exception cref="ArgumentException">naming the key, for unknown keys, missing hyper-parameters, or shape mismatches; nothing is changed then.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var hyper = new Dictionary<string, double>();
        var tensors = new Tensor?[_parameters.Length, _stateNames.Length];
        var steps = new long[_parameters.Length];
        foreach (var (key, value) in state)
        {
            if (key.StartsWith("param_groups.0.", StringComparison.Ordinal))
            {
                hyper[key["param_groups.0.".Length..]] = ScalarOf(key, value);
                continue;
            }
            var parts = key.Split('.');
            if (parts.Length != 3 || parts[0] != "state"
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int i) || i >= _parameters.Length)
                throw new ArgumentException($"{Name}.LoadStateDict: unexpected key '{key}' (this optimiser has {_parameters.Length} parameters).", nameof(state));
            if (parts[2] == "step")
            {
                double v = ScalarOf(key, value);
                if (!(v >= 0) || !double.IsInteger(v))
                    throw new ArgumentException($"{Name}.LoadStateDict: '{key}' must be a non-negative integer; got {v}.", nameof(state));
                steps[i] = (long)v;
                continue;
            }
            int s = Array.IndexOf(_stateNames, parts[2]);
            if (s < 0)
                throw new ArgumentException(
                    $"{Name}.LoadStateDict: unexpected key '{key}'; {Name} keeps [{string.Join(", ", _stateNames)}, step].", nameof(state));
            var w = _parameters[i].Data;
            if (!value.Shape.SequenceEqual(w.Shape))
                throw new ArgumentException(
                    $"{Name}.LoadStateDict: '{key}' has shape {Shapes.Format(value.Shape)} but parameter {i} has shape {Shapes.Format(w.Shape)}.", nameof(state));
            tensors[i, s] = value;
        }
        var names = HyperParameters().Select(h => h.Name).Append("lr").ToArray();
        var missing = names.Where(n => !hyper.ContainsKey(n)).ToArray();
        var unexpected = hyper.Keys.Where(n => !names.Contains(n)).ToArray();
        if (missing.Length > 0 || unexpected.Length > 0)
            throw new ArgumentException(
                $"{Name}.LoadStateDict: missing hyper-parameters [{string.Join(", ", missing)}], unexpected [{string.Join(", ", unexpected)}].", nameof(state));

        CheckNonNegative("lr", hyper["lr"]);
        LoadHyperParameters(hyper);
        LearningRate = hyper["lr"];
        for (int i = 0; i < _parameters.Length; i++)
        {
            _steps[i] = steps[i];
            var w = _parameters[i].Data;
            for (int s = 0; s < _stateNames.Length; s++)
            {
                var source = tensors[i, s];
                if (source is null)
                {
                    _state[i][s] = null;
                    continue;
                }
                var target = _state[i][s] ??= Tensor.Zeros(w.DType, w.ShapeArray);
                target.CopyFrom(source.DType == w.DType ? source : source.To(w.DType).Detach());
            }
        }
    }

    private double ScalarOf(string key, Tensor value)
    {
        if (value.Count != 1)
            throw new ArgumentException($"{Name}.LoadStateDict: '{key}' must be a one-element tensor; got shape {Shapes.Format(value.Shape)}.");
        return value.GetFlat(0);
    }

    private static string StateKey(int index, string name) => string.Create(CultureInfo.InvariantCulture, $"state.{index}.{name}");

    // ---------------------------------------------------------------- helpers for the subclasses

    /// <summary>Throws unless <paramref name="value"/> is finite and ≥ 0.</summary>
    protected void CheckNonNegative(string argument, double value)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentException($"{Name}: {argument} must be a finite number ≥ 0; got {value}.", argument);
    }

    /// <summary>Throws unless 0 ≤ <paramref name="value"/> &lt; 1.</summary>
    protected void CheckUnitInterval(string argument, double value)
    {
        if (!(value >= 0 && value < 1))
            throw new ArgumentException($"{Name}: {argument} must be in [0, 1); got {value}.", argument);
    }

    /// <summary>Throws unless <paramref name="value"/> is finite and &gt; 0.</summary>
    protected void CheckPositive(string argument, double value)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentException($"{Name}: {argument} must be a finite number > 0; got {value}.", argument);
    }

    private static double Norm(Tensor w) =>
        w.Is<float>() ? TensorPrimitives.Norm<float>(w.Span<float>()) : TensorPrimitives.Norm<double>(w.Span<double>());
}
