using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>The SIMD instruction-set path a kernel runs on.</summary>
/// <remarks>
/// Kernels pick <see cref="KernelIsa.Best"/> at run time. Every kernel also has an internal
/// entry point that takes the path explicitly. The wide paths are written against
/// <see cref="Vector512{T}"/> and <see cref="Vector256{T}"/>, which .NET runs (in software) on any
/// hardware, so tests force every path (<see cref="KernelIsa.All"/>) on every machine: a machine
/// without AVX-512 still checks the AVX-512 path's results, only slowly. The dispatcher itself is
/// tested in a subprocess started with <c>DOTNET_EnableAVX512=0</c> / <c>DOTNET_EnableAVX2=0</c>.
/// </remarks>
public enum InstructionSet
{
    /// <summary>Scalar code (plus whatever the JIT auto-vectorises): runs everywhere.</summary>
    Portable = 0,

    /// <summary>256-bit vectors with FMA (AVX2 on x64, or any 256-bit accelerated platform).</summary>
    Avx2 = 1,

    /// <summary>512-bit vectors (AVX-512F) with FMA.</summary>
    Avx512 = 2,
}

/// <summary>Run-time detection of the best available <see cref="InstructionSet"/>.</summary>
public static class KernelIsa
{
    /// <summary>The widest path this process can run (honours <c>DOTNET_EnableAVX512=0</c> etc.).</summary>
    public static InstructionSet Best { get; } = Detect();

    /// <summary>Every path, narrowest first: each runs on any machine (the wider ones emulated where the hardware lacks them).</summary>
    public static IReadOnlyList<InstructionSet> All { get; } = Enum.GetValues<InstructionSet>();

    /// <summary>Whether the hardware runs <paramref name="isa"/> natively (a path above it still runs, emulated and slow).</summary>
    public static bool IsAccelerated(InstructionSet isa) => isa <= Best;

    /// <summary>Lower-case name used in output: <c>portable</c>, <c>avx2</c>, <c>avx512</c>.</summary>
    public static string Name(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => "avx512",
        InstructionSet.Avx2 => "avx2",
        _ => "portable",
    };

    private static InstructionSet Detect()
    {
        if (Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
            return InstructionSet.Avx512;
        if (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            return InstructionSet.Avx2;
        return InstructionSet.Portable;
    }
}
