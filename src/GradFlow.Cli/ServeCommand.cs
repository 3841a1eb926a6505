using System.CommandLine;
using System.Net;
using GradFlow.Cli.Dashboard;

namespace GradFlow.Cli;

/// <summary><c>gradflow serve [RUNDIR ...] [--port P] [--host ADDRESS]</c>: the live dashboard of the runs under the given folders.</summary>
internal static class ServeCommand
{
    public const int DefaultPort = 6070;

    // the arguments and options of 'serve' ('train --serve' takes --port and --host too); one line each
    public static readonly Argument<string[]> RunDirs = new("RUNDIR") { Description = "folders whose runs are shown (default: the current folder)", Arity = ArgumentArity.ZeroOrMore };
    public static readonly Option<int?> Port = Opt.Int("port", "port (default 6070; 0: any free port, printed at start)", "P");
    public static readonly Option<string?> Host = Opt.String("host", "address to listen on (default 127.0.0.1: this machine only)", "ADDRESS");

    public static Command Declare()
    {
        var command = new Verb("serve", "live dashboard of the runs under a folder, in the browser (localhost)",
            "A local web dashboard of the runs under the given folders: each folder that holds a run (config.json, metrics.jsonl) and the runs in " +
            "its subfolders, two levels down. For a run that is training, the page follows its files within a second: loss and accuracy, the " +
            "backpropagated signal per layer, the layer x step heatmap growing as samples arrive, the through-time heatmap of recurrent models, and " +
            "the verdicts as they appear; tick runs to compare them. Charts show values on hover, zoom by dragging (double-click resets) and switch " +
            "to a log scale. Works for a run written by another process ('gradflow train --out DIR --monitor'). Nothing is loaded from the network. " +
            "Stop with Ctrl+C. Exit code: 0 stopped, 1 error, 2 usage (e.g. the port is taken).")
        { RunDirs, Port, Host };
        command.SetAction(r => Run(r, r.Out(), CancellationToken.None));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout, CancellationToken cancellation)
    {
        var dirs = o.GetValue(RunDirs) ?? [];
        foreach (var d in dirs)
            if (!Directory.Exists(d)) throw new UsageException($"gradflow serve: {d} is not a folder.");
        string[] roots = dirs.Length == 0 ? ["."] : dirs;
        var server = Start(o, roots, cancellation);
        stdout.WriteLine($"dashboard: {server.Address} (runs under {string.Join(", ", roots.Select(Path.GetFullPath))}; Ctrl+C stops)");
        stdout.Flush();
        server.ServeUntilCtrlC(cancellation);
        return 0;
    }

    /// <summary>
    /// Starts the dashboard of <paramref name="roots"/> on --host and --port (serve, train --serve). A port another program listens on
    /// is a usage error naming it (train --serve found out only after loading the data, and left an empty run directory behind).
    /// </summary>
    internal static DashboardServer Start(ParseResult o, IReadOnlyList<string> roots, CancellationToken cancellation)
    {
        var (host, port) = Endpoint(o);
        try
        {
            return DashboardServer.StartAsync(roots, host, port, cancellation).GetAwaiter().GetResult();
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            throw new UsageException($"gradflow {o.Verb()}: --port {port} is taken on {host} (another program listens there); " +
                "choose another port, or --port 0 for any free one.");
        }
    }

    /// <summary>--host and --port, checked.</summary>
    internal static (IPAddress Host, int Port) Endpoint(ParseResult o)
    {
        int port = o.GetValue(Port) ?? DefaultPort;
        if (port is < 0 or > 65535) throw new UsageException($"gradflow {o.Verb()}: --port {port} is not a port (0-65535; 0 picks a free one).");
        var hostText = o.GetValue(Host) ?? "127.0.0.1";
        if (!IPAddress.TryParse(hostText, out var host))
            host = hostText == "localhost" ? IPAddress.Loopback : throw new UsageException($"gradflow {o.Verb()}: --host '{hostText}' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface).");
        return (host, port);
    }
}
