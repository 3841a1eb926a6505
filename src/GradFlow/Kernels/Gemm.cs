using System.Numerics;
using System.Runtime.CompilerServices;

namespace GradFlow.Kernels;

/// <summary>
/// General matrix multiply, row-major: <c>C = alpha·op(A)·op(B) + beta·C</c> with <c>op(X) = X</c> or
/// <c>Xᵀ</c>, op(A) of shape m×k, op(B) k×n, C m×n. The engine's hot path (Linear, matmul and their
/// backward passes).
/// </summary>
/// <remarks>
/// <para>
/// Layout: element (i, j) of a row-major matrix with leading dimension <c>ld</c> is at
/// <c>i·ld + j</c>. A is stored m×k (lda ≥ k), or k×m when <c>transA</c> (lda ≥ m); B is stored k×n
/// (ldb ≥ n), or n×k when <c>transB</c> (ldb ≥ k); C is m×n (ldc ≥ n). With <c>beta = 0</c>, C is
/// only written, never read (it may hold NaN). With <c>k = 0</c> or <c>alpha = 0</c>, C = beta·C
/// (BLAS convention: A and B are then not read).
/// </para>
/// <para>
/// Algorithm (GotoBLAS / BLIS): for each block of NC columns and each block of KC of the inner
/// dimension, a KC×NC block of op(B) is packed into NR-wide column panels (contiguous, zero-padded),
/// then each MC×KC block of op(A) is packed into MR-high row panels, and a register-tile
/// micro-kernel computes MR×NR of C per call from one A panel and one B panel. The packed B
/// micro-panel (KC·NR elements) stays in L1 or L2 across the row panels, the packed A block (MC·KC) in L2 and the packed B
/// block in L3; where the tiles read a C larger than the L2, the row panels run inside sub-blocks of B panels instead
/// (a quarter of the L2, <c>GemmDriver.SubBlocksFor</c>), so that C is visited along its rows. Transposes are absorbed by the packing, never materialised. Tile shapes by path:
/// AVX-512 12×32, AVX2 6×16, portable 4×8 (float); 4×8 / 4×4 (double); see GemmKernels.cs.
/// </para>
/// <para>
/// Threads: work is split into tasks by shape only (row panels of C, and column chunks when C has
/// few rows; whole batch items for small batched problems); each task owns its C tile, and every
/// C element accumulates its k blocks in the same order on any thread, so results are bitwise
/// identical for any <see cref="KernelThreads.Count"/>. Problems below 2²⁰ multiply-adds run on the
/// calling thread.
/// </para>
/// <para>
/// Small GEMMs (up to <see cref="DirectMacs"/> multiply-adds and at most one MC block of rows, e.g.
/// the 64×64×64 products of a narrow layer or a recurrent step) take a direct path: the same tiles and
/// k blocks, but op(A) and untransposed op(B) are read in place by a strided variant of the
/// micro-kernel (only a transposed B, a partial last column panel and a partial last row panel are
/// packed), its column panels split into an even number of chunks (by shape) for the kernel threads.
/// It computes the same bits as the packed loops.
/// </para>
/// </remarks>
public static class Gemm
{
    /// <summary>
    /// Multiply-adds below which a problem stays on the calling thread (2²⁰: 10-20 µs of one core's work). Measured on a
    /// 2-core Zen 5 (interleaved benchmark children, 4 rounds): mlp-deep-narrow, whose step is 96 products of 64³, ran at
    /// 870-895 steps/s with them split over both threads (the former threshold, 64³) and at 1 336-1 382 with them on the
    /// calling thread, faster than on one thread (1 140): two chunks of ~3 µs do not pay for the hand-over and the join.
    /// </summary>
    internal const long ParallelThreshold = 1L << 20;

    /// <summary>
    /// Multiply-adds up to which a matrix of at most MC rows takes the small-GEMM path (operands read in
    /// place; 2²² ≈ 64×64×1024): there the packing costs a large share of the multiply.
    /// </summary>
    internal const long DirectMacs = 1L << 22;

    /// <summary>Columns of packed B per block (KC·NC·4 bytes = 4 MiB at KC = 256, 8 MiB at the AVX-512 tile's KC = 512: sized for L3).</summary>
    internal const int NC = 4096;

    /// <summary>Whether the packed loops may read a non-transposed A in place (<c>GemmDriver.ReadsAInPlace</c>); off only for the profile's and the tests' A/B.</summary>
    internal static bool InPlaceA = true;

    /// <summary>B micro-panels per sub-block of the packed loops, forced for every product (<c>GemmDriver.SubBlocksFor</c>); 0, the default, lets the rule choose. Set only by tests and the profile's A/B.</summary>
    internal static int SubBlockPanels = 0;

    /// <summary><c>C = alpha·op(A)·op(B) + beta·C</c> for one float32 matrix; see <see cref="Gemm"/>.</summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        MultiplyBatched(1, transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0);

    /// <summary>
    /// <c>C = alpha·op(A)·op(B) + 1·bias</c> for one float32 matrix, the bias row vector (n elements)
    /// added to every row in the epilogue of the first k block (C is only written, never read): the
    /// forward of a linear layer without a separate pass that first copies the bias into C.
    /// </summary>
    /// <exception cref="ArgumentException">as <see cref="MultiplyBatched(int, bool, bool, int, int, int, float, ReadOnlySpan{float}, int, long, ReadOnlySpan{float}, int, long, float, Span{float}, int, long)"/>, or when bias has fewer than n elements.</exception>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, ReadOnlySpan<float> bias, Span<float> c, int ldc) =>
        Multiply(KernelIsa.Best, GemmPath.Auto, transA, transB, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc);

    /// <summary>
    /// <c>C = act(alpha·op(A)·op(B) + bias)</c> for one float32 matrix: the product of
    /// <see cref="Multiply(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, ReadOnlySpan{float}, Span{float}, int)"/>
    /// (an empty <paramref name="bias"/> adds none) with <paramref name="activation"/> applied to each
    /// tile of C in the epilogue (C is only written): a linear layer and its activation in one pass.
    /// </summary>
    /// <exception cref="ArgumentException">as the bias overload (a non-empty bias must have at least n elements).</exception>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, ReadOnlySpan<float> bias, Span<float> c, int ldc, FusedActivation activation) =>
        Multiply(KernelIsa.Best, GemmPath.Auto, transA, transB, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc, activation);

    /// <summary>The bias overload on an explicit path and loop structure (tests compare them); an empty bias adds none.</summary>
    internal static unsafe void Multiply(InstructionSet isa, GemmPath path, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, ReadOnlySpan<float> bias, Span<float> c, int ldc,
        FusedActivation activation = FusedActivation.None)
    {
        Validate(1, transA, transB, m, n, k, a.Length, lda, 0, b.Length, ldb, 0, c.Length, ldc, 0);
        bool hasBias = activation == FusedActivation.None || !bias.IsEmpty;
        if (hasBias && bias.Length < n) throw new ArgumentException($"gemm: bias has {bias.Length} elements but C has n = {n} columns.", nameof(bias));
        if (!Enum.IsDefined(activation)) throw new ArgumentException($"gemm: unknown activation {(int)activation}.", nameof(activation));
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c, pbias = bias)
        {
            var p = new Problem<float>(1, transA, transB, m, n, k, alpha, pa, lda, 0, pb, ldb, 0, 0f, pc, ldc, 0, hasBias ? pbias : null, activation)
                { RoundBf16 = BFloat16.Operands };
            if (k == 0 || alpha == 0)
            {
                for (int i = 0; i < m; i++)
                {
                    var row = c.Slice(i * ldc, n);
                    if (hasBias) bias[..n].CopyTo(row);
                    else row.Clear();
                    GemmEpilogue.Apply(activation, row);
                }
                return;
            }
            Run(isa, p, path);
        }
    }

    /// <summary>
    /// <c>C = alpha·op(A)·op(B) + beta·C</c> for one float32 matrix, and <c>sumsA[i] = Σ_p op(A)[i, p]</c> for i &lt; m
    /// (alpha not applied), summed from op(A)'s packed row panels while they are in cache: a linear layer's weight
    /// gradient <c>dW = dYᵀ·X</c> gives its bias gradient <c>db = Σ_rows dY</c> without a pass of its own over dY. An
    /// empty <paramref name="sumsA"/> asks for none (the plain product).
    /// </summary>
    /// <exception cref="ArgumentException">as <see cref="Multiply(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>, or when a non-empty sumsA has fewer than m elements.</exception>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, Span<float> sumsA) =>
        Multiply(KernelIsa.Best, GemmPath.Auto, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, sumsA);

    /// <summary>The row-sums overload on an explicit path (tests compare them).</summary>
    internal static unsafe void Multiply(InstructionSet isa, GemmPath path, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, Span<float> sumsA)
    {
        Validate(1, transA, transB, m, n, k, a.Length, lda, 0, b.Length, ldb, 0, c.Length, ldc, 0);
        if (!sumsA.IsEmpty && sumsA.Length < m)
            throw new ArgumentException($"gemm: sumsA has {sumsA.Length} elements but op(A) has m = {m} rows.", nameof(sumsA));
        if (m == 0 || n == 0 && sumsA.IsEmpty) return;
        fixed (float* pa = a, pb = b, pc = c, ps = sumsA)
        {
            var p = new Problem<float>(1, transA, transB, m, n, k, alpha, pa, lda, 0, pb, ldb, 0, beta, pc, ldc, 0)
                { RoundBf16 = BFloat16.Operands, SumsA = sumsA.IsEmpty ? null : ps };
            Run(isa, p, path);
        }
    }

    /// <summary><c>C = alpha·op(A)·op(B) + beta·C</c> for one float64 matrix; see <see cref="Gemm"/>.</summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, double alpha, ReadOnlySpan<double> a, int lda,
        ReadOnlySpan<double> b, int ldb, double beta, Span<double> c, int ldc) =>
        MultiplyBatched(1, transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0);

    /// <summary>
    /// For each batch item i in [0, count): <c>C_i = alpha·op(A_i)·op(B_i) + beta·C_i</c> with
    /// <c>A_i = a[i·strideA ..]</c>, <c>B_i = b[i·strideB ..]</c>, <c>C_i = c[i·strideC ..]</c>. A stride of
    /// 0 shares that operand across the batch (not allowed for C when count &gt; 1: outputs may not
    /// overlap; they may lie side by side within rows, strideC ≥ n and count·strideC ≤ ldc).
    /// </summary>
    /// <exception cref="ArgumentException">when a size is negative, a leading dimension is too small,
    /// or a span is too short for the stated extents (the message names gemm, the argument and the sizes).</exception>
    public static void MultiplyBatched(int count, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, long strideA, ReadOnlySpan<float> b, int ldb, long strideB,
        float beta, Span<float> c, int ldc, long strideC) =>
        MultiplyBatched(KernelIsa.Best, count, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC);

    /// <inheritdoc cref="MultiplyBatched(int, bool, bool, int, int, int, float, ReadOnlySpan{float}, int, long, ReadOnlySpan{float}, int, long, float, Span{float}, int, long)"/>
    public static void MultiplyBatched(int count, bool transA, bool transB, int m, int n, int k, double alpha,
        ReadOnlySpan<double> a, int lda, long strideA, ReadOnlySpan<double> b, int ldb, long strideB,
        double beta, Span<double> c, int ldc, long strideC) =>
        MultiplyBatched(KernelIsa.Best, count, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC);

    /// <summary>The float32 GEMM on an explicit path (tests run every supported path side by side).</summary>
    /// <remarks>Paths are written with the portable Vector128/256/512 APIs, so an unsupported path still
    /// computes the right numbers (in slow software emulation).</remarks>
    internal static unsafe void MultiplyBatched(InstructionSet isa, int count, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, long strideA, ReadOnlySpan<float> b, int ldb, long strideB,
        float beta, Span<float> c, int ldc, long strideC, GemmPath path = GemmPath.Auto, GemmCausal causal = GemmCausal.None)
    {
        Validate(count, transA, transB, m, n, k, a.Length, lda, strideA, b.Length, ldb, strideB, c.Length, ldc, strideC);
        if (count == 0 || m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pc = c)
        {
            var p = new Problem<float>(count, transA, transB, m, n, k, alpha, pa, lda, strideA, pb, ldb, strideB, beta, pc, ldc, strideC)
                { RoundBf16 = BFloat16.Operands, Causal = causal };
            Run(isa, p, path);
        }
    }

    /// <summary>The float64 GEMM on an explicit path (256-bit tiles from AVX2 up, 128-bit otherwise).</summary>
    internal static unsafe void MultiplyBatched(InstructionSet isa, int count, bool transA, bool transB, int m, int n, int k, double alpha,
        ReadOnlySpan<double> a, int lda, long strideA, ReadOnlySpan<double> b, int ldb, long strideB,
        double beta, Span<double> c, int ldc, long strideC, GemmCausal causal = GemmCausal.None)
    {
        Validate(count, transA, transB, m, n, k, a.Length, lda, strideA, b.Length, ldb, strideB, c.Length, ldc, strideC);
        if (count == 0 || m == 0 || n == 0) return;
        fixed (double* pa = a, pb = b, pc = c)
        {
            var p = new Problem<double>(count, transA, transB, m, n, k, alpha, pa, lda, strideA, pb, ldb, strideB, beta, pc, ldc, strideC)
                { Causal = causal };
            if (isa >= InstructionSet.Avx2) GemmDriver<double, GemmKernelF64Avx2>.Run(p, GemmPath.Auto);
            else GemmDriver<double, GemmKernelF64Portable>.Run(p, GemmPath.Auto);
        }
    }

    /// <summary>A validated float32 problem on the micro-kernel of <paramref name="isa"/>.</summary>
    private static void Run(InstructionSet isa, Problem<float> p, GemmPath path)
    {
        switch (isa)
        {
            case InstructionSet.Avx512: GemmDriver<float, GemmKernelF32Avx512>.Run(p, path); break;
            case InstructionSet.Avx2: GemmDriver<float, GemmKernelF32Avx2>.Run(p, path); break;
            default: GemmDriver<float, GemmKernelF32Portable>.Run(p, path); break;
        }
    }

    private static void Validate(int count, bool transA, bool transB, int m, int n, int k,
        int aLength, int lda, long strideA, int bLength, int ldb, long strideB, int cLength, int ldc, long strideC)
    {
        if (count < 0) throw new ArgumentException($"gemm: count = {count} is negative.", nameof(count));
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"gemm: sizes must be non-negative, got m = {m}, n = {n}, k = {k}.", m < 0 ? nameof(m) : n < 0 ? nameof(n) : nameof(k));
        CheckOperand("a", "lda", "strideA", transA ? k : m, transA ? m : k, transA ? "k×m (transA)" : "m×k", aLength, lda, strideA, count);
        CheckOperand("b", "ldb", "strideB", transB ? n : k, transB ? k : n, transB ? "n×k (transB)" : "k×n", bLength, ldb, strideB, count);
        CheckOperand("c", "ldc", "strideC", m, n, "m×n", cLength, ldc, strideC, count);
        long extentC = m == 0 || n == 0 ? 0 : (long)(m - 1) * ldc + n;
        // outputs side by side within rows (attention heads written into one [T, heads·n] matrix) do not overlap either
        bool sideBySide = strideC >= n && (long)count * strideC <= ldc;
        if (count > 1 && extentC > 0 && strideC < extentC && !sideBySide)
            throw new ArgumentException(
                $"gemm: strideC = {strideC} is smaller than one output matrix ({extentC} elements for m×n = {m}×{n}, ldc = {ldc}); batch outputs may not overlap.",
                "strideC");
    }

    private static void CheckOperand(string name, string ldName, string strideName, int rows, int cols, string layout,
        int length, int ld, long stride, int count)
    {
        if (ld < Math.Max(1, cols))
            throw new ArgumentException(
                $"gemm: {ldName} = {ld} is smaller than the {cols} columns of {name} (stored {layout} = {rows}×{cols}).", ldName);
        if (stride < 0) throw new ArgumentException($"gemm: {strideName} = {stride} is negative.", strideName);
        if (count == 0 || rows == 0 || cols == 0) return;
        long extent = (long)(rows - 1) * ld + cols;
        long needed = (count - 1) * stride + extent;
        if (length < needed)
            throw new ArgumentException(
                $"gemm: {name} has {length} elements but {count} matrices of {layout} = {rows}×{cols} with {ldName} = {ld} and {strideName} = {stride} need {needed}.",
                name);
    }
}

/// <summary>
/// An element-wise activation a GEMM applies to its output in the epilogue, while each finished tile
/// of C is still in L1: <c>C = act(alpha·op(A)·op(B) + bias)</c>. The functions are those of
/// <see cref="ActivationKernels"/> (same kernels, applied tile row by tile row). Chosen for the
/// activations whose derivative is read from the output (ReLU: y &gt; 0; tanh: 1 − y²; σ: y(1 − y)),
/// so a fused layer needs to keep only y for its backward pass.
/// </summary>
public enum FusedActivation
{
    /// <summary>No activation: C = alpha·op(A)·op(B) + bias.</summary>
    None,

    /// <summary><c>max(0, ·)</c>.</summary>
    Relu,

    /// <summary><c>tanh</c>.</summary>
    Tanh,

    /// <summary><c>σ = 1/(1 + e^−x)</c>.</summary>
    Sigmoid,
}

/// <summary>
/// The causal structure of attention's products, which the small-GEMM loops skip (the packed loops compute everything,
/// which gives the same numbers): the scores' tiles above the diagonal, and the zeros of the attention weights P and
/// their gradient dS (lower triangular: row i has no entry right of column i).
/// </summary>
internal enum GemmCausal
{
    /// <summary>Everything is computed.</summary>
    None,

    /// <summary>Only C's lower triangle is needed: tiles whose columns all lie right of their last row are not written (S = Q·Kᵀ, dP = dO·Vᵀ).</summary>
    LowerC,

    /// <summary>op(A)[i, p] = 0 for p &gt; i: row tile i0..i1 sums p &lt; i1 only (O = P·V, dQ = dS·K).</summary>
    ALower,

    /// <summary>op(A)[i, p] = 0 for p &lt; i: row tile i0..i1 sums p ≥ i0 only (dV = Pᵀ·dO, dK = dSᵀ·Q).</summary>
    AUpper,
}

/// <summary>Loop structure of a GEMM: chosen by shape (Auto), or forced (tests compare the two).</summary>
internal enum GemmPath
{
    /// <summary>The small-GEMM path up to <see cref="Gemm.DirectMacs"/> multiply-adds per matrix of at most MC rows, else packed.</summary>
    Auto,

    /// <summary>Always the packed (GotoBLAS) loops.</summary>
    Packed,

    /// <summary>Always the small-GEMM loops where the micro-kernel has a direct variant (float32), whatever the size.</summary>
    Direct,
}

/// <summary>A validated GEMM call: raw pointers into pinned spans plus the shape.</summary>
internal readonly unsafe struct Problem<T>(int count, bool transA, bool transB, int m, int n, int k, T alpha,
    T* a, int lda, long strideA, T* b, int ldb, long strideB, T beta, T* c, int ldc, long strideC, T* bias = null,
    FusedActivation activation = FusedActivation.None)
    where T : unmanaged
{
    /// <summary>Row vector added to every row of C instead of beta·C (null: none).</summary>
    public readonly T* Bias = bias;

    /// <summary>Applied to each finished tile of C in the epilogue of the last k block.</summary>
    public readonly FusedActivation Activation = activation;

    public readonly int Count = count, M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc;
    public readonly bool TransA = transA, TransB = transB;
    public readonly T Alpha = alpha, Beta = beta;
    public readonly T* A = a, B = b, C = c;
    public readonly long StrideA = strideA, StrideB = strideB, StrideC = strideC;

    /// <summary>Round the packed operands to bf16 (float32 only; <see cref="BFloat16.Operands"/> when the call was made).</summary>
    public bool RoundBf16 { get; init; }

    /// <summary>The causal structure the small-GEMM loops may skip (kept by <see cref="Item"/> only: the other paths compute everything).</summary>
    public GemmCausal Causal { get; init; }

    /// <summary>
    /// When not null (single matrices only), <c>SumsA[i] += Σ_p op(A)[i, p]</c> for i &lt; M (alpha not applied), taken from
    /// the packed row panels while they are hot: a linear layer's bias gradient (the column sums of dY) out of the packing
    /// of its weight gradient's dYᵀ, instead of a pass of its own over dY.
    /// </summary>
    public T* SumsA { get; init; }

    /// <summary>
    /// Depths [k0, k0 + depth) of this single problem, written to <paramref name="c"/> (row stride <paramref name="ldc"/>)
    /// with <paramref name="beta"/>: one part of a product cut along k.
    /// </summary>
    public Problem<T> DepthSlice(int k0, int depth, T beta, T* c, int ldc, T* sumsA) => new(1, TransA, TransB, M, N, depth, Alpha,
        A + (TransA ? (nint)k0 * Lda : k0), Lda, 0, B + (TransB ? k0 : (nint)k0 * Ldb), Ldb, 0, beta, c, ldc, 0) { RoundBf16 = RoundBf16, SumsA = sumsA };

    /// <summary>Columns [j0, j0 + width) of this single problem (op(B)'s columns, C's and the bias's); the slice at column 0 keeps the sums of op(A)'s rows.</summary>
    public Problem<T> ColumnSlice(int j0, int width) => new(1, TransA, TransB, M, width, K, Alpha, A, Lda, 0,
        B + (TransB ? (nint)j0 * Ldb : j0), Ldb, 0, Beta, C + j0, Ldc, 0, Bias is null ? null : Bias + j0, Activation)
        { RoundBf16 = RoundBf16, SumsA = j0 == 0 ? SumsA : null };

    /// <summary>Rows [i0, i0 + rows) of this single problem (op(A)'s rows, C's and the row sums').</summary>
    public Problem<T> RowSlice(int i0, int rows) => new(1, TransA, TransB, rows, N, K, Alpha, A + (TransA ? i0 : (nint)i0 * Lda), Lda, 0,
        B, Ldb, 0, Beta, C + (nint)i0 * Ldc, Ldc, 0, Bias, Activation) { RoundBf16 = RoundBf16, SumsA = SumsA is null ? null : SumsA + i0 };

    /// <summary>The same problem restricted to batch item <paramref name="i"/>.</summary>
    public Problem<T> Item(int i) => new(1, TransA, TransB, M, N, K, Alpha, A + i * StrideA, Lda, 0, B + i * StrideB, Ldb, 0,
        Beta, C + i * StrideC, Ldc, 0, Bias, Activation) { RoundBf16 = RoundBf16, Causal = Causal };
}

/// <summary>
/// One register-tile micro-kernel: <c>C[0..MR, 0..NR) = alpha·Σ_p a[p·MR + i]·b[p·NR + j] + beta·C</c>
/// over packed panels of depth kc. With beta = 0 C is not read.
/// </summary>
internal unsafe interface IMicroKernel<T> where T : unmanaged
{
    /// <summary>Rows of the register tile.</summary>
    static abstract int MR { get; }

    /// <summary>Columns of the register tile.</summary>
    static abstract int NR { get; }

    /// <summary>Depth of a packed block (measured per tile: a B micro-panel KC·NR in L1 or L2, the A block MC·KC in L2).</summary>
    static abstract int KC { get; }

    /// <summary>Largest rows of a packed A block (MC·KC fits L2); a multiple of MR.</summary>
    static abstract int MC { get; }

    /// <summary>Computes one full MR×NR tile of C (row stride ldc).</summary>
    static abstract void Run(nint kc, T* a, T* b, T* c, nint ldc, T alpha, T beta);

    /// <summary>Whether <see cref="RunDirect"/> exists: the small-GEMM path reads unpacked operands through it.</summary>
    static virtual bool HasDirect => false;

    /// <summary>
    /// The tile of <see cref="Run"/> with operands read in place: tile row r at depth p is <c>a[r·rsA + p·csA]</c>
    /// (any strides, so op(A) transposed or not), B row p is the NR contiguous elements at <c>b + p·ldb</c>.
    /// Same operations in the same order as <see cref="Run"/> on packed copies, so the same bits.
    /// </summary>
    static virtual void RunDirect(nint kc, T* a, nint rsA, nint csA, T* b, nint ldb, T* c, nint ldc, T alpha, T beta) =>
        throw new NotSupportedException("this micro-kernel has no direct variant");
}
