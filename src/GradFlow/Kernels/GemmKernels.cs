// Register-tile micro-kernels. Each accumulator is its own local so the JIT keeps it in a
// register; the bodies are regular (one line per FMA) and were written out by a small script.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;


/// <summary>
/// AVX-512 float tile 12×32: 24 zmm accumulators + 2 B vectors + 1 broadcast of A = 27 of 32 registers. Per k step: 2 vector loads of B, 12 broadcasts, 24 FMAs.
/// On L1-resident panels it runs at 98 % of the measured FMA peak (113 of 116 GFLOP/s on one Zen 4 core, <c>--profile kernel</c>).
/// KC = 512 (packed A block 144×512 = 288 KiB for a ≥ 1 MiB L2): measured side by side in one process against 256, 384 and 768
/// (<c>--profile blocking</c>), 8-10 % faster than 256 at n = 512-2048 on 2 threads (fewer k blocks: fewer pool barriers and C passes).
/// </summary>
internal readonly unsafe struct GemmKernelF32Avx512 : IMicroKernel<float>
{
    public static int MR => 12;
    public static int NR => 32;
    public static int KC => 512;
    public static int MC => 144;
    public static bool HasDirect => true;

    /// <summary>The tile on packed panels: <see cref="RunDirect"/> with A's rows 1 apart and its depths MR apart, B's rows NR apart (one body for both).</summary>
    public static void Run(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        RunDirect(kc, a, 1, MR, b, NR, c, ldc, alpha, beta);

    /// <summary>The same tile with A and B read in place (no packing): tile row r at depth p is <c>a[r·rsA + p·csA]</c>, B row p is <c>b[p·ldb ..]</c> (32 contiguous elements).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RunDirect(nint kc, float* a, nint rsA, nint csA, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
    {
        nint r2 = 2 * rsA;
        nint r3 = 3 * rsA;
        float* a4p = a + 4 * rsA;
        float* a8p = a + 8 * rsA;
        var c00 = Vector512<float>.Zero; var c01 = Vector512<float>.Zero;
        var c10 = Vector512<float>.Zero; var c11 = Vector512<float>.Zero;
        var c20 = Vector512<float>.Zero; var c21 = Vector512<float>.Zero;
        var c30 = Vector512<float>.Zero; var c31 = Vector512<float>.Zero;
        var c40 = Vector512<float>.Zero; var c41 = Vector512<float>.Zero;
        var c50 = Vector512<float>.Zero; var c51 = Vector512<float>.Zero;
        var c60 = Vector512<float>.Zero; var c61 = Vector512<float>.Zero;
        var c70 = Vector512<float>.Zero; var c71 = Vector512<float>.Zero;
        var c80 = Vector512<float>.Zero; var c81 = Vector512<float>.Zero;
        var c90 = Vector512<float>.Zero; var c91 = Vector512<float>.Zero;
        var c100 = Vector512<float>.Zero; var c101 = Vector512<float>.Zero;
        var c110 = Vector512<float>.Zero; var c111 = Vector512<float>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b + 0);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[rsA]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[r2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[r3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a4p[0]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a4p[rsA]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(a4p[r2]);
            c60 = Vector512.FusedMultiplyAdd(a6, b0, c60);
            c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(a4p[r3]);
            c70 = Vector512.FusedMultiplyAdd(a7, b0, c70);
            c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            var a8 = Vector512.Create(a8p[0]);
            c80 = Vector512.FusedMultiplyAdd(a8, b0, c80);
            c81 = Vector512.FusedMultiplyAdd(a8, b1, c81);
            var a9 = Vector512.Create(a8p[rsA]);
            c90 = Vector512.FusedMultiplyAdd(a9, b0, c90);
            c91 = Vector512.FusedMultiplyAdd(a9, b1, c91);
            var a10 = Vector512.Create(a8p[r2]);
            c100 = Vector512.FusedMultiplyAdd(a10, b0, c100);
            c101 = Vector512.FusedMultiplyAdd(a10, b1, c101);
            var a11 = Vector512.Create(a8p[r3]);
            c110 = Vector512.FusedMultiplyAdd(a11, b0, c110);
            c111 = Vector512.FusedMultiplyAdd(a11, b1, c111);
            a += csA;
            a4p += csA;
            a8p += csA;
            b += ldb;
        }
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        int mode = beta == 0 ? 0 : beta == 1 ? 1 : 2;
        Store(c + 0 * ldc + 0, c00, va, vb, mode);
        Store(c + 0 * ldc + 16, c01, va, vb, mode);
        Store(c + 1 * ldc + 0, c10, va, vb, mode);
        Store(c + 1 * ldc + 16, c11, va, vb, mode);
        Store(c + 2 * ldc + 0, c20, va, vb, mode);
        Store(c + 2 * ldc + 16, c21, va, vb, mode);
        Store(c + 3 * ldc + 0, c30, va, vb, mode);
        Store(c + 3 * ldc + 16, c31, va, vb, mode);
        Store(c + 4 * ldc + 0, c40, va, vb, mode);
        Store(c + 4 * ldc + 16, c41, va, vb, mode);
        Store(c + 5 * ldc + 0, c50, va, vb, mode);
        Store(c + 5 * ldc + 16, c51, va, vb, mode);
        Store(c + 6 * ldc + 0, c60, va, vb, mode);
        Store(c + 6 * ldc + 16, c61, va, vb, mode);
        Store(c + 7 * ldc + 0, c70, va, vb, mode);
        Store(c + 7 * ldc + 16, c71, va, vb, mode);
        Store(c + 8 * ldc + 0, c80, va, vb, mode);
        Store(c + 8 * ldc + 16, c81, va, vb, mode);
        Store(c + 9 * ldc + 0, c90, va, vb, mode);
        Store(c + 9 * ldc + 16, c91, va, vb, mode);
        Store(c + 10 * ldc + 0, c100, va, vb, mode);
        Store(c + 10 * ldc + 16, c101, va, vb, mode);
        Store(c + 11 * ldc + 0, c110, va, vb, mode);
        Store(c + 11 * ldc + 16, c111, va, vb, mode);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> acc, Vector512<float> alpha, Vector512<float> beta, int mode)
    {
        var v = acc * alpha;
        if (mode == 1) v += Vector512.Load(c);
        else if (mode == 2) v = Vector512.FusedMultiplyAdd(beta, Vector512.Load(c), v);
        Vector512.Store(v, c);
    }
}

/// <summary>AVX2+FMA float tile 6×16: 12 ymm accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers (the classic Haswell/Zen shape). Per k step: 2 loads, 6 broadcasts, 12 FMAs.</summary>
internal readonly unsafe struct GemmKernelF32Avx2 : IMicroKernel<float>
{
    public static int MR => 6;
    public static int NR => 16;
    public static int KC => 256;
    public static int MC => 120;
    public static bool HasDirect => true;

    /// <summary>The tile on packed panels: <see cref="RunDirect"/> with A's rows 1 apart and its depths MR apart, B's rows NR apart (one body for both).</summary>
    public static void Run(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        RunDirect(kc, a, 1, MR, b, NR, c, ldc, alpha, beta);

    /// <summary>The same tile with A and B read in place (no packing): tile row r at depth p is <c>a[r·rsA + p·csA]</c>, B row p is <c>b[p·ldb ..]</c> (16 contiguous elements).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RunDirect(nint kc, float* a, nint rsA, nint csA, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
    {
        nint r2 = 2 * rsA;
        float* a3p = a + 3 * rsA;
        var c00 = Vector256<float>.Zero; var c01 = Vector256<float>.Zero;
        var c10 = Vector256<float>.Zero; var c11 = Vector256<float>.Zero;
        var c20 = Vector256<float>.Zero; var c21 = Vector256<float>.Zero;
        var c30 = Vector256<float>.Zero; var c31 = Vector256<float>.Zero;
        var c40 = Vector256<float>.Zero; var c41 = Vector256<float>.Zero;
        var c50 = Vector256<float>.Zero; var c51 = Vector256<float>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[rsA]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[r2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a3p[0]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a3p[rsA]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a3p[r2]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += csA;
            a3p += csA;
            b += ldb;
        }
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        int mode = beta == 0 ? 0 : beta == 1 ? 1 : 2;
        Store(c + 0 * ldc + 0, c00, va, vb, mode);
        Store(c + 0 * ldc + 8, c01, va, vb, mode);
        Store(c + 1 * ldc + 0, c10, va, vb, mode);
        Store(c + 1 * ldc + 8, c11, va, vb, mode);
        Store(c + 2 * ldc + 0, c20, va, vb, mode);
        Store(c + 2 * ldc + 8, c21, va, vb, mode);
        Store(c + 3 * ldc + 0, c30, va, vb, mode);
        Store(c + 3 * ldc + 8, c31, va, vb, mode);
        Store(c + 4 * ldc + 0, c40, va, vb, mode);
        Store(c + 4 * ldc + 8, c41, va, vb, mode);
        Store(c + 5 * ldc + 0, c50, va, vb, mode);
        Store(c + 5 * ldc + 8, c51, va, vb, mode);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> acc, Vector256<float> alpha, Vector256<float> beta, int mode)
    {
        var v = acc * alpha;
        if (mode == 1) v += Vector256.Load(c);
        else if (mode == 2) v = Vector256.FusedMultiplyAdd(beta, Vector256.Load(c), v);
        Vector256.Store(v, c);
    }
}

/// <summary>Portable float tile 4×8 on 128-bit vectors (SSE/NEON or software), multiply then add (no FMA assumed): 8 accumulators.</summary>
internal readonly unsafe struct GemmKernelF32Portable : IMicroKernel<float>
{
    public static int MR => 4;
    public static int NR => 8;
    public static int KC => 256;
    public static int MC => 128;
    public static bool HasDirect => true;

    /// <summary>The tile on packed panels: <see cref="RunDirect"/> with A's rows 1 apart and its depths MR apart, B's rows NR apart (one body for both).</summary>
    public static void Run(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        RunDirect(kc, a, 1, MR, b, NR, c, ldc, alpha, beta);

    /// <summary>The same tile with A and B read in place (no packing): tile row r at depth p is <c>a[r·rsA + p·csA]</c>, B row p is <c>b[p·ldb ..]</c> (8 contiguous elements).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RunDirect(nint kc, float* a, nint rsA, nint csA, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
    {
        nint r2 = 2 * rsA;
        nint r3 = 3 * rsA;
        var c00 = Vector128<float>.Zero; var c01 = Vector128<float>.Zero;
        var c10 = Vector128<float>.Zero; var c11 = Vector128<float>.Zero;
        var c20 = Vector128<float>.Zero; var c21 = Vector128<float>.Zero;
        var c30 = Vector128<float>.Zero; var c31 = Vector128<float>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b + 0);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 += a0 * b0;
            c01 += a0 * b1;
            var a1 = Vector128.Create(a[rsA]);
            c10 += a1 * b0;
            c11 += a1 * b1;
            var a2 = Vector128.Create(a[r2]);
            c20 += a2 * b0;
            c21 += a2 * b1;
            var a3 = Vector128.Create(a[r3]);
            c30 += a3 * b0;
            c31 += a3 * b1;
            a += csA;
            b += ldb;
        }
        var va = Vector128.Create(alpha);
        var vb = Vector128.Create(beta);
        int mode = beta == 0 ? 0 : beta == 1 ? 1 : 2;
        Store(c + 0 * ldc + 0, c00, va, vb, mode);
        Store(c + 0 * ldc + 4, c01, va, vb, mode);
        Store(c + 1 * ldc + 0, c10, va, vb, mode);
        Store(c + 1 * ldc + 4, c11, va, vb, mode);
        Store(c + 2 * ldc + 0, c20, va, vb, mode);
        Store(c + 2 * ldc + 4, c21, va, vb, mode);
        Store(c + 3 * ldc + 0, c30, va, vb, mode);
        Store(c + 3 * ldc + 4, c31, va, vb, mode);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector128<float> acc, Vector128<float> alpha, Vector128<float> beta, int mode)
    {
        var v = acc * alpha;
        if (mode == 1) v += Vector128.Load(c);
        else if (mode == 2) v += beta * Vector128.Load(c);
        Vector128.Store(v, c);
    }
}

/// <summary>Float64 tile 4×8 on 256-bit vectors with FMA: 8 accumulators. Used by gradient checks, so kept simple.</summary>
internal readonly unsafe struct GemmKernelF64Avx2 : IMicroKernel<double>
{
    public static int MR => 4;
    public static int NR => 8;
    public static int KC => 128;
    public static int MC => 96;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(nint kc, double* a, double* b, double* c, nint ldc, double alpha, double beta)
    {
        var c00 = Vector256<double>.Zero; var c01 = Vector256<double>.Zero;
        var c10 = Vector256<double>.Zero; var c11 = Vector256<double>.Zero;
        var c20 = Vector256<double>.Zero; var c21 = Vector256<double>.Zero;
        var c30 = Vector256<double>.Zero; var c31 = Vector256<double>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b + 0);
            var b1 = Vector256.Load(b + 4);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            a += 4;
            b += 8;
        }
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        int mode = beta == 0 ? 0 : beta == 1 ? 1 : 2;
        Store(c + 0 * ldc + 0, c00, va, vb, mode);
        Store(c + 0 * ldc + 4, c01, va, vb, mode);
        Store(c + 1 * ldc + 0, c10, va, vb, mode);
        Store(c + 1 * ldc + 4, c11, va, vb, mode);
        Store(c + 2 * ldc + 0, c20, va, vb, mode);
        Store(c + 2 * ldc + 4, c21, va, vb, mode);
        Store(c + 3 * ldc + 0, c30, va, vb, mode);
        Store(c + 3 * ldc + 4, c31, va, vb, mode);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(double* c, Vector256<double> acc, Vector256<double> alpha, Vector256<double> beta, int mode)
    {
        var v = acc * alpha;
        if (mode == 1) v += Vector256.Load(c);
        else if (mode == 2) v = Vector256.FusedMultiplyAdd(beta, Vector256.Load(c), v);
        Vector256.Store(v, c);
    }
}

/// <summary>Portable float64 tile 4×4 on 128-bit vectors, multiply then add: 8 accumulators.</summary>
internal readonly unsafe struct GemmKernelF64Portable : IMicroKernel<double>
{
    public static int MR => 4;
    public static int NR => 4;
    public static int KC => 128;
    public static int MC => 96;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(nint kc, double* a, double* b, double* c, nint ldc, double alpha, double beta)
    {
        var c00 = Vector128<double>.Zero; var c01 = Vector128<double>.Zero;
        var c10 = Vector128<double>.Zero; var c11 = Vector128<double>.Zero;
        var c20 = Vector128<double>.Zero; var c21 = Vector128<double>.Zero;
        var c30 = Vector128<double>.Zero; var c31 = Vector128<double>.Zero;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b + 0);
            var b1 = Vector128.Load(b + 2);
            var a0 = Vector128.Create(a[0]);
            c00 += a0 * b0;
            c01 += a0 * b1;
            var a1 = Vector128.Create(a[1]);
            c10 += a1 * b0;
            c11 += a1 * b1;
            var a2 = Vector128.Create(a[2]);
            c20 += a2 * b0;
            c21 += a2 * b1;
            var a3 = Vector128.Create(a[3]);
            c30 += a3 * b0;
            c31 += a3 * b1;
            a += 4;
            b += 4;
        }
        var va = Vector128.Create(alpha);
        var vb = Vector128.Create(beta);
        int mode = beta == 0 ? 0 : beta == 1 ? 1 : 2;
        Store(c + 0 * ldc + 0, c00, va, vb, mode);
        Store(c + 0 * ldc + 2, c01, va, vb, mode);
        Store(c + 1 * ldc + 0, c10, va, vb, mode);
        Store(c + 1 * ldc + 2, c11, va, vb, mode);
        Store(c + 2 * ldc + 0, c20, va, vb, mode);
        Store(c + 2 * ldc + 2, c21, va, vb, mode);
        Store(c + 3 * ldc + 0, c30, va, vb, mode);
        Store(c + 3 * ldc + 2, c31, va, vb, mode);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(double* c, Vector128<double> acc, Vector128<double> alpha, Vector128<double> beta, int mode)
    {
        var v = acc * alpha;
        if (mode == 1) v += Vector128.Load(c);
        else if (mode == 2) v += beta * Vector128.Load(c);
        Vector128.Store(v, c);
    }
}
