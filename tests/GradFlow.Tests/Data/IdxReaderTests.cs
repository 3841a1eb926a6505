using System.IO.Compression;
using GradFlow.Data;

namespace GradFlow.Tests.Data;

public class IdxReaderTests
{
    /// <summary>Big-endian bytes of each value, computed with shifts (not with the library's code).</summary>
    private static byte[] BigEndian(Array data)
    {
        var r = new List<byte>();
        foreach (var v in data)
        {
            ulong bits; int size;
            switch (v)
            {
                case byte b: bits = b; size = 1; break;
                case sbyte b: bits = (byte)b; size = 1; break;
                case short s: bits = (ushort)s; size = 2; break;
                case int i: bits = (uint)i; size = 4; break;
                case float f: bits = (uint)BitConverter.SingleToInt32Bits(f); size = 4; break;
                case double d: bits = (ulong)BitConverter.DoubleToInt64Bits(d); size = 8; break;
                default: throw new InvalidOperationException();
            }
            for (int k = size - 1; k >= 0; k--) r.Add((byte)(bits >> (8 * k)));
        }
        return [.. r];
    }

    public static TheoryData<Array, int[], byte, bool> RoundTripCases()
    {
        var data = new TheoryData<Array, int[], byte, bool>();
        foreach (bool gzip in new[] { false, true })
        {
            data.Add(new byte[] { 0, 1, 127, 128, 254, 255 }, [2, 3], 0x08, gzip);
            data.Add(new sbyte[] { -128, -1, 0, 1, 127, 5 }, [6], 0x09, gzip);
            data.Add(new short[] { -32768, -2, 0, 258, 32767, 7 }, [3, 1, 2], 0x0B, gzip);
            data.Add(new int[] { int.MinValue, -65536, 0, 16909060, int.MaxValue, 3, 4, 5 }, [2, 2, 2], 0x0C, gzip);
            data.Add(new float[] { -0.0f, 1.5f, float.Epsilon, -3.25e10f }, [4, 1], 0x0D, gzip);
            data.Add(new double[] { Math.PI, -1e-300, 0.1, 2.0, double.MaxValue, -7 }, [1, 6], 0x0E, gzip);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void Idx_WriteThenRead_BytesAreBigEndianAndValuesRoundTrip(Array values, int[] shape, byte typeCode, bool gzip)
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, gzip ? "a.idx.gz" : "a.idx");
        IdxWriter.Write(path, new IdxArray(values, shape), gzip);

        var onDisk = File.ReadAllBytes(path);
        byte[] content;
        if (gzip)
        {
            Assert.Equal([0x1f, 0x8b], onDisk[..2]);
            using var unzip = new GZipStream(new MemoryStream(onDisk), CompressionMode.Decompress);
            var ms = new MemoryStream();
            unzip.CopyTo(ms);
            content = ms.ToArray();
        }
        else content = onDisk;

        byte[] expected = [.. IdxBytes.Header(typeCode, shape), .. BigEndian(values)];
        Assert.Equal(expected, content);
        Assert.Equal([0, 0, typeCode, (byte)shape.Length], content[..4]);

        var read = IdxReader.Read(path);
        Assert.Equal((IdxType)typeCode, read.Type);
        Assert.Equal(shape, read.Shape.ToArray());
        Assert.Equal(values.GetType(), read.Data.GetType());
        Assert.Equal(values, read.Data);
    }

    [Fact]
    public void IdxReader_HandWrittenMultiByteDims_ReadBigEndian()
    {
        using var dir = new TempDirectory();
        // dims 0x00000102 = 258 and 0x00000001; a little-endian reader would see 0x02010000.
        var values = new byte[258];
        for (int i = 0; i < values.Length; i++) values[i] = (byte)(i * 7);
        byte[] file = [0, 0, 0x08, 2, 0, 0, 1, 2, 0, 0, 0, 1, .. values];
        var read = IdxReader.Read(dir.Write("dims.idx", file));
        Assert.Equal([258, 1], read.Shape.ToArray());
        Assert.Equal(values, (byte[])read.Data);
    }

    [Fact]
    public void IdxReader_HandWrittenInt16_DecodesBigEndianSigned()
    {
        using var dir = new TempDirectory();
        byte[] file = [0, 0, 0x0B, 1, 0, 0, 0, 3, 0x01, 0x02, 0xFF, 0xFE, 0x80, 0x00];
        var read = IdxReader.Read(dir.Write("s.idx", file, gzip: true));
        Assert.Equal(new short[] { 0x0102, -2, short.MinValue }, (short[])read.Data);
    }

    [Fact]
    public void IdxArray_ToDoubleArray_ConvertsEveryTypeExactly()
    {
        Assert.Equal([-3.0, 4.0], new IdxArray(new short[] { -3, 4 }, 2).ToDoubleArray());
        Assert.Equal([255.0, 0.0], new IdxArray(new byte[] { 255, 0 }, 2).ToDoubleArray());
        Assert.Equal([(double)0.1f], new IdxArray(new float[] { 0.1f }, 1).ToDoubleArray());
        // sbyte[] passes a `byte[]` pattern match in the CLR; the type must still be Int8.
        var signed = new IdxArray(new sbyte[] { -1, -128 }, 2);
        Assert.Equal(IdxType.Int8, signed.Type);
        Assert.Equal([-1.0, -128.0], signed.ToDoubleArray());
    }

    // ---------------------------------------------------------------- bad input

    public static TheoryData<string, byte[], string[]> BadFiles() => new()
    {
        { "empty", [], ["ends after 0 bytes", "magic number"] },
        { "short magic", [0, 0, 8], ["ends after 3 bytes", "magic number"] },
        { "wrong magic", [0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 1, 5], ["magic number 0x1F000801", "two zero bytes"] },
        { "wrong magic 2", [0, 1, 0x08, 0x01, 0, 0, 0, 1, 5], ["magic number 0x00010801"] },
        { "unknown type", [0, 0, 0x0A, 1, 0, 0, 0, 1, 5], ["type code 0x0A", "not an IDX type"] },
        { "zero rank", [0, 0, 0x08, 0], ["0 dimensions"] },
        { "truncated header", [0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0], ["ends after 10 bytes", "inside the header", "16 bytes"] },
        { "zero dim", [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 0], ["dimension 1 of 2 is 0", "at least 1"] },
        { "negative dim", [0, 0, 0x08, 1, 0xFF, 0xFF, 0xFF, 0xFB, 1, 2], ["dimension 0 of 1 is -5", "0xFFFFFFFB"] },
        { "truncated data", [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4], ["header says 2 x 3 = 6 bytes of data, file has 4"] },
        { "truncated int data", [0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0], ["header says 2 = 2 int values = 8 bytes of data, file has 6"] },
        { "trailing garbage", [0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3, 4, 5], ["file has 5", "3 bytes of trailing data"] },
        { "overflowing dims", [0, 0, 0x08, 3, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF], ["2147483647 x 2147483647 x 2147483647", "more than the largest array"] },
        { "too many doubles", [0, 0, 0x0E, 1, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3], ["2147483647 double values = 17179869176 bytes", "more than the largest array"] },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void IdxReader_BadRawFile_ThrowsInvalidDataNamingFileAndField(string name, byte[] bytes, string[] fragments)
    {
        using var dir = new TempDirectory();
        var path = dir.Write(name.Replace(' ', '-') + ".idx", bytes);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void IdxReader_BadGzipFile_ThrowsInvalidDataNamingFileAndField(string name, byte[] bytes, string[] fragments)
    {
        using var dir = new TempDirectory();
        var path = dir.Write(name.Replace(' ', '-') + ".idx.gz", bytes, gzip: true);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        foreach (var f in fragments)
            Assert.Contains(f.Replace("ends after", "decompressed data ends after"), e.Message.Replace("file ends after", "decompressed data ends after"));
    }

    [Fact]
    public void IdxReader_HeaderLiesAboutSize_MessageGivesClaimAndActual()
    {
        using var dir = new TempDirectory();
        var bytes = IdxBytes.UByte(new byte[1000], 60000, 28, 28);
        var raw = dir.Write("train-images-idx3-ubyte", bytes);
        var gz = dir.Write("train-images-idx3-ubyte.gz", bytes, gzip: true);

        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(raw));
        Assert.Equal($"{raw}: header says 60000 x 28 x 28 = 47040000 bytes of data, file has 1000.", e.Message);
        e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(gz));
        Assert.Equal($"{gz}: header says 60000 x 28 x 28 = 47040000 bytes of data, file has 1000 (after decompression).", e.Message);
    }

    [Fact]
    public void IdxReader_GzipTrailingGarbage_Throws()
    {
        using var dir = new TempDirectory();
        var path = dir.Write("t.gz", [.. IdxBytes.UByte([1, 2], 2), 9, 9], gzip: true);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.Contains("2 bytes of trailing data", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void IdxReader_CorruptGzipStream_ThrowsInvalidDataNamingFile()
    {
        using var dir = new TempDirectory();
        var path = dir.Write("corrupt.gz", [0x1f, 0x8b, 0x08, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("gzip", e.Message);
    }

    [Fact]
    public void IdxReader_TruncatedGzipStream_ThrowsInvalidData()
    {
        using var dir = new TempDirectory();
        var full = dir.Write("full.gz", IdxBytes.UByte(Enumerable.Range(0, 4000).Select(i => (byte)(i * 31 % 251)).ToArray(), 40, 100), gzip: true);
        var bytes = File.ReadAllBytes(full);
        var path = dir.Write("cut.gz", bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void IdxArray_BadShape_Throws()
    {
        Assert.Throws<ArgumentException>(() => new IdxArray(new byte[6], 2, 2));
        Assert.Throws<ArgumentException>(() => new IdxArray(new byte[0], 0));
        Assert.Throws<ArgumentException>(() => new IdxArray(new long[2], 2));
        Assert.Throws<ArgumentException>(() => new IdxArray(new uint[2], 2));
    }
}
