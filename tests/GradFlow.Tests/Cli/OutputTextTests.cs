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
    [InlineData("--epochs", "0", "'epochs'")]
    [InlineData("--lr", "-1", "'learningRate'")]
    [InlineData("--threads", "999", "'threads'")]
    public void Train_OutOfRangeValue_IsAUsageErrorWithThePrefixOnce(string option, string value, string field)
    {
        var (code, _, err) = CliRunner.Run("train", "--data", "circles", option, value);
        Assert.Equal(2, code);
        Assert.Contains(field, err);
        Assert.Equal(1, err.Split("gradflow train:").Length - 1);
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
