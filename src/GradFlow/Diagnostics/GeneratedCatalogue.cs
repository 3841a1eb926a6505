using System.Globalization;
using System.Text;
using System.Text.Json;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// Builds a catalogue labelled by outcomes: configurations drawn from <see cref="CatalogueGrammar"/>,
/// each trained for its full budget with the monitor (<see cref="OutcomeLabeler.Measure"/>), labelled
/// against its group (<see cref="OutcomeLabeler.Label"/>), and split alternately (in draw order, which
/// is random) into a calibration half and a held-out half. The outcomes are stored with the labels,
/// so <see cref="Relabel"/> needs no training. Ambiguous runs, and broken runs whose group has no
/// healthy run to compare a repair with, are dropped and counted.
/// </summary>
public static class GeneratedCatalogue
{
    /// <summary>Steps of a diagnosis trial on the generated catalogue: a quarter of the shortest budget.</summary>
    public const int TrialSteps = 300;

    /// <summary>The seed every configuration trains with.</summary>
    public const ulong RunSeed = 1;

    /// <summary>
    /// Draws <paramref name="count"/> configurations with <paramref name="grammarSeed"/> and <paramref name="convCount"/> conv nets
    /// (<see cref="CatalogueGrammar.DrawConv"/>), measures each
    /// (reusing outcomes already in <paramref name="cachePath"/>, a JSON-lines file that each measured run
    /// is appended to, so an interrupted build resumes) and returns the catalogue's JSON text.
    /// </summary>
    public static string Build(ulong grammarSeed, int count, string? cachePath = null, Action<string, RunOutcome>? progress = null,
        CancellationToken cancellation = default, int convCount = 0)
    {
        var drawn = CatalogueGrammar.Draw(grammarSeed, count).Concat(CatalogueGrammar.DrawConv(grammarSeed, convCount));
        var cache = new Dictionary<string, RunOutcome>();
        if (cachePath is not null && File.Exists(cachePath))
            foreach (var line in File.ReadLines(cachePath).Where(l => l.Length > 0))
            {
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    cache[doc.RootElement.GetProperty("name").GetString()!] = doc.RootElement.GetProperty("outcome").Deserialize<RunOutcome>(Catalogue.OutcomeJson)!;
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    // a line cut by an interrupted write: that run is measured again
                }
            }
        var runs = new List<(string Name, TrainingConfig Config, RunOutcome Outcome)>();
        foreach (var (name, draw) in drawn)
        {
            cancellation.ThrowIfCancellationRequested();
            var config = draw with { Seed = RunSeed };
            if (!cache.TryGetValue(name, out var outcome))
            {
                outcome = OutcomeLabeler.Measure(config, cancellation: cancellation);
                if (cachePath is not null)
                    File.AppendAllText(cachePath, JsonSerializer.Serialize(new { name, outcome }, Catalogue.OutcomeJson) + "\n");
            }
            progress?.Invoke(name, outcome);
            runs.Add((name, config, outcome));
        }
        return ToJson(grammarSeed, runs);
    }

    /// <summary>Re-labels a generated catalogue from its stored outcomes (after a change of the labelling rule), without training.</summary>
    /// <exception cref="InvalidDataException">for text that is not a generated catalogue with its outcomes, naming what is missing (a
    /// file that was not one crashed the command with the runtime's exception).</exception>
    public static string Relabel(string json, string source = "catalogue")
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            ulong grammarSeed = MonitorLog.Field(root, "grammarSeed").GetUInt64();
            var runs = MonitorLog.Field(root, "entries").EnumerateArray().Concat(MonitorLog.Field(root, "dropped").EnumerateArray())
                .Select(e => (Name: MonitorLog.Field(e, "name").GetString()!, Config: TrainingConfig.FromJson(MonitorLog.Field(e, "config").GetRawText()),
                    Outcome: MonitorLog.Field(e, "outcome").Deserialize<RunOutcome>(Catalogue.OutcomeJson)!))
                .OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
            return ToJson(grammarSeed, runs);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: not a generated catalogue with stored outcomes (gradflow catalogue --out writes one): {e.Message}", e);
        }
    }

    private static string ToJson(ulong grammarSeed, IReadOnlyList<(string Name, TrainingConfig Config, RunOutcome Outcome)> runs)
    {
        var labels = OutcomeLabeler.Label(runs).ToDictionary(l => l.Name);
        var healthy = labels.Values.Where(l => l.Kind is null && !l.Ambiguous).Select(l => l.Name).ToHashSet();
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("//", "GradFlow's generated catalogue, labelled by the outcomes of full training runs (docs/diagnosis.md). " +
                string.Create(CultureInfo.InvariantCulture, $"Built by: gradflow catalogue --seed {grammarSeed} --count {runs.Count(r => !IsConv(r.Name))} --conv-count {runs.Count(r => IsConv(r.Name))}"));
            w.WriteNumber("grammarSeed", grammarSeed);
            w.WriteStartArray("seeds");
            w.WriteNumberValue(RunSeed);
            w.WriteEndArray();
            w.WriteNumber("trialSteps", TrialSteps);
            var entries = new List<(string, TrainingConfig, RunOutcome, OutcomeLabel, string)>();
            var dropped = new List<(string, TrainingConfig, RunOutcome, OutcomeLabel, string)>();
            for (int i = 0; i < runs.Count; i++)
            {
                var (name, config, outcome) = runs[i];
                var label = labels[name];
                string split = Index(name) % 2 == 0 ? "calibration" : "held-out";
                if (label.Ambiguous) dropped.Add((name, config, outcome, label, "ambiguous: between the broken and the healthy bar"));
                else if (label.Kind is not null && !healthy.Contains(label.Best)) dropped.Add((name, config, outcome, label, "broken, but no run of its group is healthy: no fair reference"));
                else entries.Add((name, config, outcome, label, split));
            }
            w.WriteStartArray("entries");
            foreach (var (name, config, outcome, label, split) in entries) WriteEntry(w, name, config, outcome, label, split, null);
            w.WriteEndArray();
            w.WriteStartArray("dropped");
            foreach (var (name, config, outcome, label, reason) in dropped) WriteEntry(w, name, config, outcome, label, null, reason);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    // g1-042-teacher-20-4 is draw 42 of the grammar; g1-c007-fashion-mnist-6k-conv draw 7 of its conv nets
    private static int Index(string name) => int.Parse(name.Split('-')[1].TrimStart('c'), CultureInfo.InvariantCulture);

    /// <summary>Whether <paramref name="name"/> is one of the conv nets' draws (<see cref="CatalogueGrammar.DrawConv"/>: <c>g1-c007-…</c>).</summary>
    public static bool IsConv(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Split('-') is [_, var index, ..] && index.StartsWith('c');
    }

    private static void WriteEntry(Utf8JsonWriter w, string name, TrainingConfig config, RunOutcome outcome, OutcomeLabel label, string? split, string? dropReason)
    {
        w.WriteStartObject();
        w.WriteString("name", name);
        if (split is not null) w.WriteString("split", split);
        if (dropReason is not null) w.WriteString("dropped", dropReason);
        w.WriteString("expect", label.Kind is { } k ? Catalogue.KindName(k) : "healthy");
        w.WriteStartArray("mechanisms");
        foreach (var m in label.Mechanisms) w.WriteStringValue(Catalogue.KindName(m));
        w.WriteEndArray();
        w.WriteString("why", OutcomeLabeler.Why(label, outcome));
        if (label.Kind is not null) w.WriteString("reference", label.Best);
        w.WriteString("group", label.Group);
        w.WritePropertyName("outcome");
        w.WriteRawValue(JsonSerializer.Serialize(outcome, Catalogue.OutcomeJson));
        w.WritePropertyName("config");
        w.WriteRawValue(config.ToJson());
        w.WriteEndObject();
    }
}
