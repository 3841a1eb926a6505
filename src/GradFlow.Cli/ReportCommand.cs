using GradFlow.Reports;

namespace GradFlow.Cli;

/// <summary><c>gradflow report RUNDIR [RUNDIR...] [--out FILE]</c>: a self-contained HTML report of a run, or a comparison of several.</summary>
internal static class ReportCommand
{
    public const string Help = """
        Usage: gradflow report RUNDIR [RUNDIR ...] [--out FILE]

        With one run directory, writes RUNDIR/report.html: configuration, diagnosis, loss and accuracy
        curves, the gradient-flow chart per layer (log scale) at the start, middle and end, a layer x step
        heatmap of the backpropagated signal (non-finite cells in magenta), saturation, dead units and
        update ratios per layer. With several, writes one comparison page (default ./comparison.html).
        One self-contained file: inline CSS and SVG, a small inline script for the values on hover, no network.
        Exit code: 0 written, 1 error (e.g. a folder that is no run directory), 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"] or [])
        {
            stdout.Write(Help);
            return args.Count == 0 ? 2 : 0;
        }
        var dirs = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        var o = new CliOptions("report", args.Skip(dirs.Length).ToArray(), ["out"], []);
        if (dirs.Length == 0) throw new UsageException("gradflow report: give at least one run directory.");
        string path = dirs.Length == 1
            ? ReportWriter.Write(dirs[0], o.String("out"))
            : ReportWriter.WriteComparison(dirs.Select(d => (Path.GetFileName(Path.GetFullPath(d)), d)).ToArray(), o.String("out") ?? "comparison.html");
        stdout.WriteLine($"report: {Path.GetFullPath(path)}");
        return 0;
    }
}
