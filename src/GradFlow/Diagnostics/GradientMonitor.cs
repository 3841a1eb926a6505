using System.Globalization;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

using GradFlow.Kernels;

namespace GradFlow.Diagnostics;

/// <summary>What the monitor measured for one layer at one sampled step (DESIGN.md's vocabulary).</summary>
public sealed class LayerStats
{
    /// <summary>Layer index, 1 (input side) .. L (output).</summary>
    public int LayerIndex { get; init; }

    /// <summary>The activation of the layer (null for the output layer).</summary>
    public Activation? Activation { get; init; }

    /// <summary>
    /// RMS of dL/dh_l, the gradient of the loss with respect to the layer's output; for a layer before an average pool, times the
    /// positions each pooled value averages (<see cref="MonitoredLayer.SignalScale"/>): the pool's constant 1/P divided out.
    /// </summary>
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

    /// <summary>The layer's BatchNorm after this step: mean |running mean| over its features or channels (NaN without one).</summary>
    public double NormRunningMean { get; set; } = double.NaN;

    /// <summary>The layer's BatchNorm after this step: mean running variance over its features or channels (NaN without one).</summary>
    public double NormRunningVar { get; set; } = double.NaN;

    /// <summary>||ΔW|| / ||W|| of the optimiser step (NaN without an optimiser step).</summary>
    public double UpdateRatio { get; set; } = double.NaN;

    /// <summary>Of the weight gradient's nonzero values, the fraction below fp16's smallest subnormal 2⁻²⁴: what an fp16 run would lose without loss scaling (NaN when not measured).</summary>
    public double GradientBelowFp16Subnormal { get; set; } = double.NaN;

    /// <summary>Of the weight gradient's nonzero values, the fraction below fp16's smallest normal 2⁻¹⁴ (subnormal in fp16: fewer significant bits).</summary>
    public double GradientBelowFp16Normal { get; set; } = double.NaN;

    /// <summary>As <see cref="GradientBelowFp16Subnormal"/>, of the backpropagated signal dL/d(layer output), counted over every micro-batch at its own scale (NaN without a signal, and for a recurrent layer, whose signal its probes measure).</summary>
    public double SignalBelowFp16Subnormal { get; set; } = double.NaN;

    /// <summary>As <see cref="SignalBelowFp16Subnormal"/>, below fp16's smallest normal 2⁻¹⁴.</summary>
    public double SignalBelowFp16Normal { get; set; } = double.NaN;

    /// <summary>Of the weights the optimiser step changed, the fraction that changed by less than half a bf16 ulp: the updates a bf16 weight would swallow (NaN without a tracked step).</summary>
    public double UpdatesSwallowedByBf16 { get; set; } = double.NaN;

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

    /// <summary>Mean training loss over the steps since the previous sample, this one included (minibatch noise averaged out; the loss itself in preflight).</summary>
    public double MeanLoss { get; set; } = double.NaN;

    /// <summary>L2 norm of all parameter gradients together.</summary>
    public double GlobalGradientNorm { get; set; } = double.NaN;

    /// <summary>Non-finite elements anywhere (outputs, signals, gradients).</summary>
    public long NonFinite { get; set; }

    /// <summary>Layers 1..L.</summary>
    public required LayerStats[] Layers { get; init; }

    /// <summary>
    /// The backpropagated signal through time, for models with recurrent layers: element [k][t] is the
    /// RMS of dL/dh_t (the total gradient reaching the hidden state of step t, from the output at t and
    /// from step t + 1) of recurrent layer k (0 = the input side), t = 0..T−1. Null for models without
    /// recurrent layers.
    /// </summary>
    public double[][]? TimeSignal { get; init; }

    /// <summary>
    /// The transformer layers (blocks), input side first, for models with them; null otherwise. Each
    /// block's attention and feed-forward sub-layers are also two monitored layers of <see cref="Layers"/>.
    /// </summary>
    public BlockStats[]? Blocks { get; init; }

    /// <summary>Signal RMS at the first layer over that at the last: the gradient ratio.</summary>
    public double GradientRatio => Layers.Length < 2 ? double.NaN : Layers[0].BackpropagatedSignalRms / Layers[^1].BackpropagatedSignalRms;
}

/// <summary>What the monitor measured for one transformer layer (block) at one sampled step.</summary>
public sealed class BlockStats
{
    /// <summary>Block index, 1 (input side) .. number of transformer layers.</summary>
    public int Block { get; init; }

    /// <summary>The monitored layer index of the block's attention sub-layer (its feed-forward sub-layer is the next).</summary>
    public int AttentionLayer { get; init; }

    /// <summary>RMS of dL/dx_out, the gradient of the loss with respect to the block's output (after both residual sums).</summary>
    public double BackpropagatedSignalRms { get; set; } = double.NaN;

    /// <summary>
    /// Each head's attention entropy in nats, <c>−Σ_j P_ij ln P_ij</c> averaged over the queries i and the batch
    /// (Zhai et al. 2023); at most <see cref="MaxEntropy"/>.
    /// </summary>
    public required double[] AttentionEntropy { get; init; }

    /// <summary>ln S for S keys: the entropy of uniform attention, the largest a head can have (a causal query sees fewer keys, so its own maximum is lower).</summary>
    public double MaxEntropy { get; init; } = double.NaN;
}

/// <summary>A layer the monitor watches: a weight matrix, the module whose output is h_l, and its activation.</summary>
/// <remarks>
/// A stacked layer k of a recurrent module is one monitored layer: its weight is <c>weight_hh_l{k}</c>,
/// its output module the recurrent module, its <see cref="Activation"/> null and its <see cref="Kind"/>
/// the recurrence's nonlinearity (tanh or ReLU for an <see cref="Rnn"/>, null for LSTM and GRU).
/// </remarks>
/// <param name="Index">1 (input side) .. L (output).</param>
/// <param name="Name">The weight's module name in the model (<c>body.3</c>), or for a recurrent layer the weight's state-dict name (<c>rnn.weight_hh_l0</c>).</param>
/// <param name="Weight">The layer's weight.</param>
/// <param name="Output">The module whose output is the layer's output h_l (dL/dh_l is the backpropagated signal).</param>
/// <param name="Activation">The activation module (statistics, saturation, dead units), or null.</param>
public sealed record MonitoredLayer(int Index, string Name, Parameter Weight, Module Output, Module? Activation)
{
    /// <summary>The activation's kind, or null.</summary>
    public Activation? Kind { get; init; } = Activation is null ? null : Activations.KindOf(Activation);

    /// <summary>For a stacked layer of a recurrent module, its index k (0 = input side); −1 otherwise.</summary>
    public int RecurrentLayer { get; init; } = -1;

    /// <summary>The layer's norm (between its weight and its activation; a residual block: its branch's last), whose running statistics a BatchNorm's sample records; or null.</summary>
    public Module? Norm { get; init; }

    /// <summary>
    /// What the layer's signal RMS is multiplied by: the positions that the average pools after it average into one (H·W for a
    /// global average pool), 1 when none follows. An average pool hands each of P positions 1/P of the gradient of their mean, a
    /// constant of the architecture rather than a decay of the signal: measured raw, a one-conv ReLU net with He init ending in a
    /// global average pool over 28×28 had a gradient ratio of 8.5e-4 and was called vanishing (<see cref="NetworkWatch"/>).
    /// </summary>
    public double SignalScale { get; init; } = 1;
}

/// <summary>
/// Records, every k-th step, the per-layer gradient-flow statistics of any <see cref="Module"/>
/// through hooks, without changing the model's code: the backpropagated signal dL/dh_l (a gradient
/// observer on each layer's output tensor, registered only on sampled steps; unlike a hook it does
/// not keep the gradient, so backward still recycles its storage), activation statistics,
/// saturation and dead units (an output hook on each activation, so a linear layer or batch norm fused with its activation stays fused), parameter gradients (after backward),
/// the mean loss since the previous sample, and update ratios (from the optimiser, every
/// <see cref="UpdateRatioEvery"/>-th sample).
/// </summary>
/// <remarks>
/// Layers: a description-built <see cref="Nn.Network.Network"/>'s (<see cref="NetworkWatch"/>); an <see cref="Mlp"/>'s own layers; for any other module, in registration order, every
/// stacked layer of every <see cref="RecurrentLayer"/> (<c>NumLayers</c> monitored layers each,
/// weight <c>weight_hh_l{k}</c>) and every <see cref="Linear"/>, each Linear with the first activation
/// module registered after it (before the next Linear) — the layout of a Sequential MLP.
/// Recurrent layers are measured through time: on sampled steps the monitor arms a
/// <see cref="RecurrentGradientProbe"/> per stacked layer before the forward pass
/// (<see cref="RecurrentLayer.ArmGradientProbes"/>) and reads it after backward, giving
/// <see cref="MonitorSample.TimeSignal"/> (RMS of dL/dh_t per step) and, as the layer's
/// <see cref="LayerStats.BackpropagatedSignalRms"/>, the RMS of dL/dh over all steps; activation
/// statistics come from the module's output (the last stacked layer's h at every step) and are NaN
/// for the stacked layers below it. Cost: outside sampled steps, one branch per hook; on a
/// sampled step, one fused SIMD pass (Σx², max|x|, non-finite) over each gradient and activation, split
/// across the kernel threads for large tensors. The history is columnar and grows by doubling; the
/// <see cref="MonitorSample"/> objects of <see cref="Samples"/> are built when read, so a monitored
/// training step allocates nothing in steady state (the <see cref="SampleCompleted"/> event, when
/// subscribed, builds each sample it passes).
/// </remarks>
public sealed class GradientMonitor : ITrainingObserver, IMicroBatchStatistics, IDisposable
{
    private readonly MonitoredLayer[] _layers;
    private readonly Parameter[] _parameters;
    private readonly int[] _weightSlot;        // index of each layer's weight in _parameters
    private readonly List<IDisposable> _handles = [];
    private readonly Action<Tensor>[] _signalHooks;
    private readonly float[]?[] _aliveMask;

    // the statistics of the batch seen so far, as sums (Partial.* fields per layer, then its alive mask): one forward and backward
    // in one process, or a micro-batch's under DataParallel, which combines them over the global batch (IMicroBatchStatistics)
    private readonly int[] _partialOffset;     // per layer, into _partial; [L] = the length
    private readonly double[] _partial, _totals;
    private bool _combined;
    private readonly StatisticsKernel _stats = new();
    private readonly Tensor?[] _grads;
    private readonly (double SumSq, double MaxAbs, long NonFinite)[] _gradStats;
    private readonly (long Nonzero, long BelowSubnormal, long BelowNormal)[] _gradFp16;
    private bool _disposed;

    // recurrent layers: the probes of each recurrent module, and per monitored layer its probe (null for Linear layers)
    private readonly (RecurrentLayer Module, RecurrentGradientProbe[] Probes)[] _recurrent;
    private readonly RecurrentGradientProbe?[] _probeOf;
    private readonly int[] _timeLayers;           // monitored layers with a time signal, in order
    private double[] _currentTime = [];
    private readonly int[] _currentTimeLength;
    // under DataParallel: each local micro-batch's probe readings (per time layer its T sums of squares, then T non-finite counts),
    // and the global batch's, combined over the micro-batches (same layout; elements per step per time layer)
    private readonly List<double[]> _microTime = [];
    private int _microTimeCount;
    private readonly int[] _variableSteps;
    private double[] _timeTotals = [];
    private readonly double[] _timeElements;
    private bool _timeCombined;

    // transformer layers: the layer, its attention sub-layer's monitored index, its heads' offset in the entropy arrays
    private readonly (TransformerEncoderLayer Layer, int AttentionLayer, int Offset)[] _blocks;
    private readonly Action<double[,]>[] _entropyHooks;
    private readonly int _heads;                   // heads of all blocks together
    private readonly double[] _blockSignal, _blockKeys, _entropySum;
    private readonly int[] _entropyCalls;
    private double[] _blockHistory = [];           // per sample: signal and keys of each block, then every head's entropy

    // the sample being taken
    private bool _sampling;
    private long _step;
    private int _epoch;
    private double _loss = double.NaN, _meanLoss = double.NaN, _globalNorm = double.NaN;
    private readonly LayerRecord[] _current;

    // loss of every step since the previous sample, and of the last RecentSteps steps (a ring)
    private double _lossSum;
    private int _lossCount;
    private readonly double[] _recent = new double[RecentSteps];
    private long _seen;

    // columnar history
    private SampleRecord[] _history = new SampleRecord[64];
    private LayerRecord[] _layerHistory;
    private double[] _timeHistory = [];            // every sample's time signals, back to back
    private int _timeUsed;
    private int[] _timeLengthHistory;              // [sample][time layer] steps
    private int _count;
    private readonly List<MonitorSample> _built = [];
    private readonly SampleList _view;

    /// <summary>Attaches to <paramref name="model"/>, sampling every <paramref name="every"/>-th step.</summary>
    /// <exception cref="ArgumentException">when the model has no Linear layer to watch.</exception>
    public GradientMonitor(Module model, int every = 10, int updateRatioEvery = 1)
        : this(model, DiscoverLayers(model ?? throw new ArgumentNullException(nameof(model))), every, updateRatioEvery)
    {
    }

    /// <summary>
    /// Attaches to <paramref name="model"/> watching <paramref name="layers"/> (e.g. a description's,
    /// <see cref="NetworkWatch.Layers(Nn.Network.NetworkDescription, Module)"/>), sampling every <paramref name="every"/>-th step.
    /// </summary>
    /// <exception cref="ArgumentException">when the list is empty, its indices are not 1..L in order, or a weight is not the model's.</exception>
    public GradientMonitor(Module model, IReadOnlyList<MonitoredLayer> layers, int every = 10, int updateRatioEvery = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(updateRatioEvery, 1);
        Every = every;
        UpdateRatioEvery = updateRatioEvery;
        _layers = layers.ToArray();
        if (_layers.Length == 0)
            throw new ArgumentException($"GradientMonitor: {model.GetType().Name} has no Linear layer (or recurrent layer) to watch.", nameof(model));
        var parameters = model.Parameters().ToArray();
        for (int i = 0; i < _layers.Length; i++)
            if (_layers[i].Index != i + 1 || IndexOf(parameters, _layers[i].Weight) < 0)
                throw new ArgumentException($"GradientMonitor: monitored layer {i + 1} ('{_layers[i].Name}') must have index {i + 1} and a weight of the model.", nameof(layers));
        _recurrent = _layers.Where(l => l.RecurrentLayer == 0)
            .Select(l => ((RecurrentLayer)l.Output, Enumerable.Range(0, ((RecurrentLayer)l.Output).NumLayers).Select(_ => new RecurrentGradientProbe()).ToArray()))
            .ToArray();
        _probeOf = new RecurrentGradientProbe?[_layers.Length];
        for (int i = 0, r = -1; i < _layers.Length; i++)
        {
            if (_layers[i].RecurrentLayer == 0) r++;
            if (_layers[i].RecurrentLayer >= 0) _probeOf[i] = _recurrent[r].Probes[_layers[i].RecurrentLayer];
        }
        _timeLayers = Enumerable.Range(0, _layers.Length).Where(i => _probeOf[i] is not null).ToArray();
        _currentTimeLength = new int[_timeLayers.Length];
        _variableSteps = new int[_timeLayers.Length];
        _timeElements = new double[_timeLayers.Length];
        _parameters = parameters;
        _grads = new Tensor?[_parameters.Length];
        _gradStats = new (double, double, long)[_parameters.Length];
        _gradFp16 = new (long, long, long)[_parameters.Length];
        _weightSlot = _layers.Select(l => Array.IndexOf(_parameters, l.Weight)).ToArray();
        _current = new LayerRecord[_layers.Length];
        _layerHistory = new LayerRecord[_history.Length * _layers.Length];
        _timeLengthHistory = new int[_history.Length * _timeLayers.Length];
        _aliveMask = new float[_layers.Length][];
        _partialOffset = new int[_layers.Length + 1];
        for (int i = 0; i < _layers.Length; i++)
            _partialOffset[i + 1] = _partialOffset[i] + Partial.Count + MaskWidth(_layers[i]);
        _partial = new double[_partialOffset[^1] + 2 * _timeLayers.Length];
        _totals = new double[_partialOffset[^1]];
        _signalHooks = new Action<Tensor>[_layers.Length];
        _view = new SampleList(this);
        var blocks = new List<(TransformerEncoderLayer, int, int)>();
        foreach (var (_, m) in model.NamedModules())
            if (m is TransformerEncoderLayer t && Array.FindIndex(_layers, l => ReferenceEquals(l.Output, t.SelfAttn)) is >= 0 and var a)
            {
                blocks.Add((t, a + 1, _heads));
                _heads += t.SelfAttn.NumHeads;
            }
        _blocks = blocks.ToArray();
        _blockSignal = new double[_blocks.Length];
        _blockKeys = new double[_blocks.Length];
        _entropySum = new double[_heads];
        _entropyCalls = new int[_blocks.Length];
        _entropyHooks = new Action<double[,]>[_blocks.Length];
        for (int k = 0; k < _blocks.Length; k++)
        {
            int block = k;
            var (layer, _, offset) = _blocks[k];
            Action<Tensor> signal = g =>
            {
                if (!_sampling) return;
                var (sumSq, _, bad) = _stats.Measure(g);
                _blockSignal[block] = g.Count == 0 ? 0 : Math.Sqrt(sumSq / g.Count);
                _current[_blocks[block].AttentionLayer - 1].NonFinite += bad;
            };
            _entropyHooks[k] = e =>
            {
                // [B, H] mean entropies over the queries: the mean over the batch, summed over the forward passes of the step
                if (!_sampling) return;
                int n = e.GetLength(0);
                for (int h = 0; h < e.GetLength(1); h++)
                {
                    double sum = 0;
                    for (int b = 0; b < n; b++) sum += e[b, h];
                    _entropySum[offset + h] += n == 0 ? 0 : sum / n;
                }
                _entropyCalls[block]++;
            };
            _handles.Add(layer.RegisterForwardHook((_, x, y) =>
            {
                if (!_sampling) return;
                _blockKeys[block] = x.Rank == 3 ? x.Shape[1] : double.NaN;
                if (y.RequiresGrad) y.ObserveGradient(signal);
            }));
        }
        for (int i = 0; i < _layers.Length; i++)
        {
            int layer = i;
            _signalHooks[i] = g =>
            {
                if (!_sampling) return;
                var (sumSq, _, bad) = _stats.Measure(g, countFp16: true, out var fp16);
                var p = _partial.AsSpan(_partialOffset[layer]);
                p[Partial.SignalHits]++;
                p[Partial.SignalSumSq] += sumSq;
                p[Partial.SignalCount] += g.Count;
                p[Partial.NonFinite] += bad;
                p[Partial.SignalNonzero] += fp16.Nonzero;
                p[Partial.SignalBelowFp16Subnormal] += fp16.BelowSubnormal;
                p[Partial.SignalBelowFp16Normal] += fp16.BelowNormal;
            };
            var l = _layers[i];
            if (l.RecurrentLayer >= 0)
            {
                // the signal comes from the probe; activation statistics from the module's output,
                // which is the last stacked layer's h at every step
                if (l.RecurrentLayer == ((RecurrentLayer)l.Output).NumLayers - 1)
                    _handles.Add(l.Output.RegisterOutputHook((_, y) =>
                    {
                        if (_sampling) ActivationStatistics(y, layer);
                    }));
                continue;
            }
            if (l.Activation is { } act && !ReferenceEquals(act, l.Output))
                _handles.Add(act.RegisterOutputHook((_, y) =>
                {
                    if (_sampling) ActivationStatistics(y, layer);
                }));
            bool statsAtOutput = l.Activation is null || ReferenceEquals(l.Activation, l.Output);
            _handles.Add(l.Output.RegisterOutputHook((_, y) =>
            {
                if (!_sampling) return;
                if (statsAtOutput) ActivationStatistics(y, layer);
                if (y.RequiresGrad) y.ObserveGradient(_signalHooks[layer]);
            }));
        }
    }

    /// <summary>The watched layers, input side first.</summary>
    public IReadOnlyList<MonitoredLayer> Layers => _layers;

    /// <summary>Sampling period in steps.</summary>
    public int Every { get; }

    /// <summary>Update ratios are taken on every n-th sample (they need a copy of the weights before the step).</summary>
    public int UpdateRatioEvery { get; }

    /// <summary>Every sample taken so far (built from the columnar history when read).</summary>
    public IReadOnlyList<MonitorSample> Samples => _view;

    /// <summary>The last sample, or null.</summary>
    public MonitorSample? Last => _count == 0 ? null : _view[_count - 1];

    /// <summary>Steps whose loss <see cref="RecentLosses"/> keeps.</summary>
    public const int RecentSteps = 32;

    /// <summary>The loss of each of the last (up to) <see cref="RecentSteps"/> trained steps, oldest first: an explosion between two samples shows here.</summary>
    public double[] RecentLosses()
    {
        int n = (int)Math.Min(_seen, RecentSteps);
        var result = new double[n];
        for (int i = 0; i < n; i++) result[i] = _recent[(_seen - n + i) % RecentSteps];
        return result;
    }

    /// <summary>Raised when a sample is complete (after the optimiser step, or after <see cref="EndSample"/>).</summary>
    public event Action<MonitorSample>? SampleCompleted;

    /// <summary>Starts a sample now (for preflight and manual use); call before the forward pass.</summary>
    public void BeginSample(long step, int epoch = 0)
    {
        _sampling = true;
        _step = step;
        _epoch = epoch;
        _loss = _meanLoss = _globalNorm = double.NaN;
        Array.Fill(_current, LayerRecord.Empty);
        Array.Clear(_partial);
        foreach (var mask in _aliveMask) mask?.AsSpan().Clear();
        _combined = false;
        Array.Clear(_currentTimeLength);
        Array.Fill(_blockSignal, double.NaN);
        Array.Fill(_blockKeys, double.NaN);
        Array.Clear(_entropySum);
        Array.Clear(_entropyCalls);
        // attention entropy costs a second softmax of the scores: computed on sampled steps only
        if (!_disposed)
            for (int k = 0; k < _blocks.Length; k++) _blocks[k].Layer.SelfAttn.EntropyObserver = _entropyHooks[k];
        _microTimeCount = 0;
        _timeCombined = false;
        ArmProbes();
    }

    /// <summary>Resets the recurrent layers' probes and arms them for the next forward pass.</summary>
    private void ArmProbes()
    {
        foreach (var (module, probes) in _recurrent)
        {
            foreach (var p in probes) p.Reset();
            if (!_disposed) module.ArmGradientProbes(probes);
        }
    }

    /// <summary>Records the loss and parameter gradients (call after backward).</summary>
    public void RecordGradients(double loss)
    {
        if (!_sampling) return;
        FinishLocal();
        _loss = loss;
        _meanLoss = _lossCount > 0 ? _lossSum / _lossCount : loss;
        _lossSum = 0;
        _lossCount = 0;
        double total = 0;
        for (int p = 0; p < _parameters.Length; p++) _grads[p] = _parameters[p].Grad;
        _stats.MeasureAll(_grads, _gradStats, _gradFp16);
        Array.Clear(_grads);
        for (int p = 0; p < _parameters.Length; p++)
        {
            if (_parameters[p].Grad is null) continue;
            var (sumSq, maxAbs, bad) = _gradStats[p];
            total += sumSq;
            int layer = Array.IndexOf(_weightSlot, p);
            if (layer < 0) continue;
            _current[layer].GradNorm = Math.Sqrt(sumSq);
            _current[layer].GradMaxAbs = maxAbs;
            var (nonzero, belowSubnormal, belowNormal) = _gradFp16[p];
            _current[layer].Fp16Subnormal = nonzero == 0 ? double.NaN : (double)belowSubnormal / nonzero;
            _current[layer].Fp16Normal = nonzero == 0 ? double.NaN : (double)belowNormal / nonzero;
            _current[layer].NonFinite += bad;
        }
        _globalNorm = Math.Sqrt(total);
        RecordTimeSignal();
    }

    /// <summary>Reads the armed probes: each recurrent layer's signal RMS over all steps, and its per-step RMS into the current time signal.</summary>
    private void RecordTimeSignal()
    {
        if (_timeLayers.Length == 0) return;
        int needed = 0;
        foreach (int i in _timeLayers) needed += _probeOf[i]!.Steps;
        if (_currentTime.Length < needed) _currentTime = new double[Math.Max(needed, 2 * _currentTime.Length)];
        if (_timeCombined)
        {
            needed = 0;
            foreach (int steps in _variableSteps) needed += steps;
            if (_currentTime.Length < needed) _currentTime = new double[Math.Max(needed, 2 * _currentTime.Length)];
        }
        int at = 0;
        for (int k = 0, v = 0; k < _timeLayers.Length; k++)
        {
            int i = _timeLayers[k];
            var probe = _probeOf[i]!;
            ReadOnlySpan<double> sumSq;
            double n, total = 0;
            long nonFinite = 0;
            if (_timeCombined)
            {
                // the global batch's sums, combined over the micro-batches (CombineMicroBatches)
                int steps = _variableSteps[k];
                _currentTimeLength[k] = steps;
                sumSq = _timeTotals.AsSpan(v, steps);
                for (int t = 0; t < steps; t++) nonFinite += (long)_timeTotals[v + steps + t];
                v += 2 * steps;
                n = _timeElements[k];
                if (steps == 0) continue;
            }
            else
            {
                _currentTimeLength[k] = probe.Steps;
                if (!probe.Recorded) continue;
                sumSq = probe.SumOfSquares;
                foreach (long bad in probe.NonFinite) nonFinite += bad;
                n = probe.ElementsPerStep;
            }
            for (int t = 0; t < sumSq.Length; t++)
            {
                total += sumSq[t];
                _currentTime[at++] = Math.Sqrt(sumSq[t] / n);
            }
            _current[i].Signal = Math.Sqrt(total / (n * sumSq.Length));
            _current[i].NonFinite += nonFinite;
        }
    }

    /// <summary>Finishes the current sample (update ratios from <paramref name="optimizer"/> when it tracked them).</summary>
    public void EndSample(Optim.Optimizer? optimizer = null)
    {
        if (!_sampling) return;
        FinishLocal();
        _sampling = false;
        foreach (var (module, _) in _recurrent) module.ArmGradientProbes(null); // in case no forward pass consumed them
        StopEntropy();
        if (optimizer is { TrackUpdates: true })
        {
            var parameters = optimizer.Parameters;
            for (int i = 0; i < _layers.Length; i++)
            {
                int p = IndexOf(parameters, _layers[i].Weight);
                if (p < 0) continue;
                _current[i].UpdateRatio = optimizer.UpdateRatio(p);
                _current[i].Bf16Swallowed = optimizer.UpdatesSwallowedByBf16(p);
            }
            optimizer.TrackUpdates = false;
        }
        for (int i = 0; i < _layers.Length; i++)
        {
            if (_layers[i].Norm is not BatchNormBase { RunningMean: { } mean, RunningVar: { } variance }) continue;
            _current[i].NormMean = StatisticsKernel.MeanAbs(mean.Span<float>());
            _current[i].NormVar = StatisticsKernel.MeanAbs(variance.Span<float>());    // variances are not negative
        }
        Append();
        if (SampleCompleted is { } handler) handler(_view[_count - 1]);
    }

    void ITrainingObserver.OnStepStart(StepInfo step)
    {
        if (step.Step % Every != 0) return;
        BeginSample(step.Step, step.Epoch);
        if ((step.Step / Every) % UpdateRatioEvery == 0) step.Optimizer.TrackUpdates = true;
    }

    void ITrainingObserver.OnBackward(StepInfo step)
    {
        _lossSum += step.Loss;
        _lossCount++;
        _recent[_seen++ % RecentSteps] = step.Loss;
        RecordGradients(step.Loss);
    }

    void ITrainingObserver.OnStepEnd(StepInfo step) => EndSample(step.Optimizer);

    /// <summary>
    /// The losses since the last sample (their sum and count: the next sample's <c>mean_loss</c>) and the ring of recent losses, so
    /// that a run resumed from a checkpoint between two samples measures what the uninterrupted run does (its first sample's mean
    /// covered only the steps after the resumption). Doubles as their bits, in hexadecimal.
    /// </summary>
    string? ITrainingObserver.CheckpointState()
    {
        int n = (int)Math.Min(_seen, RecentSteps);
        var recent = Enumerable.Range(0, n).Select(i => Bits(_recent[(_seen - n + i) % RecentSteps]));
        return string.Create(CultureInfo.InvariantCulture, $"{Bits(_lossSum)},{_lossCount},{_seen},{string.Join(' ', recent)}");

        static string Bits(double v) => BitConverter.DoubleToInt64Bits(v).ToString("x16", CultureInfo.InvariantCulture);
    }

    void ITrainingObserver.RestoreCheckpointState(string state)
    {
        var parts = state.Split(',');
        var recent = parts.Length == 4 && parts[3].Length > 0 ? parts[3].Split(' ') : [];
        if (parts.Length != 4 || !TryBits(parts[0], out double sum)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int count)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long seen)
            || recent.Length != (int)Math.Min(seen, RecentSteps))
            throw new InvalidDataException($"checkpoint: the gradient monitor's state '{state}' is not a loss sum, a count, a step count and the recent losses.");
        var losses = new double[recent.Length];
        for (int i = 0; i < recent.Length; i++)
            if (!TryBits(recent[i], out losses[i]))
                throw new InvalidDataException($"checkpoint: the gradient monitor's recent loss '{recent[i]}' is not a double's bits.");
        (_lossSum, _lossCount, _seen) = (sum, count, seen);
        for (int i = 0; i < losses.Length; i++) _recent[(seen - losses.Length + i) % RecentSteps] = losses[i];

        static bool TryBits(string text, out double value)
        {
            bool ok = long.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long bits);
            value = BitConverter.Int64BitsToDouble(bits);
            return ok;
        }
    }

    /// <summary>Removes every hook.</summary>
    public void Dispose()
    {
        foreach (var h in _handles) h.Dispose();
        _handles.Clear();
        foreach (var (module, _) in _recurrent) module.ArmGradientProbes(null);
        StopEntropy();
        _sampling = false;
        _disposed = true;
    }

    private void StopEntropy()
    {
        for (int k = 0; k < _blocks.Length; k++)
            if (_blocks[k].Layer.SelfAttn.EntropyObserver == _entropyHooks[k]) _blocks[k].Layer.SelfAttn.EntropyObserver = null;
    }

    /// <summary>The saturation threshold: a unit is saturated when its derivative is below this fraction of the maximum.</summary>
    public const double SaturationFraction = 0.01;

    // ---------------------------------------------------------------- layers

    private static MonitoredLayer[] DiscoverLayers(Module model)
    {
        if (model is Nn.Network.Network network) return NetworkWatch.Layers(network).ToArray();
        if (model is Mlp mlp)
            return mlp.Layers.Select(l => new MonitoredLayer(l.Index, NameOf(model, l.Linear), l.Linear.Weight, l.Output, l.Activation)).ToArray();
        var found = new List<MonitoredLayer>();
        foreach (var (name, m) in model.NamedModules())
        {
            if (m is RecurrentLayer rnn)
            {
                Activation? kind = rnn.Kind switch
                {
                    RecurrentKind.RnnTanh => Nn.Activation.Tanh,
                    RecurrentKind.RnnRelu => Nn.Activation.Relu,
                    _ => null,
                };
                for (int k = 0; k < rnn.NumLayers; k++)
                    found.Add(new MonitoredLayer(found.Count + 1, (name.Length == 0 ? "" : name + ".") + $"weight_hh_l{k}", rnn.WeightHh(k), rnn, null)
                    {
                        Kind = kind,
                        RecurrentLayer = k,
                    });
            }
            else if (m is Linear linear) found.Add(new MonitoredLayer(found.Count + 1, name, linear.Weight, linear, null));
            else if (found.Count > 0 && found[^1] is { RecurrentLayer: < 0, Activation: null } last && m.NamedChildren().Count() == 0
                     && Activations.KindOf(m) is not null)
                found[^1] = new MonitoredLayer(last.Index, last.Name, last.Weight, m, m);
        }
        return found.ToArray();
    }

    private static string NameOf(Module model, Module target) =>
        model.NamedModules().FirstOrDefault(t => ReferenceEquals(t.Module, target)).Name ?? "";

    private static int IndexOf(IReadOnlyList<Parameter> parameters, Parameter p)
    {
        for (int i = 0; i < parameters.Count; i++)
            if (ReferenceEquals(parameters[i], p)) return i;
        return -1;
    }

    // ---------------------------------------------------------------- statistics

    private void ActivationStatistics(Tensor y, int layer)
    {
        int n = y.Count;
        if (n == 0) return;
        var p = _partial.AsSpan(_partialOffset[layer]);
        var kind = _layers[layer].Kind;
        p[Partial.ActivationHits]++;
        p[Partial.ActivationCount] += n;
        if (y.Storage is not float[])
        {
            foreach (double e in y.ToDoubleArray())
            {
                p[Partial.ActivationSum] += e;
                p[Partial.ActivationSumSq] += e * e;
            }
            return;
        }
        var span = y.Span<float>();
        var (sum, sumSq, bad) = _stats.Moments(y);
        p[Partial.ActivationSum] += sum;
        p[Partial.ActivationSumSq] += sumSq;
        p[Partial.NonFinite] += bad;
        if (kind is { } k && Activations.Saturates(k))
        {
            p[Partial.Saturated] += StatisticsKernel.SaturatedCount(span, k, SaturationFraction);
            p[Partial.SaturationCount] += n;
        }
        if (kind is Nn.Activation.Relu && y.Rank is 2 or 4)
        {
            // a unit of [B, F]; a channel of [B, C, H, W]: dead when 0 for every example (and every position) of the batch
            int cols = y.Shape[1];
            var mask = _aliveMask[layer];
            if (mask is null || mask.Length != cols)
            {
                if (mask is not null && p[Partial.DeadHits] > 0)
                    throw new InvalidOperationException($"GradientMonitor: layer {layer + 1} ('{_layers[layer].Name}') gave activations of {mask.Length} and then {cols} units in one sample.");
                _aliveMask[layer] = mask = new float[cols];
            }
            p[Partial.DeadHits]++;
            if (y.Rank == 2) StatisticsKernel.AccumulateAlive(span, y.Shape[0], cols, mask);
            else StatisticsKernel.AccumulateAliveChannels(span, y.Shape[0], cols, y.Shape[2] * y.Shape[3], mask);
        }
    }

    // ---------------------------------------------------------------- the batch's statistics, from its micro-batches

    /// <summary>The fields of a layer's partial statistics (sums over the examples seen), followed by its alive mask.</summary>
    private static class Partial
    {
        public const int SignalHits = 0, SignalSumSq = 1, SignalCount = 2, ActivationHits = 3, ActivationSum = 4, ActivationSumSq = 5,
            ActivationCount = 6, Saturated = 7, SaturationCount = 8, NonFinite = 9, DeadHits = 10,
            SignalNonzero = 11, SignalBelowFp16Subnormal = 12, SignalBelowFp16Normal = 13, Count = 14;
    }

    /// <summary>The units a layer's alive mask holds in the micro-batch statistics: a ReLU layer's output features or channels (its weight's first dimension), else 0.</summary>
    private static int MaskWidth(MonitoredLayer layer) =>
        layer.Kind is Nn.Activation.Relu && layer.RecurrentLayer < 0 && layer.Weight.Data.Rank >= 2 ? layer.Weight.Data.Shape[0] : 0;

    /// <inheritdoc />
    int IMicroBatchStatistics.MicroBatchStatisticsLength => _partial.Length;

    /// <inheritdoc />
    void IMicroBatchStatistics.EndMicroBatch(Span<double> destination)
    {
        if (!_sampling) return;
        WritePartial(destination);
        Array.Clear(_partial);
        foreach (var mask in _aliveMask) mask?.AsSpan().Clear();
        if (_timeLayers.Length == 0) return;
        // the signal through time: T and B·H per time layer in the fixed statistics, the per-step sums kept for the variable ones
        int length = 0;
        for (int k = 0; k < _timeLayers.Length; k++)
        {
            var probe = _probeOf[_timeLayers[k]]!;
            destination[_partialOffset[^1] + 2 * k] = probe.Steps;
            destination[_partialOffset[^1] + 2 * k + 1] = probe.ElementsPerStep;
            length += 2 * probe.Steps;
        }
        if (_microTimeCount == _microTime.Count) _microTime.Add([]);
        var kept = _microTime[_microTimeCount];
        if (kept.Length < length) _microTime[_microTimeCount] = kept = new double[length];
        for (int k = 0, at = 0; k < _timeLayers.Length; k++)
        {
            var probe = _probeOf[_timeLayers[k]]!;
            probe.SumOfSquares.CopyTo(kept.AsSpan(at));
            for (int t = 0; t < probe.Steps; t++) kept[at + probe.Steps + t] = probe.NonFinite[t];
            at += 2 * probe.Steps;
        }
        _microTimeCount++;
        ArmProbes(); // a probe is armed for one forward pass: the next micro-batch's
    }

    /// <summary>Per time layer, 2·T doubles (Σ(dL/dh_t)² and the non-finite count of each step t), T the same in every non-empty micro-batch.</summary>
    int IMicroBatchStatistics.VariableStatisticsLength(ReadOnlySpan<double> statistics, int stride, int offset, ReadOnlySpan<double> weights)
    {
        if (!_sampling || _timeLayers.Length == 0) return 0;
        int length = 0;
        for (int k = 0; k < _timeLayers.Length; k++)
        {
            int steps = -1;
            for (int m = 0; m < weights.Length; m++)
            {
                if (weights[m] == 0) continue;
                int t = (int)statistics[m * stride + offset + _partialOffset[^1] + 2 * k];
                if (steps >= 0 && t != steps)
                    throw new NotSupportedException($"GradientMonitor: recurrent layer '{_layers[_timeLayers[k]].Name}' ran {steps} time steps in one micro-batch and {t} in micro-batch {m} of the same batch; the signal through time is combined over micro-batches of one sequence length.");
                steps = t;
            }
            _variableSteps[k] = Math.Max(steps, 0);
            length += 2 * _variableSteps[k];
        }
        return length;
    }

    /// <inheritdoc />
    void IMicroBatchStatistics.WriteVariableStatistics(int index, Span<double> destination)
    {
        if (index >= _microTimeCount)
            throw new InvalidOperationException($"GradientMonitor: micro-batch {index} of this process's step was not recorded ({_microTimeCount} were).");
        _microTime[index].AsSpan(0, destination.Length).CopyTo(destination);
    }

    /// <summary>
    /// The sums of the micro-batches in micro-batch order: signal Σ(dL/dh)² weighted by (n_k/n)², since the global batch's mean loss
    /// scales micro-batch k's signal by its share n_k/n; activation sums, counts and non-finite counts as they are; alive masks by
    /// their maximum (alive in any micro-batch is alive in the batch). Every process computes the same from the same gathered values.
    /// </summary>
    void IMicroBatchStatistics.CombineMicroBatches(ReadOnlySpan<double> statistics, int stride, int offset, ReadOnlySpan<double> variable, int variableStride,
        ReadOnlySpan<double> weights)
    {
        if (!_sampling) return;
        if (_timeLayers.Length > 0) CombineTime(statistics, stride, offset, variable, variableStride, weights);
        Array.Clear(_totals);
        for (int k = 0; k < weights.Length; k++)
        {
            if (weights[k] == 0) continue;
            var part = statistics.Slice(k * stride + offset, _totals.Length);
            double w2 = weights[k] * weights[k];
            for (int i = 0; i < _layers.Length; i++)
            {
                int at = _partialOffset[i];
                for (int f = 0; f < Partial.Count; f++)
                    _totals[at + f] += f == Partial.SignalSumSq ? w2 * part[at + f] : part[at + f];
                for (int u = at + Partial.Count; u < _partialOffset[i + 1]; u++)
                {
                    double a = double.IsNaN(part[u]) ? double.PositiveInfinity : part[u];
                    if (a > _totals[u]) _totals[u] = a;
                }
            }
        }
        Finish(_totals, local: false);
        _combined = true;
    }

    /// <summary>
    /// The signal through time of the global batch: per time layer and step, Σ_k (n_k/n)²·Σ(dL_k/dh_t)² in micro-batch order (the
    /// global mean loss scales micro-batch k's signal by n_k/n, as for the layers), the non-finite counts and the elements per step
    /// B_k·H summed; read by <see cref="RecordTimeSignal"/>.
    /// </summary>
    private void CombineTime(ReadOnlySpan<double> statistics, int stride, int offset, ReadOnlySpan<double> variable, int variableStride, ReadOnlySpan<double> weights)
    {
        if (_timeTotals.Length < variableStride) _timeTotals = new double[variableStride];
        _timeTotals.AsSpan().Clear();
        Array.Clear(_timeElements);
        for (int m = 0; m < weights.Length; m++)
        {
            if (weights[m] == 0) continue;
            double w2 = weights[m] * weights[m];
            var part = variable.Slice(m * variableStride, variableStride);
            for (int k = 0, v = 0; k < _timeLayers.Length; k++)
            {
                int steps = _variableSteps[k];
                _timeElements[k] += statistics[m * stride + offset + _partialOffset[^1] + 2 * k + 1];
                for (int t = 0; t < steps; t++)
                {
                    _timeTotals[v + t] += w2 * part[v + t];
                    _timeTotals[v + steps + t] += part[v + steps + t];
                }
                v += 2 * steps;
            }
        }
        _timeCombined = true;
    }

    /// <summary>Copies the partial statistics, masks included, into <paramref name="destination"/>.</summary>
    private void WritePartial(Span<double> destination)
    {
        _partial.CopyTo(destination);
        for (int i = 0; i < _layers.Length; i++)
        {
            int width = _partialOffset[i + 1] - _partialOffset[i] - Partial.Count;
            if (_partial[_partialOffset[i] + Partial.DeadHits] == 0 || width == 0) continue;
            var mask = _aliveMask[i]!;
            if (mask.Length != width)
                throw new InvalidOperationException($"GradientMonitor: layer {i + 1} ('{_layers[i].Name}') has {mask.Length} ReLU units or channels, not the {width} of its weight's first dimension; its dead units cannot be combined over micro-batches.");
            for (int u = 0; u < width; u++) destination[_partialOffset[i] + Partial.Count + u] = mask[u];
        }
    }

    /// <summary>The local statistics of a step in one process (one forward and backward), once per sample.</summary>
    private void FinishLocal()
    {
        if (_combined) return;
        Finish(_partial, local: true);
        _combined = true;
    }

    /// <summary>The layers' figures from the batch's sums; the dead units from the local alive masks (<paramref name="local"/>) or from the combined ones in <paramref name="totals"/>.</summary>
    private void Finish(ReadOnlySpan<double> totals, bool local)
    {
        for (int i = 0; i < _layers.Length; i++)
        {
            var t = totals.Slice(_partialOffset[i], _partialOffset[i + 1] - _partialOffset[i]);
            ref var s = ref _current[i];
            if (t[Partial.SignalHits] > 0) s.Signal = t[Partial.SignalCount] == 0 ? 0 : Math.Sqrt(t[Partial.SignalSumSq] / t[Partial.SignalCount]) * _layers[i].SignalScale;
            if (t[Partial.SignalNonzero] > 0)
            {
                s.SignalFp16Subnormal = t[Partial.SignalBelowFp16Subnormal] / t[Partial.SignalNonzero];
                s.SignalFp16Normal = t[Partial.SignalBelowFp16Normal] / t[Partial.SignalNonzero];
            }
            if (t[Partial.ActivationHits] > 0 && t[Partial.ActivationCount] > 0)
            {
                double n = t[Partial.ActivationCount], m = t[Partial.ActivationSum] / n;
                s.ActMean = m;
                s.ActStd = Math.Sqrt(Math.Max(0, t[Partial.ActivationSumSq] / n - m * m));
            }
            if (t[Partial.SaturationCount] > 0) s.Saturation = t[Partial.Saturated] / t[Partial.SaturationCount];
            if (t[Partial.DeadHits] > 0)
            {
                if (local) s.DeadUnits = StatisticsKernel.ZeroFraction(_aliveMask[i]);
                else
                {
                    var mask = t[Partial.Count..];
                    int dead = 0;
                    foreach (double v in mask) if (v == 0) dead++;
                    s.DeadUnits = (double)dead / mask.Length;
                }
            }
            s.NonFinite += (long)t[Partial.NonFinite];
        }
    }

    // ---------------------------------------------------------------- history

    private void Append()
    {
        int layers = _layers.Length;
        if (_count == _history.Length)
        {
            Array.Resize(ref _history, _history.Length * 2);
            Array.Resize(ref _layerHistory, _history.Length * layers);
            Array.Resize(ref _timeLengthHistory, _history.Length * _timeLayers.Length);
        }
        int timeOffset = _timeUsed, timeCount = 0;
        foreach (int n in _currentTimeLength) timeCount += n;
        if (_timeUsed + timeCount > _timeHistory.Length) Array.Resize(ref _timeHistory, Math.Max(_timeUsed + timeCount, 2 * _timeHistory.Length));
        _currentTime.AsSpan(0, timeCount).CopyTo(_timeHistory.AsSpan(_timeUsed));
        _timeUsed += timeCount;
        _currentTimeLength.CopyTo(_timeLengthHistory, _count * _timeLayers.Length);
        long nonFinite = 0;
        for (int i = 0; i < layers; i++)
        {
            ref var r = ref _current[i];
            r.Gain = i + 1 < layers ? r.Signal / _current[i + 1].Signal : double.NaN;
            nonFinite += r.NonFinite;
        }
        int blockStride = 2 * _blocks.Length + _heads;
        if (blockStride > 0)
        {
            if (_blockHistory.Length < (_count + 1) * blockStride) Array.Resize(ref _blockHistory, _history.Length * blockStride);
            var row = _blockHistory.AsSpan(_count * blockStride, blockStride);
            for (int k = 0; k < _blocks.Length; k++)
            {
                row[2 * k] = _blockSignal[k];
                row[2 * k + 1] = _blockKeys[k];
                int heads = _blocks[k].Layer.SelfAttn.NumHeads, calls = _entropyCalls[k];
                for (int h = 0; h < heads; h++)
                    row[2 * _blocks.Length + _blocks[k].Offset + h] = calls == 0 ? double.NaN : _entropySum[_blocks[k].Offset + h] / calls;
            }
        }
        _history[_count] = new SampleRecord(_step, _epoch, _loss, _meanLoss, _globalNorm, nonFinite, timeOffset);
        _current.CopyTo(_layerHistory, _count * layers);
        _count++;
    }

    private MonitorSample Build(int index)
    {
        var h = _history[index];
        int layers = _layers.Length;
        var stats = new LayerStats[layers];
        for (int i = 0; i < layers; i++)
        {
            var r = _layerHistory[index * layers + i];
            stats[i] = new LayerStats
            {
                LayerIndex = _layers[i].Index,
                Activation = _layers[i].Kind,
                BackpropagatedSignalRms = r.Signal,
                Gain = r.Gain,
                ParameterGradientNorm = r.GradNorm,
                ParameterGradientMaxAbs = r.GradMaxAbs,
                ActivationMean = r.ActMean,
                ActivationStd = r.ActStd,
                Saturation = r.Saturation,
                DeadUnits = r.DeadUnits,
                NormRunningMean = r.NormMean,
                NormRunningVar = r.NormVar,
                UpdateRatio = r.UpdateRatio,
                GradientBelowFp16Subnormal = r.Fp16Subnormal,
                GradientBelowFp16Normal = r.Fp16Normal,
                UpdatesSwallowedByBf16 = r.Bf16Swallowed,
                SignalBelowFp16Subnormal = r.SignalFp16Subnormal,
                SignalBelowFp16Normal = r.SignalFp16Normal,
                NonFinite = r.NonFinite,
            };
        }
        double[][]? time = null;
        if (_timeLayers.Length > 0)
        {
            time = new double[_timeLayers.Length][];
            for (int k = 0, at = h.TimeOffset; k < time.Length; k++)
            {
                int n = _timeLengthHistory[index * _timeLayers.Length + k];
                time[k] = _timeHistory.AsSpan(at, n).ToArray();
                at += n;
            }
        }
        BlockStats[]? blocks = null;
        if (_blocks.Length > 0)
        {
            int stride = 2 * _blocks.Length + _heads;
            var row = _blockHistory.AsSpan(index * stride, stride);
            blocks = new BlockStats[_blocks.Length];
            for (int k = 0; k < blocks.Length; k++)
                blocks[k] = new BlockStats
                {
                    Block = k + 1,
                    AttentionLayer = _blocks[k].AttentionLayer,
                    BackpropagatedSignalRms = row[2 * k],
                    MaxEntropy = Math.Log(row[2 * k + 1]),
                    AttentionEntropy = row.Slice(2 * _blocks.Length + _blocks[k].Offset, _blocks[k].Layer.SelfAttn.NumHeads).ToArray(),
                };
        }
        return new MonitorSample
        {
            Blocks = blocks,
            TimeSignal = time,
            Step = h.Step,
            Epoch = h.Epoch,
            Loss = h.Loss,
            MeanLoss = h.MeanLoss,
            GlobalGradientNorm = h.GlobalNorm,
            NonFinite = h.NonFinite,
            Layers = stats,
        };
    }

    private readonly record struct SampleRecord(long Step, int Epoch, double Loss, double MeanLoss, double GlobalNorm, long NonFinite, int TimeOffset);

    private struct LayerRecord
    {
        public static readonly LayerRecord Empty = new()
        {
            Signal = double.NaN, Gain = double.NaN, GradNorm = double.NaN, GradMaxAbs = double.NaN, ActMean = double.NaN,
            ActStd = double.NaN, Saturation = double.NaN, DeadUnits = double.NaN, UpdateRatio = double.NaN, NormMean = double.NaN, NormVar = double.NaN,
            Fp16Subnormal = double.NaN, Fp16Normal = double.NaN, Bf16Swallowed = double.NaN, SignalFp16Subnormal = double.NaN, SignalFp16Normal = double.NaN,
        };

        public double Signal, Gain, GradNorm, GradMaxAbs, ActMean, ActStd, Saturation, DeadUnits, UpdateRatio, NormMean, NormVar;
        public double Fp16Subnormal, Fp16Normal, Bf16Swallowed, SignalFp16Subnormal, SignalFp16Normal;
        public long NonFinite;
    }

    /// <summary>The history as MonitorSample objects, built on first read and kept.</summary>
    private sealed class SampleList(GradientMonitor owner) : IReadOnlyList<MonitorSample>
    {
        public int Count => owner._count;

        public MonitorSample this[int index]
        {
            get
            {
                ArgumentOutOfRangeException.ThrowIfNegative(index);
                ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, owner._count);
                var built = owner._built;
                while (built.Count <= index) built.Add(owner.Build(built.Count));
                return built[index];
            }
        }

        public IEnumerator<MonitorSample> GetEnumerator()
        {
            for (int i = 0; i < owner._count; i++) yield return this[i];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
