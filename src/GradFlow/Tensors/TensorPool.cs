namespace GradFlow.Tensors;

/// <summary>
/// Storage arrays released for reuse, per thread, by exact length: new tensors take their storage from
/// here before asking the GC, so a training step in steady state allocates no tensor storage.
/// </summary>
/// <remarks>
/// Safe by construction: an array enters the pool only through <see cref="Tensor.ReleaseStorage"/>,
/// which detaches it from the tensor and all its views first (later access throws), and only for
/// storage whose owner is known: the backward engine's gradient temporaries once consumed (it tracks
/// every array allocated during the pass and every reference it hands out) and engine-created
/// parameter gradients released by <c>Optimizer.ZeroGrad</c>. The pool holds at most
/// <see cref="MaxBytes"/> per thread; when a returned array would exceed that, the pooled arrays are
/// dropped (left to the GC) and pooling starts again from the newcomer.
/// While the backward engine runs, <see cref="Rent{T}"/> records what it hands out in the
/// engine's tracking set (<see cref="Track"/>).
/// </remarks>
internal static class TensorPool
{
    /// <summary>Upper bound of pooled bytes per thread.</summary>
    public const long MaxBytes = 256L << 20;

    [ThreadStatic] private static Dictionary<int, Stack<float[]>>? _floats;
    [ThreadStatic] private static Dictionary<int, Stack<double[]>>? _doubles;
    [ThreadStatic] private static long _bytes;
    [ThreadStatic] private static HashSet<Array>? _tracking;

    /// <summary>An array of exactly <paramref name="length"/> elements with unspecified contents.</summary>
    public static T[] Rent<T>(int length) where T : unmanaged
    {
        T[]? array = null;
        if (typeof(T) == typeof(float)) array = (T[]?)(object?)Take(_floats, length);
        else if (typeof(T) == typeof(double)) array = (T[]?)(object?)Take(_doubles, length);
        if (array is not null) _bytes -= (long)length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        array ??= GC.AllocateUninitializedArray<T>(length);
        _tracking?.Add(array);
        return array;
    }

    /// <summary>Takes back an array nobody references any more.</summary>
    public static void Return(Array array)
    {
        long size = array is double[] ? array.Length * 8L : array.Length * 4L;
        if (array.Length == 0 || size > MaxBytes) return;
        if (_bytes + size > MaxBytes)
        {
            // Full: what is pooled belongs to earlier work more likely than to the current one (a bigger model
            // trained before on this thread, other tests on a test runner's thread). Hand it all to the GC and
            // start again, so the current workload's arrays are pooled from its next step on; refusing the
            // newcomer instead would leave the thread without reuse for good.
            Clear();
        }
        _bytes += size;
        if (array is float[] f) Put(_floats ??= [], f);
        else if (array is double[] d) Put(_doubles ??= [], d);
    }

    /// <summary>Drops every array pooled on this thread (they are left to the GC).</summary>
    public static void Clear()
    {
        _floats?.Clear();
        _doubles?.Clear();
        _bytes = 0;
    }

    /// <summary>The bytes pooled on this thread.</summary>
    public static long PooledBytes => _bytes;

    /// <summary>Starts recording every rented array in <paramref name="set"/> (null stops); returns the previous set.</summary>
    public static HashSet<Array>? Track(HashSet<Array>? set)
    {
        var previous = _tracking;
        _tracking = set;
        return previous;
    }

    private static T[]? Take<T>(Dictionary<int, Stack<T[]>>? pool, int length) =>
        pool is not null && pool.TryGetValue(length, out var stack) && stack.Count > 0 ? stack.Pop() : null;

    private static void Put<T>(Dictionary<int, Stack<T[]>> pool, T[] array)
    {
        if (!pool.TryGetValue(array.Length, out var stack)) pool[array.Length] = stack = new Stack<T[]>();
        stack.Push(array);
    }
}
