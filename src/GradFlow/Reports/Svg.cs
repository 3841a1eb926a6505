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

    /// <summary>A line chart; with <paramref name="logY"/> the y axis is log10 (non-positive values count as non-finite).</summary>
    public static string LineChart(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logY, int width = 560, int height = 300)
    {
        const int left = 64, right = 16, top = 28, bottom = 44;
        double Tr(double y) => logY ? Math.Log10(y) : y;
        bool Ok(double y) => double.IsFinite(y) && (!logY || y > 0);
        var finite = series.SelectMany(s => s.Points).Where(p => Ok(p.Y) && double.IsFinite(p.X)).ToArray();
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append($"<text x=\"{width / 2}\" y=\"18\" text-anchor=\"middle\" class=\"title\">{E(title)}</text>");
        if (finite.Length == 0)
        {
            sb.Append($"<text x=\"{width / 2}\" y=\"{height / 2}\" text-anchor=\"middle\" class=\"muted\">no data</text></svg>");
            return sb.ToString();
        }
        double x0 = finite.Min(p => p.X), x1 = finite.Max(p => p.X);
        double y0 = finite.Min(p => Tr(p.Y)), y1 = finite.Max(p => Tr(p.Y));
        if (logY) { y0 = Math.Floor(y0); y1 = Math.Ceiling(y1); }
        if (x1 == x0) x1 = x0 + 1;
        if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
        double pw = width - left - right, ph = height - top - bottom;
        double X(double x) => left + (x - x0) / (x1 - x0) * pw;
        double Y(double y) => top + ph - (Tr(y) - y0) / (y1 - y0) * ph;
        sb.Append($"<rect x=\"{left}\" y=\"{top}\" width=\"{F(pw)}\" height=\"{F(ph)}\" class=\"plot\"/>");
        int decadeStep = logY ? Math.Max(1, (int)Math.Ceiling((y1 - y0) / 8)) : 1;
        int yTicks = logY ? (int)((y1 - y0) / decadeStep) : 5;
        for (int i = 0; i <= yTicks; i++)
        {
            double v = logY ? y0 + i * decadeStep : y0 + (y1 - y0) * i / Math.Max(1, yTicks);
            double py = top + ph - (v - y0) / (y1 - y0) * ph;
            string label = logY ? "1e" + F(Math.Round(v)) : v.ToString("G4", CultureInfo.InvariantCulture);
            sb.Append($"<line x1=\"{left}\" x2=\"{F(left + pw)}\" y1=\"{F(py)}\" y2=\"{F(py)}\" class=\"grid\"/>");
            sb.Append($"<text x=\"{left - 6}\" y=\"{F(py + 4)}\" text-anchor=\"end\" class=\"tick\">{label}</text>");
        }
        for (int i = 0; i <= 5; i++)
        {
            double v = x0 + (x1 - x0) * i / 5;
            sb.Append($"<text x=\"{F(X(v))}\" y=\"{F(top + ph + 16)}\" text-anchor=\"middle\" class=\"tick\">{v.ToString("G4", CultureInfo.InvariantCulture)}</text>");
        }
        sb.Append($"<text x=\"{F(left + pw / 2)}\" y=\"{height - 6}\" text-anchor=\"middle\" class=\"axis\">{E(xLabel)}</text>");
        sb.Append($"<text x=\"14\" y=\"{F(top + ph / 2)}\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 14 {F(top + ph / 2)})\">{E(yLabel)}</text>");
        foreach (var s in series)
        {
            var pts = s.Points.Where(p => Ok(p.Y) && double.IsFinite(p.X)).Select(p => $"{F(X(p.X))},{F(Y(p.Y))}");
            var list = pts.ToArray();
            sb.Append($"<polyline fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"2\"{(s.Dashed ? " stroke-dasharray=\"6 4\"" : "")} points=\"{string.Join(" ", list)}\"/>");
            if (list.Length <= 40)
                foreach (var p in list)
                {
                    var xy = p.Split(',');
                    sb.Append($"<circle cx=\"{xy[0]}\" cy=\"{xy[1]}\" r=\"3\" fill=\"{(s.Dashed ? "#fff" : s.Color)}\" stroke=\"{s.Color}\"/>");
                }
            foreach (var p in s.Points.Where(p => !Ok(p.Y) && double.IsFinite(p.X) && !double.IsNaN(p.Y)))
                sb.Append($"<path d=\"M{F(X(p.X) - 5)},{top + 2} l10,0 l-5,9 z\" class=\"nonfinite\"><title>{E(s.Label)}: non-finite at {F(p.X)}</title></path>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>The legend of a set of series (HTML).</summary>
    public static string Legend(IEnumerable<Series> series) =>
        "<div class=\"legend\">" + string.Concat(series.Select(s => $"<span><i style=\"background:{s.Color}\"></i>{E(s.Label)}</span>")) + "</div>";

    /// <summary>
    /// A heatmap of log10 values (rows top to bottom, columns left to right) in the viridis palette;
    /// non-finite cells are magenta and listed in the legend, never dropped.
    /// </summary>
    public static string Heatmap(string title, string rowLabel, string columnLabel, IReadOnlyList<string> rows, IReadOnlyList<string> columns,
        double[,] values, int cell = 14)
    {
        int nr = rows.Count, nc = columns.Count;
        const int left = 70, top = 28;
        int width = Math.Max(420, left + nc * cell + 90), height = top + nr * cell + 50;
        var logs = new List<double>();
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < nc; c++)
                if (double.IsFinite(values[r, c]) && values[r, c] > 0) logs.Add(Math.Log10(values[r, c]));
        double lo = logs.Count > 0 ? Math.Floor(logs.Min()) : 0, hi = logs.Count > 0 ? Math.Ceiling(logs.Max()) : 1;
        if (hi - lo < 1) hi = lo + 1;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
        sb.Append($"<text x=\"{width / 2}\" y=\"18\" text-anchor=\"middle\" class=\"title\">{E(title)}</text>");
        bool anyNonFinite = false;
        for (int r = 0; r < nr; r++)
        {
            sb.Append($"<text x=\"{left - 6}\" y=\"{top + r * cell + cell - 3}\" text-anchor=\"end\" class=\"tick\">{E(rows[r])}</text>");
            for (int c = 0; c < nc; c++)
            {
                double v = values[r, c];
                string fill;
                if (double.IsNaN(v)) fill = "#eeeeee";
                else if (!double.IsFinite(v) || v <= 0) { fill = "#ff00ff"; anyNonFinite |= !double.IsFinite(v); }
                else fill = Viridis((Math.Log10(v) - lo) / (hi - lo));
                sb.Append($"<rect x=\"{left + c * cell}\" y=\"{top + r * cell}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\"><title>{E(rows[r])}, {E(columns[c])}: {v.ToString("E2", CultureInfo.InvariantCulture)}</title></rect>");
            }
        }
        int step = Math.Max(1, nc / 8);
        for (int c = 0; c < nc; c += step)
            sb.Append($"<text x=\"{left + c * cell + cell / 2}\" y=\"{top + nr * cell + 14}\" text-anchor=\"middle\" class=\"tick\">{E(columns[c])}</text>");
        sb.Append($"<text x=\"{left + nc * cell / 2}\" y=\"{top + nr * cell + 32}\" text-anchor=\"middle\" class=\"axis\">{E(columnLabel)}</text>");
        sb.Append($"<text x=\"14\" y=\"{top + nr * cell / 2}\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 14 {top + nr * cell / 2})\">{E(rowLabel)}</text>");
        int lx = left + nc * cell + 16;
        for (int i = 0; i < 10; i++)
            sb.Append($"<rect x=\"{lx}\" y=\"{top + (9 - i) * 10}\" width=\"14\" height=\"10\" fill=\"{Viridis(i / 9.0)}\"/>");
        sb.Append($"<text x=\"{lx + 18}\" y=\"{top + 8}\" class=\"tick\">1e{F(hi)}</text><text x=\"{lx + 18}\" y=\"{top + 100}\" class=\"tick\">1e{F(lo)}</text>");
        sb.Append($"<rect x=\"{lx}\" y=\"{top + 110}\" width=\"14\" height=\"10\" fill=\"#ff00ff\"/><text x=\"{lx + 18}\" y=\"{top + 119}\" class=\"tick\">non-finite{(anyNonFinite ? " (present)" : "")}</text>");
        sb.Append("</svg>");
        return sb.ToString();
    }

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
                sb.Append($"<rect x=\"{F(x + bw * 0.15)}\" y=\"{F(top + ph - Math.Clamp(v, 0, 1) * ph)}\" width=\"{F(bw * 0.7)}\" height=\"{F(Math.Clamp(v, 0, 1) * ph)}\" fill=\"{color}\"><title>{E(categories[i])}: {v:P1}</title></rect>");
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
