using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>What the monitor measured for one layer at one sampled step (DESIGN.md's vocabulary).</summary>
public sealed class LayerStats
{
    /// <summary>Layer index, 1 (input side) .. L (output).</summary>
    public int LayerIndex { get; init; }

    /// <summary>The activation of the layer (null for the output layer).</summary>
    public Activation? Activation { get; init; }

    /// <summary>RMS of dL/dh_l, the gradient of the loss with respect to the layer's output.</summary>
    public double BackpropagatedSignalRms { get; set; } = double.NaN;

    /// <summary>Signal RMS of this layer over that of the next (NaN for the last): below 1 the signal shrinks going back through layer l+1.</summary>
    public double Gain { get; set; } = double.NaN;

    /// <summary>||dL/dW_l||₂ of the layer's weight.</summary>
    public double ParameterGradientNorm { get; set; } = double.NaN;

    /// <summary>max |dL/dW_l|.</summary>
    public double ParameterGradientMaxAbs { get; set; } = double.NaN;

    /// <summary>Mean of the layer's activation output.</summary>
    public double ActivationMean { get; set; } = double.NaN;

    /// <summary>Standard deviation of the layer's activation output.</summary>
    public double ActivationStd { get; set; } = double.NaN;

    /// <summary>Fraction of units whose activation derivative is below 1% of the activation's maximum derivative (saturating activations; NaN otherwise).</summary>
    public double Saturation { get; set; } = double.NaN;

    /// <summary>Fraction of ReLU units whose output is zero for every example of the sampled batch (NaN for other activations).</summary>
    public double DeadUnits { get; set; } = double.NaN;

    /// <summary>||ΔW|| / ||W|| of the optimiser step (NaN without an optimiser step).</summary>
    public double UpdateRatio { get; set; } = double.NaN;

    /// <summary>Non-finite elements in the layer's output, its signal and its weight gradient.</summary>
    public long NonFinite { get; set; }
}

/// <summary>One sampled step: global figures and every layer's <see cref="LayerStats"/>.</summary>
public sealed class MonitorSample
{
    /// <summary>Global step index.</summary>
    public long Step { get; init; }

    /// <summary>Epoch (0-based).</summary>
    public int Epoch { get; init; }

    /// <summary>The step's loss.</summary>
    public double Loss { get; set; } = double.NaN;

    /// <summary>L2 norm of all parameter gradients together.</summary>
    public double GlobalGradientNorm { get; set; } = double.NaN;

    /// <summary>Non-finite elements anywhere (outputs, signals, gradients).</summary>
    public long NonFinite { get; set; }

    /// <summary>Layers 1..L.</summary>
    public required LayerStats[] Layers { get; init; }

    /// <summary>Signal RMS at the first layer over that at the last: the gradient ratio.</summary>
    public double GradientRatio => Layers.Length < 2 ? double.NaN : Layers[0].BackpropagatedSignalRms / Layers[^1].BackpropagatedSignalRms;
}

/// <summary>
/// Records, every k-th step, the per-layer gradient-flow statistics of an <see cref="Mlp"/> through
/// module hooks, without changing the model's code: the backpropagated signal dL/dh_l (backward hook
/// on each layer's output module), activation statistics, saturation and dead units (forward hook on
/// each activation), parameter gradients (after backward) and update ratios (after the optimiser step).
/// Hooks only compute on sampled steps; statistics are SIMD reductions (TensorPrimitives).
/// </summary>
public sealed class GradientMonitor : ITrainingObserver, IDisposable
{
    private readonly Mlp _model;
    private readonly List<IDisposable> _handles = [];
    private readonly List<MonitorSample> _samples = [];
    private MonitorSample? _current;

    /// <summary>Attaches to <paramref name="model"/>, sampling every <paramref name="every"/>-th step.</summary>
    public GradientMonitor(Mlp model, int every = 10)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        _model = model;
        Every = every;
        foreach (var layer in model.Layers)
        {
            int i = layer.Index - 1;
            _handles.Add(layer.Output.RegisterBackwardHook((_, g) =>
            {
                if (_current is null) return;
                var s = _current.Layers[i];
                s.BackpropagatedSignalRms = Rms(g, out long bad);
                s.NonFinite += bad;
            }));
            var observed = layer.Activation ?? layer.Output;
            var kind = layer.Activation is null ? (Activation?)null : Activations.KindOf(layer.Activation);
            _handles.Add(observed.RegisterForwardHook((_, _, y) =>
            {
                if (_current is null) return;
                ActivationStatistics(y, kind, _current.Layers[i]);
            }));
        }
    }

    /// <summary>Sampling period in steps.</summary>
    public int Every { get; }

    /// <summary>Every sample taken so far.</summary>
    public IReadOnlyList<MonitorSample> Samples => _samples;

    /// <summary>Raised when a sample is complete (after the optimiser step, or after <see cref="EndSample"/>).</summary>
    public event Action<MonitorSample>? SampleCompleted;

    /// <summary>Starts a sample now (for preflight and manual use); call before the forward pass.</summary>
    public void BeginSample(long step, int epoch = 0)
    {
        _current = new MonitorSample
        {
            Step = step,
            Epoch = epoch,
            Layers = _model.Layers.Select(l => new LayerStats
            {
                LayerIndex = l.Index,
                Activation = l.Activation is null ? null : Activations.KindOf(l.Activation),
            }).ToArray(),
        };
    }

    /// <summary>Records the loss and parameter gradients (call after backward).</summary>
    public void RecordGradients(double loss)
    {
        if (_current is null) return;
        _current.Loss = loss;
        double total = 0;
        foreach (var layer in _model.Layers)
        {
            var s = _current.Layers[layer.Index - 1];
            var g = layer.Linear.Weight.Grad;
            if (g is null) continue;
            var (sumSq, maxAbs, bad) = Norms(g);
            s.ParameterGradientNorm = Math.Sqrt(sumSq);
            s.ParameterGradientMaxAbs = maxAbs;
            s.NonFinite += bad;
        }
        foreach (var p in _model.Parameters())
            if (p.Grad is { } g) total += Norms(g).SumSq;
        _current.GlobalGradientNorm = Math.Sqrt(total);
        for (int i = 0; i + 1 < _current.Layers.Length; i++)
            _current.Layers[i].Gain = _current.Layers[i].BackpropagatedSignalRms / _current.Layers[i + 1].BackpropagatedSignalRms;
        _current.NonFinite = _current.Layers.Sum(l => l.NonFinite);
    }

    /// <summary>Finishes the current sample (update ratios from <paramref name="optimizer"/> when it tracked them).</summary>
    public MonitorSample? EndSample(Optim.Optimizer? optimizer = null)
    {
        var s = _current;
        if (s is null) return null;
        _current = null;
        if (optimizer is { TrackUpdates: true })
        {
            var parameters = optimizer.Parameters;
            foreach (var layer in _model.Layers)
            {
                int p = IndexOf(parameters, layer.Linear.Weight);
                if (p >= 0) s.Layers[layer.Index - 1].UpdateRatio = optimizer.UpdateRatio(p);
            }
            optimizer.TrackUpdates = false;
        }
        _samples.Add(s);
        SampleCompleted?.Invoke(s);
        return s;
    }

    void ITrainingObserver.OnStepStart(StepInfo step)
    {
        if (step.Step % Every != 0) return;
        BeginSample(step.Step, step.Epoch);
        step.Optimizer.TrackUpdates = true;
    }

    void ITrainingObserver.OnBackward(StepInfo step) => RecordGradients(step.Loss);

    void ITrainingObserver.OnStepEnd(StepInfo step) => EndSample(step.Optimizer);

    /// <summary>Removes every hook.</summary>
    public void Dispose()
    {
        foreach (var h in _handles) h.Dispose();
        _handles.Clear();
    }

    private static int IndexOf(IReadOnlyList<Parameter> parameters, Parameter p)
    {
        for (int i = 0; i < parameters.Count; i++)
            if (ReferenceEquals(parameters[i], p)) return i;
        return -1;
    }

    /// <summary>The saturation threshold: a unit is saturated when its derivative is below this fraction of the maximum.</summary>
    public const double SaturationFraction = 0.01;

    private static void ActivationStatistics(Tensor y, Activation? kind, LayerStats s)
    {
        int n = y.Count;
        if (n == 0) return;
        if (y.Storage is float[])
        {
            var v = y.Span<float>();
            double sum = TensorPrimitives.Sum(v), sumSq = TensorPrimitives.SumOfSquares(v);
            double mean = sum / n;
            s.ActivationMean = mean;
            s.ActivationStd = Math.Sqrt(Math.Max(0, sumSq / n - mean * mean));
            if (!double.IsFinite(sum) || !double.IsFinite(sumSq)) s.NonFinite += CountNonFinite(v);
            if (kind is { } k && Activations.Saturates(k)) s.Saturation = SaturatedFraction(v, k);
            if (kind is Nn.Activation.Relu && y.Rank == 2) s.DeadUnits = DeadFraction(v, y.Shape[0], y.Shape[1]);
        }
        else
        {
            var v = y.ToDoubleArray();
            double mean = v.Average();
            s.ActivationMean = mean;
            s.ActivationStd = Math.Sqrt(v.Sum(e => (e - mean) * (e - mean)) / n);
        }
    }

    /// <summary>
    /// Fraction with derivative below 1% of the maximum, from the outputs: sigmoid σ' = y(1−y) (max 1/4),
    /// tanh 1 − y² (max 1); hard forms have derivative 0 outside their linear region.
    /// </summary>
    private static double SaturatedFraction(ReadOnlySpan<float> y, Activation kind)
    {
        long count = 0;
        foreach (float v in y)
        {
            bool sat = kind switch
            {
                Nn.Activation.Sigmoid => v * (1 - v) < SaturationFraction * 0.25,
                Nn.Activation.Tanh => 1 - v * v < SaturationFraction,
                Nn.Activation.HardSigmoid => v <= 0 || v >= 1,
                Nn.Activation.HardTanh => v <= -1 || v >= 1,
                _ => false,
            };
            if (sat) count++;
        }
        return (double)count / y.Length;
    }

    private static double DeadFraction(ReadOnlySpan<float> y, int rows, int cols)
    {
        int dead = 0;
        for (int j = 0; j < cols; j++)
        {
            bool alive = false;
            for (int r = 0; r < rows && !alive; r++) alive = y[r * cols + j] != 0;
            if (!alive) dead++;
        }
        return (double)dead / cols;
    }

    private static double Rms(Tensor g, out long nonFinite)
    {
        var (sumSq, _, bad) = Norms(g);
        nonFinite = bad;
        return g.Count == 0 ? 0 : Math.Sqrt(sumSq / g.Count);
    }

    /// <summary>Σx², max|x| and the non-finite count, in double.</summary>
    private static (double SumSq, double MaxAbs, long NonFinite) Norms(Tensor g)
    {
        if (g.Count == 0) return (0, 0, 0);
        if (g.Storage is float[])
        {
            var v = g.Span<float>();
            double sumSq = TensorPrimitives.SumOfSquares(v);
            double maxAbs = TensorPrimitives.MaxMagnitude(v);
            long bad = double.IsFinite(sumSq) && float.IsFinite((float)maxAbs) ? 0 : CountNonFinite(v);
            if (!double.IsFinite(sumSq) || sumSq > 1e30)
            {
                // recompute in double to avoid float overflow of the sum of squares
                sumSq = 0;
                foreach (float x in v) if (float.IsFinite(x)) sumSq += (double)x * x;
                if (bad > 0) sumSq = double.PositiveInfinity;
            }
            return (sumSq, Math.Abs(maxAbs), bad);
        }
        var d = g.ToDoubleArray();
        return (d.Sum(x => x * x), d.Max(Math.Abs), d.Count(x => !double.IsFinite(x)));
    }

    private static long CountNonFinite(ReadOnlySpan<float> v)
    {
        long n = 0;
        foreach (float x in v) if (!float.IsFinite(x)) n++;
        return n;
    }
}
