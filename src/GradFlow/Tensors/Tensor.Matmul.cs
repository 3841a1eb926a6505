using GradFlow.Kernels;

namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>
    /// Matrix product with <c>torch.matmul</c>'s rules: 1-D·1-D is a dot product; 2-D·2-D a matrix
    /// product; a 1-D operand is treated as a row (left) or column (right) vector and that dimension
    /// removed afterwards; leading (batch) dimensions broadcast. Shapes <c>[..., m, k]·[..., k, n] →
    /// [..., m, n]</c>. Backward: dA = g·Bᵀ, dB = Aᵀ·g (summed over broadcast batch dimensions),
    /// computed by the GEMM kernel with transposed operands, never materialising a transpose.
    /// </summary>
    public static Tensor Matmul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        CheckSameDType("matmul", a, b);
        if (a.Rank == 0 || b.Rank == 0)
            throw new ArgumentException($"matmul: both operands need at least one dimension, got {Shapes.Format(a._shape)} and {Shapes.Format(b._shape)}.");
        bool rowVector = a.Rank == 1, colVector = b.Rank == 1;
        var a2 = rowVector ? a.Reshape(1, a._shape[0]) : a;
        var b2 = colVector ? b.Reshape(b._shape[0], 1) : b;
        if (a2._shape[^1] != b2._shape[^2])
            throw new ArgumentException(
                $"matmul: shapes {Shapes.Format(a._shape)} and {Shapes.Format(b._shape)} do not chain (inner dimensions {a2._shape[^1]} and {b2._shape[^2]} differ).");
        var y = MatmulNd(a2, b2);
        if (!rowVector && !colVector) return y;
        var shape = y._shape.ToList();
        if (colVector) shape.RemoveAt(shape.Count - 1);
        if (rowVector) shape.RemoveAt(shape.Count - (colVector ? 1 : 2));
        return y.Reshape(shape.ToArray());
    }

    /// <summary>Instance form of <see cref="Matmul(Tensor, Tensor)"/>.</summary>
    public Tensor Matmul(Tensor other) => Matmul(this, other);

    private static Tensor MatmulNd(Tensor a, Tensor b)
    {
        int m = a._shape[^2], k = a._shape[^1], n = b._shape[^1];
        var batchA = a._shape[..^2];
        var batchB = b._shape[..^2];
        for (int d = 1; d <= Math.Min(batchA.Length, batchB.Length); d++)
        {
            int x = batchA[^d], z = batchB[^d];
            if (x != z && x != 1 && z != 1)
                throw new ArgumentException(
                    $"matmul: batch dimensions of {Shapes.Format(a._shape)} and {Shapes.Format(b._shape)} do not broadcast ({x} vs {z}); they must be equal or 1.");
        }
        var batch = Shapes.Broadcast("matmul", batchA, batchB);
        int count = Shapes.Numel("matmul", batch);
        var (ea, strideA) = BatchOperand(a, batchA, batch, count, m * k);
        var (eb, strideB) = BatchOperand(b, batchB, batch, count, k * n);
        var y = Uninitialized("matmul", a, [.. batch, m, n]);
        Batched(count, false, false, m, n, k, ea, strideA, eb, strideB, y, 0.0);
        if (!NeedsGrad(a, b)) return y;
        return y.Record("matmul", [a, b], g =>
        {
            Tensor? da = null, db = null;
            if (a.RequiresGrad)
            {
                // dA_i = g_i · B_iᵀ
                var full = Uninitialized("matmul", a, [.. batch, m, k]);
                Batched(count, false, true, m, k, n, g, (long)m * n, eb, strideB, full, 0.0);
                da = SumTo(full, a._shape);
            }
            if (b.RequiresGrad)
            {
                if (strideB == 0 && strideA != 0 && count > 1)
                {
                    // B shared by the batch: dB = Σ_i A_iᵀ g_i = Aᵀ g over all batch rows at once.
                    db = Uninitialized("matmul", b, [k, n]);
                    Batched(1, true, false, k, n, count * m, ea, 0, g, 0, db, 0.0);
                    db = db.ReshapeRaw(b._shape);
                }
                else
                {
                    var full = Uninitialized("matmul", b, [.. batch, k, n]);
                    Batched(count, true, false, k, n, m, ea, strideA, g, (long)m * n, full, 0.0);
                    db = SumTo(full, b._shape);
                }
            }
            return [da, db];
        });
    }

    /// <summary>The operand as seen by the batched GEMM: its own storage with stride 0 when it has no batch, else expanded.</summary>
    private static (Tensor Operand, long Stride) BatchOperand(Tensor x, int[] own, int[] batch, int count, int matrix)
    {
        int ownCount = Shapes.Numel("matmul", own);
        if (ownCount == 1) return (x, count == 1 ? matrix : 0);
        if (ownCount == count) return (x, matrix);
        return (ExpandRaw(x, [.. batch, x._shape[^2], x._shape[^1]]), matrix);
    }

    /// <summary>C_i = op(A_i)·op(B_i) + beta·C_i over the batch (row-major, leading dimensions from the stored shapes).</summary>
    private static void Batched(int count, bool ta, bool tb, int m, int n, int k, Tensor a, long strideA, Tensor b, long strideB, Tensor c, double beta)
    {
        int lda = ta ? m : k, ldb = tb ? k : n;
        if (c.Storage is float[])
            Gemm.MultiplyBatched(count, ta, tb, m, n, k, 1f, a.Span<float>(), lda, strideA, b.Span<float>(), ldb, strideB,
                (float)beta, c.Span<float>(), n, (long)m * n);
        else
            Gemm.MultiplyBatched(count, ta, tb, m, n, k, 1.0, a.Span<double>(), lda, strideA, b.Span<double>(), ldb, strideB,
                beta, c.Span<double>(), n, (long)m * n);
    }
}
