using System.Net;
using System.Text;
using System.Text.Json;
using GradFlow.Cli.Dashboard;
using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Dashboard;

/// <summary>The dashboard's server without a browser: the run list, the event stream of a run written by someone else, the embedded page.</summary>
public sealed class DashboardServerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-serve-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string MonitoredRun(string name)
    {
        var dir = Path.Combine(_dir, "runs", name);
        Trials.Run(new TrainingConfig { Model = "mlp 2-8x3-2 act=tanh", Data = "circles", Epochs = 1, Threads = 1 }, steps: 20, every: 5, runDirectory: dir,
            cancellation: TestContext.Current.CancellationToken);
        return dir;
    }

    [Fact]
    public async Task Server_ListsRunsAndStreamsLinesAppendedByAnotherWriter()
    {
        var run = MonitoredRun("a");
        MonitoredRun("b");
        Directory.CreateDirectory(Path.Combine(_dir, "runs", "not-a-run"));
        await using var server = await DashboardServer.StartAsync([Path.Combine(_dir, "runs")], IPAddress.Loopback, 0, TestContext.Current.CancellationToken);
        Assert.Equal("127.0.0.1", server.Address.Host);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
        var cancel = TestContext.Current.CancellationToken;

        using var runs = JsonDocument.Parse(await http.GetStringAsync("api/runs", cancel));
        Assert.Equal(["a", "b"], runs.RootElement.EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToArray());

        Assert.Contains("GradFlow dashboard", await http.GetStringAsync("", cancel));
        var script = await http.GetStringAsync("app.js", cancel);
        Assert.DoesNotContain("http://", script.Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal)); // nothing from the network
        Assert.DoesNotContain("https://", script);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("api/events?run=..%2F..%2Fetc", cancel)).StatusCode);

        using var response = await http.GetAsync("api/events?run=a", HttpCompletionOption.ResponseHeadersRead, cancel);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel), Encoding.UTF8);
        var written = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        var received = new List<string>();
        bool verdict = false;
        async Task ReadUntil(Func<bool> done)
        {
            string? eventName = null;
            while (!done())
            {
                var line = await reader.ReadLineAsync(cancel) ?? throw new EndOfStreamException("the event stream ended");
                if (line.StartsWith("event: ", StringComparison.Ordinal)) eventName = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && eventName == "lines")
                    received.AddRange(JsonDocument.Parse(line[6..]).RootElement.EnumerateArray().Select(e => e.GetRawText()));
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && eventName == "verdict") verdict = true;
            }
        }
        await ReadUntil(() => received.Count >= written.Length && verdict);
        Assert.Equal(written.Length, received.Count);
        for (int i = 0; i < written.Length; i++) Assert.Equal(JsonDocument.Parse(written[i]).RootElement.GetProperty("type").GetString(), JsonDocument.Parse(received[i]).RootElement.GetProperty("type").GetString());

        // another writer appends a sample, first half a line (as a crash or a slow write leaves it), then the rest
        var sample = File.ReadLines(Path.Combine(run, "metrics.jsonl")).First(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal))
            .Replace("\"step\":0,", "\"step\":777,", StringComparison.Ordinal);
        using (var w = new FileStream(Path.Combine(run, "metrics.jsonl"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite))
        {
            var bytes = Encoding.UTF8.GetBytes(sample + "\n");
            w.Write(bytes, 0, 40);
            w.Flush();
            await Task.Delay(DashboardServer.PollInterval * 3, cancel);
            w.Write(bytes, 40, bytes.Length - 40);
        }
        await ReadUntil(() => received.Count > written.Length);
        Assert.Equal(written.Length + 1, received.Count);
        Assert.Equal(777, MonitorLog.Parse(received[^1]).Step); // the whole line, once
    }

    [Fact]
    public async Task RunIds_AreNeverEmptyAndNeverShared()
    {
        // a root with a trailing slash had an empty id; runs/a and other/a shared one, and the second could not be opened
        var a = MonitoredRun("a");
        var other = Path.Combine(_dir, "other", "a");
        Directory.CreateDirectory(other);
        File.Copy(Path.Combine(a, "metrics.jsonl"), Path.Combine(other, "metrics.jsonl"));
        var cancel = TestContext.Current.CancellationToken;
        await using var server = await DashboardServer.StartAsync([a + Path.DirectorySeparatorChar, other], IPAddress.Loopback, 0, cancel);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
        using var runs = JsonDocument.Parse(await http.GetStringAsync("api/runs", cancel));
        var ids = runs.RootElement.EnumerateArray().Select(r => (r.GetProperty("id").GetString()!, r.GetProperty("path").GetString()!)).ToArray();
        Assert.Equal([("a", other), ("a (2)", a)], ids); // runs in path order
        using var response = await http.GetAsync("api/events?run=" + Uri.EscapeDataString("a (2)"), HttpCompletionOption.ResponseHeadersRead, cancel); // runs/a
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public void RunTail_SkipsDamagedLines_AndSaysWhenTheRunStartedOver()
    {
        // one damaged line made the server's array of lines unreadable to the page, which never saw them again
        var dir = Path.Combine(_dir, "tail");
        Directory.CreateDirectory(dir);
        var metrics = Path.Combine(dir, "metrics.jsonl");
        File.WriteAllText(metrics, "{\"type\":\"epoch\",\"epoch\":1}\ngarbage line\n[1,2]\n{\"type\":\"epoch\",\"epoch\":2}\n");
        var tail = new RunTail(dir);
        Assert.Equal(["{\"type\":\"epoch\",\"epoch\":1}", "{\"type\":\"epoch\",\"epoch\":2}"], tail.ReadNewLines());
        Assert.False(tail.TakeRestart());
        // started over (--force): a shorter file; the reader is told once
        File.WriteAllText(metrics, "{\"type\":\"epoch\",\"epoch\":1}\n");
        Assert.Single(tail.ReadNewLines());
        Assert.True(tail.TakeRestart());
        Assert.False(tail.TakeRestart());
    }

    /// <summary>
    /// While a run trains, the dashboard judges the samples in its metrics file; the chance level and the first step's
    /// predicted update ratio, which the samples do not carry, come from the run's watch line, so the live verdict is the
    /// one the run's own watch gives (a loss still at the chance level is a stall whatever its trend).
    /// </summary>
    [Fact]
    public async Task LiveVerdict_JudgesWithTheRunsWatchLine()
    {
        var cancel = TestContext.Current.CancellationToken;
        var source = Path.Combine(_dir, "source");
        Trials.Run(new TrainingConfig { Model = "mlp 2-8x3-2 act=tanh", Data = "circles", Epochs = 3, Threads = 1 }, steps: 60, every: 5,
            runDirectory: source, cancellation: cancel);
        var written = File.ReadAllLines(Path.Combine(source, "metrics.jsonl"));
        // the watch line comes once, before the first sample
        Assert.Single(written, MonitorLog.IsWatchLine);
        Assert.True(MonitorLog.IsWatchLine(written.First(l => !l.StartsWith("{\"type\":\"epoch\"", StringComparison.Ordinal))));
        var (chance, predicted, zero, _, linear, linearSteps) = MonitorLog.ParseWatch(written.First(MonitorLog.IsWatchLine));
        // the linear baseline trained as long as the trial (60 of its 300 steps); on circles it stays near chance
        Assert.Equal(60, linearSteps);
        Assert.InRange(linear, 0.8 * chance, 1.2 * chance);
        Assert.InRange(chance, 0.68, Math.Log(2) + 1e-12); // circles: two classes, about as many of each
        Assert.Equal(Math.Log(2), zero, 1e-12); // zero logits: ln 2
        Assert.True(predicted > 0, $"predicted update ratio {predicted}");

        // the same samples with a loss that falls steadily (4 % of chance per sample) but ends above chance
        var steps = written.Where(l => l.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal)).ToArray();
        Assert.True(steps.Length >= 10, $"{steps.Length} samples");
        var falling = steps.Select((l, i) =>
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(l)!;
            double loss = chance * (1.6 - 0.04 * i);
            node["loss"] = loss;
            node["mean_loss"] = loss;
            return node.ToJsonString();
        }).ToArray();
        var run = Path.Combine(_dir, "live", "r");
        Directory.CreateDirectory(run);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(run, "config.json"));
        File.WriteAllLines(Path.Combine(run, "metrics.jsonl"), [written.First(MonitorLog.IsWatchLine), .. falling]);
        var config = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json")));
        var samples = falling.Select(MonitorLog.Parse).ToArray();
        // without the watch line's facts the falling loss is no stall; with them it is (the run's own verdict would say so)
        Assert.DoesNotContain(Diagnoser.Diagnose(samples, config).Problems, p => p.Kind == ProblemKind.StalledLoss);
        var expected = Diagnoser.Diagnose(samples, config, predictedUpdateRatio: predicted, chanceLoss: chance);
        Assert.Contains(expected.Problems, p => p.Kind == ProblemKind.StalledLoss);

        await using var server = await DashboardServer.StartAsync([Path.Combine(_dir, "live")], IPAddress.Loopback, 0, cancel);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
        using var response = await http.GetAsync("api/events?run=r", HttpCompletionOption.ResponseHeadersRead, cancel);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel), Encoding.UTF8);
        string? eventName = null, verdict = null;
        while (verdict is null)
        {
            var line = await reader.ReadLineAsync(cancel) ?? throw new EndOfStreamException("the event stream ended");
            if (line.StartsWith("event: ", StringComparison.Ordinal)) eventName = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && eventName == "verdict") verdict = line[6..];
        }
        var received = System.Text.Json.Nodes.JsonNode.Parse(verdict)!;
        Assert.False(received["final"]!.GetValue<bool>());
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(DiagnosisJson.Serialize(expected)), received["diagnosis"]),
            received["diagnosis"]!.ToJsonString());
    }

    /// <summary>train --serve --out DIR/ (a trailing separator) announced the run as "#run=" with an empty id; the id is the folder's name, as /api/runs lists it.</summary>
    [Fact]
    public async Task TrainServe_OutWithATrailingSlash_AnnouncesTheRunsOwnId()
    {
        var cancel = TestContext.Current.CancellationToken;
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll"), "train", "--model", "mlp 2-8-2", "--data", "circles",
                     "--max-steps", "4", "--threads", "1", "--out", Path.Combine(_dir, "slash") + Path.DirectorySeparatorChar, "--serve", "--port", "0" })
            psi.ArgumentList.Add(a);
        using var training = System.Diagnostics.Process.Start(psi)!;
        try
        {
            training.OutputDataReceived += (_, _) => { };
            training.BeginOutputReadLine();
            string? url = null;
            using var announced = new ManualResetEventSlim();
            training.ErrorDataReceived += (_, e) =>
            {
                if (e.Data?.StartsWith("dashboard: ", StringComparison.Ordinal) == true) { url = e.Data["dashboard: ".Length..].Trim(); announced.Set(); }
            };
            training.BeginErrorReadLine();
            Assert.True(announced.Wait(TimeSpan.FromMinutes(2), cancel), "no 'dashboard:' line");
            Assert.EndsWith("#run=slash", url);
            using var http = new HttpClient { BaseAddress = new Uri(url![..url!.IndexOf('#', StringComparison.Ordinal)]), Timeout = TimeSpan.FromSeconds(60) };
            // the run is listed once it has written its config, which may come after the announcement
            string runs = "";
            for (var until = DateTime.UtcNow.AddMinutes(2); DateTime.UtcNow < until && !runs.Contains("\"id\":\"slash\"", StringComparison.Ordinal);)
            {
                runs = await http.GetStringAsync("api/runs", cancel);
                if (!runs.Contains("\"id\":\"slash\"", StringComparison.Ordinal)) await Task.Delay(100, cancel);
            }
            Assert.Contains("\"id\":\"slash\"", runs);
        }
        finally
        {
            if (!training.HasExited) training.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void TakenPort_IsAUsageErrorNamingIt_AndTrainServeLeavesNoRunDirectory()
    {
        // train --serve found the port taken only after loading the data, exited 1, and left an empty run directory behind
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        string port = ((IPEndPoint)taken.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var run = Path.Combine(_dir, "busy");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-8-2", "--data", "circles", "--epochs", "1", "--threads", "1",
            "--out", run, "--serve", "--port", port);
        Assert.True(code == 2, err);
        Assert.Contains($"gradflow train: --port {port} is taken", err);
        Assert.False(Directory.Exists(run), "a run directory was left behind");
        (code, _, err) = CliRunner.Run("serve", _dir, "--port", port);
        Assert.True(code == 2, err);
        Assert.Contains($"gradflow serve: --port {port} is taken", err);
    }

    [Fact]
    public async Task RunList_ARunThatStopped_IsFinished_MonitoredOrNot_AndARunStillTrainingIsNot()
    {
        // finished was "diagnosis.json exists", which only a monitored run writes: an unmonitored run was never "done"
        var cancel = TestContext.Current.CancellationToken;
        var config = new TrainingConfig { Model = "mlp 2-8-2", Data = "circles", Epochs = 2, TrainLimit = 64, TestLimit = 32, Threads = 1 };
        var plain = Path.Combine(_dir, "runs", "plain");
        new Trainer(config).Run(plain, cancellation: cancel);
        Assert.False(File.Exists(Path.Combine(plain, "diagnosis.json")));
        var monitored = MonitoredRun("monitored");
        // a run still training (or killed): its lines so far, without the end line
        var training = Path.Combine(_dir, "runs", "training");
        Directory.CreateDirectory(training);
        File.Copy(Path.Combine(plain, "config.json"), Path.Combine(training, "config.json"));
        File.WriteAllLines(Path.Combine(training, "metrics.jsonl"), File.ReadAllLines(Path.Combine(plain, "metrics.jsonl")).SkipLast(1));
        // a monitored run resumed: its diagnosis.json stays while the resumed part trains
        var resumed = Path.Combine(_dir, "runs", "resumed");
        Directory.CreateDirectory(resumed);
        File.Copy(Path.Combine(monitored, "diagnosis.json"), Path.Combine(resumed, "diagnosis.json"));
        File.Copy(Path.Combine(monitored, "config.json"), Path.Combine(resumed, "config.json"));
        File.WriteAllLines(Path.Combine(resumed, "metrics.jsonl"), File.ReadAllLines(Path.Combine(monitored, "metrics.jsonl")).SkipLast(1));
        File.SetLastWriteTimeUtc(Path.Combine(resumed, "diagnosis.json"), File.GetLastWriteTimeUtc(Path.Combine(resumed, "metrics.jsonl")).AddMinutes(-1));

        await using var server = await DashboardServer.StartAsync([Path.Combine(_dir, "runs")], IPAddress.Loopback, 0, cancel);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
        using var runs = JsonDocument.Parse(await http.GetStringAsync("api/runs", cancel));
        var finished = runs.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("finished").GetBoolean());
        Assert.Equal(new Dictionary<string, bool> { ["monitored"] = true, ["plain"] = true, ["resumed"] = false, ["training"] = false }, finished);
        // why each stopped: a run stopped by Ctrl+C showed as "done" like one that completed
        var stop = runs.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("id").GetString()!, r => r.GetProperty("stop").GetString());
        Assert.Equal("Completed", stop["plain"]);
        Assert.Null(stop["training"]);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var stopped = Path.Combine(_dir, "runs", "stopped");
        new Trainer(config).Run(stopped, cancellation: cancelled.Token);
        Assert.Equal("Cancelled", RunDirectory.EndStop(stopped));
    }

    [Theory]
    [InlineData(new[] { "serve", "--port", "70000" }, "--port 70000")]
    [InlineData(new[] { "serve", "--host", "example.org" }, "--host 'example.org'")]
    [InlineData(new[] { "serve", "/no/such/folder" }, "/no/such/folder")]
    [InlineData(new[] { "train", "--data", "circles", "--serve" }, "--serve shows the run directory")]
    [InlineData(new[] { "train", "--data", "circles", "--port", "8080" }, "--port and --host go with --serve")]
    public void Serve_BadArguments_ExitTwoNamingTheOption(string[] args, string expected)
    {
        var (code, _, err) = CliRunner.Run(args);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
    }
}
