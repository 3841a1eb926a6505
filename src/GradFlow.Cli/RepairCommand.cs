using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow repair</c>: short trials, diagnosis, remedies, until healthy; prints and saves every attempt and the final config.</summary>
internal static class RepairCommand
{
    public const string Help = """
        Usage: gradflow repair [train options] [--trial-steps N] [--attempts N] [--out DIR]

        Runs a short monitored trial of the config (--trial-steps, default 200), diagnoses it, applies
        the best remedy (the faulty layers first), and runs again on the same seeds, until the run is
        healthy or --attempts remedies (default 4) were tried. Prints every attempt with the metrics
        before and after, and the cost as a multiple of one full training run. --out DIR saves
        repair.json (every attempt) and config.json (the repaired config, accepted by
        'gradflow train --config DIR/config.json'). Exit code 0 when the final config is healthy, 3 otherwise.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("repair", args, [.. TrainCommand.ValuedOptions.Where(n => n is not ("resume" or "out" or "tensorboard")), "trial-steps", "attempts", "out"], ["no-standardize", "stream"]);
        var config = TrainCommand.BuildConfig(o, null);
        int steps = o.Int("trial-steps") ?? 200, attempts = o.Int("attempts") ?? 4;
        if (steps < 1 || attempts < 1) throw new UsageException("gradflow repair: --trial-steps and --attempts must be at least 1.");
        var result = Run(config, steps, attempts, stdout);
        if (o.String("out") is { } dir)
        {
            Directory.CreateDirectory(dir);
            AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), result.Config.ToJson() + "\n");
            AtomicFile.WriteAllText(Path.Combine(dir, "repair.json"), ToJson(result));
            stdout.WriteLine($"saved: {Path.Combine(dir, "config.json")} (gradflow train --config accepts it) and repair.json");
        }
        return result.Healthy ? 0 : 3;
    }

    /// <summary>Runs the repair, printing each step of it.</summary>
    internal static RepairResult Run(TrainingConfig config, int steps, int attempts, TextWriter stdout, DataBundle? data = null)
    {
        stdout.WriteLine($"repairing: {config.DescribeModel()}");
        stdout.WriteLine($"trials of {steps} steps on seed {config.Seed}");
        var result = Repairer.Repair(config, steps, attempts, data, progress: a =>
            stdout.WriteLine($"  tried [{a.Remedy}] {a.Description}: {Line(a.Trial)} -> {(a.Accepted ? "kept" : "rejected")}"));
        stdout.WriteLine();
        stdout.WriteLine($"before: {Line(result.Initial)}");
        stdout.WriteLine(DiagnosisView.Verdict(result.Initial.Diagnosis));
        stdout.WriteLine();
        stdout.WriteLine($"after:  {Line(result.Final)}");
        stdout.WriteLine(DiagnosisView.Verdict(result.Final.Diagnosis));
        stdout.WriteLine();
        stdout.WriteLine($"final model: {result.Config.DescribeModel()}");
        var changes = result.Attempts.Where(a => a.Accepted).Select(a => a.Remedy).ToArray();
        stdout.WriteLine($"changes kept: {(changes.Length == 0 ? "none" : string.Join(", ", changes))}");
        if (!result.Healthy && changes.Length > 0)
            stdout.WriteLine("the last trial is not healthy yet: the changes kept lowered its loss or its problems; train the config in full to see whether it was a slow start");
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cost: {result.Attempts.Count + 1} trials = {result.Cost:F2} × one full training run of the config"));
        return result;
    }

    internal static string Line(TrialResult t) => string.Create(CultureInfo.InvariantCulture,
        $"gradient ratio {t.Diagnosis.GradientRatio:E1}, loss {t.FinalLoss:F3}, {(double.IsNaN(t.TestAccuracy) ? $"test loss {t.Result.Epochs.LastOrDefault()?.TestLoss ?? double.NaN:F4}" : $"test accuracy {t.TestAccuracy:P1}")}, {(t.Diagnosis.Healthy ? "healthy" : string.Join(", ", t.Diagnosis.Problems.Select(p => p.Kind)))}");

    private static string ToJson(RepairResult r) => System.Text.Json.JsonSerializer.Serialize(new
    {
        healthy = r.Healthy,
        cost = r.Cost,
        initial = Summary(r.Initial),
        attempts = r.Attempts.Select(a => new { remedy = a.Remedy, description = a.Description, accepted = a.Accepted, trial = Summary(a.Trial) }),
        final = Summary(r.Final),
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });

    private static object Summary(TrialResult t) => new
    {
        model = t.Config.Model,
        gradient_ratio = t.Diagnosis.GradientRatio,
        loss = t.FinalLoss,
        test_accuracy = t.TestAccuracy,
        test_loss = t.Result.Epochs.LastOrDefault()?.TestLoss ?? double.NaN,
        steps = t.Steps,
        problems = t.Diagnosis.Problems.Select(p => p.Summary),
    };
}
