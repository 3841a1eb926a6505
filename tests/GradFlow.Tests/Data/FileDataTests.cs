using GradFlow.Nn.Network;
using System.Globalization;
using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;
using SkiaSharp;

namespace GradFlow.Tests.Data;

public sealed class FileDataTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Text(string name, string text) => _dir.Write(name, System.Text.Encoding.UTF8.GetBytes(text));

    private static DataBundle Load(TrainingConfig c) => FileData.Load(c);

    /// <summary>Runs python3 with numpy on <paramref name="script"/> (the temp folder as working directory).</summary>
    private static void Python(string workDir, string script)
    {
        var (exit, _, err) = TestSupport.Python.Run(workDir, "-c", script);
        Assert.True(exit == 0, err);
    }

    // ------------------------------------------------------------------ CSV / TSV

    [Fact]
    public void Csv_StringLabels_SplitsBySeedAndStandardisesWithTrainingStatistics()
    {
        var sb = new System.Text.StringBuilder("a,species,b\n");
        for (int i = 0; i < 50; i++) sb.Append(CultureInfo.InvariantCulture, $"{i},{(i % 3 == 0 ? "setosa" : i % 3 == 1 ? "\"versi,color\"" : "virginica")},{2 * i + 1.5}\n");
        var path = Text("t.csv", sb.ToString());
        var c = new TrainingConfig { Data = path, Target = "species", Seed = 4 };
        var d = Load(c);
        Assert.Equal(40, d.Train.Count);
        Assert.Equal(10, d.Test.Count);
        Assert.Equal(["setosa", "versi,color", "virginica"], d.Train.ClassNames!);
        Assert.Equal([40, 2], d.Train.Inputs.Shape.ToArray());
        // training inputs have mean 0 and standard deviation 1 per column; test ones are shifted by the same statistics
        var x = (float[])d.Train.Inputs.Storage;
        for (int col = 0; col < 2; col++)
        {
            double m = 0, v = 0;
            for (int i = 0; i < 40; i++) m += x[i * 2 + col];
            m /= 40;
            for (int i = 0; i < 40; i++) v += (x[i * 2 + col] - m) * (x[i * 2 + col] - m);
            Assert.Equal(0, m, 1e-5);
            Assert.Equal(1, Math.Sqrt(v / 40), 1e-5);
        }
        // labels follow their rows: column a = i, label i mod 3
        var raw = Load(c with { Standardize = false });
        var xr = (float[])raw.Test.Inputs.Storage;
        for (int i = 0; i < raw.Test.Count; i++) Assert.Equal((int)xr[i * 2] % 3, raw.Test.Labels![i]);
        Assert.Equal(d.Test.Labels!.Data, raw.Test.Labels!.Data);
        // the same seed gives the same split, another seed another
        Assert.Equal(d.Test.Labels!.Data, Load(c).Test.Labels!.Data);
        Assert.NotEqual((float[])d.Test.Inputs.Storage, (float[])Load(c with { Seed = 5 }).Test.Inputs.Storage);
    }

    [Fact]
    public void Csv_IntegerLabels_AreClassesInNumericOrder_AndRealTargetsAreRegression()
    {
        var cls = Text("c.tsv", "x\ty\n1\t10\n2\t2\n3\t10\n4\t2\n5\t-1\n");
        var d = Load(new TrainingConfig { Data = cls, Target = "y", TestData = cls, Standardize = false });
        Assert.Equal(["-1", "2", "10"], d.Train.ClassNames!);
        Assert.Equal([2, 1, 2, 1, 0], d.Train.Labels!.Data);
        Assert.Equal([1f, 2, 3, 4, 5], (float[])d.Train.Inputs.Storage);

        // an integer class is its value, whatever its text ("1", "01", "+1" were three classes)
        var written = Text("w.csv", "x,y\n1,1\n2,01\n3,+1\n4,2\n5,002\n6,-0\n");
        var w = Load(new TrainingConfig { Data = written, Target = "y", TestData = written, Standardize = false });
        Assert.Equal(["0", "1", "2"], w.Train.ClassNames!);
        Assert.Equal([1, 1, 1, 2, 2, 0], w.Train.Labels!.Data);

        var reg = Text("r.csv", "x,y\n1,0.5\n2,1.5\n3,2\n");
        var r = Load(new TrainingConfig { Data = reg, Target = "y", TestData = reg });
        Assert.False(r.Train.IsClassification);
        Assert.Equal([3, 1], r.Train.Targets!.Shape.ToArray());
        Assert.Equal([0.5f, 1.5f, 2f], (float[])r.Train.Targets.Storage);

        // --task values makes integer targets regression values
        var v = Load(new TrainingConfig { Data = cls, Target = "y", TestData = cls, TargetKind = TargetKind.Values });
        Assert.Equal([10f, 2, 10, 2, -1], (float[])v.Train.Targets!.Storage);
    }

    [Fact]
    public void Csv_TestFile_UsesTrainingStatisticsAndClasses()
    {
        var train = Text("train.csv", "f,label\n0,a\n2,b\n4,a\n6,b\n");
        var test = Text("test.csv", "f,label\n3,b\n");
        var d = Load(new TrainingConfig { Data = train, Target = "label", TestData = test });
        // mean 3, population std sqrt(5)
        Assert.Equal(0f, ((float[])d.Test.Inputs.Storage)[0], 6);
        Assert.Equal((float)(-3 / Math.Sqrt(5)), ((float[])d.Train.Inputs.Storage)[0], 5);
        Assert.Equal(1, d.Test.Labels![0]);
    }

    [Theory]
    [InlineData("a,y\n1,0\n2,x1\nz,1\n", "line 4, column 'a': 'z' is not a finite number")]
    [InlineData("a,y\n1,0\n,1\n", "line 3, column 'a': the value is empty")]
    [InlineData("a,b\n1,0\n", "there is no target column 'y' (columns: a, b)")]
    [InlineData("y\n1\n", "the only column is the target 'y'")]
    [InlineData("a,y\n", "no data rows")]
    [InlineData("a,y\n1,2\n1,2,3\n", "line 3: found 3 column(s), expected 2 as in the header")]
    [InlineData("a,a,y\n1,2,3\n", "line 1: the column name 'a' appears twice (columns 1 and 2)")]
    [InlineData("\n\na,a,y\n1,2,3\n", "line 3: the column name 'a' appears twice")]
    [InlineData("\n \n\r\n", "line 1: the file is empty or blank (a header line is needed)")]
    [InlineData("a,y\n\n\n", "line 2: the file has a header but no data rows")]
    [InlineData("a,y\n1,2\n,\n", "line 3, column 'a': the value is empty")]
    [InlineData("a,y\nNaN,2\n", "column 'a': 'NaN' is not a finite number")]
    // pandas' to_csv without index=False: the row number, learnt as a feature, used to pass silently
    [InlineData(",a,y\n0,1.5,0\n1,2.5,1\n", "line 1: column 1 has no name (pandas writes its index there: save with to_csv(..., index=False))")]
    [InlineData("a, ,y\n1,2,0\n", "line 1: column 2 has no name; every feature column needs one")]
    public void Csv_BadContent_ErrorNamesFileLineAndColumn(string text, string expected)
    {
        var path = Text("t.csv", text);
        var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = path, Target = "y" }));
        Assert.Contains(expected, e.Message);
        Assert.Contains("t.csv", e.Message);
    }

    [Fact]
    public void Csv_NotUtf8_IsRefusedNamingTheByteAndLine_InMemoryAndStreamed()
    {
        // Latin-1 labels 'café' (0xE9) and 'cafè' (0xE8): decoded with replacement characters they would be one class
        var sb = new System.Text.StringBuilder("a,label\n");
        for (int i = 0; i < 20; i++) sb.Append(CultureInfo.InvariantCulture, $"{i},{(i % 2 == 0 ? "caf\u00e9" : "caf\u00e8")}\n");
        var path = _dir.Write("latin1.csv", System.Text.Encoding.Latin1.GetBytes(sb.ToString()));
        // and behind a UTF-8 byte-order mark, which does not make the bytes after it UTF-8
        var marked = _dir.Write("marked.csv", [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.Latin1.GetBytes(sb.ToString())]);
        foreach (bool stream in new[] { false, true })
        {
            var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = path, Target = "label", Stream = stream }));
            // "a,label\n" and "0,caf" are 8 + 5 bytes: the first 0xE9 is at offset 13, on line 2
            Assert.Contains("latin1.csv: line 2: byte 0xE9 at offset 13 is not UTF-8", e.Message);
            e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = marked, Target = "label", Stream = stream }));
            Assert.Contains("marked.csv: line 2: byte 0xE9 at offset 16 is not UTF-8", e.Message);
        }
        // UTF-8 text, with a byte-order mark, reads as before
        var utf8 = _dir.Write("utf8.csv", [.. System.Text.Encoding.UTF8.GetPreamble(), .. System.Text.Encoding.UTF8.GetBytes(sb.ToString())]);
        Assert.Equal(["caf\u00e8", "caf\u00e9"], Load(new TrainingConfig { Data = utf8, Target = "label" }).Train.ClassNames!);
    }

    [Fact]
    public void Csv_BlankLines_AreSkippedAnywhere_AndErrorsNameTheFilesOwnLine()
    {
        // empty and white-space lines before the header, between rows, in LF, CRLF and CR files, and trailing ones at the end (pandas skips them)
        var expected = Load(new TrainingConfig { Data = Text("clean.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,0\n"), Target = "y", TestData = Text("clean-test.csv", "a,b,y\n0,0,1\n"), Standardize = false });
        foreach (string eol in new[] { "\n", "\r\n", "\r" })
        {
            // the quoted field's line breaks are its text (trimmed as a number's blanks are), not blank lines
            string text = "\n  \n" + "a,\"b\",y\n\n1,2,0\n \t \n\n3,\"4\n\n\",1\n5,6,0\n\n\n   ";
            var path = Text("blank.csv", text.Replace("\n", eol));
            foreach (bool stream in new[] { false, true })
            {
                var d = Load(new TrainingConfig { Data = path, Target = "y", TestData = Text("test.csv", $"{eol}a,b,y{eol}{eol}0,0,1{eol}{eol}"), Standardize = false, Stream = stream });
                Assert.Equal((float[])expected.Train.Inputs.Storage, (float[])d.Train.Materialize().Inputs.Storage);
                Assert.Equal(expected.Train.Labels!.Data, d.Train.Labels!.Data);
                Assert.Equal((float[])expected.Test.Inputs.Storage, (float[])d.Test.Materialize().Inputs.Storage);
            }
        }
        Assert.Equal([5, 8], Tabular.Read(Text("lines.csv", "\n  \na,y\n\n1,0\n \n\n" + "3,1\n\n\n"), "y").Lines);

        // an error after blank lines names the row's own line, in memory and streamed; a quoted field's blank lines are its text
        var bad = Text("bad.csv", "\n\na,y\n1,0\n\n\n   \n2,\"x\n\ny\"\nz,1\n\n");
        foreach (bool stream in new[] { false, true })
        {
            var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = bad, Target = "y", Stream = stream }));
            Assert.Contains("bad.csv: line 11, column 'a': 'z' is not a finite number", e.Message);
        }
        // a TSV line of tabs is a row of empty values (not blank), as in pandas
        var tabs = Text("tabs.tsv", "a\ty\n1\t0\n\t\n");
        Assert.Contains("tabs.tsv: line 3, column 'a': the value is empty", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = tabs, Target = "y" })).Message);
    }

    [Fact]
    public void Csv_WholeNumbersWrittenAsFloats_AreRegressionInAutoMode_AndClassesWithTaskClasses()
    {
        // pandas writes a float column's 0 and 1 as 0.0 and 1.0; "1", "1.0" and "1e0" are one class, named 1
        var path = Text("f.csv", "x,y\n1,0.0\n2,1.0\n3,1e0\n4,1\n5,-2.0\n6,2.000\n");
        var auto = Load(new TrainingConfig { Data = path, Target = "y", TestData = path });
        Assert.False(auto.Train.IsClassification); // auto: decimals are regression values, as a float array's are
        var d = Load(new TrainingConfig { Data = path, Target = "y", TestData = path, TargetKind = TargetKind.Classes, Standardize = false });
        Assert.Equal(["-2", "0", "1", "2"], d.Train.ClassNames!);
        Assert.Equal([1, 2, 2, 2, 0, 3], d.Train.Labels!.Data);
        var streamed = Load(new TrainingConfig { Data = path, Target = "y", TestData = path, TargetKind = TargetKind.Classes, Stream = true });
        Assert.Equal(d.Train.Labels!.Data, streamed.Train.Labels!.Data);

        // a number that is not whole is not a class label: refused naming file, line and column (the blank line counted)
        var half = Text("half.csv", "x,y\n1,0.0\n\n2,1.5\n3,1.0\n");
        var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = half, Target = "y", TargetKind = TargetKind.Classes }));
        Assert.Contains("half.csv: line 4, column 'y': '1.5' is not a whole number, so not a class label", e.Message);
        Assert.Contains("1e300", Assert.Throws<InvalidDataException>(() =>
            Load(new TrainingConfig { Data = Text("huge.csv", "x,y\n1,0\n2,1e300\n"), Target = "y", TargetKind = TargetKind.Classes })).Message);
        // labels that are not all numbers stay texts
        var mixed = Load(new TrainingConfig { Data = Text("m.csv", "x,y\n1,1.5\n2,cat\n3,1.5\n4,cat\n5,1.0\n"), Target = "y", TargetKind = TargetKind.Classes });
        Assert.Equal(["1.0", "1.5", "cat"], mixed.Train.ClassNames!);
    }

    [Fact]
    public void Csv_WithoutTarget_SaysToNameIt()
    {
        var path = Text("t.csv", "a,y\n1,2\n");
        var e = Assert.Throws<ArgumentException>(() => Load(new TrainingConfig { Data = path }));
        Assert.Contains("--target", e.Message);
    }

    [Fact]
    public void Csv_TestFileWithOtherColumns_IsRefused()
    {
        var train = Text("train.csv", "a,b,y\n1,2,0\n");
        var test = Text("test.csv", "b,a,y\n1,2,0\n");
        var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = train, Target = "y", TestData = test }));
        Assert.Contains("test.csv: line 1: the feature columns (b, a) differ from the training file's (a, b)", e.Message);
    }

    // ------------------------------------------------------------------ NPY / NPZ, compared with numpy

    [Fact]
    public void Npy_EveryDtypeOrderAndFortranLayout_MatchesNumpy()
    {
        string[] dtypes = ["<f4", ">f4", "<f8", ">f8", "<f2", "|i1", "<i2", ">i4", "<i8", "|u1", ">u2", "<u4", "<u8", "|b1"];
        var script = "import numpy as np\nbase = (np.arange(24).reshape(2, 3, 4) * 7 % 11 - 3)\n";
        foreach (var d in dtypes)
        {
            string n = d.Replace("<", "le").Replace(">", "be").Replace("|", "na");
            script += $"a = base.astype('{d}') if '{d}'[1] not in 'ub' else (base % 5).astype('{d}')\n";
            script += $"np.save('{n}-c.npy', a)\nnp.save('{n}-f.npy', np.asfortranarray(a))\nopen('{n}.txt','w').write(' '.join(repr(float(v)) for v in a.ravel()))\n";
        }
        script += "np.save('scalar.npy', np.float64(2.5))\nnp.save('empty.npy', np.zeros((0, 3), '<f4'))\n";
        Python(_dir.Path, script);
        foreach (var d in dtypes)
        {
            string n = d.Replace("<", "le").Replace(">", "be").Replace("|", "na");
            var expected = File.ReadAllText(Path.Combine(_dir.Path, n + ".txt")).Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            foreach (var layout in new[] { "c", "f" })
            {
                var a = Npy.Read(Path.Combine(_dir.Path, $"{n}-{layout}.npy"));
                Assert.Equal([2, 3, 4], a.Shape);
                Assert.Equal(d[1] != 'f', a.IsInteger);
                Assert.Equal(expected, a.Values);
            }
        }
        var s = Npy.Read(Path.Combine(_dir.Path, "scalar.npy"));
        Assert.Empty(s.Shape);
        Assert.Equal([2.5], s.Values);
        Assert.Equal([0, 3], Npy.Read(Path.Combine(_dir.Path, "empty.npy")).Shape);
    }

    [Fact]
    public void Npz_CompressedAndStored_LoadAsDataWithIntegerLabels()
    {
        Python(_dir.Path, """
            import numpy as np
            rng = np.random.default_rng(0)
            x = rng.standard_normal((30, 4)).astype(np.float32)
            y = (np.arange(30) % 3).astype(np.int64)
            np.savez('d.npz', x=x, y=y)
            np.savez_compressed('dc.npz', x=x, y=y)
            np.savez('reg.npz', x=x, y=rng.standard_normal((30, 2)))
            np.save('x.npy', x); np.save('y.npy', y)
            open('x.txt', 'w').write(' '.join(repr(float(v)) for v in x.ravel()))
            """);
        var x = File.ReadAllText(Path.Combine(_dir.Path, "x.txt")).Split(' ').Select(v => (float)double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        foreach (var file in new[] { "d.npz", "dc.npz", "x.npy" })
        {
            var path = Path.Combine(_dir.Path, file);
            var d = Load(new TrainingConfig { Data = path, TestData = path, Standardize = false });
            Assert.Equal(3, d.Train.ClassCount);
            Assert.Equal(x, (float[])d.Train.Inputs.Storage);
            Assert.Equal(Enumerable.Range(0, 30).Select(i => i % 3), d.Train.Labels!.Data);
        }
        var r = Load(new TrainingConfig { Data = Path.Combine(_dir.Path, "reg.npz") });
        Assert.False(r.Train.IsClassification);
        Assert.Equal(2, r.Train.Targets!.Size(1));
        Assert.Equal(24 + 6, r.Train.Count + r.Test.Count);
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12, "needs 16 bytes but the data holds 12")]
    [InlineData("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8, "dtype '<c8' is not supported")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 9), }", 8, "needs 1.66")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", 4, "unexpected key 'extra'")]
    [InlineData("{'descr': '<f4', 'shape': (1,), }", 4, "lacks the key 'fortran_order'")]
    [InlineData("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", 4, "fortran_order must be True or False")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4, "shape has a non-integer entry")]
    public void Npy_BadHeader_ErrorNamesFileAndField(string header, int dataBytes, string expected)
    {
        var h = System.Text.Encoding.ASCII.GetBytes(header);
        byte[] bytes = [0x93, .. "NUMPY"u8, 1, 0, (byte)h.Length, (byte)(h.Length >> 8), .. h, .. new byte[dataBytes]];
        var path = _dir.Write("bad.npy", bytes);
        var e = Assert.Throws<InvalidDataException>(() => Npy.Read(path));
        Assert.Contains("bad.npy", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Arrays_BadLabelsAndMissingArrays_AreNamed()
    {
        Python(_dir.Path, """
            import numpy as np
            np.savez('neg.npz', x=np.zeros((3, 2), np.float32), y=np.array([0, -1, 1]))
            np.savez('short.npz', x=np.zeros((3, 2), np.float32), y=np.array([0, 1]))
            np.savez('noy.npz', x=np.zeros((3, 2), np.float32))
            np.savez('nan.npz', x=np.array([[0, np.nan]], np.float32), y=np.array([0]))
            """);
        string P(string f) => Path.Combine(_dir.Path, f);
        Assert.Contains("neg.npz:y: element 1 is -1, not a class label", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("neg.npz") })).Message);
        Assert.Contains("short.npz:y: shape [2] does not hold one target for each of the 3 examples", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("short.npz") })).Message);
        Assert.Contains("has no array 'y' (arrays: x)", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("noy.npz") })).Message);
        Assert.Contains("nan.npz:x: element 1 (example 0) is NaN", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("nan.npz"), TestData = P("nan.npz") })).Message);
    }

    [Fact]
    public void Arrays_WithNoValuesPerExample_AreNamed()
    {
        // a dimension of 0 after the first: N examples of nothing, inputs or labels
        Python(_dir.Path, """
            import numpy as np
            np.savez('x0.npz', x=np.zeros((3, 0), np.float32), y=np.array([0, 1, 1]))
            np.savez('x20.npz', x=np.zeros((3, 2, 0), np.float32), y=np.array([0, 1, 1]))
            np.savez('y0.npz', x=np.zeros((3, 2), np.float32), y=np.zeros((3, 0), np.int64))
            """);
        string P(string f) => Path.Combine(_dir.Path, f);
        Assert.Contains("x0.npz:x: shape [3, 0] holds no values per example", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("x0.npz") })).Message);
        Assert.Contains("x20.npz:x: shape [3, 2, 0] holds no values per example", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("x20.npz") })).Message);
        Assert.Contains("y0.npz:y: class labels need shape [N], [N, 1], or [N, T] (a class per position), got [3, 0]",
            Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("y0.npz") })).Message);
    }

    [Fact]
    public void Arrays_TestFileWithOtherSizesPerExample_IsRefusedNamingBothFiles()
    {
        Python(_dir.Path, """
            import numpy as np
            np.savez('train.npz', x=np.random.rand(20, 4).astype(np.float32), y=np.arange(20) % 2)
            np.savez('wide.npz', x=np.random.rand(10, 5).astype(np.float32), y=np.arange(10) % 2)
            np.savez('reg.npz', x=np.random.rand(20, 4).astype(np.float32), y=np.random.rand(20, 2).astype(np.float32))
            np.savez('reg3.npz', x=np.random.rand(10, 4).astype(np.float32), y=np.random.rand(10, 3).astype(np.float32))
            """);
        string P(string f) => Path.Combine(_dir.Path, f);
        foreach (bool standardize in new[] { true, false })
        {
            var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("train.npz"), TestData = P("wide.npz"), Standardize = standardize }));
            Assert.Contains($"the test data {P("wide.npz")} has 5 input values per example, but the training data {P("train.npz")} has 4", e.Message);
        }
        var r = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = P("reg.npz"), TestData = P("reg3.npz") }));
        Assert.Contains($"the test data {P("reg3.npz")} has 3 targets per example, but the training data {P("reg.npz")} has 2", r.Message);
    }

    // ------------------------------------------------------------------ safetensors and IDX

    [Fact]
    public void SafeTensors_IntegerYIsClasses_FloatYIsRegression()
    {
        var g = new Generator(3);
        var x = Tensor.RandN(g, 20, 3);
        var cls = Path.Combine(_dir.Path, "c.safetensors");
        SafeTensors.Write(cls, [new("x", x), new("y", Tensor.FromArray(Enumerable.Range(0, 20).Select(i => (double)(i % 4)).ToArray(), 20))]);
        // rewrite y's dtype as I64 by hand: the writer stores F64, so build the integer file through numpy-free bytes
        var i64 = Path.Combine(_dir.Path, "i.safetensors");
        WriteSafeTensorsI64(i64, (float[])x.Storage, [20, 3], Enumerable.Range(0, 20).Select(i => (long)(i % 4)).ToArray());
        var d = Load(new TrainingConfig { Data = i64, TestData = i64, Standardize = false });
        Assert.Equal(4, d.Train.ClassCount);
        Assert.Equal((float[])x.Storage, (float[])d.Train.Inputs.Storage);
        var r = Load(new TrainingConfig { Data = cls, TestData = cls });
        Assert.False(r.Train.IsClassification);
        var forced = Load(new TrainingConfig { Data = cls, TestData = cls, TargetKind = TargetKind.Classes });
        Assert.Equal(4, forced.Train.ClassCount);
    }

    private static void WriteSafeTensorsI64(string path, float[] x, int[] shape, long[] y)
    {
        int xb = x.Length * 4, yb = y.Length * 8;
        string header = $"{{\"x\":{{\"dtype\":\"F32\",\"shape\":[{shape[0]},{shape[1]}],\"data_offsets\":[0,{xb}]}},\"y\":{{\"dtype\":\"I64\",\"shape\":[{y.Length}],\"data_offsets\":[{xb},{xb + yb}]}}}}";
        var h = System.Text.Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)h.Length));
        f.Write(h);
        foreach (var v in x) f.Write(BitConverter.GetBytes(v));
        foreach (var v in y) f.Write(BitConverter.GetBytes(v));
    }

    [Fact]
    public void Idx_ImagesFindTheirLabelsByName()
    {
        var pixels = Enumerable.Range(0, 6 * 2 * 2).Select(i => (byte)(i * 10)).ToArray();
        var images = _dir.Write("shapes-images-idx3-ubyte", IdxBytes.UByte(pixels, 6, 2, 2));
        _dir.Write("shapes-labels-idx1-ubyte", IdxBytes.UByte([0, 1, 2, 0, 1, 2], 6));
        var d = Load(new TrainingConfig { Data = images, TestData = images, Standardize = false });
        Assert.Equal([6, 4], d.Train.Inputs.Shape.ToArray()); // flattened per example
        Assert.Equal(3, d.Train.ClassCount);
        Assert.Equal(230 / 255f, ((float[])d.Train.Inputs.Storage)[23], 6);
        // one mean and standard deviation for all pixels
        var s = Load(new TrainingConfig { Data = images, TestData = images });
        var v = (float[])s.Train.Inputs.Storage;
        Assert.Equal(0, v.Average(), 5);
        var e = Assert.Throws<FileNotFoundException>(() => Load(new TrainingConfig { Data = _dir.Write("idx-alone", IdxBytes.UByte([1], 1)) }));
        Assert.Contains("--target", e.Message);
    }

    [Theory]
    [InlineData("extra_x.npy", "extra_y.npy")] // the x of "extra" was replaced: eytra_x.npy
    [InlineData("x_train.npy", "y_train.npy")]
    [InlineData("train-x.npy", "train-y.npy")]
    [InlineData("trainx.npy", "trainy.npy")]
    public void Npy_TargetFile_IsTheNameWithItsWordXReplacedByY(string input, string target)
    {
        var dir = Path.Combine(_dir.Path, Path.GetFileNameWithoutExtension(input));
        Directory.CreateDirectory(dir);
        var rng = new Random(1);
        var floats = new byte[8 * 3 * 4];
        for (int i = 0; i < 24; i++) BitConverter.TryWriteBytes(floats.AsSpan(4 * i), (float)rng.NextDouble());
        var labels = new byte[8 * 8];
        for (int i = 0; i < 8; i++) BitConverter.TryWriteBytes(labels.AsSpan(8 * i), (long)(i % 2));
        File.WriteAllBytes(Path.Combine(dir, input), GradFlow.Tests.Fuzz.FileDataFuzzTests.NpyBytes("<f4", "(8, 3)", floats));
        File.WriteAllBytes(Path.Combine(dir, target), GradFlow.Tests.Fuzz.FileDataFuzzTests.NpyBytes("<i8", "(8,)", labels));
        var d = Load(new TrainingConfig { Data = Path.Combine(dir, input), TestData = Path.Combine(dir, input), Standardize = false });
        Assert.Equal(2, d.Train.ClassCount);
        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1], d.Train.Labels!.Data);
    }

    // ------------------------------------------------------------------ image folders

    /// <summary>
    /// A two-class folder: <paramref name="perClass"/> dark bluish 6×5 PNGs in <c>dark/</c> and light 5×6 images in <c>light/</c> (in
    /// <paramref name="lightFormat"/>), the same jitter of brightness per pair, drawn from <paramref name="seed"/>.
    /// </summary>
    internal static void WriteDarkAndLight(string root, int perClass, int seed, SKEncodedImageFormat lightFormat)
    {
        var rng = new Random(seed);
        string extension = lightFormat == SKEncodedImageFormat.Jpeg ? "jpg" : "png";
        for (int i = 0; i < perClass; i++)
        {
            byte jitter = (byte)rng.Next(60);
            WriteImage(Path.Combine(root, "dark", $"{i}.png"), 6, 5, new SKColor(jitter, jitter, (byte)(jitter + 20)), SKEncodedImageFormat.Png);
            WriteImage(Path.Combine(root, "light", $"{i}.{extension}"), 5, 6, new SKColor((byte)(255 - jitter), 200, 180), lightFormat);
        }
    }

    internal static void WriteImage(string path, int width, int height, SKColor color, SKEncodedImageFormat format)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        bitmap.Erase(color);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void ImageFolder_PngAndJpeg_ResizedToRgbChannelsInClassOrder()
    {
        var root = Path.Combine(_dir.Path, "img");
        WriteImage(Path.Combine(root, "red", "1.png"), 8, 6, new SKColor(255, 0, 0), SKEncodedImageFormat.Png);
        WriteImage(Path.Combine(root, "red", "2.jpg"), 5, 5, new SKColor(255, 0, 0), SKEncodedImageFormat.Jpeg);
        WriteImage(Path.Combine(root, "blue", "a.PNG"), 4, 4, new SKColor(0, 0, 255), SKEncodedImageFormat.Png);
        File.WriteAllText(Path.Combine(root, "blue", "notes.txt"), "ignored");
        var d = ImageFolder.Load(root, new ImageFolderOptions(4, 3, 3, ImageLayout.Channels));
        Assert.Equal(["blue", "red"], d.ClassNames!);
        Assert.Equal([3, 3, 3, 4], d.Inputs.Shape.ToArray());
        Assert.Equal([0, 1, 1], d.Labels!.Data);
        var x = (float[])d.Inputs.Storage;
        // blue image: R and G planes 0, B plane 1; red images: R plane 1 (JPEG within a few levels)
        Assert.All(x.AsSpan(0, 24).ToArray(), v => Assert.Equal(0, v, 6));
        Assert.All(x.AsSpan(24, 12).ToArray(), v => Assert.Equal(1, v, 6));
        Assert.All(x.AsSpan(36, 12).ToArray(), v => Assert.Equal(1, v, 6));
        Assert.All(x.AsSpan(72, 12).ToArray(), v => Assert.True(v > 0.95f, $"{v}"));
        // grey: luma 0.299 R + 0.587 G + 0.114 B
        var grey = ImageFolder.Load(root, new ImageFolderOptions(2, 2, 1));
        Assert.Equal([3, 4], grey.Inputs.Shape.ToArray());
        Assert.Equal(0.114f, ((float[])grey.Inputs.Storage)[0], 5);
        Assert.Equal(0.299f, ((float[])grey.Inputs.Storage)[4], 5);
    }

    [Fact]
    public void ImageFolder_StandardisedPerChannel_AndErrorsNameTheFile()
    {
        var root = Path.Combine(_dir.Path, "img");
        for (int i = 0; i < 5; i++)
        {
            WriteImage(Path.Combine(root, "a", $"{i}.png"), 3, 3, new SKColor((byte)(i * 40), 10, 200), SKEncodedImageFormat.Png);
            WriteImage(Path.Combine(root, "b", $"{i}.png"), 3, 3, new SKColor(10, (byte)(i * 50), 0), SKEncodedImageFormat.Png);
        }
        var d = Load(new TrainingConfig { Data = root, TestData = root });
        Assert.Equal([10, 27], d.Train.Inputs.Shape.ToArray());
        var x = (float[])d.Train.Inputs.Storage;
        for (int ch = 0; ch < 3; ch++)
        {
            double m = 0;
            for (int i = 0; i < 10; i++)
                for (int p = 0; p < 9; p++) m += x[i * 27 + ch * 9 + p];
            Assert.Equal(0, m / 90, 5);
        }
        File.WriteAllBytes(Path.Combine(root, "b", "broken.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = root }));
        Assert.Contains("broken.png", e.Message);
        Directory.CreateDirectory(Path.Combine(root, "empty"));
        Assert.Contains("the class folder 'empty' has no .png", Assert.Throws<InvalidDataException>(() => Load(new TrainingConfig { Data = root })).Message);
    }

    // ------------------------------------------------------------------ into DataSources

    [Fact]
    public void DataSources_FilePathLoadsAndChecksTheModel()
    {
        var path = Text("t.csv", "a,b,y\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,1,x\n");
        var bundle = DataSources.Load(new TrainingConfig { Data = path, Target = "y" }, NetworkDescription.Parse("mlp 2-4-2"));
        Assert.Equal(5, bundle.Train.Count + bundle.Test.Count);
        var e = Assert.Throws<ArgumentException>(() => DataSources.Load(new TrainingConfig { Data = path, Target = "y" }, NetworkDescription.Parse("mlp 3-4-2")));
        Assert.Contains("has 2 inputs per example but the model expects 3", e.Message);
        // whole-number float targets (pandas' 0.0 and 1.0) for a model with several outputs: the error says to ask for classes
        var floats = Text("f.csv", "a,b,y\n1,2,0.0\n3,4,1.0\n5,6,0.0\n7,8,1.0\n9,1,0.0\n");
        var regression = Assert.Throws<ArgumentException>(() => DataSources.Load(new TrainingConfig { Data = floats, Target = "y" }, NetworkDescription.Parse("mlp 2-4-2")));
        Assert.Contains("has 1 regression target per example but the model has 2 outputs", regression.Message);
        Assert.Contains("if they are class labels, pass --task classes", regression.Message);
        Assert.Equal(2, DataSources.Load(new TrainingConfig { Data = floats, Target = "y", TargetKind = TargetKind.Classes }, NetworkDescription.Parse("mlp 2-4-2")).Train.ClassCount);
        var fractions = Text("g.csv", "a,b,y\n1,2,0.5\n3,4,1.0\n5,6,0.0\n7,8,1.0\n9,1,0.0\n");
        Assert.DoesNotContain("--task", Assert.Throws<ArgumentException>(() => DataSources.Load(new TrainingConfig { Data = fractions, Target = "y" }, NetworkDescription.Parse("mlp 2-4-2"))).Message);
        var missing = Assert.Throws<FormatException>(() => new TrainingConfig { Data = Path.Combine(_dir.Path, "nope.csv") }.Validate());
        Assert.Contains("neither a built-in data set", missing.Message);
    }

    [Fact]
    public void DataSources_FlatRows_AreCutIntoStepsOfTheRecurrentModelsFeatures()
    {
        // row r holds 10r + j in column j: a row of 6 values is 6 steps of 1 feature, 3 of 2, 2 of 3, in the row's order
        var rows = Enumerable.Range(0, 8).Select(r => string.Join(",", Enumerable.Range(0, 6).Select(j => (10 * r + j).ToString(CultureInfo.InvariantCulture))) + $",{r % 2}");
        var path = Text("seq.csv", "x0,x1,x2,x3,x4,x5,y\n" + string.Join("\n", rows) + "\n");
        TrainingConfig Config(int? steps = null) => new() { Data = path, Target = "y", Standardize = false, SequenceLength = steps };
        foreach (var (model, features) in new[] { ("lstm 1-8-2", 1), ("gru 2-8-2", 2), ("rnn 3-8-2", 3) })
        {
            var train = DataSources.Load(Config(), NetworkDescription.Parse(model)).Train;
            int steps = 6 / features;
            Assert.Equal([train.Count, steps, features], train.InputShape);
            for (int i = 0; i < train.Count; i++)
            {
                double first = train.Inputs.GetFlat(i * 6);
                for (int t = 0; t < steps; t++)
                    for (int f = 0; f < features; f++)
                        Assert.Equal(first + t * features + f, train.Inputs.GetFlat(i * 6 + t * features + f));
            }
        }
        Assert.Equal([3, 2], DataSources.Load(Config(3), NetworkDescription.Parse("gru 2-8-2")).Train.InputShape[1..]);
        var notWhole = Assert.Throws<ArgumentException>(() => DataSources.Load(Config(), NetworkDescription.Parse("lstm 4-8-2")));
        Assert.Contains("6 values per example, read flat as time steps of the 4 features", notWhole.Message);
        Assert.Contains("6 is not a multiple of 4", notWhole.Message);
        var length = Assert.Throws<ArgumentException>(() => DataSources.Load(Config(4), NetworkDescription.Parse("lstm 1-8-2")));
        Assert.Contains("--seq-len 4 (the 'sequenceLength' field) needs 4 values per example", length.Message);
        // a network whose weights are sized by T (a linear after a flatten) reads only rows of its own T·I values
        var fixedLength = NetworkDescription.Parse("net 2x3 seq[flatten linear(out=2)]");
        Assert.Null(fixedLength.FlatSequenceSteps(9));
        Assert.Equal(2, fixedLength.FlatSequenceSteps(6));
        var own = Assert.Throws<ArgumentException>(() => DataSources.Load(Config(), NetworkDescription.Parse("net 2x2 seq[flatten linear(out=2)]")).Train);
        Assert.Contains("the network does not run at 3 steps", own.Message);
    }

    [Fact]
    public void Arrays_AClassPerPosition_TrainASequenceTaggerAndNeedLogitsPerPosition()
    {
        // 480 sequences of 8 steps of 2 features; each step's tag is the sign of its first feature (plus a third class near 0)
        var g = new Generator(5);
        var x = Tensor.RandN(g, 480, 8, 2);
        var xs = (float[])x.Storage;
        var tags = Enumerable.Range(0, 480 * 8).Select(i => xs[2 * i] > 0.5f ? 2.0 : xs[2 * i] < -0.5f ? 0.0 : 1.0).ToArray();
        var path = Path.Combine(_dir.Path, "tags.safetensors");
        SafeTensors.Write(path, [new("x", x), new("y", Tensor.FromArray(tags, 480, 8))]);
        var config = new TrainingConfig
        {
            Data = path, TargetKind = TargetKind.Classes, Standardize = false, Model = "net 8x2 seq[recurrent(cell=gru,hidden=16,output=sequence) linear(out=3)]",
            Optimizer = OptimizerKind.Adam, LearningRate = 0.02, BatchSize = 32, Epochs = 8, Seed = 1, Threads = 1,
        };
        var bundle = DataSources.Load(config, config.Description());
        Assert.Equal([bundle.Train.Count, 8], bundle.Train.Labels!.Shape.ToArray());
        Assert.Equal(480, bundle.Train.Count + bundle.Test.Count);
        // every example keeps its own tags, position by position (the split permutes whole examples)
        var inputs = (float[])bundle.Train.Inputs.Storage;
        for (int e = 0; e < bundle.Train.Count; e++)
            for (int t = 0; t < 8; t++)
            {
                float v = inputs[(e * 8 + t) * 2];
                Assert.Equal(v > 0.5f ? 2 : v < -0.5f ? 0 : 1, bundle.Train.Labels.Data[e * 8 + t]);
            }
        var result = new Trainer(config).Run(cancellation: TestContext.Current.CancellationToken);
        Assert.True(result.Epochs[^1].TestAccuracy > 0.9, $"a GRU tagger reached {result.Epochs[^1].TestAccuracy:P1} of the test positions");
        // a model with one output vector per example cannot take a class per position, and the reverse
        var perExample = Assert.Throws<ArgumentException>(() => DataSources.Load(config with { Model = "gru 2-16-3" }, NetworkDescription.Parse("gru 2-16-3")));
        Assert.Contains("has a class for each of 8 positions per example, but the model (gru 2-16-3 init=default) gives [3] per example", perExample.Message);
        var bad = tags.ToArray();
        bad[8 * 3 + 5] = 1.5;
        SafeTensors.Write(path, [new("x", x), new("y", Tensor.FromArray(bad, 480, 8))]);
        var label = Assert.Throws<InvalidDataException>(() => FileData.Load(config));
        Assert.Contains("element 29 (example 3, position 5) is 1.5, not a class label", label.Message);
    }

    [Fact]
    public void Arrays_TokenIdsForAModelThatStartsWithAnEmbedding_AreNotStandardisedAndAreChecked()
    {
        // 200 windows of 8 token ids from a vocabulary of 6, each labelled with the next id
        var ids = Enumerable.Range(0, 200 * 9).Select(i => (double)(i * 7 % 6)).ToArray();
        var x = Enumerable.Range(0, 200 * 8).Select(i => ids[i / 8 * 9 + i % 8]).ToArray();
        var y = Enumerable.Range(0, 200 * 8).Select(i => ids[i / 8 * 9 + i % 8 + 1]).ToArray();
        var path = Path.Combine(_dir.Path, "tokens.safetensors");
        SafeTensors.Write(path, [new("x", Tensor.FromArray(x, 200, 8)), new("y", Tensor.FromArray(y, 200, 8))]);
        var config = new TrainingConfig { Data = path, TargetKind = TargetKind.Classes, Model = "transformer vocab=6 d=8 heads=2 layers=1 ctx=8" };
        var bundle = DataSources.Load(config, config.Description());
        // the ids as written (standardised, the first would be about -1.5, which the embedding refused)
        Assert.All(bundle.Train.Inputs.ToDoubleArray(), v => Assert.True(v is 0 or 1 or 2 or 3 or 4 or 5, $"{v} is not one of the file's ids"));
        Assert.Equal(x.Order(), bundle.Train.Inputs.ToDoubleArray().Concat(bundle.Test.Inputs.ToDoubleArray()).Order());
        var smaller = config with { Model = "transformer vocab=5 d=8 heads=2 layers=1 ctx=8" };
        var e = Assert.Throws<ArgumentException>(() => DataSources.Load(smaller, smaller.Description()));
        Assert.Contains("holds the input value 5, not a token id in [0, 5)", e.Message);
        Assert.Contains("starts with an embedding, which reads token ids", e.Message);
        // a streamed table of ids loads too (its inputs are read batch by batch, never whole)
        var table = Text("ids.csv", "a,b,y\n" + string.Concat(Enumerable.Range(0, 20).Select(i => $"{i % 6},{i % 4},{i % 2}\n")));
        var streamed = new TrainingConfig { Data = table, Target = "y", Stream = true, Model = "net 2 seq[embedding(vocab=6,dim=4) flatten linear(out=2)]" };
        Assert.True(DataSources.Load(streamed, streamed.Description()).Train.IsStreamed);
    }
}
