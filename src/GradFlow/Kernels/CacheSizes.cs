using System.Globalization;
using System.Runtime.Intrinsics.X86;

namespace GradFlow.Kernels;

/// <summary>
/// The data caches the machine reports, for blocking that must fit them. Read once: on x86 from CPUID leaf 0x80000006
/// (ECX[31:16], the L2 in KiB; AMD and Intel both report it), else from Linux's <c>/sys/devices/system/cpu/cpu0/cache</c>
/// (which a VM may not have); where neither says, <see cref="DefaultL2Bytes"/>.
/// </summary>
internal static class CacheSizes
{
    /// <summary>The L2 assumed where the machine does not say: 512 KiB, the smallest per-core L2 of the AVX2 and AVX-512 cores targeted.</summary>
    public const long DefaultL2Bytes = 512 << 10;

    /// <summary>The per-core L2 data (or unified) cache in bytes.</summary>
    public static long L2Bytes { get; } = CpuIdL2() ?? Read(2) ?? DefaultL2Bytes;

    private static long? CpuIdL2()
    {
        if (!X86Base.IsSupported) return null;
        if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < 0x80000006) return null;
        uint kib = (uint)X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx >> 16;
        return kib > 0 ? kib * 1024L : null;
    }

    private static long? Read(int level)
    {
        try
        {
            var root = new DirectoryInfo("/sys/devices/system/cpu/cpu0/cache");
            if (!root.Exists) return null;
            foreach (var index in root.EnumerateDirectories("index*"))
            {
                string Field(string name) => File.ReadAllText(Path.Combine(index.FullName, name)).Trim();
                if (Field("level") != level.ToString(CultureInfo.InvariantCulture) || Field("type") == "Instruction") continue;
                return ParseSize(Field("size"));
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>A sysfs cache size such as <c>1024K</c>, <c>32M</c> or <c>512</c> (bytes); null if it is not one.</summary>
    internal static long? ParseSize(string text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        string digits = unit == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0 ? n * unit : null;
    }
}
