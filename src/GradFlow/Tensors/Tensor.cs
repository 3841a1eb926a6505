using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace GradFlow.Tensors;

/// <summary>
/// An n-dimensional array of <see cref="DType.Float32"/> (or <see cref="DType.Float64"/>) values in
/// contiguous row-major storage, and a node of the define-by-run autograd graph.
/// </summary>
/// <remarks>
/// Every op returns a new contiguous tensor (reshape and <see cref="Detach"/> share storage). When
/// grad mode is on and an input <see cref="RequiresGrad"/>, the op records a <see cref="Node"/> with its
/// backward rule in <see cref="GradFn"/>; the backward engine (one layer up) walks those nodes.
/// Ops are defined in the partial files beside this one, one family per file, each forward next to
/// its backward rule.
/// </remarks>
public sealed partial class Tensor : IIdentityHashed
{
    private readonly int[] _shape;
    private readonly StorageBox _box;
    private bool _requiresGrad;

    /// <inheritdoc />
    int IIdentityHashed.IdentityHash { get; } = IdentityHash.Next();

    internal Tensor(Array storage, int[] shape) : this(new StorageBox(storage), shape)
    {
    }

    /// <summary>A tensor over <paramref name="box"/>'s storage (a view when the box is shared).</summary>
    private Tensor(StorageBox box, int[] shape)
    {
        var storage = box.Data ?? throw StorageBox.Released();
        _box = box;
        _shape = shape;
        DType = storage is double[] ? DType.Float64 : DType.Float32;
        Count = storage.Length;
    }

    /// <summary>The element storage: a <c>float[]</c> or <c>double[]</c> of exactly <see cref="Count"/> elements.</summary>
    /// <exception cref="InvalidOperationException">when the storage was released (see <see cref="ReleaseStorage"/>).</exception>
    internal Array Storage => _box.Data ?? throw StorageBox.Released();

    /// <summary>Whether this tensor and <paramref name="other"/> share storage (one is a view of the other).</summary>
    internal bool SharesStorage(Tensor other) => ReferenceEquals(_box, other._box);

    /// <summary>The storage object shared by this tensor and its views (identity for ownership tracking).</summary>
    internal StorageBox Box => _box;

    /// <summary>A view with another shape over the same storage (reshape, detach).</summary>
    internal Tensor View(int[] shape) => new(_box, shape);

    /// <summary>
    /// Hands the storage back to <see cref="TensorPool"/> and detaches it from this tensor and every
    /// view of it: any later access through them throws instead of seeing a reused buffer. Only for
    /// storage no one else can reach (the backward engine's temporaries, gradients released by
    /// <c>Optimizer.ZeroGrad</c>).
    /// </summary>
    internal void ReleaseStorage()
    {
        var data = _box.Data;
        if (data is null) return;
        _box.Data = null;
        TensorPool.Return(data);
    }

    /// <summary>True when the storage was released.</summary>
    internal bool IsReleased => _box.Data is null;

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>The dimensions (empty for a scalar).</summary>
    public ReadOnlySpan<int> Shape => _shape;

    internal int[] ShapeArray => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public int Count { get; }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => _shape[Shapes.Axis("size", dim, Rank)];

    /// <summary>
    /// Whether gradients are computed for this tensor. Set it on leaves (inputs, parameters); results
    /// of ops on such tensors require grad by construction.
    /// </summary>
    /// <exception cref="InvalidOperationException">when set on a non-leaf tensor.</exception>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (GradFn is not null)
                throw new InvalidOperationException(
                    $"RequiresGrad can only be changed on leaf tensors; this one was produced by '{GradFn.Op}'. Use Detach() to get a leaf.");
            _requiresGrad = value;
        }
    }

    /// <summary>Accumulated gradient dL/d(this) after a backward pass (leaves, and tensors that called <see cref="RetainGrad"/>).</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The recorded op that produced this tensor, or null for a leaf.</summary>
    public Node? GradFn { get; private set; }

    /// <summary>True when no recorded op produced this tensor.</summary>
    public bool IsLeaf => GradFn is null;

    /// <summary>Optional name, used in error messages and diagnostics.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// Hooks on the gradient flowing into this tensor: null when none (one branch in backward), one
    /// delegate, or an array (copy-on-write, so backward iterates it without copying). Registering
    /// one hook on a fresh tensor allocates nothing, which the gradient monitor relies on.
    /// </summary>
    internal object? Hooks { get; private set; }

    /// <summary>
    /// Observers of the gradient flowing into this tensor (one delegate or a copy-on-write array): run
    /// before the hooks, they may read the gradient during the call but not keep it, so backward can
    /// still recycle its storage. The gradient monitor's signal hooks are observers.
    /// </summary>
    internal object? Observers { get; private set; }

    /// <summary>Adds a gradient observer (see <see cref="Observers"/>); allocates nothing for the first one.</summary>
    internal void ObserveGradient(Action<Tensor> observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        if (!_requiresGrad)
            throw new InvalidOperationException("ObserveGradient: this tensor does not require grad, so no gradient will flow through it.");
        Observers = Observers switch
        {
            null => observer,
            Action<Tensor> one => new[] { one, observer },
            Action<Tensor>[] many => (Action<Tensor>[])[.. many, observer],
            _ => throw new InvalidOperationException("ObserveGradient: corrupt observer list."),
        };
    }

    /// <summary>Whether backward stores this non-leaf tensor's gradient in <see cref="Grad"/>.</summary>
    internal bool RetainsGrad { get; private set; }

    /// <summary>Gradient being accumulated during a backward pass (engine scratch).</summary>
    internal Tensor? PendingGrad { get; set; }

    /// <summary>Consumers still to contribute to <see cref="PendingGrad"/> (engine scratch).</summary>
    internal int PendingConsumers { get; set; }

    /// <summary>
    /// Registers a hook called with dL/d(this) when backward has accumulated it, before it flows on to
    /// the op that produced this tensor (or into <see cref="Grad"/> for a leaf). The hook may return a
    /// replacement gradient of the same shape, or null to keep it. Hooks run in registration order.
    /// </summary>
    /// <returns>A handle whose <c>Dispose</c> removes the hook.</returns>
    public HookHandle RegisterHook(Func<Tensor, Tensor?> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        if (!_requiresGrad)
            throw new InvalidOperationException("RegisterHook: this tensor does not require grad, so no gradient will flow through it.");
        Hooks = Hooks switch
        {
            null => hook,
            Func<Tensor, Tensor?> one => new[] { one, hook },
            Func<Tensor, Tensor?>[] many => (Func<Tensor, Tensor?>[])[.. many, hook],
            _ => throw new InvalidOperationException("RegisterHook: corrupt hook list."),
        };
        return new HookHandle(this, hook);
    }

    internal void RemoveHook(Func<Tensor, Tensor?> hook)
    {
        switch (Hooks)
        {
            case Func<Tensor, Tensor?> one when one == hook:
                Hooks = null;
                break;
            case Func<Tensor, Tensor?>[] many:
                int i = Array.IndexOf(many, hook);
                if (i < 0) break;
                var rest = many.Where((_, k) => k != i).ToArray();
                Hooks = rest.Length == 1 ? rest[0] : rest;
                break;
        }
    }

    /// <summary>Keeps this non-leaf tensor's gradient in <see cref="Grad"/> after backward.</summary>
    public Tensor RetainGrad()
    {
        if (!_requiresGrad)
            throw new InvalidOperationException("RetainGrad: this tensor does not require grad.");
        RetainsGrad = true;
        return this;
    }

    /// <summary>A tensor sharing this one's storage, cut off from the graph (a leaf that does not require grad).</summary>
    public Tensor Detach() => View(_shape);

    // ---------------------------------------------------------------- storage access

    internal Span<float> F
    {
        get
        {
            if (Storage is float[] f) return f;
            throw new InvalidOperationException($"Expected a Float32 tensor, got {DType}.");
        }
    }

    internal Span<double> D
    {
        get
        {
            if (Storage is double[] d) return d;
            throw new InvalidOperationException($"Expected a Float64 tensor, got {DType}.");
        }
    }

    /// <summary>The storage as a span of <typeparamref name="T"/> (float or double, matching <see cref="DType"/>).</summary>
    internal Span<T> Span<T>() where T : unmanaged => Unsafe.As<T[]>(Storage).AsSpan(0, Count);

    /// <summary>Set by the backward engine on a gradient it created and stored in <see cref="Grad"/>; such a gradient may be released by <c>Optimizer.ZeroGrad</c>.</summary>
    internal bool IsEngineGrad { get; set; }

    internal bool Is<T>() => Storage is T[];

    // ---------------------------------------------------------------- graph recording

    /// <summary>True when an op on these inputs must record a node.</summary>
    internal static bool NeedsGrad(Tensor a) => a._requiresGrad && GradMode.IsEnabled;

    internal static bool NeedsGrad(Tensor a, Tensor b) => (a._requiresGrad || b._requiresGrad) && GradMode.IsEnabled;

    internal static bool NeedsGrad(Tensor[] inputs)
    {
        if (!GradMode.IsEnabled) return false;
        foreach (var t in inputs)
            if (t._requiresGrad) return true;
        return false;
    }

    /// <summary>Records <paramref name="op"/> as this tensor's producer (call only when <see cref="NeedsGrad(Tensor[])"/>).</summary>
    internal Tensor Record(string op, Tensor[] inputs, Func<Tensor, Tensor?[]> backward, Action? onRelease = null)
    {
        GradFn = new Node(op, inputs, backward, onRelease);
        _requiresGrad = true;
        return this;
    }

    // ---------------------------------------------------------------- values out

    /// <summary>The values as float32, row-major (a copy).</summary>
    public float[] ToArray()
    {
        if (Storage is float[] f) return (float[])f.Clone();
        var d = (double[])Storage;
        var r = new float[d.Length];
        for (int i = 0; i < d.Length; i++) r[i] = (float)d[i];
        return r;
    }

    /// <summary>The values as float64, row-major (a copy).</summary>
    public double[] ToDoubleArray()
    {
        if (Storage is double[] d) return (double[])d.Clone();
        var f = (float[])Storage;
        var r = new double[f.Length];
        for (int i = 0; i < f.Length; i++) r[i] = f[i];
        return r;
    }

    /// <summary>The value of a one-element tensor.</summary>
    /// <exception cref="InvalidOperationException">when the tensor has more than one element.</exception>
    public double Item()
    {
        if (Count != 1)
            throw new InvalidOperationException($"Item: only one-element tensors convert to a number; this one has shape {Shapes.Format(_shape)}.");
        return GetFlat(0);
    }

    /// <summary>The element at a flat (row-major) position, as double.</summary>
    public double GetFlat(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"GetFlat: index {index} is outside a tensor of shape {Shapes.Format(_shape)} ({Count} elements).");
        return Storage is float[] f ? f[index] : ((double[])Storage)[index];
    }

    /// <summary>The element at a multi-index.</summary>
    [IndexerName("ElementAt")]
    public double this[params int[] index] => GetFlat(FlatIndex("indexer", index));

    internal int FlatIndex(string op, ReadOnlySpan<int> index)
    {
        if (index.Length != Rank)
            throw new ArgumentException($"{op}: {index.Length} indices given for a tensor of shape {Shapes.Format(_shape)}.");
        int flat = 0;
        for (int i = 0; i < Rank; i++)
        {
            int k = index[i] < 0 ? index[i] + _shape[i] : index[i];
            if ((uint)k >= (uint)_shape[i])
                throw new ArgumentException($"{op}: index {index[i]} is out of range for dimension {i} of size {_shape[i]} (shape {Shapes.Format(_shape)}).");
            flat = flat * _shape[i] + k;
        }
        return flat;
    }

    /// <summary>A PyTorch-like representation: values (abridged), shape, dtype and grad_fn.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("tensor(");
        if (Rank == 0) sb.Append(Fmt(GetFlat(0)));
        else
        {
            sb.Append('[');
            int shown = Math.Min(Count, 8);
            for (int i = 0; i < shown; i++)
            {
                if (i > 0) sb.Append(", ");
                sb.Append(Fmt(GetFlat(i)));
            }
            if (Count > shown) sb.Append(", ...");
            sb.Append(']');
        }
        sb.Append(", shape=").Append(Shapes.Format(_shape));
        if (DType != DType.Float32) sb.Append(", dtype=float64");
        if (GradFn is not null) sb.Append(", grad_fn=<").Append(GradFn).Append('>');
        else if (_requiresGrad) sb.Append(", requires_grad=True");
        return sb.Append(')').ToString();
    }

    private static string Fmt(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>
/// The storage array of a tensor, shared with its views; <see cref="Data"/> is null once the storage
/// was released to the <see cref="TensorPool"/>, so a released buffer is never reachable through an
/// old tensor or view.
/// </summary>
internal sealed class StorageBox(Array data) : IIdentityHashed
{
    public Array? Data = data;

    /// <inheritdoc />
    public int IdentityHash { get; } = Tensors.IdentityHash.Next();

    public static InvalidOperationException Released() => new(
        "This tensor's storage was released for reuse: it was a gradient cleared by Optimizer.ZeroGrad, an internal backward temporary, " +
        "or an intermediate of a step whose backward pass released them (Backward(releaseIntermediates: true), as the Trainer does). " +
        "Clone() it before then to keep its values.");
}

/// <summary>Removes a hook registered with <see cref="Tensor.RegisterHook"/> when disposed (a struct: registering allocates no handle).</summary>
public readonly struct HookHandle : IDisposable
{
    private readonly Tensor? _tensor;
    private readonly Func<Tensor, Tensor?>? _hook;

    internal HookHandle(Tensor tensor, Func<Tensor, Tensor?> hook)
    {
        _tensor = tensor;
        _hook = hook;
    }

    /// <summary>Removes the hook (idempotent: removing an absent hook does nothing).</summary>
    public void Dispose()
    {
        if (_tensor is not null && _hook is not null) _tensor.RemoveHook(_hook);
    }
}

/// <summary>An object hashed by identity through a hash fixed at construction (see <see cref="IdentityComparer{T}"/>).</summary>
internal interface IIdentityHashed
{
    /// <summary>A hash fixed for the object's lifetime.</summary>
    int IdentityHash { get; }
}

/// <summary>
/// Reference equality with the object's own <see cref="IIdentityHashed.IdentityHash"/>. The backward
/// engine hashes every tensor and storage of a step's graph, most of them new: with
/// <see cref="ReferenceEqualityComparer"/>, each first <c>RuntimeHelpers.GetHashCode</c> of a new object is
/// a runtime call that installs the hash in its header (measured: 7 % of an mlp-deep-narrow step).
/// </summary>
internal sealed class IdentityComparer<T> : IEqualityComparer<T> where T : class, IIdentityHashed
{
    public static readonly IdentityComparer<T> Instance = new();

    public bool Equals(T? x, T? y) => ReferenceEquals(x, y);

    public int GetHashCode(T obj) => obj.IdentityHash;
}

/// <summary>Hashes for <see cref="IIdentityHashed"/>: a per-thread counter spread by Fibonacci hashing (collisions cost time, never correctness).</summary>
internal static class IdentityHash
{
    [ThreadStatic] private static uint _next;

    public static int Next() => (int)(++_next * 2654435769u);
}
