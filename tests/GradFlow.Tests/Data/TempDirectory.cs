using System.IO.Compression;

namespace GradFlow.Tests.Data;

/// <summary>A fresh directory under the system temp folder, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "gradflow-data-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="name"/> (gzip-compressed when <paramref name="gzip"/>) and returns the full path.</summary>
    public string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = System.IO.Path.Combine(Path, name);
        if (gzip)
        {
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(bytes);
        }
        else File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>IDX bytes built by hand, independently of the library's writer.</summary>
public static class IdxBytes
{
    /// <summary>Header: 0x00 0x00 type rank, then each dimension as 4 big-endian bytes.</summary>
    public static byte[] Header(byte type, params int[] dims)
    {
        var h = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (int d in dims)
            h.AddRange([(byte)((uint)d >> 24), (byte)((uint)d >> 16), (byte)((uint)d >> 8), (byte)(uint)d]);
        return [.. h];
    }

    /// <summary>A ubyte IDX file: header then the values.</summary>
    public static byte[] UByte(byte[] values, params int[] dims) => [.. Header(0x08, dims), .. values];
}
