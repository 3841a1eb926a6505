using System.Net;
using GradFlow.Cli.Dashboard;

namespace GradFlow.Cli;

/// <summary><c>gradflow serve [RUNDIR ...] [--port P] [--host ADDRESS]</c>: the live dashboard of the runs under the given folders.</summary>
internal static class ServeCommand
{
    public const int DefaultPort = 6070;

    public const string Help = """
        Usage: gradflow serve [RUNDIR ...] [--port P] [--host ADDRESS]

        A local web dashboard of the runs under the given folders (default: the current folder): each
        folder that holds a run (config.json, metrics.jsonl) and the runs in its subfolders, two levels
        down. For a run that is training, the page follows its files within a second: loss and accuracy,
        the backpropagated signal per layer, the layer x step heatmap growing as samples arrive, the
        through-time heatmap of recurrent models, and the verdicts as they appear; tick runs to compare
        them. Charts show values on hover, zoom by dragging (double-click resets) and switch to a log
        scale. Works for a run written by another process ('gradflow train --out DIR --monitor').
        Nothing is loaded from the network. Stop with Ctrl+C.

          --port P          port (default 6070; 0: any free port, printed at start)
          --host ADDRESS    address to listen on (default 127.0.0.1: this machine only)
        Exit code: 0 stopped, 1 error (e.g. the port is taken), 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var dirs = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        var o = new CliOptions("serve", args.Skip(dirs.Length).ToArray(), ["port", "host"], []);
        var (host, port) = Endpoint(o);
        foreach (var d in dirs)
            if (!Directory.Exists(d)) throw new UsageException($"gradflow serve: {d} is not a folder.");
        string[] roots = dirs.Length == 0 ? ["."] : dirs;
        var server = DashboardServer.StartAsync(roots, host, port, cancellation).GetAwaiter().GetResult();
        stdout.WriteLine($"dashboard: {server.Address} (runs under {string.Join(", ", roots.Select(Path.GetFullPath))}; Ctrl+C stops)");
        stdout.Flush();
        server.ServeUntilCtrlC(cancellation);
        return 0;
    }

    /// <summary>--host and --port, checked.</summary>
    internal static (IPAddress Host, int Port) Endpoint(CliOptions o)
    {
        int port = o.Int("port") ?? DefaultPort;
        if (port is < 0 or > 65535) throw new UsageException($"gradflow {o.Command}: --port {port} is not a port (0-65535; 0 picks a free one).");
        var hostText = o.String("host") ?? "127.0.0.1";
        if (!IPAddress.TryParse(hostText, out var host))
            host = hostText == "localhost" ? IPAddress.Loopback : throw new UsageException($"gradflow {o.Command}: --host '{hostText}' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface).");
        return (host, port);
    }
}
