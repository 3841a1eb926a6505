using System.CommandLine;
using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow repair</c>: short trials, diagnosis, remedies, until healthy; prints and saves every attempt and the final config.</summary>
internal static class RepairCommand
{
    // the options of 'repair' beyond the config's (TrainOptions.Config); one line each
    public static readonly Option<int?> TrialSteps = Opt.Int("trial-steps", "optimiser steps of each trial (default 200)");
    public static readonly Option<int?> Attempts = Opt.Int("attempts", "remedies to try at most (default 4)");
    public static readonly Option<int?> Jobs = Opt.Jobs(
        "candidate remedies tried at once on threads (the attempts and result are the same for any N; under mpirun each process runs N)");
    public static readonly Option<string?> Out = Opt.String("out",
        "save repair.json (every attempt) and config.json (the repaired config, accepted by 'gradflow train --config DIR/config.json')", "DIR");

    public static Command Declare()
    {
        var command = new Verb("repair", "apply remedies in short trials until the gradient flow is healthy",
            "Runs a short monitored trial of the config, diagnoses it, applies the best remedy (the faulty layers first), and runs again on the " +
            "same seeds, until the run is healthy or --attempts remedies were tried. Prints every attempt with the metrics before and after, and the " +
            "cost as a multiple of one full training run. With --jobs N (or under 'mpirun -np N') the next candidate remedies run at once and are " +
            "taken in the order one worker would try them, so the attempts and the result are the same. Exit code: 0 when the final config is healthy, 3 otherwise, 1 error, 2 usage.");
        foreach (var o in TrainOptions.Config) command.Options.Add(o);
        foreach (Option o in new Option[] { TrialSteps, Attempts, Jobs, Out }) command.Options.Add(o);
        command.Validators.Add(r =>
        {
            if (r.Valid(Attempts) is < 1) r.AddError("--attempts must be at least 1.");
        });
        command.TrialStepsForTheTrendRules(TrialSteps);
        command.NoFileFor(Out);
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        var world = Communicators.FromEnvironment();
        if (world.Rank > 0) stdout = TextWriter.Null;
        // repair's own output (config.json, repair.json) may be replaced; a training run's may not (its checkpoints would no longer fit its config)
        if (o.GetValue(Out) is { } outDir && (File.Exists(Path.Combine(outDir, "metrics.jsonl"))
            || Directory.Exists(Path.Combine(outDir, "checkpoints")) && Directory.EnumerateFiles(Path.Combine(outDir, "checkpoints"), "epoch-*.safetensors").Any()))
            throw new UsageException($"gradflow repair: {outDir} holds a training run (metrics.jsonl or checkpoints), whose config.json the repaired config " +
                "would replace; choose another --out.");
        var config = TrainOptions.BuildConfig(o, null);
        int steps = o.GetValue(TrialSteps) ?? 200, attempts = o.GetValue(Attempts) ?? 4;
        // the trials' samples: --monitor-every as given, as diagnose's trial takes it (repair listed it and used its own interval)
        var result = Run(config, steps, attempts, stdout, jobs: o.GetValue(Jobs) ?? 1, world: world, every: o.GetValue(TrainOptions.MonitorEvery));
        if (o.GetValue(Out) is { } dir && world.Rank == 0)
        {
            Directory.CreateDirectory(dir);
            AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), result.Config.ToJson() + "\n");
            AtomicFile.WriteAllText(Path.Combine(dir, "repair.json"), ToJson(result));
            stdout.WriteLine($"saved: {Path.Combine(dir, "config.json")} (gradflow train --config accepts it) and repair.json");
        }
        return result.Healthy ? 0 : 3;
    }

    /// <summary>Runs the repair, printing each step of it.</summary>
    internal static RepairResult Run(TrainingConfig config, int steps, int attempts, TextWriter stdout, DataBundle? data = null, int jobs = 1, ICommunicator? world = null,
        int? every = null)
    {
        stdout.WriteLine($"repairing: {config.DescribeModel()}");
        stdout.WriteLine($"trials of {steps} steps (at most each config's whole run) on seed {config.Seed}");
        var result = Repairer.Repair(config, steps, attempts, data, progress: a =>
            stdout.WriteLine($"  tried [{a.Remedy}] {a.Description}: {Line(a.Trial)} -> {(a.Accepted ? "kept" : "rejected")}"), jobs: jobs, world: world, every: every);
        stdout.WriteLine();
        stdout.WriteLine($"before: {Line(result.Initial)}");
        DiagnosisView.WriteVerdict(stdout, result.Initial.Diagnosis);
        stdout.WriteLine();
        stdout.WriteLine($"after:  {Line(result.Final)}");
        DiagnosisView.WriteVerdict(stdout, result.Final.Diagnosis);
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
        $"gradient ratio {t.Diagnosis.GradientRatio:E1}, loss {t.FinalLoss:F3}, {(double.IsNaN(t.TestAccuracy) ? $"test loss {t.Result.Epochs.LastOrDefault()?.TestLoss ?? double.NaN:F4}" : $"test accuracy {t.TestAccuracy:P1}")}, {(t.Diagnosis.Healthy ? (t.Diagnosis.TrendNeedsSamples is null ? "healthy" : "not judged (too few samples)") : string.Join(", ", t.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind))))}");

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
        samples = t.Samples.Count,
        problems = t.Diagnosis.Problems.Select(p => p.Summary),
    };
}
