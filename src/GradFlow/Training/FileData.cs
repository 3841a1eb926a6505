using GradFlow.Data;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>The formats <see cref="FileData"/> reads.</summary>
public enum FileDataFormat
{
    /// <summary>Comma-separated values with a header (<c>.csv</c>).</summary>
    Csv,
    /// <summary>Tab-separated values with a header (<c>.tsv</c>).</summary>
    Tsv,
    /// <summary>A NumPy array (<c>.npy</c>) with a second one for the targets.</summary>
    Npy,
    /// <summary>A NumPy archive (<c>.npz</c>) holding arrays <c>x</c> and <c>y</c>.</summary>
    Npz,
    /// <summary>A safetensors file holding tensors <c>x</c> and <c>y</c>.</summary>
    SafeTensors,
    /// <summary>An IDX image file (MNIST's format, optionally gzipped) with its IDX label file.</summary>
    Idx,
    /// <summary>A folder with one subfolder of PNG/JPEG images per class.</summary>
    ImageFolder,
}

/// <summary>
/// The user's own data: a training configuration whose <c>data</c> is a file or folder rather than
/// a built-in set (docs/data.md). Reads the training data and the test data (<c>testData</c>, or a
/// seeded split holding out <c>testFraction</c>), then standardises both with the training set's
/// statistics. Called by <see cref="DataSources.Load"/>, which then checks the sizes against the model.
/// </summary>
/// <remarks>
/// Errors: <see cref="FileNotFoundException"/> or <see cref="DirectoryNotFoundException"/> for a
/// missing file; <see cref="InvalidDataException"/> naming the file and the row and column (tables),
/// array and index (arrays) or image file for content that cannot be used. Nothing is written.
/// </remarks>
public static class FileData
{
    /// <summary>Whether <paramref name="path"/> names an existing file or folder.</summary>
    public static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    /// <summary>The format of <paramref name="path"/>: a folder is an image folder, a file goes by its extension (IDX files by <c>idx</c> in their name).</summary>
    /// <exception cref="InvalidDataException">when the extension is not one of the formats.</exception>
    public static FileDataFormat FormatOf(string path)
    {
        if (Directory.Exists(path)) return FileDataFormat.ImageFolder;
        string name = Path.GetFileName(path).ToLowerInvariant();
        return Path.GetExtension(name) switch
        {
            ".csv" => FileDataFormat.Csv,
            ".tsv" => FileDataFormat.Tsv,
            ".npy" => FileDataFormat.Npy,
            ".npz" => FileDataFormat.Npz,
            ".safetensors" => FileDataFormat.SafeTensors,
            _ when name.Contains("idx", StringComparison.Ordinal) || name.Contains("ubyte", StringComparison.Ordinal) => FileDataFormat.Idx,
            _ => throw new InvalidDataException(
                $"data: {path}: unknown format (.csv, .tsv, .npy, .npz, .safetensors, an IDX file with 'idx' in its name, or a folder of class subfolders)."),
        };
    }

    /// <summary>Loads <c>config.Data</c> (and <c>config.TestData</c>) as training and test sets.</summary>
    /// <exception cref="ArgumentException">when <c>config.Data</c> is neither a built-in name nor an existing path.</exception>
    public static DataBundle Load(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!Exists(config.Data))
            throw new ArgumentException($"data: '{config.Data}' is neither a built-in data set (valid: {string.Join(", ", DataSources.Names)}) nor an existing file or folder.");
        if (config.TestData is { } td && !Exists(td))
            throw new FileNotFoundException($"data: the test data {td} does not exist.", td);
        var format = FormatOf(config.Data);
        if (config.TestData is not null && FormatOf(config.TestData) != format)
            throw new InvalidDataException($"data: the test data {config.TestData} is {FormatOf(config.TestData)} but the training data {config.Data} is {format}.");
        if (config.Stream && format is not (FileDataFormat.Csv or FileDataFormat.Tsv or FileDataFormat.ImageFolder))
            throw new ArgumentException($"data: {config.Data} is {format}; streaming (--stream) reads CSV/TSV files and image folders.");
        var (train, test, groups, features, imageSize) = format switch
        {
            FileDataFormat.Csv or FileDataFormat.Tsv => Tables(config),
            FileDataFormat.ImageFolder => Images(config),
            _ => Arrays(config, format),
        };
        if (test is null)
        {
            // the split's seed is drawn from the run's seed but differs from the shuffling and initialisation streams
            (train, test) = train.RandomSplit(1 - config.TestFraction, config.Seed ^ 0x5EED_5B117_DA7AUL);
            if (train.Count == 0 || test.Count == 0)
                throw new InvalidDataException($"data: {config.Data}: {train.Count + test.Count} examples cannot be split into a training and a test set " +
                    $"at test fraction {config.TestFraction}; give more examples or --test-data.");
        }
        else SameSizesPerExample(config, train, test);
        Standardizer? s = null;
        if (config.Standardize)
        {
            // a streamed set is fitted in a streaming pass over its training part and standardised as it is read
            s = Standardizer.Fit(train, groups(train.InputShape));
            train = train.Standardized(s);
            test = test.Standardized(s);
        }
        // an array's classes are named 0..K−1 by DataSources once K is checked against the model (a crafted label of 999999 is refused there)
        return new DataBundle(train, test) { Preprocessing = new Preprocessing(s?.Mean, s?.Std, train.ClassNames, features, imageSize) };
    }

    /// <summary>
    /// Checks that a test file holds as many input values and targets (or class labels) per example as the training file: the model
    /// and the standardisation are sized by the training file alone.
    /// </summary>
    /// <exception cref="InvalidDataException">naming both files and the two counts.</exception>
    private static void SameSizesPerExample(TrainingConfig config, Dataset train, Dataset test)
    {
        static long PerExample(int[] shape) => shape.Skip(1).Aggregate(1L, (a, d) => a * d);
        void Same(string what, long inTest, long inTrain)
        {
            if (inTest != inTrain)
                throw new InvalidDataException($"data: the test data {config.TestData} has {inTest} {what} per example, but the training data {config.Data} has {inTrain}.");
        }
        Same("input values", PerExample(test.InputShape), PerExample(train.InputShape));
        if (train.Targets is { } t && test.Targets is { } u) Same("targets", PerExample(u.Shape.ToArray()), PerExample(t.Shape.ToArray()));
        if (train.Labels is { } l && test.Labels is { } m) Same("class labels", PerExample(m.Shape.ToArray()), PerExample(l.Shape.ToArray()));
    }

    /// <summary>
    /// Reads a file to predict as the run of <paramref name="config"/> read its data (<paramref name="preprocessing"/>): the same
    /// kind of file (a table with the run's feature columns, an image folder with its class folders, an array file), with or
    /// without targets, not yet standardised nor shaped for the model (<see cref="Predictor"/> does both).
    /// </summary>
    /// <exception cref="FileNotFoundException">when the file does not exist.</exception>
    /// <exception cref="InvalidDataException">naming the file, and its line, column or element, for content that does not fit the run.</exception>
    public static PredictionData ReadToPredict(TrainingConfig config, string path, Preprocessing preprocessing)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(preprocessing);
        if (!Exists(path)) throw new FileNotFoundException($"predict: {path} does not exist.", path);
        var format = FormatOf(path);
        string trained = preprocessing.Features is not null ? "a table (CSV or TSV)" : preprocessing.ImageSize is not null ? "an image folder" : "an array file (NPY, NPZ, safetensors or IDX)";
        bool fits = preprocessing.Features is not null ? format is FileDataFormat.Csv or FileDataFormat.Tsv
            : preprocessing.ImageSize is not null ? format == FileDataFormat.ImageFolder
            : format is FileDataFormat.Npy or FileDataFormat.Npz or FileDataFormat.SafeTensors or FileDataFormat.Idx;
        string given = format switch
        {
            FileDataFormat.Csv or FileDataFormat.Tsv => "a table",
            FileDataFormat.ImageFolder => "a folder (read as an image folder)",
            _ => $"an array file ({format})",
        };
        if (!fits) throw new InvalidDataException($"predict: {path} is {given}, but the run trained on {trained} ({config.Data}); give the same kind of data.");
        var classes = preprocessing.Classes;
        switch (format)
        {
            case FileDataFormat.Csv or FileDataFormat.Tsv:
            {
                string target = config.Target ?? throw new InvalidDataException($"predict: the run's config names no target column.");
                var t = Tabular.ReadFeatures(path, target, preprocessing.Features!);
                var x = new Tensor(t.Features, [t.Rows, t.FeatureNames.Count]);
                if (!t.HasTarget) return new PredictionData(path, x, null, null);
                if (classes is null) return new PredictionData(path, x, null, new Tensor(Tabular.EncodeTarget([t], target, TargetKind.Values).Values![0], [t.Rows, 1]));
                var (names, labels, _) = Tabular.EncodeTarget([t], target, TargetKind.Classes);
                var index = new int[names!.Count];
                for (int k = 0; k < index.Length; k++)
                {
                    index[k] = IndexOf(classes, names[k]);
                    if (index[k] < 0)
                    {
                        int row = Array.IndexOf(labels![0], k);
                        throw new InvalidDataException($"csv: {path}: line {t.Lines[row]}, column '{target}': the class '{names[k]}' is not one of the run's {classes.Count} classes ({string.Join(", ", classes)}).");
                    }
                }
                var mapped = Array.ConvertAll(labels![0], k => index[k]);
                return new PredictionData(path, x, IndexTensor.FromArray(mapped, t.Rows), null);
            }
            case FileDataFormat.ImageFolder:
            {
                // class folders as the run's (labelled), or the images themselves (to classify)
                var size = preprocessing.ImageSize!;
                var (images, labels, files) = ImageFolder.LoadToPredict(path, new ImageFolderOptions(size[0], size[1], config.ImageChannels), classes!);
                return new PredictionData(path, images, labels, null, files);
            }
            default:
            {
                var xy = ReadXY(path, null, format, requireY: false);
                // a run on an NPY, NPZ or safetensors file has statistics for each value of an example (IDX and Fashion-MNIST: one for all);
                // Standardizer.Apply would take a longer row's values in runs (a recurrent model's 24 values with the statistics of its 12),
                // and refuse a shorter one without naming the file
                bool perValue = !DataSources.Names.Contains(config.Data) && FormatOf(config.Data) is FileDataFormat.Npy or FileDataFormat.Npz or FileDataFormat.SafeTensors;
                if (perValue && format != FileDataFormat.Idx && preprocessing.Mean is { } mean && xy.XShape.Length > 0 && xy.XShape[0] > 0
                    && xy.X.Length / xy.XShape[0] is var per && per != mean.Count)
                    throw new InvalidDataException($"predict: {xy.XName}: {per} input values per example, but the run was trained on {mean.Count} " +
                        $"(its standardisation has statistics for each of them, {Preprocessing.FileName}); give examples of the training data's size.");
                if (!xy.HasY) return new PredictionData(path, Inputs(xy), null, null);
                if (classes is not null && CheckLabels(xy) is var count && count > classes.Count)
                {
                    int at = Array.IndexOf(xy.Y, (double)(count - 1));
                    throw new InvalidDataException($"data: {xy.YName}: element {at} is {count - 1}, but the run has {classes.Count} classes (0..{classes.Count - 1}).");
                }
                // the inputs, and the labels ([N], or [N, T] for a tagger) or targets as training reads them
                var d = ToDataset(xy, classes is not null, classes?.Count ?? 0);
                return new PredictionData(path, d.Inputs, d.Labels, d.Targets);
            }
        }
    }

    private static int IndexOf(IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++)
            if (list[i] == value) return i;
        return -1;
    }

    // ------------------------------------------------------------------ tables

    /// <summary>A file's training and test sets as read, how its examples' values group for standardisation, and what predicting needs to read new files alike.</summary>
    private sealed record Read(Dataset Train, Dataset? Test, Func<int[], int> Groups, IReadOnlyList<string>? Features = null, int[]? ImageSize = null);

    private static Read Tables(TrainingConfig config)
    {
        string target = config.Target
            ?? throw new ArgumentException($"data: {config.Data} is a table; name its target column with --target (the 'target' field).");
        if (config.Stream) return StreamedTables(config, target);
        var train = Tabular.Read(config.Data, target);
        var test = config.TestData is null ? null : Tabular.Read(config.TestData, target, train.FeatureNames);
        var tables = test is null ? new[] { train } : [train, test];
        var (classNames, labels, values) = Tabular.EncodeTarget(tables, target, config.TargetKind);
        Dataset Make(TableColumns t, int k)
        {
            var x = new Tensor(t.Features, [t.Rows, t.FeatureNames.Count]);
            return labels is not null
                ? Dataset.Classification(x, IndexTensor.FromArray(labels[k], t.Rows), classNames!.Count, classNames)
                : Dataset.Regression(x, new Tensor(values![k], [t.Rows, 1]));
        }
        return new Read(Make(train, 0), test is null ? null : Make(test, 1), x => x[1], train.FeatureNames);
    }

    private static Read StreamedTables(TrainingConfig config, string target)
    {
        var (trainSource, train) = StreamedTable.Open(config.Data, target);
        var (testSource, test) = config.TestData is null ? (null, null) : StreamedTable.Open(config.TestData, target, train.FeatureNames);
        var tables = test is null ? new[] { train } : [train, test!];
        var (classNames, labels, values) = Tabular.EncodeTarget(tables, target, config.TargetKind);
        Dataset Make(StreamedTable source, int k) => labels is not null
            ? Dataset.Streamed(source, IndexTensor.FromArray(labels[k], source.Count), null, classNames!.Count, classNames)
            : Dataset.Streamed(source, null, new Tensor(values![k], [source.Count, 1]));
        return new Read(Make(trainSource, 0), testSource is null ? null : Make(testSource, 1), x => x[1], train.FeatureNames);
    }

    // ------------------------------------------------------------------ image folders

    private static Read Images(TrainingConfig config)
    {
        var options = new ImageFolderOptions(config.ImageWidth, config.ImageHeight, config.ImageChannels);
        Func<string, ImageFolderOptions, IReadOnlyList<string>?, Dataset> load = config.Stream ? ImageFolder.Stream : ImageFolder.Load;
        var train = load(config.Data, options, null);
        if (options.Width is null)
        {
            // the test images are resized to the training images' size: that of the first training image
            int? w = null, h = null;
            ImageFolder.Decode(ImageFolder.List(config.Data).Files[0].File, ref w, ref h, config.ImageChannels);
            options = options with { Width = w, Height = h };
        }
        var test = config.TestData is null ? null : load(config.TestData, options, train.ClassNames);
        return new Read(train, test, _ => config.ImageChannels, ImageSize: [options.Width!.Value, options.Height!.Value]);
    }

    // ------------------------------------------------------------------ arrays: NPY, NPZ, safetensors, IDX

    /// <summary>An input array and a target array, with where they came from.</summary>
    private sealed record XY(string XName, int[] XShape, double[] X, string YName, bool YInteger, int[] YShape, double[] Y)
    {
        /// <summary>Whether the file has targets (a file to predict may hold inputs only: <see cref="NoY"/>).</summary>
        public bool HasY => YName.Length > 0;
    }

    /// <summary>The x of a file without targets.</summary>
    private static XY NoY(string xName, int[] xShape, double[] x) => new(xName, xShape, x, "", false, [], []);

    private static Read Arrays(TrainingConfig config, FileDataFormat format)
    {
        var train = ReadXY(config.Data, config.Target, format);
        var test = config.TestData is null ? null : ReadXY(config.TestData, null, format);
        bool classes = config.TargetKind switch
        {
            TargetKind.Classes => true,
            TargetKind.Values => false,
            _ => train.YInteger,
        };
        int classCount = 0;
        if (classes)
            foreach (var xy in test is null ? new[] { train } : [train, test])
                classCount = Math.Max(classCount, CheckLabels(xy));
        Func<int[], int> groups = format == FileDataFormat.Idx ? _ => 1 : shape => shape.Skip(1).Aggregate(1, (a, d) => a * d);
        return new Read(ToDataset(train, classes, classCount), test is null ? null : ToDataset(test, classes, classCount), groups);
    }

    private static XY ReadXY(string path, string? target, FileDataFormat format, bool requireY = true)
    {
        switch (format)
        {
            case FileDataFormat.Npz:
            {
                var arrays = Npy.ReadNpz(path);
                var x = arrays.GetValueOrDefault("x") ?? throw new InvalidDataException($"npz: {path}: has no array 'x' (arrays: {string.Join(", ", arrays.Keys)}).");
                var y = arrays.GetValueOrDefault("y");
                if (y is null && !requireY) return NoY($"{path}:x", x.Shape, x.Values);
                if (y is null) throw new InvalidDataException($"npz: {path}: has no array 'y' (arrays: {string.Join(", ", arrays.Keys)}).");
                return new XY($"{path}:x", x.Shape, x.Values, $"{path}:y", y.IsInteger, y.Shape, y.Values);
            }
            case FileDataFormat.Npy:
            {
                if (!requireY && target is null)
                {
                    var inputs = Npy.Read(path);
                    return NoY(path, inputs.Shape, inputs.Values);
                }
                string yPath = target ?? Sibling(path, 'x', 'y', "npy: name the target array's file with --target");
                var x = Npy.Read(path);
                var y = Npy.Read(yPath);
                return new XY(path, x.Shape, x.Values, yPath, y.IsInteger, y.Shape, y.Values);
            }
            case FileDataFormat.SafeTensors:
            {
                var c = SafeTensors.Read(path);
                var d = c.ToDictionary();
                var x = d.GetValueOrDefault("x") ?? throw new InvalidDataException($"safetensors: {path}: has no tensor 'x' (tensors: {string.Join(", ", d.Keys)}).");
                var y = d.GetValueOrDefault("y");
                if (y is null && !requireY) return NoY($"{path}:x", x.Shape.ToArray(), Doubles(x));
                if (y is null) throw new InvalidDataException($"safetensors: {path}: has no tensor 'y' (tensors: {string.Join(", ", d.Keys)}).");
                bool yInteger = c.DTypes.GetValueOrDefault("y") is { } t && (t.StartsWith('I') || t.StartsWith('U') || t == "BOOL");
                return new XY($"{path}:x", x.Shape.ToArray(), Doubles(x), $"{path}:y", yInteger, y.Shape.ToArray(), Doubles(y));
            }
            default:
            {
                string? yPath = target ?? (requireY ? IdxLabels(path) : IdxLabelsOrNull(path));
                var x = IdxReader.Read(path);
                var xv = IdxDoubles(x);
                if (x.Type == IdxType.UInt8)
                    for (int i = 0; i < xv.Length; i++) xv[i] /= 255; // pixels to [0, 1], as for Fashion-MNIST
                if (yPath is null) return NoY(path, x.Shape.ToArray(), xv);
                var y = IdxReader.Read(yPath);
                return new XY(path, x.Shape.ToArray(), xv, yPath, y.Type is not (IdxType.Float32 or IdxType.Float64), y.Shape.ToArray(), IdxDoubles(y));
            }
        }
    }

    /// <summary>The file named like <paramref name="path"/> with its first <paramref name="from"/> replaced by <paramref name="to"/>.</summary>
    private static string Sibling(string path, char from, char to, string hint)
    {
        string name = Path.GetFileName(path), stem = Path.GetFileNameWithoutExtension(path);
        // the 'x' that stands as a word of the name (x.npy, train_x.npy, x_train.npy, extra_x.npy: not the x of "extra"), the last
        // such; else the first 'x' (trainx.npy)
        int at = -1;
        for (int i = stem.Length - 1; i >= 0 && at < 0; i--)
            if (stem[i] == from && (i == 0 || !char.IsLetter(stem[i - 1])) && (i == stem.Length - 1 || !char.IsLetter(stem[i + 1]))) at = i;
        if (at < 0) at = name.IndexOf(from, StringComparison.Ordinal);
        if (at < 0) throw new ArgumentException($"{hint} (no '{from}' in {name} to replace by '{to}').");
        var result = Path.Combine(Path.GetDirectoryName(path) ?? "", name[..at] + to + name[(at + 1)..]);
        if (!File.Exists(result)) throw new FileNotFoundException($"{hint}; {result} does not exist.", result);
        return result;
    }

    /// <summary>The labels file of an IDX images file (<see cref="IdxLabels"/>), or null when there is none.</summary>
    private static string? IdxLabelsOrNull(string path)
    {
        try
        {
            return IdxLabels(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The labels file of an IDX images file: 'images' → 'labels' and 'idx3' → 'idx1' in its name.</summary>
    private static string IdxLabels(string path)
    {
        string name = Path.GetFileName(path);
        string labels = name.Replace("images", "labels", StringComparison.Ordinal).Replace("idx3", "idx1", StringComparison.Ordinal);
        var result = Path.Combine(Path.GetDirectoryName(path) ?? "", labels);
        if (labels == name || !File.Exists(result))
            throw new FileNotFoundException($"idx: the label file of {path} was looked for as {result}; name it with --target.", result);
        return result;
    }

    private static double[] Doubles(Tensor t) => t.Storage switch
    {
        float[] f => Array.ConvertAll(f, v => (double)v),
        double[] d => d,
        _ => throw new InvalidOperationException("unreachable: tensors hold float or double"),
    };

    private static double[] IdxDoubles(IdxArray a) => a.Data switch
    {
        byte[] b => Array.ConvertAll(b, v => (double)v),
        sbyte[] b => Array.ConvertAll(b, v => (double)v),
        short[] s => Array.ConvertAll(s, v => (double)v),
        int[] i => Array.ConvertAll(i, v => (double)v),
        float[] f => Array.ConvertAll(f, v => (double)v),
        double[] d => (double[])d.Clone(),
        _ => throw new InvalidOperationException("unreachable: IDX arrays are byte, sbyte, short, int, float or double"),
    };

    /// <summary>
    /// Checks that y holds class labels: one non-negative integer per example ([N] or [N, 1]), or one per position ([N, T], T ≥ 2: a
    /// sequence tagger's or a language model's targets); returns the largest plus one.
    /// </summary>
    private static int CheckLabels(XY xy)
    {
        if (xy.YShape.Length is not (1 or 2) || xy.YShape.Length == 2 && xy.YShape[1] == 0)
            throw new InvalidDataException($"data: {xy.YName}: class labels need shape [N], [N, 1], or [N, T] (a class per position), got [{string.Join(", ", xy.YShape)}].");
        int perExample = xy.YShape.Length == 2 ? xy.YShape[1] : 1;
        int max = -1;
        for (int i = 0; i < xy.Y.Length; i++)
        {
            double v = xy.Y[i];
            if (!(v >= 0 && v < 1_000_000 && v == Math.Floor(v)))
                throw new InvalidDataException($"data: {xy.YName}: element {i}{(perExample > 1 ? $" (example {i / perExample}, position {i % perExample})" : "")} is {v}, not a class label (an integer in 0..999999).");
            max = Math.Max(max, (int)v);
        }
        return max + 1;
    }

    /// <summary>The number of examples of x (its leading dimension).</summary>
    private static int Examples(XY xy) => xy.XShape.Length > 0 ? xy.XShape[0]
        : throw new InvalidDataException($"data: {xy.XName}: the inputs are a scalar; they need a leading example dimension [N, ...].");

    /// <summary>x as float32 inputs, flat [N, features]: the model specs DataSources builds take one vector per example.</summary>
    private static Tensor Inputs(XY xy)
    {
        int n = Examples(xy);
        if (n == 0) throw new InvalidDataException($"data: {xy.XName}: holds no examples.");
        if (xy.X.Length == 0)
            throw new InvalidDataException($"data: {xy.XName}: shape [{string.Join(", ", xy.XShape)}] holds no values per example; an example needs at least one input.");
        var x = new float[xy.X.Length];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)xy.X[i];
            if (!float.IsFinite(x[i]))
                throw new InvalidDataException($"data: {xy.XName}: element {i} (example {i / Math.Max(1, x.Length / n)}) is {xy.X[i]}, not a finite float32 value.");
        }
        return new Tensor(x, [n, x.Length / n]);
    }

    private static Dataset ToDataset(XY xy, bool classes, int classCount)
    {
        int n = Examples(xy);
        if (xy.YShape.Length == 0 || xy.YShape[0] != n)
            throw new InvalidDataException($"data: {xy.YName}: shape [{string.Join(", ", xy.YShape)}] does not hold one target for each of the {n} examples of {xy.XName}.");
        var inputs = Inputs(xy);
        if (classes)
        {
            var labels = new int[xy.Y.Length];
            for (int i = 0; i < labels.Length; i++) labels[i] = (int)xy.Y[i];
            // [N, T] with T ≥ 2: a class per position; [N] and [N, 1]: one per example
            return Dataset.Classification(inputs, labels.Length > n ? IndexTensor.FromArray(labels, n, labels.Length / n) : IndexTensor.FromArray(labels, n), classCount);
        }
        var y = new float[xy.Y.Length];
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = (float)xy.Y[i];
            if (!float.IsFinite(y[i]))
                throw new InvalidDataException($"data: {xy.YName}: element {i} is {xy.Y[i]}, not a finite float32 regression target.");
        }
        return Dataset.Regression(inputs, new Tensor(y, [n, y.Length / n]));
    }
}
