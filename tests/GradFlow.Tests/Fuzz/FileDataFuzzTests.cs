using System.IO.Compression;
using System.Text;
using GradFlow.Data;
using GradFlow.Tensors;
using GradFlow.Tests.Data;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;
using SkiaSharp;

namespace GradFlow.Tests.Fuzz;

/// <summary>
/// 10 000 seeded mutations of each data-file parser's input (CSV/TSV, NPY, NPZ, safetensors x/y,
/// image folders of PNG and JPEG): each must load a consistent data set or throw the documented
/// <see cref="InvalidDataException"/> (docs/data.md lists the counts).
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class FileDataFuzzTests : IDisposable
{
    /// <summary>Mutated inputs per parser.</summary>
    public const int Variants = 10_000;

    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-fuzz-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A loaded bundle is whole: finite inputs, labels in range, one target per example.</summary>
    private static void CheckBundle(DataBundle d)
    {
        foreach (var set in new[] { d.Train, d.Test })
        {
            Assert.True(set.Count > 0);
            Assert.All((float[])set.Inputs.Storage, v => Assert.True(float.IsFinite(v)));
            if (set.IsClassification) Assert.All(set.Labels!.Data, y => Assert.InRange(y, 0, set.ClassCount - 1));
            else Assert.Equal(set.Count, set.Targets!.Size(0));
        }
    }

    [Fact]
    public void Csv_10000Mutations_LoadOrInvalidDataException()
    {
        var sb = new StringBuilder("f1,\"f 2\",label\n");
        var rng = new Random(1);
        for (int i = 0; i < 12; i++) sb.Append($"{rng.NextDouble() * 10 - 5:F3},{i * 1.5e-3},{(i % 3 == 0 ? "\"a,b\"" : i % 3 == 1 ? "c" : "d")}\n");
        var csv = Encoding.UTF8.GetBytes(sb.ToString());
        var tsv = Encoding.UTF8.GetBytes(sb.ToString().Replace("\"a,b\"", "ab").Replace(',', '\t'));
        var fuzzer = new FileFuzzer(_dir);
        const string syntax = "0123456789-+.,;\"\n\r\teEnaNx ";
        int loaded = fuzzer.Run("t.csv", csv, Variants * 7 / 10, 21, p => CheckBundle(FileData.Load(new TrainingConfig { Data = p, Target = "label" })), syntax);
        loaded += fuzzer.Run("t.tsv", tsv, Variants * 3 / 10, 22, p => CheckBundle(FileData.Load(new TrainingConfig { Data = p, Target = "label" })), syntax);
        Assert.InRange(loaded, 1, Variants - 1);
    }

    /// <summary>
    /// A text corpus (<see cref="TextCorpus.FromFile"/>, <c>--data FILE.txt</c>) on 10 000 mutations of UTF-8 text with two-, three- and
    /// four-byte characters and a byte-order mark: it loads exactly the text a strict UTF-8 decoder reads (mark dropped), whose
    /// windows label each character with the next, or it names the bad byte.
    /// </summary>
    [Fact]
    public void Text_10000Mutations_LoadTheStrictDecodingOrInvalidDataException()
    {
        var text = new StringBuilder("\uFEFF");
        for (int i = 0; i < 40; i++) text.Append($"Line {i}: naïve café, π ≈ 3.14, 中文 😀 — {(i % 2 == 0 ? "\r\n" : "\n")}");
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var fuzzer = new FileFuzzer(_dir);
        int loaded = fuzzer.Run("t.txt", Encoding.UTF8.GetBytes(text.ToString()), Variants, 24, p =>
        {
            var corpus = TextCorpus.FromFile(p);
            var bytes = File.ReadAllBytes(p);
            string expected = strict.GetString(bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes[3..] : bytes);
            Assert.Equal(expected, corpus.Text);
            Assert.Equal(new string(expected.Distinct().Order().ToArray()), corpus.Vocabulary);
            if (corpus.TrainLength < 9) return;
            var windows = corpus.Windows(train: true, 8);
            var ids = corpus.Encode(expected[..(8 * windows.Count + 1)]);
            Assert.Equal(ids[..^1].Select(i => (double)i), windows.Inputs.ToDoubleArray());
            Assert.Equal(ids[1..], windows.Labels!.ToArray());
        }, "\n\r\uFEFF");
        Assert.InRange(loaded, 1, Variants - 1);
    }

    /// <summary>
    /// The streamed CSV path (<see cref="StreamedTable"/>: its own row scan) on 3000 mutations: it loads exactly
    /// when the in-memory path loads, and then gives bitwise the same inputs, labels and split.
    /// </summary>
    [Fact]
    public void StreamedCsv_3000Mutations_LoadLikeInMemoryOrInvalidDataException()
    {
        var sb = new StringBuilder("\uFEFFf1,\"f 2\",label\r\n");
        var rng = new Random(3);
        for (int i = 0; i < 12; i++) sb.Append($"{rng.NextDouble() * 10 - 5:F3},\"{i * 1.5e-3}\",{(i % 3 == 0 ? "\"a,\nb\"" : i % 3 == 1 ? "c" : "d")}\r\n");
        var fuzzer = new FileFuzzer(_dir);
        int loaded = fuzzer.Run("s.csv", Encoding.UTF8.GetBytes(sb.ToString()), 3000, 23, p =>
        {
            var config = new TrainingConfig { Data = p, Target = "label" };
            DataBundle? memory = null;
            try { memory = FileData.Load(config); }
            catch (InvalidDataException) { }
            if (memory is null)
            {
                Assert.Throws<InvalidDataException>(() => FileData.Load(config with { Stream = true }));
                throw new InvalidDataException("refused by both paths");
            }
            var streamed = FileData.Load(config with { Stream = true });
            foreach (var (m, s) in new[] { (memory.Train, streamed.Train), (memory.Test, streamed.Test) })
            {
                var x = s.Materialize();
                Assert.Equal((float[])m.Inputs.Storage, (float[])x.Inputs.Storage);
                Assert.Equal(m.Labels?.Data, x.Labels?.Data);
                Assert.Equal(m.Targets is null ? null : (float[])m.Targets.Storage, x.Targets is null ? null : (float[])x.Targets.Storage);
            }
        }, "0123456789-+.,;\"\n\r\teEnaNx ");
        Assert.InRange(loaded, 1, 2999);
    }

    /// <summary>
    /// Blank lines (empty or white space, in LF, CRLF or CR files) inserted at 1000 seeded sets of line starts of a CSV, some of whose rows
    /// are bad: the file loads exactly when it loads without them, to the same sets, in memory and streamed; and a refused file's error
    /// names the file's own line, the line the bad row has in it.
    /// </summary>
    [Fact]
    public void Csv_1000BlankLineInsertions_LoadTheSameSetsOrNameTheRowsOwnLine()
    {
        var rng = new Random(24);
        string[] blanks = ["", " ", "  \t ", "\t"];
        for (int v = 0; v < 1000; v++)
        {
            string eol = v % 3 == 0 ? "\r\n" : v % 3 == 1 ? "\n" : "\r";
            var lines = new List<string> { "f1,\"f 2\",label" };
            int rows = 5 + rng.Next(8), bad = rng.Next(4) == 0 ? 1 + rng.Next(rows) : -1;
            for (int i = 1; i <= rows; i++)
                lines.Add(i == bad ? $"{i},oops,a" : $"{rng.Next(100) / 10.0:F1},\"{i}\",{(i % 2 == 0 ? "a" : "\"b,c\"")}");
            string clean = string.Join(eol, lines) + eol;
            // blank lines before any line (the header included) and after the last, each counted in the bad row's line
            var text = new StringBuilder();
            int badLine = -1, line = 1;
            for (int i = 0; i <= lines.Count; i++)
            {
                for (int k = rng.Next(4) == 0 ? 1 + rng.Next(3) : 0; k > 0; k--, line++) text.Append(blanks[rng.Next(blanks.Length)]).Append(eol);
                if (i == lines.Count) break;
                if (i == bad) badLine = line;
                text.Append(lines[i]).Append(eol);
                line++;
            }
            if (rng.Next(2) == 0) text.Append(blanks[rng.Next(blanks.Length)]); // a last blank line without its line end
            string cleanPath = Path.Combine(_dir, "clean.csv"), blankPath = Path.Combine(_dir, "blank.csv");
            File.WriteAllText(cleanPath, clean);
            File.WriteAllText(blankPath, text.ToString());
            foreach (bool stream in new[] { false, true })
            {
                var config = new TrainingConfig { Data = blankPath, Target = "label", Stream = stream, Seed = (ulong)v };
                if (bad > 0)
                {
                    var e = Assert.Throws<InvalidDataException>(() => FileData.Load(config));
                    Assert.Contains($"blank.csv: line {badLine}, column 'f 2': 'oops' is not a finite number", e.Message);
                    continue;
                }
                var expected = FileData.Load(config with { Data = cleanPath });
                var actual = FileData.Load(config);
                foreach (var (m, s) in new[] { (expected.Train, actual.Train), (expected.Test, actual.Test) })
                {
                    Assert.Equal((float[])m.Materialize().Inputs.Storage, (float[])s.Materialize().Inputs.Storage);
                    Assert.Equal(m.Labels!.Data, s.Labels!.Data);
                }
            }
        }
    }

    /// <summary>NPY bytes written by hand: the version 1.0 preamble, a header padded to 64 bytes, the data.</summary>
    internal static byte[] NpyBytes(string descr, string shape, byte[] data, bool fortran = false)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shape}, }}";
        dict = dict.PadRight(64 - 10 - 1) + "\n";
        var h = Encoding.ASCII.GetBytes(dict);
        return [0x93, .. "NUMPY"u8, 1, 0, (byte)h.Length, 0, .. h, .. data];
    }

    private static byte[] Floats(int n, int seed)
    {
        var rng = new Random(seed);
        var b = new byte[4 * n];
        for (int i = 0; i < n; i++) BitConverter.TryWriteBytes(b.AsSpan(4 * i), (float)(rng.NextDouble() * 4 - 2));
        return b;
    }

    private static byte[] Labels(int n, int classes)
    {
        var b = new byte[8 * n];
        for (int i = 0; i < n; i++) BitConverter.TryWriteBytes(b.AsSpan(8 * i), (long)(i % classes));
        return b;
    }

    [Fact]
    public void Npy_10000Mutations_LoadOrInvalidDataException()
    {
        File.WriteAllBytes(Path.Combine(_dir, "y.npy"), NpyBytes("<i8", "(8,)", Labels(8, 2)));
        var fuzzer = new FileFuzzer(_dir);
        // x.npy through the whole data path (its sibling y.npy intact), and a Fortran-order int16 array through the reader
        int loaded = fuzzer.Run("x.npy", NpyBytes("<f4", "(8, 3)", Floats(24, 2)), Variants * 7 / 10, 31,
            p => CheckBundle(FileData.Load(new TrainingConfig { Data = p })));
        var shorts = new byte[2 * 12];
        new Random(3).NextBytes(shorts);
        loaded += fuzzer.Run("f.npy", NpyBytes(">i2", "(3, 4)", shorts, fortran: true), Variants * 3 / 10, 32, p =>
        {
            var a = Npy.Read(p);
            Assert.Equal(a.Shape.Aggregate(1L, (m, d) => m * d), a.Values.LongLength);
        });
        Assert.InRange(loaded, 1, Variants - 1);
    }

    private static byte[] Npz(CompressionLevel level)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, bytes) in new[] { ("x.npy", NpyBytes("<f4", "(8, 3)", Floats(24, 4))), ("y.npy", NpyBytes("<i8", "(8,)", Labels(8, 3))) })
            {
                using var s = zip.CreateEntry(name, level).Open();
                s.Write(bytes);
            }
        }
        return ms.ToArray();
    }

    [Fact]
    public void Npz_10000Mutations_LoadOrInvalidDataException()
    {
        var fuzzer = new FileFuzzer(_dir);
        void Read(string p) => CheckBundle(FileData.Load(new TrainingConfig { Data = p }));
        int loaded = fuzzer.Run("d.npz", Npz(CompressionLevel.Optimal), Variants / 2, 41, Read);
        loaded += fuzzer.Run("s.npz", Npz(CompressionLevel.NoCompression), Variants / 2, 42, Read);
        Assert.InRange(loaded, 1, Variants - 1);
    }

    [Fact]
    public void SafeTensorsData_10000Mutations_LoadOrInvalidDataException()
    {
        var x = Floats(24, 5);
        var y = Labels(8, 2);
        string header = $"{{\"x\":{{\"dtype\":\"F32\",\"shape\":[8,3],\"data_offsets\":[0,{x.Length}]}},\"y\":{{\"dtype\":\"I64\",\"shape\":[8],\"data_offsets\":[{x.Length},{x.Length + y.Length}]}}}}";
        var h = Encoding.UTF8.GetBytes(header);
        byte[] valid = [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. x, .. y];
        int loaded = new FileFuzzer(_dir).Run("d.safetensors", valid, Variants, 51, p => CheckBundle(FileData.Load(new TrainingConfig { Data = p })));
        Assert.InRange(loaded, 1, Variants - 1);
    }

    [Fact]
    public void PreprocessingRecord_10000Mutations_LoadOrInvalidDataException()
    {
        var valid = Encoding.UTF8.GetBytes(new Preprocessing([5.5, -2, 1e-3], [1.5, 2, 0.25], ["a", "b,c"], ["f0", "f1", "f2"]).ToJson());
        int loaded = new FileFuzzer(_dir).Run(Preprocessing.FileName, valid, Variants, 61, path =>
        {
            // a record that reads back is one predict can use: statistics in pairs of valid numbers, an image size of two positive sizes
            var p = Preprocessing.Read(Path.GetDirectoryName(path)!);
            Assert.NotNull(p);
            if (p!.Mean is { } mean) Assert.Equal(mean.Count, p.Standardizer()!.Mean.Count);
            Assert.All(p.Classes ?? [], c => Assert.NotNull(c));
            Assert.All(p.Features ?? [], f => Assert.NotNull(f));
        });
        Assert.InRange(loaded, 1, Variants - 1);
    }

    [Fact]
    public void ImageFolder_10000Mutations_LoadOrInvalidDataException()
    {
        var root = Path.Combine(_dir, "images");
        FileDataTests.WriteImage(Path.Combine(root, "a", "ok.png"), 5, 4, new SKColor(10, 200, 30), SKEncodedImageFormat.Png);
        var png = Path.Combine(root, "b", "f.png");
        var jpg = Path.Combine(root, "b", "f.jpg");
        FileDataTests.WriteImage(png, 6, 5, new SKColor(200, 20, 90), SKEncodedImageFormat.Png);
        FileDataTests.WriteImage(jpg, 6, 5, new SKColor(20, 90, 200), SKEncodedImageFormat.Jpeg);
        byte[] pngBytes = File.ReadAllBytes(png), jpgBytes = File.ReadAllBytes(jpg);
        File.Delete(png);
        File.Delete(jpg);
        var fuzzer = new FileFuzzer(Path.Combine(root, "b"));
        void Read(string _)
        {
            var d = ImageFolder.Load(root, new ImageFolderOptions(4, 4, 3));
            Assert.Equal(2, d.Count);
            Assert.All((float[])d.Inputs.Storage, v => Assert.InRange(v, 0f, 1f));
        }
        int loaded = fuzzer.Run("f.png", pngBytes, Variants / 2, 61, Read);
        File.Delete(png);
        loaded += fuzzer.Run("f.jpg", jpgBytes, Variants / 2, 62, Read);
        Assert.InRange(loaded, 1, Variants - 1);
    }
}
