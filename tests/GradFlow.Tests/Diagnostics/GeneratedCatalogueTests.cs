using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>
/// The generated catalogue: the grammar it is drawn from, the outcome labels, the stored file
/// (tests/catalogue/generated.json), and the diagnosis on a fixed sample of its held-out half.
/// </summary>
public class GeneratedCatalogueTests
{
    private static string GeneratedPath => Path.Combine(RepoPaths.Root, "tests", "catalogue", "generated.json");

    [Fact]
    public void Grammar_SameSeed_SameConfigurations_OtherSeed_Others()
    {
        var a = CatalogueGrammar.Draw(7, 40);
        var b = CatalogueGrammar.Draw(7, 40);
        var c = CatalogueGrammar.Draw(8, 40);
        Assert.Equal(a.Select(x => x.Config.ToJson()), b.Select(x => x.Config.ToJson()));
        Assert.NotEqual(a.Select(x => x.Config.ToJson()), c.Select(x => x.Config.ToJson()));
    }

    [Fact]
    public void Grammar_CoversEveryFamilyOptimiserTaskAndRemedyDimension()
    {
        var drawn = CatalogueGrammar.Draw(1, 340).Select(d => d.Config).ToArray();
        var specs = drawn.Select(c => NetworkSpecs.ParseAny(c.Model)).ToArray(); // every draw is a valid spec
        Assert.Contains(specs, s => s is ModelSpec);
        foreach (var cell in new[] { RecurrentCellKind.RnnTanh, RecurrentCellKind.Lstm, RecurrentCellKind.Gru })
            Assert.Contains(specs, s => s is RecurrentSpec r && r.Cell == cell);
        foreach (var kind in Enum.GetValues<OptimizerKind>()) Assert.Contains(drawn, c => c.Optimizer == kind);
        // every task but the conv nets' (DrawConv's, tested below)
        foreach (var task in CatalogueGrammar.Tasks.Where(t => t.Image is null)) Assert.Contains(drawn, c => CatalogueGrammar.TaskOf(c) == task);
        var mlps = specs.OfType<ModelSpec>().ToArray();
        Assert.Contains(mlps, s => s.Hidden.Any(h => h.Norm == NormKind.Batch));
        Assert.Contains(mlps, s => s.Hidden.Any(h => h.Norm == NormKind.Layer));
        Assert.Contains(mlps, s => s.Hidden.Any(h => h.Residual == ResidualKind.Full));
        Assert.Contains(mlps, s => s.Hidden.Any(h => h.Residual == ResidualKind.ZeroInit));
        Assert.Contains(mlps, s => s.Hidden.Count >= 30);
        Assert.Contains(drawn, c => c.ClipNorm is not null);
        Assert.Contains(drawn, c => c.Momentum > 0);
        // a task's budget is the same for every configuration of it
        Assert.All(drawn, c => Assert.Equal(CatalogueGrammar.TaskOf(c)!.Steps, c.MaxSteps));
    }

    [Fact]
    public void ConvGrammar_DrawsValidConvNetsOfItsOwnTask_AndLeavesTheOtherDrawsAlone()
    {
        var conv = CatalogueGrammar.DrawConv(1, 60);
        Assert.Equal(conv.Select(x => x.Config.ToJson()), CatalogueGrammar.DrawConv(1, 60).Select(x => x.Config.ToJson()));
        Assert.NotEqual(conv.Select(x => x.Config.ToJson()), CatalogueGrammar.DrawConv(2, 60).Select(x => x.Config.ToJson()));
        // the conv draws have a stream of their own: the MLP and recurrent draws of a seed stay what they were
        using var stored = System.Text.Json.JsonDocument.Parse(File.ReadAllText(GeneratedPath));
        var storedDraws = stored.RootElement.GetProperty("entries").EnumerateArray().Concat(stored.RootElement.GetProperty("dropped").EnumerateArray())
            .Select(e => (Name: e.GetProperty("name").GetString()!, Config: TrainingConfig.FromJson(e.GetProperty("config").GetRawText())))
            .Where(e => !GeneratedCatalogue.IsConv(e.Name)).OrderBy(e => e.Name, StringComparer.Ordinal).ToArray();
        Assert.Equal(340, storedDraws.Length);
        Assert.Equal(CatalogueGrammar.Draw(1, 340).Select(d => (d.Name, (d.Config with { Seed = GeneratedCatalogue.RunSeed }).ToJson())),
            storedDraws.Select(e => (e.Name, e.Config.ToJson())));
        Assert.All(conv, d =>
        {
            Assert.Matches(@"^g1-c\d{3}-fashion-mnist-6k-conv$", d.Name);
            Assert.Null(d.Config.Spec());
            var description = d.Config.Description(); // parses, and its shapes fit
            Assert.Equal([1, 28, 28], description.Input);
            Assert.Equal([10], description.Shapes()[^1].Output);
            Assert.Same(CatalogueGrammar.ConvTask, CatalogueGrammar.TaskOf(d.Config));
            Assert.Equal(CatalogueGrammar.ConvTask.Steps, d.Config.MaxSteps);
        });
        var models = conv.Select(d => d.Config.Model).ToArray();
        foreach (var part in new[] { "cnn ", "resnet", "norm=batch", "norm=none", "norm=group", "start=zero-gamma", "start=zero ", "shortcut=b", "act=sigmoid", "act=relu" })
            Assert.Contains(models, m => (m + " ").Contains(part, StringComparison.Ordinal));
        // an MLP on the same data is in the MLP task, and the two are judged apart
        var mlp = CatalogueGrammar.Draw(1, 340).First(d => d.Config.Data == "fashion-mnist").Config;
        Assert.NotEqual(CatalogueGrammar.GroupOf(mlp), CatalogueGrammar.GroupOf(conv[0].Config with { Optimizer = mlp.Optimizer }));
    }

    private static RunOutcome Classified(double accuracy, double loss, bool nonFinite = false, double ratio = 1, double dead = 0, double sat = 0) => new()
    {
        TestAccuracy = accuracy, FinalTrainLoss = loss, ChanceLoss = Math.Log(4), Classes = 4, NonFinite = nonFinite,
        GradientRatio = ratio, DeadFraction = dead, Saturation = sat, UpdateRatio = 1e-3, GradientGrowth = 1, LossSignFlips = 0.3,
    };

    private static TrainingConfig Config(OptimizerKind optimizer) => new()
    {
        Model = "mlp 20-64x4-4", Data = "teacher", Optimizer = optimizer, MaxSteps = 1200, BatchSize = 32, Epochs = 10,
    };

    [Fact]
    public void Label_ComparesWithTheBestOfTheSameTaskOptimiserFamilyAndBudget()
    {
        // chance accuracy 0.25; best adaptive run 0.85: healthy from 0.25 + 0.9·0.6 = 0.79, broken below 0.25 + 0.6·0.6 = 0.61
        var runs = new List<(string, TrainingConfig, RunOutcome)>
        {
            ("best", Config(OptimizerKind.Adam), Classified(0.85, 0.4)),
            ("near", Config(OptimizerKind.AdamW), Classified(0.80, 0.5)),
            ("between", Config(OptimizerKind.RmsProp), Classified(0.70, 0.8)),
            ("vanished", Config(OptimizerKind.Adagrad), Classified(0.40, 1.3, ratio: 1e-5)),
            ("blown", Config(OptimizerKind.Adam), Classified(double.NaN, double.NaN, nonFinite: true)),
            ("dead", Config(OptimizerKind.Adam), Classified(0.30, 1.35, dead: 0.8)),
            ("at-chance", Config(OptimizerKind.Adam), Classified(0.81, 1.5)),
            // SGD is its own group: its best (0.5) makes 0.48 healthy although the Adam group's bar is higher
            ("sgd-best", Config(OptimizerKind.Sgd), Classified(0.50, 1.0)),
            ("sgd-near", Config(OptimizerKind.Sgd), Classified(0.48, 1.1)),
        };
        var labels = OutcomeLabeler.Label(runs).ToDictionary(l => l.Name);
        Assert.Null(labels["best"].Kind);
        Assert.False(labels["best"].Ambiguous);
        Assert.Null(labels["near"].Kind);
        Assert.True(labels["between"].Ambiguous);
        Assert.Equal(ProblemKind.VanishingGradient, labels["vanished"].Kind);
        Assert.Equal(ProblemKind.NonFinite, labels["blown"].Kind);
        Assert.Equal(ProblemKind.DyingRelu, labels["dead"].Kind);
        Assert.Equal(ProblemKind.StalledLoss, labels["at-chance"].Kind); // accuracy fine, but a loss above chance is no healthy run
        Assert.Null(labels["sgd-near"].Kind);
        Assert.False(labels["sgd-near"].Ambiguous);
        Assert.Equal("best", labels["vanished"].Best);
        Assert.Equal("sgd-best", labels["sgd-near"].Best);
    }

    [Fact]
    public void Mechanisms_KeepEveryOneTheRunShowed()
    {
        var o = Classified(0.3, 5, ratio: 1e-4, dead: 0.7, sat: 0.9);
        Assert.Equal([ProblemKind.ExplodingGradient, ProblemKind.VanishingGradient, ProblemKind.DyingRelu, ProblemKind.Saturation], OutcomeLabeler.Mechanisms(o));
        Assert.Empty(OutcomeLabeler.Mechanisms(Classified(0.8, 0.5)));
    }

    [Fact]
    public void StoredCatalogue_HasThreeHundredConfigurationsBothHalvesAndFairReferences()
    {
        var c = Catalogue.Load(GeneratedPath);
        Assert.True(c.Entries.Count + c.Dropped >= 300, $"{c.Entries.Count} entries + {c.Dropped} dropped");
        var calibration = c.Entries.Count(e => e.Split == "calibration");
        var heldOut = c.Entries.Count(e => e.Split == "held-out");
        Assert.True(calibration >= 100 && heldOut >= 100, $"calibration {calibration}, held-out {heldOut}");
        Assert.All(c.Entries, e => Assert.NotNull(e.Outcome));
        foreach (var e in c.Entries.Where(e => !e.Healthy))
        {
            var reference = c.Entries.Single(r => r.Name == e.Reference);
            Assert.Equal(CatalogueGrammar.GroupOf(e.Config), CatalogueGrammar.GroupOf(reference.Config));
            Assert.True(reference.Outcome!.Merit >= e.Outcome!.Merit, $"{e.Name}: its reference {reference.Name} did worse");
        }
        // both halves hold healthy runs and several kinds of broken ones
        foreach (var half in new[] { "calibration", "held-out" })
        {
            Assert.Contains(c.Entries, e => e.Split == half && e.Healthy);
            Assert.True(c.Entries.Where(e => e.Split == half && !e.Healthy).Select(e => e.Expect).Distinct().Count() >= 3);
        }
    }

    [Fact]
    public void StoredCatalogue_LabelsFollowFromItsStoredOutcomes()
    {
        // re-labelling from the stored outcomes with the current rule changes nothing: the file is not stale
        string text = File.ReadAllText(GeneratedPath);
        var relabelled = Catalogue.Parse(GeneratedCatalogue.Relabel(text), "relabelled");
        var stored = Catalogue.Parse(text, GeneratedPath);
        Assert.Equal(stored.Entries.Select(e => (e.Name, e.Expect, e.Reference, e.Split)), relabelled.Entries.Select(e => (e.Name, e.Expect, e.Reference, e.Split)));
        Assert.Equal(stored.Dropped, relabelled.Dropped);
    }

    [Theory]
    [InlineData("garbage", "is an invalid start of a value")]
    [InlineData("{}", "field 'grammarSeed' is missing")]
    [InlineData("""{"grammarSeed":1,"entries":[{"name":"a"}],"dropped":[]}""", "field 'config' is missing")]
    public void Relabel_OfAFileThatIsNotACatalogue_SaysSoNamingTheFile(string text, string expected)
    {
        // the command crashed with the runtime's exception (exit 134)
        var e = Assert.Throws<InvalidDataException>(() => GeneratedCatalogue.Relabel(text, "x.json"));
        Assert.StartsWith("x.json: not a generated catalogue", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A fixed sample of the held-out half (every third entry: configurations no threshold was tuned
    /// on), diagnosed exactly as <c>gradflow diagnose</c> does with the catalogue's trial length. The
    /// figures of the whole half, with repair, are in docs/diagnosis.md
    /// (<c>gradflow evaluate --catalogue tests/catalogue/generated.json --split held-out --repair</c>).
    /// This guards the measured level, not the issue's goal (95 % detected, 5 % false alarms), which the
    /// held-out half does not reach yet: measured on this sample 30 of 32 broken runs detected and 3 of 18
    /// healthy runs flagged; the floors are one run below that, because a borderline run may flip on
    /// another instruction-set path (float rounding changes the trajectory). With the second look at a
    /// recurrent model's plateau (<see cref="Trials.Run"/>), 32 of 32 and 2 of 18 on the AVX-512 kernels
    /// (2026-12-05); the floors are kept, as the AVX2 and portable paths were not measured on this sample since.
    /// </summary>
    [Fact]
    [Trait("Category", "Catalogue")]
    public void HeldOutSample_DetectsAtTheDocumentedRate() =>
        AssertSampleDetects(conv: false, every: 3, first: 0, minBroken: 30, minHealthy: 15, maxMisses: 3, maxFalseAlarms: 4);

    /// <summary>
    /// Diagnoses every <paramref name="every"/>-th held-out entry from the <paramref name="first"/>-th on, of the conv nets or of the
    /// others, and checks the sample's size and its misses and false alarms against the floors.
    /// </summary>
    private static void AssertSampleDetects(bool conv, int every, int first, int minBroken, int minHealthy, int maxMisses, int maxFalseAlarms)
    {
        var c = Catalogue.Load(GeneratedPath);
        var sample = c.Entries.Where(e => e.Split == "held-out" && IsConv(e) == conv).Where((_, i) => i % every == first).Select(e => e.Name).ToHashSet();
        var report = CatalogueEvaluator.Evaluate(c, filter: e => sample.Contains(e.Name), cancellation: TestContext.Current.CancellationToken, jobs: 2);
        string misses = string.Join("; ", report.Runs.Where(r => !r.Correct).Select(r =>
            $"{r.Entry.Name} ({(r.Entry.Expect is { } k ? Catalogue.KindName(k) : "healthy")}): {(r.Trial.Diagnosis.Healthy ? "healthy" : string.Join("+", r.Found.Select(Catalogue.KindName)))}"));
        int broken = report.Runs.Count(r => !r.Entry.Healthy), healthy = report.Runs.Count(r => r.Entry.Healthy);
        Assert.True(broken >= minBroken && healthy >= minHealthy, $"{broken} broken and {healthy} healthy runs");
        Assert.True(report.Runs.Count(r => !r.Entry.Healthy && r.Correct) >= broken - maxMisses, $"detected {report.DetectionRate:P1} of {broken}: {misses}");
        Assert.True(report.Runs.Count(r => r.FalseAlarm) <= maxFalseAlarms, $"false alarms {report.FalseAlarmRate:P1} of {healthy}: {misses}");
    }

    /// <summary>
    /// A fixed sample of the held-out half's broken runs (every sixth), repaired as <c>gradflow repair</c>
    /// does with the catalogue's trial length; the returned config is trained for the full budget and
    /// judged by the labelling rule (healthy label against the group's best). Measured on this sample:
    /// 14 of 15 repaired, median cost 1.50 training runs; the floor is one run below that (a
    /// borderline run may flip on another instruction-set path).
    /// </summary>
    [Fact]
    [Trait("Category", "Catalogue")]
    public void HeldOutSample_RepairsAtTheDocumentedRate()
    {
        var c = Catalogue.Load(GeneratedPath);
        var sample = c.Entries.Where(e => e.Split == "held-out" && !e.Healthy && !IsConv(e)).Where((_, i) => i % 6 == 0).Select(e => e.Name).ToHashSet();
        var report = CatalogueEvaluator.Evaluate(c, repair: true, filter: e => sample.Contains(e.Name), cancellation: TestContext.Current.CancellationToken, jobs: 2);
        string failed = string.Join("; ", report.Runs.Where(r => !r.Repaired()).Select(r =>
            $"{r.Entry.Name}: kept {string.Join(", ", r.Repair!.Attempts.Where(a => a.Accepted).Select(a => a.Remedy))}, score {r.RepairedScore:F2}"));
        Assert.True(report.Runs.Count >= 14, $"{report.Runs.Count} broken runs");
        Assert.True(report.Runs.Count(r => r.Repaired()) >= report.Runs.Count - 2, $"repaired {report.RepairRate:P1}: {failed}");
        Assert.True(report.MedianTotalCost <= 1.5, $"median cost {report.MedianTotalCost:F2}");
    }

    private static bool IsConv(CatalogueEntry e) => GeneratedCatalogue.IsConv(e.Name);

    /// <summary>
    /// Every other conv net of the held-out half (the second, fourth, …: the first, fourth and so on hold a ResNet-20 whose trial
    /// alone takes 40 s), diagnosed as <c>gradflow diagnose</c> does (the MLP and recurrent samples above leave them out, so that
    /// their measured levels stay comparable). Measured on this sample (2026-12-07, AVX-512 kernels): 5 of 6 broken runs detected
    /// (the miss: a tanh conv net at Adam 2e-4 that learns too slowly, at 0.22 of a linear model's pace, just above the rule's 0.2), no false alarm on 4
    /// healthy runs; the floors are one run below that.
    /// </summary>
    [Fact]
    [Trait("Category", "Catalogue")]
    public void HeldOutConvSample_DetectsAtTheDocumentedRate() =>
        AssertSampleDetects(conv: true, every: 2, first: 1, minBroken: 6, minHealthy: 4, maxMisses: 2, maxFalseAlarms: 1);
}
