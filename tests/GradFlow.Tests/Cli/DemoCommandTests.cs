using GradFlow.Cli;
using GradFlow.Diagnostics;
using GradFlow.Nn.Network;
using GradFlow.Training;

namespace GradFlow.Tests.Cli;

/// <summary>
/// The built-in demo's language-model part (<see cref="DemoCommand.Language"/>) on the King James Bible: its
/// trials as the demo runs them (80 steps), the final training cut to a few steps.
/// </summary>
public sealed class DemoCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-demo-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Language_PostLnWithoutWarmup_IsNamedRepairedIntoPreLnTrainedAndContinuesThePrompt()
    {
        var output = new StringWriter();
        var runs = DemoCommand.Language(output, _dir, seed: 0, section: 7, trialSteps: 80, trainSteps: 100); // the trial is the run's first steps: a run longer than it, as the demo's 600
        string text = output.ToString();
        Assert.Contains("7. Language: a Post-LN transformer on the King James Bible", text, StringComparison.Ordinal);

        Assert.Equal(["Post-LN, no warm-up", "repaired"], runs.Select(r => r.Label));
        using var broken = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(runs[0].Dir, "diagnosis.json")));
        Assert.Contains("post-ln-without-warmup", broken.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()));
        Assert.Contains("Post-LN without warm-up", text, StringComparison.Ordinal);

        // the repaired config: every transformer layer Pre-LN; the run trained on it for the given steps has a checkpoint
        var repaired = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(_dir, "repaired-lm-config.json")));
        var layers = NetworkFacts.Flatten(repaired.Description().Root).OfType<TransformerLayerBlock>().ToArray();
        Assert.Equal(4, layers.Length);
        Assert.All(layers, l => Assert.True(l.NormFirst));
        var trained = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(runs[1].Dir, "config.json")));
        Assert.Equal(repaired with { CheckpointEvery = null }, trained); // its budget is the demo's trainSteps (100 here): the warm-up is a tenth of it
        Assert.Single(new RunDirectory(runs[1].Dir).CheckpointFiles());

        // the generated line: the prompt and 100 characters (line breaks shown as " / "), as generate gives them
        var line = text.Split('\n').Select(l => l.TrimEnd('\r')).SkipWhile(l => !l.StartsWith("gradflow generate --model", StringComparison.Ordinal)).Skip(1).First();
        Assert.Equal(GenerateCommandFromRun(runs[1].Dir).ReplaceLineEndings(" / "), line);
        Assert.StartsWith("And God said", line, StringComparison.Ordinal);
    }

    private static string GenerateCommandFromRun(string run)
    {
        var (code, output, err) = TestSupport.CliRunner.Run("generate", "--model", run, "--prompt", "And God said", "--length", "100", "--seed", "1");
        Assert.True(code == 0, err);
        return output.TrimEnd('\r', '\n');
    }
}
