using System.Globalization;
using GradFlow.Training.TensorBoard;

namespace GradFlow.Diagnostics;

/// <summary>
/// The monitor's samples and the diagnosis in a TensorBoard event file: at each sampled step the
/// gradient ratio (<c>gradient_ratio</c>) and per layer l (two digits, 1 = input side) the
/// backpropagated signal RMS (<c>signal_rms/layer_NN</c>), weight-gradient norm
/// (<c>weight_gradient_norm/layer_NN</c>), update ratio (<c>update_ratio/layer_NN</c>), saturation
/// (<c>saturation/layer_NN</c>), dead units (<c>dead_units/layer_NN</c>), and what fp16 and bf16 would lose
/// (<c>grad_below_fp16_subnormal/layer_NN</c>, <c>update_bf16_swallowed/layer_NN</c>); a figure that does not
/// apply to a layer (NaN: saturation of a ReLU, dead units of tanh) is left out. Grouped by figure,
/// so TensorBoard draws the layers of one figure side by side.
/// </summary>
public static class TensorBoardLog
{
    /// <summary>Writes every sample <paramref name="monitor"/> completes from now on to <paramref name="writer"/>.</summary>
    public static void WriteTo(GradientMonitor monitor, EventWriter writer)
    {
        ArgumentNullException.ThrowIfNull(monitor);
        ArgumentNullException.ThrowIfNull(writer);
        monitor.SampleCompleted += s => writer.AddScalars(Scalars(s), s.Step);
    }

    /// <summary>The tags and values of one sample (NaN figures left out).</summary>
    public static IEnumerable<(string Tag, double Value)> Scalars(MonitorSample s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (!double.IsNaN(s.GradientRatio)) yield return ("gradient_ratio", s.GradientRatio);
        foreach (var l in s.Layers)
        {
            string layer = "layer_" + l.LayerIndex.ToString("00", CultureInfo.InvariantCulture);
            foreach (var (name, value) in new[]
                     {
                         ("signal_rms", l.BackpropagatedSignalRms), ("weight_gradient_norm", l.ParameterGradientNorm),
                         ("update_ratio", l.UpdateRatio), ("saturation", l.Saturation), ("dead_units", l.DeadUnits),
                         ("grad_below_fp16_subnormal", l.GradientBelowFp16Subnormal), ("update_bf16_swallowed", l.UpdatesSwallowedByBf16),
                     })
                if (!double.IsNaN(value)) yield return ($"{name}/{layer}", value);
        }
    }

    /// <summary>The diagnosis as text (<c>diagnosis/verdict</c>), at <paramref name="step"/>.</summary>
    public static void WriteVerdict(EventWriter writer, string verdict, long step)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.AddText("diagnosis/verdict", verdict, step);
    }
}
