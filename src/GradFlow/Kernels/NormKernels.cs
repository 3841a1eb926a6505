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

    /// <summary>
    /// The first two moments of every segment in one pass over the data: <c>sum[s] = Σ_j x</c>, the segment's own mean
    /// rounded to T, <c>center[s] = T(sum[s]/length)</c>, and <c>ss[s] = Σ_j (x − center[s])²</c> (the segment is read a second
    /// time from the core's L1/L2, not from memory). The caller combines segments exactly (Chan et al. 1979): around any μ,
    /// <c>Σ(x − μ)² = ss + 2·(center − μ)·(sum − length·center) + length·(center − μ)²</c>.
    /// </summary>
    public static void SegmentMoments<T>(ReadOnlySpan<T> x, int segments, int length, Span<double> sum, Span<double> center, Span<double> ss)
        where T : unmanaged, IFloatingPointIeee754<T> => SegmentMoments(x, segments, length, sum, center, ss, KernelIsa.Best);

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

    /// <summary>
    /// Batch norm followed by ReLU in one pass: <c>y = relu((x − mean[s])·scale[s] + shift[s])</c>, ReLU as
    /// <see cref="ActivationKernels.Relu{T}(ReadOnlySpan{T}, Span{T})"/> (<c>z &lt; 0 ? 0 : z</c>: NaN and −0 pass).
    /// </summary>
    public static void SegmentAffineRelu<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> shift, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentAffineRelu(x, segments, length, mean, scale, shift, y, KernelIsa.Best);

    /// <summary>
    /// The backward sums of batch norm followed by ReLU: <c>sumG[s] = Σ g'</c>, <c>sumGDev[s] = Σ g'·(x − mean[s])</c> with
    /// <c>g' = z ≤ 0 ? 0 : g</c>, ReLU's gradient at its input <c>z = (x − mean[s])·scale[s] + shift[s]</c>, recomputed from x by the same
    /// operations as the forward (so the same bits as the z that <see cref="SegmentAffineRelu{T}(ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double}, Span{T})"/>
    /// rectified; ReLU's subgradient at 0 is 0, as <see cref="ActivationKernels.ReluBackward{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/>).
    /// Reads g and x, as the plain sums do: the ReLU's backward costs no pass of its own.
    /// </summary>
    public static void SegmentReluGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, Span<double> sumG, Span<double> sumGDev) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentReluGradientSums(g, x, segments, length, mean, scale, shift, sumG, sumGDev, KernelIsa.Best);

    /// <summary><c>dx = a[s]·g' + b[s]·(x − mean[s]) + c[s]</c> with g' the ReLU-masked gradient of <see cref="SegmentReluGradientSums{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double}, Span{double}, Span{double})"/>.</summary>
    public static void SegmentReluAffineGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> c, Span<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentReluAffineGradient(g, x, segments, length, mean, scale, shift, a, b, c, dx, KernelIsa.Best);

    /// <summary>
    /// Batch norm, a residual add and ReLU in one pass: <c>y = relu(z + r)</c> with <c>z = (x − mean[s])·scale[s] + shift[s]</c> over segment s,
    /// by the same operations in T as <see cref="SegmentAffine{T}(ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double}, Span{T})"/>,
    /// an add and <see cref="ActivationKernels.Relu{T}(ReadOnlySpan{T}, Span{T})"/> (so the same bits as the three passes; NaN stays NaN).
    /// </summary>
    public static void SegmentAffineAddRelu<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> r, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentAffineAddRelu(x, r, segments, length, mean, scale, shift, y, KernelIsa.Best);

    /// <summary>
    /// The backward sums of <see cref="SegmentAffineAddRelu{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{double}, Span{T})"/>
    /// from its output y: <c>gr = y ≤ 0 ? 0 : g</c> (ReLU's gradient, subgradient 0 at 0, a NaN passes g; y ≤ 0 exactly where the sum was,
    /// since relu maps the sum to itself or to ±0), written out, as it is the residual's gradient; then <c>sumG[s] = Σ gr</c> and
    /// <c>sumGDev[s] = Σ gr·(x − mean[s])</c> from the segment just written, as <see cref="SegmentGradientSums{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, Span{double}, Span{double})"/>.
    /// </summary>
    public static void SegmentMaskedGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> y, ReadOnlySpan<T> x, int segments, int length,
        ReadOnlySpan<double> mean, Span<T> gr, Span<double> sumG, Span<double> sumGDev) where T : unmanaged, IFloatingPointIeee754<T> =>
        SegmentMaskedGradientSums(g, y, x, segments, length, mean, gr, sumG, sumGDev, KernelIsa.Best);

    internal static unsafe void SegmentAffineAddRelu<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> r, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("normalise + add + relu", x.Length, segments, length);
        Check("normalise + add + relu", r.Length, segments, length);
        Check("normalise + add + relu", y.Length, segments, length);
        CheckPerSegment("normalise + add + relu", "mean", mean.Length, segments);
        CheckPerSegment("normalise + add + relu", "scale", scale.Length, segments);
        CheckPerSegment("normalise + add + relu", "shift", shift.Length, segments);
        fixed (T* px = x, pr = r, py = y)
        fixed (double* pm = mean, pa = scale, pb = shift)
        {
            T* xp = px, rp = pr, yp = py;
            double* mp = pm, ap = pa, bp = pb;
            ForSegments(segments, length, s => ElementwiseLoops.Binary("normalise + add + relu", new ReadOnlySpan<T>(xp + (long)s * length, length),
                new ReadOnlySpan<T>(rp + (long)s * length, length), new Span<T>(yp + (long)s * length, length),
                new AffineAddReluOp<T>(Affine<T>(mp[s], ap[s], bp[s])), isa));
        }
    }

    internal static unsafe void SegmentMaskedGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> y, ReadOnlySpan<T> x, int segments, int length,
        ReadOnlySpan<double> mean, Span<T> gr, Span<double> sumG, Span<double> sumGDev, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const string op = "masked gradient sums";
        Check(op, g.Length, segments, length);
        Check(op, y.Length, segments, length);
        Check(op, x.Length, segments, length);
        Check(op, gr.Length, segments, length);
        CheckPerSegment(op, "mean", mean.Length, segments);
        CheckPerSegment(op, "sumG", sumG.Length, segments);
        CheckPerSegment(op, "sumGDev", sumGDev.Length, segments);
        fixed (T* pg = g, py = y, px = x, pr = gr)
        fixed (double* pm = mean, p1 = sumG, p2 = sumGDev)
        {
            T* gp = pg, yp = py, xp = px, rp = pr;
            double* mp = pm, s1 = p1, s2 = p2;
            ForSegments(segments, length, s =>
            {
                long at = (long)s * length;
                var masked = new Span<T>(rp + at, length);
                ActivationKernels.ReluBackward(new ReadOnlySpan<T>(yp + at, length), new ReadOnlySpan<T>(gp + at, length), masked, isa);
                (s1[s], s2[s]) = Reduce2<T, SumOp<T>, GradientDeviationOp<T>>(masked, new ReadOnlySpan<T>(xp + at, length), new SumOp<T>(),
                    new GradientDeviationOp<T>(T.CreateTruncating(mp[s])), isa);
            });
        }
    }

    internal static unsafe void SegmentAffineRelu<T>(ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean, ReadOnlySpan<double> scale,
        ReadOnlySpan<double> shift, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("normalise + relu", x.Length, segments, length);
        Check("normalise + relu", y.Length, segments, length);
        CheckPerSegment("normalise + relu", "mean", mean.Length, segments);
        CheckPerSegment("normalise + relu", "scale", scale.Length, segments);
        CheckPerSegment("normalise + relu", "shift", shift.Length, segments);
        fixed (T* px = x, py = y)
        fixed (double* pm = mean, pa = scale, pb = shift)
        {
            T* xp = px, yp = py;
            double* mp = pm, ap = pa, bp = pb;
            ForSegments(segments, length, s => ElementwiseLoops.Unary("normalise + relu", new ReadOnlySpan<T>(xp + (long)s * length, length),
                new Span<T>(yp + (long)s * length, length), new AffineReluOp<T>(Affine<T>(mp[s], ap[s], bp[s])), isa));
        }
    }

    internal static unsafe void SegmentReluGradientSums<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, Span<double> sumG, Span<double> sumGDev, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("relu gradient sums", x.Length, segments, length);
        Check("relu gradient sums", g.Length, segments, length);
        foreach (var (name, n) in new[] { ("mean", mean.Length), ("scale", scale.Length), ("shift", shift.Length), ("sumG", sumG.Length), ("sumGDev", sumGDev.Length) })
            CheckPerSegment("relu gradient sums", name, n, segments);
        fixed (T* px = x, pg = g)
        fixed (double* pm = mean, pa = scale, pb = shift, p1 = sumG, p2 = sumGDev)
        {
            T* xp = px, gp = pg;
            double* mp = pm, ap = pa, bp = pb, s1 = p1, s2 = p2;
            ForSegments(segments, length, s =>
            {
                var z = Affine<T>(mp[s], ap[s], bp[s]);
                var gs = new ReadOnlySpan<T>(gp + (long)s * length, length);
                var xs = new ReadOnlySpan<T>(xp + (long)s * length, length);
                (s1[s], s2[s]) = Reduce2(gs, xs, new ReluMaskOp<T>(z), new ReluMaskDeviationOp<T>(z), isa);
            });
        }
    }

    internal static unsafe void SegmentReluAffineGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int segments, int length, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> scale, ReadOnlySpan<double> shift, ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> c, Span<T> dx,
        InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("normalise + relu backward", x.Length, segments, length);
        Check("normalise + relu backward", g.Length, segments, length);
        Check("normalise + relu backward", dx.Length, segments, length);
        foreach (var (name, n) in new[] { ("mean", mean.Length), ("scale", scale.Length), ("shift", shift.Length), ("a", a.Length), ("b", b.Length), ("c", c.Length) })
            CheckPerSegment("normalise + relu backward", name, n, segments);
        fixed (T* px = x, pg = g, pd = dx)
        fixed (double* pm = mean, ps = scale, pt = shift, pa = a, pb = b, pc = c)
        {
            T* xp = px, gp = pg, dp = pd;
            double* mp = pm, sp = ps, tp = pt, ap = pa, bp = pb, cp = pc;
            ForSegments(segments, length, s => ElementwiseLoops.Binary("normalise + relu backward", new ReadOnlySpan<T>(gp + (long)s * length, length),
                new ReadOnlySpan<T>(xp + (long)s * length, length), new Span<T>(dp + (long)s * length, length),
                new ReluAffineGradientOp<T>(Affine<T>(mp[s], sp[s], tp[s]), T.CreateTruncating(ap[s]), T.CreateTruncating(bp[s]), T.CreateTruncating(cp[s])), isa));
        }
    }

    private static AffineOp<T> Affine<T>(double mean, double scale, double shift) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(T.CreateTruncating(mean), T.CreateTruncating(scale), T.CreateTruncating(shift));

    internal static unsafe void SegmentMoments<T>(ReadOnlySpan<T> x, int segments, int length, Span<double> sum, Span<double> center, Span<double> ss,
        InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("segment moments", x.Length, segments, length);
        CheckPerSegment("segment moments", "sum", sum.Length, segments);
        CheckPerSegment("segment moments", "center", center.Length, segments);
        CheckPerSegment("segment moments", "ss", ss.Length, segments);
        fixed (T* px = x)
        fixed (double* p1 = sum, pc = center, p2 = ss)
        {
            T* xp = px;
            double* s1 = p1, cp = pc, s2 = p2;
            ForSegments(segments, length, s =>
            {
                var xs = new ReadOnlySpan<T>(xp + (long)s * length, length);
                double total = Reduce(xs, default, new SumOp<T>(), isa);
                T mu = length == 0 ? T.Zero : T.CreateTruncating(total / length);
                s1[s] = total;
                cp[s] = double.CreateTruncating(mu);
                s2[s] = Reduce(xs, default, new SquaredDeviationOp<T>(mu), isa);
            });
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
                (s1[s], s2[s]) = Reduce2(gs, new ReadOnlySpan<T>(xp + (long)s * length, length), new SumOp<T>(),
                    new GradientDeviationOp<T>(T.CreateTruncating(mp[s])), isa);
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

    /// <summary>
    /// Layer norm's forward over <paramref name="rows"/> rows of <paramref name="d"/>:
    /// <c>y[r, j] = (x[r, j] − mean[r])·rstd[r]·γ[j] + β[j]</c> (γ, β empty: 1 and 0).
    /// </summary>
    public static void RowAffine<T>(ReadOnlySpan<T> x, int rows, int d, ReadOnlySpan<double> mean, ReadOnlySpan<double> rstd,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        RowAffine(x, rows, d, mean, rstd, gamma, beta, y, KernelIsa.Best);

    /// <summary>
    /// Layer norm's backward over <paramref name="rows"/> rows of <paramref name="d"/>, with
    /// x̂ = (x − mean[r])·rstd[r] and ĝ = g·γ: <c>dx = rstd·(ĝ − mean_j(ĝ) − x̂·mean_j(ĝ·x̂))</c> (dx empty:
    /// not wanted), <c>dγ[j] += Σ_r g·x̂</c> and <c>dβ[j] += Σ_r g</c> (null: not wanted). The column sums
    /// go over shape-fixed chunks of rows in T and the chunks are added in double in order, so the result
    /// is the same for any thread count.
    /// </summary>
    public static void RowNormGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int rows, int d, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> rstd, ReadOnlySpan<T> gamma, Span<T> dx, double[]? dgamma, double[]? dbeta) where T : unmanaged, IFloatingPointIeee754<T> =>
        RowNormGradient(g, x, rows, d, mean, rstd, gamma, dx, dgamma, dbeta, KernelIsa.Best);

    internal static unsafe void RowAffine<T>(ReadOnlySpan<T> x, int rows, int d, ReadOnlySpan<double> mean, ReadOnlySpan<double> rstd,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> y, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("layer norm", x.Length, rows, d);
        Check("layer norm", y.Length, rows, d);
        CheckPerSegment("layer norm", "mean", mean.Length, rows);
        CheckPerSegment("layer norm", "rstd", rstd.Length, rows);
        CheckAffine("layer norm", "gamma", gamma.Length, d);
        CheckAffine("layer norm", "beta", beta.Length, d);
        fixed (T* px = x, py = y, pg = gamma, pb = beta)
        fixed (double* pm = mean, pr = rstd)
        {
            T* xp = px, yp = py, gp = gamma.IsEmpty ? null : pg, bp = beta.IsEmpty ? null : pb;
            double* mp = pm, rp = pr;
            ForSegments(rows, d, r => AffineRow(xp + (long)r * d, yp + (long)r * d, d, T.CreateTruncating(mp[r]), T.CreateTruncating(rp[r]), gp, bp, isa));
        }
    }

    internal static unsafe void RowNormGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, int rows, int d, ReadOnlySpan<double> mean,
        ReadOnlySpan<double> rstd, ReadOnlySpan<T> gamma, Span<T> dx, double[]? dgamma, double[]? dbeta, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("layer norm backward", x.Length, rows, d);
        Check("layer norm backward", g.Length, rows, d);
        if (!dx.IsEmpty) Check("layer norm backward", dx.Length, rows, d);
        CheckPerSegment("layer norm backward", "mean", mean.Length, rows);
        CheckPerSegment("layer norm backward", "rstd", rstd.Length, rows);
        CheckAffine("layer norm backward", "gamma", gamma.Length, d);
        if (dgamma is not null) CheckPerSegment("layer norm backward", "dgamma", dgamma.Length, d);
        if (dbeta is not null) CheckPerSegment("layer norm backward", "dbeta", dbeta.Length, d);
        int chunks = (long)rows * d < 1L << 15 ? 1 : Math.Min(rows, 32);
        // per chunk: Σ g·x̂ and Σ g over its rows, d each
        var partial = dgamma is null && dbeta is null ? null : Tensors.TensorPool.Rent<T>(2 * chunks * d);
        partial?.AsSpan(0, 2 * chunks * d).Clear();
        fixed (T* px = x, pg = g, pgam = gamma, pd = dx, pp = partial)
        fixed (double* pm = mean, pr = rstd)
        {
            T* xp = px, gp = pg, gam = gamma.IsEmpty ? null : pgam, dp = dx.IsEmpty ? null : pd, part = partial is null ? null : pp;
            double* mp = pm, rp = pr;
            void Chunk(int k)
            {
                int begin = (int)((long)rows * k / chunks), end = (int)((long)rows * (k + 1) / chunks);
                T* sumGx = part is null ? null : part + 2L * k * d, sumG = part is null ? null : sumGx + d;
                for (int r = begin; r < end; r++)
                    GradientRow(gp + (long)r * d, xp + (long)r * d, dp is null ? null : dp + (long)r * d, d, mp[r], rp[r], gam, sumGx, sumG, isa);
            }
            if (chunks <= 1) Chunk(0);
            else KernelThreads.Run(chunks, Chunk);
        }
        if (partial is null) return;
        for (int k = 0; k < chunks; k++)
            for (int j = 0; j < d; j++)
            {
                if (dgamma is not null) dgamma[j] += double.CreateTruncating(partial[2 * k * d + j]);
                if (dbeta is not null) dbeta[j] += double.CreateTruncating(partial[(2 * k + 1) * d + j]);
            }
        Tensors.TensorPool.Return(partial);
    }

    /// <summary>One row of <see cref="RowAffine{T}(ReadOnlySpan{T}, int, int, ReadOnlySpan{double}, ReadOnlySpan{double}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/>: the same operations, in the same order, on every path.</summary>
    private static unsafe void AffineRow<T>(T* x, T* y, int d, T mu, T rs, T* gamma, T* beta, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = 0;
        if (isa == InstructionSet.Avx512 && d >= Vector512<T>.Count)
        {
            Vector512<T> vm = Vector512.Create(mu), vr = Vector512.Create(rs);
            for (; j <= d - Vector512<T>.Count; j += Vector512<T>.Count)
            {
                var v = (Vector512.Load(x + j) - vm) * vr;
                if (gamma != null) v *= Vector512.Load(gamma + j);
                if (beta != null) v += Vector512.Load(beta + j);
                v.Store(y + j);
            }
        }
        if (isa >= InstructionSet.Avx2 && d - j >= Vector256<T>.Count)
        {
            Vector256<T> vm = Vector256.Create(mu), vr = Vector256.Create(rs);
            for (; j <= d - Vector256<T>.Count; j += Vector256<T>.Count)
            {
                var v = (Vector256.Load(x + j) - vm) * vr;
                if (gamma != null) v *= Vector256.Load(gamma + j);
                if (beta != null) v += Vector256.Load(beta + j);
                v.Store(y + j);
            }
        }
        for (; j < d; j++)
        {
            var v = (x[j] - mu) * rs;
            if (gamma != null) v *= gamma[j];
            if (beta != null) v += beta[j];
            y[j] = v;
        }
    }

    /// <summary>
    /// One row of layer norm's backward: Σ ĝ and Σ ĝ·(x − μ) (lanes of T, added in double), then dx and the
    /// chunk's column sums. The same operations in the same order on every path.
    /// </summary>
    private static unsafe void GradientRow<T>(T* g, T* x, T* dx, int d, double mean, double rstd, T* gamma, T* sumGx, T* sumG, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T mu = T.CreateTruncating(mean), rs = T.CreateTruncating(rstd);
        double s1 = 0, s2 = 0;
        int j = 0;
        if (isa == InstructionSet.Avx512 && d >= Vector512<T>.Count)
        {
            Vector512<T> vm = Vector512.Create(mu), a1 = Vector512<T>.Zero, a2 = Vector512<T>.Zero;
            for (; j <= d - Vector512<T>.Count; j += Vector512<T>.Count)
            {
                var gh = Vector512.Load(g + j);
                if (gamma != null) gh *= Vector512.Load(gamma + j);
                a1 += gh;
                a2 += gh * (Vector512.Load(x + j) - vm);
            }
            for (int k = 0; k < Vector512<T>.Count; k++)
            {
                s1 += double.CreateTruncating(a1[k]);
                s2 += double.CreateTruncating(a2[k]);
            }
        }
        if (isa >= InstructionSet.Avx2 && d - j >= Vector256<T>.Count)
        {
            Vector256<T> vm = Vector256.Create(mu), a1 = Vector256<T>.Zero, a2 = Vector256<T>.Zero;
            for (; j <= d - Vector256<T>.Count; j += Vector256<T>.Count)
            {
                var gh = Vector256.Load(g + j);
                if (gamma != null) gh *= Vector256.Load(gamma + j);
                a1 += gh;
                a2 += gh * (Vector256.Load(x + j) - vm);
            }
            for (int k = 0; k < Vector256<T>.Count; k++)
            {
                s1 += double.CreateTruncating(a1[k]);
                s2 += double.CreateTruncating(a2[k]);
            }
        }
        for (; j < d; j++)
        {
            var gh = g[j];
            if (gamma != null) gh *= gamma[j];
            s1 += double.CreateTruncating(gh);
            s2 += double.CreateTruncating(gh * (x[j] - mu));
        }
        // dx = a·ĝ + b·(x − μ) + c, with a = rstd, b = −rstd³·Σĝ(x−μ)/d, c = −rstd·Σĝ/d
        T a = rs, b = T.CreateTruncating(-rstd * rstd * rstd * s2 / d), c = T.CreateTruncating(-rstd * s1 / d);
        j = 0;
        if (isa == InstructionSet.Avx512 && d >= Vector512<T>.Count)
        {
            Vector512<T> vm = Vector512.Create(mu), va = Vector512.Create(a), vb = Vector512.Create(b), vc = Vector512.Create(c);
            for (; j <= d - Vector512<T>.Count; j += Vector512<T>.Count)
            {
                var gv = Vector512.Load(g + j);
                var dev = Vector512.Load(x + j) - vm;
                if (dx != null)
                {
                    var gh = gamma != null ? gv * Vector512.Load(gamma + j) : gv;
                    (va * gh + vb * dev + vc).Store(dx + j);
                }
                if (sumGx != null)
                {
                    (Vector512.Load(sumGx + j) + gv * (dev * va)).Store(sumGx + j);
                    (Vector512.Load(sumG + j) + gv).Store(sumG + j);
                }
            }
        }
        if (isa >= InstructionSet.Avx2 && d - j >= Vector256<T>.Count)
        {
            Vector256<T> vm = Vector256.Create(mu), va = Vector256.Create(a), vb = Vector256.Create(b), vc = Vector256.Create(c);
            for (; j <= d - Vector256<T>.Count; j += Vector256<T>.Count)
            {
                var gv = Vector256.Load(g + j);
                var dev = Vector256.Load(x + j) - vm;
                if (dx != null)
                {
                    var gh = gamma != null ? gv * Vector256.Load(gamma + j) : gv;
                    (va * gh + vb * dev + vc).Store(dx + j);
                }
                if (sumGx != null)
                {
                    (Vector256.Load(sumGx + j) + gv * (dev * va)).Store(sumGx + j);
                    (Vector256.Load(sumG + j) + gv).Store(sumG + j);
                }
            }
        }
        for (; j < d; j++)
        {
            var gv = g[j];
            var dev = x[j] - mu;
            if (dx != null) dx[j] = a * (gamma != null ? gv * gamma[j] : gv) + b * dev + c;
            if (sumGx != null)
            {
                sumGx[j] += gv * (dev * a);
                sumG[j] += gv;
            }
        }
    }

    private static void CheckAffine(string op, string name, int length, int d)
    {
        if (length != 0 && length != d) throw new ArgumentException($"norm kernel ({op}): {name} has {length} elements, expected {d} (one per normalised element) or none.");
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

    /// <summary>
    /// Two reductions of <see cref="Reduce{T, TOp}"/> over the same operands in one loop: each has its own accumulators, added
    /// in the same order as alone (so bitwise the two calls), and the two dependency chains overlap where one call's add waits on the last.
    /// </summary>
    private static (double, double) Reduce2<T, TOp1, TOp2>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, TOp1 f1, TOp2 f2, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp1 : struct, IBinaryOperator<T> where TOp2 : struct, IBinaryOperator<T>
    {
        int n = a.Length, i = 0;
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref MemoryMarshal.GetReference(b);
        double t1 = 0, t2 = 0;
        if (isa == InstructionSet.Avx512 && n >= Vector512<T>.Count)
        {
            Vector512<T> acc1 = Vector512<T>.Zero, acc2 = Vector512<T>.Zero;
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
            {
                var (x, y) = (Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i));
                acc1 += f1.Invoke(x, y);
                acc2 += f2.Invoke(x, y);
            }
            t1 = AddLanes(t1, acc1);
            t2 = AddLanes(t2, acc2);
        }
        if (isa >= InstructionSet.Avx2 && n - i >= Vector256<T>.Count)
        {
            Vector256<T> acc1 = Vector256<T>.Zero, acc2 = Vector256<T>.Zero;
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var (x, y) = (Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i));
                acc1 += f1.Invoke(x, y);
                acc2 += f2.Invoke(x, y);
            }
            t1 = AddLanes(t1, acc1);
            t2 = AddLanes(t2, acc2);
        }
        for (; i < n; i++)
        {
            var (x, y) = (Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i));
            t1 += double.CreateTruncating(f1.Invoke(x, y));
            t2 += double.CreateTruncating(f2.Invoke(x, y));
        }
        return (t1, t2);
    }

    /// <summary><paramref name="total"/> plus the lanes of an accumulator, one at a time in double, lane 0 first (the order every reduction here keeps).</summary>
    private static double AddLanes<T>(double total, Vector512<T> acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int k = 0; k < Vector512<T>.Count; k++) total += double.CreateTruncating(acc[k]);
        return total;
    }

    /// <inheritdoc cref="AddLanes{T}(double, Vector512{T})"/>
    private static double AddLanes<T>(double total, Vector256<T> acc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int k = 0; k < Vector256<T>.Count; k++) total += double.CreateTruncating(acc[k]);
        return total;
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
            total = AddLanes(total, acc);
        }
        if (isa >= InstructionSet.Avx2 && n - i >= Vector256<T>.Count)
        {
            var acc = Vector256<T>.Zero;
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                acc += f.Invoke(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i));
            total = AddLanes(total, acc);
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
        public T Mean => mean;

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

    /// <summary>relu(z) of the affine z, as ActivationKernels' ReLU: z &lt; 0 ? 0 : z.</summary>
    private readonly struct AffineReluOp<T>(AffineOp<T> z) : IUnaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x)
        {
            T v = z.Invoke(x);
            return v < T.Zero ? T.Zero : v;
        }

        public Vector256<T> Invoke(Vector256<T> x)
        {
            var v = z.Invoke(x);
            return Vector256.AndNot(v, Vector256.LessThan(v, Vector256<T>.Zero));
        }

        public Vector512<T> Invoke(Vector512<T> x)
        {
            var v = z.Invoke(x);
            return Vector512.AndNot(v, Vector512.LessThan(v, Vector512<T>.Zero));
        }
    }

    /// <summary>relu(z(x) + r) with x the first operand, r the second: the affine, the add and ReLU as their own ops compute them.</summary>
    private readonly struct AffineAddReluOp<T>(AffineOp<T> z) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T x, T r)
        {
            T v = z.Invoke(x) + r;
            return v < T.Zero ? T.Zero : v;
        }

        public Vector256<T> Invoke(Vector256<T> x, Vector256<T> r)
        {
            var v = z.Invoke(x) + r;
            return Vector256.AndNot(v, Vector256.LessThan(v, Vector256<T>.Zero));
        }

        public Vector512<T> Invoke(Vector512<T> x, Vector512<T> r)
        {
            var v = z.Invoke(x) + r;
            return Vector512.AndNot(v, Vector512.LessThan(v, Vector512<T>.Zero));
        }
    }

    /// <summary>g' = z(x) ≤ 0 ? 0 : g (ReLU's backward at the affine z of x), with g the first operand, x the second.</summary>
    private readonly struct ReluMaskOp<T>(AffineOp<T> z) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T g, T x) => z.Invoke(x) <= T.Zero ? T.Zero : g;
        public Vector256<T> Invoke(Vector256<T> g, Vector256<T> x) => Vector256.AndNot(g, Vector256.LessThanOrEqual(z.Invoke(x), Vector256<T>.Zero));
        public Vector512<T> Invoke(Vector512<T> g, Vector512<T> x) => Vector512.AndNot(g, Vector512.LessThanOrEqual(z.Invoke(x), Vector512<T>.Zero));
    }

    /// <summary>g'·(x − μ) with g' of <see cref="ReluMaskOp{T}"/>.</summary>
    private readonly struct ReluMaskDeviationOp<T>(AffineOp<T> z) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T g, T x) => new ReluMaskOp<T>(z).Invoke(g, x) * (x - z.Mean);
        public Vector256<T> Invoke(Vector256<T> g, Vector256<T> x) => new ReluMaskOp<T>(z).Invoke(g, x) * (x - Vector256.Create(z.Mean));
        public Vector512<T> Invoke(Vector512<T> g, Vector512<T> x) => new ReluMaskOp<T>(z).Invoke(g, x) * (x - Vector512.Create(z.Mean));
    }

    /// <summary>a·g' + b·(x − μ) + c with g' of <see cref="ReluMaskOp{T}"/>.</summary>
    private readonly struct ReluAffineGradientOp<T>(AffineOp<T> z, T a, T b, T c) : IBinaryOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Invoke(T g, T x) => new AffineGradientOp<T>(z.Mean, a, b, c).Invoke(new ReluMaskOp<T>(z).Invoke(g, x), x);

        public Vector256<T> Invoke(Vector256<T> g, Vector256<T> x) =>
            new AffineGradientOp<T>(z.Mean, a, b, c).Invoke(new ReluMaskOp<T>(z).Invoke(g, x), x);

        public Vector512<T> Invoke(Vector512<T> g, Vector512<T> x) =>
            new AffineGradientOp<T>(z.Mean, a, b, c).Invoke(new ReluMaskOp<T>(z).Invoke(g, x), x);
    }
}
