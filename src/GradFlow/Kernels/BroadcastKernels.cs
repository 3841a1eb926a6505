using System.Numerics;
using System.Numerics.Tensors;

namespace GradFlow.Kernels;

/// <summary>Element-wise binary operations that <see cref="BroadcastKernels.Binary{T}"/> applies.</summary>
public enum BinaryOp
{
    /// <summary>a + b</summary>
    Add,
    /// <summary>a - b</summary>
    Subtract,
    /// <summary>a * b</summary>
    Multiply,
    /// <summary>a / b</summary>
    Divide,
    /// <summary>a ^ b</summary>
    Pow,
    /// <summary>max(a, b), NaN if either is NaN</summary>
    Maximum,
    /// <summary>min(a, b), NaN if either is NaN</summary>
    Minimum,
}

/// <summary>
/// Binary element-wise kernels over NumPy-broadcast operands described by shapes and strides
/// (stride 0 along a broadcast dimension). Rows along the innermost dimension go to
/// <see cref="TensorPrimitives"/> (vector-vector, vector-scalar or scalar-vector), so the SIMD
/// path and its tail handling are TensorPrimitives'.
/// </summary>
public static class BroadcastKernels
{
    /// <summary>
    /// <c>y[i] = op(a[i·aStrides], b[i·bStrides])</c> for every multi-index i of <paramref name="shape"/>;
    /// <paramref name="y"/> is contiguous row-major.
    /// </summary>
    public static void Binary<T>(BinaryOp op, ReadOnlySpan<T> a, ReadOnlySpan<int> aStrides,
        ReadOnlySpan<T> b, ReadOnlySpan<int> bStrides, Span<T> y, ReadOnlySpan<int> shape)
        where T : unmanaged, IFloatingPointIeee754<T>, IPowerFunctions<T>
    {
        int rank = shape.Length;
        if (aStrides.Length != rank || bStrides.Length != rank)
            throw new ArgumentException($"broadcast: stride ranks {aStrides.Length}/{bStrides.Length} do not match shape rank {rank}.");
        long total = 1;
        foreach (int d in shape) total *= d;
        if (y.Length < total)
            throw new ArgumentException($"broadcast: destination has {y.Length} elements, shape needs {total}.");
        if (total == 0) return;
        CheckExtent("a", a.Length, shape, aStrides);
        CheckExtent("b", b.Length, shape, bStrides);

        // Drop size-1 dimensions and merge dimensions that are contiguous for both operands.
        Span<int> dims = stackalloc int[Math.Max(rank, 1)];
        Span<int> sa = stackalloc int[Math.Max(rank, 1)];
        Span<int> sb = stackalloc int[Math.Max(rank, 1)];
        int r = 0;
        for (int i = 0; i < rank; i++)
        {
            if (shape[i] == 1) continue;
            if (r > 0 && sa[r - 1] == aStrides[i] * shape[i] && sb[r - 1] == bStrides[i] * shape[i])
            {
                dims[r - 1] *= shape[i];
                sa[r - 1] = aStrides[i];
                sb[r - 1] = bStrides[i];
                continue;
            }
            dims[r] = shape[i];
            sa[r] = aStrides[i];
            sb[r] = bStrides[i];
            r++;
        }
        if (r == 0)
        {
            y[0] = Scalar(op, a[0], b[0]);
            return;
        }

        int n = dims[r - 1];
        int rowA = sa[r - 1], rowB = sb[r - 1];
        Span<int> idx = stackalloc int[r];
        idx.Clear();
        int offA = 0, offB = 0;
        for (int offY = 0; offY < total; offY += n)
        {
            Row(op, a, offA, rowA, b, offB, rowB, y.Slice(offY, n));
            // odometer over the outer dimensions
            for (int d = r - 2; d >= 0; d--)
            {
                idx[d]++;
                offA += sa[d];
                offB += sb[d];
                if (idx[d] < dims[d]) break;
                offA -= sa[d] * dims[d];
                offB -= sb[d] * dims[d];
                idx[d] = 0;
            }
        }
    }

    private static void CheckExtent(string name, int length, ReadOnlySpan<int> shape, ReadOnlySpan<int> strides)
    {
        long last = 0;
        for (int i = 0; i < shape.Length; i++) last += (long)(shape[i] - 1) * strides[i];
        if (last >= length)
            throw new ArgumentException($"broadcast: operand {name} has {length} elements but its strides reach element {last}.");
    }

    private static void Row<T>(BinaryOp op, ReadOnlySpan<T> a, int offA, int strideA, ReadOnlySpan<T> b, int offB, int strideB, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>, IPowerFunctions<T>
    {
        int n = y.Length;
        if (strideA == 1 && strideB == 1)
        {
            var x = a.Slice(offA, n);
            var z = b.Slice(offB, n);
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(x, z, y); break;
                case BinaryOp.Subtract: TensorPrimitives.Subtract(x, z, y); break;
                case BinaryOp.Multiply: TensorPrimitives.Multiply(x, z, y); break;
                case BinaryOp.Divide: TensorPrimitives.Divide(x, z, y); break;
                case BinaryOp.Pow: TensorPrimitives.Pow(x, z, y); break;
                case BinaryOp.Maximum: TensorPrimitives.Max(x, z, y); break;
                case BinaryOp.Minimum: TensorPrimitives.Min(x, z, y); break;
            }
        }
        else if (strideA == 1)
        {
            var x = a.Slice(offA, n);
            T s = b[offB];
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(x, s, y); break;
                case BinaryOp.Subtract: TensorPrimitives.Subtract(x, s, y); break;
                case BinaryOp.Multiply: TensorPrimitives.Multiply(x, s, y); break;
                case BinaryOp.Divide: TensorPrimitives.Divide(x, s, y); break;
                case BinaryOp.Pow: TensorPrimitives.Pow(x, s, y); break;
                case BinaryOp.Maximum: TensorPrimitives.Max(x, s, y); break;
                case BinaryOp.Minimum: TensorPrimitives.Min(x, s, y); break;
            }
        }
        else if (strideB == 1)
        {
            T s = a[offA];
            var z = b.Slice(offB, n);
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(z, s, y); break;
                case BinaryOp.Subtract: TensorPrimitives.Subtract(s, z, y); break;
                case BinaryOp.Multiply: TensorPrimitives.Multiply(z, s, y); break;
                case BinaryOp.Divide: TensorPrimitives.Divide(s, z, y); break;
                case BinaryOp.Pow: TensorPrimitives.Pow(s, z, y); break;
                case BinaryOp.Maximum: TensorPrimitives.Max(z, s, y); break;
                case BinaryOp.Minimum: TensorPrimitives.Min(z, s, y); break;
            }
        }
        else
        {
            y.Fill(Scalar(op, a[offA], b[offB]));
        }
    }

    /// <summary>The scalar definition of <paramref name="op"/> (the reference the row kernels follow).</summary>
    public static T Scalar<T>(BinaryOp op, T a, T b) where T : unmanaged, IFloatingPointIeee754<T>, IPowerFunctions<T> => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Subtract => a - b,
        BinaryOp.Multiply => a * b,
        BinaryOp.Divide => a / b,
        BinaryOp.Pow => T.Pow(a, b),
        BinaryOp.Maximum => T.IsNaN(a) || T.IsNaN(b) ? T.NaN : T.Max(a, b),
        BinaryOp.Minimum => T.IsNaN(a) || T.IsNaN(b) ? T.NaN : T.Min(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>
    /// Copies <paramref name="x"/> viewed through <paramref name="strides"/> over <paramref name="shape"/>
    /// into contiguous <paramref name="y"/> (materialises broadcasts and permutations).
    /// </summary>
    public static unsafe void Gather<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> strides, Span<T> y, ReadOnlySpan<int> shape)
        where T : unmanaged
    {
        int rank = shape.Length;
        long total = 1;
        foreach (int d in shape) total *= d;
        if (y.Length < total) throw new ArgumentException($"strided copy: destination has {y.Length} elements, shape needs {total}.");
        if (total == 0) return;
        CheckExtent("x", x.Length, shape, strides);
        // Coalesced: an axis merges into the one before it when x steps over it as over one longer axis (broadcast axes
        // of stride 0 next to each other included; axes of extent 1 dropped). [64, 16, 1, 1] expanded to [64, 16, 28, 28]
        // becomes 1 024 runs of 784 copies of one value instead of 28 672 runs of 28.
        Span<int> dims = stackalloc int[Math.Max(1, rank)], steps = stackalloc int[Math.Max(1, rank)];
        int r = 0;
        for (int d = 0; d < rank; d++)
        {
            if (shape[d] == 1) continue;
            if (r > 0 && steps[r - 1] == strides[d] * shape[d])
            {
                dims[r - 1] *= shape[d];
                steps[r - 1] = strides[d];
            }
            else
            {
                dims[r] = shape[d];
                steps[r] = strides[d];
                r++;
            }
        }
        if (r == 0)
        {
            y[0] = x[0];
            return;
        }
        int rows = (int)(total / dims[r - 1]);
        fixed (T* px = x, py = y)
        fixed (int* pd = dims, ps = steps)
        {
            if (total < KernelThreads.SerialBelow || rows < 2 || KernelThreads.Count == 1)
            {
                GatherRows(px, pd, ps, r, py, 0, rows);
                return;
            }
            // copies only, so any cut gives the same bits
            nint xs = (nint)px, ys = (nint)py, ds = (nint)pd, ss = (nint)ps;
            int tasks = Math.Min(rows, 4 * KernelThreads.Count), rr = r;
            KernelThreads.Run(tasks, t =>
                GatherRows((T*)xs, (int*)ds, (int*)ss, rr, (T*)ys, (int)((long)rows * t / tasks), (int)((long)rows * (t + 1) / tasks)));
        }
    }

    /// <summary>Rows [row0, row1) of a coalesced <see cref="Gather{T}"/>: rank axes <paramref name="dims"/> with x's <paramref name="steps"/>, a row being the last axis.</summary>
    private static unsafe void GatherRows<T>(T* x, int* dims, int* steps, int rank, T* y, int row0, int row1) where T : unmanaged
    {
        int n = dims[rank - 1], s = steps[rank - 1];
        Span<int> idx = stackalloc int[rank];
        long off = 0;
        for (int d = rank - 2, rest = row0; d >= 0; d--)
        {
            idx[d] = rest % dims[d];
            rest /= dims[d];
            off += (long)idx[d] * steps[d];
        }
        for (int row = row0; row < row1; row++)
        {
            var dst = new Span<T>(y + (long)row * n, n);
            if (s == 1) new ReadOnlySpan<T>(x + off, n).CopyTo(dst);
            else if (s == 0) dst.Fill(x[off]);
            else
                for (int j = 0; j < n; j++) dst[j] = x[off + (long)j * s];
            for (int d = rank - 2; d >= 0; d--)
            {
                idx[d]++;
                off += steps[d];
                if (idx[d] < dims[d]) break;
                off -= (long)steps[d] * dims[d];
                idx[d] = 0;
            }
        }
    }

    /// <summary>
    /// <c>y[i·strides] += x[i]</c> for every multi-index i of <paramref name="shape"/>, with
    /// <paramref name="x"/> contiguous: the adjoint of <see cref="Gather{T}"/> (the backward of
    /// strided copies such as slices). Strides must not alias two positions.
    /// </summary>
    public static void AddStrided<T>(ReadOnlySpan<T> x, Span<T> y, ReadOnlySpan<int> strides, ReadOnlySpan<int> shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rank = shape.Length;
        long total = 1;
        foreach (int d in shape) total *= d;
        if (x.Length < total) throw new ArgumentException($"strided add: source has {x.Length} elements, shape needs {total}.");
        if (total == 0) return;
        CheckExtent("y", y.Length, shape, strides);
        if (rank == 0)
        {
            y[0] += x[0];
            return;
        }
        int n = shape[rank - 1];
        int s = strides[rank - 1];
        Span<int> idx = stackalloc int[rank];
        idx.Clear();
        int off = 0;
        for (int offX = 0; offX < total; offX += n)
        {
            var row = x.Slice(offX, n);
            if (s == 1)
            {
                var dst = y.Slice(off, n);
                TensorPrimitives.Add(dst, row, dst);
            }
            else
                for (int j = 0, o = off; j < n; j++, o += s) y[o] += row[j];
            for (int d = rank - 2; d >= 0; d--)
            {
                idx[d]++;
                off += strides[d];
                if (idx[d] < shape[d]) break;
                off -= strides[d] * shape[d];
                idx[d] = 0;
            }
        }
    }
}
