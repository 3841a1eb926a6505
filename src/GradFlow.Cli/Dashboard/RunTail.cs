using System.Text;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli.Dashboard;

/// <summary>
/// Follows one run directory as it is written, by this process or another: the complete new lines of
/// <c>metrics.jsonl</c> since the last read (a line still being written waits for its newline), the
/// monitor samples among them, and <c>diagnosis.json</c> once it exists. Reads share the file with the
/// writer; nothing is locked.
/// </summary>
internal sealed class RunTail(string directory)
{
    private long _offset;
    private readonly List<MonitorSample> _samples = [];
    private DateTime _diagnosisTime;

    /// <summary>The run directory.</summary>
    public string Directory { get; } = directory;

    /// <summary>Every monitor sample read so far.</summary>
    public IReadOnlyList<MonitorSample> Samples => _samples;

    /// <summary>The chance level of the run's training labels, from its last watch line (<see cref="MonitorLog.WatchLine"/>); NaN before one is read.</summary>
    public double ChanceLoss { get; private set; } = double.NaN;

    /// <summary>The loss of all-zero outputs on the run's training labels, from its last watch line; NaN before one is read or in a file without it.</summary>
    public double ZeroOutputLoss { get; private set; } = double.NaN;

    /// <summary>The linear baseline's loss and steps (<see cref="Trials.LinearBaseline"/>) from the run's watch line; (NaN, 0) before one is read or in a file without it.</summary>
    public (double Loss, int Steps) LinearBaseline { get; private set; } = (double.NaN, 0);

    /// <summary>The lowest loss the run can reach (above 0 under label smoothing), from its last watch line; 0 before one is read.</summary>
    public double LossFloor { get; private set; }

    /// <summary>The first step's predicted update ratio, from the run's last watch line; NaN before one is read or when the run did not know it.</summary>
    public double PredictedUpdateRatio { get; private set; } = double.NaN;

    /// <summary>Whether a <see cref="ReadNewLines"/> since the last call found the file started over (a run restarted with --force): the
    /// reader of the lines so far must drop them.</summary>
    public bool TakeRestart()
    {
        bool restarted = _restarted;
        _restarted = false;
        return restarted;
    }

    private bool _restarted;

    /// <summary>Whether <paramref name="text"/> is one JSON object.</summary>
    internal static bool IsJsonObject(string text)
    {
        using var doc = ParseObject(text);
        return doc is not null;
    }

    /// <summary><paramref name="text"/> as a JSON document when it is one object, else null.</summary>
    private static System.Text.Json.JsonDocument? ParseObject(string text)
    {
        System.Text.Json.JsonDocument doc;
        try
        {
            doc = System.Text.Json.JsonDocument.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
        if (doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object) return doc;
        doc.Dispose();
        return null;
    }

    /// <summary>The complete lines added to metrics.jsonl since the last call (each a JSON object), in order.</summary>
    public IReadOnlyList<string> ReadNewLines()
    {
        var path = Path.Combine(Directory, "metrics.jsonl");
        if (!File.Exists(path)) return [];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (stream.Length < _offset) // the run was started over (--force)
        {
            _offset = 0;
            _samples.Clear();
            (ChanceLoss, PredictedUpdateRatio, ZeroOutputLoss, LossFloor) = (double.NaN, double.NaN, double.NaN, 0);
            _diagnosisTime = default;
            _restarted = true;
        }
        if (stream.Length == _offset) return [];
        stream.Position = _offset;
        var bytes = new byte[stream.Length - _offset];
        stream.ReadExactly(bytes);
        int end = Array.LastIndexOf(bytes, (byte)'\n');
        if (end < 0) return [];
        _offset += end + 1;
        var lines = new List<string>();
        foreach (var raw in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            // only JSON objects go to the page (the server sends them as one JSON array: one damaged line made the whole batch
            // unreadable there, and it was never sent again); the report names a damaged line. Each line is parsed once.
            using var doc = ParseObject(line);
            if (doc is null) continue;
            lines.Add(line);
            if (line.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal))
            {
                try
                {
                    _samples.Add(MonitorLog.Parse(doc.RootElement));
                }
                catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
                {
                    // the browser shows what it can read; the report names a corrupt line
                }
            }
            else if (MonitorLog.IsWatchLine(line))
            {
                try
                {
                    // a resumed run writes another watch line, without the first step's prediction: a known fact stays
                    var (chance, predicted, zero, floor, linear, linearSteps) = MonitorLog.ParseWatch(doc.RootElement);
                    if (double.IsFinite(chance)) (ChanceLoss, LossFloor) = (chance, floor);
                    if (double.IsFinite(linear)) LinearBaseline = (linear, linearSteps);
                    if (double.IsFinite(zero)) ZeroOutputLoss = zero;
                    if (double.IsFinite(predicted)) PredictedUpdateRatio = predicted;
                }
                catch (System.Text.Json.JsonException)
                {
                    // as a corrupt sample: the live verdict goes without these facts
                }
            }
        }
        return lines;
    }

    /// <summary>diagnosis.json's text when it is new or changed since the last call, else null.</summary>
    public string? ReadNewDiagnosis()
    {
        var path = Path.Combine(Directory, "diagnosis.json");
        if (!File.Exists(path)) return null;
        var time = File.GetLastWriteTimeUtc(path);
        if (time == _diagnosisTime) return null;
        _diagnosisTime = time;
        return File.ReadAllText(path);
    }

    /// <summary>The config of the run, or null when config.json is missing or unreadable.</summary>
    public TrainingConfig? Config()
    {
        var path = Path.Combine(Directory, "config.json");
        try
        {
            return File.Exists(path) ? TrainingConfig.FromJson(File.ReadAllText(path), path) : null;
        }
        catch (Exception e) when (e is FormatException or System.Text.Json.JsonException or IOException)
        {
            return null;
        }
    }
}
