using System.Globalization;
using System.Text;
using GradFlow.Diagnostics;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace GradFlow.Cli;

/// <summary>Monitor samples and diagnoses for the terminal, drawn with Spectre.Console (plain text when not a terminal, see <see cref="Terminal"/>).</summary>
internal static class DiagnosisView
{
    /// <summary>Writes the per-layer table of <paramref name="s"/> to <paramref name="w"/>.</summary>
    public static void WriteLayerTable(TextWriter w, MonitorSample s)
    {
        var console = Terminal.For(w);
        Terminal.Write(w, console, LayerTable(s, Terminal.IsTerminal(w), console.Profile.Width));
    }

    /// <summary>
    /// A per-layer table: signal RMS with a log-scale bar (1e-12 to 1e+2), gain, weight-gradient norm,
    /// saturation, dead units; then the gradient ratio, and the signal through time of recurrent layers.
    /// The bar takes 28 characters (two a decade), fewer when <paramref name="width"/> is narrow, so that a row fits a line.
    /// </summary>
    public static IRenderable LayerTable(MonitorSample s, bool tty, int width)
    {
        int barWidth = Math.Clamp(width - 82, 10, 28);
        var table = Terminal.Table(tty, ("layer", true), ("activation", false), ("signal RMS", true), ("log10, bar from 1e-12 to 1e+2", false),
            ("gain", true), ("grad norm", true), ("saturated", true), ("dead", true));
        if (tty) table.Border = TableBorder.Simple; // the per-layer table is wide: no vertical rules in the terminal either
        foreach (var column in table.Columns) column.NoWrap();
        foreach (var l in s.Layers)
        {
            double lg = Math.Log10(l.BackpropagatedSignalRms);
            int len = double.IsFinite(lg) ? Math.Clamp((int)Math.Round((lg + 12) / 14 * barWidth), 0, barWidth) : barWidth;
            string bar = double.IsFinite(lg) ? new string('█', len).PadRight(barWidth) : "non-finite".PadRight(barWidth);
            string colour = !double.IsFinite(lg) ? "magenta" : lg < -6 ? "red" : lg > 1 ? "yellow" : "green";
            // a transformer layer is two monitored layers, its attention and its feed-forward sub-layer (each was labelled "(output)")
            var block = s.Blocks?.FirstOrDefault(b => l.LayerIndex == b.AttentionLayer || l.LayerIndex == b.AttentionLayer + 1);
            string activation = l.Activation is { } a ? Nn.ModelSpec.NameOf(a)
                : l.LayerIndex <= (s.TimeSignal?.Length ?? 0) ? "(recurrent)"
                : block is not null ? (l.LayerIndex == block.AttentionLayer ? $"(attention {block.Block})" : $"(feed-forward {block.Block})")
                : l.LayerIndex == s.Layers[^1].LayerIndex ? "(output)" : "-";
            table.AddRow(
                I(l.LayerIndex), Markup.Escape(activation), E2(l.BackpropagatedSignalRms),
                tty ? $"[{colour}]{Markup.Escape(bar)}[/]" : bar,
                F(l.Gain, "F3"), E2(l.ParameterGradientNorm), P(l.Saturation), P(l.DeadUnits));
        }
        var footer = new StringBuilder(string.Create(CultureInfo.InvariantCulture,
            $" gradient ratio (signal at layer 1 / layer {s.Layers.Length}): {s.GradientRatio:E2}   loss {s.Loss:F4}   global gradient norm {s.GlobalGradientNorm:E2}"));
        if (s.TimeSignal is { } time)
            for (int k = 0; k < time.Length; k++)
                if (time[k].Length >= 2) footer.Append('\n').Append(TimeLine(k + 1, time[k]));
        return new Rows(table, new Text(footer.ToString()));
    }

    /// <summary>
    /// One recurrent layer's signal through time as a line: a log-scale character per time step
    /// (the steps binned to at most 50 by the mean of log10), relative to the last step, then the ratio
    /// of the first to the last step.
    /// </summary>
    internal static string TimeLine(int layer, double[] signal)
    {
        const string levels = " ▁▂▃▄▅▆▇█";
        int steps = signal.Length, columns = Math.Min(50, steps);
        double top = signal[^1];
        var sb = new StringBuilder();
        for (int c = 0; c < columns; c++)
        {
            int from = c * steps / columns, to = (c + 1) * steps / columns;
            double sum = 0;
            int n = 0;
            for (int t = from; t < to; t++)
            {
                double r = signal[t] / top;
                sum += r > 0 && double.IsFinite(r) ? Math.Log10(r) : -12;
                n++;
            }
            double lg = sum / Math.Max(1, n); // 0 = as strong as the last step, -12 or less = nothing
            sb.Append(levels[Math.Clamp((int)Math.Round((lg + 12) / 12 * (levels.Length - 1)), 0, levels.Length - 1)]);
        }
        return string.Create(CultureInfo.InvariantCulture,
            $" through time, recurrent layer {layer}: t=1 |{sb}| t={steps}  (log scale, 1e-12..1 of the last step; first/last {signal[0] / top:E1})");
    }

    /// <summary>Writes the verdict of <paramref name="d"/>: in a terminal coloured, in a panel; otherwise the text of <see cref="Verdict"/>.</summary>
    public static void WriteVerdict(TextWriter w, Diagnosis d)
    {
        if (!Terminal.IsTerminal(w))
        {
            w.WriteLine(Verdict(d));
            return;
        }
        var panel = new Panel(new Markup(Markup.Escape(Verdict(d))))
        {
            Header = new PanelHeader(!d.Healthy ? "[red bold] problem found [/]" : d.TrendNeedsSamples is null ? "[green bold] healthy [/]" : "[yellow bold] not judged [/]"),
            Border = BoxBorder.Rounded,
            BorderStyle = new Style(!d.Healthy ? Color.Red : d.TrendNeedsSamples is null ? Color.Green : Color.Yellow),
        };
        Terminal.Write(w, panel);
    }

    /// <summary>The problems with causes and remedies, or "healthy", as plain text (also the verdict of TensorBoard's text tab).</summary>
    public static string Verdict(Diagnosis d)
    {
        if (d.Healthy && d.TrendNeedsSamples is int needed)
            return string.Create(CultureInfo.InvariantCulture,
                $"not judged: no problem found in {d.Samples} sample{(d.Samples == 1 ? "" : "s")} (gradient ratio {d.GradientRatio:E2}), but the loss-trend rules (stall, oscillation) need {needed}: run more steps, or sample more often") + PrecisionText(d);
        if (d.Healthy)
            return string.Create(CultureInfo.InvariantCulture, $"healthy: no problem found (gradient ratio {d.GradientRatio:E2} over {d.Samples} samples)") + PrecisionText(d);
        var sb = new StringBuilder();
        sb.AppendLine($"{d.Problems.Count} problem{(d.Problems.Count == 1 ? "" : "s")} found:");
        int i = 0;
        foreach (var p in d.Problems)
        {
            sb.AppendLine($"{++i}. {p.Summary}");
            if (double.IsFinite(p.Confidence))
                sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"   confidence {p.Confidence:P0} ({p.ConfidenceBasis})"));
            if (p.Causes.Count > 0)
            {
                sb.AppendLine("   causes, most likely first:");
                foreach (var c in p.Causes) sb.AppendLine($"     - {c.Name}: {c.Facts}");
            }
            if (p.Remedies.Count > 0)
            {
                sb.AppendLine("   remedies, best first:");
                foreach (var r in p.Remedies) sb.AppendLine($"     - [{r.Id}] {r.Description}");
            }
        }
        if (d.NonFiniteOrigin is { } o) sb.AppendLine($"first non-finite value: {o}");
        return sb.ToString().TrimEnd() + PrecisionText(d);
    }

    /// <summary>The precision notes, after the verdict: advice for fp16 or bf16 training, not problems of this run.</summary>
    private static string PrecisionText(Diagnosis d)
    {
        if (d.Precision.Count == 0) return "";
        var sb = new StringBuilder();
        sb.AppendLine().AppendLine().AppendLine("in lower precision (this float32 run is not affected):");
        foreach (var kind in d.Precision.GroupBy(n => n.Kind))
        {
            string layers = string.Join(", ", kind.Select(n => string.Create(CultureInfo.InvariantCulture, $"{n.Layer} ({n.Fraction:P0})")));
            string what = kind.Key == "fp16-gradient-underflow"
                ? "weight-gradient values below fp16's smallest subnormal 2^-24 (an fp16 run would lose them)"
                : "weight updates smaller than half a bf16 ulp of their weight (a bf16 weight would not move)";
            sb.AppendLine($"  - {what}, at layer{(kind.Count() == 1 ? "" : "s")} {layers}: {kind.First().Advice}");
        }
        return sb.ToString().TrimEnd();
    }

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static string E2(double v) => v.ToString("E2", CultureInfo.InvariantCulture);

    private static string F(double v, string format) => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);

    private static string P(double v) => double.IsNaN(v) ? "-" : (v * 100).ToString("F0", CultureInfo.InvariantCulture) + "%";
}
