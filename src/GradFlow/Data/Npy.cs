using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace GradFlow.Data;

/// <summary>
/// One array read from a NumPy <c>.npy</c> file: its shape, whether its dtype is an integer (or
/// boolean) type, and its values converted to double in C (row-major) order.
/// </summary>
/// <param name="Name">The file or NPZ member it came from (for error messages).</param>
/// <param name="DType">The dtype string as written in the header, e.g. <c>&lt;f4</c>.</param>
/// <param name="IsInteger">True for the integer and boolean kinds (<c>i</c>, <c>u</c>, <c>b</c>).</param>
/// <param name="Shape">The dimensions (empty for a 0-d array).</param>
/// <param name="Values">The values in row-major order (a Fortran-order file is transposed on reading).</param>
public sealed record NpyArray(string Name, string DType, bool IsInteger, int[] Shape, double[] Values);

/// <summary>
/// Reader of NumPy's <c>.npy</c> format (versions 1.0, 2.0 and 3.0) and of <c>.npz</c> archives of
/// them, following numpy/lib/format.py: the magic <c>\x93NUMPY</c>, a version byte pair, a
/// little-endian header length (2 bytes in 1.0, 4 in 2.0 and 3.0), a header that is a Python dict
/// literal with exactly the keys <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, then the raw
/// data. Supported dtypes: <c>f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1</c> in either byte order
/// (<c>&lt; &gt; | =</c>). Structured, object, string and complex dtypes are refused.
/// </summary>
/// <remarks>
/// Every failure is an <see cref="InvalidDataException"/> naming the file (and the NPZ member) and
/// the field at fault. Nothing is allocated before the header's shape has been checked against the
/// bytes actually present, so a corrupt header cannot ask for more memory than the file holds.
/// </remarks>
public static class Npy
{
    /// <summary>The longest header accepted (numpy itself caps it at 10 000 bytes by default).</summary>
    public const int MaxHeaderBytes = 65_536;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads the <c>.npy</c> file at <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">when the file does not exist.</exception>
    /// <exception cref="InvalidDataException">naming the file and the field when it is not a valid, supported NPY file.</exception>
    public static NpyArray Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"npy: {path} does not exist.", path);
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads every <c>NAME.npy</c> member of the <c>.npz</c> archive at <paramref name="path"/>, keyed by NAME.</summary>
    /// <exception cref="FileNotFoundException">when the file does not exist.</exception>
    /// <exception cref="InvalidDataException">naming the archive and the member when the archive or a member is invalid.</exception>
    public static IReadOnlyDictionary<string, NpyArray> ReadNpz(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"npz: {path} does not exist.", path);
        long fileLength = new FileInfo(path).Length;
        var result = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        try
        {
            using var zip = ZipFile.OpenRead(path);
            foreach (var entry in zip.Entries)
            {
                if (!entry.FullName.EndsWith(".npy", StringComparison.Ordinal))
                    throw new InvalidDataException($"npz: {path}: member '{entry.FullName}' is not an .npy array.");
                string name = entry.FullName[..^4];
                if (result.ContainsKey(name)) throw new InvalidDataException($"npz: {path}: member '{entry.FullName}' appears twice.");
                // Deflate expands at most 1032:1; a member declaring more than that of its compressed size lies.
                long declared = entry.Length;
                if (declared < 0 || declared > 1032 * Math.Max(entry.CompressedLength, 1) + 1024 || declared > Array.MaxLength
                    || entry.CompressedLength > fileLength)
                    throw new InvalidDataException($"npz: {path}: member '{entry.FullName}' declares {declared} bytes from {entry.CompressedLength} compressed bytes, which no valid archive does.");
                var bytes = new byte[declared];
                using (var s = entry.Open())
                {
                    int got = s.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
                    if (got != bytes.Length)
                        throw new InvalidDataException($"npz: {path}: member '{entry.FullName}' holds {got} bytes but declares {declared}.");
                    if (s.ReadByte() != -1)
                        throw new InvalidDataException($"npz: {path}: member '{entry.FullName}' holds more bytes than the {declared} it declares.");
                }
                result.Add(name, Parse(bytes, $"{path}:{entry.FullName}"));
            }
        }
        catch (Exception e) when (e is IOException and not FileNotFoundException or NotSupportedException or ArgumentException)
        {
            // System.IO.Compression reports some corrupt archives (bad compression method, bad names) this way
            throw new InvalidDataException($"npz: {path}: not a valid zip archive ({e.Message})", e);
        }
        return result;
    }

    /// <summary>Parses the bytes of one NPY file; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">when the bytes are not a valid, supported NPY file.</exception>
    public static NpyArray Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw Bad(source, "the file does not start with the NPY magic \\x93NUMPY");
        byte major = bytes[6], minor = bytes[7];
        if (major is not (1 or 2 or 3) || minor != 0)
            throw Bad(source, $"format version {major}.{minor} is not supported (1.0, 2.0 or 3.0)");
        int prefix = major == 1 ? 10 : 12;
        if (bytes.Length < prefix) throw Bad(source, $"the file has {bytes.Length} bytes, fewer than the {prefix}-byte preamble");
        long headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]) : BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
        if (headerLength > MaxHeaderBytes) throw Bad(source, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if (prefix + headerLength > bytes.Length)
            throw Bad(source, $"header length {headerLength} runs past the end of the file ({bytes.Length} bytes)");
        var headerBytes = bytes.Slice(prefix, (int)headerLength);
        string header;
        try
        {
            header = (major == 3 ? new UTF8Encoding(false, true) : (Encoding)Encoding.Latin1).GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw Bad(source, "the header is not valid UTF-8");
        }
        var (descr, fortran, shape) = ParseHeader(source, header);
        var (isInteger, size, bigEndian, kind) = ParseDType(source, descr);

        var data = bytes[(prefix + (int)headerLength)..];
        long count = shape.Contains(0) ? 0 : 1;
        foreach (int d in shape)
            if (count > 0 && (count *= d) > data.Length) break; // stops before the product can overflow
        if (count > data.Length / size)
            throw Bad(source, $"shape ({string.Join(", ", shape)}) of {descr} needs {shape.Aggregate((double)size, (a, d) => a * d):G6} bytes but the data holds {data.Length}");
        if (count * size != data.Length)
            throw Bad(source, $"shape ({string.Join(", ", shape)}) of {descr} needs {count * size} bytes but the data holds {data.Length} (extra bytes at the end)");

        var values = new double[count];
        for (int i = 0; i < values.Length; i++) values[i] = Element(data.Slice(i * size, size), kind, size, bigEndian);
        if (fortran && shape.Length > 1) values = FortranToC(values, shape);
        return new NpyArray(source, descr, isInteger, shape, values);
    }

    private static double Element(ReadOnlySpan<byte> s, char kind, int size, bool big)
    {
        switch (kind, size)
        {
            case ('f', 2): return (double)BitConverter.UInt16BitsToHalf(big ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s));
            case ('f', 4): return big ? BinaryPrimitives.ReadSingleBigEndian(s) : BinaryPrimitives.ReadSingleLittleEndian(s);
            case ('f', 8): return big ? BinaryPrimitives.ReadDoubleBigEndian(s) : BinaryPrimitives.ReadDoubleLittleEndian(s);
            case ('i', 1): return (sbyte)s[0];
            case ('i', 2): return big ? BinaryPrimitives.ReadInt16BigEndian(s) : BinaryPrimitives.ReadInt16LittleEndian(s);
            case ('i', 4): return big ? BinaryPrimitives.ReadInt32BigEndian(s) : BinaryPrimitives.ReadInt32LittleEndian(s);
            case ('i', 8): return big ? BinaryPrimitives.ReadInt64BigEndian(s) : BinaryPrimitives.ReadInt64LittleEndian(s);
            case ('u', 1): return s[0];
            case ('u', 2): return big ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);
            case ('u', 4): return big ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);
            case ('u', 8): return big ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);
            default: return s[0] != 0 ? 1 : 0; // b1
        }
    }

    /// <summary>Reorders column-major values (first index fastest) into row-major order.</summary>
    private static double[] FortranToC(double[] f, int[] shape)
    {
        var c = new double[f.Length];
        int rank = shape.Length;
        var index = new int[rank];
        var fStride = new long[rank];
        long s = 1;
        for (int d = 0; d < rank; d++)
        {
            fStride[d] = s;
            s *= shape[d];
        }
        for (int i = 0; i < c.Length; i++)
        {
            long at = 0;
            for (int d = 0; d < rank; d++) at += index[d] * fStride[d];
            c[i] = f[at];
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
            }
        }
        return c;
    }

    private static (bool IsInteger, int Size, bool BigEndian, char Kind) ParseDType(string source, string descr)
    {
        if (descr.Length < 3 || descr[0] is not ('<' or '>' or '|' or '='))
            throw Bad(source, $"dtype '{descr}' is not supported (a simple numeric type such as '<f4', '<i8' or '|u1')");
        char kind = descr[1];
        if (!int.TryParse(descr.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int size))
            throw Bad(source, $"dtype '{descr}' is not supported (a simple numeric type such as '<f4', '<i8' or '|u1')");
        bool ok = kind switch
        {
            'f' => size is 2 or 4 or 8,
            'i' or 'u' => size is 1 or 2 or 4 or 8,
            'b' => size == 1,
            _ => false,
        };
        if (!ok) throw Bad(source, $"dtype '{descr}' is not supported (float f2/f4/f8, int i1..i8, unsigned u1..u8 or bool b1)");
        bool big = descr[0] == '>' || (descr[0] == '=' && !BitConverter.IsLittleEndian);
        return (kind != 'f', size, big, kind);
    }

    // ------------------------------------------------------------------ the header dict literal

    private static (string Descr, bool Fortran, int[] Shape) ParseHeader(string source, string header)
    {
        var p = new HeaderParser(source, header);
        p.Skip();
        p.Expect('{');
        string? descr = null;
        bool? fortran = null;
        int[]? shape = null;
        while (true)
        {
            p.Skip();
            if (p.TryTake('}')) break;
            string key = p.String();
            p.Skip();
            p.Expect(':');
            p.Skip();
            switch (key)
            {
                case "descr" when descr is null: descr = p.String(); break;
                case "fortran_order" when fortran is null: fortran = p.Bool(); break;
                case "shape" when shape is null: shape = p.Tuple(); break;
                case "descr" or "fortran_order" or "shape": throw Bad(source, $"header key '{key}' appears twice");
                default: throw Bad(source, $"header has the unexpected key '{key}' (expected descr, fortran_order, shape)");
            }
            p.Skip();
            if (p.TryTake('}')) break;
            p.Expect(',');
        }
        p.Skip();
        if (!p.AtEnd) throw Bad(source, $"header has text after the closing brace at offset {p.Position}");
        if (descr is null) throw Bad(source, "header lacks the key 'descr'");
        if (fortran is null) throw Bad(source, "header lacks the key 'fortran_order'");
        if (shape is null) throw Bad(source, "header lacks the key 'shape'");
        return (descr, fortran.Value, shape);
    }

    private sealed class HeaderParser(string source, string text)
    {
        private int _at;

        public int Position => _at;

        public bool AtEnd => _at >= text.Length;

        public void Skip()
        {
            while (_at < text.Length && text[_at] is ' ' or '\n' or '\t' or '\r') _at++;
        }

        public bool TryTake(char c)
        {
            if (_at < text.Length && text[_at] == c)
            {
                _at++;
                return true;
            }
            return false;
        }

        public void Expect(char c)
        {
            if (!TryTake(c))
                throw Bad(source, $"header: expected '{c}' at offset {_at}, found {(AtEnd ? "the end" : $"'{text[_at]}'")}");
        }

        public string String()
        {
            if (AtEnd || text[_at] is not ('\'' or '"')) throw Bad(source, $"header: expected a quoted string at offset {_at}");
            char q = text[_at++];
            int start = _at;
            while (_at < text.Length && text[_at] != q)
            {
                if (text[_at] == '\\') throw Bad(source, $"header: escapes in strings are not supported (offset {_at})");
                _at++;
            }
            if (AtEnd) throw Bad(source, $"header: the string starting at offset {start - 1} is not closed");
            return text[start.._at++];
        }

        public bool Bool()
        {
            if (text.AsSpan(_at).StartsWith("True", StringComparison.Ordinal))
            {
                _at += 4;
                return true;
            }
            if (text.AsSpan(_at).StartsWith("False", StringComparison.Ordinal))
            {
                _at += 5;
                return false;
            }
            throw Bad(source, $"header: fortran_order must be True or False (offset {_at})");
        }

        public int[] Tuple()
        {
            Expect('(');
            var dims = new List<int>();
            while (true)
            {
                Skip();
                if (TryTake(')')) break;
                int start = _at;
                while (_at < text.Length && char.IsAsciiDigit(text[_at])) _at++;
                if (_at == start) throw Bad(source, $"header: shape has a non-integer entry at offset {start}");
                if (!int.TryParse(text.AsSpan(start, _at - start), NumberStyles.None, CultureInfo.InvariantCulture, out int d))
                    throw Bad(source, $"header: shape dimension {text[start.._at]} exceeds {int.MaxValue}");
                if (dims.Count == 32) throw Bad(source, "header: shape has more than 32 dimensions");
                dims.Add(d);
                Skip();
                if (TryTake(')')) break;
                Expect(',');
            }
            return [.. dims];
        }
    }

    private static InvalidDataException Bad(string source, string what) => new($"npy: {source}: {what}.");
}
