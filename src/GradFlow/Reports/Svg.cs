using System.Globalization;
using System.Net;
using System.Text;

namespace GradFlow.Reports;

/// <summary>A series of (x, y) points for a line chart; non-finite y values are drawn as red markers at the chart's edge.</summary>
public sealed record Series(string Label, IReadOnlyList<(double X, double Y)> Points, string Color, bool Dashed = false);

/// <summary>Small inline-SVG charts (line, heatmap, bars), written once and shared by every report section.</summary>
public static class Svg
{
    /// <summary>Colours for successive series.</summary>
    public static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>HTML-escapes text.</summary>
    public static string E(string s) => WebUtility.HtmlEncode(s);

    /// <summary>
    /// Round tick values ("nice numbers", Heckbert 1990) covering [<paramref name="lo"/>, <paramref name="hi"/>]:
    /// about <paramref name="target"/> ticks, spaced 1, 2 or 5 × 10^k, the first at or below lo and the last at or
    /// above hi. With <paramref name="integers"/> the spacing is at least 1 (steps, epochs, layers).
    /// </summary>
    public static double[] NiceTicks(double lo, double hi, int target = 5, bool integers = false)
    {
        if (!double.IsFinite(lo) || !double.IsFinite(hi) || hi < lo) throw new ArgumentException($"NiceTicks: [{lo}, {hi}] is not a finite interval.");
        if (hi == lo) { lo -= integers ? 1 : Math.Max(Math.Abs(lo) * 0.1, 0.5); hi += integers ? 1 : Math.Max(Math.Abs(hi) * 0.1, 0.5); }
        double step = Nice((hi - lo) / Math.Max(1, target - 1));
        if (integers) step = Math.Max(1, step);
        double first = Math.Floor(lo / step + 1e-9) * step, last = Math.Ceiling(hi / step - 1e-9) * step;
        int n = (int)Math.Round((last - first) / step);
        var ticks = new double[n + 1];
        for (int i = 0; i <= n; i++) ticks[i] = Math.Round((first + i * step) / step) * step; // 0.30000000000000004 -> 0.3
        return ticks;
    }

    /// <summary>The nice number nearest <paramref name="x"/> &gt; 0: 1, 2 or 5 × 10^k.</summary>
    private static double Nice(double x)
    {
        double e = Math.Pow(10, Math.Floor(Math.Log10(x))), f = x / e;
        return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * e;
    }

    /// <summary>A tick label with as many decimals as the tick spacing needs (0.5, 1, 1.5; 0.02; 2000).</summary>
    public static string TickLabel(double v, double spacing)
    {
        int decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(spacing) + 1e-9), 0, 12);
        return Math.Abs(v) >= 1e6 || (v != 0 && Math.Abs(v) < 1e-4) ? v.ToString("0.##E+0", CultureInfo.InvariantCulture)
            : v.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>A value for a hover label: 4 significant digits, exponent form outside [1e-3, 1e5).</summary>
    public static string Value(double v) =>
        !double.IsFinite(v) ? v.ToString(CultureInfo.InvariantCulture)
        : v != 0 && (Math.Abs(v) < 1e-3 || Math.Abs(v) >= 1e5) ? v.ToString("0.###E+0", CultureInfo.InvariantCulture) : v.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>Whether a chart of these series would show a line: some series has at least two finite points.</summary>
    public static bool HasLine(IEnumerable<Series> series, bool logY = false) =>
        series.Any(s => s.Points.Count(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logY || p.Y > 0)) >= 2);

    /// <summary>
    /// A line chart with round tick values; with <paramref name="logY"/> the y axis is log10 with a tick per decade
    /// (a non-positive value is a triangle of its series' colour at the foot, ±∞ a magenta one at the top). Every point carries its value for the report's hover label
    /// (<c>data-tip</c>); callers leave out charts of fewer than two points (<see cref="HasLine"/>).
    /// </summary>
    public static string LineChart(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logY, int width = 560, int height = 300)
    {
        const int left = 64, right = 16, top = 28, bottom = 44;
        double Tr(double y) => logY ? Math.Log10(y) : y;
        bool Ok(double y) => double.IsFinite(y) && (!logY || y > 0);
        var finite = series.SelectMany(s => s.Points).Where(p => Ok(p.Y) && double.IsFinite(p.X)).ToArray();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"18\" text-anchor=\"middle\" class=\"title\">{E(title)}</text>");
        if (finite.Length == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"{height / 2}\" text-anchor=\"middle\" class=\"muted\">no finite values</text></svg>");
            return sb.ToString();
        }
        bool integerX = finite.All(p => p.X == Math.Round(p.X));
        // the x axis spans the data (a step axis does not run on past the last step); its ticks are the round values inside
        double x0 = finite.Min(p => p.X), x1 = finite.Max(p => p.X);
        if (x1 == x0) { x0 -= 1; x1 += 1; }
        var xTicks = NiceTicks(x0, x1, 6, integerX).Where(t => t >= x0 - 1e-9 * (x1 - x0) && t <= x1 + 1e-9 * (x1 - x0)).ToArray();
        double[] yTicks;
        if (logY)
        {
            double lo = Math.Floor(finite.Min(p => Tr(p.Y))), hi = Math.Ceiling(finite.Max(p => Tr(p.Y)));
            if (hi == lo) hi = lo + 1;
            int decadeStep = Math.Max(1, (int)Math.Ceiling((hi - lo) / 8));
            hi = lo + Math.Ceiling((hi - lo) / decadeStep) * decadeStep;
            yTicks = Enumerable.Range(0, (int)((hi - lo) / decadeStep) + 1).Select(i => lo + i * decadeStep).ToArray();
        }
        else yTicks = NiceTicks(finite.Min(p => p.Y), finite.Max(p => p.Y), 5);
        double y0 = yTicks[0], y1 = yTicks[^1];
        double pw = width - left - right, ph = height - top - bottom;
        double X(double x) => left + (x - x0) / (x1 - x0) * pw;
        double Y(double y) => top + ph - (Tr(y) - y0) / (y1 - y0) * ph;
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left}\" y=\"{top}\" width=\"{F(pw)}\" height=\"{F(ph)}\" class=\"plot\"/>");
        double ySpacing = yTicks.Length > 1 ? yTicks[1] - yTicks[0] : 1;
        foreach (double v in yTicks)
        {
            double py = top + ph - (v - y0) / (y1 - y0) * ph;
            string label = logY ? "1e" + F(Math.Round(v)) : TickLabel(v, ySpacing);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" x2=\"{F(left + pw)}\" y1=\"{F(py)}\" y2=\"{F(py)}\" class=\"grid\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 6}\" y=\"{F(py + 4)}\" text-anchor=\"end\" class=\"tick\">{label}</text>");
        }
        double xSpacing = xTicks.Length > 1 ? xTicks[1] - xTicks[0] : integerX ? 1 : Math.Abs(x1 - x0);
        foreach (double v in xTicks)
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(X(v))}\" y=\"{F(top + ph + 16)}\" text-anchor=\"middle\" class=\"tick\">{TickLabel(v, xSpacing)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + pw / 2)}\" y=\"{height - 6}\" text-anchor=\"middle\" class=\"axis\">{E(xLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{F(top + ph / 2)}\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 14 {F(top + ph / 2)})\">{E(yLabel)}</text>");
        bool belowScale = false;
        foreach (var s in series)
        {
            var pts = s.Points.Where(p => Ok(p.Y) && double.IsFinite(p.X)).ToArray();
            // one line per run of drawable points: a point off the scale (0 on a log axis, ±∞) breaks it rather than being bridged
            var run = new List<(double X, double Y)>();
            foreach (var p in s.Points.Append((X: double.NaN, Y: double.NaN)))
            {
                if (double.IsFinite(p.X) && Ok(p.Y)) { run.Add(p); continue; }
                if (double.IsNaN(p.Y) && double.IsFinite(p.X)) continue; // no data at that x: the line goes on
                if (run.Count > 0)
                    sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"2\"{(s.Dashed ? " stroke-dasharray=\"6 4\"" : "")} points=\"{string.Join(" ", run.Select(q => $"{F(X(q.X))},{F(Y(q.Y))}"))}\"/>");
                run.Clear();
            }
            bool marks = pts.Length <= 40;
            foreach (var p in pts) // a visible marker for a few points, an invisible target for the hover label otherwise
                sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{F(X(p.X))}\" cy=\"{F(Y(p.Y))}\" r=\"{(marks ? 3 : 4)}\" fill=\"{(marks ? s.Dashed ? "#fff" : s.Color : "transparent")}\" stroke=\"{(marks ? s.Color : "none")}\" data-tip=\"{E($"{s.Label}: {xLabel} {Value(p.X)}, {yLabel} {Value(p.Y)}")}\"/>");
            foreach (var p in s.Points.Where(p => !Ok(p.Y) && double.IsFinite(p.X) && !double.IsNaN(p.Y)))
            {
                // ±∞ at the top in magenta; a finite 0 (or a negative value) has no place on a log axis: a triangle of the series' colour
                // at the foot (a zero-initialised branch's weight gradient at the first step is 0, not non-finite)
                if (double.IsFinite(p.Y))
                {
                    belowScale = true;
                    sb.Append(CultureInfo.InvariantCulture, $"<path d=\"M{F(X(p.X) - 5)},{F(top + ph - 2)} l10,0 l-5,-9 z\" fill=\"{s.Color}\" class=\"belowscale\" " +
                        $"data-tip=\"{E($"{s.Label}: {yLabel} {Value(p.Y)} at {xLabel} {Value(p.X)}, off the log scale")}\"/>");
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"<path d=\"M{F(X(p.X) - 5)},{top + 2} l10,0 l-5,9 z\" class=\"nonfinite\" data-tip=\"{E($"{s.Label}: non-finite at {xLabel} {Value(p.X)}")}\"/>");
                }
            }
        }
        if (belowScale)
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + pw)}\" y=\"{F(top + ph + 30)}\" text-anchor=\"end\" class=\"muted\">▲ at the foot: 0, off the log scale</text>");
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>The legend of a set of series (HTML): a swatch drawn as the line is (colour and dashes), wrapping below the chart, never over it.</summary>
    public static string Legend(IEnumerable<Series> series, int width = 560) =>
        $"<div class=\"legend\" style=\"max-width:{width}px\">" + string.Concat(series.Select(s =>
            $"<span><i style=\"border-top:3px {(s.Dashed ? "dashed" : "solid")} {s.Color}\"></i>{E(s.Label)}</span>")) + "</div>";

    /// <summary>
    /// A heatmap of log10 values (rows top to bottom, columns left to right) in the viridis palette;
    /// non-finite cells are magenta and listed in the legend, never dropped; cells of exactly 0 are black, listed when present. Rows are at least 12 px tall
    /// (a 2-layer model gets rows of 32 px); columns share about 900 px; the row labels are thinned so
    /// that they never overlap, the column labels spaced at least 56 px apart, and the left margin fits
    /// the longest row label. Every cell carries its value for the hover label.
    /// </summary>
    public static string Heatmap(string title, string rowLabel, string columnLabel, IReadOnlyList<string> rows, IReadOnlyList<string> columns,
        double[,] values, int plotWidth = 900)
    {
        int nr = rows.Count, nc = columns.Count;
        int rowHeight = Math.Clamp(160 / Math.Max(1, nr), 12, 32);
        double cw = Math.Clamp((double)plotWidth / Math.Max(1, nc), 1, 24);
        int left = 34 + 7 * Math.Max(2, rows.Count == 0 ? 2 : rows.Max(r => r.Length)), top = 28;
        int legendTop = top, plotHeight = nr * rowHeight;
        int width = (int)Math.Max(420, left + nc * cw + 130), height = top + Math.Max(plotHeight, 125) + 50;
        var logs = new List<double>();
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < nc; c++)
                if (double.IsFinite(values[r, c]) && values[r, c] > 0) logs.Add(Math.Log10(values[r, c]));
        double lo = logs.Count > 0 ? Math.Floor(logs.Min()) : 0, hi = logs.Count > 0 ? Math.Ceiling(logs.Max()) : 1;
        if (hi - lo < 1) hi = lo + 1;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"18\" text-anchor=\"middle\" class=\"title\">{E(title)}</text>");
        bool anyNonFinite = false, anyZero = false;
        int labelEvery = (int)Math.Ceiling(12.0 / rowHeight);
        for (int r = 0; r < nr; r++)
        {
            if (r % labelEvery == 0)
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 6}\" y=\"{top + r * rowHeight + rowHeight / 2 + 4}\" text-anchor=\"end\" class=\"tick\">{E(rows[r])}</text>");
            for (int c = 0; c < nc; c++)
            {
                double v = values[r, c];
                string fill;
                if (double.IsNaN(v)) fill = "#eeeeee";
                else if (!double.IsFinite(v)) { fill = "#ff00ff"; anyNonFinite = true; }
                else if (v <= 0) { fill = "#000000"; anyZero = true; } // a signal of exactly 0 (a dead layer, a zero-started branch): no log, not non-finite
                else fill = Viridis((Math.Log10(v) - lo) / (hi - lo));
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(left + c * cw)}\" y=\"{top + r * rowHeight}\" width=\"{F(cw + 0.02)}\" height=\"{rowHeight}\" fill=\"{fill}\" data-tip=\"{E($"{rowLabel} {rows[r]}, {columnLabel} {columns[c]}: {v.ToString("E2", CultureInfo.InvariantCulture)}")}\"/>");
            }
        }
        int step = Math.Max(1, (int)Math.Ceiling(56 / cw));
        for (int c = 0; c < nc; c += step)
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + c * cw + cw / 2)}\" y=\"{top + plotHeight + 14}\" text-anchor=\"middle\" class=\"tick\">{E(columns[c])}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + nc * cw / 2)}\" y=\"{top + plotHeight + 32}\" text-anchor=\"middle\" class=\"axis\">{E(columnLabel)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"12\" y=\"{top + plotHeight / 2}\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 12 {top + plotHeight / 2})\">{E(rowLabel)}</text>");
        double lx = left + nc * cw + 16;
        for (int i = 0; i < 10; i++)
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(lx)}\" y=\"{legendTop + (9 - i) * 10}\" width=\"14\" height=\"10\" fill=\"{Viridis(i / 9.0)}\"/>");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(lx + 18)}\" y=\"{legendTop + 8}\" class=\"tick\">1e{F(hi)}</text><text x=\"{F(lx + 18)}\" y=\"{legendTop + 100}\" class=\"tick\">1e{F(lo)}</text>");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(lx)}\" y=\"{legendTop + 110}\" width=\"14\" height=\"10\" fill=\"#ff00ff\"/><text x=\"{F(lx + 18)}\" y=\"{legendTop + 119}\" class=\"tick\">non-finite{(anyNonFinite ? " (present)" : "")}</text>");
        if (anyZero)
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(lx)}\" y=\"{legendTop + 124}\" width=\"14\" height=\"10\" fill=\"#000000\"/><text x=\"{F(lx + 18)}\" y=\"{legendTop + 133}\" class=\"tick\">0 (present)</text>");
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>
    /// The hover label of a report (one small inline script; the page stays one self-contained file): the
    /// <c>data-tip</c> of the point or cell under the pointer, shown beside it.
    /// </summary>
    public const string HoverScript = """
        //<![CDATA[
        (function () {
          var tip = document.createElement('div'); tip.id = 'tip'; document.body.appendChild(tip);
          document.addEventListener('mouseover', function (e) {
            var el = e.target.closest ? e.target.closest('[data-tip]') : null;
            if (!el) { tip.style.display = 'none'; return; }
            tip.textContent = el.getAttribute('data-tip'); tip.style.display = 'block';
          });
          document.addEventListener('mousemove', function (e) { tip.style.left = (e.pageX + 12) + 'px'; tip.style.top = (e.pageY + 12) + 'px'; });
        })();
        //]]>
        """;

    /// <summary>Vertical bars of fractions in [0, 1] per category (NaN bars are marked "n/a").</summary>
    public static string Bars(string title, IReadOnlyList<string> categories, IReadOnlyList<double> values, string color, int width = 560, int height = 220)
    {
        const int left = 48, top = 28, bottom = 36;
        double pw = width - left - 12, ph = height - top - bottom;
        double bw = pw / Math.Max(1, categories.Count);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append($"<text x=\"{width / 2}\" y=\"18\" text-anchor=\"middle\" class=\"title\">{E(title)}</text>");
        sb.Append($"<rect x=\"{left}\" y=\"{top}\" width=\"{F(pw)}\" height=\"{F(ph)}\" class=\"plot\"/>");
        foreach (var t in new[] { 0.0, 0.5, 1.0 })
        {
            double y = top + ph - t * ph;
            sb.Append($"<line x1=\"{left}\" x2=\"{F(left + pw)}\" y1=\"{F(y)}\" y2=\"{F(y)}\" class=\"grid\"/><text x=\"{left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\" class=\"tick\">{t * 100:0}%</text>");
        }
        for (int i = 0; i < categories.Count; i++)
        {
            double v = values[i], x = left + i * bw;
            if (double.IsNaN(v))
                sb.Append($"<text x=\"{F(x + bw / 2)}\" y=\"{F(top + ph - 4)}\" text-anchor=\"middle\" class=\"muted\">n/a</text>");
            else
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x + bw * 0.15)}\" y=\"{F(top + ph - Math.Clamp(v, 0, 1) * ph)}\" width=\"{F(bw * 0.7)}\" height=\"{F(Math.Clamp(v, 0, 1) * ph)}\" fill=\"{color}\" data-tip=\"{E(categories[i])}: {v.ToString("P1", CultureInfo.InvariantCulture)}\"/>");
            if (categories.Count <= 30 || i % Math.Max(1, categories.Count / 15) == 0)
                sb.Append($"<text x=\"{F(x + bw / 2)}\" y=\"{F(top + ph + 14)}\" text-anchor=\"middle\" class=\"tick\">{E(categories[i])}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>The viridis colour map at t in [0, 1] (piecewise-linear through 6 of its stops).</summary>
    public static string Viridis(double t)
    {
        (double R, double G, double B)[] stops = [(68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81), (253, 231, 37)];
        t = Math.Clamp(double.IsFinite(t) ? t : 0, 0, 1) * (stops.Length - 1);
        int i = Math.Min((int)t, stops.Length - 2);
        double f = t - i;
        var (r, g, b) = (stops[i].R + (stops[i + 1].R - stops[i].R) * f, stops[i].G + (stops[i + 1].G - stops[i].G) * f, stops[i].B + (stops[i + 1].B - stops[i].B) * f);
        return $"#{(int)r:x2}{(int)g:x2}{(int)b:x2}";
    }
}
