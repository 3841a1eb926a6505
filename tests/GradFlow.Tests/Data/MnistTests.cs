using GradFlow.Data;

namespace GradFlow.Tests.Data;

public class MnistTests
{
    private const int Rows = 4, Cols = 3;

    /// <summary>Writes a small MNIST-like split: n images of 4 x 3 pixels (pixel j of image i = (31 i + 7 j) mod 256) and the given labels.</summary>
    private static byte[] Pixels(int n)
    {
        var p = new byte[n * Rows * Cols];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < Rows * Cols; j++) p[i * Rows * Cols + j] = (byte)((31 * i + 7 * j) % 256);
        return p;
    }

    private static void WriteSplit(TempDirectory dir, string prefix, byte[] labels, bool gzip, int? images = null)
    {
        int n = images ?? labels.Length;
        string ext = gzip ? ".gz" : "";
        dir.Write($"{prefix}-images-idx3-ubyte{ext}", IdxBytes.UByte(Pixels(n), n, Rows, Cols), gzip);
        dir.Write($"{prefix}-labels-idx1-ubyte{ext}", IdxBytes.UByte(labels, labels.Length), gzip);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mnist_Load_ScalesPixelsToUnitRangeAndKeepsLabels(bool gzip)
    {
        using var dir = new TempDirectory();
        byte[] labels = [3, 0, 9, 1, 1];
        WriteSplit(dir, "train", labels, gzip);

        var d = Mnist.Load(dir.Path, MnistSplit.Train);
        Assert.Equal([5, Rows * Cols], d.Inputs.Shape.ToArray());
        Assert.Equal(labels.Select(l => (int)l), d.Labels!.ToArray());
        Assert.Equal(10, d.ClassCount);
        var pixels = Pixels(5);
        var x = d.Inputs.ToArray();
        for (int i = 0; i < x.Length; i++) Assert.Equal((float)(pixels[i] / 255.0), x[i]);

        var grid = Mnist.Load(dir.Path, MnistSplit.Train, ImageLayout.Grid);
        Assert.Equal([5, Rows, Cols], grid.Inputs.Shape.ToArray());
        Assert.Equal(x, grid.Inputs.ToArray());

        var channels = Mnist.Load(dir.Path, MnistSplit.Train, ImageLayout.Channels);
        Assert.Equal([5, 1, Rows, Cols], channels.Inputs.Shape.ToArray());
        Assert.Equal(x, channels.Inputs.ToArray());
    }

    [Fact]
    public void Mnist_Load_Standardised_SubtractsMeanDividesByStd()
    {
        using var dir = new TempDirectory();
        WriteSplit(dir, "t10k", [1, 2, 3], gzip: true);
        var d = Mnist.Load(dir.Path, MnistSplit.Test, mean: 0.25, std: 0.5);
        var pixels = Pixels(3);
        var x = d.Inputs.ToArray();
        for (int i = 0; i < x.Length; i++) Assert.Equal((float)((pixels[i] / 255.0 - 0.25) / 0.5), x[i]);
        Assert.Throws<ArgumentException>(() => Mnist.Load(dir.Path, MnistSplit.Test, mean: 0.25));
        Assert.Throws<ArgumentOutOfRangeException>(() => Mnist.Load(dir.Path, MnistSplit.Test, mean: 0.25, std: 0));
    }

    [Fact]
    public void Mnist_Load_PrefersRawFileOverGzip()
    {
        using var dir = new TempDirectory();
        WriteSplit(dir, "train", [1, 2], gzip: true);
        WriteSplit(dir, "train", [5, 6], gzip: false);
        Assert.Equal([5, 6], Mnist.Load(dir.Path, MnistSplit.Train).Labels!.ToArray());
    }

    [Fact]
    public void Mnist_Load_CountMismatch_NamesBothFiles()
    {
        using var dir = new TempDirectory();
        WriteSplit(dir, "train", [1, 2, 3, 4, 5], gzip: false, images: 4);
        var e = Assert.Throws<InvalidDataException>(() => Mnist.Load(dir.Path, MnistSplit.Train));
        Assert.Contains(Path.Combine(dir.Path, "train-labels-idx1-ubyte") + ": holds 5 labels", e.Message);
        Assert.Contains(Path.Combine(dir.Path, "train-images-idx3-ubyte") + " holds 4 images", e.Message);
    }

    [Fact]
    public void Mnist_Load_LabelOutOfRange_NamesFileAndPosition()
    {
        using var dir = new TempDirectory();
        WriteSplit(dir, "train", [1, 2, 10, 4], gzip: true);
        var e = Assert.Throws<InvalidDataException>(() => Mnist.Load(dir.Path, MnistSplit.Train));
        Assert.Equal($"{Path.Combine(dir.Path, "train-labels-idx1-ubyte.gz")}: label 10 at position 2 is outside 0..9.", e.Message);
    }

    [Fact]
    public void Mnist_Load_WrongTypeOrRank_NamesFile()
    {
        using var dir = new TempDirectory();
        var images = dir.Write("train-images-idx3-ubyte", IdxBytes.UByte(new byte[24], 2, 12));
        dir.Write("train-labels-idx1-ubyte", IdxBytes.UByte([1, 2], 2));
        var e = Assert.Throws<InvalidDataException>(() => Mnist.Load(dir.Path, MnistSplit.Train));
        Assert.StartsWith(images + ": expected images as ubyte [N, rows, cols]", e.Message);
        Assert.Contains("ubyte [2, 12]", e.Message);

        dir.Write("train-images-idx3-ubyte", IdxBytes.UByte(new byte[24], 2, 4, 3));
        var labels = dir.Write("train-labels-idx1-ubyte", [.. IdxBytes.Header(0x0C, 2), 0, 0, 0, 1, 0, 0, 0, 2]);
        e = Assert.Throws<InvalidDataException>(() => Mnist.Load(dir.Path, MnistSplit.Train));
        Assert.StartsWith(labels + ": expected labels as ubyte [N]", e.Message);
    }

    [Fact]
    public void Mnist_Load_MissingFile_ThrowsFileNotFoundNamingIt()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<FileNotFoundException>(() => Mnist.Load(dir.Path, MnistSplit.Test));
        Assert.Contains("t10k-images-idx3-ubyte.gz", e.Message);
    }

    [Fact]
    public void FashionMnist_ClassNames_AreTheTenPublishedNames()
    {
        Assert.Equal(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], FashionMnist.ClassNames);
    }

    /// <summary>
    /// The real files, as installed by Debian's dataset-fashion-mnist package. Reference values were
    /// computed with an independent reader (Python's gzip module over the raw IDX bytes).
    /// </summary>
    [Theory]
    [Trait("Category", "Long")]
    [InlineData(MnistSplit.Train, 60000, new[] { 9, 0, 0, 3, 0, 2, 7, 2, 5, 5 }, 76247, 0.2860405969887955)]
    [InlineData(MnistSplit.Test, 10000, new[] { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7 }, 33456, 0.28684928071228494)]
    public void FashionMnist_RealFiles_MatchPublishedCountsAndIndependentReader(MnistSplit split, int n, int[] firstLabels, int firstImagePixelSum, double meanPixel)
    {
        const string dir = DataResolver.DefaultFashionMnistDirectory;
        Assert.SkipUnless(Directory.Exists(dir),
            $"{dir} is absent; install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' to run this test.");

        var d = FashionMnist.Load(dir, split);
        Assert.Equal([n, 784], d.Inputs.Shape.ToArray());
        Assert.Equal(firstLabels, d.Labels!.ToArray()[..10]);
        Assert.All(d.ClassCounts(), c => Assert.Equal(n / 10, c));
        Assert.Same(FashionMnist.ClassNames, d.ClassNames);

        var x = d.Inputs.ToArray();
        double first = 0, total = 0;
        for (int i = 0; i < 784; i++) first += Math.Round(x[i] * 255.0);
        Assert.Equal(firstImagePixelSum, first);
        foreach (var v in x)
        {
            Assert.InRange(v, 0f, 1f);
            total += v;
        }
        Assert.Equal(meanPixel, total / x.Length, 1e-6);

        var standardised = FashionMnist.Load(dir, split, ImageLayout.Grid, standardise: true);
        Assert.Equal([n, 28, 28], standardised.Inputs.Shape.ToArray());
        Assert.Equal((float)((x[200] - FashionMnist.TrainMean) / FashionMnist.TrainStd), (float)standardised.Inputs.GetFlat(200), 1e-6f);
    }
}

/// <summary>Resolver tests change GRADFLOW_DATA; they live in one class (run sequentially) and restore it.</summary>
public class DataResolverTests
{
    private static void WithEnvironment(string? value, Action action)
    {
        var saved = Environment.GetEnvironmentVariable(DataResolver.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataResolver.EnvironmentVariable, value);
            action();
        }
        finally
        {
            Environment.SetEnvironmentVariable(DataResolver.EnvironmentVariable, saved);
        }
    }

    private static void WriteAllFour(TempDirectory dir)
    {
        foreach (var stem in Mnist.AllFileStems) dir.Write(stem + ".gz", IdxBytes.UByte([1], 1), gzip: true);
    }

    [Fact]
    public void DataResolver_DataOptionGiven_WinsOverEnvironment()
    {
        using var option = new TempDirectory();
        using var env = new TempDirectory();
        WriteAllFour(option);
        WriteAllFour(env);
        WithEnvironment(env.Path, () => Assert.Equal(option.Path, DataResolver.ResolveFashionMnist(option.Path)));
    }

    [Fact]
    public void DataResolver_NoOption_UsesEnvironment()
    {
        using var env = new TempDirectory();
        WriteAllFour(env);
        WithEnvironment(env.Path, () => Assert.Equal(env.Path, DataResolver.ResolveFashionMnist(null)));
    }

    [Fact]
    public void DataResolver_NeitherGiven_UsesDebianDefault()
    {
        WithEnvironment(null, () =>
        {
            if (Directory.Exists(DataResolver.DefaultFashionMnistDirectory))
                Assert.Equal(DataResolver.DefaultFashionMnistDirectory, DataResolver.ResolveFashionMnist(null));
            else
            {
                var e = Assert.Throws<FileNotFoundException>(() => DataResolver.ResolveFashionMnist(null));
                Assert.Contains("looked in /usr/share/datasets/fashion-mnist (the default", e.Message);
            }
        });
    }

    [Fact]
    public void DataResolver_GivenDirectoryLacksFiles_ErrorSaysWhereAndHowToGetThem()
    {
        using var option = new TempDirectory();
        option.Write("train-images-idx3-ubyte.gz", IdxBytes.UByte([1], 1), gzip: true);
        using var env = new TempDirectory();
        WriteAllFour(env);
        WithEnvironment(env.Path, () =>
        {
            var e = Assert.Throws<FileNotFoundException>(() => DataResolver.ResolveFashionMnist(option.Path));
            Assert.Contains($"looked in {option.Path} (from --data)", e.Message);
            Assert.Contains("train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]", e.Message);
            Assert.DoesNotContain("train-images-idx3-ubyte[.gz]", e.Message);
            Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
            Assert.Contains("GRADFLOW_DATA", e.Message);
        });
    }

    [Fact]
    public void DataResolver_EnvironmentDirectoryMissing_ErrorNamesEnvironmentSource()
    {
        var missing = Path.Combine(Path.GetTempPath(), "gradflow-no-such-dir-" + Guid.NewGuid().ToString("N"));
        WithEnvironment(missing, () =>
        {
            var e = Assert.Throws<FileNotFoundException>(() => DataResolver.ResolveFashionMnist(null));
            Assert.Contains($"looked in {missing} (from $GRADFLOW_DATA), and the directory does not exist", e.Message);
        });
    }
}
