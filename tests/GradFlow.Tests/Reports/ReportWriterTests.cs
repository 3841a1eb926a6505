using System.Diagnostics;
using System.Xml.Linq;
using GradFlow.Diagnostics;
using GradFlow.Reports;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Reports;

public sealed class ReportWriterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string MonitoredRun(string name, string model)
    {
        var dir = Path.Combine(_dir, name);
        Trials.Run(new TrainingConfig { Model = model, Data = "circles", Epochs = 2, Threads = 1, Seed = 2 }, every: 5, runDirectory: dir,
            cancellation: TestContext.Current.CancellationToken);
        return dir;
    }

    private static XDocument Parse(string path)
    {
        var html = File.ReadAllText(path);
        Assert.StartsWith("<!DOCTYPE html>", html);
        return XDocument.Parse(html["<!DOCTYPE html>".Length..]);
    }

    private static IEnumerable<XElement> Named(XDocument doc, string name) => doc.Descendants().Where(e => e.Name.LocalName == name);

    [Fact]
    public void Write_MonitoredRun_IsWellFormedWithEveryChartAndHeatmapCells()
    {
        var run = MonitoredRun("deep", "mlp 2-8x6-2 act=sigmoid init=xavier-uniform");
        var doc = Parse(ReportWriter.Write(run));
        var svgs = Named(doc, "svg").ToArray();
        Assert.Equal(9, svgs.Length); // 3 loss/accuracy, 2 gradient flow, heatmap, saturation, dead units, update ratio
        var samples = MonitorLog.ReadSamples(Path.Combine(run, "metrics.jsonl"));
        var heatmap = svgs.Single(s => s.Value.Contains("layer × sampled step", StringComparison.Ordinal));
        Assert.Equal(7 * samples.Count, heatmap.Elements().Count(e => e.Name.LocalName == "rect" && e.Elements().Any(t => t.Name.LocalName == "title")));
        Assert.Contains("vanishing", doc.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Named(doc, "script"));
        Assert.DoesNotContain("http://", File.ReadAllText(Path.Combine(run, "report.html")).Replace("http://www.w3.org/", "", StringComparison.Ordinal));
    }

    [Fact]
    public void Write_NonFiniteSignal_IsDrawnNotDropped()
    {
        var dir = Path.Combine(_dir, "nan");
        Directory.CreateDirectory(dir);
        var line = "{\"type\":\"step\",\"step\":0,\"epoch\":0,\"loss\":\"Infinity\",\"global_gradient_norm\":\"Infinity\",\"gradient_ratio\":null,\"non_finite\":3,\"layers\":[" +
            "{\"layer\":1,\"activation\":\"relu\",\"signal_rms\":\"Infinity\",\"gain\":null,\"grad_norm\":\"Infinity\",\"grad_max_abs\":null,\"act_mean\":null,\"act_std\":null,\"saturation\":null,\"dead_units\":0.1,\"update_ratio\":null,\"non_finite\":3}," +
            "{\"layer\":2,\"activation\":null,\"signal_rms\":0.01,\"gain\":null,\"grad_norm\":0.1,\"grad_max_abs\":null,\"act_mean\":null,\"act_std\":null,\"saturation\":null,\"dead_units\":null,\"update_ratio\":null,\"non_finite\":0}]}";
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), line + "\n");
        var doc = Parse(ReportWriter.Write(dir));
        Assert.Contains(Named(doc, "rect"), r => (string?)r.Attribute("fill") == "#ff00ff" && r.Value.Contains("Infinity", StringComparison.Ordinal));
        Assert.Contains("non-finite (present)", doc.ToString());
    }

    [Fact]
    public void Write_NoSamples_SaysHowToGetThem_AndCorruptLineNamesFileAndLine()
    {
        var dir = Path.Combine(_dir, "plain");
        new Trainer(new TrainingConfig { Model = "mlp 2-4-2", Data = "circles", Epochs = 1, Threads = 1 }).Run(dir, cancellation: TestContext.Current.CancellationToken);
        Assert.Contains("no monitor samples: run with --monitor", File.ReadAllText(ReportWriter.Write(dir)));
        File.AppendAllText(Path.Combine(dir, "metrics.jsonl"), "{\"type\":\"epoch\",\"epoch\":\"two\"}\n{\"type\":\"epoch\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => ReportWriter.Write(dir));
        Assert.Contains("metrics.jsonl: line 2", e.Message);
    }

    [Fact]
    public void Comparison_ListsEveryRun()
    {
        var a = MonitoredRun("before", "mlp 2-8x6-2 act=sigmoid init=xavier-uniform");
        var b = MonitoredRun("after", "mlp 2-8x6-2 act=relu init=he-normal");
        var (code, output, err) = CliRunner.Run("report", a, b, "--out", Path.Combine(_dir, "cmp.html"));
        Assert.True(code == 0, err);
        Assert.Contains("cmp.html", output);
        var doc = Parse(Path.Combine(_dir, "cmp.html"));
        var rows = Named(doc, "tr").Skip(1).Select(r => r.Elements().First().Value).ToArray();
        Assert.Equal(["before", "after"], rows);
    }

    [Fact]
    [Trait("Category", "Interop")]
    public void Report_RendersInHeadlessChromium_NotBlankWithoutScriptErrors()
    {
        Assert.True(File.Exists("/usr/bin/chromium"), "Chromium is missing: run 'apt-get install -y chromium' (scripts/test.sh does this)");
        var run = MonitoredRun("shot", "mlp 2-8x4-2 act=tanh");
        var report = ReportWriter.Write(run);
        var png = Path.Combine(_dir, "shot.png");
        var blankHtml = Path.Combine(_dir, "blank.html");
        File.WriteAllText(blankHtml, "<!DOCTYPE html><html><body></body></html>");
        var blankPng = Path.Combine(_dir, "blank.png");
        string Shoot(string page, string target)
        {
            var psi = new ProcessStartInfo("/usr/bin/chromium") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0", $"--user-data-dir={Path.Combine(_dir, "profile")}",
                         $"--screenshot={target}", "--window-size=1200,1600", "file://" + page })
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(60_000), "chromium did not finish in 60 s");
            return err.Result;
        }
        string log = Shoot(report, png);
        Shoot(blankHtml, blankPng);
        Assert.True(File.Exists(png), log);
        // A blank page of the same size compresses to a few kilobytes; the report's charts do not.
        Assert.True(new FileInfo(png).Length > 10 * new FileInfo(blankPng).Length, $"screenshot {new FileInfo(png).Length} bytes vs blank {new FileInfo(blankPng).Length}");
        Assert.DoesNotContain("Uncaught", log);
        Assert.DoesNotContain("SyntaxError", log);
    }

    [Fact]
    public void RelativeTimeBins_AreGeometricMeansRelativeToTheLastStep_WithTheFloor()
    {
        double[] signal = [1e-8, 1e-4, 0, 1e-2, 0.5, 2];
        var bins = ReportWriter.RelativeTimeBins(signal, 3);
        Assert.Equal(Math.Sqrt(0.5e-8 * 0.5e-4), bins[0], 1e-18);                    // geometric, not arithmetic (2.5e-5)
        Assert.Equal(Math.Sqrt(ReportWriter.TimeFloor * 0.5e-2), bins[1], 1e-20);    // an underflowed 0 counts as the floor
        Assert.Equal(Math.Sqrt(0.25 * 1), bins[2], 1e-12);
        double[] expected = [0.5e-8, 0.5e-4, ReportWriter.TimeFloor, 0.5e-2, 0.25, 1];
        var unbinned = ReportWriter.RelativeTimeBins(signal, 10);                       // at most one column per step
        Assert.Equal(expected.Length, unbinned.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(1, unbinned[i] / expected[i], 1e-12);
        Assert.True(double.IsNaN(ReportWriter.RelativeTimeBins([1, double.NaN, 1, 1], 2)[0]));
    }

    [Fact]
    public void Write_RecurrentRun_HasTheThroughTimeHeatmapsAndNoAccuracyChart()
    {
        var dir = Path.Combine(_dir, "rnn");
        Trials.Run(new TrainingConfig { Model = "rnn 2-8x2-1", Data = "adding", SequenceLength = 12, TrainLimit = 640, TestLimit = 100, BatchSize = 32, Epochs = 1, Threads = 1 },
            steps: 20, every: 5, runDirectory: dir, cancellation: TestContext.Current.CancellationToken);
        var doc = Parse(ReportWriter.Write(dir));
        var svgs = Named(doc, "svg").ToArray();
        Assert.DoesNotContain(svgs, s => s.Value.Contains("accuracy per epoch", StringComparison.Ordinal));
        var samples = MonitorLog.ReadSamples(Path.Combine(dir, "metrics.jsonl"));
        int Cells(string title) => svgs.Single(s => s.Value.Contains(title, StringComparison.Ordinal))
            .Elements().Count(e => e.Name.LocalName == "rect" && e.Elements().Any(t => t.Name.LocalName == "title"));
        Assert.Equal(2 * 12, Cells("recurrent layer × time step"));                 // 2 stacked layers × 12 steps
        Assert.Equal(samples.Count * 12, Cells("training step × time step"));
        Assert.Contains(svgs, s => s.Value.Contains("against the lag", StringComparison.Ordinal));
        // the last step of each layer is the reference: its cell is the top of the colour scale
        var layerMap = svgs.Single(s => s.Value.Contains("recurrent layer × time step", StringComparison.Ordinal));
        var lastCell = layerMap.Elements().Where(e => e.Name.LocalName == "rect" && e.Elements().Any(t => t.Name.LocalName == "title")).ElementAt(11);
        Assert.Contains("1.00E+000", lastCell.Value);
    }

    [Fact]
    public void Write_MlpRun_HasNoThroughTimeSection()
    {
        var run = MonitoredRun("mlp", "mlp 2-8x2-2 act=relu init=he-normal");
        Assert.DoesNotContain("Gradient flow through time", File.ReadAllText(ReportWriter.Write(run)));
    }
}
