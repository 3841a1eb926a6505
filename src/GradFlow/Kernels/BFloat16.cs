using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>
/// bfloat16 (1 sign, 8 exponent, 7 mantissa bits: float32's range, 8 significant bits) as values kept in float32
/// containers: a float rounded to the nearest bf16, ties to even, is a float whose low 16 bits are zero. This is what
/// <c>torch.Tensor.bfloat16()</c> does (NaN stays NaN; a finite value above bf16's largest, 3.3895e38, rounds to ∞).
/// </summary>
/// <remarks>
/// The mixed-precision GEMM (<see cref="Operands"/>) rounds its packed operands with it and multiplies them in float32
/// with float32 accumulation: numerically the dot products of <c>vdpbf16ps</c> (AVX512_BF16) up to the order of the
/// float32 additions. .NET 10 exposes no AVX512_BF16 intrinsic (System.Runtime.Intrinsics.X86 has Avx10v2, which this
/// CPU family lacks, and no Avx512Bf16), so the products run on the float32 FMA micro-kernels.
/// </remarks>
public static class BFloat16
{
    /// <summary>The nearest bf16 to <paramref name="x"/>, ties to even, as a float (NaN stays NaN, quieted).</summary>
    public static float Round(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if (float.IsNaN(x)) return BitConverter.UInt32BitsToSingle((bits | 0x0040_0000u) & 0xFFFF_0000u);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF_0000u);
    }

    /// <summary>Rounds every element of <paramref name="x"/> to bf16 in place.</summary>
    public static void Round(Span<float> x) => Round(x, KernelIsa.Best);

    internal static unsafe void Round(Span<float> x, InstructionSet isa)
    {
        fixed (float* p = x) Round(p, x.Length, isa);
    }

    internal static unsafe void Round(float* p, int n, InstructionSet isa)
    {
        int i = 0;
        if (isa == InstructionSet.Avx512)
            for (; i + Vector512<float>.Count <= n; i += Vector512<float>.Count) Vector512.Store(Round(Vector512.Load(p + i)), p + i);
        if (isa >= InstructionSet.Avx2)
            for (; i + Vector256<float>.Count <= n; i += Vector256<float>.Count) Vector256.Store(Round(Vector256.Load(p + i)), p + i);
        for (; i < n; i++) p[i] = Round(p[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Round(Vector512<float> x)
    {
        var bits = x.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF_0000u);
        var nan = (bits | Vector512.Create(0x0040_0000u)) & Vector512.Create(0xFFFF_0000u);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x).AsUInt32(), rounded, nan).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Round(Vector256<float> x)
    {
        var bits = x.AsUInt32();
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF_0000u);
        var nan = (bits | Vector256.Create(0x0040_0000u)) & Vector256.Create(0xFFFF_0000u);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x).AsUInt32(), rounded, nan).AsSingle();
    }

    [ThreadStatic] private static bool _operands;

    /// <summary>
    /// Whether float32 GEMMs started on this thread round their operands to bf16 (products of bf16 values, float32
    /// accumulation and output): the <c>--precision bf16</c> mode, set for a scope with <see cref="OperandsScope"/>.
    /// </summary>
    public static bool Operands => _operands;

    /// <summary>Rounds the operands of this thread's float32 GEMMs to bf16 until the returned scope is disposed (scopes nest).</summary>
    public static Scope OperandsScope(bool on = true)
    {
        bool saved = _operands;
        _operands = on;
        return new Scope(saved);
    }

    /// <summary>Restores the previous mode when disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly bool _saved;

        internal Scope(bool saved) => _saved = saved;

        public void Dispose() => _operands = _saved;
    }
}
