using System.Diagnostics;
using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// A character-level text corpus: the text, its vocabulary (every distinct character, sorted by code
/// point, so the same text always gives the same token ids), a fixed split (the first
/// <see cref="TrainFraction"/> of the characters train, the rest validate) and the language-model
/// data sets of windows over each part.
/// </summary>
public sealed class TextCorpus
{
    /// <summary>Share of the characters that train; the rest, at the end of the text, validate.</summary>
    public const double TrainFraction = 0.9;

    /// <summary>A corpus of <paramref name="text"/> named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">when the text has fewer than two distinct characters or is too short to split.</exception>
    public TextCorpus(string name, string text)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(text);
        var chars = text.Distinct().Order().ToArray();
        if (chars.Length < 2 || text.Length < 20)
            throw new ArgumentException($"text corpus '{name}': {text.Length} characters with {chars.Length} distinct ones is not a corpus.");
        Name = name;
        Text = text;
        Vocabulary = new string(chars);
        _index = new Dictionary<char, int>(chars.Length);
        for (int i = 0; i < chars.Length; i++) _index[chars[i]] = i;
        TrainLength = (int)(text.Length * TrainFraction);
    }

    private readonly Dictionary<char, int> _index;

    /// <summary>The corpus's name (a data set name, e.g. <c>kjv</c>).</summary>
    public string Name { get; }

    /// <summary>The whole text.</summary>
    public string Text { get; }

    /// <summary>The characters, token i being <c>Vocabulary[i]</c>.</summary>
    public string Vocabulary { get; }

    /// <summary>Characters of the training part (the first <see cref="TrainFraction"/>).</summary>
    public int TrainLength { get; }

    /// <summary>The token ids of <paramref name="s"/>.</summary>
    /// <exception cref="ArgumentException">naming the first character that is not in the vocabulary.</exception>
    public int[] Encode(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var ids = new int[s.Length];
        for (int i = 0; i < s.Length; i++)
            ids[i] = _index.TryGetValue(s[i], out int id) ? id
                : throw new ArgumentException($"text corpus '{Name}': character '{s[i]}' (U+{(int)s[i]:X4}) at position {i} is not in its vocabulary of {Vocabulary.Length}.");
        return ids;
    }

    /// <summary>The text of token ids.</summary>
    public string Decode(IEnumerable<int> ids) => new(ids.Select(i => Vocabulary[i]).ToArray());

    /// <summary>
    /// The language-model set of one part: consecutive, non-overlapping windows of
    /// <paramref name="length"/> characters as inputs [N, length] (token ids as numbers) and the
    /// characters one position later as labels [N, length] (a class per position).
    /// </summary>
    public Dataset Windows(bool train, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        int start = train ? 0 : TrainLength, end = train ? TrainLength : Text.Length;
        int n = (end - start - 1) / length;
        if (n < 1)
            throw new ArgumentException($"text corpus '{Name}': its {(train ? "training" : "validation")} part of {end - start} characters is shorter than one window of {length} + 1.");
        var ids = Encode(Text[start..end]);
        var x = new float[n * length];
        var y = new int[n * length];
        for (int i = 0; i < n * length; i++)
        {
            x[i] = ids[i];
            y[i] = ids[i + 1];
        }
        return Dataset.Classification(Tensor.FromArray(x, n, length), IndexTensor.FromArray(y, n, length), Vocabulary.Length);
    }

    /// <summary>Largest text file read as a corpus (it is read whole, as one string of at most this many characters).</summary>
    public const long MaxFileBytes = 1L << 30;

    /// <summary>
    /// The UTF-8 text file <paramref name="path"/> as a corpus named by its path (a byte-order mark is skipped; line ends are
    /// characters like any other).
    /// </summary>
    /// <exception cref="InvalidDataException">naming the file and, for bytes that are not UTF-8, their offset and line; or a
    /// file that is too large or too small to be a corpus.</exception>
    public static TextCorpus FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        long size = new FileInfo(path).Length;
        if (size > MaxFileBytes)
            throw new InvalidDataException($"data: {path}: a text corpus is read whole; {size:N0} bytes is over the limit of {MaxFileBytes:N0}.");
        var bytes = File.ReadAllBytes(path).AsSpan();
        int bom = bytes.StartsWith("\uFEFF"u8) ? 3 : 0;
        bytes = bytes[bom..];
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            int at = 0;
            while (System.Text.Rune.DecodeFromUtf8(bytes[at..], out _, out int used) == System.Buffers.OperationStatus.Done) at += used;
            throw new InvalidDataException($"data: {path}: not UTF-8 text: byte 0x{bytes[at]:X2} at offset {bom + at} (line {bytes[..at].Count((byte)'\n') + 1}) " +
                "does not start a valid character; a text corpus must be UTF-8.");
        }
        try
        {
            return new TextCorpus(path, System.Text.Encoding.UTF8.GetString(bytes));
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"data: {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The King James Bible (1611, public domain) from Debian's <c>bible-kjv-text</c> package, read through
    /// its <c>bible</c> program (package <c>bible-kjv</c>): one verse per line, without book and chapter
    /// headings or verse numbers, Genesis to Revelation (4,137,850 characters, 63 distinct ones; the validation part starts in Acts 21).
    /// </summary>
    /// <param name="program">The <c>bible</c> program (default /usr/bin/bible).</param>
    /// <exception cref="FileNotFoundException">when the program is missing, saying which packages to install.</exception>
    public static TextCorpus Kjv(string program = "/usr/bin/bible")
    {
        if (!File.Exists(program))
            throw new FileNotFoundException(
                $"data 'kjv': {program} is missing; install the Debian packages bible-kjv and bible-kjv-text (apt-get install bible-kjv bible-kjv-text; scripts/test.sh does).", program);
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-l1000000", "gen1:1-rev22:21" }) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new InvalidOperationException($"data 'kjv': could not start {program}.");
        var stderr = p.StandardError.ReadToEndAsync();
        string raw = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidDataException($"data 'kjv': {program} exited with {p.ExitCode}: {stderr.Result.Trim()}");
        return new TextCorpus("kjv", Verses(raw));
    }

    /// <summary>The verses of the <c>bible</c> program's output (lines <c>"  N text"</c>), one per line; headings dropped.</summary>
    internal static string Verses(string raw)
    {
        var sb = new System.Text.StringBuilder(raw.Length);
        foreach (var line in raw.Split('\n'))
        {
            var t = line.TrimStart();
            int sp = t.IndexOf(' ');
            if (line.Length == t.Length || sp <= 0 || !t[..sp].All(char.IsAsciiDigit)) continue;   // a heading or an empty line
            sb.Append(t, sp + 1, t.Length - sp - 1).Append('\n');
        }
        if (sb.Length == 0) throw new InvalidDataException("data 'kjv': the bible program printed no verses.");
        return sb.ToString();
    }
}
