using System.Text.Json;
using GradFlow.Cli;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Cli;

public sealed class DiagnoseCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-diag-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void Preflight_DeepSigmoid_PrintsLayerTableAndExitsThree()
    {
        var (code, output, err) = Run("diagnose", "--preflight", "--model", "mlp 32-32x12-4 act=sigmoid init=xavier-uniform", "--data", "teacher", "--threads", "1");
        Assert.True(code == 3, err + output);
        Assert.Contains("gradient ratio", output);
        Assert.Contains("vanishing gradient", output);
        Assert.Contains("[activation:relu", output);
        Assert.Matches(@"\n\s+13\s+\(output\)", output);
    }

    [Fact]
    public void Preflight_HealthyNet_ExitsZero()
    {
        var (code, output, _) = Run("diagnose", "--preflight", "--model", "mlp 32-32x12-4 act=relu init=he-normal", "--data", "teacher", "--threads", "1");
        Assert.Equal(0, code);
        Assert.Contains("healthy", output);
    }

    [Fact]
    public void Trial_CutByTheBudget_SaysItIsTheWholeRunAndNamesTheShortRun()
    {
        // 512 circles, 10 epochs of 4 batches: the 200-step trial is the whole 40-step run, which ends at chance
        var (code, output, err) = Run("diagnose", "--model", "mlp 2-32x3-2 act=sigmoid", "--data", "circles", "--train-limit", "512",
            "--seed", "1", "--threads", "1");
        Assert.True(code == 3, err + output);
        Assert.Contains("trial: 40 steps (the whole configured run: 10 epochs), 8 monitor samples", output);
        Assert.Contains("short run: the whole run is 40 steps", output);
        // the run's own step limit ends the trial too (it used to be replaced by the trial's: 30 steps of a 20-step run)
        (code, output, err) = Run("diagnose", "--model", "mlp 2-32x3-2 act=sigmoid", "--data", "circles", "--train-limit", "512",
            "--seed", "1", "--threads", "1", "--max-steps", "20");
        Assert.True(code == 3, err + output);
        Assert.Contains("trial: 20 steps (the whole configured run: 10 epochs, at most 20 steps)", output);
        Assert.Contains("short run: the whole run is 20 steps", output);
        // a trial within the budget says nothing of the kind
        (code, output, err) = Run("diagnose", "--model", "mlp 2-32x3-2 act=sigmoid", "--data", "circles", "--train-limit", "512",
            "--seed", "1", "--threads", "1", "--epochs", "100", "--steps", "40");
        Assert.True(code is 0 or 3, err + output);
        Assert.Contains("trial: 40 steps, 8 monitor samples", output);
        Assert.DoesNotContain("short run", output);
    }

    /// <summary>
    /// A run too short for the loss-trend rules is not called healthy: its loss (0.71 after one step, above chance) was never judged.
    /// Repair refuses trials that short, since every trial would pass.
    /// </summary>
    [Fact]
    public void TooFewSamples_AreNotJudged_AndRepairRefusesSuchTrials()
    {
        var (code, output, err) = Run("diagnose", "--model", "mlp 2-16-2", "--data", "spirals", "--steps", "3", "--every", "1", "--threads", "1", "--json");
        Assert.True(code == 0, err + output);
        var root = System.Text.Json.JsonDocument.Parse(output).RootElement;
        Assert.Equal(8, root.GetProperty("trend_samples_needed").GetInt32());
        (code, output, err) = Run("diagnose", "--model", "mlp 2-16-2", "--data", "spirals", "--steps", "3", "--every", "1", "--threads", "1");
        Assert.Contains("not judged: no problem found in 3 samples", output);
        Assert.DoesNotContain("healthy", output);
        // enough samples: judged, and the field is null
        (code, output, err) = Run("diagnose", "--model", "mlp 2-16-2", "--data", "spirals", "--steps", "16", "--every", "2", "--threads", "1", "--json");
        Assert.True(code is 0 or 3, err + output);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("trend_samples_needed").ValueKind);
        (code, output, err) = Run("repair", "--model", "mlp 2-16-2", "--data", "spirals", "--epochs", "3", "--trial-steps", "1", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("--trial-steps must be at least 8, got 1", err);
    }

    [Fact]
    public void Trial_Out_TouchesOnlyItsOwnFiles_AndReplacesARunOnlyWithForce()
    {
        // `diagnose --out .` deleted the working directory and everything in it
        var dir = Path.Combine(_dir, "mine");
        Directory.CreateDirectory(Path.Combine(dir, "notes"));
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "keep");
        File.WriteAllText(Path.Combine(dir, "notes", "n.txt"), "n");
        string[] trial = ["diagnose", "--model", "mlp 2-8-2", "--data", "circles", "--train-limit", "256", "--steps", "10", "--threads", "1", "--out", dir];
        var (code, output, err) = Run(trial);
        Assert.True(code is 0 or 3, err + output);
        Assert.True(File.Exists(Path.Combine(dir, "metrics.jsonl")));
        // a second trial there would replace the first: only with --force, and still nothing but the run's own files
        (code, output, err) = Run(trial);
        Assert.Equal(2, code);
        Assert.Contains("already holds a run", err);
        (code, output, err) = Run([.. trial, "--force"]);
        Assert.True(code is 0 or 3, err + output);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(dir, "keep.txt")));
        Assert.Equal("n", File.ReadAllText(Path.Combine(dir, "notes", "n.txt")));
        // repair's config.json would replace a training run's, whose checkpoints would then no longer fit it
        (code, _, err) = Run("repair", "--model", "mlp 2-8-2", "--data", "circles", "--trial-steps", "10", "--threads", "1", "--out", dir);
        Assert.Equal(2, code);
        Assert.Contains("holds a training run", err);
    }

    [Fact]
    public void Trial_Json_IsTheDocumentedSchema()
    {
        var run = Path.Combine(_dir, "trial");
        var (code, output, err) = Run("diagnose", "--steps", "40", "--every", "5", "--model", "mlp 64-64x20-4 act=relu init=normal:0.5",
            "--data", "teacher", "--threads", "1", "--json", "--out", run);
        Assert.True(code == 3, err + output);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.False(root.GetProperty("healthy").GetBoolean());
        var problem = root.GetProperty("problems")[0];
        foreach (var field in new[] { "kind", "severity", "layers", "steps", "summary", "evidence", "causes", "remedies" })
            Assert.True(problem.TryGetProperty(field, out _), $"missing field {field}");
        Assert.True(File.Exists(Path.Combine(run, "diagnosis.json")));
        Assert.Contains(File.ReadLines(Path.Combine(run, "metrics.jsonl")), l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Repair_SavesConfigThatTrainAccepts()
    {
        var outDir = Path.Combine(_dir, "fixed");
        var (code, output, err) = Run("repair", "--model", "mlp 32-32x10-4 act=sigmoid init=xavier-uniform", "--data", "teacher",
            "--threads", "1", "--trial-steps", "60", "--out", outDir);
        Assert.True(code == 0, err + output);
        Assert.Contains("before:", output);
        Assert.Contains("after:", output);
        Assert.Matches(@"cost: \d+ trials = \d+\.\d\d × one full training run", output);
        var config = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(outDir, "config.json")));
        Assert.NotEqual("mlp 32-32x10-4 act=sigmoid init=xavier-uniform", config.Model);
        var (trainCode, _, trainErr) = Run("train", "--config", Path.Combine(outDir, "config.json"), "--epochs", "1", "--max-steps", "5");
        Assert.True(trainCode == 0, trainErr);
    }

    [Fact]
    public void Diagnose_PreflightWithSteps_IsAUsageError()
    {
        var (code, _, err) = Run("diagnose", "--preflight", "--steps", "5");
        Assert.Equal(2, code);
        Assert.Contains("exclude each other", err);
    }
    [Fact]
    public void Diagnose_TanhRnnOnTheAddingProblem_ReportsVanishingThroughTimeWithTheLag()
    {
        var (code, output, _) = Run("diagnose", "--model", "rnn 2-64-1", "--data", "adding", "--seq-len", "100", "--lr", "0.01", "--clip-norm", "1",
            "--batch-size", "32", "--steps", "300", "--epochs", "1", "--threads", "2");
        Assert.Equal(3, code);
        Assert.Matches(@"vanishing gradient through time: .* falls below the threshold at lag \d+ \(time step \d+ of 100\)", output);
        Assert.Contains("through time, recurrent layer 1: t=1 |", output);
        Assert.Contains("[cell:gru]", output);
    }
}

public sealed class TrainMonitorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-mon-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TrainMonitor_PrintsSamplesWritesStepLinesAndDiagnosis()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var run = Path.Combine(_dir, "run");
        int code = CliApp.Run(["train", "--model", "mlp 32-32x12-4 act=sigmoid init=xavier-uniform", "--data", "teacher", "--epochs", "1",
            "--threads", "1", "--monitor", "--monitor-every", "5", "--out", run], stdout, stderr);
        Assert.Equal(0, code);
        Assert.Contains("monitor step 0: loss", stderr.ToString());
        Assert.Contains("vanishing gradient", stdout.ToString());
        var steps = File.ReadLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal)).ToArray();
        Assert.Equal(7, steps.Length); // 4000 examples / batch 128 = 32 steps, sampled at 0, 5, ..., 30
        Assert.True(File.Exists(Path.Combine(run, "diagnosis.json")));
    }

    [Fact]
    public void TrainMonitor_ShortRunAtChance_SamplesOftenEnoughForTheTrendRulesAndSaysSo()
    {
        // 512 circles: 4 batches an epoch, 10 epochs = 40 steps, at the default step of 10 only 4 samples (the trend rules need
        // 8), and a sigmoid MLP ends at chance: judged on 4 samples, the run was called healthy
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var run = Path.Combine(_dir, "short");
        int code = CliApp.Run(["train", "--model", "mlp 2-32x3-2 act=sigmoid", "--data", "circles", "--train-limit", "512", "--seed", "1",
            "--threads", "1", "--monitor", "--out", run], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var steps = File.ReadLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal));
        Assert.True(steps >= 8, $"{steps} monitor samples");
        Assert.Contains("stalled loss", stdout.ToString());
        Assert.Contains("[epochs:5] train 5 times longer (40 → 200 steps)", stdout.ToString());
        // an explicit step is kept
        var explicitRun = Path.Combine(_dir, "explicit");
        Assert.Equal(0, CliApp.Run(["train", "--model", "mlp 2-32x3-2 act=sigmoid", "--data", "circles", "--train-limit", "512", "--seed", "1",
            "--threads", "1", "--monitor", "--monitor-every", "10", "--out", explicitRun], new StringWriter(), new StringWriter()));
        Assert.Equal(4, File.ReadLines(Path.Combine(explicitRun, "metrics.jsonl")).Count(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal)));
    }
}
