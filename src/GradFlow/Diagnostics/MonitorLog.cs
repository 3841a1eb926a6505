using System.Globalization;
using System.Text;
using System.Text.Json;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// The JSON-lines form of monitor samples in <c>metrics.jsonl</c> (docs/diagnosis.md, "metrics.jsonl"):
/// <code>
/// {"type":"step","step":40,"epoch":0,"loss":2.3,"mean_loss":2.4,"global_gradient_norm":0.8,"gradient_ratio":3.1e-6,"non_finite":0,
///  "layers":[{"layer":1,"activation":"tanh","signal_rms":1e-9,"gain":0.5,"grad_norm":1e-7,"grad_max_abs":1e-8,
///             "act_mean":0.01,"act_std":0.6,"saturation":0.1,"dead_units":null,"update_ratio":1e-5,"non_finite":0}, ...],
///  "time_signal":[[0.002,0.004,0.01],[0.001,0.003,0.02]],
///  "blocks":[{"block":1,"attention_layer":3,"signal_rms":0.02,"max_entropy":4.85,"entropy":[3.1,2.7,4.0,0.4]}, ...]}
/// </code>
/// <c>blocks</c> is present only for models with transformer layers (<see cref="MonitorSample.Blocks"/>): per layer,
/// the monitored layer index of its attention sub-layer (its feed-forward sub-layer is the next), the RMS of
/// dL/d(block output), ln S for S keys, and each head's attention entropy in nats.
/// <c>time_signal</c> is present only for models with recurrent layers (<see cref="MonitorSample.TimeSignal"/>):
/// one array per recurrent monitored layer (each stacked layer of each recurrent module, input side
/// first), element t the RMS of dL/dh_t, t = 0..T−1 (an empty array when the layer's backward did not run).
/// Numbers that do not apply, and NaN, are null (the <c>non_finite</c> counts say when NaN occurred);
/// infinities are written as the strings "Infinity"/"-Infinity", so an explosion stays visible
/// instead of being dropped.
/// </summary>
public static class MonitorLog
{
    /// <summary>One line for <paramref name="s"/>.</summary>
    public static string ToJsonLine(MonitorSample s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var sb = new StringBuilder(256 + 256 * s.Layers.Length + 24 * (s.TimeSignal?.Sum(t => t.Length) ?? 0));
        sb.Append("{\"type\":\"step\",\"step\":").Append(s.Step).Append(",\"epoch\":").Append(s.Epoch);
        Num(sb, "loss", s.Loss);
        Num(sb, "mean_loss", s.MeanLoss);
        Num(sb, "global_gradient_norm", s.GlobalGradientNorm);
        Num(sb, "gradient_ratio", s.GradientRatio);
        sb.Append(",\"non_finite\":").Append(s.NonFinite).Append(",\"layers\":[");
        for (int i = 0; i < s.Layers.Length; i++)
        {
            var l = s.Layers[i];
            if (i > 0) sb.Append(',');
            sb.Append("{\"layer\":").Append(l.LayerIndex).Append(",\"activation\":");
            sb.Append(l.Activation is { } a ? "\"" + ModelSpec.NameOf(a) + "\"" : "null");
            Num(sb, "signal_rms", l.BackpropagatedSignalRms);
            Num(sb, "gain", l.Gain);
            Num(sb, "grad_norm", l.ParameterGradientNorm);
            Num(sb, "grad_max_abs", l.ParameterGradientMaxAbs);
            Num(sb, "act_mean", l.ActivationMean);
            Num(sb, "act_std", l.ActivationStd);
            Num(sb, "saturation", l.Saturation);
            Num(sb, "dead_units", l.DeadUnits);
            if (!double.IsNaN(l.NormRunningMean) || !double.IsNaN(l.NormRunningVar))
            {
                Num(sb, "bn_running_mean", l.NormRunningMean);
                Num(sb, "bn_running_var", l.NormRunningVar);
            }
            Num(sb, "update_ratio", l.UpdateRatio);
            Num(sb, "signal_below_fp16_subnormal", l.SignalBelowFp16Subnormal);
            Num(sb, "signal_below_fp16_normal", l.SignalBelowFp16Normal);
            Num(sb, "grad_below_fp16_subnormal", l.GradientBelowFp16Subnormal);
            Num(sb, "grad_below_fp16_normal", l.GradientBelowFp16Normal);
            Num(sb, "update_bf16_swallowed", l.UpdatesSwallowedByBf16);
            sb.Append(",\"non_finite\":").Append(l.NonFinite).Append('}');
        }
        sb.Append(']');
        if (s.TimeSignal is { } time)
        {
            sb.Append(",\"time_signal\":[");
            for (int k = 0; k < time.Length; k++)
            {
                if (k > 0) sb.Append(',');
                sb.Append('[');
                for (int t = 0; t < time[k].Length; t++)
                {
                    if (t > 0) sb.Append(',');
                    Value(sb, time[k][t]);
                }
                sb.Append(']');
            }
            sb.Append(']');
        }
        if (s.Blocks is { } blocks)
        {
            sb.Append(",\"blocks\":[");
            for (int k = 0; k < blocks.Length; k++)
            {
                var b = blocks[k];
                if (k > 0) sb.Append(',');
                sb.Append("{\"block\":").Append(b.Block).Append(",\"attention_layer\":").Append(b.AttentionLayer);
                Num(sb, "signal_rms", b.BackpropagatedSignalRms);
                Num(sb, "max_entropy", b.MaxEntropy);
                sb.Append(",\"entropy\":[");
                for (int h = 0; h < b.AttentionEntropy.Length; h++)
                {
                    if (h > 0) sb.Append(',');
                    Value(sb, b.AttentionEntropy[h]);
                }
                sb.Append("]}");
            }
            sb.Append(']');
        }
        return sb.Append('}').ToString();
    }

    /// <summary>Reads the step lines of a <c>metrics.jsonl</c> file (other lines are skipped; a truncated last line is ignored).</summary>
    public static List<MonitorSample> ReadSamples(string path)
    {
        var result = new List<MonitorSample>();
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith("{\"type\":\"step\"", StringComparison.Ordinal)) continue;
            try
            {
                result.Add(Parse(line));
            }
            catch (JsonException)
            {
            }
        }
        return result;
    }

    /// <summary>Parses one step line.</summary>
    public static MonitorSample Parse(string line)
    {
        using var doc = JsonDocument.Parse(line);
        return Parse(doc.RootElement);
    }

    /// <summary>Parses one step line already read as JSON.</summary>
    public static MonitorSample Parse(JsonElement r)
    {
        var layers = Field(r, "layers").EnumerateArray().Select(l => new LayerStats
        {
            LayerIndex = Field(l, "layer").GetInt32(),
            Activation = Field(l, "activation").ValueKind == JsonValueKind.String ? ModelSpec.ParseActivation(Field(l, "activation").GetString()!) : null,
            BackpropagatedSignalRms = Get(l, "signal_rms"),
            Gain = Get(l, "gain"),
            ParameterGradientNorm = Get(l, "grad_norm"),
            ParameterGradientMaxAbs = Get(l, "grad_max_abs"),
            ActivationMean = Get(l, "act_mean"),
            ActivationStd = Get(l, "act_std"),
            Saturation = Get(l, "saturation"),
            DeadUnits = Get(l, "dead_units"),
            NormRunningMean = l.TryGetProperty("bn_running_mean", out var bm) ? Value(bm) : double.NaN,
            NormRunningVar = l.TryGetProperty("bn_running_var", out var bv) ? Value(bv) : double.NaN,
            UpdateRatio = Get(l, "update_ratio"),
            NonFinite = Field(l, "non_finite").GetInt64(),
        }).ToArray();
        return new MonitorSample
        {
            Step = Field(r, "step").GetInt64(),
            Epoch = Field(r, "epoch").GetInt32(),
            Loss = Get(r, "loss"),
            MeanLoss = r.TryGetProperty("mean_loss", out _) ? Get(r, "mean_loss") : double.NaN,
            GlobalGradientNorm = Get(r, "global_gradient_norm"),
            NonFinite = Field(r, "non_finite").GetInt64(),
            Layers = layers,
            TimeSignal = r.TryGetProperty("time_signal", out var time) && time.ValueKind == JsonValueKind.Array
                ? time.EnumerateArray().Select(k => k.EnumerateArray().Select(Value).ToArray()).ToArray()
                : null,
            Blocks = r.TryGetProperty("blocks", out var blocks) && blocks.ValueKind == JsonValueKind.Array
                ? blocks.EnumerateArray().Select(b => new BlockStats
                {
                    Block = Field(b, "block").GetInt32(),
                    AttentionLayer = Field(b, "attention_layer").GetInt32(),
                    BackpropagatedSignalRms = Get(b, "signal_rms"),
                    MaxEntropy = Get(b, "max_entropy"),
                    AttentionEntropy = Field(b, "entropy").EnumerateArray().Select(Value).ToArray(),
                }).ToArray()
                : null,
        };
    }

    /// <summary>
    /// The line of the facts a verdict reads beside the samples, which the samples do not carry:
    /// <c>{"type":"watch","step":0,"chance_loss":0.693,"predicted_update_ratio":0.004,"zero_output_loss":0.693}</c> (the step of the sample it precedes, the training labels' chance level,
    /// <see cref="Trials.ChanceLoss"/>, the first step's predicted update ratio, and the loss of all-zero outputs, <see cref="Trials.ZeroOutputLoss"/>; null when unknown),
    /// and <c>"loss_floor"</c>, the lowest reachable loss (<see cref="Trials.LossFloor"/>), when it is above 0 (label smoothing). A run's
    /// metrics file has it before its first sample, so that a reader of the file alone (the dashboard's live verdict)
    /// judges the samples with the evidence the run's own verdict has.
    /// </summary>
    public static string WatchLine(long step, double chanceLoss, double predictedUpdateRatio, double zeroOutputLoss = double.NaN, double lossFloor = 0,
        double linearBaselineLoss = double.NaN, int linearBaselineSteps = 0)
    {
        var sb = new StringBuilder("{\"type\":\"watch\",\"step\":").Append(step);
        Num(sb, "chance_loss", chanceLoss);
        Num(sb, "predicted_update_ratio", predictedUpdateRatio);
        Num(sb, "zero_output_loss", zeroOutputLoss);
        if (lossFloor > 0) Num(sb, "loss_floor", lossFloor);
        if (double.IsFinite(linearBaselineLoss))
        {
            Num(sb, "linear_baseline_loss", linearBaselineLoss);
            sb.Append(",\"linear_baseline_steps\":").Append(linearBaselineSteps);
        }
        return sb.Append('}').ToString();
    }

    /// <summary>Whether <paramref name="line"/> is a <see cref="WatchLine"/>.</summary>
    public static bool IsWatchLine(string line) => line.StartsWith("{\"type\":\"watch\"", StringComparison.Ordinal);

    /// <summary>Parses a <see cref="WatchLine"/> (NaN for a fact it does not have: a file written before the zero-output loss was recorded has none; a loss floor of 0 when absent).</summary>
    public static WatchFacts ParseWatch(string line)
    {
        using var doc = JsonDocument.Parse(line);
        return ParseWatch(doc.RootElement);
    }

    /// <summary>Parses a <see cref="WatchLine"/> already read as JSON.</summary>
    public static WatchFacts ParseWatch(JsonElement r)
    {
        double Fact(string name) => r.TryGetProperty(name, out var v) ? Value(v) : double.NaN;
        double floor = Fact("loss_floor");
        double linearSteps = Fact("linear_baseline_steps");
        return new WatchFacts(Fact("chance_loss"), Fact("predicted_update_ratio"), Fact("zero_output_loss"), double.IsFinite(floor) ? floor : 0,
            Fact("linear_baseline_loss"), double.IsFinite(linearSteps) ? (int)linearSteps : 0);
    }

    /// <summary>An observer that appends every completed sample of <paramref name="monitor"/> to the run directory's metrics file.</summary>
    public static void WriteTo(GradientMonitor monitor, RunDirectory run)
    {
        ArgumentNullException.ThrowIfNull(monitor);
        ArgumentNullException.ThrowIfNull(run);
        monitor.SampleCompleted += s => run.AppendLine(ToJsonLine(s));
    }

    internal static double Get(JsonElement e, string name) => Value(Field(e, name));

    /// <summary><paramref name="e"/>'s property <paramref name="name"/>; a missing one is a <see cref="KeyNotFoundException"/> that names it
    /// (the runtime's says only "the given key was not present").</summary>
    internal static JsonElement Field(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? v : throw new KeyNotFoundException($"field '{name}' is missing");

    private static double Value(JsonElement v) =>
        v.ValueKind switch
        {
            JsonValueKind.Number => v.GetDouble(),
            JsonValueKind.String => v.GetString() switch { "Infinity" => double.PositiveInfinity, "-Infinity" => double.NegativeInfinity, _ => double.NaN },
            _ => double.NaN,
        };

    private static void Num(StringBuilder sb, string name, double v)
    {
        sb.Append(",\"").Append(name).Append("\":");
        Value(sb, v);
    }

    private static void Value(StringBuilder sb, double v)
    {
        if (double.IsPositiveInfinity(v)) sb.Append("\"Infinity\"");
        else if (double.IsNegativeInfinity(v)) sb.Append("\"-Infinity\"");
        else if (double.IsNaN(v)) sb.Append("null");
        else sb.Append(v.ToString("R", CultureInfo.InvariantCulture));
    }
}

/// <summary>The facts of a <see cref="MonitorLog.WatchLine"/>: chance level, first step's predicted update ratio, loss of all-zero outputs, lowest reachable loss.</summary>
public readonly record struct WatchFacts(double ChanceLoss, double PredictedUpdateRatio, double ZeroOutputLoss, double LossFloor,
    double LinearBaselineLoss = double.NaN, int LinearBaselineSteps = 0);
