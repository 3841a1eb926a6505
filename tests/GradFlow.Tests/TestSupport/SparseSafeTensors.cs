using System.Buffers.Binary;
using System.Text;

namespace GradFlow.Tests.TestSupport;

/// <summary>
/// Safetensors files that really are huge but cost no disk: a valid header, a small F32 tensor's
/// bytes, then <see cref="FileStream.SetLength"/> to the full size (a sparse file on ext4 and most
/// Unix file systems), so readers see a consistent file with a tensor larger than any .NET array.
/// </summary>
public static class SparseSafeTensors
{
    /// <summary>F32 [2, 1342177280]: 10 GiB.</summary>
    public const long HugeBytes = 2L * 1342177280 * 4;

    /// <summary>
    /// Writes <paramref name="path"/> with F32 tensors <paramref name="small"/> ([2], values 1 and 2,
    /// first) and <paramref name="huge"/> (F32 [2, 1342177280], <see cref="HugeBytes"/> of zeros).
    /// </summary>
    public static void Write(string path, string huge = "huge", string small = "small")
    {
        string header = $$$"""{"{{{small}}}":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"{{{huge}}}":{"dtype":"F32","shape":[2,1342177280],"data_offsets":[8,{{{8 + HugeBytes}}}]}}""";
        var h = Encoding.UTF8.GetBytes(header.PadRight((header.Length + 7) / 8 * 8));
        using var f = File.Create(path);
        Span<byte> buf = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buf, (ulong)h.Length);
        f.Write(buf);
        f.Write(h);
        BinaryPrimitives.WriteSingleLittleEndian(buf, 1f);
        BinaryPrimitives.WriteSingleLittleEndian(buf[4..], 2f);
        f.Write(buf);
        f.SetLength(8 + h.Length + 8 + HugeBytes);
    }
}
