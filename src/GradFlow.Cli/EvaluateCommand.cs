using System.CommandLine;
using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow evaluate</c>: measures diagnosis (and repair) on a labelled catalogue of training configurations.</summary>
internal static class EvaluateCommand
{
    // the options of 'evaluate'; one line each
    public static readonly Option<string?> CatalogueFile = new("--catalogue") { Description = "the labelled catalogue (tests/catalogue/catalogue.json is GradFlow's own)", HelpName = "FILE", Required = true };
    public static readonly Option<string?> Split = Opt.Choice("split", "keep one half of a generated catalogue", "calibration", "held-out");
    public static readonly Option<bool> Repair = Opt.Flag("repair",
        "also repair every broken run, train the repaired config and the healthy reference for their full budget, and report the repair rate and the median cost");
    public static readonly Option<string?> Only = Opt.String("only", "keep the entries whose names contain one of the comma-separated NAMES", "NAMES");
    public static readonly Option<string?> Seeds = Opt.String("seeds", "replace the catalogue's seeds", "S,S,...");
    public static readonly Option<int?> TrialSteps = Opt.Int("trial-steps", "replace the catalogue's trial length (the diagnosis trial and each repair trial)");
    public static readonly Option<int?> Jobs = Opt.Jobs("configurations run at once (the figures are the same for any N)");
    public static readonly Option<string?> Out = Opt.String("out", "write the Markdown tables", "FILE.md");
    public static readonly Option<string?> TrialsOut = Opt.String("trials-out",
        "write each diagnosis trial's run directory (config, metrics.jsonl, diagnosis.json) to DIR/ENTRY-sSEED, for 'gradflow report' or analysis", "DIR");

    public static Command Declare()
    {
        var command = new Verb("evaluate", "measure diagnosis and repair on a labelled catalogue of configurations",
            "Runs every configuration of a labelled catalogue at each seed: the preflight and the diagnosis trial that 'gradflow diagnose' runs. " +
            "Prints each verdict against the ground truth, then the detection rate, the false-alarm rate and how often the preflight alone forecast " +
            "the vanishing and exploding cases. A generated catalogue ('gradflow catalogue') has labels from full training runs; a repair there must " +
            "reach 0.9 of the way from chance to the best run of the same task, optimiser family and budget. A config that two repairs, or a repair " +
            "and a reference, reach is trained once (per process). Under 'mpirun -np N' the runs go to the processes as they free up, and the " +
            "output is the same as from one process. Exit code: 0 when done, 1 error, 2 usage.")
        { CatalogueFile, Split, Repair, Only, Seeds, TrialSteps, Jobs, Out, TrialsOut };
        command.TrialStepsForTheTrendRules(TrialSteps);
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        var world = Communicators.FromEnvironment();
        if (world.Rank > 0) stdout = TextWriter.Null;
        string path = o.GetValue(CatalogueFile)!;
        int? trialSteps = o.GetValue(TrialSteps);
        int jobs = o.GetValue(Jobs) ?? 1;
        var catalogue = Catalogue.Load(path);
        if (o.GetValue(Seeds) is { } seedText)
        {
            var seeds = seedText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
                ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v) ? v : throw new UsageException($"gradflow evaluate: --seeds: '{s}' is not a non-negative integer.")).ToArray();
            if (seeds.Length == 0) throw new UsageException("gradflow evaluate: --seeds is empty.");
            catalogue = catalogue with { Seeds = seeds };
        }
        if (trialSteps is { } steps) catalogue = catalogue with { TrialSteps = steps };
        var only = o.GetValue(Only)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string? split = o.GetValue(Split);
        if (split is not null && catalogue.Entries.All(e => e.Split is null)) throw new UsageException($"gradflow evaluate: --split: {path} has no split (a generated catalogue has).");
        // a name that matches nothing evaluated nothing and printed rates of NaN with exit code 0
        if (only?.FirstOrDefault(n => !catalogue.Entries.Any(e => e.Name.Contains(n, StringComparison.Ordinal) && (split is null || e.Split == split))) is { } unmatched)
            throw new UsageException($"gradflow evaluate: --only: no entry{(split is null ? "" : $" of the {split} half")} of {path} has '{unmatched}' in its name (names are case-sensitive: 'gradflow evaluate --catalogue {path}' lists them as it runs).");
        var report = CatalogueEvaluator.Evaluate(catalogue, o.Has(Repair),
            filter: e => (split is null || e.Split == split) && (only is null || only.Any(n => e.Name.Contains(n, StringComparison.Ordinal))),
            progress: run => stdout.WriteLine(Line(run)), jobs: jobs, world: world, trialsDirectory: o.GetValue(TrialsOut));
        if (world.Rank > 0) return 0;
        stdout.WriteLine();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"detected {report.DetectionRate:P1} of broken runs, false alarms {report.FalseAlarmRate:P1} of healthy runs, preflight forecast {report.ForecastRate:P1} of vanishing/exploding runs ({report.Runs.Count} runs, {report.Seconds:F0} s)"));
        if (o.Has(Repair))
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"repaired {report.RepairRate:P1} of broken runs; median cost {report.MedianTotalCost:F2} training runs (repair trials alone {report.MedianRepairCost:F2})"));
        stdout.WriteLine();
        stdout.Write(report.PerKindMarkdown());
        if (o.GetValue(Out) is { } outPath) AtomicFile.WriteAllText(outPath, report.ToMarkdown());
        return 0;
    }

    private static string Line(CatalogueRun r)
    {
        string truth = r.Entry.Expect is { } k ? Catalogue.KindName(k) : "healthy";
        string found = r.Trial.Diagnosis.Healthy ? "healthy" : string.Join("+", r.Found.Select(Catalogue.KindName));
        string pre = r.Preflight.Healthy ? "healthy" : string.Join("+", r.Preflight.Problems.Select(p => Catalogue.KindName(p.Kind)).Distinct());
        string mark = r.Correct ? "ok " : "MISS";
        string repair = r.Repair is null ? ""
            : string.Create(CultureInfo.InvariantCulture, $"  repair: {(r.Repaired() ? "ok" : "FAIL")} {string.Join(", ", r.Repair.Attempts.Where(a => a.Accepted).Select(a => a.Remedy))} acc {r.RepairedAccuracy:P1} vs {r.ReferenceAccuracy:P1} cost {r.TotalCost:F2}");
        return string.Create(CultureInfo.InvariantCulture, $"{mark} {r.Entry.Name,-32} seed {r.Seed}  truth {truth,-19} found {found,-34} preflight {pre,-28} ratio {r.Trial.Diagnosis.GradientRatio:E1} update {r.PredictedUpdateRatio:G2} {r.Seconds,5:F1}s{repair}");
    }
}
