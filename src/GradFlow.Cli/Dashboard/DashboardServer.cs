using System.Net;
using System.Reflection;
using System.Text.Json;
using GradFlow.Diagnostics;
using GradFlow.Training;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GradFlow.Cli.Dashboard;

/// <summary>
/// The live dashboard (<c>gradflow serve</c>, <c>gradflow train --serve</c>): an ASP.NET Core server on
/// localhost that lists the runs under its folders and streams each run's files to the browser as
/// server-sent events — the metrics lines as they are appended, a live diagnosis of the samples so far,
/// and <c>diagnosis.json</c> when the run writes it. It reads only the run directories, so it follows a
/// run written by another process as well as its own. The page, script and style are embedded in this
/// assembly: nothing is loaded from the network.
/// </summary>
internal sealed class DashboardServer : IAsyncDisposable
{
    /// <summary>How often an open event stream looks for new lines.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    private readonly WebApplication _app;
    private readonly IReadOnlyList<string> _roots;

    private DashboardServer(WebApplication app, IReadOnlyList<string> roots)
    {
        _app = app;
        _roots = roots;
    }

    /// <summary>The address the server listens on, e.g. <c>http://127.0.0.1:6070/</c>.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Starts serving the runs under <paramref name="roots"/> (run directories, or folders holding them) on <paramref name="host"/>:<paramref name="port"/> (0: any free port).</summary>
    public static async Task<DashboardServer> StartAsync(IReadOnlyList<string> roots, IPAddress host, int port, CancellationToken cancellation = default)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(DashboardServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>(); // Ctrl+C and SIGTERM stay the command's: they stop training, not only the server
        builder.WebHost.ConfigureKestrel(k => k.Listen(host, port));
        var app = builder.Build();
        var server = new DashboardServer(app, roots.Select(Root).ToArray());
        server.Map();
        await app.StartAsync(cancellation);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Address = new Uri(address.EndsWith('/') ? address : address + "/");
        return server;
    }

    /// <summary>Serves until Ctrl+C (or <paramref name="cancellation"/>), then stops the server.</summary>
    public void ServeUntilCtrlC(CancellationToken cancellation)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            stop.Token.WaitHandle.WaitOne();
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>The run directories under the roots: each root that holds a run, and the runs in its subfolders (two levels down), sorted by path.</summary>
    public IReadOnlyList<string> Runs()
    {
        var runs = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var root in _roots)
        {
            if (!System.IO.Directory.Exists(root)) continue;
            if (RunDirectory.HoldsRun(root)) runs.Add(root);
            foreach (var sub in System.IO.Directory.EnumerateDirectories(root))
            {
                if (RunDirectory.HoldsRun(sub)) runs.Add(sub);
                foreach (var sub2 in SafeSubdirectories(sub))
                    if (RunDirectory.HoldsRun(sub2)) runs.Add(sub2);
            }
        }
        return [.. runs];
    }

    private static IEnumerable<string> SafeSubdirectories(string dir)
    {
        try
        {
            return System.IO.Directory.GetDirectories(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>A folder to serve as a root: its full path without a trailing separator (a root given as runs/a/ had an empty name).</summary>
    private static string Root(string dir) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));

    /// <summary>The id of the run a root folder holds itself (<c>train --serve --out DIR</c>): the folder's name.</summary>
    internal static string OwnRunId(string dir) => Path.GetFileName(Root(dir));

    /// <summary>A short name for a run: its path relative to the root it was found under (a root's own run: its folder's name).</summary>
    private string Name(string run)
    {
        foreach (var root in _roots)
            if (run == root) return Path.GetFileName(run);
            else if (run.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return Path.GetRelativePath(root, run).Replace('\\', '/');
        return run;
    }

    /// <summary>Every run with its id: its <see cref="Name"/>, and where two runs share one (runs/a and other/a served together, the
    /// second could not be opened) the later ones with " (2)", " (3)" ….</summary>
    public IReadOnlyList<(string Id, string Run)> Ids()
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var result = new List<(string, string)>();
        foreach (var run in Runs())
        {
            string name = Name(run);
            int n = seen[name] = seen.GetValueOrDefault(name) + 1;
            result.Add((n == 1 ? name : $"{name} ({n})", run));
        }
        return result;
    }

    private void Map()
    {
        foreach (var (file, type) in new[] { ("index.html", "text/html; charset=utf-8"), ("app.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8") })
        {
            var bytes = Asset(file);
            _app.MapGet(file == "index.html" ? "/" : "/" + file, () => Results.Bytes(bytes, type));
        }
        _app.MapGet("/api/runs", () => Results.Json(Ids().Select(x => (x.Id, x.Run, Stop: RunDirectory.EndStop(x.Run))).Select(x => new
        {
            id = x.Id,
            path = x.Run,
            updated = LastWrite(x.Run),
            finished = Finished(x.Run, x.Stop),
            stop = x.Stop, // why it stopped (Completed, MaxSteps, Cancelled, …), null while it has not ended
        })));
        _app.MapGet("/api/events", Events);
    }

    /// <summary>
    /// Whether the run has finished: its metrics file ends with the end line a run writes when it stops (<paramref name="stop"/>, its
    /// reason, from <see cref="RunDirectory.EndStop"/>), monitored or not (this read diagnosis.json, which only a monitored run writes:
    /// an unmonitored run was never "done", and a resumed one was "done" while it trained). A run directory written before the end line
    /// existed: a diagnosis.json newer than its metrics.
    /// </summary>
    internal static bool Finished(string run, string? stop)
    {
        if (stop is not null) return true;
        string diagnosis = Path.Combine(run, "diagnosis.json"), metrics = Path.Combine(run, "metrics.jsonl");
        return File.Exists(diagnosis) && (!File.Exists(metrics) || File.GetLastWriteTimeUtc(diagnosis) >= File.GetLastWriteTimeUtc(metrics));
    }

    private static DateTime LastWrite(string run)
    {
        var metrics = Path.Combine(run, "metrics.jsonl");
        return File.Exists(metrics) ? File.GetLastWriteTimeUtc(metrics) : System.IO.Directory.GetLastWriteTimeUtc(run);
    }

    private static byte[] Asset(string name)
    {
        using var stream = typeof(DashboardServer).Assembly.GetManifestResourceStream("GradFlow.Cli.Dashboard." + name)
            ?? throw new InvalidOperationException($"dashboard asset {name} is not embedded in {typeof(DashboardServer).Assembly.GetName().Name}.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>
    /// <c>GET /api/events?run=ID</c>: server-sent events of one run — <c>config</c> (config.json), <c>lines</c>
    /// (a JSON array of new metrics lines), <c>verdict</c> (<c>{"final":bool,"diagnosis":…}</c>: the diagnosis of
    /// the samples so far while the run trains, diagnosis.json once written). A run not listed is a 404.
    /// </summary>
    private async Task Events(HttpContext context)
    {
        string id = context.Request.Query["run"].ToString();
        var run = Ids().FirstOrDefault(x => x.Id == id).Run;
        if (run is null)
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsync($"no run '{id}' under {string.Join(", ", _roots)}", context.RequestAborted);
            return;
        }
        context.Response.Headers.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var cancel = context.RequestAborted;
        var tail = new RunTail(run);
        var config = tail.Config();
        // config.json as written, when it is one JSON object (a damaged one made the page fail to parse it)
        async Task SendConfig()
        {
            string path = Path.Combine(run, "config.json");
            string? text = File.Exists(path) ? File.ReadAllText(path).ReplaceLineEndings(" ") : null;
            if (text is not null && RunTail.IsJsonObject(text)) await Send(context, "config", text, cancel);
        }
        await SendConfig();
        int diagnosedSamples = -1;
        bool final = false;
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                var lines = tail.ReadNewLines();
                if (tail.TakeRestart())
                {
                    // the run was started over (--force): the page drops what it has, and the new run's config and verdicts follow
                    await Send(context, "reset", "{}", cancel);
                    config = tail.Config();
                    await SendConfig();
                    (final, diagnosedSamples) = (false, -1);
                }
                if (lines.Count > 0) await Send(context, "lines", "[" + string.Join(",", lines) + "]", cancel);
                if (tail.ReadNewDiagnosis() is { } diagnosis)
                {
                    final = true;
                    await Send(context, "verdict", $"{{\"final\":true,\"diagnosis\":{diagnosis.ReplaceLineEndings(" ")}}}", cancel);
                }
                else if (!final && config is not null && tail.Samples.Count > 0 && tail.Samples.Count != diagnosedSamples)
                {
                    diagnosedSamples = tail.Samples.Count;
                    // judged as the run will judge itself (RunWatch.Diagnose), with the facts its watch line gives
                    var live = Diagnoser.Diagnose(tail.Samples, config, predictedUpdateRatio: tail.PredictedUpdateRatio, chanceLoss: tail.ChanceLoss, zeroOutputLoss: tail.ZeroOutputLoss, lossFloor: tail.LossFloor, linearBaseline: tail.LinearBaseline);
                    await Send(context, "verdict", $"{{\"final\":false,\"diagnosis\":{DiagnosisJson.Serialize(live).ReplaceLineEndings(" ")}}}", cancel);
                }
                await Task.Delay(PollInterval, cancel);
            }
        }
        catch (OperationCanceledException)
        {
            // the browser closed the page
        }
    }

    private static async Task Send(HttpContext context, string name, string data, CancellationToken cancel)
    {
        await context.Response.WriteAsync($"event: {name}\ndata: {data}\n\n", cancel);
        await context.Response.Body.FlushAsync(cancel);
    }
}

/// <summary>A host lifetime that leaves signals alone: the command that started the dashboard decides when it stops.</summary>
internal sealed class CommandLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
