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
            if (p.Storage is float[]) MaskedSoftmax(p.Span<float>(), (float)sc, b, h, t, s, causal, keyPadding);
            else MaskedSoftmax(p.Span<double>(), sc, b, h, t, s, causal, keyPadding);
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

    /// <summary>In place over rows of S scores: <c>P = softmax(scale·row + mask)</c>; a row with no visible key becomes zeros.</summary>
    private static void MaskedSoftmax<T>(Span<T> scores, T scale, int b, int h, int t, int s, bool causal, bool[]? keyPadding)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int n = 0; n < b; n++)
        {
            var pad = keyPadding is null ? default : keyPadding.AsSpan(n * s, s);
            for (int head = 0; head < h; head++)
                for (int i = 0; i < t; i++)
                {
                    var row = scores.Slice(((n * h + head) * t + i) * s, s);
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
