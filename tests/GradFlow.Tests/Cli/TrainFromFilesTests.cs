using System.Globalization;
using System.Text.Json;
using GradFlow.Tests.Data;
using GradFlow.Tests.TestSupport;
using SkiaSharp;

namespace GradFlow.Tests.Cli;

/// <summary><c>gradflow train --data FILE</c>: a CSV table and an image folder trained from the command line.</summary>
public sealed class TrainFromFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-files-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static double LastTestAccuracy(string jsonLines)
    {
        double acc = double.NaN;
        foreach (var line in jsonLines.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("test_accuracy", out var a)) acc = a.GetDouble();
        }
        return acc;
    }

    [Fact]
    public void Train_RelativeDataPath_IsSavedAbsolute_SoTheRunExportsWithoutItsData()
    {
        var rng = new Random(7);
        var sb = new System.Text.StringBuilder("x1,x2,label\n");
        for (int i = 0; i < 64; i++) sb.Append(CultureInfo.InvariantCulture, $"{rng.NextDouble()},{rng.NextDouble()},{i % 2}\n");
        var csv = Path.Combine(_dir, "rel.csv");
        File.WriteAllText(csv, sb.ToString());
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, csv);
        Assert.False(Path.IsPathRooted(relative));
        var run = Path.Combine(_dir, "rel-run");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-4-2", "--data", relative, "--target", "label", "--epochs", "1",
            "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        // config.json names the file wherever the run is read from (it kept the relative path, which only the training's directory resolved)
        var config = GradFlow.Training.TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.Equal(csv, config.Data);
        // export needs the model and weights, not the data: it used to refuse the run once the data had moved
        File.Delete(csv);
        (code, _, err) = CliRunner.Run("export", run, "--onnx", Path.Combine(_dir, "rel.onnx"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(_dir, "rel.onnx")));
        // built-in data sets and model texts are left as they are
        Assert.Equal("teacher", GradFlow.Cli.TrainOptions.FullPath("teacher"));
        Assert.Equal("mlp 2-4-2", GradFlow.Cli.TrainOptions.FullPath("mlp 2-4-2"));
    }

    [Fact]
    public void Train_Csv_LearnsTwoBlobsAndSavesTheFileOptionsInConfig()
    {
        // two separated clusters in columns x1, x2 (offset 100 so that standardisation matters), label a string
        var rng = new Random(5);
        var sb = new System.Text.StringBuilder("x1,label,x2\n");
        for (int i = 0; i < 300; i++)
        {
            bool b = i % 2 == 0;
            sb.Append(CultureInfo.InvariantCulture, $"{100 + (b ? 2 : -2) + rng.NextDouble()},{(b ? "yes" : "no")},{(b ? 1 : -1) + rng.NextDouble()}\n");
        }
        var csv = Path.Combine(_dir, "blobs.csv");
        File.WriteAllText(csv, sb.ToString());
        var run = Path.Combine(_dir, "run");
        var (code, output, err) = CliRunner.Run("train", "--model", "mlp 2-8-2 act=relu init=he-normal", "--data", csv, "--target", "label",
            "--epochs", "3", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--json", "--out", run);
        Assert.True(code == 0, err);
        Assert.True(LastTestAccuracy(output) > 0.9, output);
        var config = GradFlow.Training.TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.Equal(csv, config.Data);
        Assert.Equal("label", config.Target);
        Assert.False(config.Stream);
        // --stream reads the same rows batch by batch from disk: the same losses and accuracies, and the switch is saved
        var streamed = Path.Combine(_dir, "streamed");
        var (code2, output2, err2) = CliRunner.Run("train", "--model", "mlp 2-8-2 act=relu init=he-normal", "--data", csv, "--target", "label",
            "--epochs", "3", "--batch-size", "16", "--lr", "0.01", "--threads", "1", "--json", "--stream", "--out", streamed);
        Assert.True(code2 == 0, err2);
        static string[] Metrics(string json) => json.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{'))
            .Select(l => System.Text.RegularExpressions.Regex.Replace(l, "\"[Ss]econds\":[^,}]*", "")).ToArray();
        Assert.Equal(Metrics(output), Metrics(output2));
        Assert.True(GradFlow.Training.TrainingConfig.FromJson(File.ReadAllText(Path.Combine(streamed, "config.json"))).Stream);
    }

    [Fact]
    public void Diagnose_Csv_PreflightGivesAVerdict()
    {
        var sb = new System.Text.StringBuilder("a,b,y\n");
        for (int i = 0; i < 64; i++) sb.Append(CultureInfo.InvariantCulture, $"{i % 7},{i % 5},{i % 2}\n");
        var csv = Path.Combine(_dir, "t.csv");
        File.WriteAllText(csv, sb.ToString());
        var (code, output, err) = CliRunner.Run("diagnose", "--preflight", "--model", "mlp 2-8-2", "--data", csv, "--target", "y", "--no-standardize", "--threads", "1");
        Assert.True(code is 0 or 3, err);
        Assert.Contains("layer", output);
        var (code2, _, err2) = CliRunner.Run("diagnose", "--preflight", "--data", csv, "--target", "y", "--tensorboard", _dir);
        Assert.Equal(2, code2);
        Assert.Contains("gradflow diagnose: Unrecognized command or argument '--tensorboard'", err2);
    }

    [Fact]
    public void Train_ImageFolder_LearnsTwoColours()
    {
        var root = Path.Combine(_dir, "images");
        FileDataTests.WriteDarkAndLight(root, 40, seed: 2, SKEncodedImageFormat.Jpeg);
        var (code, output, err) = CliRunner.Run("train", "--model", "mlp 48-8-2", "--data", root, "--image-size", "4x4",
            "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--threads", "1", "--json");
        Assert.True(code == 0, err);
        Assert.True(LastTestAccuracy(output) > 0.9, output);

        // one channel: 16 inputs; a model of the wrong size is an error naming both
        var (code2, _, err2) = CliRunner.Run("train", "--model", "mlp 48-8-2", "--data", root, "--image-size", "4x4", "--channels", "1", "--epochs", "1");
        Assert.Equal(1, code2);
        Assert.Contains("has 16 inputs per example but the model expects 48", err2);
    }

    [Fact]
    public void Train_MissingDataFile_IsAUsageOrDataError()
    {
        var (code, _, err) = CliRunner.Run("train", "--data", Path.Combine(_dir, "nope.csv"), "--target", "y", "--epochs", "1");
        Assert.NotEqual(0, code);
        Assert.Contains("neither a built-in data set", err);
        var (code2, _, err2) = CliRunner.Run("train", "--data", "circles", "--image-size", "4by4");
        Assert.Equal(2, code2);
        Assert.Contains("--image-size '4by4'", err2);
    }
}
