using System.Globalization;
using System.Text;
using nietras.SeparatedValues;

namespace GradFlow.Data;

/// <summary>
/// The feature columns of a CSV/TSV table read from disk batch by batch (<see cref="IInputSource"/>
/// of a streamed <see cref="Dataset"/>): <see cref="Open"/> checks every row with the parser
/// <see cref="Tabular.Read(string, string, IReadOnlyList{string}?)"/> uses (Sep) and builds an index
/// of the rows' byte ranges in one scan; <see cref="Read"/> then reads only the rows asked for,
/// seeking to each, and parses them with Sep as the in-memory path does.
/// </summary>
/// <remarks>
/// Memory: the index holds 20 bytes per row (start, end, line); a read holds its rows' text and
/// values. The file must be UTF-8 (with or without a byte-order mark) and must not change while it
/// is used (its length and time of last write are checked at every read). The scan splits rows as
/// Sep does — a <c>"</c> toggles quoting, <c>\n</c>, <c>\r\n</c> and <c>\r</c> outside quotes end a
/// row — and each row it finds must start on the line Sep reported for it, else the file is refused.
/// </remarks>
public sealed class StreamedTable : IInputSource
{
    private readonly long[] _start, _end;
    private readonly int[] _line;
    private readonly int[] _featureIndex;
    private readonly int _columns;
    private readonly char _separator;
    private readonly long _length;
    private readonly DateTime _written;

    private StreamedTable(string path, IReadOnlyList<string> featureNames, int[] featureIndex, int columns, long[] start, long[] end, int[] line)
    {
        Path = path;
        FeatureNames = featureNames;
        _featureIndex = featureIndex;
        _columns = columns;
        _start = start;
        _end = end;
        _line = line;
        _separator = Tabular.Separator(path);
        var info = new FileInfo(path);
        _length = info.Length;
        _written = info.LastWriteTimeUtc;
        ExampleShape = [featureNames.Count];
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The feature columns in file order.</summary>
    public IReadOnlyList<string> FeatureNames { get; }

    /// <inheritdoc />
    public int Count => _start.Length;

    /// <inheritdoc />
    public IReadOnlyList<int> ExampleShape { get; }

    /// <summary>
    /// Checks <paramref name="path"/> as <see cref="Tabular.Read(string, string, IReadOnlyList{string}?)"/> does
    /// (the same errors, naming file, line and column) without keeping the features, and indexes its rows.
    /// </summary>
    /// <returns>The source, and the table's target column and line numbers (<see cref="TableColumns.Features"/> empty).</returns>
    /// <exception cref="FileNotFoundException">when the file does not exist.</exception>
    /// <exception cref="InvalidDataException">for what the in-memory reader refuses, a file that is not UTF-8, or rows the scan cannot find where Sep found them.</exception>
    public static (StreamedTable Source, TableColumns Columns) Open(string path, string target, IReadOnlyList<string>? featureNames = null)
    {
        var (columns, count, featureIndex) = Tabular.ReadRows(path, target, featureNames, keepFeatures: false);
        var start = new long[columns.Rows];
        var end = new long[columns.Rows];
        int k = 0;
        long pending = -1;
        // rows the scan finds, matched by line to the rows Sep read (the scan also finds the header and blank lines, which Sep's rows skip)
        foreach (var (offset, line) in Scan(path))
        {
            if (pending >= 0) { end[k++] = offset; pending = -1; }
            if (k == columns.Rows) break;
            if (line == columns.Lines[k]) { start[k] = offset; pending = offset; }
            else if (line > columns.Lines[k])
                throw Tabular.Bad(path, columns.Lines[k], null, "cannot index this row for streaming (its start was not found where the CSV parser read it)");
        }
        if (pending >= 0) end[k++] = new FileInfo(path).Length;
        if (k != columns.Rows)
            throw Tabular.Bad(path, columns.Lines[k], null, "cannot index this row for streaming (its start was not found where the CSV parser read it)");
        return (new StreamedTable(path, columns.FeatureNames, featureIndex, count, start, end, [.. columns.Lines]), columns);
    }

    /// <summary>The byte offset and line (1-based) of every row start, the header's first, as Sep splits rows.</summary>
    private static IEnumerable<(long Offset, int Line)> Scan(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var buffer = new byte[1 << 16];
        int read = stream.Read(buffer, 0, buffer.Length);
        long position = 0;
        int i = 0;
        if (read >= 2 && (buffer[0] == 0xFF && buffer[1] == 0xFE || buffer[0] == 0xFE && buffer[1] == 0xFF))
            throw new InvalidDataException($"csv: {path}: the file is UTF-16; streaming reads UTF-8 files (convert it, or load it without --stream).");
        if (read >= 3 && buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF) i = 3;
        bool quoted = false, afterCr = false;
        int line = 1;
        long next = i; // where the next row starts, once a byte is there
        while (read > 0)
        {
            for (; i < read; i++)
            {
                long p = position + i;
                byte b = buffer[i];
                if (afterCr && b == (byte)'\n')
                {
                    afterCr = false;
                    if (next == p) next = p + 1; // the LF of a CRLF that ended the row
                    continue;
                }
                afterCr = false;
                if (next == p) { yield return (p, line); next = -1; }
                if (b == (byte)'"') quoted = !quoted;
                else if (b is (byte)'\n' or (byte)'\r')
                {
                    line++;
                    afterCr = b == (byte)'\r';
                    if (!quoted) next = p + 1;
                }
            }
            position += read;
            i = 0;
            read = stream.Read(buffer, 0, buffer.Length);
        }
    }

    /// <inheritdoc />
    /// <exception cref="InvalidDataException">naming file, line and column for a value that does not parse, or when the file changed since it was indexed.</exception>
    public void Read(ReadOnlySpan<int> rows, Span<float> destination)
    {
        int f = _featureIndex.Length;
        if (destination.Length != rows.Length * f)
            throw new ArgumentException($"StreamedTable.Read: {destination.Length} values for {rows.Length} rows of {f} features.", nameof(destination));
        if (rows.Length == 0) return;
        var info = new FileInfo(Path);
        if (!info.Exists || info.Length != _length || info.LastWriteTimeUtc != _written)
            throw new InvalidDataException($"csv: {Path}: the file changed after it was indexed for streaming; load it again.");
        var text = new StringBuilder();
        using (var handle = File.OpenHandle(Path))
        {
            byte[] bytes = [];
            foreach (int r in rows)
            {
                if ((uint)r >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(rows), $"StreamedTable.Read: row {r} is outside 0..{Count - 1}.");
                int length = checked((int)(_end[r] - _start[r]));
                if (bytes.Length < length) bytes = new byte[Math.Max(length, 2 * bytes.Length)];
                int got = 0;
                while (got < length)
                {
                    int n = RandomAccess.Read(handle, bytes.AsSpan(got, length - got), _start[r] + got);
                    if (n == 0) throw new InvalidDataException($"csv: {Path}: line {_line[r]}: the file ended inside the row (it changed after it was indexed?).");
                    got += n;
                }
                text.Append(Encoding.UTF8.GetString(bytes, 0, length));
                if (length == 0 || bytes[length - 1] is not ((byte)'\n' or (byte)'\r')) text.Append('\n');
            }
        }
        using var reader = Sep.Reader(o => o with { Sep = new Sep(_separator), Unescape = true, HasHeader = false, DisableColCountCheck = true, CultureInfo = CultureInfo.InvariantCulture })
            .FromText(text.ToString());
        int k = 0;
        foreach (var row in reader)
        {
            if (k == rows.Length) throw new InvalidDataException($"csv: {Path}: line {_line[rows[k - 1]]}: the row reads as more than one row (the file changed after it was indexed?).");
            int line = _line[rows[k]];
            if (row.ColCount != _columns)
                throw Tabular.Bad(Path, line, null, $"found {row.ColCount} column(s), expected {_columns} as in the header");
            for (int j = 0; j < f; j++) destination[k * f + j] = Tabular.Feature(row[_featureIndex[j]].Span, Path, line, FeatureNames[j]);
            k++;
        }
        if (k != rows.Length) throw new InvalidDataException($"csv: {Path}: {rows.Length} rows read as {k} (the file changed after it was indexed?).");
    }
}
