using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Autograd;
using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>
/// The gradient of one global batch computed by the processes of a job (docs/distributed.md), bit for bit the same for any
/// number of processes N that divides the micro-batch count M.
/// </summary>
/// <remarks>
/// <para>The global batch of n examples is cut into M fixed micro-batches, micro-batch k holding examples
/// <c>[⌊k·n/M⌋, ⌊(k+1)·n/M⌋)</c>; process r computes micro-batches <c>r·M/N … (r+1)·M/N − 1</c>, each with its own forward
/// and backward (mean loss over its examples). The flat gradient (P values, padded to N slices of S = ⌈P/N⌉) is then reduced
/// in a fixed order by an ordered reduce-scatter: an all-to-all sends slice d of every micro-batch gradient to rank d, which sums
/// its slice over the M micro-batches in micro-batch order, <c>g = Σ_k (n_k/n)·g_k</c> for k = 0 … M − 1, with separate IEEE
/// multiplications and additions (no fused multiply-add, whose rounding differs); an all-gather of the summed slices gives
/// every process the whole gradient. Each element is the same sequence of operations for any N, so the gradient, and so the
/// update, does not depend on N. The single-process run with M micro-batches takes the same path.</para>
/// <para>Batch normalisation uses each micro-batch's own statistics (local, as in PyTorch's DistributedDataParallel); the
/// running statistics' updates of each micro-batch are gathered and replayed in micro-batch order on every process. Dropout
/// draws micro-batch k's masks from a generator seeded by (one draw of the layer's generator per step, k), so masks depend on
/// the step and k only.</para>
/// <para>With M = N each process receives (N − 1)/N·P floats in the all-to-all and as many in the all-gather: 2(N − 1)/N·P, the
/// volume of a ring all-reduce, whose summation order (MPI's) would depend on N. With M = c·N the all-to-all carries c times more.</para>
/// </remarks>
public sealed class DataParallel
{
    private readonly Module _model;
    private readonly Optimizer _optimizer;
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _gradients;
    private readonly int[] _offsets;
    private readonly BatchNormBase[] _norms;
    private readonly Dropout[] _dropouts;
    private readonly ulong[][] _dropoutStates;
    private readonly float[] _flat, _send, _receive, _slice, _gathered, _scratch;
    private readonly int _sliceLength;
    private readonly double[] _sendStats, _receiveStats;
    private readonly int _statsLength;
    private readonly IMicroBatchStatistics[] _observed;
    private readonly int[] _observedOffset;
    private readonly double[] _weights;
    private readonly int[] _nonEmpty;                 // per local micro-batch: its index among the step's non-empty ones, or −1
    private readonly BatchNormBase[] _synchronised;   // every batch norm, with synchronised statistics; else none
    private readonly NormSync? _sync;

    /// <summary>
    /// Prepares the step for <paramref name="model"/> on <paramref name="communicator"/>'s processes; <paramref name="statistics"/>
    /// (e.g. the gradient monitor) take partial statistics per micro-batch, which every step combines over the global batch.
    /// With <paramref name="syncBatchNorm"/>, every batch norm normalises with the statistics of the whole global batch
    /// (<see cref="BatchNormBase.Sync"/>), which needs one micro-batch per process.
    /// </summary>
    /// <exception cref="ArgumentException">when <paramref name="microBatches"/> is not a positive multiple of the process count, or
    /// differs from it with <paramref name="syncBatchNorm"/>.</exception>
    public DataParallel(Module model, Optimizer optimizer, ICommunicator communicator, int microBatches, IReadOnlyList<IMicroBatchStatistics>? statistics = null,
        bool syncBatchNorm = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(communicator);
        if (microBatches < 1 || microBatches % communicator.Size != 0)
            throw new ArgumentException($"DataParallel: {microBatches} micro-batches cannot be shared by {communicator.Size} processes; give a micro-batch count that is a multiple of the process count (--micro-batches).");
        _model = model;
        _optimizer = optimizer;
        Communicator = communicator;
        MicroBatches = microBatches;
        _parameters = model.Parameters().ToArray();
        _offsets = new int[_parameters.Length + 1];
        for (int i = 0; i < _parameters.Length; i++)
            _offsets[i + 1] = checked(_offsets[i] + _parameters[i].Data.Count);
        _gradients = _parameters.Select(p => Tensor.Zeros(p.Data.DType, p.Data.Shape.ToArray())).ToArray();
        if (_parameters.Any(p => p.Data.DType != DType.Float32))
            throw new ArgumentException("DataParallel: every parameter must be float32 (the gradients travel as float32).");
        var modules = model.NamedModules().Select(m => m.Module).ToArray();
        _norms = modules.OfType<BatchNormBase>().Where(b => b.RunningMean is not null).ToArray();
        _dropouts = modules.OfType<Dropout>().ToArray();
        if (syncBatchNorm && microBatches != communicator.Size)
            throw new ArgumentException($"DataParallel: synchronised batch norm takes the global batch's statistics in one forward per process, so it needs one micro-batch per process; got {microBatches} micro-batches for {communicator.Size} processes (--micro-batches {communicator.Size}, or leave it out).");
        _synchronised = syncBatchNorm ? modules.OfType<BatchNormBase>().ToArray() : [];
        _sync = syncBatchNorm ? new NormSync(communicator) : null;
        _dropoutStates = new ulong[_dropouts.Length][];
        int local = microBatches / communicator.Size, size = communicator.Size;
        _sliceLength = (ParameterCount + size - 1) / size;
        long sendFloats = (long)local * _sliceLength * size;
        if (sendFloats > int.MaxValue)
            throw new ArgumentException($"DataParallel: {local} micro-batch gradients of {ParameterCount:N0} parameters exceed one MPI message ({int.MaxValue:N0} values); use fewer micro-batches per process.");
        _flat = new float[_sliceLength * size];
        _send = new float[sendFloats];
        _receive = new float[sendFloats];
        _slice = new float[_sliceLength];
        _gathered = new float[_sliceLength * size];
        _scratch = new float[_sliceLength];
        _statsLength = 3 + _norms.Sum(b => 2 * b.NumFeatures + 1);
        _observed = statistics?.ToArray() ?? [];
        _observedOffset = new int[_observed.Length];
        for (int i = 0; i < _observed.Length; i++)
        {
            _observedOffset[i] = _statsLength;
            _statsLength = checked(_statsLength + _observed[i].MicroBatchStatisticsLength);
        }
        _weights = new double[microBatches];
        _nonEmpty = new int[local];
        _sendStats = new double[local * _statsLength];
        _receiveStats = new double[microBatches * _statsLength];
    }

    /// <summary>The processes.</summary>
    public ICommunicator Communicator { get; }

    /// <summary>M: the micro-batches of every global batch.</summary>
    public int MicroBatches { get; }

    private int ParameterCount => _offsets[^1];

    /// <summary>
    /// Zeroes the gradients, computes the gradient of the global batch's mean loss into every parameter's <see cref="Parameter.Grad"/>
    /// (the same bits on every process), replays the batch norms' running-statistics updates, and returns the batch's mean loss and
    /// its count of correct predictions (0 for regression).
    /// </summary>
    /// <param name="batch">The global batch (every process holds it and computes only its micro-batches).</param>
    /// <param name="loss">The loss of a micro-batch's output (the trainer's).</param>
    /// <param name="countCorrect">Correct predictions of a micro-batch's output, or null for regression.</param>
    public (double Loss, long Correct) ComputeGradients(Batch batch, Func<Tensor, Batch, Tensor> loss, Func<Tensor, Batch, long>? countCorrect)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(loss);
        int n = batch.Count, m = MicroBatches, local = m / Communicator.Size, first = Communicator.Rank * local;
        int Start(int k) => (int)((long)k * n / m);
        ulong[] draws = new ulong[_dropouts.Length];
        for (int d = 0; d < _dropouts.Length; d++)
        {
            draws[d] = _dropouts[d].MaskGenerator.NextUInt64();
            _dropoutStates[d] = _dropouts[d].MaskGenerator.GetState();
        }
        if (_sync is not null && n < m)
            throw new InvalidOperationException($"DataParallel: a batch of {n} examples leaves a process without examples for its synchronised batch norms ({m} processes); use a batch size of at least {m}, and one that the training set's size leaves no smaller last batch of.");
        var deferred = new List<RunningStatisticsUpdate>[_norms.Length];
        for (int b = 0; b < _norms.Length; b++) _norms[b].DeferredUpdates = deferred[b] = [];
        foreach (var norm in _synchronised) norm.Sync = _sync;
        try
        {
            Array.Clear(_sendStats);
            Array.Fill(_nonEmpty, -1);
            for (int j = 0, made = 0; j < local; j++)
            {
                int k = first + j, start = Start(k), count = Start(k + 1) - start;
                var grads = _flat.AsSpan(0, ParameterCount);
                var stats = _sendStats.AsSpan(j * _statsLength, _statsLength);
                if (count == 0)
                {
                    grads.Clear();
                    Scatter(j, local);
                    continue;
                }
                for (int d = 0; d < _dropouts.Length; d++)
                    _dropouts[d].MaskGenerator.SetState(new Generator(draws[d] ^ (0x9E3779B97F4A7C15UL * (ulong)(k + 1))).GetState());
                foreach (var list in deferred) list.Clear();
                if (_sync is not null) _sync.Share = (double)count / n;
                _optimizer.ZeroGrad();
                var micro = batch.Rows(start, count);
                var output = _model.Forward(micro.Inputs);
                var l = loss(output, micro);
                stats[0] = l.Item();
                stats[1] = countCorrect?.Invoke(output, micro) ?? 0;
                stats[2] = count;
                BackwardEngine.Backward(l, releaseIntermediates: true);
                for (int i = 0; i < _parameters.Length; i++)
                {
                    var target = grads[_offsets[i].._offsets[i + 1]];
                    if (_parameters[i].Grad is { } g) g.F.CopyTo(target);
                    else target.Clear();
                }
                Scatter(j, local);
                int at = 3;
                for (int b = 0; b < _norms.Length; b++)
                {
                    // one update per micro-batch forward (a norm used twice in a forward is not supported by the replay)
                    if (deferred[b].Count != 1)
                        throw new InvalidOperationException($"DataParallel: batch norm {b} updated its running statistics {deferred[b].Count} times in one forward; data-parallel training needs exactly one.");
                    var u = deferred[b][0];
                    u.Mean.CopyTo(stats[at..]);
                    u.Var.CopyTo(stats[(at + u.Mean.Length)..]);
                    at += 2 * u.Mean.Length;
                    stats[at++] = u.Count;
                }
                for (int o = 0; o < _observed.Length; o++)
                    _observed[o].EndMicroBatch(stats.Slice(_observedOffset[o], _observed[o].MicroBatchStatisticsLength));
                _nonEmpty[j] = made++;
            }
        }
        finally
        {
            foreach (var norm in _norms) norm.DeferredUpdates = null;
            foreach (var norm in _synchronised) norm.Sync = null;
            for (int d = 0; d < _dropouts.Length; d++) _dropouts[d].MaskGenerator.SetState(_dropoutStates[d]);
        }
        _optimizer.ZeroGrad();
        Communicator.AllToAll(_send, _receive);
        Communicator.AllGather(_sendStats, _receiveStats);
        return Combine(n);
    }

    /// <summary>Slice d of local micro-batch j's flat gradient (in <c>_flat</c>) into the block for rank d: <c>_send[(d·L + j)·S ..]</c>.</summary>
    private void Scatter(int j, int local)
    {
        for (int d = 0; d < Communicator.Size; d++)
            _flat.AsSpan(d * _sliceLength, _sliceLength).CopyTo(_send.AsSpan((d * local + j) * _sliceLength, _sliceLength));
    }

    /// <summary>g = Σ_k (n_k/n)·g_k in micro-batch order, each process summing its slice, then the slices gathered into each parameter's gradient; the loss likewise; the running statistics replayed; the observers' statistics combined.</summary>
    private (double Loss, long Correct) Combine(int n)
    {
        double lossSum = 0;
        long correct = 0;
        // this process's slice: Σ_k (n_k/n)·g_k[slice] in micro-batch order (rank r's block holds micro-batches r·L … r·L + L − 1)
        _slice.AsSpan().Clear();
        for (int k = 0; k < MicroBatches; k++)
        {
            double count = _receiveStats[k * _statsLength + 2];
            if (count == 0) continue;
            float weight = (float)(count / n);
            TensorPrimitives.Multiply(_receive.AsSpan(k * _sliceLength, _sliceLength), weight, _scratch);
            TensorPrimitives.Add(_slice, _scratch, _slice);
        }
        Communicator.AllGather(_slice, _gathered);
        for (int i = 0; i < _parameters.Length; i++)
        {
            _gathered.AsSpan(_offsets[i], _offsets[i + 1] - _offsets[i]).CopyTo(_gradients[i].F);
            _parameters[i].Grad = _gradients[i];
        }
        for (int k = 0; k < MicroBatches; k++)
        {
            var stats = _receiveStats.AsSpan(k * _statsLength, _statsLength);
            if (stats[2] == 0) continue;
            lossSum += stats[2] / n * stats[0];
            correct += (long)stats[1];
            int at = 3;
            // synchronised, every micro-batch's update is the same global one: applied once, as one process with the whole batch
            if (_sync is not null && k > 0) continue;
            foreach (var norm in _norms)
            {
                int c = norm.NumFeatures;
                var update = new RunningStatisticsUpdate(stats.Slice(at, c).ToArray(), stats.Slice(at + c, c).ToArray(), (int)stats[at + 2 * c]);
                norm.ApplyRunningUpdate(update);
                at += 2 * c + 1;
            }
        }
        for (int k = 0; k < MicroBatches; k++) _weights[k] = _receiveStats[k * _statsLength + 2] / n;
        for (int o = 0; o < _observed.Length; o++)
        {
            var observer = _observed[o];
            // variable statistics (the signal at every time step): sized from the gathered fixed ones, so alike on every process
            int length = observer.VariableStatisticsLength(_receiveStats, _statsLength, _observedOffset[o], _weights);
            double[] variable = [];
            if (length > 0)
            {
                int local = MicroBatches / Communicator.Size;
                var send = new double[checked(local * length)];
                variable = new double[checked(MicroBatches * length)];
                for (int j = 0; j < local; j++)
                    if (_nonEmpty[j] >= 0) observer.WriteVariableStatistics(_nonEmpty[j], send.AsSpan(j * length, length));
                Communicator.AllGather(send, variable);
            }
            observer.CombineMicroBatches(_receiveStats, _statsLength, _observedOffset[o], variable, length, _weights);
        }
        return (lossSum, correct);
    }

    /// <summary>The processes as a synchronised batch norm sees them: sums gathered from every process and added in rank order (the same bits everywhere).</summary>
    private sealed class NormSync(ICommunicator communicator) : IBatchNormSync
    {
        private double[] _gathered = [];

        public double Share { get; set; } = 1;

        public void Sum(Span<double> values)
        {
            int size = communicator.Size, length = values.Length;
            if (_gathered.Length < size * length) _gathered = new double[size * length];
            var all = _gathered.AsSpan(0, size * length);
            communicator.AllGather(values, all);
            values.Clear();
            for (int r = 0; r < size; r++)
                for (int i = 0; i < length; i++) values[i] += all[r * length + i];
        }
    }
}
