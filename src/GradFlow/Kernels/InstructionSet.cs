using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>The SIMD instruction-set path a kernel runs on.</summary>
/// <remarks>
/// Kernels pick <see cref="KernelIsa.Best"/> at run time. Every kernel also has an internal
/// entry point that takes the path explicitly, so tests can run each path the machine supports
/// side by side; the dispatcher itself is tested in a subprocess started with
/// <c>DOTNET_EnableAVX512=0</c> / <c>DOTNET_EnableAVX2=0</c>.
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

    /// <summary>Every path this process can run, narrowest first.</summary>
    public static IReadOnlyList<InstructionSet> Supported { get; } =
        Enum.GetValues<InstructionSet>().Where(IsSupported).ToArray();

    /// <summary>Whether this process can run <paramref name="isa"/>.</summary>
    public static bool IsSupported(InstructionSet isa) => isa <= Best;

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
