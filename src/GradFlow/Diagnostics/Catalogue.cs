using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// One labelled training configuration: the config, its ground truth (healthy, or the one problem it
/// is known to have) and why; for a broken one, the healthy configuration of the same task whose
/// accuracy a repair must reach.
/// </summary>
/// <param name="Name">Unique name.</param>
/// <param name="Config">The training configuration (its seed is replaced by each catalogue seed).</param>
/// <param name="Expect">The known problem, or null when the configuration is healthy.</param>
/// <param name="Why">The reason for the ground truth (theory, not the detector's output).</param>
/// <param name="Reference">For a broken entry: the name of the healthy entry of the same task.</param>
public sealed record CatalogueEntry(string Name, TrainingConfig Config, ProblemKind? Expect, string Why, string? Reference)
{
    /// <summary>Whether the entry is labelled healthy.</summary>
    public bool Healthy => Expect is null;

    /// <summary>Which half of a generated catalogue the entry belongs to (<c>calibration</c>, <c>held-out</c>), or null.</summary>
    public string? Split { get; init; }

    /// <summary>Every mechanism the labelling run showed (generated entries); a verdict naming any of them, or a kind of the label's family, is right.</summary>
    public IReadOnlyList<ProblemKind> Mechanisms { get; init; } = [];

    /// <summary>What the full training run did (generated entries), or null.</summary>
    public RunOutcome? Outcome { get; init; }

    /// <summary>
    /// The kinds a verdict on this entry may name to count as detected: the label, every mechanism of
    /// the labelling run, and the label's family (<see cref="Catalogue.Family"/>).
    /// </summary>
    public IEnumerable<ProblemKind> Accepted => Expect is { } k ? Catalogue.Family(k).Concat(Mechanisms).Distinct() : [];
}

/// <summary>
/// A catalogue of labelled training configurations, run over several seeds, on which the detectors
/// are calibrated and the diagnosis and repair are measured (<see cref="CatalogueEvaluator"/>).
/// File format (JSON): <c>{"seeds": [1,2,3], "trialSteps": 200, "entries": [{"name", "expect":
/// "healthy" | "vanishing-gradient" | …, "why", "reference", "config": {training config JSON}}]}</c>.
/// </summary>
/// <param name="Entries">The configurations.</param>
/// <param name="Seeds">Seeds every entry runs with.</param>
/// <param name="TrialSteps">Steps of a diagnosis trial (as <c>gradflow diagnose --steps</c>).</param>
public sealed record Catalogue(IReadOnlyList<CatalogueEntry> Entries, IReadOnlyList<ulong> Seeds, int TrialSteps)
{
    /// <summary>Reads a catalogue file; errors name the file, the entry and the field.</summary>
    /// <exception cref="FormatException">for invalid JSON, a missing field, an unknown problem kind or reference.</exception>
    public static Catalogue Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses the JSON text of a catalogue; <paramref name="source"/> names it in errors.</summary>
    public static Catalogue Parse(string json, string source = "catalogue")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException($"{source}: expected a JSON object.");
            var seeds = Required(root, "seeds", source, JsonValueKind.Array).EnumerateArray().Select((s, i) =>
                s.TryGetUInt64(out ulong v) ? v : throw new FormatException($"{source}: seeds[{i}] is not a non-negative integer.")).ToArray();
            if (seeds.Length == 0) throw new FormatException($"{source}: field 'seeds' is empty.");
            var stepsElement = Required(root, "trialSteps", source, JsonValueKind.Number);
            if (!stepsElement.TryGetInt32(out int trialSteps) || trialSteps < 1) throw new FormatException($"{source}: field 'trialSteps' must be a positive integer.");
            var entries = new List<CatalogueEntry>();
            int index = 0;
            foreach (var e in Required(root, "entries", source, JsonValueKind.Array).EnumerateArray())
            {
                string where = $"{source}: entries[{index++}]";
                string name = Required(e, "name", where, JsonValueKind.String).GetString()!;
                where = $"{where} ('{name}')";
                string expect = Required(e, "expect", where, JsonValueKind.String).GetString()!;
                ProblemKind? kind = expect == "healthy" ? null : ParseKind(expect, where);
                string why = Required(e, "why", where, JsonValueKind.String).GetString()!;
                string? reference = e.TryGetProperty("reference", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
                var config = TrainingConfig.FromJson(Required(e, "config", where, JsonValueKind.Object).GetRawText(), $"{where}.config");
                if (kind is not null && reference is null) throw new FormatException($"{where}: a broken entry needs a 'reference' (the healthy entry of the same task).");
                if (entries.Any(x => x.Name == name)) throw new FormatException($"{where}: duplicate name.");
                string? split = e.TryGetProperty("split", out var sp) ? sp.ValueKind == JsonValueKind.String && sp.GetString() is "calibration" or "held-out"
                    ? sp.GetString() : throw new FormatException($"{where}: field 'split' must be \"calibration\" or \"held-out\".") : null;
                var mechanisms = e.TryGetProperty("mechanisms", out var mech) ? mech.ValueKind == JsonValueKind.Array
                    ? mech.EnumerateArray().Select((m, i) => ParseKind(m.GetString() ?? "", $"{where}.mechanisms[{i}]")).ToArray()
                    : throw new FormatException($"{where}: field 'mechanisms' must be an array.") : [];
                RunOutcome? outcome = null;
                if (e.TryGetProperty("outcome", out var oc))
                {
                    try
                    {
                        outcome = JsonSerializer.Deserialize<RunOutcome>(oc.GetRawText(), OutcomeJson);
                    }
                    catch (JsonException x)
                    {
                        throw new FormatException($"{where}.outcome: {x.Message}");
                    }
                }
                entries.Add(new CatalogueEntry(name, config, kind, why, reference) { Split = split, Mechanisms = mechanisms, Outcome = outcome });
            }
            foreach (var e in entries.Where(e => e.Reference is not null))
            {
                var target = entries.FirstOrDefault(x => x.Name == e.Reference)
                    ?? throw new FormatException($"{source}: entry '{e.Name}': reference '{e.Reference}' is not an entry.");
                if (!target.Healthy) throw new FormatException($"{source}: entry '{e.Name}': reference '{e.Reference}' is not labelled healthy.");
                // a fair yardstick: the same task, optimiser family, learning-rate policy and budget
                var (a, b) = (e.Config, target.Config);
                string? differs = a.Data != b.Data ? "data" : CatalogueGrammar.OptimizerFamily(a.Optimizer) != CatalogueGrammar.OptimizerFamily(b.Optimizer) ? "optimizer family"
                    : a.Schedule != b.Schedule ? "schedule" : a.MaxSteps != b.MaxSteps ? "maxSteps"
                    // without a step budget, the budget is epochs of batches
                    : a.MaxSteps is null && (a.Epochs != b.Epochs || a.BatchSize != b.BatchSize) ? "epochs or batchSize (the budget)"
                    : a.TrainLimit != b.TrainLimit ? "trainLimit" : a.SequenceLength != b.SequenceLength ? "sequenceLength" : null;
                if (differs is not null)
                    throw new FormatException($"{source}: entry '{e.Name}': reference '{e.Reference}' differs in {differs}; a reference must share the task, optimiser family, learning-rate schedule and budget.");
            }
            int dropped = root.TryGetProperty("dropped", out var d) && d.ValueKind == JsonValueKind.Array ? d.GetArrayLength() : 0;
            return new Catalogue(entries, seeds, trialSteps) { Dropped = dropped };
        }
    }

    /// <summary>Configurations of a generated catalogue whose outcome was ambiguous (neither healthy nor broken), dropped and counted.</summary>
    public int Dropped { get; init; }

    /// <summary>The JSON options of stored outcomes (camelCase; NaN written as "NaN").</summary>
    public static JsonSerializerOptions OutcomeJson { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// The problem family of <paramref name="kind"/>: the kinds that describe the same failure from
    /// another side. Vanishing gradient and saturation (saturated units pass no signal); exploding
    /// gradient, non-finite values and an oscillating loss (steps too large for the loss surface);
    /// dying ReLU; stalled loss.
    /// </summary>
    public static IReadOnlyList<ProblemKind> Family(ProblemKind kind) => kind switch
    {
        ProblemKind.VanishingGradient or ProblemKind.Saturation => [ProblemKind.VanishingGradient, ProblemKind.Saturation],
        ProblemKind.ExplodingGradient or ProblemKind.NonFinite or ProblemKind.OscillatingLoss => [ProblemKind.ExplodingGradient, ProblemKind.NonFinite, ProblemKind.OscillatingLoss],
        _ => [kind],
    };

    private static JsonElement Required(JsonElement e, string field, string where, JsonValueKind kind)
    {
        if (!e.TryGetProperty(field, out var v)) throw new FormatException($"{where}: missing field '{field}'.");
        if (v.ValueKind != kind) throw new FormatException($"{where}: field '{field}' must be {kind.ToString().ToLowerInvariant()}, got {v.ValueKind.ToString().ToLowerInvariant()}.");
        return v;
    }

    /// <summary>Parses a kebab-case problem kind (<c>vanishing-gradient</c>).</summary>
    public static ProblemKind ParseKind(string text, string where = "problem kind")
    {
        foreach (var k in Enum.GetValues<ProblemKind>())
            if (KindName(k) == text) return k;
        throw new FormatException($"{where}: unknown problem kind '{text}' (valid: healthy, {string.Join(", ", Enum.GetValues<ProblemKind>().Select(KindName))}).");
    }

    /// <summary>The kebab-case name of a kind, as in diagnosis.json.</summary>
    public static string KindName(ProblemKind kind) => JsonNamingPolicy.KebabCaseLower.ConvertName(kind.ToString());
}

/// <summary>The measurements of one catalogue entry at one seed.</summary>
/// <param name="Entry">The entry.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Preflight">The preflight verdict (one batch, no step).</param>
/// <param name="Trial">The diagnosis trial.</param>
/// <param name="Repair">The repair (broken entries, when repair was evaluated).</param>
/// <param name="RepairedAccuracy">Test accuracy of the repaired config trained for the full budget.</param>
/// <param name="ReferenceAccuracy">Test accuracy of the reference entry at the same seed, full budget.</param>
/// <param name="Seconds">Wall time of this run's evaluation.</param>
/// <param name="PredictedUpdateRatio">The preflight's largest predicted first-step update ratio over the layers.</param>
public sealed record CatalogueRun(CatalogueEntry Entry, ulong Seed, Diagnosis Preflight, TrialResult Trial, RepairResult? Repair,
    double RepairedAccuracy, double ReferenceAccuracy, double Seconds, double PredictedUpdateRatio)
{
    /// <summary>Kinds the trial reported.</summary>
    public IEnumerable<ProblemKind> Found => Trial.Diagnosis.Problems.Select(p => p.Kind).Distinct();

    /// <summary>Broken entry: the known problem (or a kind of its family, or a mechanism of its labelling run) was reported. Healthy entry: no problem reported.</summary>
    public bool Correct => Entry.Healthy ? Trial.Diagnosis.Healthy : Found.Intersect(Entry.Accepted).Any();

    /// <summary>A healthy entry with any problem reported.</summary>
    public bool FalseAlarm => Entry.Healthy && !Trial.Diagnosis.Healthy;

    /// <summary>The preflight reported the known problem (meaningful for vanishing and exploding entries).</summary>
    public bool Forecast => Entry.Expect is { } k && Preflight.Problems.Any(p => p.Kind == k);

    /// <summary>
    /// For a generated entry: the share of the reference's (the group's best) result that the repaired
    /// config's full training reached (<see cref="RunOutcome.Score"/>); NaN otherwise.
    /// </summary>
    public double RepairedScore { get; init; } = double.NaN;

    /// <summary>For a generated entry: the repaired config's full training earns the healthy label (<see cref="OutcomeLabeler.IsHealthy"/>).</summary>
    public bool RepairedEndsHealthy { get; init; }

    /// <summary>
    /// The config the repair returned, trained for the full budget, reached the reference: within
    /// <paramref name="points"/> (fraction) of its accuracy for a hand-written entry; for a generated one,
    /// the healthy label of the outcome rule (a loss below chance and at least
    /// <see cref="OutcomeLabeler.HealthyScore"/> of the group's best). Judged by what the full run did, as
    /// the labels are, not by the last repair trial's verdict (a slow starter is still at chance after a trial).
    /// </summary>
    public bool Repaired(double points = 0.02) => Repair is not null &&
        (Entry.Outcome is not null ? RepairedEndsHealthy : RepairedAccuracy >= ReferenceAccuracy - points);

    /// <summary>Repair trials plus the training run of the repaired config, in training runs.</summary>
    public double TotalCost => Repair is null ? double.NaN : Repair.Cost + 1;
}

/// <summary>Aggregate figures of a catalogue evaluation.</summary>
/// <param name="Runs">Every (entry, seed) run.</param>
/// <param name="Seconds">Total wall time.</param>
public sealed record CatalogueReport(IReadOnlyList<CatalogueRun> Runs, double Seconds)
{
    private IEnumerable<CatalogueRun> Broken => Runs.Where(r => !r.Entry.Healthy);

    /// <summary>Fraction of broken runs whose known problem was reported.</summary>
    public double DetectionRate => Fraction(Broken, r => r.Correct);

    /// <summary>Fraction of healthy runs with any problem reported.</summary>
    public double FalseAlarmRate => Fraction(Runs.Where(r => r.Entry.Healthy), r => r.FalseAlarm);

    /// <summary>Fraction of vanishing and exploding runs that the preflight alone forecast.</summary>
    public double ForecastRate => Fraction(Broken.Where(r => r.Entry.Expect is ProblemKind.VanishingGradient or ProblemKind.ExplodingGradient), r => r.Forecast);

    /// <summary>Fraction of broken runs repaired (healthy and within 2 points of the reference), over those with a repair.</summary>
    public double RepairRate => Fraction(Broken.Where(r => r.Repair is not null), r => r.Repaired());

    /// <summary>Median of repair trials plus the final training, in training runs.</summary>
    public double MedianTotalCost => Diagnoser.Median(Broken.Where(r => r.Repair is not null).Select(r => r.TotalCost));

    /// <summary>Median cost of the repair trials alone, in training runs.</summary>
    public double MedianRepairCost => Diagnoser.Median(Broken.Where(r => r.Repair is not null).Select(r => r.Repair!.Cost));

    private static double Fraction(IEnumerable<CatalogueRun> runs, Func<CatalogueRun, bool> ok)
    {
        var a = runs.ToArray();
        return a.Length == 0 ? double.NaN : (double)a.Count(ok) / a.Length;
    }

    /// <summary>The verdict of a run as one kind: the most severe problem found, or null for healthy.</summary>
    public static ProblemKind? Verdict(CatalogueRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return run.Trial.Diagnosis.Problems.Count == 0 ? null : run.Trial.Diagnosis.Problems[0].Kind;
    }

    /// <summary>
    /// Per labelled problem kind: recall (its broken runs detected with the right family), precision
    /// (of the runs whose verdict names a kind of that family, the share labelled with that family),
    /// and false-alarm rate (healthy runs whose verdict names a kind of that family).
    /// </summary>
    public IReadOnlyList<(ProblemKind Kind, int Runs, double Recall, double Precision, double FalseAlarmRate)> PerKind()
    {
        var healthy = Runs.Where(r => r.Entry.Healthy).ToArray();
        var rows = new List<(ProblemKind, int, double, double, double)>();
        foreach (var kind in Runs.Where(r => !r.Entry.Healthy).Select(r => r.Entry.Expect!.Value).Distinct().Order())
        {
            var family = Catalogue.Family(kind);
            var labelled = Runs.Where(r => r.Entry.Expect == kind).ToArray();
            var named = Runs.Where(r => r.Found.Intersect(family).Any()).ToArray();
            double precision = named.Length == 0 ? double.NaN : (double)named.Count(r => r.Entry.Expect is { } k && (family.Contains(k) || r.Entry.Mechanisms.Intersect(family).Any())) / named.Length;
            rows.Add((kind, labelled.Length, Fraction(labelled, r => r.Correct), precision,
                healthy.Length == 0 ? double.NaN : (double)healthy.Count(r => r.Found.Intersect(family).Any()) / healthy.Length));
        }
        return rows;
    }

    /// <summary>Markdown tables: per kind (recall, precision, false alarms) and the confusion matrix (label × most severe verdict).</summary>
    public string PerKindMarkdown()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| label | runs | recall (right family) | precision | false alarms of that family on healthy runs |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var (kind, n, recall, precision, fa) in PerKind())
            sb.AppendLine(inv, $"| {Catalogue.KindName(kind)} | {n} | {recall:P0} | {precision:P0} | {fa:P1} |");
        sb.AppendLine();
        var kinds = Enum.GetValues<ProblemKind>().Where(k => Runs.Any(r => r.Entry.Expect == k || Verdict(r) == k)).ToArray();
        sb.Append("| label \\ verdict | healthy |");
        foreach (var k in kinds) sb.Append(inv, $" {Catalogue.KindName(k)} |");
        sb.AppendLine();
        sb.Append("|---|---:|");
        foreach (var _ in kinds) sb.Append("---:|");
        sb.AppendLine();
        foreach (ProblemKind? label in new ProblemKind?[] { null }.Concat(kinds.Select(k => (ProblemKind?)k)))
        {
            var row = Runs.Where(r => r.Entry.Expect == label).ToArray();
            if (row.Length == 0) continue;
            sb.Append(inv, $"| {(label is { } l ? Catalogue.KindName(l) : "healthy")} | {row.Count(r => Verdict(r) is null)} |");
            foreach (var k in kinds) sb.Append(inv, $" {row.Count(r => Verdict(r) == k)} |");
            sb.AppendLine();
        }
        return sb.ToString();
    }

    /// <summary>A Markdown summary and a table per entry (for docs/diagnosis.md).</summary>
    public string ToMarkdown()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        int healthy = Runs.Count(r => r.Entry.Healthy), broken = Runs.Count - healthy;
        sb.AppendLine(inv, $"| figure | GradFlow | AutoTrainer (ICSE'21, published) |");
        sb.AppendLine("|---|---:|---:|");
        sb.AppendLine(inv, $"| problems detected (broken runs) | {DetectionRate:P1} of {broken} | 262 problems detected in 495 models; detection rate not published against ground truth |");
        sb.AppendLine(inv, $"| false alarms (healthy runs) | {FalseAlarmRate:P1} of {healthy} | not published |");
        sb.AppendLine(inv, $"| vanishing/exploding forecast by the preflight alone | {ForecastRate:P1} | — (needs training) |");
        if (Runs.Any(r => r.Repair is not null))
        {
            sb.AppendLine(inv, $"| repaired: the returned config, trained in full, {(Runs.Any(r => r.Entry.Outcome is not null) ? "earns the healthy label (loss below chance, at least 0.9 of the way from chance to the group's best)" : "within 2 points of the healthy config")} | {RepairRate:P1} of {Broken.Count(r => r.Repair is not null)} | 97% of detected |");
            sb.AppendLine(inv, $"| of which the repair's last trial was already healthy | {Broken.Count(r => r.Repaired() && r.Repair!.Healthy)} of {Broken.Count(r => r.Repaired())} | — |");
            sb.AppendLine(inv, $"| median cost, repair trials + training the repaired config | {MedianTotalCost:F2} training runs | 1.8-1.9 training runs |");
            sb.AppendLine(inv, $"| median cost of the repair trials alone | {MedianRepairCost:F2} training runs | — |");
        }
        sb.AppendLine();
        sb.Append(PerKindMarkdown());
        sb.AppendLine();
        sb.AppendLine("| entry | ground truth | found (per seed) | preflight | repaired | accuracy repaired / reference | cost |");
        sb.AppendLine("|---|---|---|---|---|---|---:|");
        foreach (var g in Runs.GroupBy(r => r.Entry.Name))
        {
            var e = g.First().Entry;
            string truth = e.Expect is { } k ? Catalogue.KindName(k) : "healthy";
            string found = string.Join(" / ", g.Select(r => r.Trial.Diagnosis.Healthy ? "healthy" : string.Join("+", r.Found.Select(Catalogue.KindName))));
            string pre = e.Healthy ? "" : string.Join(" / ", g.Select(r => r.Forecast ? "yes" : "no"));
            string repaired = g.Any(r => r.Repair is not null) ? $"{g.Count(r => r.Repaired())}/{g.Count()}" : "";
            string acc = g.Any(r => r.Repair is not null)
                ? string.Join(" ", g.Select(r => string.Create(inv, $"{r.RepairedAccuracy:P1}/{r.ReferenceAccuracy:P1}")))
                : "";
            string cost = g.Any(r => r.Repair is not null) ? string.Create(inv, $"{Diagnoser.Median(g.Select(r => r.TotalCost)):F2}") : "";
            sb.AppendLine(inv, $"| {e.Name} | {truth} | {found} | {pre} | {repaired} | {acc} | {cost} |");
        }
        return sb.ToString();
    }
}

/// <summary>
/// Runs a <see cref="Catalogue"/>: for every entry and seed, the preflight and a diagnosis trial
/// (exactly what <c>gradflow diagnose</c> runs), and for broken entries optionally the repair,
/// the full training of the repaired config and of the entry's healthy reference.
/// </summary>
public static class CatalogueEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="catalogue"/>; <paramref name="progress"/> sees each run, in catalogue
    /// order, as soon as it and every run before it are done. <paramref name="jobs"/> runs that many
    /// entry-and-seed runs at once, each on its own thread (the report is the same for any count: every
    /// run is a function of its config and seed). With <paramref name="trialsDirectory"/>, each diagnosis trial's run directory
    /// (config, metrics, <c>diagnosis.json</c>) is written to <c>trialsDirectory/ENTRY-sSEED</c>.
    /// </summary>
    /// <remarks>
    /// With a <paramref name="world"/> of several processes (<c>mpirun -np N gradflow evaluate</c>), every process calls it with the
    /// same arguments; the entry-and-seed runs go to the processes as they free up (<see cref="IndependentRuns"/>), each process
    /// running <paramref name="jobs"/> at once, and come back as JSON (<see cref="CatalogueRunWire"/>: everything the report reads;
    /// of the monitor samples, their losses). Rank 0 returns the report, the same as one process's; the other ranks an empty one. Each
    /// process memoises its own full trainings, so a config two runs on different processes need is trained on both (same numbers).
    /// </remarks>
    public static CatalogueReport Evaluate(Catalogue catalogue, bool repair = false, DiagnosisSettings? settings = null,
        Func<CatalogueEntry, bool>? filter = null, Action<CatalogueRun>? progress = null, CancellationToken cancellation = default, int jobs = 1,
        ICommunicator? world = null, string? trialsDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(catalogue);
        ArgumentOutOfRangeException.ThrowIfLessThan(jobs, 1);
        var total = System.Diagnostics.Stopwatch.StartNew();
        var data = new DataCache();
        // Every config trained in full, by value: a repair often yields a config that another entry's
        // repair (or a healthy reference) already trained at the same seed, and the same config and seed
        // give the same numbers (see Trainer), so it is trained once.
        var trained = new ConcurrentDictionary<TrainingConfig, Lazy<double>>();
        double TrainInFull(TrainingConfig c) => trained.GetOrAdd(c, k => new Lazy<double>(
            () => new Trainer(k, data.For(k)).Run(cancellation: cancellation).FinalTestAccuracy)).Value;
        var measured = new ConcurrentDictionary<TrainingConfig, Lazy<RunOutcome>>();
        RunOutcome Measure(TrainingConfig c) => measured.GetOrAdd(c, k => new Lazy<RunOutcome>(
            () => OutcomeLabeler.Measure(k, data.For(k), cancellation))).Value;

        CatalogueRun One(CatalogueEntry entry, ulong seed)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var config = entry.Config with { Seed = seed };
            var bundle = data.For(config);
            var (preflight, preflightSample) = Trials.Preflight(config, bundle, settings);
            var trial = Trials.Run(config, Math.Min(catalogue.TrialSteps, Budget(config, bundle)), every: 10, bundle, settings: settings, cancellation: cancellation,
                runDirectory: trialsDirectory is null ? null : Path.Combine(trialsDirectory, $"{entry.Name}-s{seed}"));
            RepairResult? repaired = null;
            double accuracy = double.NaN, reference = double.NaN;
            double repairedScore = double.NaN;
            bool endsHealthy = false;
            if (repair && !entry.Healthy)
            {
                repaired = Repairer.Repair(config, catalogue.TrialSteps, data: bundle, settings: settings, cancellation: cancellation);
                // the returned config is trained in full when the repair changed anything (unchanged, it is the broken run)
                bool changed = repaired.Config != config;
                var refEntry = catalogue.Entries.First(e => e.Name == entry.Reference);
                if (refEntry.Outcome is { } refOutcome)
                {
                    // generated entry: the reference's outcome is stored; the repaired config is judged by the labelling rule
                    var outcome = changed ? Measure(repaired.Config) : null;
                    (accuracy, repairedScore) = outcome is null ? (double.NaN, 0) : (outcome.TestAccuracy, outcome.Score(refOutcome));
                    endsHealthy = outcome is not null && OutcomeLabeler.IsHealthy(outcome, refOutcome);
                    reference = refOutcome.TestAccuracy;
                }
                else
                {
                    accuracy = changed ? TrainInFull(repaired.Config) : double.NaN;
                    reference = TrainInFull(refEntry.Config with { Seed = seed });
                }
            }
            return new CatalogueRun(entry, seed, preflight, trial, repaired, accuracy, reference, clock.Elapsed.TotalSeconds,
                preflightSample.Layers.Select(l => l.UpdateRatio).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max()) { RepairedScore = repairedScore, RepairedEndsHealthy = endsHealthy };
        }

        var work = catalogue.Entries.Where(e => filter?.Invoke(e) ?? true).SelectMany(e => catalogue.Seeds.Select(s => (Entry: e, Seed: s))).ToArray();
        CatalogueRun[] runs;
        if (world is { Size: > 1 })
        {
            runs = new CatalogueRun[work.Length];
            IndependentRuns.Run(world, work.Length, i => CatalogueRunWire.Serialize(One(work[i].Entry, work[i].Seed)), (i, json) =>
            {
                runs[i] = CatalogueRunWire.Parse(json, work[i].Entry);
                progress?.Invoke(runs[i]);
            }, jobs, cancellation);
            if (world.Rank != 0) return new CatalogueReport([], total.Elapsed.TotalSeconds);
        }
        else runs = IndependentRuns.Run(work.Length, i => One(work[i].Entry, work[i].Seed), (_, run) => progress?.Invoke(run), jobs, cancellation);
        return new CatalogueReport(runs, total.Elapsed.TotalSeconds);
    }

    /// <summary>Optimiser steps of one full training run of <paramref name="config"/>.</summary>
    private static int Budget(TrainingConfig config, DataBundle data)
    {
        long perEpoch = (data.Train.Count + config.BatchSize - 1) / config.BatchSize;
        long steps = perEpoch * config.Epochs;
        return (int)Math.Min(int.MaxValue, config.MaxSteps is { } m ? Math.Min(m, steps) : steps);
    }
}

/// <summary>
/// A <see cref="CatalogueRun"/> as JSON, to send it from the process that ran it to rank 0: the verdicts (preflight, trial, every
/// repair trial) and the trials as <see cref="TrialWire"/> has them, the repair's attempts and the accuracies.
/// </summary>
public static class CatalogueRunWire
{
    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private sealed record Attempt(string? Remedy, string Description, TrialWire.Form Trial, bool Accepted);

    private sealed record Repair(TrialWire.Form Initial, Attempt[] Attempts, TrialWire.Form Final, double Cost);

    private sealed record Run(ulong Seed, Diagnosis Preflight, TrialWire.Form Trial, Repair? Repair, double RepairedAccuracy, double ReferenceAccuracy,
        double Seconds, double PredictedUpdateRatio, double RepairedScore, bool RepairedEndsHealthy);

    /// <summary>The run as one JSON text.</summary>
    public static string Serialize(CatalogueRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var repair = run.Repair is { } r
            ? new Repair(TrialWire.From(r.Initial), [.. r.Attempts.Select(a => new Attempt(a.Remedy, a.Description, TrialWire.From(a.Trial), a.Accepted))], TrialWire.From(r.Final), r.Cost)
            : null;
        return JsonSerializer.Serialize(new Run(run.Seed, run.Preflight, TrialWire.From(run.Trial), repair, run.RepairedAccuracy, run.ReferenceAccuracy,
            run.Seconds, run.PredictedUpdateRatio, run.RepairedScore, run.RepairedEndsHealthy), Options);
    }

    /// <summary>Reads a run that <see cref="Serialize"/> wrote for <paramref name="entry"/>.</summary>
    /// <exception cref="FormatException">when the text is not such a run.</exception>
    public static CatalogueRun Parse(string json, CatalogueEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        Run run;
        try
        {
            run = JsonSerializer.Deserialize<Run>(json, Options) ?? throw new FormatException($"catalogue run of '{entry.Name}': null.");
        }
        catch (JsonException e)
        {
            throw new FormatException($"catalogue run of '{entry.Name}': {e.Message}");
        }
        var repair = run.Repair is { } r
            ? new RepairResult(TrialWire.To(r.Initial), [.. r.Attempts.Select(a => new RepairAttempt(a.Remedy, a.Description, TrialWire.To(a.Trial), a.Accepted))], TrialWire.To(r.Final), r.Cost)
            : null;
        return new CatalogueRun(entry, run.Seed, run.Preflight, TrialWire.To(run.Trial), repair, run.RepairedAccuracy, run.ReferenceAccuracy, run.Seconds,
            run.PredictedUpdateRatio) { RepairedScore = run.RepairedScore, RepairedEndsHealthy = run.RepairedEndsHealthy };
    }
}
