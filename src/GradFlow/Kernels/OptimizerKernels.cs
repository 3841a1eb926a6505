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
}
