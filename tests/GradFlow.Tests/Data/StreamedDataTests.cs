using System.Globalization;
using System.Text;
using GradFlow.Data;
using GradFlow.Tensors;
using GradFlow.Training;
using SkiaSharp;

namespace GradFlow.Tests.Data;

/// <summary>Streamed data sets (<c>--stream</c>): the same numbers as the in-memory path, batch-sized reads, errors naming file, line and column.</summary>
public sealed class StreamedDataTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A CSV with a byte-order mark, CRLF line ends, quoted numbers and quoted labels holding a comma and a line break.</summary>
    private string Table(int rows, int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder("\uFEFFa,\"b\",species,c\r\n");
        for (int i = 0; i < rows; i++)
        {
            int y = rng.Next(3);
            string label = y == 0 ? "\"se,to\nsa\"" : y == 1 ? "versicolor" : "virginica";
            sb.Append(CultureInfo.InvariantCulture, $"{rng.NextDouble() * 4 + y:F4},\"{rng.NextDouble() * 2 - y:F4}\",{label},{rng.Next(100)}\r\n");
        }
        return _dir.Write("t.csv", Encoding.UTF8.GetBytes(sb.ToString()));
    }

    private static float[] Values(Tensor t) => (float[])t.Storage;

    [Fact]
    public void Csv_StreamedAndInMemory_TrainToBitwiseTheSameWeights()
    {
        var config = new TrainingConfig
        {
            Model = "mlp 3-16-3 act=tanh", Data = Table(300, 1), Target = "species", Seed = 9,
            Optimizer = OptimizerKind.Adam, LearningRate = 0.01, Epochs = 2, BatchSize = 32,
        };
        var memory = new Trainer(config);
        var streamed = new Trainer(config with { Stream = true });
        Assert.False(memory.Data.Train.IsStreamed);
        Assert.True(streamed.Data.Train.IsStreamed);
        Assert.True(streamed.Data.Test.IsStreamed);
        Assert.Throws<InvalidOperationException>(() => streamed.Data.Train.Inputs);
        var a = memory.Run(cancellation: TestContext.Current.CancellationToken);
        var b = streamed.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(memory.Model.StateDict().Select(kv => kv.Value.ToArray()), streamed.Model.StateDict().Select(kv => kv.Value.ToArray()));
        Assert.Equal(a.FinalTestAccuracy, b.FinalTestAccuracy);
        Assert.Equal(a.Epochs[^1].TrainLoss, b.Epochs[^1].TrainLoss);
        Assert.True(a.FinalTestAccuracy > 0.5, $"test accuracy {a.FinalTestAccuracy}");
    }

    [Fact]
    public void Tsv_RegressionWithTestFile_StreamedEqualsInMemory()
    {
        var train = _dir.Write("r.tsv", Encoding.UTF8.GetBytes("x\ty\tz\n1\t0.5\t3\n2\t1.5\t-1\n3\t2\t7\n4\t8\t0.25\n"));
        var test = _dir.Write("s.tsv", Encoding.UTF8.GetBytes("x\ty\tz\n5\t1\t2\n6\t3\t4"));
        var config = new TrainingConfig { Data = train, TestData = test, Target = "y" };
        var m = FileData.Load(config);
        var s = FileData.Load(config with { Stream = true });
        Assert.Equal([4, 2], s.Train.InputShape);
        Assert.Equal(Values(m.Train.Inputs), Values(s.Train.Materialize().Inputs));
        Assert.Equal(Values(m.Test.Inputs), Values(s.Test.Materialize().Inputs));
        Assert.Equal(Values(m.Train.Targets!), Values(s.Train.Targets!));
        // the training columns are standardised (x: 1..4 has mean 2.5), the test file with the training statistics
        Assert.Equal((float)((5 - 2.5) / Math.Sqrt(1.25)), Values(s.Test.Materialize().Inputs)[0]);
    }

    [Fact]
    public void ImageFolder_StreamedEqualsInMemory_AndNamesABrokenImageWhenItIsRead()
    {
        var root = Path.Combine(_dir.Path, "img");
        var rng = new Random(2);
        for (int i = 0; i < 6; i++)
        {
            var color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
            FileDataTests.WriteImage(Path.Combine(root, i % 2 == 0 ? "cat" : "dog", $"{i}.{(i % 3 == 0 ? "jpg" : "png")}"), 5 + i, 4 + i % 3, color,
                i % 3 == 0 ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png);
        }
        var config = new TrainingConfig { Data = root, TestFraction = 0.34, Seed = 3 };
        var m = FileData.Load(config);
        var s = FileData.Load(config with { Stream = true });
        Assert.True(s.Train.IsStreamed);
        Assert.Equal(m.Train.InputShape, s.Train.InputShape);
        Assert.Equal(Values(m.Train.Inputs), Values(s.Train.Materialize().Inputs));
        Assert.Equal(Values(m.Test.Inputs), Values(s.Test.Materialize().Inputs));
        Assert.Equal(m.Train.Labels!.Data, s.Train.Labels!.Data);

        // an image spoiled after the listing is named when a batch reads it
        foreach (var f in Directory.GetFiles(Path.Combine(root, "cat"))) File.WriteAllBytes(f, [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => new DataLoader(s.Train, 8).Epoch(0).ToList());
        Assert.Contains(Path.Combine(root, "cat"), e.Message);
    }

    [Fact]
    public void Csv_Errors_NameFileLineAndColumn_AsInMemory_AndAChangedFileIsRefused()
    {
        var bad = _dir.Write("bad.csv", Encoding.UTF8.GetBytes("a,y\n1,0\n2,1\nn/a,0\n"));
        var config = new TrainingConfig { Data = bad, Target = "y", Stream = true };
        var e = Assert.Throws<InvalidDataException>(() => FileData.Load(config));
        Assert.Equal(Assert.Throws<InvalidDataException>(() => FileData.Load(config with { Stream = false })).Message, e.Message);
        Assert.Contains("line 4, column 'a'", e.Message);

        var npz = Assert.Throws<ArgumentException>(() => FileData.Load(new TrainingConfig { Data = _dir.Write("x.npy", [0x93]), Stream = true }));
        Assert.Contains("--stream", npz.Message);

        var good = _dir.Write("good.csv", Encoding.UTF8.GetBytes("a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n"));
        var d = FileData.Load(new TrainingConfig { Data = good, Target = "y", Stream = true, Standardize = false });
        File.WriteAllText(good, "a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n");
        var changed = Assert.Throws<InvalidDataException>(() => d.Train.Materialize());
        Assert.Contains("changed", changed.Message);
        Assert.Contains(good, changed.Message);
    }

    /// <summary>A source that records how many examples each read asks for.</summary>
    private sealed class CountingSource(int count, int features) : IInputSource
    {
        public int Count => count;
        public IReadOnlyList<int> ExampleShape { get; } = [features];
        public int LargestRead { get; private set; }
        public long Reads { get; private set; }

        public void Read(ReadOnlySpan<int> rows, Span<float> destination)
        {
            LargestRead = Math.Max(LargestRead, rows.Length);
            Reads += rows.Length;
            for (int k = 0; k < rows.Length; k++)
                for (int j = 0; j < features; j++) destination[k * features + j] = rows[k] * 0.5f + j;
        }
    }

    [Fact]
    public void Streamed_SplitAndStandardiseReadOnlyChunks_BatchesReadOnlyTheirExamples()
    {
        var source = new CountingSource(5000, 2);
        var labels = new int[5000];
        for (int i = 0; i < labels.Length; i++) labels[i] = i % 2;
        var all = Dataset.Streamed(source, new IndexTensor(labels, [5000]), null, 2);
        var (train, test) = all.RandomSplit(0.8, 1);
        Assert.Equal(0, source.Reads);
        var s = Standardizer.Fit(train, 2);
        Assert.Equal(Standardizer.ChunkExamples, source.LargestRead);
        Assert.Equal(2 * 4000, source.Reads); // two passes over the training part only
        // the statistics are those of the rows in memory, bitwise
        var memory = Standardizer.Fit(train.Materialize().Inputs, 2);
        Assert.Equal(memory.Mean, s.Mean);
        Assert.Equal(memory.Std, s.Std);

        source = new CountingSource(5000, 2);
        var loader = new DataLoader(Dataset.Streamed(source, new IndexTensor(labels, [5000]), null, 2).Standardized(s), 64, reuseBuffers: true);
        var batch = loader.Epoch(0).First();
        Assert.Equal(64, source.Reads);
        Assert.Equal(Values(s.Apply(all.Subset(batch.Indices.ToArray()).Materialize().Inputs)), Values(batch.Inputs));
    }
}
