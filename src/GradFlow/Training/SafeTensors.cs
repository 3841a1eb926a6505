using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>
/// Reads and writes safetensors files (Hugging Face's format, readable by PyTorch's
/// <c>safetensors.torch.load_file</c>): an 8-byte little-endian header length N, N bytes of JSON
/// <c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>
/// padded with spaces to a multiple of 8, then the tensors' little-endian bytes, contiguous, in
/// offset order with no gaps.
/// </summary>
/// <remarks>
/// GradFlow writes F32 and F64; it reads F32, F64, F16, BF16 (converted to float32) and the integer
/// types I64, I32, I16, I8, U8, BOOL (converted to float64, so exact up to 2⁵³). Writing is atomic
/// (<see cref="AtomicFile"/>). Reading validates the whole header against the file size before any
/// data is read, then streams each tensor from the file into its own array (never the whole file, nor
/// a tensor twice); a tensor of more bytes than one .NET array holds (about 2³¹) is refused with an
/// <see cref="InvalidDataException"/> naming it and its size. Every error names the file and the
/// tensor or field.
/// </remarks>
public static class SafeTensors
{
    /// <summary>Largest header accepted (the reference implementation's limit, 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Writes <paramref name="tensors"/> (names unique) and optional string metadata to <paramref name="path"/>, atomically.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>();
        foreach (var (name, _) in list)
        {
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"safetensors: invalid tensor name '{name}' for {path}.");
            if (!names.Add(name)) throw new ArgumentException($"safetensors: tensor name '{name}' appears twice (writing {path}).");
        }
        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                long bytes = (long)t.Count * (t.DType == DType.Float64 ? 8 : 4);
                json.WriteStartObject(name);
                json.WriteString("dtype", t.DType == DType.Float64 ? "F64" : "F32");
                json.WriteStartArray("shape");
                foreach (int d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        var headerBytes = header.ToArray();
        int padded = (headerBytes.Length + 7) / 8 * 8;
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            s.Write(len);
            s.Write(headerBytes);
            for (int i = headerBytes.Length; i < padded; i++) s.WriteByte((byte)' ');
            foreach (var (_, t) in list)
            {
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors: big-endian hosts are not supported.");
                if (t.DType == DType.Float64) s.Write(MemoryMarshal.AsBytes(t.Span<double>()));
                else s.Write(MemoryMarshal.AsBytes(t.Span<float>()));
            }
        });
    }

    /// <summary>The contents of a safetensors file: tensors in file order, and metadata.</summary>
    /// <param name="Tensors">Name → tensor, in the order of their data offsets.</param>
    /// <param name="Metadata">The <c>__metadata__</c> strings (empty when absent).</param>
    public sealed record Contents(IReadOnlyList<KeyValuePair<string, Tensor>> Tensors, IReadOnlyDictionary<string, string> Metadata)
    {
        /// <summary>Each tensor's dtype as the file states it (<c>F32</c>, <c>I64</c>, ...): integer types are read into float64 tensors.</summary>
        public IReadOnlyDictionary<string, string> DTypes { get; init; } = new Dictionary<string, string>();

        /// <summary>The tensors as a dictionary.</summary>
        public IReadOnlyDictionary<string, Tensor> ToDictionary() => Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);

        /// <summary>The tensor called <paramref name="name"/>; throws naming the missing key and those present.</summary>
        public Tensor this[string name] => Tensors.FirstOrDefault(kv => kv.Key == name).Value
            ?? throw new KeyNotFoundException($"safetensors: no tensor named '{name}' (present: {string.Join(", ", Tensors.Select(kv => kv.Key))}).");
    }

    private sealed record Entry(string Name, string DType, int[] Shape, long Begin, long End);

    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">naming the file and the field when the file is truncated, corrupt or lies about sizes.</exception>
    public static Contents Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors: {path} does not exist.", path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long fileLength = stream.Length;
        string file = Path.GetFileName(path);
        if (fileLength < 8) throw Bad(file, $"the file has {fileLength} bytes, fewer than the 8-byte header length");
        Span<byte> len = stackalloc byte[8];
        stream.ReadExactly(len);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (headerLength > MaxHeaderBytes) throw Bad(file, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if ((long)headerLength > fileLength - 8)
            throw Bad(file, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        var (entries, metadata) = ParseHeader(file, headerBytes);
        long dataLength = fileLength - 8 - (long)headerLength;
        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long expected = 0;
        foreach (var e in entries)
        {
            if (e.Begin != expected)
                throw Bad(file, $"tensor '{e.Name}': data_offsets begin at {e.Begin}, expected {expected} (data must be contiguous without gaps or overlaps)");
            long bytes = ByteSize(file, e);
            if (e.End - e.Begin != bytes)
                throw Bad(file, $"tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] of {e.DType} needs {bytes} bytes but data_offsets span {e.End - e.Begin}");
            if (e.End > dataLength)
                throw Bad(file, $"tensor '{e.Name}': data_offsets end at {e.End} but the data section has {dataLength} bytes (truncated file?)");
            if (bytes > Array.MaxLength)
                throw Bad(file, $"tensor '{e.Name}' ({e.DType} [{string.Join(", ", e.Shape)}]) holds {bytes} bytes ({bytes / (double)(1L << 30):F1} GiB), " +
                    $"more than one .NET array can hold ({Array.MaxLength} bytes); GradFlow cannot load it (split it into smaller tensors)");
            expected = e.End;
        }
        if (expected != dataLength)
            throw Bad(file, $"the data section has {dataLength} bytes but the tensors cover {expected}");

        var result = new List<KeyValuePair<string, Tensor>>(entries.Count);
        var chunk = new byte[ChunkBytes];
        foreach (var e in entries) result.Add(new(e.Name, Decode(file, e, stream, chunk)));
        return new Contents(result, metadata) { DTypes = entries.ToDictionary(e => e.Name, e => e.DType, StringComparer.Ordinal) };
    }

    /// <summary>Bytes converted per read when a tensor's type differs from its in-memory type (F16, BF16, integers).</summary>
    private const int ChunkBytes = 1 << 16;

    /// <summary>The bytes a tensor's shape and dtype need; throws naming the tensor when that overflows.</summary>
    private static long ByteSize(string file, Entry e)
    {
        try
        {
            long count = 1;
            foreach (int d in e.Shape) count = checked(count * d);
            return checked(count * ElementSize(file, e));
        }
        catch (OverflowException)
        {
            throw Bad(file, $"tensor '{e.Name}': shape [{string.Join(", ", e.Shape)}] of {e.DType} has more bytes than a file can hold");
        }
    }

    private static (List<Entry>, Dictionary<string, string>) ParseHeader(string file, byte[] header)
    {
        try
        {
            return ParseHeaderCore(file, header);
        }
        catch (InvalidOperationException e)
        {
            // System.Text.Json reports invalid UTF-8 in names and strings this way
            throw Bad(file, $"the header is not valid UTF-8 JSON ({e.Message})");
        }
    }

    private static (List<Entry>, Dictionary<string, string>) ParseHeaderCore(string file, byte[] header)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Bad(file, $"the header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(file, "the header is not a JSON object");
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(file, "__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad(file, $"__metadata__ field '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                var v = prop.Value;
                if (v.ValueKind != JsonValueKind.Object) throw Bad(file, $"tensor '{prop.Name}': entry is not an object");
                if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
                    throw Bad(file, $"tensor '{prop.Name}': missing or non-string field 'dtype'");
                if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
                    throw Bad(file, $"tensor '{prop.Name}': missing or non-array field 'shape'");
                if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
                    throw Bad(file, $"tensor '{prop.Name}': field 'data_offsets' must be an array of two integers");
                var shape = new int[sh.GetArrayLength()];
                int i = 0;
                foreach (var d in sh.EnumerateArray())
                {
                    if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int di) || di < 0)
                        throw Bad(file, $"tensor '{prop.Name}': field 'shape' has an invalid dimension {d.GetRawText()}");
                    shape[i++] = di;
                }
                var o = off.EnumerateArray().ToArray();
                if (!o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end) || begin < 0 || end < begin)
                    throw Bad(file, $"tensor '{prop.Name}': field 'data_offsets' [{o[0].GetRawText()}, {o[1].GetRawText()}] is not a valid range");
                if (entries.Exists(x => x.Name == prop.Name)) throw Bad(file, $"tensor '{prop.Name}' appears twice in the header");
                entries.Add(new Entry(prop.Name, dt.GetString()!, shape, begin, end));
            }
            return (entries, metadata);
        }
    }

    private static int ElementSize(string file, Entry e) => e.DType switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => throw Bad(file, $"tensor '{e.Name}': unsupported dtype '{e.DType}'"),
    };

    /// <summary>
    /// Reads one tensor's bytes from <paramref name="stream"/> (positioned at them) straight into its
    /// array: F32 and F64 in one read into the array's memory, the other types through
    /// <paramref name="chunk"/> a chunk at a time, so no tensor is ever held twice.
    /// </summary>
    private static Tensor Decode(string file, Entry e, Stream stream, byte[] chunk)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors: big-endian hosts are not supported.");
        int n = (int)((e.End - e.Begin) / ElementSize(file, e));
        int[] shape = e.Shape;
        switch (e.DType)
        {
            case "F32":
            {
                var f = new float[n];
                stream.ReadExactly(MemoryMarshal.AsBytes(f.AsSpan()));
                return Tensor.FromArray(f, shape.Length == 0 ? [] : shape).ReshapeRaw(shape);
            }
            case "F64":
            {
                var d = new double[n];
                stream.ReadExactly(MemoryMarshal.AsBytes(d.AsSpan()));
                return Tensor.FromArray(d, shape.Length == 0 ? [] : shape).ReshapeRaw(shape);
            }
            case "F16":
            case "BF16":
            {
                var f = new float[n];
                bool half = e.DType == "F16";
                ReadChunked(stream, chunk, n, 2, (raw, at) =>
                {
                    for (int i = 0; i < raw.Length / 2; i++)
                    {
                        ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(raw[(i * 2)..]);
                        f[at + i] = half ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.Int32BitsToSingle(bits << 16);
                    }
                });
                return Tensor.FromArray(f, shape.Length == 0 ? [] : shape).ReshapeRaw(shape);
            }
            default:
            {
                int size = ElementSize(file, e);
                var d = new double[n];
                string dtype = e.DType;
                ReadChunked(stream, chunk, n, size, (raw, at) =>
                {
                    for (int i = 0; i < raw.Length / size; i++)
                    {
                        var s = raw.Slice(i * size, size);
                        d[at + i] = dtype switch
                        {
                            "I64" => BinaryPrimitives.ReadInt64LittleEndian(s),
                            "U64" => BinaryPrimitives.ReadUInt64LittleEndian(s),
                            "I32" => BinaryPrimitives.ReadInt32LittleEndian(s),
                            "U32" => BinaryPrimitives.ReadUInt32LittleEndian(s),
                            "I16" => BinaryPrimitives.ReadInt16LittleEndian(s),
                            "U16" => BinaryPrimitives.ReadUInt16LittleEndian(s),
                            "I8" => (sbyte)s[0],
                            _ => s[0],
                        };
                    }
                });
                return Tensor.FromArray(d, shape.Length == 0 ? [] : shape).ReshapeRaw(shape);
            }
        }
    }

    private delegate void ChunkConverter(ReadOnlySpan<byte> raw, int firstElement);

    /// <summary>Reads <paramref name="count"/> elements of <paramref name="size"/> bytes through <paramref name="chunk"/>, converting each chunk.</summary>
    private static void ReadChunked(Stream stream, byte[] chunk, int count, int size, ChunkConverter convert)
    {
        int perChunk = chunk.Length / size;
        for (int at = 0; at < count; at += perChunk)
        {
            int m = Math.Min(perChunk, count - at);
            var raw = chunk.AsSpan(0, m * size);
            stream.ReadExactly(raw);
            convert(raw, at);
        }
    }

    private static InvalidDataException Bad(string file, string what) => new($"safetensors: {file}: {what}.");
}
