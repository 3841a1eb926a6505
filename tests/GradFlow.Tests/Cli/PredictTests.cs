using System.Globalization;
using System.Text.Json;
using GradFlow.Tensors;
using GradFlow.Tests.Data;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;
using Microsoft.ML.OnnxRuntime;
using SkiaSharp;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace GradFlow.Tests.Cli;

/// <summary>
/// <c>gradflow predict</c>: a trained run's model on new files, read as the run read its data (<c>preprocessing.json</c>). Its figures on
/// the run's own test file are checked against the ones training computed for that file (Trainer.Evaluate, another code path).
/// </summary>
public sealed class PredictTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-predict-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The last epoch line's test loss and accuracy of a run.</summary>
    private static (double Loss, double Accuracy) LastTest(string run)
    {
        (double, double) last = (double.NaN, double.NaN);
        foreach (var line in File.ReadLines(Path.Combine(run, "metrics.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            if (e.GetProperty("type").GetString() == "epoch")
                last = (e.GetProperty("test_loss").GetDouble(), e.GetProperty("test_accuracy").ValueKind == JsonValueKind.Number ? e.GetProperty("test_accuracy").GetDouble() : double.NaN);
        }
        return last;
    }

    /// <summary>Three classes (one name with a comma) of four features on very different scales, offset so that standardisation matters.</summary>
    private string WriteTable(string name, int rows, int seed, bool target = true, int steps = 0)
    {
        var rng = new Random(seed);
        string[] classes = ["setosa", "versi,color", "virginica"];
        int features = steps > 0 ? steps : 4;
        var sb = new System.Text.StringBuilder(string.Join(',', Enumerable.Range(0, features).Select(j => $"f{j}")) + (target ? ",species" : "") + "\n");
        for (int i = 0; i < rows; i++)
        {
            int c = i % 3;
            for (int j = 0; j < features; j++)
            {
                double scale = steps > 0 ? 1 : new[] { 1.0, 2, 0.5, 10 }[j];
                double v = 100 * (j % 2) + scale * (rng.NextDouble() - 0.5 + (c == j % 3 ? 1.5 : 0));
                sb.Append(v.ToString("R", CultureInfo.InvariantCulture)).Append(j < features - 1 || target ? "," : "");
            }
            if (target) sb.Append(c == 1 ? "\"versi,color\"" : classes[c]);
            sb.Append('\n');
        }
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    /// <summary>A table of <paramref name="rows"/> rows (<see cref="WriteTable"/>) and a run of <c>mlp 4-8-3</c> on it; returns both paths.</summary>
    private (string Train, string Run) TrainOnTable(int rows, int seed, int epochs)
    {
        var train = WriteTable("train.csv", rows, seed);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 4-8-3", "--data", train, "--target", "species", "--epochs", epochs.ToString(CultureInfo.InvariantCulture),
            "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        return (train, run);
    }

    [Theory]
    [InlineData("mlp 4-16-3", 0)]
    [InlineData("lstm 1-8-3", 6)] // flat rows of 6 values read as 6 steps of 1 feature, as in training
    public void Predict_TheRunsTestFile_GivesTheFiguresTrainingComputed(string model, int steps)
    {
        var train = WriteTable("train.csv", 150, 1, steps: steps);
        var test = WriteTable("test.csv", 60, 2, steps: steps);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", model, "--data", train, "--test-data", test, "--target", "species",
            "--epochs", "4", "--batch-size", "16", "--optimizer", "adam", "--lr", "0.01", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(run, Preprocessing.FileName)));

        var p = Predictor.Load(run).Predict(test);
        var (loss, accuracy) = LastTest(run);
        var (pAccuracy, pLoss) = p.Score()!.Value;
        Assert.Equal(accuracy, pAccuracy, 12);
        Assert.True(Math.Abs(pLoss - loss) < 1e-5, $"predict's cross-entropy {pLoss}, training's test loss {loss}");
        Assert.Equal(["setosa", "versi,color", "virginica"], p.Classes);
        for (int i = 0; i < p.Count; i++)
        {
            double sum = 0;
            for (int j = 0; j < 3; j++) sum += p.Outputs[i, j];
            Assert.True(Math.Abs(sum - 1) < 1e-5, $"row {i}: probabilities sum to {sum}");
        }

        // without the training file and without the target column: the same CSV rows, less the target
        File.Delete(train);
        var unlabelled = WriteTable("new.csv", 60, 2, target: false, steps: steps);
        var (code2, csv, err2) = CliRunner.Run("predict", run, "--data", unlabelled);
        Assert.True(code2 == 0, err2);
        Assert.DoesNotContain("accuracy", err2);
        var (code3, labelledCsv, err3) = CliRunner.Run("predict", run, "--data", test, "--batch-size", "7");
        Assert.True(code3 == 0, err3);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"accuracy {accuracy * 100:0.00} %"), err3);
        var rows = csv.TrimEnd('\n').Split('\n');
        var labelledRows = labelledCsv.TrimEnd('\n').Split('\n');
        Assert.Equal("row,prediction,p_setosa,\"p_versi,color\",p_virginica", rows[0]);
        Assert.Equal("row,target,prediction,p_setosa,\"p_versi,color\",p_virginica", labelledRows[0]);
        Assert.Equal(61, rows.Length);
        for (int i = 1; i < rows.Length; i++)
        {
            Assert.StartsWith($"{i},", rows[i]);
            // the target field is the second; dropping it gives the unlabelled row (batch size 7 against 1000: the same numbers)
            string target = labelledRows[i].Split(',')[1] is var f && f.StartsWith('"') ? "\"versi,color\"" : labelledRows[i].Split(',')[1];
            Assert.Equal(rows[i], labelledRows[i].Remove($"{i},".Length, target.Length + 1));
        }
    }

    [Fact]
    public void Predict_RunWithoutPreprocessingFile_TakesItFromTheTrainingData()
    {
        var (train, run) = TrainOnTable(90, 3, epochs: 2);
        var recorded = Predictor.Load(run).Predict(train);
        // a run trained before preprocessing.json was written: the statistics are fitted again on the training split, bit for bit
        File.Delete(Path.Combine(run, Preprocessing.FileName));
        var refitted = Predictor.Load(run).Predict(train);
        Assert.Equal((float[])recorded.Outputs.Storage, (float[])refitted.Outputs.Storage);
        // the standardisation is applied: predicting unstandardised inputs would give other outputs
        var raw = Predictor.Load(run);
        Assert.NotNull(raw.Preprocessing.Mean);
        Assert.Contains(raw.Preprocessing.Mean!, m => Math.Abs(m) > 50);
    }

    [Fact]
    public void Predict_SafeTensorsRegression_WithAndWithoutTargets()
    {
        var rng = new Random(4);
        int n = 80;
        var x = new float[n * 3];
        var y = new float[n * 2];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < 3; j++) x[i * 3 + j] = (float)(rng.NextDouble() * 4 + 10 * j);
            y[i * 2] = x[i * 3] - x[i * 3 + 2] / 10;
            y[i * 2 + 1] = x[i * 3 + 1] / 5;
        }
        var file = Path.Combine(_dir, "reg.safetensors");
        SafeTensors.Write(file, [new("x", new Tensor(x, [n, 3])), new("y", new Tensor(y, [n, 2]))]);
        var inputsOnly = Path.Combine(_dir, "inputs.safetensors");
        SafeTensors.Write(inputsOnly, [new("x", new Tensor(x, [n, 3]))]);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 3-16-2", "--data", file, "--test-data", file, "--epochs", "3",
            "--batch-size", "16", "--optimizer", "adam", "--lr", "0.01", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        var p = Predictor.Load(run).Predict(file);
        Assert.Null(p.Classes);
        Assert.True(Math.Abs(p.Score()!.Value.Loss - LastTest(run).Loss) < 1e-5 * Math.Max(1, LastTest(run).Loss), $"{p.Score()} against {LastTest(run)}");
        var outCsv = Path.Combine(_dir, "pred.csv");
        var (code2, stdout, err2) = CliRunner.Run("predict", run, "--data", inputsOnly, "--out", outCsv);
        Assert.True(code2 == 0, err2);
        Assert.Contains($"wrote {outCsv}: {n} predictions", stdout);
        var lines = File.ReadAllLines(outCsv);
        Assert.Equal("row,prediction_1,prediction_2", lines[0]);
        var first = lines[1].Split(',');
        Assert.Equal(p.Outputs[0, 0], double.Parse(first[1], CultureInfo.InvariantCulture), 6);
        Assert.Equal(p.Outputs[0, 1], double.Parse(first[2], CultureInfo.InvariantCulture), 6);
    }

    [Fact]
    public void Predict_ArraysOfAnotherSizeThanTheRunsStatistics_AreRefusedNotStandardisedByOtherValuesStatistics()
    {
        // a run standardises an array file per value of an example; a recurrent model reads flat rows of any length, but a row of 24
        // values must not take the statistics of the training rows' 12 (value j took those of value j / 2)
        var rng = new Random(6);
        int n = 40;
        string Write(string name, int width)
        {
            var path = Path.Combine(_dir, name);
            SafeTensors.Write(path, [new("x", new Tensor(Enumerable.Range(0, n * width).Select(i => (float)(rng.NextDouble() + i % width)).ToArray(), [n, width])),
                new("y", new Tensor(Enumerable.Range(0, n).Select(i => (float)(i % 2)).ToArray(), [n]))]);
            return path;
        }
        var file = Write("seq12.safetensors", 12);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", "lstm 3-8-2", "--data", file, "--task", "classes", "--epochs", "1", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        var predictor = Predictor.Load(run);
        Assert.Equal(n, predictor.Predict(file).Outputs.Size(0));
        foreach (int width in new[] { 24, 18 })
        {
            var other = Write($"seq{width}.safetensors", width);
            var e = Assert.Throws<InvalidDataException>(() => predictor.Predict(other));
            Assert.Contains($"{other}:x: {width} input values per example, but the run was trained on 12", e.Message);
        }
    }

    [Fact]
    public void Predict_ImageFolder_ReadsTheRunsSizeAndClasses()
    {
        var root = Path.Combine(_dir, "images");
        FileDataTests.WriteDarkAndLight(root, 24, seed: 2, SKEncodedImageFormat.Png);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 48-8-2", "--data", root, "--test-data", root, "--image-size", "4x4",
            "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        var p = Predictor.Load(run).Predict(root);
        Assert.Equal(["dark", "light"], p.Classes);
        Assert.Equal(LastTest(run).Accuracy, p.Score()!.Value.Accuracy, 12);
        Assert.True(Math.Abs(LastTest(run).Loss - p.Score()!.Value.Loss) < 1e-5);

        // exported with the standardisation per channel in the graph (3 runs of 16 values of the flat input): the folder's own pixels
        var onnx = Path.Combine(_dir, "images.onnx");
        var (c2, _, e2) = CliRunner.Run("export", run, "--onnx", onnx, "--with-preprocessing");
        Assert.True(c2 == 0, e2);
        var images = GradFlow.Data.ImageFolder.Load(root, new GradFlow.Data.ImageFolderOptions(4, 4, 3));
        var (probabilities, _) = RunOnnx(onnx, (float[])images.Inputs.Storage, [images.Count, 48]);
        for (int i = 0; i < probabilities.Length; i++) Assert.True(Math.Abs(probabilities[i] - p.Outputs.GetFlat(i)) < 1e-5, $"element {i}");

        // a folder of images without class folders: classified, each row named by its file
        var loose = Path.Combine(_dir, "loose");
        Directory.CreateDirectory(loose);
        File.Copy(Path.Combine(root, "light", "0.png"), Path.Combine(loose, "a.png"));
        File.Copy(Path.Combine(root, "dark", "0.png"), Path.Combine(loose, "b.png"));
        var pl = Predictor.Load(run).Predict(loose);
        Assert.Equal(["a.png", "b.png"], pl.Names);
        Assert.Null(pl.Labels);
        for (int j = 0; j < 2; j++)
        {
            Assert.Equal(p.Outputs[24, j], pl.Outputs[0, j]); // light/0.png comes after the 24 dark images
            Assert.Equal(p.Outputs[0, j], pl.Outputs[1, j]);
        }
        var (c5, looseCsv, e5) = CliRunner.Run("predict", run, "--data", loose);
        Assert.True(c5 == 0, e5);
        Assert.StartsWith($"row,file,prediction,p_dark,p_light\n1,a.png,{p.Classes![p.PredictedClass(24)]},", looseCsv);
        Assert.Contains($"\n2,b.png,{p.Classes[p.PredictedClass(0)]},", looseCsv);

        // a conv net reads [3, 4, 4]: the statistics per channel as a [3, 1, 1] constant over the image
        var conv = Path.Combine(_dir, "conv");
        var (c3, _, e3) = CliRunner.Run("train", "--model", "cnn 3x4x4-c4-gap-2", "--data", root, "--test-data", root, "--image-size", "4x4",
            "--epochs", "2", "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--out", conv);
        Assert.True(c3 == 0, e3);
        var pc = Predictor.Load(conv).Predict(root);
        Assert.Equal(LastTest(conv).Accuracy, pc.Score()!.Value.Accuracy, 12);
        var convOnnx = Path.Combine(_dir, "conv.onnx");
        var (c4, _, e4) = CliRunner.Run("export", conv, "--onnx", convOnnx, "--with-preprocessing");
        Assert.True(c4 == 0, e4);
        var (convProbabilities, _) = RunOnnx(convOnnx, (float[])images.Inputs.Storage, [images.Count, 3, 4, 4]);
        for (int i = 0; i < convProbabilities.Length; i++) Assert.True(Math.Abs(convProbabilities[i] - pc.Outputs.GetFlat(i)) < 1e-5, $"conv, element {i}");
    }

    [Fact]
    public void Predict_BadInput_IsRefusedNamingWhatIsWrong()
    {
        var (train, run) = TrainOnTable(60, 5, epochs: 1);

        var otherColumns = Path.Combine(_dir, "cols.csv");
        File.WriteAllText(otherColumns, "f0,f1,f3,f2\n1,2,3,4\n");
        var (c1, _, e1) = CliRunner.Run("predict", run, "--data", otherColumns);
        Assert.Equal(1, c1);
        Assert.Contains("the columns (f0, f1, f3, f2) are not the model's features (f0, f1, f2, f3)", e1);

        var newClass = Path.Combine(_dir, "class.csv");
        File.WriteAllText(newClass, "f0,f1,f2,f3,species\n1,2,3,4,setosa\n1,2,3,4,rosa\n");
        var (c2, _, e2) = CliRunner.Run("predict", run, "--data", newClass);
        Assert.Equal(1, c2);
        Assert.Contains("line 3, column 'species': the class 'rosa' is not one of the run's 3 classes", e2);

        var notNumber = Path.Combine(_dir, "nan.csv");
        File.WriteAllText(notNumber, "f0,f1,f2,f3\n1,2,x,4\n");
        var (c3, _, e3) = CliRunner.Run("predict", run, "--data", notNumber);
        Assert.Equal(1, c3);
        Assert.Contains("line 2", e3);
        Assert.Contains("f2", e3);

        var array = Path.Combine(_dir, "a.safetensors");
        SafeTensors.Write(array, [new("x", new Tensor(new float[8], [2, 4]))]);
        var (c4, _, e4) = CliRunner.Run("predict", run, "--data", array);
        Assert.Equal(1, c4);
        Assert.Contains("is an array file (SafeTensors), but the run trained on a table (CSV or TSV)", e4);

        var (c5, _, e5) = CliRunner.Run("predict", run, "--data", Path.Combine(_dir, "missing.csv"));
        Assert.Equal(1, c5);
        Assert.Contains("missing.csv does not exist", e5);

        var builtIn = Path.Combine(_dir, "spirals"); // a built-in set other than Fashion-MNIST
        var (c6, _, e6) = CliRunner.Run("train", "--model", "mlp 2-8-2", "--data", "spirals", "--epochs", "1", "--threads", "1", "--out", builtIn);
        Assert.True(c6 == 0, e6);
        Assert.False(File.Exists(Path.Combine(builtIn, Preprocessing.FileName)));
        var (c7, _, e7) = CliRunner.Run("predict", builtIn, "--data", train);
        Assert.Equal(1, c7);
        Assert.Contains("the run trained on 'spirals', a built-in data set", e7);

        // a damaged record is named, not half-read
        File.WriteAllText(Path.Combine(run, Preprocessing.FileName), "{\"mean\": [0, 0, 0, 0]}");
        var (c8, _, e8) = CliRunner.Run("predict", run, "--data", train);
        Assert.Equal(1, c8);
        Assert.Contains("'mean' and 'std' go together", e8);
        File.WriteAllText(Path.Combine(run, Preprocessing.FileName), "{\"mean\": [0, 0, 0, 0], \"std\": [1, 0, 1, 1]}");
        var (c9, _, e9) = CliRunner.Run("predict", run, "--data", train);
        Assert.Equal(1, c9);
        Assert.Contains("group 1 has mean 0 and standard deviation 0", e9);
    }
    /// <summary>The softmax of ONNX Runtime's outputs for <paramref name="x"/> [N, …] on <paramref name="onnx"/>, and the model's metadata.</summary>
    private static (float[] Probabilities, IReadOnlyDictionary<string, string> Metadata) RunOnnx(string onnx, float[] x, int[] shape)
    {
        using var session = new InferenceSession(onnx);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new OrtTensors.DenseTensor<float>(x, shape))]);
        var logits = results.Single().AsTensor<float>().ToArray();
        int k = logits.Length / shape[0];
        var p = new float[logits.Length];
        for (int i = 0; i < shape[0]; i++)
        {
            double max = logits.Skip(i * k).Take(k).Max(), sum = 0;
            for (int j = 0; j < k; j++) sum += Math.Exp(logits[i * k + j] - max);
            for (int j = 0; j < k; j++) p[i * k + j] = (float)(Math.Exp(logits[i * k + j] - max) / sum);
        }
        return (p, session.ModelMetadata.CustomMetadataMap);
    }

    [Fact]
    public void Export_WithPreprocessing_TakesTheFilesValues_AndNamesTheClasses()
    {
        var (train, run) = TrainOnTable(90, 6, epochs: 2);
        var p = Predictor.Load(run).Predict(train);
        var table = GradFlow.Data.Tabular.Read(train, "species");

        // the standardisation in the graph: ONNX Runtime on the file's own values gives predict's probabilities
        var baked = Path.Combine(_dir, "baked.onnx");
        var (c1, out1, e1) = CliRunner.Run("export", run, "--onnx", baked, "--with-preprocessing");
        Assert.True(c1 == 0, e1);
        Assert.DoesNotContain("takes standardised inputs", out1);
        var (raw, metadata) = RunOnnx(baked, table.Features, [table.Rows, 4]);
        for (int i = 0; i < raw.Length; i++) Assert.True(Math.Abs(raw[i] - p.Outputs.GetFlat(i)) < 1e-5, $"element {i}: ONNX {raw[i]}, predict {p.Outputs.GetFlat(i)}");
        Assert.Equal("[\"setosa\",\"versi,color\",\"virginica\"]", metadata["gradflow.classes"]);

        // without it, the model takes standardised values; the statistics are in the metadata, and export says so
        var plain = Path.Combine(_dir, "plain.onnx");
        var (c2, out2, e2) = CliRunner.Run("export", run, "--onnx", plain);
        Assert.True(c2 == 0, e2);
        Assert.Contains("the model takes standardised inputs", out2);
        var (_, plainMetadata) = RunOnnx(plain, table.Features, [table.Rows, 4]);
        var mean = JsonSerializer.Deserialize<double[]>(plainMetadata["gradflow.input_mean"])!;
        var std = JsonSerializer.Deserialize<double[]>(plainMetadata["gradflow.input_std"])!;
        var standardised = table.Features.Select((v, i) => (float)((v - mean[i % 4]) / std[i % 4])).ToArray();
        var (probabilities, _) = RunOnnx(plain, standardised, [table.Rows, 4]);
        for (int i = 0; i < probabilities.Length; i++) Assert.True(Math.Abs(probabilities[i] - p.Outputs.GetFlat(i)) < 1e-5, $"element {i}");

        // a run on a built-in set has no statistics to put in
        var builtIn = Path.Combine(_dir, "circles");
        Assert.Equal(0, CliRunner.Run("train", "--model", "mlp 2-4-2", "--data", "circles", "--epochs", "1", "--threads", "1", "--out", builtIn).Code);
        var (c3, _, e3) = CliRunner.Run("export", builtIn, "--onnx", Path.Combine(_dir, "c.onnx"), "--with-preprocessing");
        Assert.Equal(1, c3);
        Assert.Contains("has no standardisation statistics", e3);
    }
    [Fact]
    public void Predict_ArrayLabels_AreNamedByTheirNumbers()
    {
        var rng = new Random(8);
        int n = 90;
        var x = new float[n * 2];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 3;
            x[i * 2] = (float)(50 + 3 * y[i] + rng.NextDouble());
            x[i * 2 + 1] = (float)(rng.NextDouble() - 0.5);
        }
        var file = Path.Combine(_dir, "classes.safetensors");
        SafeTensors.Write(file, [new("x", new Tensor(x, [n, 2])), new("y", new Tensor(y, [n]))]);
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-8-3", "--data", file, "--test-data", file, "--task", "classes",
            "--epochs", "3", "--batch-size", "16", "--optimizer", "adam", "--lr", "0.01", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        Assert.Equal(["0", "1", "2"], Preprocessing.Read(run)!.Classes);
        var p = Predictor.Load(run).Predict(file);
        Assert.Equal(LastTest(run).Accuracy, p.Score()!.Value.Accuracy, 12);
        Assert.True(Math.Abs(LastTest(run).Loss - p.Score()!.Value.Loss) < 1e-5);
        // a label the run never had
        y[5] = 3;
        SafeTensors.Write(file, [new("x", new Tensor(x, [n, 2])), new("y", new Tensor(y, [n]))]);
        var (c2, _, e2) = CliRunner.Run("predict", run, "--data", file);
        Assert.Equal(1, c2);
        Assert.Contains("element 5 is 3, but the run has 3 classes (0..2)", e2);
    }
    [Fact]
    public void Predict_FashionMnistRun_ReadsItsIdxFiles()
    {
        var dir = GradFlow.Data.DataResolver.ResolveFashionMnist(null); // throws with install instructions when the package is missing
        string images = Directory.EnumerateFiles(dir, "t10k-images*").Single();
        var run = Path.Combine(_dir, "fmnist");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 784-16-10", "--data", "fashion-mnist", "--train-limit", "1000", "--epochs", "1",
            "--batch-size", "50", "--optimizer", "adam", "--lr", "0.003", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        var p = Predictor.Load(run).Predict(images);
        Assert.Equal(10_000, p.Count);
        Assert.Equal("Ankle boot", p.Classes![9]);
        Assert.NotNull(p.Labels); // the labels file beside the images, found as training finds it
        // the same images the run tested on, with the same standardisation: its test figures
        var (loss, accuracy) = LastTest(run);
        Assert.Equal(accuracy, p.Score()!.Value.Accuracy, 12);
        Assert.True(Math.Abs(p.Score()!.Value.Loss - loss) < 1e-5, $"predict {p.Score()!.Value.Loss}, training {loss}");
    }
    [Fact]
    public void Predict_Tagger_GivesARowPerPosition()
    {
        // 240 sequences of 8 steps of 2 features; each step's tag is the sign of its first feature (a third class near 0)
        var x = Tensor.RandN(new Generator(5), 240, 8, 2);
        var xs = (float[])x.Storage;
        var tags = Enumerable.Range(0, 240 * 8).Select(i => xs[2 * i] > 0.5f ? 2.0 : xs[2 * i] < -0.5f ? 0.0 : 1.0).ToArray();
        var file = Path.Combine(_dir, "tags.safetensors");
        SafeTensors.Write(file, [new("x", x), new("y", Tensor.FromArray(tags, 240, 8))]);
        var run = Path.Combine(_dir, "tagger");
        var (code, _, err) = CliRunner.Run("train", "--model", "net 8x2 seq[recurrent(cell=gru,hidden=8,output=sequence) linear(out=3)]", "--data", file,
            "--test-data", file, "--task", "classes", "--epochs", "2", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.02", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        var p = Predictor.Load(run).Predict(file);
        Assert.Equal(8, p.Positions);
        Assert.Equal(240, p.Count);
        // accuracy and loss over every position, as training computed them for the same file
        var (loss, accuracy) = LastTest(run);
        Assert.Equal(accuracy, p.Score()!.Value.Accuracy, 12);
        Assert.True(Math.Abs(p.Score()!.Value.Loss - loss) < 1e-5, $"predict {p.Score()!.Value.Loss}, training {loss}");
        var (c2, csv, e2) = CliRunner.Run("predict", run, "--data", file);
        Assert.True(c2 == 0, e2);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal("row,position,target,prediction,p_0,p_1,p_2", lines[0]);
        Assert.Equal(240 * 8 + 1, lines.Length);
        Assert.StartsWith("2,3,", lines[8 + 3]); // example 2, position 3
        Assert.Contains("of 1920 positions", e2);
    }
}
