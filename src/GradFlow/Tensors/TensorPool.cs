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
/// <see cref="Capacity"/> bytes per thread: <see cref="MaxBytes"/>, or what the last training step
/// handed back when that is more (<see cref="EndStep"/>, called by a backward pass that releases
/// its intermediates, so a step whose intermediates exceed <see cref="MaxBytes"/> still allocates
/// nothing in steady state), at most a quarter of the memory the GC may use. When a returned array
/// would exceed the capacity, the pooled arrays are dropped (left to the GC) and pooling starts again
/// from the newcomer. At the end of each step, arrays of a length the step did not ask for are dropped.
/// While the backward engine runs, <see cref="Rent{T}"/> records what it hands out in the
/// engine's tracking set (<see cref="Track"/>).
/// </remarks>
internal static class TensorPool
{
    /// <summary>Pooled bytes per thread before any step has said it needs more.</summary>
    public const long MaxBytes = 256L << 20;

    /// <summary>The most a step can raise a thread's capacity to: a quarter of the memory available to the GC.</summary>
    private static readonly long Ceiling = Math.Max(MaxBytes, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);

    [ThreadStatic] private static Dictionary<int, Stack<float[]>>? _floats;
    [ThreadStatic] private static Dictionary<int, Stack<double[]>>? _doubles;
    [ThreadStatic] private static long _bytes;
    [ThreadStatic] private static HashSet<Array>? _tracking;
    [ThreadStatic] private static long _capacity;
    [ThreadStatic] private static HashSet<long>? _asked; // lengths rented since the last step's end (~length for double)

    /// <summary>An array of exactly <paramref name="length"/> elements with unspecified contents.</summary>
    public static T[] Rent<T>(int length) where T : unmanaged
    {
        T[]? array = null;
        if (typeof(T) == typeof(float))
        {
            array = (T[]?)(object?)Take(_floats, length);
            (_asked ??= []).Add(length);
        }
        else if (typeof(T) == typeof(double))
        {
            array = (T[]?)(object?)Take(_doubles, length);
            (_asked ??= []).Add(~(long)length);
        }
        if (array is not null) _bytes -= (long)length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        array ??= GC.AllocateUninitializedArray<T>(length);
        _tracking?.Add(array);
        return array;
    }

    /// <summary>Takes back an array nobody references any more.</summary>
    public static void Return(Array array)
    {
        long size = array is double[] ? array.Length * 8L : array.Length * 4L;
        if (array.Length == 0 || size > Capacity) return;
        if (_bytes + size > Capacity)
        {
            // Full: what is pooled belongs to earlier work more likely than to the current one (a bigger model
            // trained before on this thread, other tests on a test runner's thread). Hand it all to the GC and
            // start again, so the current workload's arrays are pooled from its next step on; refusing the
            // newcomer instead would leave the thread without reuse for good.
            Drop();
        }
        _bytes += size;
        if (array is float[] f) Put(_floats ??= [], f);
        else if (array is double[] d) Put(_doubles ??= [], d);
    }

    /// <summary>Drops every array pooled on this thread (they are left to the GC) and forgets what steps asked for.</summary>
    public static void Clear()
    {
        Drop();
        _asked?.Clear();
        _capacity = 0;
    }

    private static void Drop()
    {
        _floats?.Clear();
        _doubles?.Clear();
        _bytes = 0;
    }

    /// <summary>The most this thread's pool holds, in bytes.</summary>
    public static long Capacity => _capacity > 0 ? _capacity : MaxBytes;

    /// <summary>
    /// The end of a training step whose intermediates and gradients (<paramref name="returning"/> bytes)
    /// are about to come back (the gradients at the next <c>ZeroGrad</c>): arrays of a length no rental asked for since the previous step's end are dropped
    /// (another workload's), and the capacity becomes what is pooled plus what is returning, so the
    /// next step finds all of it (between <see cref="MaxBytes"/> and a quarter of the GC's memory).
    /// </summary>
    public static void EndStep(long returning)
    {
        var asked = _asked;
        if (asked is not null)
        {
            Evict(_floats, asked, static l => l, 4);
            Evict(_doubles, asked, static l => ~(long)l, 8);
            asked.Clear();
        }
        _capacity = Math.Clamp(_bytes + returning, MaxBytes, Ceiling);
    }

    private static void Evict<T>(Dictionary<int, Stack<T[]>>? pool, HashSet<long> asked, Func<int, long> key, int size)
    {
        if (pool is null) return;
        List<int>? stale = null;
        foreach (var (length, _) in pool)
            if (!asked.Contains(key(length))) (stale ??= []).Add(length);
        if (stale is null) return;
        foreach (int length in stale)
        {
            _bytes -= (long)length * size * pool[length].Count;
            pool.Remove(length);
        }
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
