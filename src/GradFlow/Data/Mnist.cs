using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>Which half of an MNIST-family data set.</summary>
public enum MnistSplit
{
    /// <summary><c>train-images-idx3-ubyte</c> / <c>train-labels-idx1-ubyte</c> (60,000 examples).</summary>
    Train,

    /// <summary><c>t10k-images-idx3-ubyte</c> / <c>t10k-labels-idx1-ubyte</c> (10,000 examples).</summary>
    Test,
}

/// <summary>Image tensor layout.</summary>
public enum ImageLayout
{
    /// <summary><c>[N, rows * cols]</c> (784 for 28 x 28), for fully connected networks.</summary>
    Flat,

    /// <summary><c>[N, rows, cols]</c>.</summary>
    Grid,

    /// <summary><c>[N, 1, rows, cols]</c>: one channel, NCHW, for convolutional networks.</summary>
    Channels,
}

/// <summary>
/// Loader for the MNIST family (MNIST, Fashion-MNIST, KMNIST): four IDX files in one directory,
/// each raw or gzip-compressed (<c>.gz</c>).
/// </summary>
/// <remarks>
/// Pixels <c>p</c> in <c>0..255</c> become float32 <c>x = p / 255</c>, or, when a mean and standard
/// deviation are given, <c>x = (p / 255 - mean) / std</c>. The image file must hold ubytes of rank 3
/// <c>[N, rows, cols]</c>, the label file ubytes of rank 1 <c>[N]</c> with the same N and every
/// label in <c>0..9</c>; anything else throws <see cref="InvalidDataException"/> naming the file.
/// </remarks>
public static class Mnist
{
    /// <summary>Number of classes of every MNIST-family set.</summary>
    public const int ClassCount = 10;

    /// <summary>The file name stems of a split: <c>(train|t10k)-images-idx3-ubyte</c>, <c>(train|t10k)-labels-idx1-ubyte</c>.</summary>
    public static (string Images, string Labels) FileStems(MnistSplit split)
    {
        string prefix = split == MnistSplit.Train ? "train" : "t10k";
        return ($"{prefix}-images-idx3-ubyte", $"{prefix}-labels-idx1-ubyte");
    }

    /// <summary>All four file stems (train images, train labels, test images, test labels).</summary>
    public static IReadOnlyList<string> AllFileStems { get; } =
        [FileStems(MnistSplit.Train).Images, FileStems(MnistSplit.Train).Labels, FileStems(MnistSplit.Test).Images, FileStems(MnistSplit.Test).Labels];

    /// <summary>The path of <paramref name="stem"/> in <paramref name="directory"/>: the raw file if present, else <c>stem.gz</c>, else null.</summary>
    public static string? FindFile(string directory, string stem)
    {
        var raw = Path.Combine(directory, stem);
        if (File.Exists(raw)) return raw;
        var gz = raw + ".gz";
        return File.Exists(gz) ? gz : null;
    }

    /// <summary>Loads one split from <paramref name="directory"/>.</summary>
    /// <param name="directory">Folder holding the IDX files.</param>
    /// <param name="split">Training or test half.</param>
    /// <param name="layout">Flat <c>[N, 784]</c> (default), grid <c>[N, 28, 28]</c> or channels <c>[N, 1, 28, 28]</c>.</param>
    /// <param name="mean">Optional mean to subtract after scaling to [0, 1].</param>
    /// <param name="std">Optional standard deviation to divide by (positive; give both or neither).</param>
    /// <param name="classNames">Optional names of the 10 classes.</param>
    /// <exception cref="FileNotFoundException">when a file is missing.</exception>
    /// <exception cref="InvalidDataException">when a file is malformed or the two files disagree.</exception>
    public static Dataset Load(string directory, MnistSplit split, ImageLayout layout = ImageLayout.Flat,
        double? mean = null, double? std = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (mean.HasValue != std.HasValue)
            throw new ArgumentException("Mnist.Load: give both mean and std to standardise, or neither.");
        if (std is double s && !(s > 0 && double.IsFinite(s)))
            throw new ArgumentOutOfRangeException(nameof(std), $"Mnist.Load: std {s} must be positive and finite.");
        if (mean is double m && !double.IsFinite(m))
            throw new ArgumentOutOfRangeException(nameof(mean), $"Mnist.Load: mean {m} must be finite.");

        var (imageStem, labelStem) = FileStems(split);
        var imagePath = FindFile(directory, imageStem)
            ?? throw new FileNotFoundException($"Mnist.Load: neither {imageStem} nor {imageStem}.gz is in {directory}.", Path.Combine(directory, imageStem));
        var labelPath = FindFile(directory, labelStem)
            ?? throw new FileNotFoundException($"Mnist.Load: neither {labelStem} nor {labelStem}.gz is in {directory}.", Path.Combine(directory, labelStem));

        var images = IdxReader.Read(imagePath);
        if (images.Type != IdxType.UInt8 || images.Shape.Length != 3)
            throw new InvalidDataException(
                $"{imagePath}: expected images as ubyte [N, rows, cols], header says {IdxArray.TypeName(images.Type)} {Shapes.Format(images.Shape)}.");
        var labels = IdxReader.Read(labelPath);
        if (labels.Type != IdxType.UInt8 || labels.Shape.Length != 1)
            throw new InvalidDataException(
                $"{labelPath}: expected labels as ubyte [N], header says {IdxArray.TypeName(labels.Type)} {Shapes.Format(labels.Shape)}.");
        int n = images.Shape[0], rows = images.Shape[1], cols = images.Shape[2];
        if (labels.Shape[0] != n)
            throw new InvalidDataException($"{labelPath}: holds {labels.Shape[0]} labels but {imagePath} holds {n} images.");

        var labelBytes = (byte[])labels.Data;
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (labelBytes[i] >= ClassCount)
                throw new InvalidDataException($"{labelPath}: label {labelBytes[i]} at position {i} is outside 0..{ClassCount - 1}.");
            y[i] = labelBytes[i];
        }

        // x = (p / 255 - mean) / std, with mean = 0, std = 1 when not standardising.
        double mu = mean ?? 0, sigma = std ?? 1;
        Span<float> table = stackalloc float[256];
        for (int p = 0; p < 256; p++) table[p] = (float)((p / 255.0 - mu) / sigma);
        var pixels = (byte[])images.Data;
        var x = GC.AllocateUninitializedArray<float>(pixels.Length);
        for (int i = 0; i < pixels.Length; i++) x[i] = table[pixels[i]];

        int[] shape = layout switch
        {
            ImageLayout.Flat => [n, rows * cols],
            ImageLayout.Grid => [n, rows, cols],
            _ => [n, 1, rows, cols],
        };
        return Dataset.Classification(new Tensor(x, shape), new IndexTensor(y, [n]), ClassCount, classNames);
    }
}

/// <summary>
/// Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 28 x 28 grey-scale images of clothing in
/// 10 classes, in MNIST's IDX files (60,000 training, 10,000 test examples).
/// </summary>
/// <example>
/// <code>
/// var dir = DataResolver.ResolveFashionMnist(options.Data);
/// var train = FashionMnist.Load(dir, MnistSplit.Train, standardise: true);
/// </code>
/// </example>
public static class FashionMnist
{
    /// <summary>The class names, by label (0 = T-shirt/top ... 9 = Ankle boot).</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Mean pixel of the training images after scaling to [0, 1] (0.2860).</summary>
    public const double TrainMean = 0.2860;

    /// <summary>Standard deviation of the training pixels after scaling to [0, 1] (0.3530).</summary>
    public const double TrainStd = 0.3530;

    /// <summary>
    /// Loads a split from <paramref name="directory"/>; with <paramref name="standardise"/> pixels become
    /// <c>(p / 255 - 0.2860) / 0.3530</c> (the training set's statistics).
    /// </summary>
    public static Dataset Load(string directory, MnistSplit split, ImageLayout layout = ImageLayout.Flat, bool standardise = false) =>
        standardise
            ? Mnist.Load(directory, split, layout, TrainMean, TrainStd, ClassNames)
            : Mnist.Load(directory, split, layout, classNames: ClassNames);
}

/// <summary>
/// Finds the directory of a data set: <c>--data DIR</c> when given, else <c>$GRADFLOW_DATA</c> when
/// set, else <see cref="DefaultFashionMnistDirectory"/>, where Debian's
/// <c>dataset-fashion-mnist</c> package installs the four <c>.gz</c> files.
/// </summary>
/// <remarks>
/// The first source that is given decides; a later one is not tried when an earlier one is given
/// but lacks the files (a directory the user named should not be silently replaced by another).
/// </remarks>
public static class DataResolver
{
    /// <summary>The environment variable consulted when no <c>--data</c> option is given.</summary>
    public const string EnvironmentVariable = "GRADFLOW_DATA";

    /// <summary>Install path of Debian's <c>dataset-fashion-mnist</c> package.</summary>
    public const string DefaultFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The Debian (and Ubuntu) package that installs Fashion-MNIST.</summary>
    public const string DebianPackage = "dataset-fashion-mnist";

    /// <summary>
    /// The directory holding Fashion-MNIST's four IDX files (raw or <c>.gz</c>).
    /// </summary>
    /// <param name="dataOption">The value of <c>--data</c>, or null when not given.</param>
    /// <exception cref="FileNotFoundException">when the chosen directory lacks a file; the message says where it looked, why there, and how to get the files.</exception>
    public static string ResolveFashionMnist(string? dataOption)
    {
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        var (dir, source) =
            !string.IsNullOrEmpty(dataOption) ? (dataOption, "from --data")
            : !string.IsNullOrEmpty(env) ? (env, $"from ${EnvironmentVariable}")
            : (DefaultFashionMnistDirectory, $"the default; --data was not given and ${EnvironmentVariable} is not set");

        var missing = Mnist.AllFileStems.Where(stem => Mnist.FindFile(dir, stem) is null).ToArray();
        if (missing.Length == 0) return dir;
        string what = Directory.Exists(dir)
            ? $"it lacks {string.Join(", ", missing.Select(m => m + "[.gz]"))}"
            : "the directory does not exist";
        throw new FileNotFoundException(
            $"Fashion-MNIST not found: looked in {dir} ({source}), and {what}. " +
            $"To get it: 'apt-get install {DebianPackage}' (Debian/Ubuntu; installs the four .gz files into {DefaultFashionMnistDirectory}), " +
            $"or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz " +
            $"from https://github.com/zalandoresearch/fashion-mnist and pass --data DIR or set {EnvironmentVariable}=DIR.",
            Path.Combine(dir, missing.Length > 0 ? missing[0] : ""));
    }
}
