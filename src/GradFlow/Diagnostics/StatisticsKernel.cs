using System.Numerics;
using System.Runtime.InteropServices;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Diagnostics;

/// <summary>
/// The monitor's reductions: one fused SIMD pass gives Σx², max|x| and the non-finite count of a
/// gradient (or Σx, Σx² of an activation). Tensors are cut into fixed chunks (by size only, never by
/// thread count) that the kernel threads share; chunk partials are added in order, so results are the
/// same for any thread count. Partials and the task delegate are allocated once per monitor.
/// </summary>
internal sealed class StatisticsKernel
{
    private const int Chunk = 1 << 15;

    private float[] _data = [];
    private int _count;
    private bool _moments;
    private double[] _a = new double[8], _b = new double[8];
    private long[] _bad = new long[8];
    private readonly Action<int> _body;

    // MeasureAll: the chunks of several tensors in one job (one wake-up of the kernel threads, not one per tensor)
    private float[][] _chunkData = new float[8][];
    private int[] _chunkStart = new int[8], _chunkLength = new int[8];
    private (long Nonzero, long BelowSubnormal, long BelowNormal)[] _fp16 = new (long, long, long)[8];
    private readonly Action<int> _bodyMany;

    public StatisticsKernel()
    {
        _body = RunChunk;
        _bodyMany = RunChunkOfMany;
    }

    /// <summary>
    /// <see cref="Measure(Tensor)"/> of every tensor of <paramref name="tensors"/> (null entries are skipped and
    /// give (0, 0, 0)); the float32 ones are cut into chunks that run as one job. For float32 tensors
    /// <paramref name="fp16"/> (when not empty) receives <see cref="PrecisionLoss.Fp16Underflow(ReadOnlySpan{float})"/>'s
    /// counts, taken while each chunk is in cache (float64 tensors in one pass of their own).
    /// </summary>
    public void MeasureAll(ReadOnlySpan<Tensor?> tensors, Span<(double SumSq, double MaxAbs, long NonFinite)> results,
        Span<(long Nonzero, long BelowSubnormal, long BelowNormal)> fp16 = default)
    {
        _countFp16 = !fp16.IsEmpty;
        int total = 0;
        long elements = 0;
        foreach (var t in tensors)
            if (t is { Count: > 0, Storage: float[] })
            {
                total += Chunks(t.Count);
                elements += t.Count;
            }
        Reserve(total);
        int k = 0;
        foreach (var t in tensors)
        {
            if (t is not { Count: > 0, Storage: float[] data }) continue;
            for (int start = 0; start < t.Count; start += Chunk, k++)
            {
                _chunkData[k] = data;
                _chunkStart[k] = start;
                _chunkLength[k] = Math.Min(Chunk, t.Count - start);
            }
        }
        KernelThreads.Run(total, _bodyMany, elements);
        k = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var t = tensors[i];
            if (!fp16.IsEmpty) fp16[i] = (0, 0, 0);
            if (t is null || t.Count == 0)
            {
                results[i] = (0, 0, 0);
                continue;
            }
            if (t.Storage is not float[])
            {
                results[i] = Measure(t);
                if (!fp16.IsEmpty && t.Storage is double[] d) fp16[i] = PrecisionLoss.Fp16Underflow(d.AsSpan(0, t.Count));
                continue;
            }
            double sumSq = 0, maxAbs = 0;
            long bad = 0, nonzero = 0, sub = 0, normal = 0;
            for (int c = Chunks(t.Count); c > 0; c--, k++)
            {
                sumSq += _a[k];
                maxAbs = Math.Max(maxAbs, _b[k]);
                bad += _bad[k];
                nonzero += _fp16[k].Nonzero;
                sub += _fp16[k].BelowSubnormal;
                normal += _fp16[k].BelowNormal;
            }
            results[i] = (bad > 0 ? double.PositiveInfinity : sumSq, maxAbs, bad);
            if (!fp16.IsEmpty) fp16[i] = (nonzero, sub, normal);
        }
        Array.Clear(_chunkData, 0, total);
    }

    private bool _countFp16;

    private void RunChunkOfMany(int k)
    {
        var x = _chunkData[k].AsSpan(_chunkStart[k], _chunkLength[k]);
        ChunkNorms(x, out _a[k], out _b[k], out _bad[k]);
        _fp16[k] = _countFp16 ? PrecisionLoss.Fp16Underflow(x) : default;
    }

    /// <summary>(Σx², max|x|, non-finite count) in double; Σx² skips non-finite elements and is +∞ when there are any.</summary>
    public (double SumSq, double MaxAbs, long NonFinite) Measure(Tensor t) => Measure(t, countFp16: false, out _);

    /// <summary>
    /// <see cref="Measure(Tensor)"/>, and with <paramref name="countFp16"/> also <see cref="PrecisionLoss.Fp16Underflow(ReadOnlySpan{float})"/>'s
    /// counts of <paramref name="t"/>, taken in the same chunked job while each chunk is in cache.
    /// </summary>
    public (double SumSq, double MaxAbs, long NonFinite) Measure(Tensor t, bool countFp16, out (long Nonzero, long BelowSubnormal, long BelowNormal) fp16)
    {
        fp16 = default;
        if (t.Count == 0) return (0, 0, 0);
        if (t.Storage is not float[] data)
        {
            var d = t.ToDoubleArray();
            if (countFp16) fp16 = PrecisionLoss.Fp16Underflow(d);
            long badD = d.Count(x => !double.IsFinite(x));
            return (badD > 0 ? double.PositiveInfinity : d.Sum(x => x * x), d.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max(), badD);
        }
        _countFp16 = countFp16;
        Run(data, t.Count, moments: false);
        double sumSq = 0, maxAbs = 0;
        long bad = 0, nonzero = 0, sub = 0, normal = 0;
        int chunks = Chunks(t.Count);
        for (int c = 0; c < chunks; c++)
        {
            sumSq += _a[c];
            maxAbs = Math.Max(maxAbs, _b[c]);
            bad += _bad[c];
            nonzero += _fp16[c].Nonzero;
            sub += _fp16[c].BelowSubnormal;
            normal += _fp16[c].BelowNormal;
        }
        if (countFp16) fp16 = (nonzero, sub, normal);
        return (bad > 0 ? double.PositiveInfinity : sumSq, maxAbs, bad);
    }

    /// <summary>(Σx, Σx², non-finite count) over the finite elements of a float32 tensor.</summary>
    public (double Sum, double SumSq, long NonFinite) Moments(Tensor t)
    {
        var data = (float[])t.Storage;
        Run(data, t.Count, moments: true);
        double sum = 0, sumSq = 0;
        long bad = 0;
        for (int c = 0, chunks = Chunks(t.Count); c < chunks; c++)
        {
            sum += _a[c];
            sumSq += _b[c];
            bad += _bad[c];
        }
        return (sum, sumSq, bad);
    }

    private static int Chunks(int n) => (n + Chunk - 1) / Chunk;

    /// <summary>
    /// Room for <paramref name="chunks"/> chunks in every per-chunk array at once. (Growing only the partials for one large tensor,
    /// as <see cref="Run"/> once did, left MeasureAll's chunk lists at their old size: a conv net whose activations span more chunks
    /// than its gradients had ever needed crashed the monitor on its next sampled step.)
    /// </summary>
    private void Reserve(int chunks)
    {
        if (_a.Length >= chunks) return;
        int n = Math.Max(chunks, 2 * _a.Length);
        _a = new double[n];
        _b = new double[n];
        _bad = new long[n];
        _chunkData = new float[n][];
        _chunkStart = new int[n];
        _chunkLength = new int[n];
        _fp16 = new (long, long, long)[n];
    }

    private void Run(float[] data, int count, bool moments)
    {
        int chunks = Chunks(count);
        Reserve(chunks);
        _data = data;
        _count = count;
        _moments = moments;
        KernelThreads.Run(chunks, _body, count);
        _data = [];
    }

    private void RunChunk(int c)
    {
        int start = c * Chunk, length = Math.Min(Chunk, _count - start);
        var x = _data.AsSpan(start, length);
        if (_moments) ChunkMoments(x, out _a[c], out _b[c], out _bad[c]);
        else
        {
            ChunkNorms(x, out _a[c], out _b[c], out _bad[c]);
            _fp16[c] = _countFp16 ? PrecisionLoss.Fp16Underflow(x) : default;
        }
    }

    private static void ChunkNorms(ReadOnlySpan<float> x, out double sumSq, out double maxAbs, out long bad)
    {
        var acc = Vector<float>.Zero;
        var max = Vector<float>.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
            foreach (var v in vx)
            {
                acc += v * v;
                max = Vector.Max(max, Vector.Abs(v));
            }
            i = vx.Length * Vector<float>.Count;
        }
        float s = Vector.Sum(acc), m = 0;
        for (int k = 0; k < Vector<float>.Count; k++) m = Math.Max(m, max[k]);
        for (; i < x.Length; i++)
        {
            s += x[i] * x[i];
            m = Math.Max(m, Math.Abs(x[i]));
        }
        if (float.IsFinite(s))
        {
            (sumSq, maxAbs, bad) = (s, m, 0);
            return;
        }
        // overflow of the float sum, or NaN/Inf present: recount exactly in double
        (sumSq, maxAbs, bad) = (0, 0, 0);
        foreach (float v in x)
        {
            if (!float.IsFinite(v))
            {
                bad++;
                continue;
            }
            sumSq += (double)v * v;
            maxAbs = Math.Max(maxAbs, Math.Abs(v));
        }
    }

    private static void ChunkMoments(ReadOnlySpan<float> x, out double sum, out double sumSq, out long bad)
    {
        var acc = Vector<float>.Zero;
        var acc2 = Vector<float>.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
            foreach (var v in vx)
            {
                acc += v;
                acc2 += v * v;
            }
            i = vx.Length * Vector<float>.Count;
        }
        float s = Vector.Sum(acc), s2 = Vector.Sum(acc2);
        for (; i < x.Length; i++)
        {
            s += x[i];
            s2 += x[i] * x[i];
        }
        if (float.IsFinite(s) && float.IsFinite(s2))
        {
            (sum, sumSq, bad) = (s, s2, 0);
            return;
        }
        (sum, sumSq, bad) = (0, 0, 0);
        foreach (float v in x)
        {
            if (!float.IsFinite(v))
            {
                bad++;
                continue;
            }
            sum += v;
            sumSq += (double)v * v;
        }
    }

    /// <summary>
    /// Fraction of outputs whose activation derivative is below <paramref name="fraction"/> of its
    /// maximum, from the outputs: sigmoid σ' = y(1−y) (max 1/4), tanh 1 − y² (max 1); the hard forms
    /// have derivative 0 outside their linear region.
    /// </summary>
    public static double SaturatedFraction(ReadOnlySpan<float> y, Activation kind, double fraction) => (double)SaturatedCount(y, kind, fraction) / y.Length;

    /// <summary>The count of outputs that <see cref="SaturatedFraction"/> divides by their number (so counts of micro-batches add up).</summary>
    public static long SaturatedCount(ReadOnlySpan<float> y, Activation kind, double fraction)
    {
        long count = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
            var one = Vector<float>.One;
            var counts = Vector<int>.Zero;
            var sigmoidLimit = new Vector<float>((float)(fraction * 0.25));
            var tanhLimit = new Vector<float>((float)fraction);
            var minusOne = -one;
            foreach (var v in vy)
            {
                var saturated = kind switch
                {
                    Activation.Sigmoid => Vector.LessThan(v * (one - v), sigmoidLimit),
                    Activation.Tanh => Vector.LessThan(one - v * v, tanhLimit),
                    Activation.HardSigmoid => Vector.BitwiseOr(Vector.LessThanOrEqual(v, Vector<float>.Zero), Vector.GreaterThanOrEqual(v, one)),
                    Activation.HardTanh => Vector.BitwiseOr(Vector.LessThanOrEqual(v, minusOne), Vector.GreaterThanOrEqual(v, one)),
                    _ => Vector<int>.Zero,
                };
                counts -= saturated; // true lanes are −1
            }
            for (int k = 0; k < Vector<int>.Count; k++) count += counts[k];
            i = vy.Length * Vector<float>.Count;
        }
        for (; i < y.Length; i++)
        {
            float v = y[i];
            bool sat = kind switch
            {
                Activation.Sigmoid => v * (1 - v) < (float)(fraction * 0.25),
                Activation.Tanh => 1 - v * v < (float)fraction,
                Activation.HardSigmoid => v <= 0 || v >= 1,
                Activation.HardTanh => v <= -1 || v >= 1,
                _ => false,
            };
            if (sat) count++;
        }
        return count;
    }

    /// <summary>Fraction of the <paramref name="cols"/> units (ReLU outputs, ≥ 0) that are zero in every row; <paramref name="mask"/> is scratch of length cols.</summary>
    public static double DeadFraction(ReadOnlySpan<float> y, int rows, int cols, float[] mask)
    {
        mask.AsSpan(0, cols).Clear();
        AccumulateAlive(y, rows, cols, mask);
        return ZeroFraction(mask.AsSpan(0, cols));
    }

    /// <summary>
    /// Raises each unit's entry of <paramref name="mask"/> (length ≥ <paramref name="cols"/>) to its largest magnitude over the rows of
    /// <paramref name="y"/> ([rows, cols]; NaN stays NaN: alive), without clearing it first, so the mask of several batches is the mask of their rows together.
    /// </summary>
    public static void AccumulateAlive(ReadOnlySpan<float> y, int rows, int cols, float[] mask)
    {
        var m = mask.AsSpan(0, cols);
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(m, y.Slice(r * cols, cols), m);
    }

    /// <summary>The fraction of entries of a mask that are 0 (dead units).</summary>
    public static double ZeroFraction(ReadOnlySpan<float> mask)
    {
        int dead = 0;
        foreach (float v in mask) if (v == 0) dead++;
        return (double)dead / mask.Length;
    }

    /// <summary>
    /// The fraction of dead channels of a [rows, channels, spatial] activation (a ReLU after a conv):
    /// channels that are 0 at every position of every example. <paramref name="mask"/> (at least
    /// <paramref name="channels"/> long) receives each channel's largest magnitude.
    /// </summary>
    public static double DeadChannelFraction(ReadOnlySpan<float> y, int rows, int channels, int spatial, float[] mask)
    {
        mask.AsSpan(0, channels).Clear();
        AccumulateAliveChannels(y, rows, channels, spatial, mask);
        return ZeroFraction(mask.AsSpan(0, channels));
    }

    /// <summary>As <see cref="AccumulateAlive"/>, for the channels of a [rows, channels, spatial] activation (NaN counts as alive: +∞).</summary>
    public static void AccumulateAliveChannels(ReadOnlySpan<float> y, int rows, int channels, int spatial, float[] mask)
    {
        var m = mask.AsSpan(0, channels);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++)
            {
                // NaN counts as alive, as in DeadFraction
                float v = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(y.Slice((r * channels + c) * spatial, spatial));
                float a = float.IsNaN(v) ? float.PositiveInfinity : Math.Abs(v);
                if (a > m[c]) m[c] = a;
            }
    }

    /// <summary>The mean magnitude of <paramref name="x"/> (accumulated in double), NaN when empty.</summary>
    public static double MeanAbs(ReadOnlySpan<float> x)
    {
        double sum = 0;
        foreach (float v in x) sum += Math.Abs(v);
        return x.Length == 0 ? double.NaN : sum / x.Length;
    }
}
