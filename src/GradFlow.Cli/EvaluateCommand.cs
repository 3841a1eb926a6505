using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow evaluate</c>: measures diagnosis (and repair) on a labelled catalogue of training configurations.</summary>
internal static class EvaluateCommand
{
    public const string Help = """
        Usage: gradflow evaluate --catalogue FILE [--split calibration|held-out] [--repair] [--only NAMES] [--seeds S,S,...] [--trial-steps N] [--jobs N] [--out FILE.md]

        Runs every configuration of a labelled catalogue (tests/catalogue/catalogue.json is GradFlow's
        own: healthy configurations and ones with a known problem) at each seed: the preflight and the
        diagnosis trial that 'gradflow diagnose' runs. Prints each verdict against the ground truth,
        then the detection rate, the false-alarm rate and how often the preflight alone forecast the
        vanishing and exploding cases. --repair also repairs every broken run, trains the repaired
        config and the healthy reference for their full budget, and reports the repair rate (healthy
        and within 2 points of the reference's accuracy) and the median cost in training runs.
        --split keeps one half of a generated catalogue (tests/catalogue/generated.json, built by
        'gradflow catalogue'), whose labels come from full training runs; a repair there must reach 0.9
        of the way from chance to the best run of the same task, optimiser family and budget.
        --only keeps the entries whose names contain one of the comma-separated NAMES; --seeds
        replaces the catalogue's seeds; --trial-steps replaces the catalogue's trial length (the
        diagnosis trial and each repair trial). --jobs runs N configurations at once (the figures are the
        same for any N; small models gain more from this than from kernel threads, see --threads of
        'train'). A config that two repairs, or a repair and a reference, reach is trained once.
        --out writes the Markdown tables.
        Exit code: 0 when done, 1 error, 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("evaluate", args, ["catalogue", "only", "seeds", "out", "split", "trial-steps", "jobs"], ["repair"]);
        string path = o.String("catalogue") ?? throw new UsageException("gradflow evaluate: --catalogue FILE is required.");
        int? trialSteps = o.Int("trial-steps");
        if (trialSteps < 1) throw new UsageException($"gradflow evaluate: --trial-steps must be at least 1, got {trialSteps}.");
        int jobs = o.Int("jobs") ?? 1;
        if (jobs is < 1 or > 256) throw new UsageException($"gradflow evaluate: --jobs must be in 1..256, got {jobs}.");
        var catalogue = Catalogue.Load(path);
        if (o.String("seeds") is { } seedText)
        {
            var seeds = seedText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
                ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v) ? v : throw new UsageException($"gradflow evaluate: --seeds: '{s}' is not a non-negative integer.")).ToArray();
            if (seeds.Length == 0) throw new UsageException("gradflow evaluate: --seeds is empty.");
            catalogue = catalogue with { Seeds = seeds };
        }
        if (trialSteps is { } steps) catalogue = catalogue with { TrialSteps = steps };
        var only = o.String("only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string? split = o.String("split");
        if (split is not null and not "calibration" and not "held-out") throw new UsageException($"gradflow evaluate: --split must be calibration or held-out, got '{split}'.");
        if (split is not null && catalogue.Entries.All(e => e.Split is null)) throw new UsageException($"gradflow evaluate: --split: {path} has no split (a generated catalogue has).");
        var report = CatalogueEvaluator.Evaluate(catalogue, o.Has("repair"),
            filter: e => (split is null || e.Split == split) && (only is null || only.Any(n => e.Name.Contains(n, StringComparison.Ordinal))),
            progress: run => stdout.WriteLine(Line(run)), jobs: jobs);
        stdout.WriteLine();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"detected {report.DetectionRate:P1} of broken runs, false alarms {report.FalseAlarmRate:P1} of healthy runs, preflight forecast {report.ForecastRate:P1} of vanishing/exploding runs ({report.Runs.Count} runs, {report.Seconds:F0} s)"));
        if (o.Has("repair"))
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"repaired {report.RepairRate:P1} of broken runs; median cost {report.MedianTotalCost:F2} training runs (repair trials alone {report.MedianRepairCost:F2})"));
        stdout.WriteLine();
        stdout.Write(report.PerKindMarkdown());
        if (o.String("out") is { } outPath) AtomicFile.WriteAllText(outPath, report.ToMarkdown());
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
