using System.CommandLine;
using GradFlow.Diagnostics;

namespace GradFlow.Cli;

/// <summary><c>gradflow diagnose</c>: preflight or a short monitored trial; a table and a verdict, or JSON. Exit 0 healthy, 3 problem found.</summary>
internal static class DiagnoseCommand
{
    // the options of 'diagnose' beyond the config's (TrainOptions.Config); one line each
    public static readonly Option<bool> Preflight = Opt.Flag("preflight", "one forward and backward pass on one batch, before any training");
    public static readonly Option<int?> Steps = Opt.Int("steps", "optimiser steps of the trial (default 200)");
    public static readonly Option<int?> Every = Opt.Int("every", "monitor sample every N steps of the trial (default 10, or more often in a trial too short for 8 samples at 10)");
    public static readonly Option<bool> Json = Opt.Flag("json", "print diagnosis.json's schema (docs/diagnosis.md)");
    public static readonly Option<string?> Out = Opt.String("out", "keep the trial's run directory (metrics.jsonl, diagnosis.json)", "DIR");
    public static readonly Option<bool> Force = Opt.Flag("force", "with --out: replace the run already in DIR (its own files only; nothing else in DIR is touched)");

    public static Command Declare()
    {
        var command = new Verb("diagnose", "measure gradient flow, detect vanishing/exploding gradients, say why and what to change",
            "Measures the gradient flow of a model and says whether gradients vanish or explode, where, why, and what to change: " +
            "a preflight (--preflight) or a short monitored trial. Takes every option of 'gradflow train' that describes the config. " +
            "Exit code: 0 healthy, 3 problem found, 1 error, 2 usage.");
        foreach (var o in TrainOptions.Config) command.Options.Add(o);
        foreach (Option o in new Option[] { Preflight, Steps, Every, Json, Out, Force }) command.Options.Add(o);
        command.Validators.Add(r =>
        {
            if (r.Has(Preflight) && r.Has(Steps)) r.AddError("--preflight and --steps exclude each other.");
            else if (r.Has(Preflight) && (r.Has(Out) || r.Has(Every))) r.AddError("--out and --every go with a trial; --preflight runs one pass and writes nothing.");
            else if (r.Has(Force) && !r.Has(Out)) r.AddError("--force goes with --out (it replaces the run in that directory).");
            else if (r.Valid(Steps) is < 1) r.AddError("--steps must be at least 1.");
        });
        command.EveryOrMonitorEvery(Every);
        command.NoFileFor(Out);
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        if (o.GetValue(Out) is { } dir && GradFlow.Training.RunDirectory.HoldsRun(dir) && !o.Has(Force))
            throw new UsageException($"gradflow diagnose: {dir} already holds a run (config.json, metrics.jsonl). Use --force to replace it " +
                "(its own files only), or another --out.");
        var config = TrainOptions.BuildConfig(o, null);
        Diagnosis diagnosis;
        MonitorSample? shown;
        if (o.Has(Preflight))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            (diagnosis, shown) = Trials.Preflight(config);
            if (!o.Has(Json)) stdout.WriteLine($"preflight: one forward and backward pass ({sw.ElapsedMilliseconds} ms with model and data set-up)");
        }
        else
        {
            int steps = o.GetValue(Steps) ?? 200;
            int? every = o.GetValue(Every) ?? o.GetValue(TrainOptions.MonitorEvery); // the trial's samples: --every, or the config's option
            var trial = Trials.Run(config, steps, every ?? 10, runDirectory: o.GetValue(Out), exactEvery: every is not null);
            diagnosis = trial.Diagnosis;
            shown = trial.Samples.Count > 0 ? trial.Samples[^1] : null;
            // a budget no longer than the trial makes the trial the whole run: say so, since the verdict is then on the run's end
            string whole = trial.WholeRunSteps is not null
                ? $" (the whole configured run: {config.Epochs} epochs{(config.MaxSteps is { } max ? $", at most {max} steps" : "")})" : "";
            if (!o.Has(Json)) stdout.WriteLine($"trial: {trial.Steps} steps{whole}, {trial.Samples.Count} monitor samples");
        }
        if (o.Has(Json)) stdout.WriteLine(DiagnosisJson.Serialize(diagnosis));
        else
        {
            stdout.WriteLine($"model: {config.DescribeModel()}");
            if (shown is not null) DiagnosisView.WriteLayerTable(stdout, shown);
            stdout.WriteLine();
            DiagnosisView.WriteVerdict(stdout, diagnosis);
        }
        return diagnosis.Healthy ? 0 : 3;
    }
}
