using System.Numerics;
using System.Runtime.InteropServices;

namespace GradFlow.Kernels;

/// <summary>
/// What a lower precision would lose of a float32 training step, measured from its values: gradients too small
/// for fp16 (a vanishing of a numerical kind, which loss scaling cures) and weight updates too small for a bf16
/// weight to register (which fp32 master weights cure).
/// </summary>
public static class PrecisionLoss
{
    /// <summary>fp16's smallest subnormal number, 2⁻²⁴: a gradient below it is lost in fp16 (flushed to zero or to the smallest step).</summary>
    public const float Fp16SmallestSubnormal = 5.9604645e-8f;

    /// <summary>fp16's smallest normal number, 2⁻¹⁴: below it an fp16 gradient is subnormal and keeps fewer significant bits.</summary>
    public const float Fp16SmallestNormal = 6.1035156e-5f;

    /// <summary>
    /// Of the finite nonzero values of <paramref name="g"/>: how many there are, how many have |g| below
    /// <see cref="Fp16SmallestSubnormal"/> and how many below <see cref="Fp16SmallestNormal"/>.
    /// </summary>
    public static (long Nonzero, long BelowSubnormal, long BelowNormal) Fp16Underflow(ReadOnlySpan<float> g)
    {
        long nonzero = 0, sub = 0, normal = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && g.Length >= Vector<float>.Count)
        {
            var vSub = new Vector<float>(Fp16SmallestSubnormal);
            var vNormal = new Vector<float>(Fp16SmallestNormal);
            var vInf = new Vector<float>(float.PositiveInfinity);
            var cNz = Vector<int>.Zero;
            var cSub = Vector<int>.Zero;
            var cNormal = Vector<int>.Zero;
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(g);
            // counts per lane stay below 2³¹ within one block
            const int Block = 1 << 20;
            for (int b = 0; b < vectors.Length; b += Block)
            {
                foreach (var v in vectors.Slice(b, Math.Min(Block, vectors.Length - b)))
                {
                    var a = Vector.Abs(v);
                    var nz = Vector.GreaterThan(a, Vector<float>.Zero) & Vector.LessThan(a, vInf); // NaN compares false
                    cNz -= nz;
                    cSub -= nz & Vector.LessThan(a, vSub);
                    cNormal -= nz & Vector.LessThan(a, vNormal);
                }
                nonzero += Sum(cNz);
                sub += Sum(cSub);
                normal += Sum(cNormal);
                cNz = cSub = cNormal = Vector<int>.Zero;
            }
            i = vectors.Length * Vector<float>.Count;
        }
        for (; i < g.Length; i++)
        {
            float a = Math.Abs(g[i]);
            if (!(a > 0) || float.IsInfinity(a)) continue;
            nonzero++;
            if (a < Fp16SmallestSubnormal) sub++;
            if (a < Fp16SmallestNormal) normal++;
        }
        return (nonzero, sub, normal);
    }

    /// <summary><see cref="Fp16Underflow(ReadOnlySpan{float})"/> of float64 values.</summary>
    public static (long Nonzero, long BelowSubnormal, long BelowNormal) Fp16Underflow(ReadOnlySpan<double> g)
    {
        long nonzero = 0, sub = 0, normal = 0;
        foreach (double v in g)
        {
            double a = Math.Abs(v);
            if (!(a > 0) || double.IsInfinity(a)) continue;
            nonzero++;
            if (a < Fp16SmallestSubnormal) sub++;
            if (a < Fp16SmallestNormal) normal++;
        }
        return (nonzero, sub, normal);
    }

    /// <summary>
    /// Of the weights an update changed (<paramref name="after"/> ≠ <paramref name="before"/>, both finite): how
    /// many there are, and how many changed by less than half a bf16 ulp of the weight before the update (2^(e−8)
    /// for a weight 2^e·1.m; bf16 keeps 7 of float32's 23 fraction bits), so that a bf16 weight would not move.
    /// Weights below 2⁻¹¹⁸ (whose half-ulp is subnormal) count as able to register any update.
    /// </summary>
    public static (long Updated, long Swallowed) Bf16Swallowed(ReadOnlySpan<float> after, ReadOnlySpan<float> before)
    {
        if (after.Length != before.Length) throw new ArgumentException($"Bf16Swallowed: {after.Length} weights after the update, {before.Length} before.");
        long updated = 0, swallowed = 0;
        int i = 0;
        if (Vector.IsHardwareAccelerated && after.Length >= Vector<float>.Count)
        {
            var vInf = new Vector<float>(float.PositiveInfinity);
            var expMask = new Vector<int>(0xFF);
            var eight = new Vector<int>(8);
            var cUpd = Vector<int>.Zero;
            var cSw = Vector<int>.Zero;
            var va = MemoryMarshal.Cast<float, Vector<float>>(after);
            var vb = MemoryMarshal.Cast<float, Vector<float>>(before);
            const int Block = 1 << 20;
            for (int b = 0; b < va.Length; b += Block)
            {
                int end = Math.Min(va.Length, b + Block);
                for (int k = b; k < end; k++)
                {
                    var d = Vector.Abs(va[k] - vb[k]);
                    var changed = Vector.GreaterThan(d, Vector<float>.Zero) & Vector.LessThan(d, vInf) & Vector.LessThan(Vector.Abs(vb[k]), vInf);
                    var e = Vector.ShiftRightLogical(Vector.AsVectorInt32(vb[k]), 23) & expMask;
                    // half an ulp = 2^(e - 127 - 8): the float with biased exponent e - 8 (0 when that is not normal)
                    var half = Vector.AsVectorSingle(Vector.ShiftLeft(Vector.Max(e - eight, Vector<int>.Zero), 23));
                    cUpd -= changed;
                    cSw -= changed & Vector.LessThan(d, half);
                }
                updated += Sum(cUpd);
                swallowed += Sum(cSw);
                cUpd = cSw = Vector<int>.Zero;
            }
            i = va.Length * Vector<float>.Count;
        }
        for (; i < after.Length; i++)
        {
            float d = Math.Abs(after[i] - before[i]);
            if (!(d > 0) || float.IsInfinity(d) || !float.IsFinite(before[i])) continue;
            updated++;
            if (d < HalfUlpBf16(before[i])) swallowed++;
        }
        return (updated, swallowed);
    }

    /// <summary><see cref="Bf16Swallowed(ReadOnlySpan{float}, ReadOnlySpan{float})"/> of float64 weights, each compared as its float32 value.</summary>
    public static (long Updated, long Swallowed) Bf16Swallowed(ReadOnlySpan<double> after, ReadOnlySpan<double> before)
    {
        if (after.Length != before.Length) throw new ArgumentException($"Bf16Swallowed: {after.Length} weights after the update, {before.Length} before.");
        long updated = 0, swallowed = 0;
        for (int i = 0; i < after.Length; i++)
        {
            double d = Math.Abs(after[i] - before[i]);
            if (!(d > 0) || double.IsInfinity(d) || !double.IsFinite(before[i])) continue;
            updated++;
            if (d < HalfUlpBf16((float)before[i])) swallowed++;
        }
        return (updated, swallowed);
    }

    /// <summary>Half a bf16 ulp of <paramref name="w"/>: 2^(e−8) for |w| = 2^e·1.m (0 when that is below float32's normal range).</summary>
    public static float HalfUlpBf16(float w)
    {
        int e = (BitConverter.SingleToInt32Bits(w) >> 23) & 0xFF;
        return BitConverter.Int32BitsToSingle(Math.Max(e - 8, 0) << 23);
    }

    private static long Sum(Vector<int> v)
    {
        long s = 0;
        for (int k = 0; k < Vector<int>.Count; k++) s += v[k];
        return s;
    }
}
