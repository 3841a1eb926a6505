using System.Globalization;
using System.Text;
using System.Text.Json;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Reports;

/// <summary>What a run directory holds, read back for a report.</summary>
/// <param name="Directory">The run directory.</param>
/// <param name="Config">config.json's text, or null.</param>
/// <param name="Epochs">The epoch lines: (epoch, train loss, train accuracy, test loss, test accuracy).</param>
/// <param name="Samples">The monitor samples (step lines).</param>
/// <param name="Diagnosis">diagnosis.json, or null.</param>
public sealed record RunData(string Directory, string? Config, IReadOnlyList<(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy)> Epochs,
    IReadOnlyList<MonitorSample> Samples, JsonDocument? Diagnosis)
{
    /// <summary>Reads <paramref name="directory"/>; a corrupt line is an <see cref="InvalidDataException"/> naming the file and line.</summary>
    public static RunData Read(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"report: run directory {directory} does not exist.");
        string configPath = Path.Combine(directory, "config.json"), metricsPath = Path.Combine(directory, "metrics.jsonl"), diagnosisPath = Path.Combine(directory, "diagnosis.json");
        if (!RunDirectory.HoldsRun(directory))
            throw new FileNotFoundException($"report: {directory} is not a run directory: it has neither config.json nor metrics.jsonl " +
                "(write one with 'gradflow train --out DIR', 'gradflow diagnose --out DIR' or 'gradflow demo').", metricsPath);
        var epochs = new List<(int, double, double, double, double)>();
        var samples = new List<MonitorSample>();
        if (File.Exists(metricsPath))
        {
            var lines = File.ReadAllLines(metricsPath);
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].Length == 0) continue;
                try
                {
                    using var doc = JsonDocument.Parse(lines[i]);
                    var r = doc.RootElement;
                    string type = MonitorLog.Field(r, "type").GetString() ?? "";
                    if (type == "step") samples.Add(MonitorLog.Parse(lines[i]));
                    else if (type == "epoch")
                        epochs.Add((MonitorLog.Field(r, "epoch").GetInt32(), MonitorLog.Get(r, "train_loss"), MonitorLog.Get(r, "train_accuracy"),
                            MonitorLog.Get(r, "test_loss"), MonitorLog.Get(r, "test_accuracy")));
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    if (i == lines.Length - 1 && !lines[i].TrimEnd().EndsWith('}')) continue; // a line cut by a crash
                    throw new InvalidDataException($"report: {metricsPath}: line {i + 1} is not a valid metrics line ({e.Message}).", e);
                }
            }
        }
        JsonDocument? diagnosis = null;
        if (File.Exists(diagnosisPath))
        {
            try
            {
                diagnosis = JsonDocument.Parse(File.ReadAllText(diagnosisPath));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"report: {diagnosisPath}: not valid JSON ({e.Message}).", e);
            }
        }
        return new RunData(directory, File.Exists(configPath) ? File.ReadAllText(configPath) : null, epochs, samples, diagnosis);
    }
}

/// <summary>
/// Self-contained HTML reports (inline CSS and SVG, one small inline script for hover values, no network) from run directories:
/// configuration, loss and accuracy curves, the gradient-flow chart (signal RMS per layer, log scale,
/// at several moments), a layer × step heatmap of log10 signal RMS (non-finite cells shown in
/// magenta), saturation, dead units and update ratios per layer, and the diagnosis in words; for
/// recurrent models also the signal through time (recurrent layer × time step and training step ×
/// time step heatmaps, and the signal against the lag with the vanishing threshold).
/// </summary>
public static class ReportWriter
{
    private const string Style = """
        body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;background:#fafafa}
        h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
        .grid2{display:flex;flex-wrap:wrap;gap:16px} .card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px}
        pre{background:#fff;border:1px solid #e2e2e2;padding:8px;overflow:auto;font-size:12px}
        svg .title{font-size:13px;font-weight:600} svg .tick{font-size:10px;fill:#555} svg .axis{font-size:11px;fill:#333}
        svg .muted{font-size:12px;fill:#999} svg .plot{fill:#fff;stroke:#ccc} svg .grid{stroke:#eee} svg .nonfinite{fill:#ff00ff}
        .legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;padding:4px 0 0 64px} .legend i{display:inline-block;width:22px;height:0;margin-right:5px;vertical-align:middle}
        .card{overflow-x:auto} [data-tip]:hover{stroke:#000;stroke-width:1.5}
        #tip{position:absolute;display:none;background:#222;color:#fff;font-size:12px;padding:3px 7px;border-radius:3px;pointer-events:none;white-space:nowrap;z-index:9}
        .problem{background:#fff4f4;border-left:4px solid #d62728;padding:6px 10px;margin:8px 0} .healthy{background:#f2fbf2;border-left:4px solid #2ca02c;padding:6px 10px}
        table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f0f0f0}
        """;

    /// <summary>Writes <c>report.html</c> for a run directory (or to <paramref name="outputPath"/>) and returns its path.</summary>
    public static string Write(string runDirectory, string? outputPath = null)
    {
        var run = RunData.Read(runDirectory);
        var html = new StringBuilder();
        Begin(html, "GradFlow report: " + Path.GetFileName(Path.GetFullPath(runDirectory)));
        if (run.Config is not null) html.Append("<h2>Configuration</h2><pre>").Append(Svg.E(run.Config)).Append("</pre>");
        Diagnosis(html, run);
        Curves(html, [(Path.GetFileName(runDirectory), run)]);
        GradientFlow(html, run);
        ThroughTime(html, run);
        TransformerLayers(html, run);
        End(html);
        var path = outputPath ?? Path.Combine(runDirectory, "report.html");
        AtomicFile.WriteAllText(path, html.ToString());
        return path;
    }

    /// <summary>
    /// One page comparing runs (e.g. before and after a repair): final metrics, curves overlaid, the gradient flow
    /// at the end of each run, and each run's weight-gradient norm per layer at its first sample (Xiong et al. 2020's
    /// quantity: at step 0, before any update, it depends on the architecture and the initialisation only).
    /// </summary>
    public static string WriteComparison(IReadOnlyList<(string Label, string RunDirectory)> runs, string outputPath)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var data = runs.Select(r => (r.Label, RunData.Read(r.RunDirectory))).ToArray();
        var html = new StringBuilder();
        Begin(html, "GradFlow comparison: " + string.Join(" vs ", runs.Select(r => r.Label)));
        html.Append("<h2>Final metrics</h2><table><tr><th style=\"text-align:left\">run</th><th>test accuracy</th><th>test loss</th><th>gradient ratio (last sample)</th><th>verdict</th></tr>");
        foreach (var (label, run) in data)
        {
            var last = run.Epochs.Count > 0 ? run.Epochs[^1] : default;
            double ratio = run.Samples.Count > 0 ? run.Samples[^1].GradientRatio : double.NaN;
            string verdict = run.Diagnosis is null ? "-" : run.Diagnosis.RootElement.GetProperty("healthy").GetBoolean() ? (Unjudged(run.Diagnosis.RootElement) is null ? "healthy" : "not judged")
                : string.Join(", ", run.Diagnosis.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()));
            html.Append(CultureInfo.InvariantCulture, $"<tr><td style=\"text-align:left\">{Svg.E(label)}</td><td>{(run.Epochs.Count > 0 && !double.IsNaN(last.TestAccuracy) ? last.TestAccuracy.ToString("P1", CultureInfo.InvariantCulture) : "-")}</td><td>{(run.Epochs.Count > 0 ? last.TestLoss.ToString("F4", CultureInfo.InvariantCulture) : "-")}</td><td>{(double.IsFinite(ratio) ? ratio.ToString("E1", CultureInfo.InvariantCulture) : "-")}</td><td>{Svg.E(verdict)}</td></tr>");
        }
        html.Append("</table>");
        Curves(html, data.Select(d => (d.Label, d.Item2)).ToArray());
        var flow = data.Select((d, i) => d.Item2.Samples.Count == 0 ? null : new Series(d.Label,
            d.Item2.Samples[^1].Layers.Select(l => ((double)l.LayerIndex, l.BackpropagatedSignalRms)).ToArray(), Svg.Palette[i % Svg.Palette.Length])).OfType<Series>().ToArray();
        html.Append("<h2>Gradient flow at the end of each run</h2><div class=\"card\">")
            .Append(Svg.LineChart("backpropagated signal RMS per layer (1 = input side)", "layer", "RMS of dL/dh", flow, logY: true, width: 900, height: 340))
            .Append(Svg.Legend(flow, 900)).Append("</div>");
        // the quantity of Xiong et al. (2020): each layer's weight-gradient norm before any update
        var initial = data.Select((d, i) => d.Item2.Samples.Count == 0 ? null : new Series(d.Label,
            d.Item2.Samples[0].Layers.Select(l => ((double)l.LayerIndex, l.ParameterGradientNorm)).ToArray(), Svg.Palette[i % Svg.Palette.Length])).OfType<Series>().ToArray();
        if (Svg.HasLine(initial, logY: true))
            html.Append("<h2>Weight-gradient norm per layer at the first sample</h2><div class=\"card\">")
                .Append(Svg.LineChart("||dL/dW|| per layer (1 = input side) at each run's first sample", "layer", "||dL/dW||", initial, logY: true, width: 900, height: 340))
                .Append(Svg.Legend(initial, 900)).Append("</div>");
        End(html);
        AtomicFile.WriteAllText(outputPath, html.ToString());
        return outputPath;
    }

    private static void Begin(StringBuilder html, string title)
    {
        html.Append("<!DOCTYPE html><html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>")
            .Append(Svg.E(title)).Append("</title><style>").Append(Style).Append("</style></head><body><h1>").Append(Svg.E(title)).Append("</h1>")
            .Append("<div class=\"muted\">written by GradFlow ").Append(DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture)).Append("</div>");
    }

    private static void End(StringBuilder html) => html.Append("<script>").Append(Svg.HoverScript).Append("</script></body></html>");

    /// <summary>The samples a diagnosis.json's verdict lacked to judge the loss trend (<c>trend_samples_needed</c>), or null.</summary>
    private static int? Unjudged(JsonElement diagnosis) =>
        diagnosis.TryGetProperty("trend_samples_needed", out var n) && n.ValueKind == JsonValueKind.Number ? n.GetInt32() : null;

    private static void Diagnosis(StringBuilder html, RunData run)
    {
        html.Append("<h2>Diagnosis</h2>");
        if (run.Diagnosis is null)
        {
            html.Append("<p class=\"muted\">no diagnosis.json in this run directory (run with --monitor, or gradflow diagnose --out).</p>");
            return;
        }
        var root = run.Diagnosis.RootElement;
        if (root.TryGetProperty("healthy", out var h) && h.ValueKind == JsonValueKind.True)
        {
            html.Append(Unjudged(root) is int needed
                ? string.Create(CultureInfo.InvariantCulture, $"<div class=\"muted\">not judged: no problem found, but the run has too few monitor samples for the loss-trend rules (stall, oscillation), which need {needed}</div>")
                : "<div class=\"healthy\">healthy: no problem found</div>");
            return;
        }
        if (!root.TryGetProperty("problems", out var problems)) return;
        foreach (var p in problems.EnumerateArray())
        {
            html.Append("<div class=\"problem\"><b>").Append(Svg.E(Text(p, "kind"))).Append("</b>: ").Append(Svg.E(Text(p, "summary")));
            if (p.TryGetProperty("causes", out var causes) && causes.GetArrayLength() > 0)
            {
                html.Append("<br/>causes:<ul>");
                foreach (var c in causes.EnumerateArray()) html.Append("<li><b>").Append(Svg.E(Text(c, "name"))).Append("</b>: ").Append(Svg.E(Text(c, "facts"))).Append("</li>");
                html.Append("</ul>");
            }
            if (p.TryGetProperty("remedies", out var remedies) && remedies.GetArrayLength() > 0)
            {
                html.Append("remedies:<ul>");
                foreach (var r in remedies.EnumerateArray()) html.Append("<li><code>").Append(Svg.E(Text(r, "id"))).Append("</code> ").Append(Svg.E(Text(r, "description"))).Append("</li>");
                html.Append("</ul>");
            }
            html.Append("</div>");
        }
        if (root.TryGetProperty("non_finite_origin", out var o) && o.ValueKind == JsonValueKind.String)
            html.Append("<p>first non-finite value: ").Append(Svg.E(o.GetString()!)).Append("</p>");
    }

    private static string Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText() : "";

    /// <summary>
    /// Loss and accuracy: the sampled training loss against the step, and per epoch train (solid) and test
    /// (dashed; in a single run also another colour) loss and accuracy. A chart needs two points of some
    /// series: a one-epoch run gets a line of its epoch's numbers instead, a run without samples no step chart.
    /// </summary>
    private static void Curves(StringBuilder html, IReadOnlyList<(string Label, RunData Run)> runs)
    {
        bool single = runs.Count == 1;
        string RunColor(int i) => Svg.Palette[i % Svg.Palette.Length];
        string Label(string run, string what) => single ? what : $"{run} {what}";
        var stepLoss = runs.Select((r, i) => new Series(single ? "training loss" : r.Label, r.Run.Samples.Select(s => ((double)s.Step, double.IsNaN(s.MeanLoss) ? s.Loss : s.MeanLoss)).ToArray(), RunColor(i))).ToArray();
        Series[] PerEpoch(Func<(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy), double> train,
            Func<(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy), double> test) =>
            runs.SelectMany((r, i) => new[]
            {
                new Series(Label(r.Label, "train"), r.Run.Epochs.Select(e => ((double)e.Epoch, train(e))).ToArray(), RunColor(i)),
                new Series(Label(r.Label, "test"), r.Run.Epochs.Select(e => ((double)e.Epoch, test(e))).ToArray(), single ? Svg.Palette[1] : RunColor(i), Dashed: true),
            }).ToArray();
        var epochLoss = PerEpoch(e => e.TrainLoss, e => e.TestLoss);
        var acc = PerEpoch(e => e.TrainAccuracy, e => e.TestAccuracy);
        bool anyAccuracy = runs.Any(r => r.Run.Epochs.Any(e => !double.IsNaN(e.TestAccuracy) || !double.IsNaN(e.TrainAccuracy))); // regression runs have none
        var charts = new List<string>();
        if (Svg.HasLine(stepLoss))
            charts.Add(single ? Svg.LineChart("training loss (mean since the previous sample)", "step", "loss", stepLoss, logY: false) + Svg.Legend(stepLoss)
                : Svg.LineChart("training loss (mean since the previous sample)", "step", "loss", stepLoss, logY: false, width: 900, height: 340) + Svg.Legend(stepLoss, 900));
        if (Svg.HasLine(epochLoss))
            charts.Add(Svg.LineChart("loss per epoch", "epoch", "loss", epochLoss, logY: false) + Svg.Legend(epochLoss));
        if (anyAccuracy && Svg.HasLine(acc))
            charts.Add(Svg.LineChart("accuracy per epoch", "epoch", "accuracy", acc, logY: false) + Svg.Legend(acc));
        var few = runs.Where(r => r.Run.Epochs.Count is > 0 and < 2).ToArray();
        if (charts.Count == 0 && few.Length == 0) return;
        html.Append("<h2>Loss and accuracy</h2>");
        if (few.Length > 0)
        {
            html.Append("<table><tr><th style=\"text-align:left\">run</th><th>epoch</th><th>train loss</th><th>test loss</th>").Append(anyAccuracy ? "<th>train accuracy</th><th>test accuracy</th>" : "").Append("</tr>");
            foreach (var (label, run) in few)
                foreach (var e in run.Epochs)
                {
                    html.Append(CultureInfo.InvariantCulture, $"<tr><td style=\"text-align:left\">{Svg.E(label)}</td><td>{e.Epoch}</td><td>{Svg.Value(e.TrainLoss)}</td><td>{Svg.Value(e.TestLoss)}</td>");
                    if (anyAccuracy) html.Append(CultureInfo.InvariantCulture, $"<td>{Percent(e.TrainAccuracy)}</td><td>{Percent(e.TestAccuracy)}</td>");
                    html.Append("</tr>");
                }
            html.Append("</table>");
        }
        html.Append("<div class=\"grid2\">");
        foreach (var c in charts) html.Append("<div class=\"card\">").Append(c).Append("</div>");
        html.Append("</div>");
    }

    private static string Percent(double v) => double.IsNaN(v) ? "-" : v.ToString("P1", CultureInfo.InvariantCulture);

    private static void GradientFlow(StringBuilder html, RunData run)
    {
        html.Append("<h2>Gradient flow</h2>");
        var samples = run.Samples;
        if (samples.Count == 0)
        {
            html.Append("<p class=\"muted\">no monitor samples: run with --monitor (or gradflow diagnose --out) to record the gradient flow.</p>");
            return;
        }
        var moments = new[] { 0, samples.Count / 2, samples.Count - 1 }.Distinct().ToArray();
        var flow = moments.Select((m, i) => new Series($"step {samples[m].Step}", samples[m].Layers.Select(l => ((double)l.LayerIndex, l.BackpropagatedSignalRms)).ToArray(), Svg.Palette[i])).ToArray();
        var grads = moments.Select((m, i) => new Series($"step {samples[m].Step}", samples[m].Layers.Select(l => ((double)l.LayerIndex, l.ParameterGradientNorm)).ToArray(), Svg.Palette[i])).ToArray();
        html.Append("<div class=\"grid2\"><div class=\"card\">")
            .Append(Svg.LineChart("backpropagated signal RMS per layer (1 = input side)", "layer", "RMS of dL/dh", flow, logY: true)).Append(Svg.Legend(flow))
            .Append("</div><div class=\"card\">")
            .Append(Svg.LineChart("weight gradient norm per layer", "layer", "||dL/dW||", grads, logY: true)).Append(Svg.Legend(grads)).Append("</div></div>");
        int layers = samples[^1].Layers.Length;
        // at most MaxHeatmapColumns columns (evenly spaced samples, the first and the last among them): a long run fits the page
        var shown = samples.Count <= MaxHeatmapColumns ? samples.ToArray()
            : Enumerable.Range(0, MaxHeatmapColumns).Select(i => samples[(int)((long)i * (samples.Count - 1) / (MaxHeatmapColumns - 1))]).ToArray();
        var values = new double[layers, shown.Length];
        for (int c = 0; c < shown.Length; c++)
            for (int r = 0; r < layers; r++)
            {
                if (r >= shown[c].Layers.Length) { values[r, c] = double.NaN; continue; }
                var l = shown[c].Layers[layers - 1 - r];
                values[r, c] = double.IsNaN(l.BackpropagatedSignalRms) && l.NonFinite > 0 ? double.PositiveInfinity : l.BackpropagatedSignalRms;
            }
        html.Append("<div class=\"card\">").Append(Svg.Heatmap("log10 signal RMS, layer × sampled step" + (shown.Length < samples.Count ? $" ({shown.Length} of {samples.Count} samples)" : ""), "layer", "step",
            Enumerable.Range(0, layers).Select(r => (layers - r).ToString(CultureInfo.InvariantCulture)).ToArray(),
            shown.Select(s => s.Step.ToString(CultureInfo.InvariantCulture)).ToArray(), values)).Append("</div>");
        var last = samples[^1];
        var names = last.Layers.Select(l => l.LayerIndex.ToString(CultureInfo.InvariantCulture)).ToArray();
        var ratios = last.Layers.Select(l => ((double)l.LayerIndex, l.UpdateRatio)).ToArray();
        html.Append("<div class=\"grid2\"><div class=\"card\">").Append(Svg.Bars($"saturated units per layer (step {last.Step})", names, last.Layers.Select(l => l.Saturation).ToArray(), "#ff7f0e"))
            .Append("</div><div class=\"card\">").Append(Svg.Bars($"dead units per layer (step {last.Step})", names, last.Layers.Select(l => l.DeadUnits).ToArray(), "#8c564b"))
            .Append("</div><div class=\"card\">").Append(Svg.LineChart($"update ratio ||ΔW||/||W|| (step {last.Step})", "layer index", "ratio", [new Series("update ratio", ratios, "#17becf")], logY: true))
            .Append("</div></div>");
    }

    /// <summary>The layer × step heatmap shows at most this many samples (2 px each), evenly spaced.</summary>
    public const int MaxHeatmapColumns = 450;

    /// <summary>Values below this fraction of a layer's last-step signal (an underflowed 0 included) are drawn at it.</summary>
    public const double TimeFloor = 1e-30;

    /// <summary>
    /// <paramref name="signal"/> relative to its last step, binned to at most <paramref name="columns"/>
    /// columns by the geometric mean (the mean of log10: a decay over many decades is not hidden by the
    /// largest value of a bin); 0 and values below <see cref="TimeFloor"/> count as the floor, NaN stays NaN.
    /// </summary>
    public static double[] RelativeTimeBins(double[] signal, int columns)
    {
        ArgumentNullException.ThrowIfNull(signal);
        int steps = signal.Length, n = Math.Min(columns, steps);
        var bins = new double[n];
        double top = steps > 0 ? signal[^1] : double.NaN;
        for (int c = 0; c < n; c++)
        {
            int from = (int)((long)c * steps / n), to = (int)((long)(c + 1) * steps / n);
            double sum = 0;
            int count = 0;
            bool nan = false;
            for (int t = from; t < to; t++)
            {
                double r = signal[t] / top;
                if (double.IsNaN(r)) { nan = true; break; }
                sum += Math.Log10(Math.Max(TimeFloor, Math.Min(r, 1e30)));
                count++;
            }
            bins[c] = nan || count == 0 ? double.NaN : Math.Pow(10, sum / count);
        }
        return bins;
    }

    private static void ThroughTime(StringBuilder html, RunData run)
    {
        var samples = run.Samples.Where(s => s.TimeSignal is { Length: > 0 } t && t[^1].Length >= 2).ToArray();
        if (samples.Length == 0) return;
        const int maxColumns = 100;
        var last = samples[^1];
        var time = last.TimeSignal!;
        int steps = time[^1].Length, columns = Math.Min(maxColumns, steps);
        string[] ColumnLabels(int n) => Enumerable.Range(0, n).Select(c => (c * steps / n + 1).ToString(CultureInfo.InvariantCulture)).ToArray();
        html.Append("<h2>Gradient flow through time</h2><p class=\"muted\">RMS of dL/dh_t, the signal backpropagation through time has carried to time step t, relative to the last step's (where the read-out's gradient enters); ")
            .Append(steps > maxColumns ? $"steps binned {maxColumns} columns wide by the geometric mean; " : "")
            .Append("values below 1e-30 (an underflow to 0 included) are drawn at 1e-30. A vanishing signal is dark on the left.</p>");
        // (a) recurrent layer × time step, last sample
        var layerValues = new double[time.Length, columns];
        for (int k = 0; k < time.Length; k++)
        {
            var bins = time[time.Length - 1 - k].Length >= 2 ? RelativeTimeBins(time[time.Length - 1 - k], columns) : [];
            for (int c = 0; c < columns; c++) layerValues[k, c] = c < bins.Length ? bins[c] : double.NaN;
        }
        html.Append("<div class=\"card\">").Append(Svg.Heatmap($"signal through time / last step's, recurrent layer × time step (step {last.Step})", "layer", "time step",
            Enumerable.Range(0, time.Length).Select(k => (time.Length - k).ToString(CultureInfo.InvariantCulture)).ToArray(), ColumnLabels(columns), layerValues)).Append("</div>");
        // (b) training step × time step, top layer
        var shown = samples.Length <= 40 ? samples : Enumerable.Range(0, 40).Select(i => samples[i * (samples.Length - 1) / 39]).Distinct().ToArray();
        var stepValues = new double[shown.Length, columns];
        for (int r = 0; r < shown.Length; r++)
        {
            var top = shown[r].TimeSignal![^1];
            var bins = top.Length == steps ? RelativeTimeBins(top, columns) : [];
            for (int c = 0; c < columns; c++) stepValues[r, c] = c < bins.Length ? bins[c] : double.NaN;
        }
        html.Append("<div class=\"card\">").Append(Svg.Heatmap("signal through time / last step's, top recurrent layer: training step × time step", "training step", "time step",
            shown.Select(s => s.Step.ToString(CultureInfo.InvariantCulture)).ToArray(), ColumnLabels(columns), stepValues)).Append("</div>");
        // (c) the signal against the lag, a few moments, with the vanishing threshold
        var moments = new[] { 0, samples.Length / 2, samples.Length - 1 }.Distinct().ToArray();
        var series = moments.Select((m, i) =>
        {
            var sig = samples[m].TimeSignal![^1];
            return new Series($"step {samples[m].Step}", Enumerable.Range(0, sig.Length).Select(k => ((double)k, Math.Max(TimeFloor, sig[^(k + 1)] / sig[^1]))).ToArray(), Svg.Palette[i]);
        }).ToList();
        double threshold = new DiagnosisSettings().VanishingRatio;
        series.Add(new Series($"vanishing threshold {threshold:E0}", [(0.0, threshold), (steps - 1.0, threshold)], "#999999", Dashed: true));
        html.Append("<div class=\"card\">").Append(Svg.LineChart("signal / last step's against the lag (top recurrent layer)", "lag (steps back from the last)", "relative RMS of dL/dh_t", series, logY: true, width: 900, height: 320))
            .Append(Svg.Legend(series, 900)).Append("</div>");
    }

    /// <summary>Transformer layers: each head's attention entropy over training, each block's signal, and the parameter-gradient norm by layer index at the first sample.</summary>
    private static void TransformerLayers(StringBuilder html, RunData run)
    {
        var samples = run.Samples.Where(s => s.Blocks is { Length: > 0 }).ToArray();
        if (samples.Length == 0) return;
        var first = samples[0].Blocks!;
        double maxEntropy = first[0].MaxEntropy, threshold = new DiagnosisSettings().EntropyCollapseFraction * maxEntropy;
        html.Append("<h2>Transformer layers</h2><p class=\"muted\">Each head's attention entropy (nats, mean over the queries and the batch; ln S = ")
            .Append(Svg.Value(maxEntropy)).Append(" is uniform attention over S keys, 0 one-hot; the dashed line is the collapse threshold of the diagnosis), each layer's backpropagated signal at its output, and the parameter-gradient norm of every monitored layer at the first sample (Xiong et al. 2020: Post-LN's grows toward the output).</p>");
        var series = new List<Series>();
        for (int k = 0, c = 0; k < first.Length; k++)
            for (int h = 0; h < first[k].AttentionEntropy.Length; h++, c++)
            {
                int block = k, head = h;
                series.Add(new Series($"layer {k + 1} head {h + 1}", samples.Where(s => s.Blocks!.Length > block && double.IsFinite(s.Blocks[block].AttentionEntropy[head]))
                    .Select(s => ((double)s.Step, s.Blocks![block].AttentionEntropy[head])).ToArray(), Svg.Palette[c % Svg.Palette.Length]));
            }
        double lastStep = samples[^1].Step, firstStep = samples[0].Step;
        if (double.IsFinite(maxEntropy))
        {
            series.Add(new Series("ln S", [(firstStep, maxEntropy), (lastStep, maxEntropy)], "#999999"));
            series.Add(new Series("collapse threshold", [(firstStep, threshold), (lastStep, threshold)], "#999999", Dashed: true));
        }
        html.Append("<div class=\"card\">").Append(Svg.LineChart("attention entropy per head", "step", "entropy (nats)", series, logY: false, width: 900, height: 320))
            .Append(Svg.Legend(series, 900)).Append("</div>");
        var signals = Enumerable.Range(0, first.Length).Select(k => new Series($"layer {k + 1}",
            samples.Where(s => s.Blocks!.Length > k && s.Blocks[k].BackpropagatedSignalRms > 0).Select(s => ((double)s.Step, s.Blocks![k].BackpropagatedSignalRms)).ToArray(),
            Svg.Palette[k % Svg.Palette.Length])).ToList();
        html.Append("<div class=\"card\">").Append(Svg.LineChart("signal at each transformer layer's output (RMS of dL/dx)", "step", "RMS", signals, logY: true))
            .Append(Svg.Legend(signals)).Append("</div>");
        var layers = samples[0].Layers;
        html.Append("<div class=\"card\">").Append(Svg.Bars($"parameter-gradient norm by layer index, step {samples[0].Step}",
            layers.Select(l => l.LayerIndex.ToString(CultureInfo.InvariantCulture)).ToArray(), layers.Select(l => l.ParameterGradientNorm).ToArray(), Svg.Palette[0])).Append("</div>");
    }
}
