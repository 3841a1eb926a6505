using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

public class MatmulTests
{
    /// <summary>Reference: for batch shape [..], C[.., i, j] = Σ_p A[.., i, p]·B[.., p, j], with torch.matmul's broadcasting written out.</summary>
    private static double[] Reference(double[] a, int[] sa, double[] b, int[] sb, out int[] shape) => Reference(a, sa, b, sb, out shape, out _);

    /// <summary>As above; <paramref name="magnitude"/> holds Σ_p |A·B| per element (for the float32 error bound).</summary>
    private static double[] Reference(double[] a, int[] sa, double[] b, int[] sb, out int[] shape, out double[] magnitude)
    {
        bool rowVec = sa.Length == 1, colVec = sb.Length == 1;
        int[] a2 = rowVec ? [1, sa[0]] : sa, b2 = colVec ? [sb[0], 1] : sb;
        int m = a2[^2], k = a2[^1], n = b2[^1];
        int rank = Math.Max(a2.Length, b2.Length) - 2;
        var batch = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int da = d - (rank - (a2.Length - 2)), db = d - (rank - (b2.Length - 2));
            int x = da >= 0 ? a2[da] : 1, y = db >= 0 ? b2[db] : 1;
            batch[d] = Math.Max(x, y);
        }
        int count = batch.Aggregate(1, (p, q) => p * q);
        var c = new double[count * m * n];
        magnitude = new double[c.Length];
        for (int t = 0; t < count; t++)
        {
            // multi-index of batch item t, then each operand's own (broadcast) item
            int rem = t, offA = 0, offB = 0, strA = 1, strB = 1;
            for (int d = rank - 1; d >= 0; d--)
            {
                int idx = rem % batch[d];
                rem /= batch[d];
                int da = d - (rank - (a2.Length - 2)), db = d - (rank - (b2.Length - 2));
                if (da >= 0) { offA += (a2[da] == 1 ? 0 : idx) * strA; strA *= a2[da]; }
                if (db >= 0) { offB += (b2[db] == 1 ? 0 : idx) * strB; strB *= b2[db]; }
            }
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0, mag = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double x = a[offA * m * k + i * k + p] * b[offB * k * n + p * n + j];
                        s += x;
                        mag += Math.Abs(x);
                    }
                    c[(t * m + i) * n + j] = s;
                    magnitude[(t * m + i) * n + j] = mag;
                }
        }
        var outShape = batch.ToList();
        if (!rowVec) outShape.Add(m);
        if (!colVec) outShape.Add(n);
        shape = [.. outShape];
        return c;
    }

    private static Tensor Random(int seed, int[] shape, DType dtype)
    {
        return Tensor.Normal(new Generator((ulong)seed), 0, 1, dtype, shape);
    }

    public static TheoryData<int[], int[]> Shapes => new()
    {
        { [3, 4], [4, 5] },
        { [4], [4, 6] },
        { [5, 4], [4] },
        { [7], [7] },
        { [3, 2, 4], [3, 4, 5] },
        { [2, 1, 3, 4], [5, 4, 6] },
        { [1, 1], [1, 1] },
        { [9, 70], [70, 33] },
        { [6], [2, 6, 3] },
        { [2, 3, 5], [5] },
        { [4, 3, 8], [8, 2] },
        { [3, 8], [4, 8, 2] },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matmul_Forward_MatchesReference(int[] sa, int[] sb)
    {
        var a = Random(1, sa, DType.Float32);
        var b = Random(2, sb, DType.Float32);
        var y = Tensor.Matmul(a, b);
        var expected = Reference(a.ToDoubleArray(), sa, b.ToDoubleArray(), sb, out var shape, out var magnitude);
        Assert.Equal(shape, y.Shape.ToArray());
        var actual = y.ToDoubleArray();
        int k = sa[^1];
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= (k + 2) * 1.2e-7 * magnitude[i],
                $"element {i}: {actual[i]} vs {expected[i]}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matmul_Float64_MatchesReferenceClosely(int[] sa, int[] sb)
    {
        var a = Random(3, sa, DType.Float64);
        var b = Random(4, sb, DType.Float64);
        var expected = Reference(a.ToDoubleArray(), sa, b.ToDoubleArray(), sb, out _);
        var actual = a.Matmul(b).ToDoubleArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matmul_Backward_MatchesFiniteDifferences(int[] sa, int[] sb)
    {
        var a = Random(5, sa, DType.Float64);
        var b = Random(6, sb, DType.Float64);
        a.RequiresGrad = b.RequiresGrad = true;
        GradCheck.Assert(x => Tensor.Matmul(x[0], x[1]), [a, b]);
    }

    [Fact]
    public void Matmul_OnlyOneOperandRequiresGrad_MatchesFiniteDifferences()
    {
        var a = Random(7, [2, 1, 3, 4], DType.Float64);
        var b = Random(8, [5, 4, 6], DType.Float64);
        b.RequiresGrad = true;
        GradCheck.Assert(x => Tensor.Matmul(x[0], x[1]), [a, b]);
        var c = Random(9, [3, 4], DType.Float64);
        var d = Random(10, [2, 4, 6], DType.Float64);
        c.RequiresGrad = true;
        GradCheck.Assert(x => Tensor.Matmul(x[0], x[1]), [c, d]);
    }

    [Fact]
    public void Matmul_SharedWeightGradient_IsSumOverBatchOfATransposeG()
    {
        // y = x·W with x [2, 2, 3] and W [3, 1]; L = Σ y  =>  dW[p] = Σ_{batch, rows} x[.., p].
        var x = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f], 2, 2, 3);
        var w = Tensor.FromArray([1f, 1f, 1f], 3, 1);
        w.RequiresGrad = true;
        Tensor.Matmul(x, w).Sum().Backward();
        Assert.Equal([1f + 4 + 7 + 10, 2f + 5 + 8 + 11, 3f + 6 + 9 + 12], w.Grad!.ToArray());
    }

    [Theory]
    [InlineData(new[] { 3, 4 }, new[] { 5, 6 })]
    [InlineData(new[] { 2, 3, 4 }, new[] { 3, 4, 5 })]
    [InlineData(new[] { 4 }, new[] { 5 })]
    public void Matmul_ShapeMismatch_ThrowsNamingOpAndShapes(int[] sa, int[] sb)
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Matmul(Tensor.Zeros(sa), Tensor.Zeros(sb)));
        Assert.Contains("matmul", e.Message);
        Assert.Contains("[" + string.Join(", ", sa) + "]", e.Message);
        Assert.Contains("[" + string.Join(", ", sb) + "]", e.Message);
    }

    [Fact]
    public void Matmul_BatchDimensionsDoNotBroadcast_ThrowsNamingMatmul()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Matmul(Tensor.Zeros(2, 3, 4), Tensor.Zeros(3, 4, 5)));
        Assert.Contains("matmul", e.Message);
    }
}
