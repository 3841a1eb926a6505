using System.CommandLine;
using GradFlow.Reports;

namespace GradFlow.Cli;

/// <summary><c>gradflow report RUNDIR [RUNDIR...] [--out FILE]</c>: a self-contained HTML report of a run, or a comparison of several.</summary>
internal static class ReportCommand
{
    // the arguments and options of 'report'; one line each
    public static readonly Argument<string[]> RunDirs = new("RUNDIR") { Description = "run directories: one for its report, several for a comparison", Arity = ArgumentArity.OneOrMore };
    public static readonly Option<string?> Out = Opt.String("out", "the HTML file (default RUNDIR/report.html, or ./comparison.html for several)", "FILE");

    public static Command Declare()
    {
        var command = new Verb("report", "self-contained HTML report of a run directory, or a comparison of several",
            "With one run directory, writes RUNDIR/report.html: configuration, diagnosis, loss and accuracy curves, the gradient-flow chart per layer " +
            "(log scale) at the start, middle and end, a layer x step heatmap of the backpropagated signal (non-finite cells in magenta), saturation, " +
            "dead units and update ratios per layer. With several, writes one comparison page. One self-contained file: inline CSS and SVG, a small " +
            "inline script for the values on hover, no network. Exit code: 0 written, 1 error (e.g. a folder that is no run directory), 2 usage.")
        { RunDirs, Out };
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        var dirs = o.GetValue(RunDirs)!;
        string path = dirs.Length == 1
            ? ReportWriter.Write(dirs[0], o.GetValue(Out))
            : ReportWriter.WriteComparison(dirs.Select(d => (Path.GetFileName(Path.GetFullPath(d)), d)).ToArray(), o.GetValue(Out) ?? "comparison.html");
        stdout.WriteLine($"report: {Path.GetFullPath(path)}");
        return 0;
    }
}
