using System.Diagnostics;
using GradFlow.Cli;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Cli;

public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void Train_Circles_PrintsTableAndWritesRunDirectory()
    {
        var run = Path.Combine(_dir, "run");
        var (code, output, err) = Run("train", "--model", "mlp 2-16x2-2 act=tanh init=xavier-uniform", "--data", "circles",
            "--epochs", "2", "--lr", "0.01", "--seed", "1", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        Assert.Contains("train loss", output);
        Assert.Matches(@"\n\s+2\s+\d\.\d{4}\s+\d+\.\d\d%", output);
        Assert.Contains("epoch 2/2", err);
        var config = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.Equal(0.01, config.LearningRate);
        Assert.Equal("circles", config.Data);

        // the saved config is accepted as is
        var (code2, output2, _) = Run("train", "--config", Path.Combine(run, "config.json"), "--epochs", "1", "--json");
        Assert.Equal(0, code2);
        Assert.Contains("\"TestAccuracy\"", output2);
    }

    [Theory]
    [InlineData(new[] { "train", "--epochs" }, "--epochs needs a value")]
    [InlineData(new[] { "train", "--epochs", "three" }, "--epochs 'three' is not an integer")]
    [InlineData(new[] { "train", "--optimiser", "adam" }, "unknown option --optimiser")]
    [InlineData(new[] { "train", "--optimizer", "adamax" }, "--optimizer 'adamax'")]
    [InlineData(new[] { "train", "--seed", "1", "--seed", "2" }, "--seed is given twice")]
    [InlineData(new[] { "train", "extra" }, "unexpected argument 'extra'")]
    public void Train_BadArguments_ExitTwoNamingTheOption(string[] args, string expected)
    {
        var (code, _, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void Train_BadModelSpec_ExitsOneNamingTheToken()
    {
        var (code, _, err) = Run("train", "--model", "mlp 2-16-2 act=relux", "--data", "circles");
        Assert.Equal(1, code);
        Assert.Contains("relux", err);
    }

    [Fact]
    public void Train_MissingDataDirectory_SaysWhereItLookedAndHowToInstall()
    {
        var (code, _, err) = Run("train", "--data-dir", Path.Combine(_dir, "nothing-here"), "--epochs", "1");
        Assert.Equal(1, code);
        Assert.Contains("nothing-here", err);
        Assert.Contains("apt-get install dataset-fashion-mnist", err);
    }

    [Fact]
    public void Train_KilledMidEpoch_ResumesToSameWeightsAsUninterruptedRun()
    {
        string[] common = ["train", "--model", "mlp 32-128x3-4 act=relu init=he-normal dropout=0.1", "--data", "teacher", "--epochs", "4",
            "--batch-size", "8", "--lr", "0.001", "--seed", "5", "--threads", "1"];
        var full = Path.Combine(_dir, "full");
        Assert.Equal(0, Run([.. common, "--out", full]).Code);

        var killed = Path.Combine(_dir, "killed");
        var cli = Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in (string[])[cli, .. common, "--out", killed]) psi.ArgumentList.Add(arg);
        using (var p = Process.Start(psi)!)
        {
            p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            var second = Path.Combine(killed, "checkpoints", "epoch-0002.safetensors");
            var clock = Stopwatch.StartNew();
            while (!File.Exists(second) && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(5);
            Thread.Sleep(30);
            Assert.False(p.HasExited, "the run finished before it could be killed");
            p.Kill(); // SIGKILL
            p.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(killed, "checkpoints", "epoch-0004.safetensors")));
        var (code, _, err) = Run("train", "--resume", killed);
        Assert.True(code == 0, err);
        var a = SafeTensors.Read(Path.Combine(full, "checkpoints", "epoch-0004.safetensors"));
        var b = SafeTensors.Read(Path.Combine(killed, "checkpoints", "epoch-0004.safetensors"));
        Assert.Equal(a.Tensors.Select(t => t.Key), b.Tensors.Select(t => t.Key));
        for (int i = 0; i < a.Tensors.Count; i++)
            Assert.Equal(a.Tensors[i].Value.ToDoubleArray(), b.Tensors[i].Value.ToDoubleArray());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Length);
    }
}
