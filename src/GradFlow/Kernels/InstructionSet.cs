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

    /// <summary>
    /// Whether 512-bit vectors run on a 512-bit-wide floating-point datapath: the AVX-512 path is the best one and the CPU
    /// says so in AMD's performance-optimisation identifiers (CPUID Fn8000_001A, EAX bit 3, FP512; bit 2, FP256, marks a
    /// 256-bit datapath that runs each 512-bit operation in two halves). Seen set (EAX = 0Ah) on a full-width Zen 5 EPYC;
    /// Zen 4 and the half-width Zen 5 parts have a 256-bit datapath. False wherever the leaf is absent (Intel, VMs that
    /// hide it, other architectures) or AVX-512 is off (<c>DOTNET_EnableAVX512=0</c>). A fixed property of the machine,
    /// so the kernel choices made from it (<see cref="ConvKernels.PrefersWinograd(in ConvShape)"/>) are the same on
    /// every run there.
    /// </summary>
    public static bool FullWidth512 { get; } = Best == InstructionSet.Avx512 && ReportsFp512();

    /// <summary>Lower-case name used in output: <c>portable</c>, <c>avx2</c>, <c>avx512</c>.</summary>
    public static string Name(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => "avx512",
        InstructionSet.Avx2 => "avx2",
        _ => "portable",
    };

    private static bool ReportsFp512()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported) return false;
        var (_, ebx, ecx, edx) = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
        bool amd = (ebx, edx, ecx) is (0x68747541, 0x69746E65, 0x444D4163) // "AuthenticAMD"
            or (0x6F677948, 0x6E65476E, 0x656E6975); // "HygonGenuine"
        const int leaf = unchecked((int)0x8000001A);
        if (!amd || System.Runtime.Intrinsics.X86.X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < leaf) return false;
        return (System.Runtime.Intrinsics.X86.X86Base.CpuId(leaf, 0).Eax & 0b1000) != 0;
    }

    private static InstructionSet Detect()
    {
        if (Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
            return InstructionSet.Avx512;
        if (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            return InstructionSet.Avx2;
        return InstructionSet.Portable;
    }
}
