using System.Numerics;
using System.Numerics.Tensors;

namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>
    /// Scaled dot-product attention (Vaswani et al. 2017), one fused op over every head:
    /// <c>O = softmax(s·Q·Kᵀ + M)·V</c> with s = <paramref name="scale"/> (default 1/√D) and M the mask
    /// (−∞ where a query may not see a key). Shapes: Q [B, H, T, D], K [B, H, S, D], V [B, H, S, Dv] →
    /// O [B, H, T, Dv]; as <c>torch.nn.functional.scaled_dot_product_attention</c>.
    /// </summary>
    /// <remarks>
    /// <para>Masks: <paramref name="causal"/> hides key j from query i when j &gt; i (T = S required);
    /// <paramref name="keyPadding"/>, B·S flags (true = padding, PyTorch's <c>key_padding_mask</c>),
    /// hides those keys from every query of that sequence. A query that sees no key at all gets an
    /// output of zeros and passes no gradient (PyTorch gives NaN there).</para>
    /// <para>Softmax is stable: each row's maximum over its visible keys is subtracted before
    /// exponentiating. Backward keeps only the attention weights P (one T×S matrix per head) and the
    /// output, never the scores: with G = dO, <c>dV = Pᵀ·G</c>, <c>dP = G·Vᵀ</c>,
    /// <c>dS = P ⊙ (dP − rowsum(G ⊙ O))</c> (softmax backward, as <c>Σ_j P_ij dP_ij = Σ_k G_ik O_ik</c>),
    /// <c>dQ = s·dS·K</c>, <c>dK = s·dSᵀ·Q</c>; masked entries have P = 0 so pass nothing. The four
    /// products are batched GEMMs over the B·H heads.</para>
    /// </remarks>
    /// <exception cref="ArgumentException">when the shapes do not chain, the mask's length is not B·S, or causal attention has T ≠ S.</exception>
    public static Tensor ScaledDotProductAttention(Tensor q, Tensor k, Tensor v, bool causal = false, bool[]? keyPadding = null, double? scale = null)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        CheckSameDType("scaled_dot_product_attention", q, k);
        CheckSameDType("scaled_dot_product_attention", q, v);
        const string op = "scaled_dot_product_attention";
        if (q.Rank != 4 || k.Rank != 4 || v.Rank != 4)
            throw new ArgumentException($"{op}: expects Q [B, H, T, D], K [B, H, S, D], V [B, H, S, Dv], got {Shapes.Format(q._shape)}, {Shapes.Format(k._shape)}, {Shapes.Format(v._shape)}.");
        int b = q._shape[0], h = q._shape[1], t = q._shape[2], d = q._shape[3], s = k._shape[2], dv = v._shape[3];
        if (k._shape[0] != b || k._shape[1] != h || k._shape[3] != d || v._shape[0] != b || v._shape[1] != h || v._shape[2] != s)
            throw new ArgumentException($"{op}: Q {Shapes.Format(q._shape)}, K {Shapes.Format(k._shape)} and V {Shapes.Format(v._shape)} do not chain (batch, heads, key length and head size must agree).");
        if (causal && t != s) throw new ArgumentException($"{op}: causal attention needs as many queries as keys, got T = {t} and S = {s}.");
        if (keyPadding is not null && keyPadding.Length != b * s)
            throw new ArgumentException($"{op}: the key padding mask has {keyPadding.Length} flags, expected B·S = {b}·{s} = {b * s}.");
        double sc = scale ?? 1 / Math.Sqrt(d);
        int count = b * h;
        var p = Uninitialized(op, q, [b, h, t, s]);
        var y = Uninitialized(op, q, [b, h, t, dv]);
        if (p.Count > 0 && y.Count > 0)
        {
            Batched(count, false, true, t, s, d, q, (long)t * d, k, (long)s * d, p, 0.0);
            if (p.Storage is float[]) MaskedSoftmax(p, (float)sc, b, h, t, s, causal, keyPadding);
            else MaskedSoftmax(p, sc, b, h, t, s, causal, keyPadding);
            Batched(count, false, false, t, dv, s, p, (long)t * s, v, (long)s * dv, y, 0.0);
        }
        else if (y.Count > 0) y.FillInPlace(0);
        if (!NeedsGrad([q, k, v]))
        {
            p.ReleaseStorage();
            return y;
        }
        return y.Record(op, [q, k, v], g =>
        {
            Tensor? dq = null, dk = null, dv2 = null;
            if (p.Count == 0 || y.Count == 0)
                return [q.RequiresGrad ? Zeros(q.DType, q._shape) : null, k.RequiresGrad ? Zeros(k.DType, k._shape) : null, v.RequiresGrad ? Zeros(v.DType, v._shape) : null];
            if (v.RequiresGrad)
            {
                dv2 = Uninitialized(op, v, v._shape);
                Batched(count, true, false, s, dv, t, p, (long)t * s, g, (long)t * dv, dv2, 0.0);
            }
            if (q.RequiresGrad || k.RequiresGrad)
            {
                var ds = Uninitialized(op, p, p._shape);
                Batched(count, false, true, t, s, dv, g, (long)t * dv, v, (long)s * dv, ds, 0.0);
                if (ds.Storage is float[]) SoftmaxGradient(p.Span<float>(), y.Span<float>(), g.Span<float>(), ds.Span<float>(), (float)sc, count * t, s, dv);
                else SoftmaxGradient(p.Span<double>(), y.Span<double>(), g.Span<double>(), ds.Span<double>(), sc, count * t, s, dv);
                if (q.RequiresGrad)
                {
                    dq = Uninitialized(op, q, q._shape);
                    Batched(count, false, false, t, d, s, ds, (long)t * s, k, (long)s * d, dq, 0.0);
                }
                if (k.RequiresGrad)
                {
                    dk = Uninitialized(op, k, k._shape);
                    Batched(count, true, false, s, d, t, ds, (long)t * s, q, (long)t * d, dk, 0.0);
                }
                ds.ReleaseStorage();
            }
            return [dq, dk, dv2];
        }, onRelease: p.ReleaseStorage);
    }

    /// <summary>
    /// Multi-head self-attention on the packed projection of <c>nn.MultiheadAttention</c>: with
    /// <paramref name="qkv"/> = [B, T, 3E] holding Q, K and V side by side (head h's columns
    /// h·E/H … (h+1)·E/H − 1 of each), the result is the heads' outputs side by side, [B, T, E] — what
    /// splitting, reshaping to [B, H, T, E/H], <see cref="ScaledDotProductAttention"/> and reshaping back
    /// give, without materialising any of those copies: the GEMMs read and write the heads in place
    /// (leading dimension 3E or E), and backward writes dQ, dK and dV straight into one [B, T, 3E]
    /// gradient. Backward keeps the attention weights and the output, as
    /// <see cref="ScaledDotProductAttention"/>. <paramref name="entropy"/>, when given, receives each
    /// head's mean attention entropy [B, H] (nats, over the queries that see a key) from the weights the
    /// forward pass computes anyway.
    /// </summary>
    /// <exception cref="ArgumentException">when qkv is not [B, T, 3E] with E divisible by <paramref name="heads"/>, or the mask's length is not B·T.</exception>
    public static Tensor PackedSelfAttention(Tensor qkv, int heads, bool causal = false, bool[]? keyPadding = null, double? scale = null,
        Action<double[,]>? entropy = null)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        const string op = "packed_self_attention";
        if (qkv.Rank != 3 || heads < 1 || qkv._shape[2] % (3 * heads) != 0)
            throw new ArgumentException($"{op}: expects the packed projection [B, T, 3E] with E divisible by {heads} heads, got {Shapes.Format(qkv._shape)}.");
        int b = qkv._shape[0], t = qkv._shape[1], e = qkv._shape[2] / 3, dh = e / heads;
        if (keyPadding is not null && keyPadding.Length != b * t)
            throw new ArgumentException($"{op}: the key padding mask has {keyPadding.Length} flags, expected B·T = {b}·{t} = {b * t}.");
        double sc = scale ?? 1 / Math.Sqrt(dh);
        var p = Uninitialized(op, qkv, [b, heads, t, t]);
        var y = Uninitialized(op, qkv, [b, t, e]);
        if (qkv.Storage is float[]) PackedForward<float>(qkv, p, y, b, heads, t, e, (float)sc, causal, keyPadding);
        else PackedForward<double>(qkv, p, y, b, heads, t, e, sc, causal, keyPadding);
        if (entropy is not null) entropy(qkv.Storage is float[] ? RowEntropy<float>(p, b, heads, t) : RowEntropy<double>(p, b, heads, t));
        if (!NeedsGrad(qkv))
        {
            p.ReleaseStorage();
            return y;
        }
        return y.Record(op, [qkv], g =>
        {
            var dqkv = Uninitialized(op, qkv, qkv._shape);
            if (qkv.Storage is float[]) PackedBackward<float>(qkv, p, y, g, dqkv, b, heads, t, e, (float)sc, causal);
            else PackedBackward<double>(qkv, p, y, g, dqkv, b, heads, t, e, sc, causal);
            return [dqkv];
        }, onRelease: p.ReleaseStorage);
    }

    /// <summary>
    /// The forward pass, one kernel-thread task per sequence: its heads' S = Q·Kᵀ, the masked softmax and O = P·V run
    /// on the thread that claimed it (GEMMs called inside a task run inline, with the same numbers), so the softmax is
    /// spread over the threads too and a step has one job per attention layer instead of three per sequence.
    /// </summary>
    private static void PackedForward<T>(Tensor qkv, Tensor p, Tensor y, int b, int h, int t, int e, T scale, bool causal, bool[]? keyPadding)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (b * t == 0) return;
        bool bf16 = Kernels.BFloat16.Operands; // the caller's precision mode, which is per thread
        Kernels.KernelThreads.Run(b, n =>
        {
            using var precision = Kernels.BFloat16.OperandsScope(bf16);
            PackedForwardSequence(qkv, p, y, n, h, t, e, scale, causal, keyPadding);
        });
    }

    private static void PackedForwardSequence<T>(Tensor qkv, Tensor p, Tensor y, int n, int h, int t, int e, T scale, bool causal, bool[]? keyPadding)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int dh = e / h, row = 3 * e;
        long perSeq = (long)t * row, perP = (long)h * t * t;
        var xs = qkv.Span<T>()[(int)(n * perSeq)..];
        var ps = p.Span<T>().Slice((int)(n * perP), (int)perP);
        // S = Q·Kᵀ per head (scaled and masked by the softmax), then O = P·V into the heads' columns; causal attention
        // skips the scores' tiles above the diagonal (the softmax zeroes them) and P's zeros in O = P·V
        var (lower, aLower) = causal ? (Kernels.GemmCausal.LowerC, Kernels.GemmCausal.ALower) : default;
        GemmBatched(h, false, true, t, t, dh, xs, row, dh, xs[e..], row, dh, ps, t, (long)t * t, lower);
        MaskedSoftmaxSequence(ps, scale, h, t, t, causal, keyPadding, n);
        GemmBatched(h, false, false, t, dh, t, ps, t, (long)t * t, xs[(2 * e)..], row, dh, y.Span<T>()[(n * t * e)..], e, dh, aLower);
    }

    /// <summary>The backward pass, one kernel-thread task per sequence (as <see cref="PackedForward"/>), each with its own dS buffer.</summary>
    private static void PackedBackward<T>(Tensor qkv, Tensor p, Tensor y, Tensor g, Tensor dqkv, int b, int h, int t, int e, T scale, bool causal)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (b * t == 0) return;
        bool bf16 = Kernels.BFloat16.Operands;
        Kernels.KernelThreads.Run(b, n =>
        {
            using var precision = Kernels.BFloat16.OperandsScope(bf16);
            PackedBackwardSequence(qkv, p, y, g, dqkv, n, h, t, e, scale, causal);
        });
    }

    /// <remarks>
    /// Causal attention's P and dS are lower triangular: dP is computed on and below the diagonal only, dS is zero above
    /// it, and the four products skip those zeros (the numbers are those of the full products: only exact zero terms go).
    /// </remarks>
    private static void PackedBackwardSequence<T>(Tensor qkv, Tensor p, Tensor y, Tensor g, Tensor dqkv, int n, int h, int t, int e, T scale,
        bool causal)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (lower, aLower, aUpper) = causal ? (Kernels.GemmCausal.LowerC, Kernels.GemmCausal.ALower, Kernels.GemmCausal.AUpper) : default;
        int dh = e / h, row = 3 * e;
        long perSeq = (long)t * row, perP = (long)h * t * t;
        var xs = qkv.Span<T>()[(int)(n * perSeq)..];
        var dxs = dqkv.Span<T>()[(int)(n * perSeq)..];
        var pn = p.Span<T>()[(int)(n * perP)..];
        var gn = g.Span<T>()[(n * t * e)..];
        var yn = y.Span<T>()[(n * t * e)..];
        var dsBuffer = TensorPool.Rent<T>(h * t * t); // from this thread's pool
        var ds = dsBuffer.AsSpan(0, h * t * t);
        // dV = Pᵀ·G; dP = G·Vᵀ
        GemmBatched(h, true, false, t, dh, t, pn, t, (long)t * t, gn, e, dh, dxs[(2 * e)..], row, dh, aUpper);
        GemmBatched(h, false, true, t, t, dh, gn, e, dh, xs[(2 * e)..], row, dh, ds, t, (long)t * t, lower);
        // dS = scale·P ⊙ (dP − Σ_k G_k·O_k), row by row (query i of head hh); zero right of the diagonal when causal
        for (int hh = 0; hh < h; hh++)
            for (int i = 0; i < t; i++)
            {
                int at = i * e + hh * dh, visible = causal ? i + 1 : t;
                T dot = TensorPrimitives.Dot(gn.Slice(at, dh), yn.Slice(at, dh));
                var r = ds.Slice((hh * t + i) * t, t);
                r[visible..].Clear();
                r = r[..visible];
                TensorPrimitives.Subtract(r, dot, r);
                TensorPrimitives.Multiply(r, pn.Slice((hh * t + i) * t, visible), r);
                TensorPrimitives.Multiply(r, scale, r);
            }
        // dQ = dS·K; dK = dSᵀ·Q
        GemmBatched(h, false, false, t, dh, t, ds, t, (long)t * t, xs[e..], row, dh, dxs, row, dh, aLower);
        GemmBatched(h, true, false, t, dh, t, ds, t, (long)t * t, xs, row, dh, dxs[e..], row, dh, aUpper);
        TensorPool.Return(dsBuffer);
    }

    /// <summary>C_i = op(A_i)·op(B_i) for i &lt; count (β = 0), on spans of T.</summary>
    private static void GemmBatched<T>(int count, bool ta, bool tb, int m, int n, int k, ReadOnlySpan<T> a, int lda, long strideA,
        ReadOnlySpan<T> b, int ldb, long strideB, Span<T> c, int ldc, long strideC, Kernels.GemmCausal causal = Kernels.GemmCausal.None) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            Kernels.Gemm.MultiplyBatched(Kernels.KernelIsa.Best, count, ta, tb, m, n, k, 1f, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(a), lda, strideA,
                System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(b), ldb, strideB, 0f, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(c), ldc, strideC,
                causal: causal);
        else
            Kernels.Gemm.MultiplyBatched(Kernels.KernelIsa.Best, count, ta, tb, m, n, k, 1.0, System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(a), lda, strideA,
                System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(b), ldb, strideB, 0.0, System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(c), ldc, strideC,
                causal);
    }

    /// <summary>
    /// Mean entropy (nats) of each head's attention rows, [B, H], from the weights P [B, H, T, S]:
    /// <c>−Σ_j P_ij ln P_ij</c> averaged over the queries i that see at least one key (Zhai et al. 2023).
    /// </summary>
    internal static double[,] RowEntropy<T>(Tensor p, int b, int h, int t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var pv = p.Span<T>();
        int s = p._shape[3];
        var result = new double[b, h];
        for (int n = 0; n < b; n++)
            for (int head = 0; head < h; head++)
            {
                double total = 0;
                int rows = 0;
                for (int i = 0; i < t; i++)
                {
                    double en = 0, mass = 0;
                    var r = pv.Slice(((n * h + head) * t + i) * s, s);
                    foreach (var v in r)
                    {
                        double pij = double.CreateTruncating(v);
                        mass += pij;
                        if (pij > 0) en -= pij * Math.Log(pij);
                    }
                    if (mass == 0) continue;
                    total += en;
                    rows++;
                }
                result[n, head] = rows == 0 ? 0 : total / rows;
            }
        return result;
    }

    /// <summary>
    /// In place over rows of S scores: <c>P = softmax(scale·row + mask)</c>; a row with no visible key becomes zeros.
    /// One kernel-thread task per sequence.
    /// </summary>
    private static void MaskedSoftmax<T>(Tensor scores, T scale, int b, int h, int t, int s, bool causal, bool[]? keyPadding)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long perSeq = (long)h * t * s;
        Kernels.KernelThreads.Run(b, n => MaskedSoftmaxSequence(scores.Span<T>().Slice((int)(n * perSeq), (int)perSeq), scale, h, t, s, causal,
            keyPadding, n), b * perSeq);
    }

    /// <summary><see cref="MaskedSoftmax"/> for the H·T rows of sequence <paramref name="n"/>.</summary>
    private static void MaskedSoftmaxSequence<T>(Span<T> scores, T scale, int h, int t, int s, bool causal, bool[]? keyPadding, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var pad = keyPadding is null ? default : keyPadding.AsSpan(n * s, s);
        for (int head = 0; head < h; head++)
            for (int i = 0; i < t; i++)
            {
                var row = scores.Slice((head * t + i) * s, s);
                int visible = causal ? i + 1 : s;
                TensorPrimitives.Multiply(row[..visible], scale, row[..visible]);
                row[visible..].Clear();
                if (keyPadding is null)
                {
                    SoftmaxRow(row[..visible]);
                    continue;
                }
                T max = T.NegativeInfinity;
                for (int j = 0; j < visible; j++)
                    if (!pad[j] && row[j] > max) max = row[j];
                if (T.IsNegativeInfinity(max))
                {
                    row.Clear();
                    continue;
                }
                T sum = T.Zero;
                for (int j = 0; j < visible; j++)
                {
                    row[j] = pad[j] ? T.Zero : T.Exp(row[j] - max);
                    sum += row[j];
                }
                TensorPrimitives.Divide(row[..visible], sum, row[..visible]);
            }
    }

    private static void SoftmaxRow<T>(Span<T> row) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = TensorPrimitives.Max<T>(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp<T>(row, row);
        TensorPrimitives.Divide(row, TensorPrimitives.Sum<T>(row), row);
    }

    /// <summary>In place: <c>dS = scale·P ⊙ (dP − Σ_k G_k·O_k)</c> for each of <paramref name="rows"/> rows (dP given in <paramref name="ds"/>).</summary>
    private static void SoftmaxGradient<T>(ReadOnlySpan<T> p, ReadOnlySpan<T> o, ReadOnlySpan<T> g, Span<T> ds, T scale, int rows, int s, int dv)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int r = 0; r < rows; r++)
        {
            T dot = TensorPrimitives.Dot(g.Slice(r * dv, dv), o.Slice(r * dv, dv));
            var row = ds.Slice(r * s, s);
            TensorPrimitives.Subtract(row, dot, row);
            TensorPrimitives.Multiply(row, p.Slice(r * s, s), row);
            TensorPrimitives.Multiply(row, scale, row);
        }
    }
}
