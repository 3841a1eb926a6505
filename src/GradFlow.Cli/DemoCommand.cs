using System.Globalization;
using GradFlow.Data;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// <c>gradflow demo</c>: the vanishing gradient problem, measured, explained and repaired, end to end
/// in about two minutes on two cores: preflight of a 20-layer sigmoid network, diagnosis, automatic
/// repair, then the same training budget before and after with the monitor on, and the reports.
/// </summary>
internal static class DemoCommand
{
    public const string Help = """
        Usage: gradflow demo [--out DIR] [--data-dir DIR] [--steps N] [--seed N]

        A 20-layer sigmoid network on Fashion-MNIST (or, when the data set is not installed, a synthetic
        784-input task): preflight, diagnosis (vanishing gradient: where and why), automatic repair in
        short trials, then the same training budget (--steps, default 600) for the original and the
        repaired model with the gradient monitor on. Writes both run directories, their reports and a
        comparison to DIR (default ./gradflow-demo).
        """;

    public const string Model = "mlp 784-256x20-10 act=sigmoid init=xavier-uniform";

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, Action<string, string, string>? writeReports = null)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("demo", args, ["out", "data-dir", "steps", "seed"], []);
        string outDir = Path.GetFullPath(o.String("out") ?? "gradflow-demo");
        int steps = o.Int("steps") ?? 600;
        if (steps < 10) throw new UsageException("gradflow demo: --steps must be at least 10.");
        var config = new TrainingConfig
        {
            Model = Model,
            Data = "fashion-mnist",
            DataDir = o.String("data-dir"),
            Optimizer = OptimizerKind.Adam,
            LearningRate = 1e-3,
            Epochs = 10,
            BatchSize = 128,
            Seed = o.ULong("seed") ?? 0,
            TestLimit = 5000,
        };
        try
        {
            DataResolver.ResolveFashionMnist(config.DataDir);
        }
        catch (FileNotFoundException)
        {
            stdout.WriteLine("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); using a synthetic 784-input, 10-class teacher task instead.");
            config = config with { Data = "teacher", DataDir = null, TestLimit = null };
        }
        Heading(stdout, "1. The model");
        stdout.WriteLine($"{Model}: 20 hidden sigmoid layers of 256 units, Xavier initialisation, Adam, batch 128, data {config.Data}.");

        Heading(stdout, "2. Preflight: one forward and backward pass, before any training");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (preflight, sample) = Trials.Preflight(config);
        stdout.WriteLine(DiagnosisView.LayerTable(sample));
        stdout.WriteLine();
        stdout.WriteLine(DiagnosisView.Verdict(preflight));
        stdout.WriteLine($"({sw.ElapsedMilliseconds} ms including data and model set-up)");

        Heading(stdout, "3. Automatic repair: short trials, one remedy at a time, same seed");
        var repair = RepairCommand.Run(config, steps: 150, attempts: 4, stdout);

        Heading(stdout, $"4. The same budget ({steps} steps) before and after, monitored");
        Directory.CreateDirectory(outDir);
        var before = Trials.Run(config, steps, every: 10, runDirectory: Path.Combine(outDir, "before"));
        stdout.WriteLine($"before: {RepairCommand.Line(before)}");
        var after = Trials.Run(repair.Config, steps, every: 10, runDirectory: Path.Combine(outDir, "after"));
        stdout.WriteLine($"after:  {RepairCommand.Line(after)}");
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"test accuracy {before.TestAccuracy:P1} -> {after.TestAccuracy:P1}; gradient ratio {before.Diagnosis.GradientRatio:E1} -> {after.Diagnosis.GradientRatio:E1}"));
        AtomicFile.WriteAllText(Path.Combine(outDir, "repaired-config.json"), repair.Config.ToJson() + "\n");

        Heading(stdout, "5. Files");
        if (writeReports is not null)
        {
            writeReports(Path.Combine(outDir, "before"), Path.Combine(outDir, "after"), Path.Combine(outDir, "comparison.html"));
            stdout.WriteLine($"reports: {Path.Combine(outDir, "before", "report.html")}, {Path.Combine(outDir, "after", "report.html")}, {Path.Combine(outDir, "comparison.html")}");
        }
        stdout.WriteLine($"run directories: {Path.Combine(outDir, "before")} and {Path.Combine(outDir, "after")} (metrics.jsonl, diagnosis.json)");
        stdout.WriteLine($"repaired config: {Path.Combine(outDir, "repaired-config.json")} (gradflow train --config accepts it)");
        return 0;
    }

    private static void Heading(TextWriter w, string title)
    {
        w.WriteLine();
        w.WriteLine(title);
        w.WriteLine(new string('-', title.Length));
    }
}
