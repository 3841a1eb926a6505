using System.Globalization;
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
        Assert.Contains("epoch 2: train loss", output); // the per-epoch line (plain output: not a terminal)
        Assert.DoesNotContain('\u001b', output + err);
        var config = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.Equal(0.01, config.LearningRate);
        Assert.Equal("circles", config.Data);

        // the saved config is accepted as is
        var (code2, output2, _) = Run("train", "--config", Path.Combine(run, "config.json"), "--epochs", "1", "--json");
        Assert.Equal(0, code2);
        Assert.Contains("\"test_accuracy\"", output2);
    }

    [Fact]
    public void Train_Json_PrintsTheEpochAndEndLinesOfMetricsJsonl_InSnakeCase()
    {
        // the epoch lines were the record's PascalCase names ("TrainLoss"), unlike metrics.jsonl and the last line
        var run = Path.Combine(_dir, "json");
        var (code, output, err) = Run(Train(["--epochs", "2", "--json", "--out", run]));
        Assert.True(code == 0, err);
        var printed = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, printed.Length);
        foreach (var line in printed)
            foreach (var property in System.Text.Json.JsonDocument.Parse(line).RootElement.EnumerateObject())
                Assert.Matches("^[a-z]+(_[a-z]+)*$", property.Name);
        Assert.Equal(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")), printed);
        Assert.StartsWith("{\"type\":\"end\",\"stop\":\"Completed\",\"steps\":8,", printed[^1]);
    }

    [Theory]
    [InlineData(new[] { "train", "--epochs" }, "Required argument missing for option: '--epochs'")]
    [InlineData(new[] { "train", "--epochs", "three" }, "--epochs 'three' is not an integer")]
    [InlineData(new[] { "train", "--optimiser", "adam" }, "Unrecognized command or argument '--optimiser'")]
    [InlineData(new[] { "train", "--optimizer", "adamax" }, "--optimizer 'adamax'")]
    [InlineData(new[] { "train", "--seed", "1", "--seed", "2" }, "Option '--seed' expects a single argument but 2 were provided")]
    [InlineData(new[] { "train", "extra" }, "Unrecognized command or argument 'extra'")]
    // the config file silently replaced the resumed run's own, and its config.json with it
    [InlineData(new[] { "train", "--resume", "runs/a", "--config", "other.json" }, "give either --config or --resume")]
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
        Assert.Equal(5, File.ReadAllLines(Path.Combine(killed, "metrics.jsonl")).Length); // four epochs and the end line (the killed run wrote none)
    }

    [Fact]
    public async Task Train_ActivationsLargerThanTheProcessCanAllocate_ExitsOneSayingOutOfMemory()
    {
        // 240,010 parameters pass the up-front check, but a batch's conv output (128 x 20000 x 16 x 16 floats, 2.6 GB) does not fit a
        // 256 MiB heap: the runtime printed "Out of memory." and aborted the process (exit 134)
        var cli = Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["DOTNET_GCHeapHardLimit"] = "0x10000000";
        foreach (var arg in (string[])[cli, "train", "--model", "net 1x16x16 seq[conv(out=20000,k=1) relu adaptiveavgpool(size=1) flatten linear(out=10)]",
                     "--data", "teacher", "--max-steps", "1", "--train-limit", "256", "--test-limit", "64", "--threads", "1"])
            psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(timeout.Token);
        string err = await error;
        Assert.True(p.ExitCode == 1, $"exit {p.ExitCode}: {err}");
        Assert.StartsWith("gradflow train: out of memory", err, StringComparison.Ordinal);
        Assert.Contains("--batch-size", err);
        Assert.DoesNotContain("   at ", err + await output);
    }

    [Theory]
    [InlineData("net 2 seq[relu]")]
    [InlineData("net 2 seq[]")]
    public void Train_ModelWithoutParameters_ExitsOneSayingSo(string model)
    {
        // it was the optimiser's "Adam: the parameter list is empty; pass the model's Parameters(). (Parameter 'parameters')"
        var (code, _, err) = Run("train", "--model", model, "--data", "circles", "--max-steps", "1", "--threads", "1");
        Assert.Equal(1, code);
        Assert.Contains($"the model '{model}' has no parameters to train", err);
        Assert.DoesNotContain("(Parameter", err);
    }

    [Fact]
    public void Train_ResumeWithABudgetShorterThanTheRunsCheckpoint_ExitsOneAndLeavesTheConfig()
    {
        // --resume with --epochs 1 of a 2-epoch run trained nothing, said "Completed" and rewrote config.json to 1 epoch
        var run = Path.Combine(_dir, "longer");
        Assert.Equal(0, Run(Train(["--epochs", "2", "--out", run])).Code);
        foreach (var budget in new[] { new[] { "--epochs", "1" }, ["--max-steps", "5"] })
        {
            var (code, _, err) = Run(["train", "--resume", run, .. budget]);
            Assert.Equal(1, code);
            Assert.Contains("has trained 8 steps (2 epochs)", err);
            Assert.Equal(2, TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).Epochs);
            Assert.Null(TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).MaxSteps);
        }
        // the run's own budget, or a longer one, resumes
        Assert.Equal(0, Run("train", "--resume", run).Code);
        Assert.Equal(0, Run("train", "--resume", run, "--epochs", "3").Code);
    }

    /// <summary>A small, quick run on the circles data: 2 epochs of 4 steps unless overridden.</summary>
    private static readonly string[] Quick = ["--model", "mlp 2-8-2 act=tanh init=xavier-uniform", "--data", "circles", "--train-limit", "64",
        "--test-limit", "32", "--batch-size", "16", "--lr", "0.01", "--seed", "3", "--threads", "1"];

    private static string[] Train(string[] extra) => ["train", .. Quick, .. extra];

    /// <summary>The id of a process that has exited (so no live process has it, barring reuse).</summary>
    private static int DeadProcessId()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    [Fact]
    public void Train_ResumeWithOrphanedTemporaryFiles_RemovesThoseOfDeadProcessesOnly()
    {
        var run = Path.Combine(_dir, "run");
        Assert.Equal(0, Run(Train(["--epochs", "1", "--out", run])).Code);
        int dead = DeadProcessId();
        var orphanCheckpoint = Path.Combine(run, "checkpoints", $".epoch-0002.safetensors.{dead}.{Guid.NewGuid():N}.tmp");
        var orphanMetrics = Path.Combine(run, $".metrics.jsonl.{dead}.{Guid.NewGuid():N}.tmp");
        var live = Path.Combine(run, "checkpoints", $".epoch-0002.safetensors.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var unrelated = Path.Combine(run, "checkpoints", "notes.tmp");
        foreach (var f in new[] { orphanCheckpoint, orphanMetrics, live, unrelated }) File.WriteAllBytes(f, new byte[1024]);

        var (code, _, err) = Run("train", "--resume", run, "--epochs", "2");
        Assert.True(code == 0, err);
        Assert.False(File.Exists(orphanCheckpoint), "the dead process's checkpoint temporary is still there");
        Assert.False(File.Exists(orphanMetrics), "the dead process's metrics temporary is still there");
        Assert.True(File.Exists(live), "a live process's temporary was removed");
        Assert.True(File.Exists(unrelated), "a file not named like AtomicFile's temporaries was removed");
    }

    [Fact]
    public void Train_ResumeOfMonitoredRun_KeepsMonitoringWithItsInterval()
    {
        var run = Path.Combine(_dir, "run");
        var (code, _, err) = Run(Train(["--epochs", "1", "--monitor", "--monitor-every", "2", "--out", run]));
        Assert.True(code == 0, err);
        Assert.Equal(2, TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).MonitorEvery);
        File.Delete(Path.Combine(run, "diagnosis.json"));

        (code, var output, err) = Run("train", "--resume", run, "--epochs", "2");
        Assert.True(code == 0, err);
        Assert.Contains("monitor step 6:", err); // steps 4..7 of epoch 2, sampled every 2
        Assert.True(File.Exists(Path.Combine(run, "diagnosis.json")), "the resumed run wrote no diagnosis");
        Assert.Contains("\"step\":6", File.ReadAllText(Path.Combine(run, "metrics.jsonl")).Replace(" ", ""));
        Assert.Equal(2, TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).MonitorEvery);
    }

    [Fact]
    public void MonitorEvery_AsksForMonitoring_AndSetsADiagnoseTrialsSamples()
    {
        // train took no sample with --monitor-every alone, and diagnose listed it and used its own default
        var run = Path.Combine(_dir, "every");
        var (code, _, err) = Run(Train(["--epochs", "1", "--monitor-every", "2", "--out", run]));
        Assert.True(code == 0, err);
        Assert.Equal(2, TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).MonitorEvery);
        Assert.Contains(File.ReadLines(Path.Combine(run, "metrics.jsonl")), l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal));
        (code, var output, err) = Run("diagnose", "--model", "mlp 2-16-2", "--data", "spirals", "--steps", "100", "--monitor-every", "2", "--threads", "1");
        Assert.True(code is 0 or 3, err + output);
        Assert.Contains("trial: 100 steps, 50 monitor samples", output);
    }

    [Fact]
    public void MonitorEvery_SetsTheSamplesOfRepairsTrials()
    {
        // repair listed --monitor-every and sampled its trials every twentieth of a trial (here 3 steps: 20 samples)
        var dir = Path.Combine(_dir, "repair");
        var (code, output, err) = Run("repair", "--model", "mlp 2-16-2", "--data", "spirals", "--trial-steps", "60", "--attempts", "1",
            "--monitor-every", "2", "--threads", "1", "--out", dir);
        Assert.True(code is 0 or 3, err + output);
        using var repair = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "repair.json")));
        var trials = repair.RootElement.GetProperty("attempts").EnumerateArray().Select(a => a.GetProperty("trial")).Prepend(repair.RootElement.GetProperty("initial")).ToArray();
        Assert.NotEmpty(trials);
        foreach (var trial in trials)
            Assert.Equal((trial.GetProperty("steps").GetInt64() + 1) / 2, trial.GetProperty("samples").GetInt64());
    }

    [Fact]
    public void Train_ResumeWithAnotherModelOrOptimiser_SaysSo_NotThatTheCheckpointsAreDamaged()
    {
        var run = Path.Combine(_dir, "changed");
        Assert.Equal(0, Run(Train(["--epochs", "1", "--optimizer", "adam", "--out", run])).Code);
        var (code, _, err) = Run("train", "--resume", run, "--epochs", "2", "--optimizer", "sgd");
        Assert.Equal(1, code);
        Assert.Contains("epoch-0001.safetensors was written by a run of the optimiser Adam, not Sgd", err);
        Assert.DoesNotContain("damaged", err);
        (code, _, err) = Run("train", "--resume", run, "--epochs", "2", "--model", "mlp 2-16-2 act=tanh init=xavier-uniform");
        Assert.Equal(1, code);
        Assert.Contains("was written by a run of the model 'mlp 2-8-2 act=tanh init=xavier-uniform'", err);
        // the run itself resumes as it was
        Assert.Equal(0, Run("train", "--resume", run, "--epochs", "2").Code);
    }

    [Fact]
    public void Train_IntoADirectoryAnotherProcessIsWriting_IsRefused()
    {
        // two runs started together into one directory both found no run there and both wrote into it
        var run = Path.Combine(_dir, "busy");
        using (RunDirectory.Lock(run))
        {
            var (code, _, err) = Run(Train(["--epochs", "1", "--out", run]));
            Assert.Equal(2, code);
            Assert.Contains("is being written by another gradflow process", err);
            Assert.False(RunDirectory.HoldsRun(run));
        }
        // released (also when its process is killed): the directory is free again, and its lock file gone after the run
        Assert.Equal(0, Run(Train(["--epochs", "1", "--out", run])).Code);
        Assert.False(File.Exists(Path.Combine(run, ".gradflow.lock")));
    }

    /// <summary>A monitored 4-epoch run of an ELU net on spirals in <paramref name="name"/>, which stalls (its loss improves by 3 % in 4 epochs).</summary>
    private string StalledRun(string name)
    {
        var run = Path.Combine(_dir, name);
        var (code, output, err) = Run("train", "--data", "spirals", "--model", "mlp 2-32x3-2 act=elu", "--threads", "1", "--epochs", "4", "--monitor", "--out", run);
        Assert.True(code == 0, err);
        Assert.Contains("stalled loss", output + err);
        return run;
    }

    [Fact]
    public void Train_ResumeOfMonitoredRun_JudgesTheWholeRun()
    {
        // the fifth epoch's 3 samples alone were called healthy
        var run = StalledRun("stalled");
        var (code, output, err) = Run("train", "--resume", run, "--epochs", "5");
        Assert.True(code == 0, err);
        Assert.Contains("stalled loss", output + err);
        Assert.DoesNotContain("healthy", output + err);
        Assert.Contains("stalled-loss", File.ReadAllText(Path.Combine(run, "diagnosis.json")));
    }

    [Fact]
    public void Train_ResumeOfACompletedMonitoredRun_KeepsTheWholeRunsVerdict()
    {
        // resuming a run that had already finished takes no new sample; it was judged on none ("not judged ... in 0 samples"),
        // and that replaced the run's diagnosis.json
        var run = StalledRun("done");
        var (code, output, err) = Run("train", "--resume", run);
        Assert.True(code == 0, err);
        Assert.Contains("stalled loss", output + err);
        Assert.DoesNotContain("not judged", output + err);
        Assert.Contains("stalled-loss", File.ReadAllText(Path.Combine(run, "diagnosis.json")));
    }

    /// <summary>A monitored 3-epoch run on spirals, and the same run stopped after <paramref name="stopAfter"/> epochs and resumed to 3.</summary>
    private (string Whole, string Resumed) WholeAndResumed(int monitorEvery, int stopAfter)
    {
        string[] args = ["--data", "spirals", "--model", "mlp 2-16x2-2 act=tanh", "--optimizer", "adam", "--lr", "0.05",
            "--monitor", "--monitor-every", monitorEvery.ToString(CultureInfo.InvariantCulture), "--threads", "1"];
        var whole = Path.Combine(_dir, "whole");
        var (code, _, err) = Run(["train", .. args, "--epochs", "3", "--out", whole]);
        Assert.True(code == 0, err);
        var resumed = Path.Combine(_dir, "resumed");
        (code, _, err) = Run(["train", .. args, "--epochs", stopAfter.ToString(CultureInfo.InvariantCulture), "--out", resumed]);
        Assert.True(code == 0, err);
        (code, _, err) = Run("train", "--resume", resumed, "--epochs", "3");
        Assert.True(code == 0, err);
        return (whole, resumed);
    }

    [Fact]
    public void Train_ResumeOfMonitoredRun_GivesTheUninterruptedRunsVerdict()
    {
        // the first step's predicted update ratio (the lr cause's evidence) was NaN in a resumed run, so its verdict named a smaller
        // update ratio, a lower score and another lr remedy than the same run uninterrupted; the metrics file's watch line has it
        var (whole, resumed) = WholeAndResumed(monitorEvery: 1, stopAfter: 2);
        Assert.Contains("update ratio", File.ReadAllText(Path.Combine(whole, "diagnosis.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "diagnosis.json")), File.ReadAllText(Path.Combine(resumed, "diagnosis.json")));
    }

    /// <summary>
    /// A run resumed from a checkpoint that falls between two monitor samples (an epoch of 32 steps, a sample every 7) measures what the
    /// uninterrupted run measures: its first sample's mean loss covered only the steps after the resumption, which could change the
    /// verdict (an independent check saw a transformer run gain "oscillating"). Every step line of metrics.jsonl is the same.
    /// </summary>
    [Fact]
    public void Train_ResumeBetweenMonitorSamples_WritesTheUninterruptedRunsSamples()
    {
        var (whole, resumed) = WholeAndResumed(monitorEvery: 7, stopAfter: 1);
        static string[] Steps(string run) => File.ReadLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal)).ToArray();
        var expected = Steps(whole);
        Assert.True(expected.Length > 10, $"{expected.Length} samples");
        Assert.Equal(expected, Steps(resumed));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "diagnosis.json")), File.ReadAllText(Path.Combine(resumed, "diagnosis.json")));
    }

    [Fact]
    public void Train_OutIntoExistingRun_ExitsTwoSayingResumeOrForce_AndLeavesTheRunAlone()
    {
        var run = Path.Combine(_dir, "run");
        Assert.Equal(0, Run(Train(["--epochs", "2", "--out", run])).Code);
        var metrics = File.ReadAllText(Path.Combine(run, "metrics.jsonl"));

        var (code, _, err) = Run(Train(["--epochs", "1", "--out", run]));
        Assert.Equal(2, code);
        Assert.Contains(run, err);
        Assert.Contains("--resume", err);
        Assert.Contains("--force", err);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(run, "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(run, "checkpoints", "epoch-0002.safetensors")));
    }

    /// <summary>
    /// The end-of-run verdict of 'train --monitor' knows the chance level, as 'diagnose' and 'repair' do: 12 steps that leave
    /// the loss at 98 % of ln 2 while it still improves by more than 1 % per window (so the trend rule is silent) are a stall
    /// at the chance level. Without the chance level the verdict was "healthy".
    /// </summary>
    [Fact]
    public void Train_Monitor_EndsWithTheChanceLevelRules()
    {
        var run = Path.Combine(_dir, "run");
        var args = Train(["--epochs", "3", "--monitor", "--monitor-every", "1", "--out", run]);
        args[Array.IndexOf(args, "--lr") + 1] = "0.03";
        var (code, _, err) = Run(args);
        Assert.True(code == 0, err);
        using var diagnosis = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "diagnosis.json")));
        Assert.False(diagnosis.RootElement.GetProperty("healthy").GetBoolean());
        var stall = Assert.Single(diagnosis.RootElement.GetProperty("problems").EnumerateArray(),
            p => p.GetProperty("kind").GetString() == "stalled-loss");
        Assert.Contains("of the chance level", stall.GetProperty("summary").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// 'train --monitor' judges the end of a run with the evidence a trial reads (<see cref="GradFlow.Diagnostics.RunWatch"/>), so
    /// 'diagnose' on the same steps gives the same verdict. At SGD lr 1e20 the weights overflow in the first step: no update ratio
    /// can be measured, and the first step's predicted one sets the learning-rate remedy. Before, 'train --monitor' had no prediction
    /// and suggested the blind tenfold cut (lr 1e19, which explodes as well) where 'diagnose' suggested a millionfold one.
    /// </summary>
    [Fact]
    public void Train_Monitor_JudgesWithTheTrialsEvidence_TheSameVerdictAsDiagnose()
    {
        var trained = Path.Combine(_dir, "trained");
        var tried = Path.Combine(_dir, "tried");
        string[] args = [.. Quick, "--optimizer", "sgd"];
        args[Array.IndexOf(args, "--lr") + 1] = "1e20";
        var train = Run(["train", .. args, "--epochs", "2", "--monitor", "--monitor-every", "1", "--out", trained]);
        Assert.True(File.Exists(Path.Combine(trained, "diagnosis.json")), train.Err);
        var diagnose = Run(["diagnose", .. args, "--epochs", "2", "--steps", "8", "--every", "1", "--out", tried]);
        Assert.True(File.Exists(Path.Combine(tried, "diagnosis.json")), diagnose.Err);

        static (string Kind, string Remedies)[] Verdict(string run)
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "diagnosis.json")));
            return [.. doc.RootElement.GetProperty("problems").EnumerateArray().Select(p => (p.GetProperty("kind").GetString()!,
                string.Join(", ", p.GetProperty("remedies").EnumerateArray().Select(r => r.GetProperty("id").GetString()))))];
        }
        var fromTraining = Verdict(trained);
        Assert.Equal(Verdict(tried), fromTraining);
        var exploding = Assert.Single(fromTraining, p => p.Kind == "exploding-gradient");
        Assert.DoesNotContain("lr:0.1", exploding.Remedies, StringComparison.Ordinal);
        Assert.Contains("lr:", exploding.Remedies, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_OutIntoExistingRunWithForce_StartsOverFromAnEmptyRun()
    {
        var run = Path.Combine(_dir, "run");
        Assert.Equal(0, Run(Train(["--epochs", "2", "--monitor", "--out", run])).Code);
        Assert.True(File.Exists(Path.Combine(run, "diagnosis.json")));

        var (code, _, err) = Run(Train(["--epochs", "1", "--weight-decay", "0.001", "--out", run, "--force"]));
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(2, lines.Length); // one epoch of the new run and its end line, no monitor samples of the old one
        Assert.Equal(["epoch-0001.safetensors"], Directory.GetFiles(Path.Combine(run, "checkpoints")).Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(run, "diagnosis.json")), "the old run's diagnosis was kept");
        Assert.Equal(0.001, TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).WeightDecay);
    }

    [Fact]
    public void Train_ResumeWithTruncatedNewestCheckpoint_FallsBackToPreviousWithWarning_AndMatchesUninterruptedRun()
    {
        var full = Path.Combine(_dir, "full");
        Assert.Equal(0, Run(Train(["--epochs", "3", "--out", full])).Code);
        var run = Path.Combine(_dir, "run");
        Assert.Equal(0, Run(Train(["--epochs", "2", "--out", run])).Code);
        var newest = Path.Combine(run, "checkpoints", "epoch-0002.safetensors");
        using (var f = new FileStream(newest, FileMode.Open)) f.SetLength(f.Length / 2);

        var (code, _, err) = Run("train", "--resume", run, "--epochs", "3");
        Assert.True(code == 0, err);
        Assert.Contains("warning", err);
        Assert.Contains("epoch-0002.safetensors", err);
        Assert.Contains("epoch-0001.safetensors", err);
        var a = SafeTensors.Read(Path.Combine(full, "checkpoints", "epoch-0003.safetensors"));
        var b = SafeTensors.Read(Path.Combine(run, "checkpoints", "epoch-0003.safetensors"));
        for (int i = 0; i < a.Tensors.Count; i++)
            Assert.Equal(a.Tensors[i].Value.ToDoubleArray(), b.Tensors[i].Value.ToDoubleArray());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length); // three epochs and the end line (the resumed run's only)
    }

    [Fact]
    public void Train_ResumeWithNoIntactCheckpoint_ExitsOneNamingTheDamage()
    {
        var run = Path.Combine(_dir, "run");
        Assert.Equal(0, Run(Train(["--epochs", "1", "--out", run])).Code);
        var only = Path.Combine(run, "checkpoints", "epoch-0001.safetensors");
        SparseSafeTensors.Write(only, huge: "layers.0.weight", small: "layers.0.bias");

        var (code, _, err) = Run("train", "--resume", run, "--epochs", "2");
        Assert.Equal(1, code);
        Assert.Contains("epoch-0001.safetensors", err);
        Assert.Contains("'layers.0.weight'", err);
        Assert.Contains(SparseSafeTensors.HugeBytes + " bytes", err);
    }

    [Theory]
    [InlineData("mlp 784-1000000x20-10", "19,000,814,000,010")]
    [InlineData("mlp 784-40000x20-10", "30,432,560,010")]
    [InlineData("mlp 2-1000000x20-2", "19,000,024,000,002")]
    public void Train_ModelTooLargeForMemory_FailsFastNamingParametersAndBytes(string model, string parameters)
    {
        // The refusal must come before anything is loaded or built (not from a clock or a byte count, which
        // differ between machines): the data directory does not exist, so loading the data first would fail
        // on it, and building the model first would fail on its array sizes or run out of memory.
        string missing = Path.Combine(_dir, "no-such-data");
        var (code, _, err) = Run("train", "--model", model, "--data", "fashion-mnist", "--data-dir", missing, "--epochs", "1", "--threads", "1");
        Assert.Equal(1, code);
        Assert.Contains(parameters + " parameters", err);
        Assert.Contains("bytes", err);
        Assert.Contains("TotalAvailableMemoryBytes", err);
        Assert.DoesNotContain(missing, err);
        Assert.DoesNotContain("elements", err);
    }

    /// <summary>
    /// A run whose data or model fails before anything is written leaves no directory it created (an empty one stayed, and a rerun
    /// then needed --force); a directory that existed before stays.
    /// </summary>
    [Fact]
    public void Train_DataThatDoesNotFitTheModel_LeavesNoDirectoryItCreated()
    {
        string fresh = Path.Combine(_dir, "fresh"), existing = Path.Combine(_dir, "existing");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 3-8-2", "--data", "spirals", "--epochs", "1", "--threads", "1", "--out", fresh);
        Assert.Equal(1, code);
        Assert.Contains("the model expects 3", err);
        Assert.False(Directory.Exists(fresh), "the run's new directory was left behind");
        Directory.CreateDirectory(existing);
        (code, _, _) = CliRunner.Run("train", "--model", "mlp 3-8-2", "--data", "spirals", "--epochs", "1", "--threads", "1", "--out", existing);
        Assert.Equal(1, code);
        Assert.True(Directory.Exists(existing));
    }
}
