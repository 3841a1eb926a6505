using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Diagnostics;

/// <summary>
/// The labelled catalogue (tests/catalogue/catalogue.json): its shape, the file format's errors, and
/// the figures the issue sets — diagnosis on every run and repair of every broken run.
/// </summary>
public class CatalogueTests
{
    private static string CataloguePath => Path.Combine(RepoPaths.Root, "tests", "catalogue", "catalogue.json");

    [Fact]
    public void Catalogue_HasThirtyConfigurationsHalfBrokenEveryKnownProblemAndThreeSeeds()
    {
        var c = Catalogue.Load(CataloguePath);
        Assert.True(c.Entries.Count >= 30, $"{c.Entries.Count} entries");
        Assert.True(c.Seeds.Count >= 3);
        int healthy = c.Entries.Count(e => e.Healthy);
        Assert.InRange(healthy, c.Entries.Count * 0.35, c.Entries.Count * 0.65);
        foreach (var kind in new[] { ProblemKind.VanishingGradient, ProblemKind.ExplodingGradient, ProblemKind.Saturation, ProblemKind.DyingRelu, ProblemKind.NonFinite })
            Assert.Contains(c.Entries, e => e.Expect == kind);
        Assert.All(c.Entries, e => Assert.False(string.IsNullOrWhiteSpace(e.Why)));
        // every cause the issue names: sigmoid depth, tanh with a small init, large init, high learning rate, deep ReLU with unit variance
        Assert.Contains(c.Entries, e => e.Expect == ProblemKind.VanishingGradient && e.Config.Model.Contains("act=sigmoid", StringComparison.Ordinal));
        Assert.Contains(c.Entries, e => e.Expect == ProblemKind.VanishingGradient && e.Config.Model.Contains("act=tanh init=normal:0.0", StringComparison.Ordinal));
        Assert.Contains(c.Entries, e => e.Expect == ProblemKind.ExplodingGradient && e.Config.LearningRate >= 1);
        Assert.Contains(c.Entries, e => e.Expect == ProblemKind.ExplodingGradient && e.Config.Model.Contains("act=relu init=normal:1", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{\"trialSteps\": 10, \"entries\": []}", "missing field 'seeds'")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 0, \"entries\": []}", "'trialSteps' must be a positive integer")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 5, \"entries\": [{\"name\": \"a\", \"expect\": \"vanishing\", \"why\": \"w\", \"reference\": \"b\", \"config\": {}}]}", "entries[0] ('a'): unknown problem kind 'vanishing'")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 5, \"entries\": [{\"name\": \"a\", \"expect\": \"saturation\", \"why\": \"w\", \"config\": {}}]}", "needs a 'reference'")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 5, \"entries\": [{\"name\": \"a\", \"expect\": \"saturation\", \"why\": \"w\", \"reference\": \"zz\", \"config\": {}}]}", "reference 'zz' is not an entry")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 5, \"entries\": [{\"name\": \"a\", \"expect\": \"healthy\", \"why\": \"w\", \"config\": {\"epochs\": 0}}]}", "entries[0] ('a').config: field 'epochs'")]
    [InlineData("{\"seeds\": [1], \"trialSteps\": 5, \"entries\": [{\"name\": \"a\", \"expect\": \"healthy\", \"config\": {}}]}", "entries[0] ('a'): missing field 'why'")]
    public void BadCatalogue_ErrorNamesTheEntryAndField(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => Catalogue.Parse(json, "cat.json"));
        Assert.StartsWith("cat.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>
    /// Several runs at once give the report of one at a time, in catalogue order: runs are functions of
    /// their config and seed, and the configs trained once for two repairs are shared, not raced.
    /// </summary>
    [Fact]
    public void Evaluate_TwoJobs_GiveTheReportOfOne_InCatalogueOrder()
    {
        var c = Catalogue.Load(CataloguePath) with { Seeds = [5, 6], TrialSteps = 40 };
        // two entries whose standard repair is the same config, and their shared reference
        string[] names = ["teacher-relu-nan-lr", "teacher-relu-high-lr-sgd", "teacher-relu-he-d4"];
        CatalogueReport Run(int jobs, List<string> order) => CatalogueEvaluator.Evaluate(c with { Entries = [.. c.Entries.Select(e => e with { Config = e.Config with { Epochs = 2 } })] },
            repair: true, filter: e => names.Contains(e.Name), progress: r => order.Add($"{r.Entry.Name}/{r.Seed}"), jobs: jobs,
            cancellation: TestContext.Current.CancellationToken);
        List<string> orderOne = [], orderTwo = [];
        var one = Run(1, orderOne);
        var two = Run(2, orderTwo);
        Assert.Equal(6, one.Runs.Count);
        Assert.Equal(names.SelectMany(n => new[] { $"{n}/5", $"{n}/6" }).Order(), orderOne.Order());
        Assert.Equal(orderOne, orderTwo);
        Assert.Equal(one.Runs.Select(r => $"{r.Entry.Name}/{r.Seed}"), orderTwo);
        for (int i = 0; i < one.Runs.Count; i++)
        {
            Assert.Equal(one.Runs[i].Trial.Diagnosis.Problems.Select(p => p.Kind), two.Runs[i].Trial.Diagnosis.Problems.Select(p => p.Kind));
            Assert.Equal(one.Runs[i].Trial.Samples[^1].Loss, two.Runs[i].Trial.Samples[^1].Loss);
            Assert.Equal(one.Runs[i].RepairedAccuracy, two.Runs[i].RepairedAccuracy);
            Assert.Equal(one.Runs[i].ReferenceAccuracy, two.Runs[i].ReferenceAccuracy);
        }
        Assert.Contains(one.Runs, r => r.Repair is not null && !double.IsNaN(r.RepairedAccuracy));
        // the form in which a run goes from another process to rank 0 (mpirun -np N gradflow evaluate) gives the same report
        var parsed = new CatalogueReport([.. one.Runs.Select(r => CatalogueRunWire.Parse(CatalogueRunWire.Serialize(r), r.Entry))], one.Seconds);
        Assert.Equal(one.ToMarkdown(), parsed.ToMarkdown());
        Assert.Equal(one.PerKindMarkdown(), parsed.PerKindMarkdown());
        Assert.Equal(one.Runs.Select(r => r.Repair?.Attempts.Count), parsed.Runs.Select(r => r.Repair?.Attempts.Count));
        Assert.Equal(one.Runs.Select(r => r.Trial.Diagnosis.GradientRatio), parsed.Runs.Select(r => r.Trial.Diagnosis.GradientRatio));
    }

    /// <summary>
    /// Every entry at every seed: the preflight and the diagnosis trial of <c>gradflow diagnose</c>; then, at the catalogue's
    /// first seed, for every broken run the repair, the full training of the repaired config and of the healthy reference. The
    /// repairs of the other seeds are left to <c>gradflow evaluate --catalogue tests/catalogue/catalogue.json --repair</c>, whose
    /// figures docs/diagnosis.md gives: at every seed they took 8 of this test's 9 minutes of CPU, and the suite ran for 10
    /// minutes on a 2-core Zen 1. With GRADFLOW_CATALOGUE_OUT set, the report's tables are written there.
    /// </summary>
    [Fact]
    [Trait("Category", "Catalogue")]
    public void Catalogue_DetectsAndRepairsAtTheIssuesRates()
    {
        var catalogue = Catalogue.Load(CataloguePath);
        var token = TestContext.Current.CancellationToken;
        // the first seed with the repairs, the others diagnosed only; the detection figures are those of every run
        var repairs = CatalogueEvaluator.Evaluate(catalogue with { Seeds = [catalogue.Seeds[0]] }, repair: true, cancellation: token, jobs: 2);
        var others = CatalogueEvaluator.Evaluate(catalogue with { Seeds = [.. catalogue.Seeds.Skip(1)] }, cancellation: token, jobs: 2);
        var report = new CatalogueReport([.. repairs.Runs, .. others.Runs], repairs.Seconds + others.Seconds);
        Assert.Equal(catalogue.Entries.Count * catalogue.Seeds.Count, report.Runs.Count);
        if (Environment.GetEnvironmentVariable("GRADFLOW_CATALOGUE_OUT") is { Length: > 0 } path)
            File.WriteAllText(path, report.ToMarkdown());
        string misses = string.Join("; ", report.Runs.Where(r => !r.Correct).Select(r => $"{r.Entry.Name}/{r.Seed}: {string.Join("+", r.Found)}"));
        Assert.True(report.DetectionRate >= 0.95, $"detected {report.DetectionRate:P1}: {misses}");
        Assert.True(report.FalseAlarmRate <= 0.05, $"false alarms {report.FalseAlarmRate:P1}: {misses}");
        Assert.True(report.ForecastRate >= 0.95, $"preflight forecast {report.ForecastRate:P1}");
        Assert.Equal(catalogue.Entries.Count(e => !e.Healthy), repairs.Runs.Count(r => r.Repair is not null));
        string failed = string.Join("; ", repairs.Runs.Where(r => r.Repair is not null && !r.Repaired()).Select(r => $"{r.Entry.Name}/{r.Seed}: {r.RepairedAccuracy:P1} vs {r.ReferenceAccuracy:P1}"));
        Assert.True(repairs.RepairRate >= 0.90, $"repaired {repairs.RepairRate:P1}: {failed}");
        Assert.True(repairs.MedianTotalCost < 1.5, $"median cost {repairs.MedianTotalCost:F2} training runs");
    }
}
