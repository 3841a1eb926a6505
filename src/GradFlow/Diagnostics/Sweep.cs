using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>One axis of a sweep's grid: a key (a training option, or a key of the model spec) and its values as given.</summary>
/// <param name="Key">The key, e.g. <c>lr</c>, <c>batch-size</c>, <c>init</c>.</param>
/// <param name="Values">Its values in the order given.</param>
public sealed record GridAxis(string Key, IReadOnlyList<string> Values);

/// <summary>One point of the grid: its index in grid order, its value on each axis, the config it trains, and its own monitor sampling.</summary>
/// <param name="Index">Position in grid order (the first axis varies slowest).</param>
/// <param name="Values">The value of each axis, in axis order.</param>
/// <param name="Config">The training config of this point.</param>
/// <param name="Every">Steps between this point's monitor samples, kept as given (a grid axis of the sampling), or null for the sweep's
/// (<see cref="SweepDefinition.Every"/>).</param>
public sealed record SweepPoint(int Index, IReadOnlyList<string> Values, TrainingConfig Config, int? Every = null);

/// <summary>
/// A hyperparameter sweep: a base config, the grid (the points are every combination of the axes' values, the first axis
/// varying slowest), and what each point runs — a monitored trial of <see cref="Steps"/> steps, or with null the config's
/// full training with the monitor — followed by a diagnosis. Its JSON (<c>sweep.json</c> of a sweep directory) is what a
/// restart compares.
/// </summary>
/// <param name="Base">The config every point starts from.</param>
/// <param name="Grid">The axes.</param>
/// <param name="Points">Every point, in grid order (<see cref="Sweep.Points"/> makes them).</param>
/// <param name="Steps">Steps of each point's trial, or null for the full training run.</param>
/// <param name="Every">Steps between monitor samples of a point without its own (<see cref="SweepPoint.Every"/>; a point too short for 8 samples at it samples more often, <see cref="Trials.SampleEvery"/>, unless <paramref name="ExactEvery"/>).</param>
/// <param name="ExactEvery">Whether <paramref name="Every"/> is the user's explicit choice, kept as given (as <c>diagnose --every</c> and <c>train --monitor-every</c>).</param>
public sealed record SweepDefinition(TrainingConfig Base, IReadOnlyList<GridAxis> Grid, IReadOnlyList<SweepPoint> Points, int? Steps, int Every, bool ExactEvery = false)
{
    /// <summary>
    /// The definition as JSON (the base config without its thread count, which does not change any number; the grid; steps; every;
    /// <c>exact_every</c> only when true, so a sweep started before it existed restarts unchanged).
    /// </summary>
    public string ToJson()
    {
        var config = JsonNode.Parse(Base.ToJson())!.AsObject();
        config.Remove("threads");
        var root = new JsonObject
        {
            ["grid"] = new JsonArray([.. Grid.Select(a => (JsonNode)new JsonObject { ["key"] = a.Key, ["values"] = new JsonArray([.. a.Values.Select(v => (JsonNode)JsonValue.Create(v))]) })]),
            ["steps"] = Steps,
            ["every"] = Every,
        };
        if (ExactEvery) root["exact_every"] = true;
        root["config"] = config;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}

/// <summary>
/// The result of one grid point, one line of <c>results.jsonl</c>: no wall time, so that the file is the same for any number
/// of threads or processes and after a restart.
/// </summary>
/// <param name="Point">The point's index in grid order.</param>
/// <param name="Values">The point's value on each axis.</param>
/// <param name="Steps">Optimiser steps taken.</param>
/// <param name="Stop">Why training stopped.</param>
/// <param name="Loss">Mean training loss of the last monitor samples.</param>
/// <param name="TestLoss">Test loss at the end (NaN when no epoch finished).</param>
/// <param name="TestAccuracy">Test accuracy at the end (NaN for regression or when no epoch finished).</param>
/// <param name="GradientRatio">The diagnosis's gradient ratio.</param>
/// <param name="Verdict">"healthy", or the problem kinds found, most severe first, joined by '+'.</param>
public sealed record SweepRecord(int Point, IReadOnlyList<string> Values, long Steps, string Stop, double Loss, double TestLoss, double TestAccuracy,
    double GradientRatio, string Verdict)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The record as one JSON line (no line break).</summary>
    public string ToJsonLine() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a line of <c>results.jsonl</c>; <paramref name="where"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">when the line is not a record.</exception>
    public static SweepRecord Parse(string line, string where)
    {
        SweepRecord? record;
        try
        {
            record = JsonSerializer.Deserialize<SweepRecord>(line, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: not a sweep record ({e.Message}).");
        }
        if (record is null || record.Values is null || record.Values.Any(v => v is null) || record.Stop is null || record.Verdict is null)
            throw new InvalidDataException($"{where}: not a sweep record (a field is missing or null).");
        return record;
    }
}

/// <summary>
/// Runs a <see cref="SweepDefinition"/> into a sweep directory: <c>sweep.json</c> (the definition), <c>results.jsonl</c> (one
/// <see cref="SweepRecord"/> per finished point, in grid order, the file rewritten atomically with each record) and, at the
/// end, <c>results.md</c> (the table, best point marked). The points run on threads or on the processes of an MPI job
/// (<see cref="IndependentRuns"/>); every point is a function of its config, so the files are the same for any count.
/// Run again in the same directory, a sweep keeps the recorded points and runs the rest, and refuses a different definition.
/// </summary>
public static class Sweep
{
    /// <summary>File names in a sweep directory.</summary>
    public const string DefinitionFile = "sweep.json", ResultsFile = "results.jsonl", TableFile = "results.md";

    /// <summary>
    /// Every combination of the axes' values, first axis slowest; <paramref name="configOf"/> makes a point's config from its
    /// values (in axis order). Errors it throws are the caller's (they name the key and the value).
    /// </summary>
    public static IReadOnlyList<SweepPoint> Points(IReadOnlyList<GridAxis> grid, Func<IReadOnlyList<string>, TrainingConfig> configOf)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(configOf);
        long count = grid.Aggregate(1L, (n, a) => n * a.Values.Count);
        if (count > 1_000_000) throw new ArgumentException($"sweep: the grid has {count} points; at most 1,000,000.");
        var points = new List<SweepPoint>((int)count);
        for (int i = 0; i < count; i++)
        {
            var values = new string[grid.Count];
            for (int a = grid.Count - 1, rest = i; a >= 0; a--)
            {
                values[a] = grid[a].Values[rest % grid[a].Values.Count];
                rest /= grid[a].Values.Count;
            }
            points.Add(new SweepPoint(i, values, configOf(values)));
        }
        return points;
    }

    /// <summary>Runs one point: its monitored trial (or full training) and diagnosis.</summary>
    public static SweepRecord RunPoint(SweepDefinition sweep, SweepPoint point, DataBundle? data = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        ArgumentNullException.ThrowIfNull(point);
        var trial = Trials.Run(point.Config, sweep.Steps, point.Every ?? sweep.Every, data, cancellation: cancellation, exactEvery: point.Every is not null || sweep.ExactEvery);
        var last = trial.Result.Epochs.LastOrDefault();
        string verdict = trial.Diagnosis.Healthy ? "healthy" : string.Join("+", trial.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind)).Distinct());
        return new SweepRecord(point.Index, point.Values, trial.Steps, trial.Result.Stop.ToString(), trial.FinalLoss,
            last?.TestLoss ?? double.NaN, last?.TestAccuracy ?? double.NaN, trial.Diagnosis.GradientRatio, verdict);
    }

    /// <summary>
    /// Runs the points of <paramref name="sweep"/> not yet recorded in <paramref name="directory"/> and returns every record in
    /// grid order (on rank 0; an empty list on the other ranks of <paramref name="world"/>, which only run points).
    /// <paramref name="progress"/> sees each new record in grid order, after it is in <c>results.jsonl</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">when the directory holds another sweep (the message names the difference).</exception>
    /// <exception cref="InvalidDataException">when its files are damaged (the message names the file and line).</exception>
    public static IReadOnlyList<SweepRecord> Run(SweepDefinition sweep, string directory, ICommunicator? world = null, int jobs = 1,
        Action<SweepRecord>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        ArgumentNullException.ThrowIfNull(directory);
        world ??= SingleProcessCommunicator.Instance;
        var lines = Finished(sweep, directory).Select(r => r.ToJsonLine()).ToList();
        int done = lines.Count;
        // every process read the same files before rank 0 writes to them
        world.Barrier();
        if (world.Rank == 0 && done == 0) AtomicFile.WriteAllText(Path.Combine(directory, DefinitionFile), sweep.ToJson() + "\n");
        string results = Path.Combine(directory, ResultsFile);
        // points that differ only in training settings (learning rate, optimiser, clipping, ...) share their data
        var data = new DataCache();
        IndependentRuns.Run(world, sweep.Points.Count - done, i => RunPoint(sweep, sweep.Points[done + i], data.For(sweep.Points[done + i].Config), cancellation).ToJsonLine(),
            (_, line) =>
            {
                lines.Add(line);
                AtomicFile.WriteAllText(results, string.Concat(lines.Select(l => l + "\n")));
                progress?.Invoke(SweepRecord.Parse(line, results));
            }, jobs, cancellation);
        if (world.Rank != 0) return [];
        var records = lines.Select((l, i) => SweepRecord.Parse(l, $"{results}, line {i + 1}")).ToArray();
        AtomicFile.WriteAllText(Path.Combine(directory, TableFile), Markdown(sweep, records));
        return records;
    }

    /// <summary>
    /// The points already recorded in <paramref name="directory"/>, in grid order (none for a new directory), after checking
    /// that it holds this sweep: the same grid, steps, sampling and base config, or an error naming the first difference.
    /// </summary>
    /// <exception cref="InvalidOperationException">when the directory holds another sweep (the message names the difference).</exception>
    /// <exception cref="InvalidDataException">when its files are damaged (the message names the file and line).</exception>
    public static IReadOnlyList<SweepRecord> Finished(SweepDefinition sweep, string directory)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        ArgumentNullException.ThrowIfNull(directory);
        string definition = Path.Combine(directory, DefinitionFile), results = Path.Combine(directory, ResultsFile);
        if (!File.Exists(definition))
        {
            if (File.Exists(results)) throw new InvalidOperationException($"sweep: {results} exists without {definition}; delete it or choose another directory.");
            return [];
        }
        JsonNode? recorded;
        try
        {
            recorded = JsonNode.Parse(File.ReadAllText(definition));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{definition}: not a sweep definition ({e.Message}).");
        }
        // a definition written before 2026-12-07 spells two optimizers in kebab case (adam-w, rms-prop): its config is compared as
        // this version writes it
        if (recorded is JsonObject { } root && root["config"] is JsonObject old)
        {
            try
            {
                var config = JsonNode.Parse(TrainingConfig.FromJson(old.ToJsonString(), definition, requireData: false).ToJson())!.AsObject();
                config.Remove("threads");
                root["config"] = config;
            }
            catch (FormatException)
            {
                // compared as it is, and named by the difference below
            }
        }
        string? difference = Difference(recorded, JsonNode.Parse(sweep.ToJson()), "");
        if (difference is not null)
            throw new InvalidOperationException($"sweep: {directory} holds another sweep: {difference}. Run the recorded command again, or choose another directory.");
        var lines = File.Exists(results) ? File.ReadAllLines(results) : [];
        var records = new List<SweepRecord>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            var record = SweepRecord.Parse(lines[i], $"{results}, line {i + 1}");
            if (record.Point != i || i >= sweep.Points.Count || !record.Values.SequenceEqual(sweep.Points[i].Values))
                throw new InvalidDataException($"{results}, line {i + 1}: expected point {i} ({string.Join(", ", sweep.Points.ElementAtOrDefault(i)?.Values ?? [])}), found point {record.Point} ({string.Join(", ", record.Values)}).");
            records.Add(record);
        }
        return records;
    }

    /// <summary>The first difference between the recorded definition and this one, as "grid: ... recorded X, now Y", or null.</summary>
    private static string? Difference(JsonNode? recorded, JsonNode? now, string path)
    {
        string Name(string key) => path.Length == 0 ? key : $"{path}.{key}";
        if (recorded is JsonObject a && now is JsonObject b)
        {
            foreach (var key in a.Select(p => p.Key).Union(b.Select(p => p.Key)))
                if (Difference(a[key], b[key], Name(key)) is { } d) return d;
            return null;
        }
        if (recorded is JsonArray x && now is JsonArray y)
        {
            if (path == "grid")
            {
                static string Text(JsonNode? v) => v is JsonValue j && j.TryGetValue(out string? text) ? text : v?.ToJsonString() ?? "null";
                string Axes(JsonArray g) => string.Join(" ", g.Select(axis => axis is JsonObject o && o["values"] is JsonArray values
                    ? $"{Text(o["key"])}={string.Join(",", values.Select(Text))}" : Text(axis)));
                return Axes(x) == Axes(y) ? null : $"grid: recorded {Axes(x)}, now {Axes(y)}";
            }
            if (x.Count != y.Count) return $"{path}: recorded {x.ToJsonString()}, now {y.ToJsonString()}";
            for (int i = 0; i < x.Count; i++)
                if (Difference(x[i], y[i], $"{path}[{i}]") is { } d) return d;
            return null;
        }
        string r = recorded?.ToJsonString() ?? "(none)", n = now?.ToJsonString() ?? "(none)";
        return r == n ? null : $"{path}: recorded {r}, now {n}";
    }

    /// <summary>
    /// The best record: the highest test accuracy, or where there is none (regression, or no epoch finished) the lowest test
    /// loss, else the lowest training loss; the first in grid order on a tie; null when no record has a finite figure. A point whose
    /// run diverged (stopped on a non-finite loss or gradient, or with a non-finite test loss) is never the best: its NaN outputs
    /// still score an accuracy (a diverged two-class point was marked best at 50 %).
    /// </summary>
    public static SweepRecord? Best(IReadOnlyList<SweepRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        records = records.Where(r => !r.Stop.StartsWith("NonFinite", StringComparison.Ordinal)
            && !(double.IsFinite(r.TestAccuracy) && !double.IsFinite(r.TestLoss))).ToArray();
        if (records.Any(r => double.IsFinite(r.TestAccuracy)))
            return records.Where(r => double.IsFinite(r.TestAccuracy)).MaxBy(r => r.TestAccuracy);
        Func<SweepRecord, double> figure = records.Any(r => double.IsFinite(r.TestLoss)) ? r => r.TestLoss : r => r.Loss;
        return records.Where(r => double.IsFinite(figure(r))).MinBy(figure);
    }

    /// <summary>The Markdown table of <paramref name="records"/> in grid order, the best point marked with ★.</summary>
    public static string Markdown(SweepDefinition sweep, IReadOnlyList<SweepRecord> records)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        ArgumentNullException.ThrowIfNull(records);
        var inv = CultureInfo.InvariantCulture;
        var best = Best(records);
        var sb = new StringBuilder();
        sb.Append("| point |");
        foreach (var a in sweep.Grid) sb.Append(inv, $" {a.Key} |");
        sb.AppendLine(" steps | stop | loss | test loss | test accuracy | gradient ratio | verdict | best |");
        sb.Append("|---:|");
        foreach (var _ in sweep.Grid) sb.Append("---|");
        sb.AppendLine("---:|---|---:|---:|---:|---:|---|---|");
        foreach (var r in records)
        {
            sb.Append(inv, $"| {r.Point} |");
            foreach (var v in r.Values) sb.Append(inv, $" {v} |");
            string accuracy = double.IsNaN(r.TestAccuracy) ? "" : r.TestAccuracy.ToString("P1", inv);
            sb.AppendLine(inv, $" {r.Steps} | {r.Stop} | {r.Loss:G4} | {r.TestLoss:G4} | {accuracy} | {r.GradientRatio:E1} | {r.Verdict} | {(ReferenceEquals(r, best) ? "★" : "")} |");
        }
        return sb.ToString();
    }
}
