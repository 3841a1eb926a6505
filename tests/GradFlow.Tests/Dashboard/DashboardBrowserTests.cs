using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using GradFlow.Diagnostics;
using GradFlow.Reports;
using GradFlow.Training;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Interactions;

namespace GradFlow.Tests.Dashboard;

/// <summary>
/// The dashboard and the report as a user sees them, in headless Chromium driven by Selenium (Debian's
/// <c>chromium</c> and <c>chromium-driver</c>; scripts/test.sh installs them). Screenshots go to
/// <c>screenshots/</c> beside the test binaries and are attached to the test results. Waits are polls
/// with generous timeouts, never a fixed sleep.
/// </summary>
[Trait("Category", "Browser")]
public sealed partial class DashboardBrowserTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-browser-").FullName;
    private readonly ChromeDriver _browser;

    public DashboardBrowserTests()
    {
        Assert.True(File.Exists("/usr/bin/chromium") && File.Exists("/usr/bin/chromedriver"),
            "Chromium or its driver is missing: run 'apt-get install -y chromium chromium-driver' (scripts/test.sh does this)");
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1800",
            "--disable-background-networking", "--disable-component-update", "--no-first-run", $"--user-data-dir={Path.Combine(_dir, "profile")}");
        _browser = new ChromeDriver(service, options, TimeSpan.FromSeconds(120));
    }

    public void Dispose()
    {
        _browser.Quit();
        _browser.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // a checkpoint being written by the killed training at that instant; the temp folder is left
        }
    }

    private static T Poll<T>(Func<T?> probe, string what) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Patience)
        {
            try
            {
                if (probe() is { } v) return v;
            }
            catch (Exception e) when (e is StaleElementReferenceException or NoSuchElementException or WebDriverException)
            {
                // the page redrew the element between finding and reading it: look again
            }
            Thread.Sleep(100);
        }
        throw new TimeoutException($"waited {Patience.TotalSeconds} s for {what}");
    }

    private void Screenshot(string name)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(dir);
        var shot = _browser.GetScreenshot();
        var path = Path.Combine(dir, name);
        shot.SaveAsFile(path);
        TestContext.Current.AddAttachment(name, shot.AsByteArray, "image/png");
        Assert.True(new FileInfo(path).Length > 10_000, $"screenshot {path} is nearly empty");
    }

    /// <summary>Hovers <paramref name="find"/>'s element (found again if the page redrew it) and returns the hover label's text.</summary>
    private string Hover(Func<IWebElement> find) => Poll(() =>
    {
        new Actions(_browser).MoveToElement(find()).Perform();
        var tip = _browser.FindElement(By.Id("tip"));
        // one read of the text: a live page may redraw and clear the label between two reads
        string text = tip.Displayed ? tip.Text : "";
        return text.Length > 0 ? text : null;
    }, "the hover label");

    private static Process StartTrainingWithServe(string runDir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll"), "train", "--model", "mlp 2-32x6-2 act=tanh", "--data", "spirals",
                     "--epochs", "1000", "--monitor", "--monitor-every", "5", "--threads", "1", "--out", runDir, "--serve", "--port", "0" })
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    [Fact]
    public void Dashboard_TrainWithServe_HeatmapGainsColumnsAndHoverShowsTheLoggedValue()
    {
        var runDir = Path.Combine(_dir, "run");
        using var training = StartTrainingWithServe(runDir);
        try
        {
            training.OutputDataReceived += (_, _) => { };
            training.BeginOutputReadLine();
            string? url = null;
            var announced = new ManualResetEventSlim();
            training.ErrorDataReceived += (_, e) =>
            {
                if (e.Data?.StartsWith("dashboard: ", StringComparison.Ordinal) == true) { url = e.Data["dashboard: ".Length..].Trim(); announced.Set(); }
            };
            training.BeginErrorReadLine();
            Assert.True(announced.Wait(Patience, TestContext.Current.CancellationToken), "gradflow train --serve printed no 'dashboard:' line");
            Assert.StartsWith("http://127.0.0.1:", url);
            _browser.Navigate().GoToUrl(url!);

            IWebElement Heatmap() => _browser.FindElement(By.CssSelector("[data-heatmap=layers]"));
            int Columns() => int.Parse(Heatmap().GetAttribute("data-columns") ?? "0", CultureInfo.InvariantCulture);
            int first = int.Parse(Poll(() => Columns() >= 1 ? Columns().ToString(CultureInfo.InvariantCulture) : null, "the first heatmap column"), CultureInfo.InvariantCulture);
            Poll(() => Columns() > first ? "" : null, $"the heatmap to grow beyond {first} columns while the run goes on");
            Assert.Equal("7", Heatmap().GetAttribute("data-rows")); // 6 hidden layers and the output layer

            // hover a point of the loss chart: the label shows the value metrics.jsonl holds for it
            var label = Hover(() => _browser.FindElements(By.CssSelector("[data-chart=loss] circle.pt"))[0]);
            var m = TipPattern().Match(label);
            Assert.True(m.Success, $"hover label '{label}'");
            long step = long.Parse(m.Groups["step"].Value, CultureInfo.InvariantCulture);
            double shown = double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            double logged = Logged(Path.Combine(runDir, "metrics.jsonl"), m.Groups["series"].Value, step);
            Assert.Equal(logged, shown, logged * 5e-4); // 4 significant digits

            Poll(() => _browser.FindElement(By.Id("verdicts")).Text is { Length: > 0 } t && t.Contains("diagnosis", StringComparison.Ordinal) ? t : null, "a verdict");
            // nothing came from the network: every resource the page loaded is the dashboard's own
            var resources = ((IJavaScriptExecutor)_browser).ExecuteScript("return performance.getEntriesByType('resource').map(r => r.name)") as IReadOnlyCollection<object>;
            var origin = new Uri(url!).GetLeftPart(UriPartial.Authority);
            Assert.All(resources!, r => Assert.StartsWith(origin, (string)r));
            Screenshot("dashboard.png");
        }
        finally
        {
            training.Kill(entireProcessTree: true);
            training.WaitForExit(30_000);
        }
    }

    [GeneratedRegex(@"^(?<series>[^:]+): step (?<step>\d+), loss (?<value>[-0-9.e+]+)$")]
    private static partial Regex TipPattern();

    /// <summary>The value metrics.jsonl holds for a series of the loss chart at a step.</summary>
    private static double Logged(string metrics, string series, long step)
    {
        foreach (var line in File.ReadLines(metrics))
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            if (r.GetProperty("step").GetInt64() != step) continue;
            string type = r.GetProperty("type").GetString()!;
            if (series.StartsWith("training loss", StringComparison.Ordinal) && type == "step") return r.GetProperty("mean_loss").GetDouble();
            if (series.StartsWith("train, per epoch", StringComparison.Ordinal) && type == "epoch") return r.GetProperty("train_loss").GetDouble();
            if (series.StartsWith("test, per epoch", StringComparison.Ordinal) && type == "epoch") return r.GetProperty("test_loss").GetDouble();
        }
        throw new InvalidOperationException($"no '{series}' value at step {step} in {metrics}");
    }

    [Fact]
    public void Report_InChromium_HoverOnAHeatmapCellShowsTheLoggedSignal()
    {
        var run = Path.Combine(_dir, "report-run");
        Trials.Run(new TrainingConfig { Model = "mlp 2-16x8-2 act=sigmoid init=xavier-uniform", Data = "circles", Epochs = 4, Threads = 1, Seed = 3 },
            every: 5, runDirectory: run, cancellation: TestContext.Current.CancellationToken);
        _browser.Navigate().GoToUrl(new Uri(ReportWriter.Write(run)).AbsoluteUri);
        ((IJavaScriptExecutor)_browser).ExecuteScript("document.querySelectorAll('h2')[2].scrollIntoView()"); // the gradient flow and its heatmap
        var label = Hover(() => _browser.FindElement(By.CssSelector("rect[data-tip^='layer 9, step 0:']")));
        var value = double.Parse(label["layer 9, step 0: ".Length..], CultureInfo.InvariantCulture);
        var sample = MonitorLog.ReadSamples(Path.Combine(run, "metrics.jsonl"))[0];
        double logged = sample.Layers.Single(l => l.LayerIndex == 9).BackpropagatedSignalRms;
        Assert.Equal(logged, value, logged * 5e-3); // E2: 3 significant digits
        Screenshot("report.png");
    }
}
