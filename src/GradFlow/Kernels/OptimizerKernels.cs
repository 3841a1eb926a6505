using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>Fused parameter updates: one pass over weight, gradient and state instead of one per term.</summary>
public static class OptimizerKernels
{
    /// <summary>
    /// SGD with momentum, one pass: <c>b ← μ·b + s·g; w ← w + (−lr)·b</c>, each product and sum rounded
    /// to float as the unfused sequence of element-wise kernels rounds it (no FMA), so results are
    /// bitwise those of <c>b·μ</c>, <c>g·s + b</c>, <c>b·(−lr) + w</c> done one after another.
    /// </summary>
    /// <exception cref="ArgumentException">when the spans differ in length.</exception>
    public static void SgdMomentum(Span<float> w, ReadOnlySpan<float> g, Span<float> b, float momentum, float gradScale, float negLr)
    {
        if (g.Length != w.Length || b.Length != w.Length)
            throw new ArgumentException($"SgdMomentum: weight ({w.Length}), gradient ({g.Length}) and buffer ({b.Length}) lengths differ.");
        int n = w.Length, i = 0;
        ref float wr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(w);
        ref float gr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(g);
        ref float br = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(b);
        if (Vector256.IsHardwareAccelerated)
        {
            var mu = Vector256.Create(momentum);
            var s = Vector256.Create(gradScale);
            var lr = Vector256.Create(negLr);
            for (; i <= n - 8; i += 8)
            {
                var bv = Vector256.LoadUnsafe(ref br, (nuint)i) * mu;
                bv = Vector256.LoadUnsafe(ref gr, (nuint)i) * s + bv;
                bv.StoreUnsafe(ref br, (nuint)i);
                (bv * lr + Vector256.LoadUnsafe(ref wr, (nuint)i)).StoreUnsafe(ref wr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float bv = Unsafe.Add(ref br, i) * momentum;
            bv = Unsafe.Add(ref gr, i) * gradScale + bv;
            Unsafe.Add(ref br, i) = bv;
            Unsafe.Add(ref wr, i) = bv * negLr + Unsafe.Add(ref wr, i);
        }
    }

    /// <summary>
    /// Adam / AdamW without AMSGrad, one pass over weight, gradient and both moments, rounding each product,
    /// sum, square root and quotient to float exactly as <c>Adam</c>'s sequence of element-wise kernels does
    /// (no FMA, the constants rounded to float as it rounds them), so results are bitwise the same:
    /// <code>
    /// decoupled: w ← w·wd                 (wd = 1 − lr·λ)      else: g ← w·wd + g (wd = λ; skipped for λ = 0)
    /// m ← g·(1 − β₁) + m·β₁;  v ← (g·g)·(1 − β₂) + v·β₂
    /// w ← (m / (√v / c₂ + ε))·step + w    (c₂ = √(1 − β₂ᵗ), step = −lr/(1 − β₁ᵗ))
    /// </code>
    /// </summary>
    /// <exception cref="ArgumentException">when the spans differ in length.</exception>
    public static void Adam(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamConstants c)
    {
        if (g.Length != w.Length || m.Length != w.Length || v.Length != w.Length)
            throw new ArgumentException($"Adam: weight ({w.Length}), gradient ({g.Length}) and moment ({m.Length}, {v.Length}) lengths differ.");
        int n = w.Length, i = 0;
        ref float wr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(w);
        ref float gr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(g);
        ref float mr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(m);
        ref float vr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(v);
        bool decoupled = c.Decoupled, decay = c.WeightDecay != 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var wd = Vector256.Create(c.WeightDecay);
            var b1 = Vector256.Create(c.Beta1);
            var a1 = Vector256.Create(c.OneMinusBeta1);
            var b2 = Vector256.Create(c.Beta2);
            var a2 = Vector256.Create(c.OneMinusBeta2);
            var c2 = Vector256.Create(c.BiasCorrection2Sqrt);
            var eps = Vector256.Create(c.Eps);
            var step = Vector256.Create(c.Step);
            for (; i <= n - 8; i += 8)
            {
                var wv = Vector256.LoadUnsafe(ref wr, (nuint)i);
                var gv = Vector256.LoadUnsafe(ref gr, (nuint)i);
                if (decay)
                {
                    if (decoupled) wv *= wd;
                    else gv = wv * wd + gv;
                }
                var mv = Vector256.LoadUnsafe(ref mr, (nuint)i) * b1;
                mv = gv * a1 + mv;
                mv.StoreUnsafe(ref mr, (nuint)i);
                var vv = Vector256.LoadUnsafe(ref vr, (nuint)i) * b2;
                vv = gv * gv * a2 + vv;
                vv.StoreUnsafe(ref vr, (nuint)i);
                var d = Vector256.Sqrt(vv) / c2 + eps;
                (mv / d * step + wv).StoreUnsafe(ref wr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float wv = Unsafe.Add(ref wr, i), gv = Unsafe.Add(ref gr, i);
            if (decay)
            {
                if (decoupled) wv *= c.WeightDecay;
                else gv = wv * c.WeightDecay + gv;
            }
            float mv = Unsafe.Add(ref mr, i) * c.Beta1;
            mv = gv * c.OneMinusBeta1 + mv;
            Unsafe.Add(ref mr, i) = mv;
            float vv = Unsafe.Add(ref vr, i) * c.Beta2;
            vv = gv * gv * c.OneMinusBeta2 + vv;
            Unsafe.Add(ref vr, i) = vv;
            float d = MathF.Sqrt(vv) / c.BiasCorrection2Sqrt + c.Eps;
            Unsafe.Add(ref wr, i) = mv / d * c.Step + wv;
        }
    }
}

/// <summary>The float32 constants of one parameter's Adam step (see <see cref="OptimizerKernels.Adam"/>).</summary>
public readonly record struct AdamConstants(bool Decoupled, float WeightDecay, float Beta1, float OneMinusBeta1, float Beta2,
    float OneMinusBeta2, float BiasCorrection2Sqrt, float Eps, float Step);
