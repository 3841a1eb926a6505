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
    public static void Gather<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> strides, Span<T> y, ReadOnlySpan<int> shape)
        where T : unmanaged
    {
        int rank = shape.Length;
        long total = 1;
        foreach (int d in shape) total *= d;
        if (y.Length < total) throw new ArgumentException($"strided copy: destination has {y.Length} elements, shape needs {total}.");
        if (total == 0) return;
        CheckExtent("x", x.Length, shape, strides);
        if (rank == 0)
        {
            y[0] = x[0];
            return;
        }
        int n = shape[rank - 1];
        int s = strides[rank - 1];
        Span<int> idx = stackalloc int[rank];
        idx.Clear();
        int off = 0;
        for (int offY = 0; offY < total; offY += n)
        {
            var row = y.Slice(offY, n);
            if (s == 1) x.Slice(off, n).CopyTo(row);
            else if (s == 0) row.Fill(x[off]);
            else
                for (int j = 0, o = off; j < n; j++, o += s) row[j] = x[o];
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
