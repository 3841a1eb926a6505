using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// GEMM against a plain float64 triple loop written here. Float32 bound: a k-term dot product
/// plus the alpha and beta steps is within <c>(k + 2)·u·(|alpha|·Σ|a||b| + |beta|·|c|)</c>,
/// u = 2⁻²⁴ (Higham, γ_k); we allow 2u per step.
/// </summary>
public class GemmTests
{
    private const double F32Step = 1.2e-7, F64Step = 2.3e-16;

    public static TheoryData<int> Sizes
    {
        get
        {
            var data = new TheoryData<int>();
            for (int s = 1; s <= 67; s++) data.Add(s);
            return data;
        }
    }

    public static IEnumerable<InstructionSet> Paths => KernelIsa.All;

    /// <summary>Stored operand: op(X) is rows×cols; stored transposed when <paramref name="trans"/>, with padding in ld.</summary>
    private sealed record Operand(float[] Data, int Ld, bool Trans, int Rows, int Cols)
    {
        public double At(int i, int j, long offset = 0) => Trans ? Data[offset + (long)j * Ld + i] : Data[offset + (long)i * Ld + j];
    }

    private static Operand MakeOperand(int rows, int cols, bool trans, int pad, int seed, int count = 1, long stride = -1)
    {
        int storedRows = trans ? cols : rows, storedCols = trans ? rows : cols;
        int ld = storedCols + pad;
        long one = storedRows == 0 ? 0 : (long)(storedRows - 1) * ld + storedCols;
        if (stride < 0) stride = one;
        var data = KernelLengths.Values((int)((count - 1) * stride + one), seed);
        return new Operand(data, ld, trans, rows, cols);
    }

    /// <summary>Checks C (after) against alpha·op(A)·op(B) + beta·C (before) for batch item offsets.</summary>
    private static void AssertGemm(string what, int m, int n, int k, float alpha, Operand a, long offA, Operand b, long offB,
        float beta, float[] before, float[] after, int ldc, long offC)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, mag = 0;
                for (int p = 0; p < k; p++)
                {
                    double t = a.At(i, p, offA) * b.At(p, j, offB);
                    sum += t;
                    mag += Math.Abs(t);
                }
                double c0 = beta == 0 ? 0 : before[offC + (long)i * ldc + j];
                double expected = alpha * sum + beta * c0;
                double tol = (k + 2) * F32Step * (Math.Abs(alpha) * mag + Math.Abs(beta * c0)) + 1e-30;
                double actual = after[offC + (long)i * ldc + j];
                if (!(Math.Abs(actual - expected) <= tol))
                    Assert.Fail($"{what}: C[{i},{j}] = {actual}, expected {expected} (tolerance {tol:g3})");
            }
    }

    private static void RunCase(InstructionSet isa, int m, int n, int k, bool ta, bool tb, float alpha, float beta, int seed,
        GemmPath path = GemmPath.Auto)
    {
        int pad = seed % 3;
        var a = MakeOperand(m, k, ta, pad, seed);
        var b = MakeOperand(k, n, tb, 2 - pad, seed + 1);
        int ldc = n + pad;
        var c = KernelLengths.Values(Math.Max(0, (m - 1) * ldc + n), seed + 2);
        if (beta == 0) Array.Fill(c, float.NaN);
        var before = (float[])c.Clone();
        Gemm.MultiplyBatched(isa, 1, ta, tb, m, n, k, alpha, a.Data, a.Ld, 0, b.Data, b.Ld, 0, beta, c, ldc, 0, path);
        AssertGemm($"{KernelIsa.Name(isa)} {path} m={m} n={n} k={k} ta={ta} tb={tb} alpha={alpha} beta={beta}",
            m, n, k, alpha, a, 0, b, 0, beta, before, c, ldc, 0);
        for (int i = 0; i + 1 < m; i++)
            for (int j = n; j < ldc; j++)
                Assert.Equal(before[i * ldc + j], c[i * ldc + j]); // padding between rows untouched
    }

    private static readonly (float Alpha, float Beta)[] Scalars = [(1f, 0f), (1f, 1f), (-0.75f, 0.5f), (2f, 0f)];

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [MemberData(nameof(Sizes))]
    public void Multiply_EverySizeAllTransposes_MatchesReference(int s)
    {
        foreach (var isa in Paths)
            for (int t = 0; t < 4; t++)
            {
                bool ta = (t & 1) != 0, tb = (t & 2) != 0;
                var (alpha, beta) = Scalars[(s + t) % Scalars.Length];
                // Auto takes the small-GEMM path at these sizes; the packed loops are forced beside it.
                foreach (var path in new[] { GemmPath.Auto, GemmPath.Packed })
                {
                    RunCase(isa, s, s, s, ta, tb, alpha, beta, seed: s * 8 + t, path);
                    RunCase(isa, s, 68 - s, 2 * s + 1, ta, tb, alpha, beta, seed: s * 8 + t + 4, path);
                }
            }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Multiply_DirectPathEachDimension1To67AllTransposes_MatchesReference(int s)
    {
        // The small-GEMM path forced: one dimension runs 1..67 (partial row and column panels, short
        // depths) while the others stay at the 64 of a narrow layer, in the three layouts of a linear
        // layer (x·Wᵀ, g·W, gᵀ·x) and the fourth.
        foreach (var isa in Paths)
            for (int t = 0; t < 4; t++)
            {
                bool ta = (t & 1) != 0, tb = (t & 2) != 0;
                var (alpha, beta) = Scalars[(s + t) % Scalars.Length];
                int seed = s * 16 + t * 4;
                RunCase(isa, s, 64, 64, ta, tb, alpha, beta, seed, GemmPath.Direct);
                RunCase(isa, 64, s, 64, ta, tb, alpha, beta, seed + 1, GemmPath.Direct);
                RunCase(isa, 64, 64, s, ta, tb, alpha, beta, seed + 2, GemmPath.Direct);
                RunCase(isa, s, 68 - s, s + 5, ta, tb, alpha, beta, seed + 3, GemmPath.Direct);
            }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(64, 64, 784, false, true)]  // first layer forward of mlp-deep-narrow, several k blocks
    [InlineData(64, 784, 64, true, false)]  // its weight gradient
    [InlineData(37, 45, 600, false, false)]
    [InlineData(29, 70, 513, true, true)]
    [InlineData(200, 3, 257, true, false)]
    public void Multiply_DirectPathDeepOrLarge_MatchesReference(int m, int n, int k, bool ta, bool tb)
    {
        foreach (var isa in Paths)
        {
            RunCase(isa, m, n, k, ta, tb, 1f, 0f, seed: m + n, GemmPath.Direct);
            RunCase(isa, m, n, k, ta, tb, -0.5f, 1f, seed: m + k, GemmPath.Direct);
            RunCase(isa, m, n, k, ta, tb, 2f, -0.25f, seed: n + k, GemmPath.Direct);
        }
    }

    public static TheoryData<int, int, int> DirectVersusPacked => new()
    {
        { 1, 1, 1 }, { 5, 7, 3 }, { 6, 16, 8 }, { 13, 17, 19 }, { 64, 64, 64 }, { 64, 10, 64 }, { 10, 64, 64 },
        { 64, 64, 10 }, { 67, 66, 65 }, { 64, 64, 784 }, { 64, 784, 64 }, { 7, 33, 300 }, { 130, 40, 513 },
    };

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [MemberData(nameof(DirectVersusPacked))]
    public void Multiply_DirectAndPackedPaths_AreBitwiseIdentical(int m, int n, int k)
    {
        // Same tiles, k blocks and epilogues: reading the operands in place must not change one bit,
        // with beta 0, 1, other, and with the bias epilogue.
        foreach (var isa in Paths)
            for (int t = 0; t < 4; t++)
            {
                bool ta = (t & 1) != 0, tb = (t & 2) != 0;
                var a = MakeOperand(m, k, ta, t % 2, seed: m + t);
                var b = MakeOperand(k, n, tb, 1, seed: n + 2 * t);
                var bias = KernelLengths.Values(n, seed: k);
                int ldc = n + 1;
                var c0 = KernelLengths.Values(m * ldc, seed: m * n + t);
                foreach (var (alpha, beta) in Scalars)
                {
                    float[] Run(GemmPath path)
                    {
                        var c = (float[])c0.Clone();
                        Gemm.MultiplyBatched(isa, 1, ta, tb, m, n, k, alpha, a.Data, a.Ld, 0, b.Data, b.Ld, 0, beta, c, ldc, 0, path);
                        return c;
                    }
                    AssertBitwise($"{KernelIsa.Name(isa)} m={m} n={n} k={k} ta={ta} tb={tb} alpha={alpha} beta={beta}", Run(GemmPath.Packed), Run(GemmPath.Direct));
                }
                float[] RunBias(GemmPath path)
                {
                    var c = (float[])c0.Clone();
                    Gemm.Multiply(isa, path, ta, tb, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, bias, c, ldc);
                    return c;
                }
                AssertBitwise($"{KernelIsa.Name(isa)} bias m={m} n={n} k={k} ta={ta} tb={tb}", RunBias(GemmPath.Packed), RunBias(GemmPath.Direct));
            }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(1, 8)]
    [InlineData(13, 16)]
    [InlineData(40, 8)]
    [InlineData(128, 64)]
    [InlineData(30, 600)] // deeper than one k block: the structure of A is not used, the numbers are the same
    public void Multiply_CausalStructure_SkipsOnlyZerosAndUnneededTiles_BitwiseAsTheFullProduct(int t, int d)
    {
        // Causal attention's products: S = Q·Kᵀ needs C's lower triangle only; O = P·V and dQ = dS·K have op(A) zero
        // right of the diagonal, dV = Pᵀ·dO and dK = dSᵀ·Q zero left of it. The direct loops skip those tiles and
        // depths, which must give the full product's bits (finite operands: only exact zero terms are left out).
        foreach (var isa in Paths)
            foreach (bool ta in new[] { false, true })
            {
                foreach (var causal in new[] { GemmCausal.ALower, GemmCausal.AUpper })
                {
                    var a = MakeOperand(t, t, ta, 1, seed: t + d);
                    for (int i = 0; i < t; i++)
                        for (int q = 0; q < t; q++)
                            if (causal == GemmCausal.ALower ? q > i : q < i) a.Data[ta ? q * a.Ld + i : i * a.Ld + q] = 0;
                    var b = MakeOperand(t, d, false, 2, seed: d);
                    float[] Run(GemmCausal structure)
                    {
                        var c = Enumerable.Repeat(float.NaN, t * d).ToArray();
                        Gemm.MultiplyBatched(isa, 1, ta, false, t, d, t, 1f, a.Data, a.Ld, 0, b.Data, b.Ld, 0, 0f, c, d, 0, GemmPath.Direct, structure);
                        return c;
                    }
                    AssertBitwise($"{KernelIsa.Name(isa)} {causal} t={t} d={d} ta={ta}", Run(GemmCausal.None), Run(causal));
                }
                var x = MakeOperand(t, d, ta, 1, seed: 3 * t);
                var y = MakeOperand(d, t, true, 0, seed: 5 * d);
                float[] Scores(GemmCausal structure)
                {
                    var c = Enumerable.Repeat(float.NaN, t * t).ToArray();
                    Gemm.MultiplyBatched(isa, 1, ta, true, t, t, d, 0.5f, x.Data, x.Ld, 0, y.Data, y.Ld, 0, 0f, c, t, 0, GemmPath.Direct, structure);
                    return c;
                }
                var full = Scores(GemmCausal.None);
                var lower = Scores(GemmCausal.LowerC);
                for (int i = 0; i < t; i++)
                    for (int j = 0; j <= i; j++)
                        if (BitConverter.SingleToInt32Bits(full[i * t + j]) != BitConverter.SingleToInt32Bits(lower[i * t + j]))
                            Assert.Fail($"{KernelIsa.Name(isa)} LowerC t={t} d={d} ta={ta}: S[{i}, {j}] is {lower[i * t + j]:R}, full product {full[i * t + j]:R}");
                if (t >= 40) Assert.Contains(lower, float.IsNaN); // tiles above the diagonal were skipped, as they may be
            }
    }

    private static void AssertBitwise(string what, float[] expected, float[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, packed path {expected[i]:R}");
    }

    public static TheoryData<int, int, int, bool, bool> Large => new()
    {
        { 128, 257, 513, false, false },
        { 257, 513, 128, true, false },
        { 513, 128, 257, false, true },
        { 257, 257, 300, true, true },
        { 3, 4100, 5, false, true },   // more than one NC block of columns
        { 2, 300, 600, true, false },  // few rows: columns split into chunks
        { 40, 70, 2600, true, false }, // deep, small output: cut along k into parts summed in order (a weight gradient)
        { 300, 9, 3000, false, true },
        { 460, 20, 2100, true, false }, // cut along k although its rows are more than 3 MC blocks (a transformer's qkv dW)
    };

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [MemberData(nameof(Large))]
    public void Multiply_LargeMixedShapes_MatchesReference(int m, int n, int k, bool ta, bool tb)
    {
        foreach (var isa in Paths)
        {
            RunCase(isa, m, n, k, ta, tb, 1f, 0f, seed: m + n, GemmPath.Packed);
            RunCase(isa, m, n, k, ta, tb, -0.5f, 1f, seed: m + k, GemmPath.Packed);
        }
    }

    [Fact]
    public void Multiply_Avx512TileEvenWhereUnsupported_MatchesReference()
    {
        // The AVX-512 path is written with Vector512, so it also runs (emulated) where the CPU lacks it.
        foreach (var path in new[] { GemmPath.Packed, GemmPath.Direct })
            foreach (int s in new[] { 1, 11, 13, 33, 45 })
                RunCase(InstructionSet.Avx512, s, s + 31, s + 2, s % 2 == 0, s % 3 == 0, 1.5f, s % 2 == 0 ? 0f : 1f, seed: s, path);
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(0, 0f, 0f)]
    [InlineData(0, 2f, -3f)]
    [InlineData(5, 0f, 0.5f)]
    public void Multiply_ZeroDepthOrZeroAlpha_ScalesCByBeta(int k, float alpha, float beta)
    {
        const int m = 3, n = 4;
        foreach (var isa in Paths)
        {
            var a = Enumerable.Repeat(float.NaN, m * Math.Max(k, 1)).ToArray(); // not read
            var b = Enumerable.Repeat(float.NaN, Math.Max(k, 1) * n).ToArray();
            var c = KernelLengths.Values(m * n, seed: 3);
            var before = (float[])c.Clone();
            if (beta == 0) Array.Fill(c, float.NaN);
            Gemm.MultiplyBatched(isa, 1, false, false, m, n, k, alpha, a, Math.Max(k, 1), 0, b, n, 0, beta, c, n, 0);
            for (int i = 0; i < c.Length; i++) Assert.Equal(beta * before[i], c[i]);
        }
    }

    public static TheoryData<int, int, int, int, bool, bool> Batches => new()
    {
        { 3, 5, 7, 9, false, false },   // tiny items, one thread
        { 40, 20, 21, 22, true, false }, // small items, split by item
        { 2, 130, 131, 129, false, true }, // large items, split by tiles
    };

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [MemberData(nameof(Batches))]
    public void MultiplyBatched_SharedAndStridedOperands_MatchesReference(int count, int m, int n, int k, bool ta, bool tb)
    {
        foreach (var isa in Paths)
            for (int shared = 0; shared < 3; shared++)
            {
                // shared = 0: all strided; 1: A shared (stride 0); 2: B shared.
                var a = MakeOperand(m, k, ta, 1, seed: count + shared, count: shared == 1 ? 1 : count);
                var b = MakeOperand(k, n, tb, 0, seed: count + 7, count: shared == 2 ? 1 : count);
                long sa = shared == 1 ? 0 : a.Data.Length / count, sb = shared == 2 ? 0 : b.Data.Length / count;
                int ldc = n;
                long sc = (long)m * n + 3;
                var c = KernelLengths.Values((int)(sc * count), seed: 5);
                var before = (float[])c.Clone();
                float beta = shared == 0 ? 0f : 1f;
                Gemm.MultiplyBatched(isa, count, ta, tb, m, n, k, 0.5f, a.Data, a.Ld, sa, b.Data, b.Ld, sb, beta, c, ldc, sc);
                for (int i = 0; i < count; i++)
                    AssertGemm($"{KernelIsa.Name(isa)} batch item {i} shared={shared}", m, n, k, 0.5f, a, i * sa, b, i * sb, beta, before, c, ldc, i * sc);
                for (int i = 0; i < count; i++)
                    for (long g = i * sc + (long)m * n; g < (i + 1) * sc; g++) Assert.Equal(before[g], c[g]); // gaps untouched
            }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 9, 5)]
    [InlineData(33, 17, 40)]
    [InlineData(67, 66, 65)]
    [InlineData(150, 70, 300)]
    public void Multiply_Float64AllTransposes_MatchesReference(int m, int n, int k)
    {
        foreach (var isa in Paths)
            for (int t = 0; t < 4; t++)
            {
                bool ta = (t & 1) != 0, tb = (t & 2) != 0;
                var rng = new Random(m * 100 + t);
                double[] Fill(int len) => Enumerable.Range(0, len).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
                var a = Fill(m * k);
                var b = Fill(k * n);
                var c = Fill(m * n);
                var before = (double[])c.Clone();
                double alpha = 1.25, beta = t == 0 ? 0 : -0.5;
                if (beta == 0) Array.Fill(c, double.NaN);
                Gemm.MultiplyBatched(isa, 1, ta, tb, m, n, k, alpha, a, ta ? m : k, 0, b, tb ? k : n, 0, beta, c, n, 0);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double sum = 0, mag = 0;
                        for (int p = 0; p < k; p++)
                        {
                            double x = (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                            sum += x;
                            mag += Math.Abs(x);
                        }
                        double c0 = beta == 0 ? 0 : before[i * n + j];
                        double expected = alpha * sum + beta * c0;
                        double tol = (k + 2) * F64Step * (alpha * mag + Math.Abs(beta * c0));
                        Assert.True(Math.Abs(c[i * n + j] - expected) <= tol,
                            $"{KernelIsa.Name(isa)} m={m} n={n} k={k} t={t}: C[{i},{j}] = {c[i * n + j]}, expected {expected}");
                    }
            }
    }

    [Fact]
    public void Multiply_PublicOverloads_UseTheBestPath()
    {
        var a = new float[] { 1, 2, 3, 4, 5, 6 };      // 2×3
        var b = new float[] { 7, 8, 9, 10, 11, 12 };   // 3×2
        var c = new float[4];
        Gemm.Multiply(false, false, 2, 2, 3, 1f, a, 3, b, 2, 0f, c, 2);
        Assert.Equal([58f, 64f, 139f, 154f], c);
        var cd = new double[] { 1, 1, 1, 1 };
        Gemm.Multiply(true, true, 2, 2, 3, 1.0, [1.0, 4, 2, 5, 3, 6], 2, [7.0, 9, 11, 8, 10, 12], 3, 1.0, cd, 2);
        Assert.Equal([59.0, 65, 140, 155], cd);
    }

    [Fact]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    public void Multiply_AnyThreadCount_BitwiseIdentical()
    {
        try
        {
            foreach (var isa in Paths)
                // packed loops; the small-GEMM path split into column chunks (2: 128×64×128, the smallest product split; 8
                // with a partial last panel); batched
                // (packing B is cut along the depth when it has few column panels: 300×290×520, both layouts of B; column
                // chunks share one packed A, packed by the packing job: 3×700×300 and 200×600×700, also rounded to bf16;
                // 40×70×2600 and 460×20×2100 are cut along k into parts that run on different threads; 150×300×600 spreads
                // its k blocks' tasks over the threads (too few column panels for slabs); 200×600×700 and 700×300×200 are
                // cut into a slab of column or row panels per thread, partial last panels included)
                foreach (var (count, m, n, k) in new[] { (1, 300, 290, 520), (1, 3, 700, 300), (1, 200, 600, 700), (1, 150, 300, 600), (1, 700, 300, 200), (1, 40, 70, 2600), (1, 460, 20, 2100), (1, 128, 64, 128), (1, 64, 784, 70), (48, 30, 31, 32) })
                foreach (bool transB in new[] { false, true })
                foreach (bool bf16 in new[] { false, true })
                {
                    var a = KernelLengths.Values(count * m * k, seed: m);
                    var b = KernelLengths.Values(count * k * n, seed: n);
                    float[] Run(int threads)
                    {
                        KernelThreads.SetCount(threads);
                        using var precision = BFloat16.OperandsScope(bf16);
                        var c = new float[count * m * n];
                        Gemm.MultiplyBatched(isa, count, true, transB, m, n, k, 1f, a, m, (long)m * k, b, transB ? k : n, (long)k * n, 0f, c, n, (long)m * n);
                        return c;
                    }
                    var one = Run(1);
                    var two = Run(2);
                    var three = Run(3);
                    Assert.Equal(one, two);
                    Assert.Equal(one, three);
                }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(700, 300, 200)]  // slabs of row panels (m ≥ n), the last panel partial
    [InlineData(100, 1000, 400)] // slabs of column panels, the last panel partial
    [InlineData(257, 513, 130)]  // both partial, k over one block
    public void Multiply_SlabsPerThread_BitwiseAsOneThreadWithBiasAndActivation(int m, int n, int k)
    {
        // A large product is cut into a slab of rows or columns per thread, each slab offsetting A or B, C and the bias:
        // with 2 and 3 threads it must give the one-thread product bit for bit, bias and activation epilogue included,
        // and leave C outside m×n alone.
        try
        {
            foreach (var isa in Paths)
                foreach (bool ta in new[] { false, true })
                    foreach (bool tb in new[] { false, true })
                    {
                        var a = MakeOperand(m, k, ta, 1, 41);
                        var b = MakeOperand(k, n, tb, 2, 42);
                        var bias = KernelLengths.Values(n, 43);
                        int ldc = n + 5;
                        float[] Run(int threads)
                        {
                            KernelThreads.SetCount(threads);
                            var c = Enumerable.Repeat(-7f, m * ldc).ToArray();
                            Gemm.Multiply(isa, GemmPath.Auto, ta, tb, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, bias, c, ldc, FusedActivation.Tanh);
                            return c;
                        }
                        var one = Run(1);
                        for (int i = 0; i < m; i++)
                            for (int j = n; j < ldc; j++)
                                Assert.Equal(-7f, one[i * ldc + j]);
                        Assert.Equal(one, Run(2));
                        Assert.Equal(one, Run(3));
                    }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    /// <summary>
    /// Runs the packed loops on one product under each setting (applied before the run): beta 0, 1 and 0.5, and a bias with a tanh
    /// epilogue, on 1 and 2 threads; every setting must give the first one's bits.
    /// </summary>
    private static void AssertSettingsBitwise(string what, InstructionSet isa, int m, int n, int k, bool transA, bool transB, int pad, int seed,
        params (string Name, Action Apply)[] settings)
    {
        var a = MakeOperand(m, k, transA, pad, seed);
        var b = MakeOperand(k, n, transB, 1 + pad % 2, seed + 1);
        var bias = KernelLengths.Values(n, seed + 2);
        int ldc = n + 2;
        var c0 = KernelLengths.Values(m * ldc, seed + 3);
        float[] Run(Action setting, int threads, float beta, bool epilogue)
        {
            setting();
            KernelThreads.SetCount(threads);
            var c = (float[])c0.Clone();
            if (epilogue)
                Gemm.Multiply(isa, GemmPath.Packed, transA, transB, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, bias, c, ldc, FusedActivation.Tanh);
            else
                Gemm.MultiplyBatched(isa, 1, transA, transB, m, n, k, -0.75f, a.Data, a.Ld, 0, b.Data, b.Ld, 0, beta, c, ldc, 0, GemmPath.Packed);
            return c;
        }
        foreach (int threads in new[] { 1, 2 })
            foreach (var (beta, epilogue) in new[] { (0f, false), (1f, false), (0.5f, false), (0f, true) })
            {
                var first = Run(settings[0].Apply, threads, beta, epilogue);
                foreach (var (name, apply) in settings.Skip(1))
                    AssertBitwise($"{what} {name} against {settings[0].Name}, threads={threads} beta={beta} epilogue={epilogue}",
                        first, Run(apply, threads, beta, epilogue));
            }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(150, 700, 1100)] // three k blocks of every tile, the last row and column panels partial
    [InlineData(700, 300, 200)]  // slabs of rows (2 threads), one k block
    [InlineData(37, 2000, 90)]   // few row panels: column chunks sharing a packed A (2 threads)
    public void Multiply_SubBlocksOfAnySize_BitwiseAsColumnPanelsOutermost(int m, int n, int k)
    {
        // The packed loops visit a task's tiles by sub-blocks of B panels, the row panels inside each: any sub-block size gives
        // each tile the same operations (1 is the former order, column panels outermost), so the product must not change one bit,
        // with beta 0, 1 and other, a bias and activation epilogue, on 1 and 2 threads, on every instruction-set path.
        try
        {
            foreach (var isa in Paths)
            {
                AssertSettingsBitwise($"{KernelIsa.Name(isa)} m={m} n={n} k={k}", isa, m, n, k, transA: true, transB: false, pad: 1, seed: m + 3,
                    ("column panels outermost", () => Gemm.SubBlockPanels = 1), ("sub-blocks of 3", () => Gemm.SubBlockPanels = 3),
                    ("one sub-block", () => Gemm.SubBlockPanels = 1000));
                Gemm.SubBlockPanels = 0;
                RunCase(isa, m, n, k, true, false, 1f, 0.5f, seed: m, GemmPath.Packed);
            }
        }
        finally
        {
            Gemm.SubBlockPanels = 0;
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(1000, 300, 256, 0)] // rows 1 KiB apart (in place), slabs of rows, the last row panel partial (1000 = 83·12 + 4)
    [InlineData(203, 70, 768, 0)]   // rows 3 KiB apart (in place), k over one block, one thread's loops
    [InlineData(150, 90, 1024, 0)]  // rows 4 KiB apart: packed either way (all rows of a tile in one L1 set group)
    [InlineData(131, 40, 256, 3)]   // padded rows (1 036 bytes apart): in place
    public void Multiply_AReadInPlace_BitwiseAsPackedA(int m, int n, int k, int pad)
    {
        // The packed loops read a non-transposed A in place when its rows are not a multiple of 4 KiB apart, packing only
        // a last partial row panel: the same tiles, k blocks and epilogues, so the result must not change one bit (beta 0,
        // 1 and other, bias and activation epilogues, 1 and 2 threads).
        try
        {
            foreach (var isa in Paths)
            {
                AssertSettingsBitwise($"{KernelIsa.Name(isa)} m={m} n={n} k={k} pad={pad}", isa, m, n, k, transA: false, transB: true, pad, seed: m + k,
                    ("packed A", () => Gemm.InPlaceA = false), ("A in place", () => Gemm.InPlaceA = true));
                Gemm.InPlaceA = true;
                RunCase(isa, m, n, k, false, false, 1f, 0f, seed: m, GemmPath.Packed);
            }
        }
        finally
        {
            Gemm.InPlaceA = true;
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(256, 256, 4096, true)]  // a weight gradient dYᵀ·X: cut along k into parts, each with its own sums
    [InlineData(700, 300, 200, true)]   // slabs of rows, the last row panel partial
    [InlineData(100, 1000, 400, true)]  // slabs of columns: only the slab at column 0 sums
    [InlineData(300, 5000, 40, false)]  // more than one column block (NC): only the first sums
    [InlineData(37, 23, 600, true)]     // the small-GEMM loops (A read in place, summed on the side)
    [InlineData(150, 90, 1100, false)]  // A not transposed, three k blocks, one thread's loops
    [InlineData(40, 0, 30, true)]       // no columns: sums only
    [InlineData(40, 30, 0, false)]      // no depth: zero sums
    public void Multiply_RowSumsOfOpA_AreTheSumsAndLeaveTheProductBitwiseAlone(int m, int n, int k, bool ta)
    {
        // sumsA[i] = Σ_p op(A)[i, p], taken from the packed panels: within the dot-product bound of the double sums, the
        // product bitwise that of the plain call, and the same bits for 1, 2 and 3 threads (the cut depends on the shape).
        try
        {
            foreach (var isa in Paths)
            {
                var a = MakeOperand(m, k, ta, 1, m + n + k);
                var b = MakeOperand(k, n, false, 2, k);
                int ldc = n + 1;
                var c0 = KernelLengths.Values(Math.Max(1, m * ldc), n + 7);
                float[] Plain()
                {
                    var c = (float[])c0.Clone();
                    Gemm.MultiplyBatched(isa, 1, ta, false, m, n, k, 0.5f, a.Data, a.Ld, 0, b.Data, b.Ld, 0, 0.25f, c, ldc, 0);
                    return c;
                }
                (float[] C, float[] Sums) WithSums(int threads)
                {
                    KernelThreads.SetCount(threads);
                    var c = (float[])c0.Clone();
                    var sums = Enumerable.Repeat(float.NaN, m + 3).ToArray(); // written, not accumulated; the tail left alone
                    Gemm.Multiply(isa, GemmPath.Auto, ta, false, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, 0.25f, c, ldc, sums);
                    return (c, sums);
                }
                SuiteSetup.RestoreKernelThreads();
                var plain = Plain();
                var (c1, s1) = WithSums(1);
                string what = $"{KernelIsa.Name(isa)} m={m} n={n} k={k} ta={ta}";
                AssertBitwise(what + " C", plain, c1);
                for (int i = 0; i < m; i++)
                {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < k; p++) { sum += a.At(i, p); mag += Math.Abs(a.At(i, p)); }
                    double tol = (k + 2) * F32Step * mag + 1e-30;
                    if (!(Math.Abs(s1[i] - sum) <= tol)) Assert.Fail($"{what}: sums[{i}] = {s1[i]}, expected {sum} (tolerance {tol:g3})");
                }
                for (int i = m; i < m + 3; i++) Assert.True(float.IsNaN(s1[i]), $"{what}: sums[{i}] beyond m written");
                foreach (int threads in new[] { 2, 3 })
                {
                    var (ct, st) = WithSums(threads);
                    AssertBitwise($"{what} C, {threads} threads", c1, ct);
                    AssertBitwise($"{what} sums, {threads} threads", s1, st);
                }
            }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    public static TheoryData<string, string> BadArguments => new()
    {
        { "m", "negative" },
        { "lda", "lda = 2" },
        { "ldb", "ldb = 3" },
        { "ldc", "ldc = 3" },
        { "a", "need" },
        { "b", "strideB = 12" },
        { "c", "need" },
        { "strideC", "overlap" },
        { "count", "negative" },
    };

    [Theory]
    [MemberData(nameof(BadArguments))]
    public void MultiplyBatched_BadArgument_ThrowsArgumentExceptionNamingIt(string argument, string detail)
    {
        // Valid call: count 2, A 4×3 (lda 3, stride 12), B 3×5 (ldb 5, stride 15), C 4×5 (ldc 5, stride 20).
        int count = 2, m = 4, n = 5, k = 3, lda = 3, ldb = 5, ldc = 5;
        long sa = 12, sb = 15, sc = 20;
        int la = 24, lb = 30, lc = 40;
        switch (argument)
        {
            case "m": m = -1; break;
            case "lda": lda = 2; break;
            case "ldb": ldb = 3; break;
            case "ldc": ldc = 3; break;
            case "a": la = 23; break;
            case "b": sb = 12; lb = 26; break; // needs 12 + 15 = 27
            case "c": lc = 39; break;
            case "strideC": sc = 10; break;
            case "count": count = -2; break;
        }
        var e = Assert.Throws<ArgumentException>(() =>
            Gemm.MultiplyBatched(count, false, false, m, n, k, 1f, new float[la], lda, sa, new float[lb], ldb, sb, 0f, new float[lc], ldc, sc));
        Assert.Contains("gemm", e.Message);
        Assert.Equal(argument, e.ParamName);
        Assert.Contains(detail, e.Message);
    }

    [Fact]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    public void MultiplyBatched_OutputsSideBySideWithinRows_AreAcceptedAndLeaveTheOtherColumnsAlone()
    {
        // three heads' m×n outputs written into one m×(3n + 1) matrix (ldc 3n + 1, strideC n); the last column is not written
        const int count = 3, m = 5, n = 4, k = 6, ldc = count * n + 1;
        var rng = new Random(3);
        var a = Enumerable.Range(0, count * m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, count * k * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var c = Enumerable.Repeat(7f, m * ldc).ToArray();
            Gemm.MultiplyBatched(isa, count, false, false, m, n, k, 1f, a, k, (long)m * k, b, n, (long)k * n, 0f, c, ldc, n);
            for (int h = 0; h < count; h++)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double r = 0;
                        for (int p = 0; p < k; p++) r += a[h * m * k + i * k + p] * (double)b[h * k * n + p * n + j];
                        Assert.True(Math.Abs(c[i * ldc + h * n + j] - r) <= 1e-5 * (1 + Math.Abs(r)), $"{isa} head {h} ({i}, {j}): {c[i * ldc + h * n + j]} vs {r}");
                    }
            for (int i = 0; i < m; i++) Assert.Equal(7f, c[i * ldc + ldc - 1]);
        }
        // one column more per head and they would overlap: refused
        var e = Assert.Throws<ArgumentException>(() => Gemm.MultiplyBatched(count, false, false, m, n + 1, k, 1f, a, k, (long)m * k,
            new float[count * k * (n + 1)], n + 1, (long)k * (n + 1), 0f, new float[m * ldc], ldc, n));
        Assert.Contains("overlap", e.Message);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(6, 16, 8)]
    [InlineData(7, 33, 300)]
    [InlineData(64, 64, 64)]
    [InlineData(13, 50, 0)]
    [InlineData(130, 1030, 260)]
    public void Multiply_WithBias_IsProductPlusBiasOnEveryRowBitwiseAsCopyThenBetaOne(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                var a = MakeOperand(m, k, ta, 1, 11);
                var b = MakeOperand(k, n, tb, 2, 12);
                var bias = KernelLengths.Values(n, 13);
                int ldc = n + 3;
                var fused = Enumerable.Repeat(float.NaN, m * ldc).ToArray();
                Gemm.Multiply(ta, tb, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, bias, fused, ldc);
                var copied = new float[m * ldc];
                for (int i = 0; i < m; i++) bias.CopyTo(copied, i * ldc);
                Gemm.Multiply(ta, tb, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, 1f, copied, ldc);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                        Assert.Equal(copied[i * ldc + j], fused[i * ldc + j]);
            }
    }

    [Theory]
    [Trait(KernelPaths.Trait, KernelPaths.Forced)]
    [InlineData(7, 33, 300)]
    [InlineData(64, 64, 64)]
    [InlineData(13, 50, 0)]
    [InlineData(130, 1030, 260)]
    [InlineData(64, 784, 70)]
    public void Multiply_ActivationEpilogue_IsActivationOfTheBiasedProductOnEveryPath(int m, int n, int k)
    {
        // Both loop structures, every instruction set, with and without bias, k over one and two
        // blocks: the epilogue must equal the activation kernel (itself checked against the formulas
        // in ActivationKernelTests) applied to the finished product (ReLU exactly; tanh and σ within
        // 4 ulps: a tile row may split into vector and scalar lanes differently from a whole row) and
        // must not touch C outside m×n.
        foreach (var isa in Paths)
            foreach (var path in new[] { GemmPath.Packed, GemmPath.Direct })
                foreach (var act in new[] { FusedActivation.Relu, FusedActivation.Tanh, FusedActivation.Sigmoid })
                    foreach (bool withBias in new[] { false, true })
                    {
                        var a = MakeOperand(m, k, false, 1, 31);
                        var b = MakeOperand(k, n, true, 2, 32);
                        var bias = withBias ? KernelLengths.Values(n, 33) : [];
                        int ldc = n + 3;
                        var fused = Enumerable.Repeat(-7f, m * ldc).ToArray();
                        Gemm.Multiply(isa, path, false, true, m, n, k, 0.5f, a.Data, a.Ld, b.Data, b.Ld, bias, fused, ldc, act);
                        var plain = new float[m * ldc];
                        for (int i = 0; i < m; i++) if (withBias) bias.CopyTo(plain, i * ldc);
                        Gemm.MultiplyBatched(isa, 1, false, true, m, n, k, 0.5f, a.Data, a.Ld, 0, b.Data, b.Ld, 0, withBias ? 1f : 0f, plain, ldc, 0, path);
                        for (int i = 0; i < m; i++)
                        {
                            var row = plain.AsSpan(i * ldc, n);
                            switch (act)
                            {
                                case FusedActivation.Relu: ActivationKernels.Relu<float>(row, row); break;
                                case FusedActivation.Tanh: ActivationKernels.Tanh<float>(row, row); break;
                                default: ActivationKernels.Sigmoid<float>(row, row); break;
                            }
                            for (int j = 0; j < n; j++)
                            {
                                float want = row[j];
                                float got = fused[i * ldc + j];
                                double ulp = Math.Max(MathF.BitIncrement(Math.Abs(want)) - Math.Abs(want), float.Epsilon);
                                double tol = act == FusedActivation.Relu ? 0 : 4 * ulp;
                                Assert.True(Math.Abs(got - want) <= tol,
                                    $"{KernelIsa.Name(isa)} {path} {act} bias={withBias} m={m} n={n} k={k} at ({i}, {j}): {got:R}, expected {want:R}");
                            }
                            for (int j = n; j < ldc && i * ldc + j < fused.Length; j++) Assert.Equal(-7f, fused[i * ldc + j]);
                        }
                    }
    }

    [Fact]
    public void Multiply_BiasShorterThanN_NamesBias()
    {
        var e = Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 2, 3, 2, 1f, new float[4], 2, new float[6], 3, new float[2], new float[6], 3));
        Assert.Equal("bias", e.ParamName);
    }

    [Fact]
    public void Multiply_RowSumsShorterThanM_NamesSumsA_AndEmptyAsksForNone()
    {
        var e = Assert.Throws<ArgumentException>(() => Gemm.Multiply(false, false, 2, 3, 2, 1f, new float[4], 2, new float[6], 3, 0f, new float[6], 3, new float[1]));
        Assert.Equal("sumsA", e.ParamName);
        var a = KernelLengths.Values(300 * 200, 1);
        var b = KernelLengths.Values(300 * 90, 2);
        var plain = new float[200 * 90];
        var none = new float[200 * 90];
        Gemm.Multiply(true, false, 200, 90, 300, 1f, a, 200, b, 90, 0f, plain, 90);
        Gemm.Multiply(true, false, 200, 90, 300, 1f, a, 200, b, 90, 0f, none, 90, Span<float>.Empty);
        AssertBitwise("empty sumsA", plain, none);
    }
}
