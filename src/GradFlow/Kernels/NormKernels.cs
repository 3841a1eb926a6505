using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>
/// The passes of batch and group normalisation over <c>segments</c> contiguous segments of
/// <c>length</c> values each (batch norm of [N, C, L]: segment (n, c) is the L values of one example
/// and channel; group norm: one channel of one example, its group being consecutive segments). Each
/// pass computes one number per segment (sums) or maps every segment with its own scalars, in the
/// tensor's own precision (float32 stays float32, no float64 copy of the data); the callers combine
/// the per-segment sums in double, segment by segment in a fixed order.
/// </summary>
/// <remarks>
/// Sums accumulate in vector lanes of T within a segment (512-bit, then 256-bit, then scalar, as
/// <see cref="ElementwiseLoops"/>), the lanes are added in double. Deviations are taken from the
/// caller's mean (two passes), never as <c>E[x²] − μ²</c>, so a large mean costs no precision.
/// Segments run in shape-fixed chunks on <see cref="KernelThreads"/>; every segment's result depends
/// on its own values only, so results are bitwise the same for any thread count.
/// </remarks>
public static class NormKernels
{
    /// <summary><c>sum[s] = Σ_j x[s·length + j]</c>.</summary>
    public static void SegmentSums<T>(ReadOnlySpan<T> x, int segments, int length, Span<double> sum)
        where T : unmanaged, IFloatingPointIeee754<T> => SegmentSums(x, segments, length, sum, KernelIsa.Best);

    /// <summary><c>ss[s] = Σ_j (x[s·length + j] − mean[s])²</c>.</summary>
    public static void SegmentSquaredDeviations<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, Span<double> ss)
        where T : unmanaged, IFloatingPointIeee754<T> => SegmentSquaredDeviations(x, segments, length, mean, ss, KernelIsa.Best);

    /// <summary>The sums of a normalisation's backward: <c>sumG[s] = Σ_j g</c>, <c>sumGDev[s] = Σ_j g·(x − mean[s])</c> over segment s.</summary>
    public static void SegmentGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        Span<double> sumG, Span<double> sumGDev) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentGradientSums(g, x, segments, length, mean, sumG, sumGDev, KernelIsa.Best);

    /// <summary><c>y = (x − mean[s])·scale[s] + shift[s]</c> over segment s (the normalisation and its affine in one pass).</summary>
    public static void SegmentAffine<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> shift, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentAffine(x, segments, length, mean, scale, shift, y, KernelIsa.Best);

    /// <summary><c>dx = a[s]·g + b[s]·(x − mean[s]) + c[s]</c> over segment s (a normalisation's input gradient in one pass).</summary>
    public static void SegmentAffineGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> c, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentAffineGradient(g, x, segments, length, mean, a, b, c, dx, KernelIsa.Best);

    internal static unsafe void SegmentSums<T>(ReadOnlySpan<T> x, int segments, int length, Span<double> sum, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("segment sums", x.Length, segments, length);
        CheckPerSegment("segment sums", "sum", sum.Length, segments);
        fixed (T* px = x)
        fixed (double* ps = sum)
        {
            T* xp = px;
            double* sp = ps;
            ForSegments(segments, length, s => sp[s] = Reduce(new ReadOnlySpan<T>(xp + (long)s * length, length), default, new SumOp<T>(), isa));
        }
    }

    internal static unsafe void SegmentSquaredDeviations<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, Span<double> ss,
        InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("squared deviations", x.Length, segments, length);
        CheckPerSegment("squared deviations", "mean", mean.Length, segments);
        CheckPerSegment("squared deviations", "ss", ss.Length, segments);
        fixed (T* px = x)
        fixed (double* pm = mean, ps = ss)
        {
            T* xp = px;
            double* mp = pm, sp = ps;
            ForSegments(segments, length, s => sp[s] =
                Reduce(new ReadOnlySpan<T>(xp + (long)s * length, length), default, new SquaredDeviationOp<T>(T.CreateTruncating(mp[s])), isa));
        }
    }

    internal static unsafe void SegmentGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        Span<double> sumG, Span<double> sumGDev, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("gradient sums", x.Length, segments, length);
        Check("gradient sums", g.Length, segments, length);
        CheckPerSegment("gradient sums", "mean", mean.Length, segments);
        CheckPerSegment("gradient sums", "sumG", sumG.Length, segments);
        CheckPerSegment("gradient sums", "sumGDev", sumGDev.Length, segments);
        fixed (T* px = x, pg = g)
        fixed (double* pm = mean, p1 = sumG, p2 = sumGDev)
        {
            T* xp = px, gp = pg;
            double* mp = pm, s1 = p1, s2 = p2;
            ForSegments(segments, length, s =>
            {
                var gs = new ReadOnlySpan<T>(gp + (long)s * length, length);
                s1[s] = Reduce(gs, default, new SumOp<T>(), isa);
                s2[s] = Reduce(gs, new ReadOnlySpan<T>(xp + (long)s * length, length), new GradientDeviationOp<T>(T.CreateTruncating(mp[s])), isa);
            });
        }
    }

    internal static unsafe void SegmentAffine<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> shift, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("normalise", x.Length, segments, length);
        Check("normalise", y.Length, segments, length);
        CheckPerSegment("normalise", "mean", mean.Length, segments);
        CheckPerSegment("normalise", "scale", scale.Length, segments);
        CheckPerSegment("normalise", "shift", shift.Length, segments);
        fixed (T* px = x, py = y)
        fixed (double* pm = mean, pa = scale, pb = shift)
        {
            T* xp = px, yp = py;
            double* mp = pm, ap = pa, bp = pb;
            ForSegments(segments, length, s => ElementwiseLoops.Unary("normalise", new ReadOnlySpan<T>(xp + (long)s * length, length),
                new Span<T>(yp + (long)s * length, length),
                new AffineOp<T>(T.CreateTruncating(mp[s]), T.CreateTruncating(ap[s]), T.CreateTruncating(bp[s])), isa));
        }
    }

    internal static unsafe void SegmentAffineGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> c, Span<T> dx, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("normalise backward", x.Length, segments, length);
        Check("normalise backward", g.Length, segments, length);
        Check("normalise backward", dx.Length, segments, length);
        CheckPerSegment("normalise backward", "mean", mean.Length, segments);
        CheckPerSegment("normalise backward", "a", a.Length, segments);
        CheckPerSegment("normalise backward", "b", b.Length, segments);
        CheckPerSegment("normalise backward", "c", c.Length, segments);
        fixed (T* px = x, pg = g, pd = dx)
        fixed (double* pm = mean, pa = a, pb = b, pc = c)
        {
            T* xp = px, gp = pg, dp = pd;
            double* mp = pm, ap = pa, bp = pb, cp = pc;
            ForSegments(segments, length, s => ElementwiseLoops.Binary("normalise backward", new ReadOnlySpan<T>(gp + (long)s * length, length),
                new ReadOnlySpan<T>(xp + (long)s * length, length), new Span<T>(dp + (long)s * length, length),
                new AffineGradientOp<T>(T.CreateTruncating(mp[s]), T.CreateTruncating(ap[s]), T.CreateTruncating(bp[s]), T.CreateTruncating(cp[s])), isa));
        }
    }

    /// <summary>Runs every segment, in up to 32 consecutive chunks on the kernel threads when the work is large enough (chunks fixed by the shape).</summary>
    private static void ForSegments(int segments, int length, Action<int> segment)
    {
        int chunks = (long)segments * length < 1L << 15 ? 1 : Math.Min(segments, 32);
        if (chunks <= 1)
        {
            for (int s = 0; s < segments; s++) segment(s);
            return;
        }
        KernelThreads.Run(chunks, k =>
        {
            int begin = (int)((long)segments * k / chunks), end = (int)((long)segments * (k + 1) / chunks);
            for (int s = begin; s < end; s++) segment(s);
        });
    }

    /// <summary>Σ_j f(a_j, b_j) over one segment (b may be empty when f reads a only): vector lanes of T, the lanes and the tail added in double.</summary>
    private static double Reduce<T, TOp>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, TOp f, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOperator<T>
    {
        int n = a.Length, i = 0;
        bool two = !b.IsEmpty;
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref (two ? ref MemoryMarshal.GetReference(b) : ref ar);
        double total = 0;
        if (isa == InstructionSet.Avx512 && n >= Vector512<T>.Count)
        {
            var acc = Vector512<T>.Zero;
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                acc += f.Invoke(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i));
            for (int k = 0; k < Vector512<T>.Count; k++) total += double.CreateTruncating(acc[k]);
        }
        if (isa >= InstructionSet.Avx2 && n - i >= Vector256<T>.Count)
        {
            var acc = Vector256<T>.Zero;
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                acc += f.Invoke(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i));
            for (int k = 0; k < Vector256<T>.Count; k++) total += double.CreateTruncating(acc[k]);
        }
        for (; i < n; i++) total += double.CreateTruncating(f.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i)));
        return total;
    }

    private static void Check(string op, int length, int segments, int segmentLength)
    {
        if (segments < 0 || segmentLength < 0 || (long)segments * segmentLength != length)
            throw new ArgumentException($"norm kernel ({op}): a span of {length} elements is not {segments} segments of {segmentLength}.");
    }

    private static void CheckPerSegment(string op, string name, int length, int segments)
    {
        if (length < segments) throw new ArgumentException($"norm kernel ({op}): {name} has {length} elements, needs one per segment ({segments}).");
    }

    /// <summary>a (b unused).</summary>
    private readonly struct SumOp<T> : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T a, T b) => a;
        public Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => a;
        public Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => a;
    }

    /// <summary>(a − μ)² (b unused).</summary>
    private readonly struct SquaredDeviationOp<T>(T mean) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T a, T b)
        {
            T d = a - mean;
            return d * d;
        }

        public Vector256<T> Invoke(Vector256<T> a, Vector256<T> b)
        {
            var d = a - Vector256.Create(mean);
            return d * d;
        }

        public Vector512<T> Invoke(Vector512<T> a, Vector512<T> b)
        {
            var d = a - Vector512.Create(mean);
            return d * d;
        }
    }

    /// <summary>g·(x − μ) with g = a, x = b.</summary>
    private readonly struct GradientDeviationOp<T>(T mean) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T a, T b) => a * (b - mean);
        public Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => a * (b - Vector256.Create(mean));
        public Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => a * (b - Vector512.Create(mean));
    }

    /// <summary>(x − μ)·scale + shift.</summary>
    private readonly struct AffineOp<T>(T mean, T scale, T shift) : IUnaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x) => (x - mean) * scale + shift;
        public Vector256<T> Invoke(Vector256<T> x) => (x - Vector256.Create(mean)) * Vector256.Create(scale) + Vector256.Create(shift);
        public Vector512<T> Invoke(Vector512<T> x) => (x - Vector512.Create(mean)) * Vector512.Create(scale) + Vector512.Create(shift);
    }

    /// <summary>a·g + b·(x − μ) + c with g the first operand, x the second.</summary>
    private readonly struct AffineGradientOp<T>(T mean, T a, T b, T c) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T g, T x) => a * g + b * (x - mean) + c;

        public Vector256<T> Invoke(Vector256<T> g, Vector256<T> x) =>
            Vector256.Create(a) * g + Vector256.Create(b) * (x - Vector256.Create(mean)) + Vector256.Create(c);

        public Vector512<T> Invoke(Vector512<T> g, Vector512<T> x) =>
            Vector512.Create(a) * g + Vector512.Create(b) * (x - Vector512.Create(mean)) + Vector512.Create(c);
    }
}
