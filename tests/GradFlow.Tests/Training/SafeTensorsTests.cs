using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public void Write_TwoTensors_ProducesTheSpecifiedByteLayout()
    {
        var path = PathOf("a.safetensors");
        SafeTensors.Write(path, [new("w", Tensor.FromArray([1f, -2f], 1, 2)), new("b", Tensor.FromArray([0.5]))],
            new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n).TrimEnd(' ')).RootElement;
        Assert.Equal("pt", header.GetProperty("__metadata__").GetProperty("format").GetString());
        Assert.Equal("F32", header.GetProperty("w").GetProperty("dtype").GetString());
        Assert.Equal([1, 2], header.GetProperty("w").GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([0L, 8L], header.GetProperty("w").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("F64", header.GetProperty("b").GetProperty("dtype").GetString());
        Assert.Equal([8L, 16L], header.GetProperty("b").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        int data = 8 + (int)n;
        Assert.Equal(data + 16, bytes.Length);
        Assert.Equal(1f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(data)));
        Assert.Equal(-2f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(data + 4)));
        Assert.Equal(0.5, BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(data + 8)));
    }

    [Fact]
    public void ReadWrite_RoundTrip_PreservesNamesShapesValuesAndOrder()
    {
        var g = new Generator(3);
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("layers.0.weight", Tensor.RandN(g, 5, 3)),
            new("layers.0.bias", Tensor.RandN(g, 5)),
            new("scalar", Tensor.Scalar(2.5, DType.Float64)),
            new("empty", Tensor.Zeros(0, 4)),
        };
        var path = PathOf("rt.safetensors");
        SafeTensors.Write(path, tensors);
        var back = SafeTensors.Read(path);
        Assert.Equal(tensors.Select(t => t.Key), back.Tensors.Select(t => t.Key));
        foreach (var (name, t) in tensors)
        {
            var r = back[name];
            Assert.Equal(t.DType, r.DType);
            Assert.Equal(t.Shape.ToArray(), r.Shape.ToArray());
            Assert.Equal(t.ToDoubleArray(), r.ToDoubleArray());
        }
        Assert.Empty(back.Metadata);
    }

    /// <summary>Builds a file from a header object and a data section, as a foreign writer might.</summary>
    private string Craft(string name, string headerJson, byte[] data, ulong? claimedLength = null)
    {
        var h = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimedLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        var path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Read_ForeignIntegerAndHalfTypes_Converts()
    {
        var data = new byte[8 + 2 + 2];
        BinaryPrimitives.WriteInt64LittleEndian(data, 123456789012);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(8), BitConverter.HalfToUInt16Bits((Half)1.5));
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(10), 0x3FC0); // bf16 1.5
        var path = Craft("ints.safetensors",
            """{"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[10,12]}}""",
            data);
        var c = SafeTensors.Read(path);
        Assert.Equal(123456789012.0, c["n"].Item());
        Assert.Equal(1.5, c["h"].Item());
        Assert.Equal(1.5, c["b"].Item());
    }

    public static TheoryData<string, string, int, string> BadFiles => new()
    {
        { "lies", """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "truncated" },
        { "mismatch", """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "needs 12 bytes" },
        { "gap", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "begin at 4" },
        { "dtype", """{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}""", 4, "unsupported dtype 'Q4'" },
        { "json", """{"w":{"dtype":"F32",""", 4, "not valid JSON" },
        { "noshape", """{"w":{"dtype":"F32","data_offsets":[0,4]}}""", 4, "'shape'" },
        { "negdim", """{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "invalid dimension" },
        { "trailing", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, "cover 4" },
        { "offsets", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", 4, "not a valid range" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Read_CorruptFile_ThrowsNamingFileAndField(string name, string header, int dataBytes, string expected)
    {
        var path = Craft(name + ".safetensors", header, new byte[dataBytes]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains(name + ".safetensors", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Read_HeaderLengthBeyondFile_ThrowsNamingFile()
    {
        var path = Craft("huge.safetensors", "{}", [], claimedLength: 1_000_000);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains("huge.safetensors", e.Message);
        Assert.Contains("header length 1000000", e.Message);
    }

    [Fact]
    public void Read_SparseTenGigabyteTensor_ThrowsNamingTensorAndByteSize()
    {
        var path = PathOf("big.safetensors");
        SparseSafeTensors.Write(path, huge: "layers.0.weight");
        Assert.True(new FileInfo(path).Length > 10L << 30);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains("big.safetensors", e.Message);
        Assert.Contains("'layers.0.weight'", e.Message);
        Assert.Contains(SparseSafeTensors.HugeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) + " bytes", e.Message);
    }

    [Fact]
    public void Read_ChunkedTypesLongerThanOneChunk_DecodeEveryElement()
    {
        // 40000 F16 and 40000 I32 values: more than one 64 KiB read each, with a partial last chunk.
        const int n = 40000;
        var data = new byte[n * 2 + n * 4];
        for (int i = 0; i < n; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i * 2), BitConverter.HalfToUInt16Bits((Half)(i % 2048)));
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(n * 2 + i * 4), i * 7 - 100000);
        }
        var path = Craft("chunks.safetensors",
            $$$"""{"h":{"dtype":"F16","shape":[{{{n}}}],"data_offsets":[0,{{{n * 2}}}]},"i":{"dtype":"I32","shape":[{{{n}}}],"data_offsets":[{{{n * 2}}},{{{n * 6}}}]}}""",
            data);
        var c = SafeTensors.Read(path);
        Assert.Equal(Enumerable.Range(0, n).Select(i => (double)(i % 2048)), c["h"].ToDoubleArray());
        Assert.Equal(Enumerable.Range(0, n).Select(i => (double)(i * 7 - 100000)), c["i"].ToDoubleArray());
    }

    [Fact]
    public void Read_ShorterThanLengthField_Throws()
    {
        var path = PathOf("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("tiny.safetensors", Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path)).Message);
    }

    [Fact]
    public void Write_DuplicateName_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => SafeTensors.Write(PathOf("d.safetensors"),
            [new("x", Tensor.Zeros(1)), new("x", Tensor.Zeros(1))]));
        Assert.Contains("'x'", e.Message);
        Assert.False(File.Exists(PathOf("d.safetensors")));
    }

    [Fact]
    public void AtomicWrite_WriterThrows_OldFileIntactAndNoTemporaryLeft()
    {
        var path = PathOf("keep.txt");
        File.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.WriteByte(42);
            throw new InvalidOperationException("crash mid-write");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(_dir));
    }
}
