using System.Runtime.Intrinsics;
using System.Numerics;
using System.Numerics.Tensors;

namespace GradFlow.Kernels;

/// <summary>
/// Reductions over the middle axis of an <c>(outer, n, inner)</c> view of contiguous data.
/// Any single-axis reduction of a row-major tensor is one such view. Summation order is fixed
/// (TensorPrimitives' order along contiguous rows; row by row otherwise), so results are
/// deterministic.
/// </summary>
public static class ReduceKernels
{
    /// <summary><c>y[o, i] = Σ_j x[o, j, i]</c>; <paramref name="y"/> has outer·inner elements.</summary>
    public static void Sum<T>(ReadOnlySpan<T> x, int outer, int n, int inner, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("sum", x.Length, outer, n, inner, y.Length);
        if (outer == 1 && n > 1 && inner >= 16 && (long)n * inner >= KernelThreads.SerialBelow)
        {
            SumColumns(x, n, inner, y);
            return;
        }
        if (outer >= 2 && (long)outer * n * inner >= KernelThreads.SerialBelow && KernelThreads.Count > 1)
        {
            SumOuterInParallel(x, outer, n, inner, y);
            return;
        }
        SumOuter(x, n, inner, y, 0, outer);
    }

    /// <summary>Outputs [o0, o1) of <see cref="Sum{T}"/>: a row's sum by TensorPrimitives (inner 1), else the n rows of each block added in order.</summary>
    private static void SumOuter<T>(ReadOnlySpan<T> x, int n, int inner, Span<T> y, int o0, int o1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (inner == 1)
        {
            for (int o = o0; o < o1; o++) y[o] = TensorPrimitives.Sum(x.Slice(o * n, n));
            return;
        }
        for (int o = o0; o < o1; o++)
        {
            var dst = y.Slice(o * inner, inner);
            if (n == 0)
            {
                dst.Clear();
                continue;
            }
            var block = x.Slice(o * n * inner, n * inner);
            block[..inner].CopyTo(dst);
            for (int j = 1; j < n; j++) TensorPrimitives.Add(dst, block.Slice(j * inner, inner), dst);
        }
    }

    /// <summary>
    /// <see cref="SumOuter{T}"/> with the outputs cut into runs on the kernel threads: every output is the sum of its own
    /// elements in the serial order, so the result is bitwise the serial one whatever the cut. A global average pool's
    /// 1 024 sums of 784 (cnn-resnet) took 0.13 ms on one thread while the other waited.
    /// </summary>
    private static unsafe void SumOuterInParallel<T>(ReadOnlySpan<T> x, int outer, int n, int inner, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int tasks = Math.Min(outer, 4 * KernelThreads.Count);
        int length = outer * n * inner;
        fixed (T* px = x, py = y)
        {
            nint xs = (nint)px, ys = (nint)py;
            KernelThreads.Run(tasks, t =>
            {
                int o0 = (int)((long)outer * t / tasks), o1 = (int)((long)outer * (t + 1) / tasks);
                SumOuter(new ReadOnlySpan<T>((T*)xs, length), n, inner, new Span<T>((T*)ys, outer * inner), o0, o1);
            });
        }
    }

    /// <summary>
    /// Column sums of an n × inner matrix (a bias gradient over a batch) on the kernel threads: each thread owns one
    /// block of columns (at least 64 wide) and adds the rows in order, so every sum is the serial one bit for bit,
    /// whatever the cut. One wide block per thread reads each row in one stretch (blocks of 128 columns re-walked the rows,
    /// a page apart, once per block), and the rows are added by an inline vector loop instead of a library call per row:
    /// dY [4 096, 768] from 18 to 21-36 GB/s (medians) on 2 threads, [4 096, 1 024] from 27 to 42, and [4 096, 96], summed serially by a library call per row before, from 5 to 18 (<c>--profile colsum</c>).
    /// </summary>
    private static unsafe void SumColumns<T>(ReadOnlySpan<T> x, int n, int inner, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int tasks = Math.Max(1, Math.Min(KernelThreads.Count, inner / 64));
        fixed (T* px = x, py = y)
        {
            nint xs = (nint)px, ys = (nint)py;
            KernelThreads.Run(tasks, t =>
            {
                int c0 = (int)((long)inner * t / tasks) & ~15, c1 = t == tasks - 1 ? inner : (int)((long)inner * (t + 1) / tasks) & ~15;
                int cols = c1 - c0;
                T* dst = (T*)ys + c0, src = (T*)xs + c0;
                new ReadOnlySpan<T>(src, cols).CopyTo(new Span<T>(dst, cols));
                for (int j = 1; j < n; j++) AddRow(dst, src + (nint)j * inner, cols);
            });
        }
    }

    /// <summary>dst[i] += src[i] for i &lt; count, each element once (the same bits at every vector width).</summary>
    private static unsafe void AddRow<T>(T* dst, T* src, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + Vector512<T>.Count <= count; i += Vector512<T>.Count) Vector512.Store(Vector512.Load(dst + i) + Vector512.Load(src + i), dst + i);
        if (Vector256.IsHardwareAccelerated)
            for (; i + Vector256<T>.Count <= count; i += Vector256<T>.Count) Vector256.Store(Vector256.Load(dst + i) + Vector256.Load(src + i), dst + i);
        for (; i < count; i++) dst[i] += src[i];
    }

    /// <summary>
    /// <c>y[o, i] = max_j x[o, j, i]</c> and its index; the first index wins ties; a NaN is the maximum
    /// (the first NaN's index is returned), as in PyTorch. Requires n ≥ 1.
    /// </summary>
    public static void Max<T>(ReadOnlySpan<T> x, int outer, int n, int inner, Span<T> y, Span<int> indices)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check("max", x.Length, outer, n, inner, y.Length);
        if (n == 0) throw new ArgumentException("max: cannot reduce an empty dimension (size 0).");
        if (indices.Length < outer * inner)
            throw new ArgumentException($"max: indices has {indices.Length} elements, needs {outer * inner}.");
        if (inner == 1)
        {
            for (int o = 0; o < outer; o++)
            {
                var row = x.Slice(o * n, n);
                int k = TensorPrimitives.IndexOfMax(row);
                // IndexOfMax ranks +0 above -0; here they tie and the first index wins, as on the strided path.
                if (T.IsZero(row[k]))
                    for (int j = 0; j < k; j++)
                        if (T.IsZero(row[j]))
                        {
                            k = j;
                            break;
                        }
                indices[o] = k;
                y[o] = row[k];
            }
            return;
        }
        for (int o = 0; o < outer; o++)
        {
            var block = x.Slice(o * n * inner, n * inner);
            var dst = y.Slice(o * inner, inner);
            var idx = indices.Slice(o * inner, inner);
            block[..inner].CopyTo(dst);
            idx.Clear();
            for (int j = 1; j < n; j++)
            {
                var row = block.Slice(j * inner, inner);
                for (int i = 0; i < inner; i++)
                {
                    T v = row[i];
                    if (v > dst[i] || (T.IsNaN(v) && !T.IsNaN(dst[i])))
                    {
                        dst[i] = v;
                        idx[i] = j;
                    }
                }
            }
        }
    }

    private static void Check(string op, int length, int outer, int n, int inner, int yLength)
    {
        if (outer < 0 || n < 0 || inner < 0)
            throw new ArgumentException($"{op}: negative extent (outer={outer}, n={n}, inner={inner}).");
        if ((long)outer * n * inner > length)
            throw new ArgumentException($"{op}: input has {length} elements, outer={outer} n={n} inner={inner} needs {(long)outer * n * inner}.");
        if ((long)outer * inner > yLength)
            throw new ArgumentException($"{op}: output has {yLength} elements, needs {(long)outer * inner}.");
    }
}
