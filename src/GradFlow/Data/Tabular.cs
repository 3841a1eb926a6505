using System.Globalization;
using System.Text;
using nietras.SeparatedValues;

namespace GradFlow.Data;

/// <summary>What the target column of a table (or the <c>y</c> array of a file) holds.</summary>
public enum TargetKind
{
    /// <summary>Decided from the values: integers or non-numeric strings are class labels, other numbers regression values.</summary>
    Auto,
    /// <summary>Class labels (strings, or whole numbers written as integers or floats: <c>1</c>, <c>1.0</c> and <c>1e0</c> are one class).</summary>
    Classes,
    /// <summary>Regression values.</summary>
    Values,
}

/// <summary>
/// The numeric feature columns and the raw target column of a CSV or TSV file with a header, as read
/// by <see cref="Tabular.Read"/>.
/// </summary>
/// <param name="Path">The file.</param>
/// <param name="FeatureNames">The feature columns in file order (every column but the target).</param>
/// <param name="Features">Row-major <c>[Rows, FeatureNames.Count]</c>.</param>
/// <param name="Target">The target column's text per row (empty for a file without the target column, read by <see cref="Tabular.ReadFeatures"/>).</param>
/// <param name="Lines">The line number (1-based) where each row starts, for error messages.</param>
public sealed record TableColumns(string Path, IReadOnlyList<string> FeatureNames, float[] Features, string[] Target, int[] Lines)
{
    /// <summary>Number of data rows.</summary>
    public int Rows => Lines.Length;

    /// <summary>Whether the file has the target column (a file to predict may not).</summary>
    public bool HasTarget => Target.Length == Lines.Length;
}

/// <summary>
/// CSV/TSV tables with a header: numeric feature columns and a target column named by the caller,
/// parsed with Sep (comma-separated, or tab-separated for a <c>.tsv</c> file; RFC 4180 quotes
/// unescaped). Blank lines (empty, or white space without a separator) are skipped wherever they are,
/// before the header too, as pandas does. Every error is an <see cref="InvalidDataException"/> naming
/// the file, the line (the file's own line number, blank lines counted) and the column.
/// </summary>
/// <example>
/// <code>
/// var table = Tabular.Read("iris.csv", target: "species");
/// var (classNames, labels, _) = Tabular.EncodeTarget([table], "species", TargetKind.Auto);
/// </code>
/// </example>
public static class Tabular
{
    /// <summary>Reads the header and every row of <paramref name="path"/>; <paramref name="target"/> names the target column.</summary>
    /// <param name="path">The file; <c>.tsv</c> is tab-separated, anything else comma-separated.</param>
    /// <param name="target">The target column's name (exact, case-sensitive).</param>
    /// <param name="featureNames">When given (a test file), the feature columns must be exactly these, in this order.</param>
    /// <exception cref="FileNotFoundException">when the file does not exist.</exception>
    /// <exception cref="InvalidDataException">naming file, line and column for a malformed row, a non-numeric feature, or a missing target column.</exception>
    public static TableColumns Read(string path, string target, IReadOnlyList<string>? featureNames = null) =>
        ReadRows(path, target, featureNames, keepFeatures: true).Columns;

    /// <summary>
    /// Reads a file to predict: its columns are exactly <paramref name="featureNames"/> (a trained model's features, in the
    /// training file's order), with or without the target column <paramref name="target"/> among them (without it,
    /// <see cref="TableColumns.Target"/> is empty).
    /// </summary>
    /// <exception cref="InvalidDataException">as <see cref="Read"/>, and naming the columns when they are not the features (and the target).</exception>
    public static TableColumns ReadFeatures(string path, string target, IReadOnlyList<string> featureNames)
    {
        ArgumentNullException.ThrowIfNull(featureNames);
        return ReadRows(path, target, featureNames, keepFeatures: true, targetOptional: true).Columns;
    }

    /// <summary>
    /// <see cref="Read(string, string, IReadOnlyList{string}?)"/>; without <paramref name="keepFeatures"/> every
    /// feature is parsed and checked, but not kept (<see cref="TableColumns.Features"/> is empty): the checking pass of a streamed table.
    /// Also returns the header's column count and the feature columns' indices in it.
    /// </summary>
    internal static (TableColumns Columns, int ColumnCount, int[] FeatureIndex) ReadRows(string path, string target, IReadOnlyList<string>? featureNames, bool keepFeatures,
        bool targetOptional = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(target);
        if (!File.Exists(path)) throw new FileNotFoundException($"csv: {path} does not exist.", path);
        char separator = Separator(path);
        try
        {
            // Sep has no option to skip blank lines; as its README does, the column count is not checked by Sep, blank rows are
            // skipped here, and the header is the first row that is not blank (so Sep is told there is none)
            // strict UTF-8: bytes that are not UTF-8 are refused, not replaced by U+FFFD, which would make distinct class names
            // (Latin-1 'café' and 'cafè') one class
            using var text = Text(path);
            using var reader = Sep.Reader(o => o with
            {
                Sep = new Sep(separator), Unescape = true, HasHeader = false, DisableColCountCheck = true, CultureInfo = CultureInfo.InvariantCulture,
            }).From(text);
            string[]? names = null;
            int headerEnd = 2, targetIndex = -1;
            var features = new List<string>();
            var featureIndex = new List<int>();
            var x = new List<float>();
            var y = new List<string>();
            var lines = new List<int>();
            foreach (var row in reader)
            {
                if (IsBlank(row)) continue;
                // Sep 0.18 without a header reports row 0's LineNumberFrom as the line after it; row 0 starts the file
                int line = row.RowIndex == 0 ? 1 : row.LineNumberFrom;
                if (names is null)
                {
                    names = new string[row.ColCount];
                    for (int i = 0; i < names.Length; i++) names[i] = row[i].ToString();
                    headerEnd = row.LineNumberToExcl;
                    targetIndex = Header(path, line, names, target, featureNames, features, featureIndex, targetOptional);
                    continue;
                }
                if (row.ColCount != names.Length)
                    throw Bad(path, line, null, $"found {row.ColCount} column(s), expected {names.Length} as in the header");
                for (int j = 0; j < featureIndex.Count; j++)
                {
                    float v = Feature(row[featureIndex[j]].Span, path, line, features[j]);
                    if (keepFeatures) x.Add(v);
                }
                lines.Add(line);
                if (targetIndex < 0) continue;
                string t = row[targetIndex].Span.Trim().ToString();
                if (t.Length == 0) throw Bad(path, line, target, "the target is empty");
                y.Add(t);
            }
            if (names is null) throw Bad(path, 1, null, "the file is empty or blank (a header line is needed)");
            if (lines.Count == 0) throw Bad(path, headerEnd, null, "the file has a header but no data rows");
            return (new TableColumns(path, features, [.. x], [.. y], [.. lines]), names.Length, [.. featureIndex]);
        }
        catch (DecoderFallbackException e) when (FirstNonUtf8(path) is var (offset, line, value))
        {
            throw Bad(path, line, null, $"byte 0x{value:X2} at offset {offset} is not UTF-8 text (the file must be UTF-8; convert it, e.g. with iconv)", e);
        }
        catch (Exception e) when (e is not InvalidDataException and (ArgumentException or NotSupportedException or FormatException or IndexOutOfRangeException))
        {
            throw new InvalidDataException($"csv: {path}: {e.Message}", e);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith("csv: ", StringComparison.Ordinal))
        {
            // Sep's own errors name the row and lines; add the file
            throw new InvalidDataException($"csv: {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The text of <paramref name="path"/>: UTF-16 or UTF-32 when a byte-order mark says so, else strict UTF-8 (its mark skipped), whose
    /// decoding throws <see cref="DecoderFallbackException"/> at a byte that is not UTF-8. (A StreamReader that detects marks would
    /// decode a file with UTF-8's mark with the lenient <see cref="Encoding.UTF8"/>.)
    /// </summary>
    private static StreamReader Text(string path)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> head = stackalloc byte[2];
        int n = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        stream.Position = 0;
        bool utf16 = n == 2 && (head[0] == 0xFF && head[1] == 0xFE || head[0] == 0xFE && head[1] == 0xFF);
        return utf16 ? new StreamReader(stream, detectEncodingFromByteOrderMarks: true)
            : new StreamReader(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: true, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: false);
    }

    /// <summary>
    /// A blank line: empty or only white space, with no separator (pandas' <c>skip_blank_lines</c>; a TSV line of tabs is a row of
    /// empty values, as there).
    /// </summary>
    private static bool IsBlank(SepReader.Row row) => row.ColCount == 1 && row.Span.IsWhiteSpace();

    /// <summary>Checks the header <paramref name="names"/> read on <paramref name="line"/>, fills the feature columns, and returns the target's index.</summary>
    private static int Header(string path, int line, string[] names, string target, IReadOnlyList<string>? featureNames, List<string> features, List<int> featureIndex,
        bool targetOptional = false)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
            if (!first.TryAdd(names[i], i))
                throw Bad(path, line, null, $"the column name '{Clip(names[i])}' appears twice (columns {first[names[i]] + 1} and {i + 1}); column names must differ");
        int targetIndex = Array.IndexOf(names, target);
        // a file to predict may leave the target out (targetIndex −1): its columns are then all features
        if (targetIndex < 0 && !(targetOptional && featureNames is not null))
            throw Bad(path, line, null, $"there is no target column '{target}' (columns: {string.Join(", ", names)})");
        for (int i = 0; i < names.Length; i++)
            if (i != targetIndex)
            {
                // pandas' to_csv writes its index as a first column without a name: read as a feature, the row number would be learnt
                if (names[i].Trim().Length == 0)
                    throw Bad(path, line, null, $"column {i + 1} has no name{(i == 0 ? " (pandas writes its index there: save with to_csv(..., index=False))" : "")}; " +
                        "every feature column needs one");
                features.Add(names[i]);
                featureIndex.Add(i);
            }
        if (features.Count == 0) throw Bad(path, line, null, $"the only column is the target '{target}'; at least one feature column is needed");
        if (featureNames is not null && !featureNames.SequenceEqual(features))
            throw Bad(path, line, null, targetIndex < 0
                ? $"the columns ({string.Join(", ", names)}) are not the model's features ({string.Join(", ", featureNames)}), with or without the target column '{target}'"
                : $"the feature columns ({string.Join(", ", features)}) differ from the training file's ({string.Join(", ", featureNames)})");
        return targetIndex;
    }

    /// <summary>
    /// The labels of a target column: class indices into the sorted distinct values of
    /// <paramref name="columns"/> (when every value is a number, the distinct integers in numeric order, so that "1", "01", "+1",
    /// "1.0" and "1e0" are one class named "1"; else the distinct texts, ordinally), or
    /// regression values. <see cref="TargetKind.Auto"/> chooses classes when every value is written as an
    /// integer or some value is not a number, regression values otherwise (a column written as decimals, such as
    /// pandas' "0.0" and "1.0" for a float column, is regression, as a float array's is; <see cref="TargetKind.Classes"/> reads it as classes).
    /// </summary>
    /// <returns>For classes, the class names and each column's labels; for values, each column's values.</returns>
    /// <exception cref="InvalidDataException">
    /// when <see cref="TargetKind.Values"/> meets a non-number, or class labels that are all numbers meet one that is not a whole number
    /// (naming file, line and column).
    /// </exception>
    public static (IReadOnlyList<string>? ClassNames, int[][]? Labels, float[][]? Values) EncodeTarget(IReadOnlyList<TableColumns> columns, string target, TargetKind kind)
    {
        bool allIntegers = true, allNumbers = true;
        foreach (var c in columns)
            foreach (var t in c.Target)
            {
                allIntegers &= long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out _);
                allNumbers &= double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d);
            }
        bool classes = kind == TargetKind.Classes || kind == TargetKind.Auto && (allIntegers || !allNumbers);
        if (!classes)
        {
            var values = new float[columns.Count][];
            for (int k = 0; k < columns.Count; k++)
            {
                var c = columns[k];
                values[k] = new float[c.Rows];
                for (int i = 0; i < c.Rows; i++)
                    if (!double.TryParse(c.Target[i], NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || !double.IsFinite(d))
                        throw Bad(c.Path, c.Lines[i], target, $"'{Clip(c.Target[i])}' is not a finite number (regression targets were asked for)");
                    else values[k][i] = (float)d;
            }
            return (null, null, values);
        }
        if (allNumbers)
        {
            // numeric classes are their values: "1", "01", "+1", " 1", "1.0" and "1e0" are one class, named "1"
            var classValues = new long[columns.Count][];
            for (int k = 0; k < columns.Count; k++)
            {
                var c = columns[k];
                classValues[k] = new long[c.Rows];
                for (int i = 0; i < c.Rows; i++)
                    if (!TryWholeNumber(c.Target[i], out classValues[k][i]))
                        throw Bad(c.Path, c.Lines[i], target, $"'{Clip(c.Target[i])}' is not a whole number, so not a class label " +
                            "(class labels were asked for; numeric labels must be whole numbers such as 1, 1.0 or 1e0)");
            }
            var values = classValues.SelectMany(v => v).Distinct().Order().ToList();
            var byValue = new Dictionary<long, int>();
            for (int i = 0; i < values.Count; i++) byValue[values[i]] = i;
            return (values.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToList(),
                classValues.Select(v => v.Select(t => byValue[t]).ToArray()).ToArray(), null);
        }
        var names = columns.SelectMany(c => c.Target).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++) index[names[i]] = i;
        var labels = columns.Select(c => c.Target.Select(t => index[t]).ToArray()).ToArray();
        return (names, labels, null);
    }

    /// <summary>
    /// The integer <paramref name="text"/> is: written as one ("1", "+1", "01"; any <see cref="long"/>), or as a float that is a whole
    /// number below 2⁶³ in magnitude ("1.0", "1e0", "-0.0").
    /// </summary>
    private static bool TryWholeNumber(string text, out long value)
    {
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value)) return true;
        value = 0;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || d != Math.Floor(d) || !(Math.Abs(d) < 9223372036854775808.0)) return false;
        value = (long)d;
        return true;
    }

    /// <summary>The separator of <paramref name="path"/>: tab for <c>.tsv</c>, else comma.</summary>
    internal static char Separator(string path) => path.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',';

    /// <summary>A feature cell as a finite float (invariant culture, surrounding blanks trimmed), or an error naming file, line and column.</summary>
    internal static float Feature(ReadOnlySpan<char> cell, string path, int line, string column)
    {
        var text = cell.Trim();
        if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) || !float.IsFinite(v))
            throw Bad(path, line, column, text.Length == 0
                ? "the value is empty (missing values are not supported)"
                : $"'{Clip(text)}' is not a finite number");
        return v;
    }

    private static string Clip(ReadOnlySpan<char> text) => text.Length <= 40 ? text.ToString() : text[..40].ToString() + "...";

    internal static InvalidDataException Bad(string path, int line, string? column, string what, Exception? inner = null) =>
        new($"csv: {path}: line {line}{(column is null ? "" : $", column '{column}'")}: {what}.", inner);

    /// <summary>
    /// The first byte of <paramref name="path"/> that does not start a valid UTF-8 character (a UTF-8 byte-order mark skipped), with its
    /// offset and line (ended by LF, CRLF or CR, as the parser counts them); null when every byte is valid. Reads the file in blocks.
    /// </summary>
    internal static (long Offset, int Line, byte Value)? FirstNonUtf8(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var buffer = new byte[1 << 16];
        int have = 0, line = 1;
        long start = 0; // the file offset of buffer[0]
        bool afterCr = false, first = true;
        while (true)
        {
            int n = stream.Read(buffer, have, buffer.Length - have);
            bool end = n == 0;
            have += n;
            int at = 0;
            if (first && (have >= 3 || end))
            {
                first = false;
                if (buffer.AsSpan(0, have).StartsWith("\uFEFF"u8)) at = 3;
            }
            else if (first) continue;
            while (at < have)
            {
                var status = Rune.DecodeFromUtf8(buffer.AsSpan(at, have - at), out _, out int used);
                if (status == System.Buffers.OperationStatus.NeedMoreData && !end) break;
                if (status != System.Buffers.OperationStatus.Done) return (start + at, line, buffer[at]);
                byte b = buffer[at];
                if (b == (byte)'\r' || b == (byte)'\n' && !afterCr) line++;
                afterCr = b == (byte)'\r';
                at += used;
            }
            if (end) return null;
            buffer.AsSpan(at, have - at).CopyTo(buffer);
            start += at;
            have -= at;
        }
    }
}
