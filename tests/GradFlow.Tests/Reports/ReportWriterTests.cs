using System.Diagnostics;
using System.Globalization;
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

    private static IEnumerable<XElement> Named(XContainer doc, string name) => doc.Descendants().Where(e => e.Name.LocalName == name);

    /// <summary>The cells of a heatmap: its rectangles with a hover value.</summary>
    private static IEnumerable<XElement> Cells(XElement svg) => svg.Elements().Where(e => e.Name.LocalName == "rect" && e.Attribute("data-tip") is not null);

    private static XElement Chart(XDocument doc, string title) => Named(doc, "svg").Single(s => s.Elements().First().Value.Contains(title, StringComparison.Ordinal));

    [Fact]
    public void Write_MonitoredRun_IsWellFormedWithEveryChartAndHeatmapCells()
    {
        var run = MonitoredRun("deep", "mlp 2-8x6-2 act=sigmoid init=xavier-uniform");
        var doc = Parse(ReportWriter.Write(run));
        var svgs = Named(doc, "svg").ToArray();
        Assert.Equal(9, svgs.Length); // 3 loss/accuracy, 2 gradient flow, heatmap, saturation, dead units, update ratio
        var samples = MonitorLog.ReadSamples(Path.Combine(run, "metrics.jsonl"));
        var heatmap = svgs.Single(s => s.Value.Contains("layer × sampled step", StringComparison.Ordinal));
        Assert.Equal(7 * samples.Count, Cells(heatmap).Count());
        Assert.Contains("vanishing", doc.ToString(), StringComparison.OrdinalIgnoreCase);
        var script = Assert.Single(Named(doc, "script")); // the hover label: inline, nothing loaded
        Assert.Null(script.Attribute("src"));
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
        Assert.Contains(Named(doc, "rect"), r => (string?)r.Attribute("fill") == "#ff00ff" && ((string?)r.Attribute("data-tip") ?? "").Contains("Infinity", StringComparison.Ordinal));
        Assert.Contains("non-finite (present)", doc.ToString());
    }

    [Fact]
    public void LogCharts_ZeroIsOffTheScale_NotNonFinite()
    {
        // a zero-started branch's weight gradient is exactly 0 at the first step: drawn at the foot in its series' colour, never called non-finite
        var line = Svg.LineChart("g", "layer", "||dL/dW||", [new Series("net", [(1, 0.5), (2, 0.0), (3, 0.25), (4, double.PositiveInfinity)], "#123456")], logY: true);
        Assert.Contains("net: ||dL/dW|| 0 at layer 2, off the log scale", line);
        Assert.Contains("fill=\"#123456\" class=\"belowscale\"", line);
        Assert.Contains("0, off the log scale</text>", line);
        Assert.Contains("net: non-finite at layer 4", line);
        Assert.DoesNotContain("non-finite at layer 2", line);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(line, "<polyline")); // the line breaks at the zero, not bridged over it
        var finiteOnly = Svg.LineChart("g", "layer", "y", [new Series("net", [(1, 0.5), (2, 0.25)], "#123456")], logY: true);
        Assert.DoesNotContain("off the log scale", finiteOnly);

        var heat = Svg.Heatmap("h", "layer", "step", ["1", "2"], ["0", "10"], new double[,] { { 1e-3, 0 }, { 1e-2, 1e-4 } });
        Assert.Contains("fill=\"#000000\" data-tip=\"layer 1, step 10: 0.00E+000\"", heat);
        Assert.Contains("0 (present)", heat);
        Assert.DoesNotContain("non-finite (present)", heat);
    }

    [Fact]
    public void Write_NoSamples_SaysHowToGetThem_AndCorruptLineNamesFileAndLine()
    {
        var dir = Path.Combine(_dir, "plain");
        new Trainer(new TrainingConfig { Model = "mlp 2-4-2", Data = "circles", Epochs = 1, Threads = 1 }).Run(dir, cancellation: TestContext.Current.CancellationToken);
        Assert.Contains("no monitor samples: run with --monitor", File.ReadAllText(ReportWriter.Write(dir)));
        File.AppendAllText(Path.Combine(dir, "metrics.jsonl"), "{\"type\":\"epoch\",\"epoch\":\"two\"}\n{\"type\":\"epoch\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => ReportWriter.Write(dir));
        Assert.Contains("metrics.jsonl: line 3", e.Message); // after the epoch and the end line
        // a line without a field names it (the runtime's message said only "the given key was not present")
        var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), [lines[0], "{\"type\":\"step\",\"epoch\":0,\"loss\":1}", lines[0]]);
        e = Assert.Throws<InvalidDataException>(() => ReportWriter.Write(dir));
        Assert.Contains("line 2 is not a valid metrics line (field 'layers' is missing)", e.Message);
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
        // each run's weight-gradient norm per layer at its first sample, as metrics.jsonl has it
        var chart = Chart(doc, "||dL/dW|| per layer (1 = input side) at each run's first sample");
        foreach (var (label, run) in new[] { ("before", a), ("after", b) })
        {
            var first = MonitorLog.ReadSamples(Path.Combine(run, "metrics.jsonl"))[0];
            Assert.Equal(0, first.Step);
            var tips = Named(chart, "circle").Select(c => (string)c.Attribute("data-tip")!).Where(t => t.StartsWith(label + ":", StringComparison.Ordinal)).ToArray();
            Assert.Equal(first.Layers.Select(l => $"{label}: layer {l.LayerIndex}, ||dL/dW|| {Svg.Value(l.ParameterGradientNorm)}"), tips);
        }
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
        int CellCount(string title) => Cells(svgs.Single(s => s.Value.Contains(title, StringComparison.Ordinal))).Count();
        Assert.Equal(2 * 12, CellCount("recurrent layer × time step"));                 // 2 stacked layers × 12 steps
        Assert.Equal(samples.Count * 12, CellCount("training step × time step"));
        Assert.Contains(svgs, s => s.Value.Contains("against the lag", StringComparison.Ordinal));
        // the last step of each layer is the reference: its cell is the top of the colour scale
        var layerMap = svgs.Single(s => s.Value.Contains("recurrent layer × time step", StringComparison.Ordinal));
        var lastCell = Cells(layerMap).ElementAt(11);
        Assert.Contains("1.00E+000", (string)lastCell.Attribute("data-tip")!);
        // readable: rows of a 2-layer heatmap are tall enough to see and to label
        Assert.All(Cells(layerMap), c => Assert.True(double.Parse((string)c.Attribute("height")!, CultureInfo.InvariantCulture) >= 20));
    }

    [Fact]
    public void Write_MlpRun_HasNoThroughTimeSection()
    {
        var run = MonitoredRun("mlp", "mlp 2-8x2-2 act=relu init=he-normal");
        var html = File.ReadAllText(ReportWriter.Write(run));
        Assert.DoesNotContain("Gradient flow through time", html);
        Assert.DoesNotContain("Transformer layers", html);
    }

    [Fact]
    public void Write_TransformerRun_HasEachHeadsEntropyAndEachLayersSignal()
    {
        var dir = Path.Combine(_dir, "lm");
        var corpus = new GradFlow.Data.TextCorpus("abc", string.Concat(Enumerable.Repeat("abcd abcd. ", 40)));
        Trials.Run(new TrainingConfig { Model = "transformer vocab=6 d=8 heads=2 layers=2 ctx=5", Optimizer = OptimizerKind.AdamW, BatchSize = 8, Epochs = 1, Threads = 1 },
            steps: 10, every: 5, data: new DataBundle(corpus.Windows(true, 5), corpus.Windows(false, 5)), runDirectory: dir,
            cancellation: TestContext.Current.CancellationToken);
        var doc = Parse(ReportWriter.Write(dir));
        Assert.Contains("Transformer layers", doc.ToString(), StringComparison.Ordinal);
        var entropy = Chart(doc, "attention entropy per head");
        foreach (var label in new[] { "layer 1 head 1", "layer 1 head 2", "layer 2 head 1", "layer 2 head 2", "collapse threshold" })
            Assert.Contains(label, doc.ToString(), StringComparison.Ordinal);
        Assert.NotNull(Chart(doc, "signal at each transformer layer's output"));
        var bars = Chart(doc, "parameter-gradient norm by layer index");
        Assert.Equal(5, bars.Elements().Count(e => e.Name.LocalName == "rect" && e.Attribute("data-tip") is not null)); // 2 × (attention, feed-forward) and the head
        Assert.NotNull(entropy);
    }

    [Theory]
    [InlineData(0.7918, 2.397, 5, false, new[] { 0.5, 1, 1.5, 2, 2.5 })]
    [InlineData(0, 4690, 6, true, new double[] { 0, 1000, 2000, 3000, 4000, 5000 })]
    [InlineData(1, 2, 6, true, new double[] { 1, 2 })]
    [InlineData(0.0993, 0.1012, 5, false, new[] { 0.099, 0.0995, 0.1, 0.1005, 0.101, 0.1015 })]
    [InlineData(-3.2, 7.9, 5, false, new double[] { -4, -2, 0, 2, 4, 6, 8 })]
    public void NiceTicks_AreRoundAndCoverTheRange(double lo, double hi, int target, bool integers, double[] expected)
    {
        var ticks = Svg.NiceTicks(lo, hi, target, integers);
        Assert.Equal(expected.Length, ticks.Length);
        for (int i = 0; i < ticks.Length; i++) Assert.Equal(expected[i], ticks[i], 12);
        Assert.True(ticks[0] <= lo && ticks[^1] >= hi);
    }

    [Theory]
    [InlineData(1.5, 0.5, "1.5")]
    [InlineData(2, 0.5, "2.0")]
    [InlineData(3000, 1000, "3000")]
    [InlineData(0.1005, 0.0005, "0.1005")]
    public void TickLabel_HasTheDecimalsOfTheSpacing(double v, double spacing, string expected) => Assert.Equal(expected, Svg.TickLabel(v, spacing));

    /// <summary>The y tick labels of a linear chart, as numbers.</summary>
    private static double[] YTicks(XElement svg) => svg.Elements().Where(e => e.Name.LocalName == "text" && (string?)e.Attribute("text-anchor") == "end")
        .Select(e => double.Parse(e.Value, CultureInfo.InvariantCulture)).ToArray();

    [Fact]
    public void Write_LossChart_HasRoundTicks_AndTrainAndTestDifferInColourAndDashes()
    {
        var run = MonitoredRun("ticks", "mlp 2-8x2-2 act=tanh");
        var doc = Parse(ReportWriter.Write(run));
        var loss = Chart(doc, "loss per epoch");
        var ticks = YTicks(loss);
        Assert.True(ticks.Length >= 3);
        double spacing = ticks[1] - ticks[0];
        double mantissa = spacing / Math.Pow(10, Math.Floor(Math.Log10(spacing)));
        Assert.Contains(Math.Round(mantissa, 9), new[] { 1.0, 2.0, 5.0 });
        Assert.All(ticks, t => Assert.Equal(0, Math.Abs(t / spacing - Math.Round(t / spacing)), 6)); // multiples of the spacing
        var lines = Named(loss, "polyline").ToArray();
        Assert.Equal(2, lines.Length);
        Assert.NotEqual((string?)lines[0].Attribute("stroke"), (string?)lines[1].Attribute("stroke"));
        Assert.Null(lines[0].Attribute("stroke-dasharray"));
        Assert.NotNull(lines[1].Attribute("stroke-dasharray"));
        // the legend draws the dashes too
        var legend = Named(doc, "div").First(d => (string?)d.Attribute("class") == "legend" && d.Value.Contains("test", StringComparison.Ordinal));
        Assert.Contains("dashed", legend.ToString(), StringComparison.Ordinal);
        // every point has its value for the hover label
        Assert.All(Named(loss, "circle"), c => Assert.Matches(@"^(train|test): epoch \d+, loss [0-9.]+$", (string)c.Attribute("data-tip")!));
    }

    [Fact]
    public void Write_OneEpochPlainRun_HasNoChartOfOnePointAndNoEmptyChart()
    {
        var dir = Path.Combine(_dir, "one");
        new Trainer(new TrainingConfig { Model = "mlp 2-4-2", Data = "circles", Epochs = 1, Threads = 1 }).Run(dir, cancellation: TestContext.Current.CancellationToken);
        var html = File.ReadAllText(ReportWriter.Write(dir));
        var doc = Parse(Path.Combine(dir, "report.html"));
        Assert.DoesNotContain("per epoch", html);
        Assert.DoesNotContain("no data", html);
        Assert.DoesNotContain("training loss", html);   // no monitor samples: no step chart
        Assert.Contains(Named(doc, "td"), td => td.Value == "1"); // the epoch's numbers, in a table
        var metrics = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Where(l => l.Contains("\"epoch\"", StringComparison.Ordinal)).ToArray();
        Assert.Single(metrics);
    }

    [Fact]
    public void Write_LongRun_HeatmapFitsThePageWithRowLabelsApart()
    {
        var dir = Path.Combine(_dir, "long");
        Directory.CreateDirectory(dir);
        const int layers = 22, samples = 1000;
        var lines = new System.Text.StringBuilder();
        for (int s = 0; s < samples; s++)
        {
            lines.Append(CultureInfo.InvariantCulture, $"{{\"type\":\"step\",\"step\":{s * 10},\"epoch\":{s / 100},\"loss\":{2.0 / (1 + s)},\"global_gradient_norm\":1,\"gradient_ratio\":0.001,\"non_finite\":0,\"layers\":[");
            for (int l = 1; l <= layers; l++)
                lines.Append(CultureInfo.InvariantCulture, $"{(l > 1 ? "," : "")}{{\"layer\":{l},\"activation\":\"sigmoid\",\"signal_rms\":{Math.Pow(10, -l / 2.0)},\"gain\":null,\"grad_norm\":0.1,\"grad_max_abs\":null,\"act_mean\":null,\"act_std\":null,\"saturation\":0.5,\"dead_units\":null,\"update_ratio\":null,\"non_finite\":0}}");
            lines.Append("]}\n");
        }
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), lines.ToString());
        var doc = Parse(ReportWriter.Write(dir));
        var heatmap = Chart(doc, "layer × sampled step");
        Assert.True(double.Parse((string)heatmap.Attribute("width")!, CultureInfo.InvariantCulture) <= 1150, "wider than the page");
        Assert.Equal(layers * ReportWriter.MaxHeatmapColumns, Cells(heatmap).Count());
        var rowLabels = heatmap.Elements().Where(e => e.Name.LocalName == "text" && (string?)e.Attribute("text-anchor") == "end")
            .Select(e => double.Parse((string)e.Attribute("y")!, CultureInfo.InvariantCulture)).Order().ToArray();
        Assert.Equal(layers, rowLabels.Length);
        Assert.All(rowLabels.Zip(rowLabels.Skip(1)), p => Assert.True(p.Second - p.First >= 11, $"row labels {p.First} and {p.Second} overlap"));
        var columnLabels = heatmap.Elements().Where(e => e.Name.LocalName == "text" && (string?)e.Attribute("class") == "tick" && (string?)e.Attribute("text-anchor") == "middle")
            .Select(e => double.Parse((string)e.Attribute("x")!, CultureInfo.InvariantCulture)).Order().ToArray();
        Assert.All(columnLabels.Zip(columnLabels.Skip(1)), p => Assert.True(p.Second - p.First >= 50, $"column labels at {p.First} and {p.Second} overlap"));
    }

    [Fact]
    public void Write_TwoLayerModel_HeatmapRowsAreReadable()
    {
        var run = MonitoredRun("small", "mlp 2-8-2 act=tanh");
        var heatmap = Chart(Parse(ReportWriter.Write(run)), "layer × sampled step");
        Assert.All(Cells(heatmap), c => Assert.True(double.Parse((string)c.Attribute("height")!, CultureInfo.InvariantCulture) >= 20));
    }

    [Fact]
    public void Report_FolderThatIsNoRun_ExitsOneNamingWhatIsMissing_AndWritesNothing()
    {
        var empty = Path.Combine(_dir, "not-a-run");
        Directory.CreateDirectory(empty);
        var (code, _, err) = CliRunner.Run("report", empty);
        Assert.Equal(1, code);
        Assert.Contains("not a run directory", err);
        Assert.Contains("config.json", err);
        Assert.Contains("metrics.jsonl", err);
        Assert.Equal(1, err.Split("gradflow report:").Length - 1); // the prefix once
        Assert.False(File.Exists(Path.Combine(empty, "report.html")));
    }
}
