using GradFlow.Diagnostics;

namespace GradFlow.Cli;

/// <summary><c>gradflow diagnose</c>: preflight or a short monitored trial; a table and a verdict, or JSON. Exit 0 healthy, 3 problem found.</summary>
internal static class DiagnoseCommand
{
    public const string Help = """
        Usage: gradflow diagnose [--preflight | --steps N] [train options] [--json] [--out DIR]

        Measures the gradient flow of a model spec and says whether gradients vanish or explode,
        where, why, and what to change. --preflight: one forward and backward pass on one batch,
        before any training. Otherwise a trial of --steps optimiser steps (default 200) with the
        monitor sampling every --every steps (default 10). Takes every option of 'gradflow train'
        (--model, --data, --lr, ...). --json prints diagnosis.json's schema (docs/diagnosis.md).
        --out DIR keeps the trial's run directory (metrics.jsonl, diagnosis.json).
        Exit code: 0 healthy, 3 problem found, 1 error, 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("diagnose", args, [.. TrainCommand.ValuedOptions.Where(n => n is not ("resume" or "out" or "tensorboard")), "steps", "every", "out"], ["json", "preflight", "no-standardize", "stream"]);
        var config = TrainCommand.BuildConfig(o, null);
        Diagnosis diagnosis;
        MonitorSample? shown;
        if (o.Has("preflight"))
        {
            if (o.Has("steps")) throw new UsageException("gradflow diagnose: --preflight and --steps exclude each other.");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            (diagnosis, shown) = Trials.Preflight(config);
            if (!o.Has("json")) stdout.WriteLine($"preflight: one forward and backward pass ({sw.ElapsedMilliseconds} ms with model and data set-up)");
        }
        else
        {
            int steps = o.Int("steps") ?? 200;
            if (steps < 1) throw new UsageException("gradflow diagnose: --steps must be at least 1.");
            var trial = Trials.Run(config, steps, o.Int("every") ?? 10, runDirectory: o.String("out"));
            diagnosis = trial.Diagnosis;
            shown = trial.Samples.Count > 0 ? trial.Samples[^1] : null;
            if (!o.Has("json")) stdout.WriteLine($"trial: {trial.Steps} steps, {trial.Samples.Count} monitor samples");
        }
        if (o.Has("json")) stdout.WriteLine(DiagnosisJson.Serialize(diagnosis));
        else
        {
            stdout.WriteLine($"model: {config.DescribeModel()}");
            if (shown is not null) stdout.WriteLine(DiagnosisView.LayerTable(shown));
            stdout.WriteLine();
            stdout.WriteLine(DiagnosisView.Verdict(diagnosis));
        }
        return diagnosis.Healthy ? 0 : 3;
    }
}
