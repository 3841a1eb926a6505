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
/// and backward (mean loss over its examples). The gradient is reduced in a fixed order by an ordered reduce-scatter, bucket by
/// bucket: the parameters are grouped, last registered first, into buckets of at least 1 MiB (fixed by the model); each bucket
/// (B values, padded to N slices of ⌈B/N⌉) goes by a non-blocking all-to-all that sends slice d of every local micro-batch
/// gradient to rank d, which sums its slice over the M micro-batches in micro-batch order, <c>g = Σ_k (n_k/n)·g_k</c> for
/// k = 0 … M − 1, with separate IEEE multiplications and additions (no fused multiply-add, whose rounding differs); a
/// non-blocking all-gather of the summed slices gives every process the bucket's gradient. Each element is the same sequence of
/// operations for any N and any bucketing, so the gradient, and so the update, does not depend on N. A bucket's all-to-all
/// starts as soon as the last local micro-batch's backward has finished its parameters (<c>leafGradientReady</c> of
/// <see cref="BackwardEngine.Backward"/>), in bucket order, and the transfers progress (<see cref="ICommunicationRequest.Test"/>)
/// each time backward finishes a parameter, so the reduction overlaps the rest of backward; the earlier local micro-batches'
/// gradients wait in the send buffer. The single-process run with M micro-batches takes the same path.</para>
/// <para>Batch normalisation uses each micro-batch's own statistics (local, as in PyTorch's DistributedDataParallel); the
/// running statistics' updates of each micro-batch are gathered and replayed in micro-batch order on every process. With
/// synchronised batch norm, the statistics are the global batch's, and a process's micro-batches run as one forward. Dropout
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
    private readonly Bucket[] _buckets;
    private readonly int[] _bucketOf;                 // per parameter: its bucket
    private readonly Dictionary<Tensor, int> _index;  // parameter tensor → its index
    private readonly float[] _send, _receive, _sums, _gathered, _scratch;
    private readonly ICommunicator _reduceChannel, _gatherChannel;
    private readonly ICommunicationRequest?[] _reduceRequests, _gatherRequests;
    private readonly int[] _waiting;                  // per bucket: its parameters whose gradient has not come in the current micro-batch
    private readonly bool[] _ready;                   // per parameter: its gradient has come in the current micro-batch
    private readonly double[] _counts;                // per micro-batch of the step: its examples
    private readonly Action<Tensor> _onGradientReady;
    private int _slot, _started, _summed, _examples;
    private bool _overlap;
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
    /// (<see cref="BatchNormBase.Sync"/>); a process's micro-batches then run as one forward over its share of the batch.
    /// The gradients travel in buckets of at least <paramref name="bucketBytes"/> (a parameter is never split).
    /// </summary>
    /// <exception cref="ArgumentException">when <paramref name="microBatches"/> is not a positive multiple of the process count.</exception>
    public DataParallel(Module model, Optimizer optimizer, ICommunicator communicator, int microBatches, IReadOnlyList<IMicroBatchStatistics>? statistics = null,
        bool syncBatchNorm = false, int bucketBytes = DefaultBucketBytes)
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
        _synchronised = syncBatchNorm ? modules.OfType<BatchNormBase>().ToArray() : [];
        _sync = syncBatchNorm ? new NormSync(communicator) : null;
        _dropoutStates = new ulong[_dropouts.Length][];
        int local = microBatches / communicator.Size, size = communicator.Size;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bucketBytes);
        _buckets = MakeBuckets(bucketBytes, size, local);
        _bucketOf = new int[_parameters.Length];
        for (int b = 0; b < _buckets.Length; b++)
            for (int i = _buckets[b].FirstParameter; i < _buckets[b].EndParameter; i++) _bucketOf[i] = b;
        _index = new Dictionary<Tensor, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < _parameters.Length; i++) _index[_parameters[i].Data] = i;
        var last = _buckets.Length > 0 ? _buckets[^1] : default;
        long sendFloats = (long)last.SendOffset + (long)size * local * last.Slice;
        if (sendFloats > Array.MaxLength)
            throw new ArgumentException($"DataParallel: {local} micro-batch gradients of {ParameterCount:N0} parameters exceed one array ({Array.MaxLength:N0} values); use fewer micro-batches per process.");
        _send = new float[sendFloats];
        _receive = new float[sendFloats];
        _sums = new float[last.SumOffset + last.Slice];
        _gathered = new float[(long)size * (last.SumOffset + last.Slice)];
        _scratch = new float[_buckets.Length == 0 ? 0 : _buckets.Max(b => b.Slice)];
        _reduceChannel = communicator.Duplicate();
        _gatherChannel = communicator.Duplicate();
        _reduceRequests = new ICommunicationRequest?[_buckets.Length];
        _gatherRequests = new ICommunicationRequest?[_buckets.Length];
        _waiting = new int[_buckets.Length];
        _ready = new bool[_parameters.Length];
        _counts = new double[microBatches];
        _onGradientReady = OnGradientReady;
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

    /// <summary>The default size of a gradient bucket (1 MiB, the first bucket of PyTorch's DistributedDataParallel).</summary>
    public const int DefaultBucketBytes = 1 << 20;

    /// <summary>The processes.</summary>
    public ICommunicator Communicator { get; }

    /// <summary>The gradient buckets: parameter ranges in registration order, bucket 0 holding the last parameters.</summary>
    public IReadOnlyList<(int FirstParameter, int EndParameter)> Buckets => _buckets.Select(b => (b.FirstParameter, b.EndParameter)).ToArray();

    /// <summary>
    /// One bucket: parameters <c>[FirstParameter, EndParameter)</c>, flat values <c>[Start, Start + Length)</c>, cut into
    /// N slices of <c>Slice</c> values (the last padded); its all-to-all blocks at <c>SendOffset</c> of the send and receive
    /// buffers (N blocks of L slices: slice d of local micro-batch j at <c>SendOffset + (d·L + j)·Slice</c>; received, micro-batch
    /// k's slice at <c>SendOffset + k·Slice</c>), its summed slice at <c>SumOffset</c>, gathered at <c>N·SumOffset</c>.
    /// </summary>
    private readonly record struct Bucket(int FirstParameter, int EndParameter, int Start, int Length, int Slice, long SendOffset, int SumOffset);

    /// <summary>
    /// Buckets in reverse registration order (the order backward finishes the parameters in, roughly), each closed when it holds
    /// at least <paramref name="bucketBytes"/>; a parameter is never split. Fixed by the model and the byte size alone.
    /// </summary>
    private Bucket[] MakeBuckets(int bucketBytes, int size, int local)
    {
        var buckets = new List<Bucket>();
        long sendOffset = 0;
        int sumOffset = 0;
        for (int end = _parameters.Length, i = end - 1; i >= 0; i--)
        {
            long bytes = 4L * (_offsets[end] - _offsets[i]);
            if (bytes < bucketBytes && i > 0) continue;
            int length = _offsets[end] - _offsets[i], slice = (length + size - 1) / size;
            buckets.Add(new Bucket(i, end, _offsets[i], length, slice, sendOffset, sumOffset));
            sendOffset += (long)size * local * slice;
            sumOffset = checked(sumOffset + slice);
            end = i;
        }
        return [.. buckets];
    }

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
        if (_sync is not null && n < Communicator.Size)
            throw new InvalidOperationException($"DataParallel: a batch of {n} examples leaves a process without examples for its synchronised batch norms ({Communicator.Size} processes); use a batch size of at least {Communicator.Size}, and one that the training set's size leaves no smaller last batch of.");
        // synchronised batch norm with several micro-batches per process: each normalisation needs the statistics of every
        // micro-batch, so a process's micro-batches run as one forward over its share (held in its first micro-batch's place,
        // the others empty); the statistics are the global batch's, and the gradient Σ_r (n_r/n)·g_r
        bool merged = _sync is not null && local > 1;
        for (int k = 0; k < m; k++)
            _counts[k] = !merged ? Start(k + 1) - Start(k) : k % local == 0 ? Start(k + local) - Start(k) : 0;
        // the reduction of the last local micro-batch that has examples overlaps its backward
        // (a micro-batch without examples sends zeros: cleared now, before any bucket's reduction starts)
        int overlapped = -1;
        for (int j = 0; j < local; j++)
        {
            if (_counts[first + j] > 0) overlapped = j;
            else
                for (int i = 0; i < _parameters.Length; i++) CopyGradient(i, j, null);
        }
        (_started, _summed, _examples) = (0, 0, n);
        Array.Clear(_reduceRequests);
        Array.Clear(_gatherRequests);
        var deferred = new List<RunningStatisticsUpdate>[_norms.Length];
        for (int b = 0; b < _norms.Length; b++) _norms[b].DeferredUpdates = deferred[b] = [];
        foreach (var norm in _synchronised) norm.Sync = _sync;
        try
        {
            Array.Clear(_sendStats);
            Array.Fill(_nonEmpty, -1);
            for (int j = 0, made = 0; j < local; j++)
            {
                int k = first + j, start = Start(k), count = (int)_counts[k];
                var stats = _sendStats.AsSpan(j * _statsLength, _statsLength);
                _slot = j;
                if (count == 0) continue;
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
                // each parameter's gradient goes to the send buffer as soon as backward has finished it; in the overlapped
                // micro-batch, each bucket's reduction starts as soon as its last parameter is in (OnGradientReady)
                _overlap = j == overlapped;
                Array.Clear(_ready);
                for (int b = 0; b < _buckets.Length; b++) _waiting[b] = _buckets[b].EndParameter - _buckets[b].FirstParameter;
                BackwardEngine.Backward(l, releaseIntermediates: true, leafGradientReady: _onGradientReady);
                // the parameters that no gradient reached (outside this forward's graph): zero, or what they held
                for (int i = 0; i < _parameters.Length; i++)
                    if (!_ready[i]) GradientIn(i);
                _overlap = false;
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
        // every bucket is complete now: start the reductions not started during backward, in bucket order, then sum each
        // bucket's slice as its all-to-all arrives and start its all-gather
        while (_started < _buckets.Length) StartReduction(_started++);
        while (_summed < _buckets.Length)
        {
            _reduceRequests[_summed]!.Wait();
            SumAndGather(_summed++);
        }
        Communicator.AllGather(_sendStats, _receiveStats);
        return Combine(n);
    }

    /// <summary>Backward has finished a leaf's gradient: a parameter's goes to the send buffer; its bucket's reduction starts when complete.</summary>
    private void OnGradientReady(Tensor leaf)
    {
        if (!_index.TryGetValue(leaf, out int i) || _ready[i]) return;
        GradientIn(i);
        if (!_overlap) return;
        // in bucket order only, so that every process starts them in the same order whatever its graph
        while (_started < _buckets.Length && _waiting[_started] == 0) StartReduction(_started++);
        Progress();
    }

    /// <summary>Parameter i's gradient of the current micro-batch (or zero without one) into the send buffer; counts it in its bucket.</summary>
    private void GradientIn(int i)
    {
        CopyGradient(i, _slot, _parameters[i].Grad);
        _ready[i] = true;
        _waiting[_bucketOf[i]]--;
    }

    /// <summary>Copies <paramref name="gradient"/> (zeros when null) of parameter i into local micro-batch j's slices of its bucket.</summary>
    private void CopyGradient(int i, int j, Tensor? gradient)
    {
        var bucket = _buckets[_bucketOf[i]];
        int local = MicroBatches / Communicator.Size, s = bucket.Slice;
        int at = _offsets[i] - bucket.Start, length = _offsets[i + 1] - _offsets[i];
        ReadOnlySpan<float> values = gradient is null ? default : gradient.F;
        for (int done = 0; done < length;)
        {
            int d = at / s, e = at % s, chunk = Math.Min(length - done, s - e);
            var target = _send.AsSpan(checked((int)(bucket.SendOffset + (long)(d * local + j) * s + e)), chunk);
            if (gradient is null) target.Clear();
            else values.Slice(done, chunk).CopyTo(target);
            done += chunk;
            at += chunk;
        }
    }

    /// <summary>Starts bucket b's all-to-all: slice d of every local micro-batch's gradient to rank d.</summary>
    private void StartReduction(int b)
    {
        var bucket = _buckets[b];
        int length = Communicator.Size * (MicroBatches / Communicator.Size) * bucket.Slice;
        var range = new Range(checked((int)bucket.SendOffset), checked((int)bucket.SendOffset + length));
        _reduceRequests[b] = _reduceChannel.StartAllToAll(_send.AsMemory(range), _receive.AsMemory(range));
    }

    /// <summary>Between backward's operations: sums the slices of the buckets whose all-to-all has arrived, in order, and starts their all-gathers.</summary>
    private void Progress()
    {
        while (_summed < _started && _reduceRequests[_summed]!.Test()) SumAndGather(_summed++);
    }

    /// <summary>
    /// This process's slice of bucket b: Σ_k (n_k/n)·g_k in micro-batch order k = 0 … M − 1, a separate float multiplication and
    /// addition each (the same operations for any N); then its all-gather starts.
    /// </summary>
    private void SumAndGather(int b)
    {
        var bucket = _buckets[b];
        int s = bucket.Slice;
        var sum = _sums.AsSpan(bucket.SumOffset, s);
        var scratch = _scratch.AsSpan(0, s);
        sum.Clear();
        for (int k = 0; k < MicroBatches; k++)
        {
            if (_counts[k] == 0) continue;
            float weight = (float)(_counts[k] / _examples);
            TensorPrimitives.Multiply(_receive.AsSpan(checked((int)(bucket.SendOffset + (long)k * s)), s), weight, scratch);
            TensorPrimitives.Add(sum, scratch, sum);
        }
        _gatherRequests[b] = _gatherChannel.StartAllGather(_sums.AsMemory(bucket.SumOffset, s),
            _gathered.AsMemory(Communicator.Size * bucket.SumOffset, Communicator.Size * s));
    }

    /// <summary>g = Σ_k (n_k/n)·g_k in micro-batch order, each process summing its slice, then the slices gathered into each parameter's gradient; the loss likewise; the running statistics replayed; the observers' statistics combined.</summary>
    private (double Loss, long Correct) Combine(int n)
    {
        double lossSum = 0;
        long correct = 0;
        for (int b = 0; b < _buckets.Length; b++)
        {
            _gatherRequests[b]!.Wait();
            var bucket = _buckets[b];
            for (int i = bucket.FirstParameter; i < bucket.EndParameter; i++)
            {
                _gathered.AsSpan(Communicator.Size * bucket.SumOffset + _offsets[i] - bucket.Start, _offsets[i + 1] - _offsets[i]).CopyTo(_gradients[i].F);
                _parameters[i].Grad = _gradients[i];
            }
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
