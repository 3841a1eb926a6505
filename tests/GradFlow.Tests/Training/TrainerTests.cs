using GradFlow.Optim;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainingConfig Circles(int epochs = 6) => new()
    {
        Model = "mlp 2-32x2-2 act=tanh init=xavier-uniform",
        Data = "circles",
        Optimizer = OptimizerKind.Adam,
        LearningRate = 0.01,
        Epochs = epochs,
        BatchSize = 64,
        Seed = 3,
        Threads = 1,
    };

    [Fact]
    public void Run_ConcentricCircles_LearnsWellAboveChance()
    {
        var result = new Trainer(Circles()).Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(StopReason.Completed, result.Stop);
        Assert.Equal(6, result.Epochs.Count);
        Assert.True(result.FinalTestAccuracy > 0.95, $"test accuracy {result.FinalTestAccuracy}");
        Assert.True(result.Epochs[^1].TrainLoss < result.Epochs[0].TrainLoss);
    }

    [Fact]
    public void Run_HandsEachStepsIntermediatesBackToThePool()
    {
        // a training step's intermediates are released after backward (so steps in steady state reuse their storage):
        // a hidden layer's output kept past its step cannot be read, while the parameters and their gradients stay
        var trainer = new Trainer(Circles(1) with { MaxSteps = 3 });
        var kept = new List<GradFlow.Tensors.Tensor>();
        var hidden = trainer.Model.NamedModules().Select(m => m.Item2).OfType<GradFlow.Nn.Linear>().First();
        using var hook = hidden.RegisterForwardHook((_, _, y) => kept.Add(y));
        trainer.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.True(kept.Count >= 3, $"{kept.Count} forward passes seen");
        var e = Assert.Throws<InvalidOperationException>(() => kept[0].ToArray());
        Assert.Contains("released", e.Message);
        Assert.All(trainer.Model.Parameters(), p => Assert.True(p.Data.ToArray().All(float.IsFinite)));
    }

    [Fact]
    public void Run_SameConfigTwice_GivesBitIdenticalWeights()
    {
        var a = new Trainer(Circles(2) with { Model = "mlp 2-16x2-2 act=relu dropout=0.2" });
        var b = new Trainer(Circles(2) with { Model = "mlp 2-16x2-2 act=relu dropout=0.2" });
        a.Run(cancellation: TestContext.Current.CancellationToken);
        b.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(a.Model.StateDict().Select(kv => kv.Value.ToArray()), b.Model.StateDict().Select(kv => kv.Value.ToArray()));
    }

    [Fact]
    public void Run_ResumeFromCheckpoint_EndsWithSameWeightsAsUninterruptedRun()
    {
        var config = Circles(4) with { Model = "mlp 2-16x2-2 act=relu norm=batch dropout=0.1", Schedule = ScheduleKind.Cosine, ClipNorm = 1 };
        var full = new Trainer(config);
        full.Run(Path.Combine(_dir, "full"), cancellation: TestContext.Current.CancellationToken);

        var runDir = Path.Combine(_dir, "resumed");
        var crashing = new Trainer(config).AddObserver(new CrashAt(2 * 63 + 5));
        Assert.Throws<InvalidOperationException>(() => crashing.Run(runDir, cancellation: TestContext.Current.CancellationToken));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(runDir, "checkpoints")).Length);
        var resumed = new Trainer(config);
        var result = resumed.Run(runDir, resume: true, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(4, result.Epochs[^1].Epoch);
        Assert.Equal(full.Model.StateDict().Select(kv => kv.Value.ToArray()), resumed.Model.StateDict().Select(kv => kv.Value.ToArray()));
        var lines = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl"));
        Assert.Equal(5, lines.Length); // four epochs and the end line of the resumed run (the crash wrote none)
        Assert.True(RunDirectory.IsEndLine(lines[^1]), lines[^1]);
    }

    [Fact]
    public void Run_ResumeAfterAStepLimitInsideAnEpoch_TrainsTheRestOfThatEpochAsAnUninterruptedRun()
    {
        // 63 batches an epoch: a limit of 100 steps stops 37 batches into the second epoch; the resumed run used to count that epoch
        // complete and go on with the third (226 steps in all instead of 252). A constant rate: a schedule spans the budget, which the
        // step limit changes
        var config = Circles(4) with { Model = "mlp 2-16x2-2 act=relu norm=batch dropout=0.1", Schedule = ScheduleKind.Constant };
        var full = new Trainer(config);
        var uninterrupted = full.Run(Path.Combine(_dir, "full"), cancellation: TestContext.Current.CancellationToken);

        var runDir = Path.Combine(_dir, "limited");
        var stopped = new Trainer(config with { MaxSteps = 100 }).Run(runDir, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal((StopReason.MaxSteps, 100L), (stopped.Stop, stopped.Steps));
        var resumed = new Trainer(config);
        var result = resumed.Run(runDir, resume: true, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(uninterrupted.Steps, result.Steps);
        Assert.Equal(full.Model.StateDict().Select(kv => kv.Value.ToArray()), resumed.Model.StateDict().Select(kv => kv.Value.ToArray()));
        // the second epoch's metrics count all its batches: the same line as the uninterrupted run's, and one line per epoch
        static string[] Lines(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
            .Select(l => System.Text.RegularExpressions.Regex.Replace(l, "\"[Ss]econds\":[^,}]*", "")).ToArray();
        Assert.Equal(Lines(Path.Combine(_dir, "full")), Lines(runDir));
    }

    [Fact]
    public void Run_BatchNormWithALastBatchOfOne_LeavesThatExampleOutAndSaysSo()
    {
        // 129 examples in batches of 64: the third batch would hold one example, which batch norm cannot normalise in training
        var config = Circles(2) with { Model = "mlp 2-8-2 norm=batch", TrainLimit = 129, BatchSize = 64 };
        var trainer = new Trainer(config);
        Assert.Equal(129, trainer.Data.Train.Count);
        var warnings = new List<string>();
        trainer.Warning += warnings.Add;
        var result = trainer.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal((StopReason.Completed, 4L), (result.Stop, result.Steps));
        Assert.Contains(warnings, w => w.Contains("last batch of one", StringComparison.Ordinal));
        // without batch norm every example trains
        Assert.Equal(6L, new Trainer(config with { Model = "mlp 2-8-2" }).Run(cancellation: TestContext.Current.CancellationToken).Steps);
    }

    /// <summary>Simulates a crash in the middle of an epoch.</summary>
    private sealed class CrashAt(long step) : ITrainingObserver
    {
        public void OnStepStart(StepInfo info)
        {
            if (info.Step == step) throw new InvalidOperationException("simulated crash");
        }
    }

    [Fact]
    public void Run_ExplodingLearningRate_StopsOnNonFiniteLoss()
    {
        var config = Circles(3) with { Model = "mlp 2-64x3-2 act=relu init=normal:3", Optimizer = OptimizerKind.Sgd, LearningRate = 50 };
        var result = new Trainer(config).Run(cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(StopReason.NonFiniteLoss, result.Stop);
        Assert.Contains("at step", result.Message);
    }

    [Fact]
    public void RunDirectory_HoldsConfigMetricsAndCheckpoints()
    {
        var runDir = Path.Combine(_dir, "run");
        new Trainer(Circles(2)).Run(runDir, cancellation: TestContext.Current.CancellationToken);
        var config = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(runDir, "config.json")));
        Assert.Equal(Circles(2), config);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Length); // two epochs and the end line
        Assert.True(File.Exists(Path.Combine(runDir, "checkpoints", "epoch-0002.safetensors")));
        var st = SafeTensors.Read(Path.Combine(runDir, "checkpoints", "epoch-0002.safetensors"));
        Assert.Contains(st.Tensors, kv => kv.Key == "layers.0.weight");
        Assert.Equal("2", st.Metadata["epoch"]);
    }

    [Theory]
    [InlineData("""{"epochs": 0}""", "'epochs'")]
    [InlineData("""{"learningRate": -1}""", "'learningRate'")]
    [InlineData("""{"optimizer": "adamax"}""", "field 'optimizer': 'adamax' is not one of sgd, adam, adamw, rmsprop, adagrad")]
    [InlineData("""{"optimizer": 2}""", "field 'optimizer': a number is not one of")]
    [InlineData("""{"schedule": "onecycle"}""", "field 'schedule': 'onecycle' is not one of constant, cosine, step, linear")]
    [InlineData("""{"optimizer": "adam", "nesterov": true}""", "field 'nesterov' is Nesterov momentum for sgd with momentum > 0; got adam with momentum 0")]
    [InlineData("""{"optimizer": "sgd", "nesterov": true}""", "field 'nesterov' is Nesterov momentum for sgd with momentum > 0; got sgd with momentum 0")]
    [InlineData("""{"data": "imagenet"}""", "'data'")]
    [InlineData("""{"model": "mlp 4-x-2"}""", "'model'")]
    [InlineData("""{"epochz": 3}""", "epochz")]
    public void Config_BadJson_ThrowsNamingField(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => TrainingConfig.FromJson(json, "cfg.json"));
        Assert.Contains("cfg.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Config_EnumValues_AreTheCommandLinesNames_AndTheOlderKebabCaseStillReads()
    {
        var config = Circles(1) with { Optimizer = OptimizerKind.AdamW, Schedule = ScheduleKind.Cosine, Precision = PrecisionKind.Bf16 };
        string json = config.ToJson();
        Assert.Contains("\"optimizer\": \"adamw\"", json);
        Assert.Contains("\"schedule\": \"cosine\"", json);
        Assert.Contains("\"precision\": \"bf16\"", json);
        Assert.Equal(config, TrainingConfig.FromJson(json));
        // configs written before 2026-12-07 said "adam-w" and "rms-prop"; any case reads
        Assert.Equal(OptimizerKind.AdamW, TrainingConfig.FromJson(json.Replace("\"adamw\"", "\"adam-w\"")).Optimizer);
        Assert.Equal(OptimizerKind.RmsProp, TrainingConfig.FromJson(json.Replace("\"adamw\"", "\"rms-prop\"")).Optimizer);
        Assert.Equal(OptimizerKind.RmsProp, TrainingConfig.FromJson(json.Replace("\"adamw\"", "\"RMSprop\"")).Optimizer);
        Assert.Contains("\"optimizer\": \"rmsprop\"", (config with { Optimizer = OptimizerKind.RmsProp }).ToJson());
    }

    [Fact]
    public void Config_Nesterov_ReachesTheOptimizer_AndIsWrittenOnlyWhenSet()
    {
        var plain = Circles(1) with { Optimizer = OptimizerKind.Sgd, Momentum = 0.9 };
        Assert.DoesNotContain("nesterov", plain.ToJson());
        Assert.False(((Sgd)new Trainer(plain).Optimizer).Nesterov);
        var nesterov = plain with { Nesterov = true };
        Assert.Contains("\"nesterov\": true", nesterov.ToJson());
        Assert.Equal(nesterov, TrainingConfig.FromJson(nesterov.ToJson()));
        Assert.True(((Sgd)new Trainer(nesterov).Optimizer).Nesterov);
        // the same first steps, another trajectory: the look-ahead gradient changes the weights from the second step on
        var a = new Trainer(plain with { MaxSteps = 3 });
        var b = new Trainer(nesterov with { MaxSteps = 3 });
        a.Run(cancellation: TestContext.Current.CancellationToken);
        b.Run(cancellation: TestContext.Current.CancellationToken);
        Assert.NotEqual(a.Model.Parameters().First().Data.ToArray(), b.Model.Parameters().First().Data.ToArray());
    }
}
