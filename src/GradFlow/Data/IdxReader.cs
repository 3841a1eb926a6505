using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;

namespace GradFlow.Data;

/// <summary>
/// Reads IDX files, the format of MNIST and its family (LeCun et al., "The MNIST database"), raw or
/// gzip-compressed.
/// </summary>
/// <remarks>
/// Layout: a 4-byte magic number <c>0x00 0x00 TT RR</c> (<c>TT</c> the <see cref="IdxType"/> code,
/// <c>RR</c> the number of dimensions), then <c>RR</c> big-endian 32-bit dimensions, then the
/// values in row-major order, big-endian. A file starting with the gzip magic bytes <c>1f 8b</c> is
/// decompressed first. The reader trusts nothing: a file that is truncated, has a wrong magic
/// number, an unknown type code, a dimension below 1, a header claiming more data than the file
/// holds, more than the largest .NET array, or bytes after the data, throws
/// <see cref="InvalidDataException"/> naming the file and the field, before allocating anything
/// the file cannot fill.
/// </remarks>
public static class IdxReader
{
    private const int ChunkSize = 1 << 20;

    /// <summary>Reads the IDX file at <paramref name="path"/> (raw, or gzip-compressed).</summary>
    /// <exception cref="InvalidDataException">when the file is not a well-formed IDX file; the message names the file and the field.</exception>
    public static IdxArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> gz = stackalloc byte[2];
        int n = ReadUpTo(file, gz);
        file.Position = 0;
        if (n == 2 && gz[0] == 0x1f && gz[1] == 0x8b)
        {
            using var unzip = new GZipStream(file, CompressionMode.Decompress);
            try
            {
                return Read(unzip, path, null);
            }
            catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path}: the gzip stream is corrupt ({e.Message}).", e);
            }
        }
        return Read(file, path, file.Length);
    }

    /// <summary>Parses an IDX stream; <paramref name="length"/> is the byte count when known (raw files), null for decompressed streams.</summary>
    private static IdxArray Read(Stream s, string name, long? length)
    {
        string holder = length is null ? "decompressed data" : "file";
        Span<byte> magic = stackalloc byte[4];
        int got = ReadUpTo(s, magic);
        if (got < 4)
            throw Bad(name, $"{holder} ends after {got} bytes, inside the 4-byte magic number");
        uint magicValue = BinaryPrimitives.ReadUInt32BigEndian(magic);
        if (magic[0] != 0 || magic[1] != 0)
            throw Bad(name, $"magic number 0x{magicValue:X8} does not start with two zero bytes (IDX magic is 0x0000TTRR); not an IDX file");
        var type = (IdxType)magic[2];
        if (!Enum.IsDefined(type))
            throw Bad(name, $"type code 0x{magic[2]:X2} in magic number 0x{magicValue:X8} is not an IDX type (0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)");
        int rank = magic[3];
        if (rank == 0)
            throw Bad(name, $"magic number 0x{magicValue:X8} says 0 dimensions; an IDX file has at least 1");

        var dimBytes = new byte[4 * rank];
        got = ReadUpTo(s, dimBytes);
        if (got < dimBytes.Length)
            throw Bad(name, $"{holder} ends after {4 + got} bytes, inside the header (the magic number and {rank} dimensions take {4 + 4 * rank} bytes)");
        var shape = new int[rank];
        BigInteger elements = BigInteger.One;
        for (int i = 0; i < rank; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (shape[i] < 1)
                throw Bad(name, $"dimension {i} of {rank} is {shape[i]} (0x{(uint)shape[i]:X8}); every dimension must be at least 1");
            elements *= shape[i];
        }

        int size = IdxArray.ElementSize(type);
        BigInteger bytes = elements * size;
        string claim = size == 1
            ? $"header says {string.Join(" x ", shape)} = {bytes} bytes of data"
            : $"header says {string.Join(" x ", shape)} = {elements} {IdxArray.TypeName(type)} values = {bytes} bytes of data";
        if (bytes > Array.MaxLength)
            throw Bad(name, $"{claim}, more than the largest array ({Array.MaxLength} bytes); the dimensions are corrupt or the file is too large to load");
        int expected = (int)bytes;
        int headerBytes = 4 + 4 * rank;

        byte[] data;
        if (length is long fileLength)
        {
            long present = fileLength - headerBytes;
            if (present < expected)
                throw Bad(name, $"{claim}, file has {present}");
            if (present > expected)
                throw Bad(name, $"{claim}, file has {present}: {present - expected} bytes of trailing data after the values");
            data = GC.AllocateUninitializedArray<byte>(expected);
            got = ReadUpTo(s, data);
            if (got < expected)
                throw Bad(name, $"{claim}, but only {got} could be read (was the file truncated while reading?)");
        }
        else
        {
            data = ReadGrowing(s, expected, out got);
            if (got < expected)
                throw Bad(name, $"{claim}, file has {got} (after decompression)");
            long trailing = CountRemaining(s);
            if (trailing > 0)
                throw Bad(name, $"{claim}, file has {(long)expected + trailing} (after decompression): {trailing} bytes of trailing data after the values");
        }
        return new IdxArray(Decode(type, data, (int)elements), shape);
    }

    /// <summary>Converts big-endian bytes to an array of the element type.</summary>
    private static Array Decode(IdxType type, byte[] data, int count)
    {
        switch (type)
        {
            case IdxType.UInt8:
                return data;
            case IdxType.Int8:
                var sb = new sbyte[count];
                data.AsSpan().CopyTo(MemoryMarshal.AsBytes(sb.AsSpan()));
                return sb;
            case IdxType.Int16:
                var s16 = new short[count];
                FromBigEndian(MemoryMarshal.Cast<byte, short>(data), s16);
                return s16;
            case IdxType.Int32:
                var i32 = new int[count];
                FromBigEndian(MemoryMarshal.Cast<byte, int>(data), i32);
                return i32;
            case IdxType.Float32:
                var f32 = new float[count];
                FromBigEndian(MemoryMarshal.Cast<byte, int>(data), MemoryMarshal.Cast<float, int>(f32.AsSpan()));
                return f32;
            default:
                var f64 = new double[count];
                FromBigEndian(MemoryMarshal.Cast<byte, long>(data), MemoryMarshal.Cast<double, long>(f64.AsSpan()));
                return f64;
        }
    }

    private static void FromBigEndian(ReadOnlySpan<short> source, Span<short> destination)
    {
        if (BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(source, destination);
        else source.CopyTo(destination);
    }

    private static void FromBigEndian(ReadOnlySpan<int> source, Span<int> destination)
    {
        if (BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(source, destination);
        else source.CopyTo(destination);
    }

    private static void FromBigEndian(ReadOnlySpan<long> source, Span<long> destination)
    {
        if (BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(source, destination);
        else source.CopyTo(destination);
    }

    /// <summary>
    /// Reads up to <paramref name="expected"/> bytes from a stream of unknown length, growing the
    /// buffer geometrically so a header that lies about its size costs no more memory than the data
    /// actually present.
    /// </summary>
    private static byte[] ReadGrowing(Stream s, int expected, out int got)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(Math.Min(expected, ChunkSize));
        got = 0;
        while (got < expected)
        {
            if (got == buffer.Length)
            {
                int next = (int)Math.Min((long)buffer.Length * 2, expected);
                var bigger = GC.AllocateUninitializedArray<byte>(next);
                buffer.AsSpan(0, got).CopyTo(bigger);
                buffer = bigger;
            }
            int n = s.Read(buffer, got, buffer.Length - got);
            if (n == 0) break;
            got += n;
        }
        return buffer;
    }

    private static long CountRemaining(Stream s)
    {
        var scratch = new byte[8192];
        long total = 0;
        int n;
        while ((n = s.Read(scratch, 0, scratch.Length)) > 0) total += n;
        return total;
    }

    private static int ReadUpTo(Stream s, Span<byte> buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = s.Read(buffer[got..]);
            if (n == 0) break;
            got += n;
        }
        return got;
    }

    private static InvalidDataException Bad(string name, string message) => new($"{name}: {message}.");
}

/// <summary>Writes IDX files (the inverse of <see cref="IdxReader"/>), raw or gzip-compressed.</summary>
public static class IdxWriter
{
    /// <summary>Writes <paramref name="array"/> to <paramref name="path"/>: magic number, big-endian dimensions, big-endian values.</summary>
    public static void Write(string path, IdxArray array, bool gzip = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(array);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        if (gzip)
        {
            using var zip = new GZipStream(file, CompressionLevel.Optimal);
            Write(zip, array);
        }
        else Write(file, array);
    }

    private static void Write(Stream s, IdxArray array)
    {
        var shape = array.Shape;
        var header = new byte[4 + 4 * shape.Length];
        header[2] = (byte)array.Type;
        header[3] = (byte)shape.Length;
        for (int i = 0; i < shape.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), shape[i]);
        s.Write(header);

        var bytes = array.Type switch
        {
            IdxType.UInt8 => ((byte[])array.Data).AsSpan(),
            IdxType.Int8 => MemoryMarshal.AsBytes(((sbyte[])array.Data).AsSpan()),
            IdxType.Int16 => MemoryMarshal.AsBytes(((short[])array.Data).AsSpan()),
            IdxType.Int32 => MemoryMarshal.AsBytes(((int[])array.Data).AsSpan()),
            IdxType.Float32 => MemoryMarshal.AsBytes(((float[])array.Data).AsSpan()),
            _ => MemoryMarshal.AsBytes(((double[])array.Data).AsSpan()),
        };
        int size = IdxArray.ElementSize(array.Type);
        if (size == 1 || !BitConverter.IsLittleEndian)
        {
            s.Write(bytes);
            return;
        }
        var chunk = new byte[64 * 1024];
        for (int start = 0; start < bytes.Length; start += chunk.Length)
        {
            int n = Math.Min(chunk.Length, bytes.Length - start);
            var src = bytes.Slice(start, n);
            for (int i = 0; i < n; i += size)
                for (int k = 0; k < size; k++) chunk[i + k] = src[i + size - 1 - k];
            s.Write(chunk, 0, n);
        }
    }
}
