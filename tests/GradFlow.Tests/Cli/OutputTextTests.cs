using System.Text.Json;
using GradFlow.Cli;
using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Cli;

/// <summary>The defects seen in the output by a new user (issue 18): each message as a person reads it.</summary>
public sealed class OutputTextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-output-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(19, 19, "layer 19")]
    [InlineData(3, 19, "layers 3-19")]
    public void Layers_OneLayerIsSingular(int first, int last, string expected) => Assert.Equal(expected, Diagnoser.Layers(first, last));

    [Theory]
    [InlineData(0.004, "improved by 0.4 %")]
    [InlineData(-0.001, "worsened by 0.1 %")]
    [InlineData(0.0, "improved by 0.0 %")]
    public void Change_ANegativeImprovementIsAWorsening(double improvement, string expected) => Assert.Equal(expected, Diagnoser.Change(improvement));

    [Theory]
    [InlineData("--epochs", "0", "--epochs must be at least 1, got 0.")]
    [InlineData("--batch-size", "0", "--batch-size must be at least 1, got 0.")]
    [InlineData("--lr", "-1", "--lr must be positive, got -1.")]
    [InlineData("--threads", "999", "--threads must be in 1..256, got 999.")]
    [InlineData("--seq-len", "1", "--seq-len must be in 2..100000, got 1.")]
    [InlineData("--augment-crop", "17", "--augment-crop must be in [0, 16] pixels, got 17.")]
    [InlineData("--image-size", "5000", "--image-size must be in 1..4096, got 5000.")]
    public void Train_OutOfRangeValue_IsAUsageErrorNamingTheOptionAsTyped_WithThePrefixOnce(string option, string value, string expected)
    {
        // the errors named the config field ("field 'batchSize' must be at least 1") that the user never typed
        var (code, _, err) = CliRunner.Run("train", "--data", "circles", option, value);
        Assert.Equal(2, code);
        Assert.Contains("gradflow train: " + expected, err);
        Assert.DoesNotContain("field", err);
        Assert.Equal(1, err.Split("gradflow train:").Length - 1);
    }

    [Fact]
    public void Train_OutOfRangeValueFromAConfigFile_NamesItsField()
    {
        var config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, """{"batchSize": 0}""");
        Assert.Contains($"{config}: field 'batchSize' must be at least 1", CliRunner.Run("train", "--data", "circles", "--config", config).Err);
        // valid in the file, out of range with an option: the field the option did not set is named
        File.WriteAllText(config, """{"microBatches": 8}""");
        var (code, _, err) = CliRunner.Run("train", "--data", "circles", "--config", config, "--batch-size", "4");
        Assert.Equal(2, code);
        Assert.Contains("gradflow train: field 'microBatches' (8) must not exceed the batch size (4)", err);
    }

    [Fact]
    public void OptionOf_EveryConfigFieldButTheCheckpointInterval_HasTheOptionThatSetsIt()
    {
        var fields = System.Text.Json.Nodes.JsonNode.Parse(new TrainingConfig { Threads = 1, MicroBatches = 1, MonitorEvery = 1, MaxSteps = 1, ClipNorm = 1,
            ClipValue = 1, ClipAgc = 1, TrainLimit = 1, TestLimit = 1, SequenceLength = 2, TestData = "t", Target = "y", DataDir = "d", ImageWidth = 1,
            ImageHeight = 1 }.ToJson())!.AsObject().Select(p => p.Key).ToArray();
        Assert.Contains("monitorEvery", fields);
        Assert.Contains("imageHeight", fields);
        foreach (var field in fields.Where(f => f != "checkpointEvery"))
            Assert.True(TrainOptions.OptionOf(field) is not null, $"config field '{field}' has no option");
        Assert.Equal("--lr", TrainOptions.OptionOf("learningRate")!.Name);
        Assert.Equal("--batch-size", TrainOptions.OptionOf("batchSize")!.Name);
    }

    [Fact]
    public void Train_BadModel_ExitsOneWithThePrefixOnce()
    {
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-16-2 act=relux", "--data", "circles");
        Assert.Equal(1, code);
        Assert.StartsWith("gradflow train: field 'model':", err);
        Assert.Equal(1, err.Split("gradflow train:").Length - 1);
    }

    [Theory]
    [InlineData("train", "gradflow train: x", "gradflow train: x")]
    [InlineData("report", "report: x", "gradflow report: x")]
    [InlineData("grads", "x", "gradflow grads: x")]
    public void Prefixed_NeverRepeatsThePrefix(string verb, string message, string expected) => Assert.Equal(expected, CliApp.Prefixed(verb, message));

    [Fact]
    public void JsonLines_WritePlusSignsAsThemselves()
    {
        var line = JsonSerializer.Serialize(new { message = "loss 2.2E+004 is not finite <b>" }, RunDirectory.JsonLines);
        Assert.Contains("2.2E+004", line);
        Assert.DoesNotContain("\\u002B", line);
        Assert.Equal("loss 2.2E+004 is not finite <b>", JsonDocument.Parse(line).RootElement.GetProperty("message").GetString());
    }

    [Fact]
    public void Trial_Config_HasNoHugeCheckpointInterval_AndOneCheckpoint()
    {
        var dir = Path.Combine(_dir, "trial");
        Trials.Run(new TrainingConfig { Model = "mlp 2-4-2", Data = "circles", Epochs = 3, Threads = 1 }, steps: 20, every: 5, runDirectory: dir,
            cancellation: TestContext.Current.CancellationToken);
        var config = File.ReadAllText(Path.Combine(dir, "config.json"));
        Assert.DoesNotContain("1073741823", config);
        Assert.Contains("\"checkpointEvery\": null", config);
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "checkpoints")));
        Assert.Null(TrainingConfig.FromJson(config).CheckpointEvery);
    }
}
