using System.Numerics;
using GradFlow.Kernels;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// The batch norms (Ioffe and Szegedy 2015), as PyTorch's <c>_BatchNorm</c>:
/// <c>y = γ·(x − μ)/√(σ² + ε) + β</c> per channel c of an input [N, C, *].
/// </summary>
/// <remarks>
/// Training mode normalises with the batch statistics over N and the trailing dimensions — biased
/// variance — and updates <c>running_mean ← (1 − m)·running_mean + m·μ</c>,
/// <c>running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)</c> (unbiased), momentum m = 0.1; evaluation
/// mode uses the running statistics. Parameters <c>weight</c> (γ, ones) and <c>bias</c> (β, zeros);
/// buffers <c>running_mean</c>, <c>running_var</c>, <c>num_batches_tracked</c>. Forward and backward are
/// one fused op each (<c>NormOps.BatchNorm</c>); forward saves x̂ and rstd. Backward (training):
/// <c>dx = γ·rstd/M·(M·g − Σg − x̂·Σ g·x̂)</c>, <c>dγ = Σ g·x̂</c>, <c>dβ = Σ g</c>, sums over the M values
/// of the channel. Why it helps gradient flow: the signal entering each activation has unit scale
/// whatever the weights, so saturation and geometric growth or decay with depth are removed at every layer.
/// </remarks>
public abstract class BatchNormBase : Module
{
    private protected BatchNormBase(int numFeatures, double eps, double momentum, bool affine, bool trackRunningStats)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numFeatures, 1);
        if (!(eps > 0)) throw new ArgumentException($"{GetType().Name}: eps must be positive, got {eps}.");
        if (!(momentum >= 0 && momentum <= 1)) throw new ArgumentException($"{GetType().Name}: momentum must be in [0, 1], got {momentum}.");
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(numFeatures));
            Bias = RegisterParameter("bias", Tensor.Zeros(numFeatures));
        }
        if (trackRunningStats)
        {
            RunningMean = RegisterBuffer("running_mean", Tensor.Zeros(numFeatures));
            RunningVar = RegisterBuffer("running_var", Tensor.Ones(numFeatures));
            NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.Zeros(DType.Float64));
        }
    }

    /// <summary>C.</summary>
    public int NumFeatures { get; }

    /// <summary>ε added to the variance.</summary>
    public double Eps { get; }

    /// <summary>Running-statistics momentum.</summary>
    public double Momentum { get; }

    /// <summary>γ, or null without affine.</summary>
    public Parameter? Weight { get; }

    /// <summary>β, or null without affine.</summary>
    public Parameter? Bias { get; }

    /// <summary>Running mean (null without tracking).</summary>
    public Tensor? RunningMean { get; }

    /// <summary>Running (unbiased) variance.</summary>
    public Tensor? RunningVar { get; }

    /// <summary>Number of training batches seen.</summary>
    public Tensor? NumBatchesTracked { get; }

    /// <summary>Whether an input of this rank is accepted (dimension 1 must then be C).</summary>
    private protected abstract bool AcceptsRank(int rank);

    /// <summary>The accepted shapes for error messages, e.g. <c>[N, 16, H, W]</c>.</summary>
    private protected abstract string ExpectedShapes { get; }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        using var _ = GradMode.NoGrad();
        Weight?.Data.FillInPlace(1);
        Bias?.Data.FillInPlace(0);
        RunningMean?.FillInPlace(0);
        RunningVar?.FillInPlace(1);
        NumBatchesTracked?.FillInPlace(0);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => ForwardFused(input, relu: false);

    /// <summary>
    /// <c>relu(this(input))</c>, as one op (<see cref="ForwardFused"/>) when no forward hook watches this module, else
    /// <c>Forward(input).Relu()</c> so the hooks see the batch norm's output: for a module that applies ReLU right after its
    /// batch norm, as a ResNet's basic block does (<c>relu(bn1(conv1(x)))</c>). The same values and gradients either way.
    /// </summary>
    /// <example><code>var h = bn1.ForwardRelu(conv1.Forward(x));</code></example>
    public Tensor ForwardRelu(Tensor input) => HasHooks ? Forward(input).Relu() : ForwardFused(input, relu: true);

    /// <summary>
    /// <c>relu(this(input) + residual)</c>, as one op (<see cref="ForwardFused"/> with the residual) when no forward hook watches this
    /// module, else <c>(Forward(input) + residual).Relu()</c> so the hooks see the batch norm's output: the end of a ResNet basic block,
    /// <c>relu(bn2(conv2(h)) + x)</c>. The same values and gradients either way; the residual gets ReLU's gradient.
    /// </summary>
    /// <exception cref="ArgumentException">when <paramref name="residual"/>'s shape or type is not the input's.</exception>
    /// <example><code>var y = bn2.ForwardAddRelu(conv2.Forward(h), x);</code></example>
    public Tensor ForwardAddRelu(Tensor input, Tensor residual)
    {
        ArgumentNullException.ThrowIfNull(residual);
        NormOps.CheckResidual(input, residual); // the same refusal on both paths (the hooked sum would broadcast)
        return HasHooks ? (Forward(input) + residual).Relu() : ForwardFused(input, relu: true, residual);
    }

    /// <summary>
    /// The batch norm, followed by ReLU when <paramref name="relu"/> (<c>relu(bn(x))</c> as one op and one graph node:
    /// <c>NormOps.BatchNorm</c> with relu),
    /// bypassing <see cref="Module.Forward"/>: the caller (<see cref="Sequential"/>) has checked that no hook watches this module or the ReLU.
    /// </summary>
    internal Tensor ForwardFused(Tensor input, bool relu, Tensor? residual = null)
    {
        string name = GetType().Name;
        if (!AcceptsRank(input.Rank) || input.Shape[1] != NumFeatures)
            throw new ArgumentException($"{name}: expected input {ExpectedShapes}, got {Shapes.Format(input.Shape)}.");
        bool useBatch = Training || RunningMean is null;
        if (useBatch && input.Count / NumFeatures < 2)
            throw new ArgumentException($"{name}: training needs more than one value per channel, got input {Shapes.Format(input.Shape)}.");
        var y = NormOps.BatchNorm(input, Weight?.Data, Bias?.Data, useBatch ? null : RunningMean, useBatch ? null : RunningVar, Eps,
            out var batchMean, out var batchVar, out long count, useBatch ? Sync : null, relu, residual);
        if (Training && RunningMean is not null && batchMean is not null)
        {
            var update = new RunningStatisticsUpdate(batchMean, batchVar!, checked((int)count));
            if (DeferredUpdates is { } deferred) deferred.Add(update);
            else ApplyRunningUpdate(update);
        }
        return y;
    }

    /// <summary>
    /// When not null, each training forward adds its running-statistics update here instead of applying it: the
    /// data-parallel step (<c>Training.DataParallel</c>) gathers the updates of every micro-batch of a step and replays
    /// them in micro-batch order with <see cref="ApplyRunningUpdate"/> on every process, so the running statistics are the
    /// same for any number of processes.
    /// </summary>
    public List<RunningStatisticsUpdate>? DeferredUpdates { get; set; }

    /// <summary>
    /// When not null, training normalises with the statistics of the whole global batch, summed over the processes of a
    /// data-parallel job (synchronised batch norm, as PyTorch's <c>SyncBatchNorm</c>): forward sums Σx and the count, then
    /// Σ(x − μ)² around the global mean μ; backward sums Σg and Σg·(x − μ), each process's scaled by its share of the global
    /// batch (see <see cref="IBatchNormSync"/>). Set by <c>Training.DataParallel</c> for one step at a time.
    /// </summary>
    public IBatchNormSync? Sync { get; set; }

    /// <summary>
    /// <c>running_mean = (1 − m)·running_mean + m·mean</c>, <c>running_var = (1 − m)·running_var + m·var·n/(n − 1)</c>
    /// (the unbiased variance, as PyTorch), in double; <c>num_batches_tracked += 1</c>.
    /// </summary>
    public void ApplyRunningUpdate(RunningStatisticsUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (RunningMean is null) throw new InvalidOperationException($"{GetType().Name}: no running statistics to update (track_running_stats=False).");
        if (update.Mean.Length != NumFeatures || update.Var.Length != NumFeatures)
            throw new ArgumentException($"{GetType().Name}: a running-statistics update has {update.Mean.Length} means and {update.Var.Length} variances for {NumFeatures} channels.");
        double m = Momentum;
        int count = update.Count;
        var rm = RunningMean.ToDoubleArray();
        var rv = RunningVar!.ToDoubleArray();
        for (int c = 0; c < NumFeatures; c++)
        {
            rm[c] = (1 - m) * rm[c] + m * update.Mean[c];
            rv[c] = (1 - m) * rv[c] + m * update.Var[c] * count / (count - 1);
        }
        using (GradMode.NoGrad())
        {
            RunningMean.CopyFrom(Tensor.FromArray(rm).To(RunningMean.DType).Detach());
            RunningVar.CopyFrom(Tensor.FromArray(rv).To(RunningVar.DType).Detach());
            NumBatchesTracked!.AddInPlace(Tensor.Ones(NumBatchesTracked.DType));
        }
    }

    /// <inheritdoc />
    protected override string ExtraRepr() =>
        $"{NumFeatures}, eps={PyRepr.Float(Eps)}, momentum={PyRepr.Float(Momentum)}, affine={PyRepr.Bool(Weight is not null)}, track_running_stats={PyRepr.Bool(RunningMean is not null)}";
}

/// <summary>
/// The processes of a data-parallel step, seen from a synchronised batch norm (<see cref="BatchNormBase.Sync"/>): every process
/// calls <see cref="Sum"/> at the same points of its forward and backward, with as many values.
/// </summary>
public interface IBatchNormSync
{
    /// <summary>Replaces <paramref name="values"/> by their element-wise sum over the processes, the same bits on every process.</summary>
    void Sum(Span<double> values);

    /// <summary>
    /// This process's share of the global batch, n_r/n: its loss is the mean over its n_r examples, so its gradients are
    /// 1/share times those of the global batch's mean loss.
    /// </summary>
    double Share { get; }
}

/// <summary>
/// Batch normalisation over a 2-D [N, C] or 3-D [N, C, L] input, as <c>torch.nn.BatchNorm1d</c>
/// (statistics over N and L); see <see cref="BatchNormBase"/>.
/// </summary>
public sealed class BatchNorm1d : BatchNormBase
{
    /// <summary>A batch norm over <paramref name="numFeatures"/> channels.</summary>
    public BatchNorm1d(int numFeatures, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    private protected override bool AcceptsRank(int rank) => rank is 2 or 3;

    private protected override string ExpectedShapes => $"[N, {NumFeatures}] or [N, {NumFeatures}, L]";
}

/// <summary>
/// Batch normalisation over a 4-D [N, C, H, W] input, as <c>torch.nn.BatchNorm2d</c>: statistics per
/// channel over N, H and W (biased variance to normalise, unbiased into <c>running_var</c>, momentum 0.1,
/// ε 1e-5); see <see cref="BatchNormBase"/>.
/// </summary>
/// <example><code>var bn = new BatchNorm2d(16); // after a Conv2d with 16 output channels</code></example>
public sealed class BatchNorm2d : BatchNormBase
{
    /// <summary>A batch norm over the <paramref name="numFeatures"/> channels of an image batch.</summary>
    public BatchNorm2d(int numFeatures, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool trackRunningStats = true)
        : base(numFeatures, eps, momentum, affine, trackRunningStats)
    {
    }

    private protected override bool AcceptsRank(int rank) => rank == 4;

    private protected override string ExpectedShapes => $"[N, {NumFeatures}, H, W]";
}

/// <summary>
/// Group normalisation (Wu and He 2018), as <c>torch.nn.GroupNorm</c>: the C channels of an input
/// [N, C, *] are split into <c>numGroups</c> groups of consecutive channels, and each (example, group)
/// is normalised over its channels and trailing dimensions, <c>y = (x − μ)/√(σ² + ε)·γ_c + β_c</c>
/// (biased σ²), with a per-channel affine <c>weight</c> (γ, ones) and <c>bias</c> (β, zeros). Same in
/// training and evaluation; no running statistics, so it does not depend on the batch size.
/// Backward (per example and group, D values): <c>dx = rstd/D·(D·ĝ − Σĝ − x̂·Σ ĝ·x̂)</c>, ĝ = g·γ_c;
/// <c>dγ_c = Σ g·x̂</c>, <c>dβ_c = Σ g</c> over examples and positions.
/// </summary>
/// <example><code>var gn = new GroupNorm(numGroups: 4, numChannels: 16);</code></example>
public sealed class GroupNorm : Module
{
    /// <summary>A group norm of <paramref name="numChannels"/> channels in <paramref name="numGroups"/> groups.</summary>
    /// <exception cref="ArgumentException">when the channels are not divisible by the groups, or eps is not positive.</exception>
    public GroupNorm(int numGroups, int numChannels, double eps = 1e-5, bool affine = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numGroups, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numChannels, 1);
        if (numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: num_channels {numChannels} must be divisible by num_groups {numGroups}.");
        if (!(eps > 0)) throw new ArgumentException($"GroupNorm: eps must be positive, got {eps}.");
        NumGroups = numGroups;
        NumChannels = numChannels;
        Eps = eps;
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(numChannels));
            Bias = RegisterParameter("bias", Tensor.Zeros(numChannels));
        }
    }

    /// <summary>G.</summary>
    public int NumGroups { get; }

    /// <summary>C.</summary>
    public int NumChannels { get; }

    /// <summary>ε added to the variance.</summary>
    public double Eps { get; }

    /// <summary>γ (ones), or null without affine.</summary>
    public Parameter? Weight { get; }

    /// <summary>β (zeros), or null without affine.</summary>
    public Parameter? Bias { get; }

    /// <inheritdoc />
    public override void ResetParameters() => NormAffine.Reset(Weight, Bias);

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank < 2 || input.Shape[1] != NumChannels)
            throw new ArgumentException($"GroupNorm: expected input [N, {NumChannels}, *], got {Shapes.Format(input.Shape)}.");
        return NormOps.GroupNorm(input, NumGroups, Weight?.Data, Bias?.Data, Eps);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"{NumGroups}, {NumChannels}, eps={PyRepr.Float(Eps)}, affine={PyRepr.Bool(Weight is not null)}";
}

/// <summary>The elementwise affine γ, β of the normalisation layers.</summary>
internal static class NormAffine
{
    /// <summary>γ to ones and β to zeros (either may be absent), without recording gradients.</summary>
    public static void Reset(Parameter? weight, Parameter? bias)
    {
        using var _ = GradMode.NoGrad();
        weight?.Data.FillInPlace(1);
        bias?.Data.FillInPlace(0);
    }
}

/// <summary>Python's repr of values, for PyTorch-like module reprs.</summary>
internal static class PyRepr
{
    /// <summary><c>repr(float)</c>: <c>1e-05</c>, <c>0.1</c>, <c>1.0</c>.</summary>
    public static string Float(double v)
    {
        var r = v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        if (r.Contains('E')) return r.Replace("E", "e", StringComparison.Ordinal);
        return r.Contains('.') || r.Contains("Infinity") || r == "NaN" ? r : r + ".0";
    }

    /// <summary><c>True</c> / <c>False</c>.</summary>
    public static string Bool(bool b) => b ? "True" : "False";
}

/// <summary>
/// Layer normalisation over the last dimensions (Ba et al. 2016), as <c>torch.nn.LayerNorm</c>:
/// <c>y = γ·(x − μ)/√(σ² + ε) + β</c>, μ and σ² (biased) per example over <c>normalizedShape</c>.
/// Same in training and evaluation. Backward: <c>dx = rstd/D·(D·ĝ − Σĝ − x̂·Σ ĝ·x̂)</c>, ĝ = g·γ,
/// D the normalised size; <c>dγ = Σ g·x̂</c>, <c>dβ = Σ g</c> over examples.
/// </summary>
public sealed class LayerNorm : Module
{
    private readonly int[] _normalizedShape;

    /// <summary>A layer norm over the trailing dimensions <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(int[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true)
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        if (normalizedShape.Length == 0 || normalizedShape.Any(d => d < 1))
            throw new ArgumentException($"LayerNorm: normalized shape {Shapes.Format(normalizedShape)} must be non-empty and positive.");
        if (!(eps > 0)) throw new ArgumentException($"LayerNorm: eps must be positive, got {eps}.");
        _normalizedShape = (int[])normalizedShape.Clone();
        Eps = eps;
        if (elementwiseAffine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(_normalizedShape));
            Bias = RegisterParameter("bias", Tensor.Zeros(_normalizedShape));
        }
    }

    /// <summary>A layer norm over the last dimension of size <paramref name="features"/>.</summary>
    public LayerNorm(int features, double eps = 1e-5, bool elementwiseAffine = true) : this([features], eps, elementwiseAffine)
    {
    }

    /// <summary>ε.</summary>
    public double Eps { get; }

    /// <summary>γ (ones), or null.</summary>
    public Parameter? Weight { get; }

    /// <summary>β (zeros), or null.</summary>
    public Parameter? Bias { get; }

    /// <inheritdoc />
    public override void ResetParameters() => NormAffine.Reset(Weight, Bias);

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        int k = _normalizedShape.Length;
        if (input.Rank < k || !input.Shape[^k..].SequenceEqual(_normalizedShape))
            throw new ArgumentException($"LayerNorm: input shape {Shapes.Format(input.Shape)} does not end with the normalized shape {Shapes.Format(_normalizedShape)}.");
        return NormOps.LayerNorm(input, _normalizedShape.Aggregate(1, (a, b) => a * b), Weight?.Data, Bias?.Data, Eps);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"({string.Join(", ", _normalizedShape)},), eps={Eps}, elementwise_affine={Weight is not null}");
}

/// <summary>
/// The fused normalisation ops (forward and backward side by side). Batch and group norm run the
/// segment passes of <see cref="NormKernels"/> in the tensor's own precision (no float64 copy of the
/// data; per-segment sums combined in double); layer norm runs in double accumulation element by element.
/// </summary>
internal static class NormOps
{
    /// <summary>
    /// Batch norm over channels of [N, C, *] (statistics over N and the trailing dimensions). With running statistics given, normalises with them
    /// (evaluation); otherwise with the batch's, returned in <paramref name="batchMean"/> / <paramref name="batchVar"/> (biased).
    /// </summary>
    /// <remarks>
    /// Passes over the data: forward, in training, each (example, channel) segment's Σx and Σ(x − x̄_s)² around its own mean in one
    /// pass (<see cref="NormKernels.SegmentMoments{T}(ReadOnlySpan{T}, int, int, Span{double}, Span{double}, Span{double})"/>; the
    /// segment is read again from cache), combined per channel exactly around the channel's mean μ; then <c>y = (x − μ)·γ·rstd + β</c>; backward Σg and
    /// Σg·(x − μ) in one pass, then <c>dx = γ·rstd·g − γ·rstd³·Σg(x − μ)/M·(x − μ) − γ·rstd·Σg/M</c> (evaluation: <c>γ·rstd·g</c>).
    /// The node keeps μ and rstd per channel and reads x again in backward (no saved x̂).
    /// </remarks>
    public static Tensor BatchNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor? runMean, Tensor? runVar, double eps,
        out double[]? batchMean, out double[]? batchVar) =>
        BatchNorm(x, gamma, beta, runMean, runVar, eps, out batchMean, out batchVar, out _, null);

    /// <summary>
    /// As the overload above; with <paramref name="sync"/> (training only), the statistics are the global batch's over the processes
    /// (<see cref="IBatchNormSync"/>), and <paramref name="count"/> is the values per channel they were taken over (the global count).
    /// </summary>
    /// <remarks>
    /// Synchronised: μ = ΣΣx / ΣM, σ² = ΣΣ(x − μ)² / ΣM (two sums over the processes in forward). Backward: with this process's
    /// share s = n_r/n, G₁ = Σ_r s_r·Σg and G₂ = Σ_r s_r·Σg(x − μ) are the global batch's sums (one sum over the processes), and
    /// <c>dx = γ·rstd·g − γ·rstd³·(G₂/s)/ΣM·(x − μ) − γ·rstd·(G₁/s)/ΣM</c>: the gradient of this process's loss, which the data-parallel
    /// step weighs by s. dγ and dβ are this process's sums, weighed likewise. With one process (s = 1) this is the plain batch norm.
    /// </remarks>
    /// <remarks>
    /// With <paramref name="relu"/>, the op is <c>relu(batch_norm(x))</c> in the same passes: the affine pass rectifies as it writes,
    /// and backward masks g where the normalised value <c>z = (x − μ)·γ·rstd + β</c>, recomputed from x by the forward's own
    /// operations, is ≤ 0 (ReLU's subgradient 0 at 0) inside its two passes; so ReLU's own forward and backward passes are gone, and
    /// the values and gradients are bitwise those of the two ops (the batch norm's output is not kept: a hook that wants it stops the fusion).
    /// </remarks>
    /// <remarks>
    /// With <paramref name="residual"/> r as well (a ResNet block's end), the op is <c>relu(batch_norm(x) + r)</c>: the affine pass adds r
    /// and rectifies as it writes (one pass instead of the affine, the add and ReLU's three); backward masks g by the op's own output,
    /// writing the masked g out as r's gradient, and takes the two sums from it while it is in cache; then the input gradient's pass.
    /// The same bits as the three ops.
    /// </remarks>
    public static Tensor BatchNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor? runMean, Tensor? runVar, double eps,
        out double[]? batchMean, out double[]? batchVar, out long count, IBatchNormSync? sync, bool relu = false, Tensor? residual = null)
    {
        if (residual is not null)
        {
            if (!relu) throw new ArgumentException("batch_norm: a residual is added only before a fused ReLU (relu(batch_norm(x) + r)).", nameof(residual));
            CheckResidual(x, residual);
        }
        int n = x.Shape[0], c = x.Shape[1], l = n * c == 0 ? 0 : x.Count / (n * c);
        int m = n * l, segments = n * c;
        var mean = new double[c];
        var rstd = new double[c];
        var segMean = new double[segments];
        batchMean = batchVar = null;
        if (runMean is not null) sync = null;
        double total = m;
        if (runMean is null)
        {
            var perSegment = new double[segments];
            var var = new double[c];
            if (sync is null)
            {
                // one pass over x: each segment's Σx and Σ(x − its own mean)², combined per channel around the channel's mean
                var center = segMean; // each segment's own mean, until the channel means are spread over it below
                var ss = new double[segments];
                Moments(x, segments, l, perSegment, center, ss);
                ChannelTotals(perSegment, n, c, mean);
                for (int ch = 0; ch < c; ch++) mean[ch] /= total;
                for (int i = 0; i < n; i++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        int s = i * c + ch;
                        double d = center[s] - mean[ch];
                        var[ch] += ss[s] + 2 * d * (perSegment[s] - l * center[s]) + l * d * d;
                    }
                Spread(mean, n, segMean);
            }
            else
            {
                // synchronised: the global mean first (one sum over the processes), then the deviations around it
                Sums(x, segments, l, perSegment);
                ChannelTotals(perSegment, n, c, mean);
                var sums = new double[c + 1];
                mean.CopyTo(sums, 0);
                sums[c] = m;
                sync.Sum(sums);
                sums.AsSpan(0, c).CopyTo(mean);
                total = sums[c];
                for (int ch = 0; ch < c; ch++) mean[ch] /= total;
                Spread(mean, n, segMean);
                SquaredDeviations(x, segments, l, segMean, perSegment);
                ChannelTotals(perSegment, n, c, var);
                sync.Sum(var);
            }
            for (int ch = 0; ch < c; ch++)
            {
                var[ch] = Math.Max(var[ch], 0) / total;
                rstd[ch] = 1 / Math.Sqrt(var[ch] + eps);
            }
            batchMean = mean;
            batchVar = var;
        }
        else
        {
            var rm = runMean.ToDoubleArray();
            var rv = runVar!.ToDoubleArray();
            for (int ch = 0; ch < c; ch++)
            {
                mean[ch] = rm[ch];
                rstd[ch] = 1 / Math.Sqrt(rv[ch] + eps);
            }
            Spread(mean, n, segMean);
        }
        var gv = gamma?.ToDoubleArray();
        var bv = beta?.ToDoubleArray();
        var scale = new double[c];
        var shift = new double[c];
        count = (long)total;
        for (int ch = 0; ch < c; ch++)
        {
            scale[ch] = (gv?[ch] ?? 1) * rstd[ch];
            shift[ch] = bv?[ch] ?? 0;
        }
        var segScale = new double[segments];
        var segShift = new double[segments];
        Spread(scale, n, segScale);
        Spread(shift, n, segShift);
        string op = residual is not null ? "batch_norm_add_relu" : relu ? "batch_norm_relu" : "batch_norm";
        var y = residual is null ? Affine(op, x, segments, l, segMean, segScale, segShift, relu) : AffineAddRelu(op, x, residual, segments, l, segMean, segScale, segShift);
        var inputs = Inputs(x, gamma, beta);
        if (residual is not null) inputs = [.. inputs, residual];
        if (!Tensor.NeedsGrad(inputs)) return y;
        bool training = runMean is null;
        return y.Record(op, inputs, g =>
        {
            Tensor? gr = null; // relu's gradient, the residual's (and the batch norm's output's)
            double[] s1, s2;
            if (residual is not null) (s1, s2, gr) = MaskedGradientSums(op, g, y, x, segments, l, segMean);
            else (s1, s2) = relu ? ReluGradientSums(g, x, segments, l, segMean, segScale, segShift) : GradientSums(g, x, segments, l, segMean);
            var sumG = new double[c];
            var sumGDev = new double[c];
            ChannelTotals(s1, n, c, sumG);
            ChannelTotals(s2, n, c, sumGDev);
            var grads = new Tensor?[inputs.Length];
            if (x.RequiresGrad)
            {
                var a = new double[c];
                var b = new double[c];
                var k = new double[c];
                var (globalG, globalGDev) = (sumG, sumGDev);
                if (sync is not null)
                {
                    // the global batch's sums, in this process's loss scale
                    double share = sync.Share;
                    var sums = new double[2 * c];
                    for (int ch = 0; ch < c; ch++)
                    {
                        sums[ch] = share * sumG[ch];
                        sums[c + ch] = share * sumGDev[ch];
                    }
                    sync.Sum(sums);
                    (globalG, globalGDev) = (new double[c], new double[c]);
                    for (int ch = 0; ch < c; ch++)
                    {
                        globalG[ch] = sums[ch] / share;
                        globalGDev[ch] = sums[c + ch] / share;
                    }
                }
                for (int ch = 0; ch < c; ch++)
                {
                    a[ch] = scale[ch];
                    b[ch] = training ? -scale[ch] * rstd[ch] * rstd[ch] * globalGDev[ch] / total : 0;
                    k[ch] = training ? -scale[ch] * globalG[ch] / total : 0;
                }
                Spread(a, n, s1);
                Spread(b, n, s2);
                var segC = new double[segments];
                Spread(k, n, segC);
                grads[0] = gr is not null ? AffineGradient(op, gr, x, segments, l, segMean, s1, s2, segC)
                    : relu ? ReluAffineGradient(op, g, x, segments, l, segMean, segScale, segShift, s1, s2, segC)
                    : AffineGradient(op, g, x, segments, l, segMean, s1, s2, segC);
            }
            for (int ch = 0; ch < c; ch++) sumGDev[ch] *= rstd[ch]; // Σ g·x̂
            int at = 1;
            if (gamma is not null) grads[at++] = gamma.RequiresGrad ? Tensor.FromArray(sumGDev).To(gamma.DType).Detach() : null;
            if (beta is not null) grads[at++] = beta.RequiresGrad ? Tensor.FromArray(sumG).To(beta.DType).Detach() : null;
            if (residual is not null) grads[at] = residual.RequiresGrad ? gr : null;
            return grads;
        });
    }

    /// <summary>Throws, naming both shapes and types, when the residual of <c>relu(batch_norm(x) + r)</c> is not x's shape and type.</summary>
    internal static void CheckResidual(Tensor x, Tensor residual)
    {
        if (!residual.Shape.SequenceEqual(x.Shape) || residual.DType != x.DType)
            throw new ArgumentException(
                $"batch_norm_add_relu: the residual {Shapes.Format(residual.Shape)} ({residual.DType}) must have the input's shape and type, {Shapes.Format(x.Shape)} ({x.DType}).",
                nameof(residual));
    }

    /// <summary>x, then γ and β where given: the inputs of a norm's graph node.</summary>
    private static Tensor[] Inputs(Tensor x, Tensor? gamma, Tensor? beta) =>
        gamma is null ? beta is null ? [x] : [x, beta] : beta is null ? [x, gamma] : [x, gamma, beta];

    // The NormKernels passes on a tensor of either precision.
    private static void Sums(Tensor x, int segments, int l, double[] sum)
    {
        if (x.Is<float>()) NormKernels.SegmentSums<float>(x.Span<float>(), segments, l, sum);
        else NormKernels.SegmentSums<double>(x.Span<double>(), segments, l, sum);
    }

    private static void Moments(Tensor x, int segments, int l, double[] sum, double[] center, double[] ss)
    {
        if (x.Is<float>()) NormKernels.SegmentMoments<float>(x.Span<float>(), segments, l, sum, center, ss);
        else NormKernels.SegmentMoments<double>(x.Span<double>(), segments, l, sum, center, ss);
    }

    private static void SquaredDeviations(Tensor x, int segments, int l, double[] mean, double[] ss)
    {
        if (x.Is<float>()) NormKernels.SegmentSquaredDeviations<float>(x.Span<float>(), segments, l, mean, ss);
        else NormKernels.SegmentSquaredDeviations<double>(x.Span<double>(), segments, l, mean, ss);
    }

    private static (double[] SumG, double[] SumGDev) GradientSums(Tensor g, Tensor x, int segments, int l, double[] mean)
    {
        var (s1, s2) = (new double[segments], new double[segments]);
        if (x.Is<float>()) NormKernels.SegmentGradientSums<float>(g.Span<float>(), x.Span<float>(), segments, l, mean, s1, s2);
        else NormKernels.SegmentGradientSums<double>(g.Span<double>(), x.Span<double>(), segments, l, mean, s1, s2);
        return (s1, s2);
    }

    private static Tensor Affine(string op, Tensor x, int segments, int l, double[] mean, double[] scale, double[] shift, bool relu = false)
    {
        var y = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (relu)
        {
            if (x.Is<float>()) NormKernels.SegmentAffineRelu<float>(x.Span<float>(), segments, l, mean, scale, shift, y.Span<float>());
            else NormKernels.SegmentAffineRelu<double>(x.Span<double>(), segments, l, mean, scale, shift, y.Span<double>());
        }
        else if (x.Is<float>()) NormKernels.SegmentAffine<float>(x.Span<float>(), segments, l, mean, scale, shift, y.Span<float>());
        else NormKernels.SegmentAffine<double>(x.Span<double>(), segments, l, mean, scale, shift, y.Span<double>());
        return y;
    }

    private static Tensor AffineAddRelu(string op, Tensor x, Tensor r, int segments, int l, double[] mean, double[] scale, double[] shift)
    {
        var y = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (x.Is<float>()) NormKernels.SegmentAffineAddRelu<float>(x.Span<float>(), r.Span<float>(), segments, l, mean, scale, shift, y.Span<float>());
        else NormKernels.SegmentAffineAddRelu<double>(x.Span<double>(), r.Span<double>(), segments, l, mean, scale, shift, y.Span<double>());
        return y;
    }

    private static (double[] SumG, double[] SumGDev, Tensor Masked) MaskedGradientSums(string op, Tensor g, Tensor y, Tensor x, int segments, int l, double[] mean)
    {
        var (s1, s2) = (new double[segments], new double[segments]);
        var gr = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (x.Is<float>()) NormKernels.SegmentMaskedGradientSums<float>(g.Span<float>(), y.Span<float>(), x.Span<float>(), segments, l, mean, gr.Span<float>(), s1, s2);
        else NormKernels.SegmentMaskedGradientSums<double>(g.Span<double>(), y.Span<double>(), x.Span<double>(), segments, l, mean, gr.Span<double>(), s1, s2);
        return (s1, s2, gr);
    }

    private static (double[] SumG, double[] SumGDev) ReluGradientSums(Tensor g, Tensor x, int segments, int l, double[] mean, double[] scale, double[] shift)
    {
        var (s1, s2) = (new double[segments], new double[segments]);
        if (x.Is<float>()) NormKernels.SegmentReluGradientSums<float>(g.Span<float>(), x.Span<float>(), segments, l, mean, scale, shift, s1, s2);
        else NormKernels.SegmentReluGradientSums<double>(g.Span<double>(), x.Span<double>(), segments, l, mean, scale, shift, s1, s2);
        return (s1, s2);
    }

    private static Tensor ReluAffineGradient(string op, Tensor g, Tensor x, int segments, int l, double[] mean, double[] scale, double[] shift,
        double[] a, double[] b, double[] c)
    {
        var dx = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (x.Is<float>()) NormKernels.SegmentReluAffineGradient<float>(g.Span<float>(), x.Span<float>(), segments, l, mean, scale, shift, a, b, c, dx.Span<float>());
        else NormKernels.SegmentReluAffineGradient<double>(g.Span<double>(), x.Span<double>(), segments, l, mean, scale, shift, a, b, c, dx.Span<double>());
        return dx;
    }

    private static Tensor AffineGradient(string op, Tensor g, Tensor x, int segments, int l, double[] mean, double[] a, double[] b, double[] c)
    {
        var dx = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (x.Is<float>()) NormKernels.SegmentAffineGradient<float>(g.Span<float>(), x.Span<float>(), segments, l, mean, a, b, c, dx.Span<float>());
        else NormKernels.SegmentAffineGradient<double>(g.Span<double>(), x.Span<double>(), segments, l, mean, a, b, c, dx.Span<double>());
        return dx;
    }

    /// <summary><c>total[ch] = Σ_i perSegment[i·C + ch]</c>, examples in order.</summary>
    private static void ChannelTotals(double[] perSegment, int n, int c, double[] total)
    {
        Array.Clear(total);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) total[ch] += perSegment[i * c + ch];
    }

    /// <summary><c>perSegment[i·C + ch] = perChannel[ch]</c> for the N examples.</summary>
    private static void Spread(double[] perChannel, int n, double[] perSegment)
    {
        for (int i = 0; i < n; i++) perChannel.CopyTo(perSegment, i * perChannel.Length);
    }

    /// <summary>
    /// Group norm of [N, C, *]: each example's channels in <paramref name="groups"/> groups of consecutive
    /// channels (a contiguous block of C/G·L values, L the trailing size), normalised over the block, then
    /// the per-channel affine γ_c, β_c. Segments are the (example, channel) runs of L values: forward Σx, Σ(x − μ)²,
    /// <c>y = (x − μ)·γ_c·rstd + β_c</c>; backward Σg and Σg·(x − μ) per segment, then per group (D values)
    /// <c>dx = rstd·(γ_c·g − Σĝ/D − x̂·Σĝx̂/D)</c>, ĝ = γ_c·g, as one affine pass per segment.
    /// </summary>
    public static Tensor GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, double eps)
    {
        int n = x.Shape[0], c = x.Shape[1], l = n * c == 0 ? 1 : x.Count / (n * c);
        if (c % groups != 0)
            throw new ArgumentException($"group_norm: {c} channels of input {Shapes.Format(x.Shape)} are not divisible by {groups} groups.");
        int segments = n * c, perGroup = c / groups, rows = n * groups, d = perGroup * l;
        var perSegment = new double[segments];
        var segMean = new double[segments];
        var rstd = new double[rows];
        Sums(x, segments, l, perSegment);
        var rowMean = RowTotals(perSegment, rows, perGroup);
        for (int r = 0; r < rows; r++)
        {
            rowMean[r] /= d;
            for (int j = 0; j < perGroup; j++) segMean[r * perGroup + j] = rowMean[r];
        }
        SquaredDeviations(x, segments, l, segMean, perSegment);
        var rowSs = RowTotals(perSegment, rows, perGroup);
        for (int r = 0; r < rows; r++) rstd[r] = 1 / Math.Sqrt(rowSs[r] / d + eps);
        var gv = gamma?.ToDoubleArray();
        var bv = beta?.ToDoubleArray();
        var segScale = new double[segments];
        var segShift = new double[segments];
        for (int s = 0; s < segments; s++)
        {
            int ch = s % c;
            segScale[s] = (gv?[ch] ?? 1) * rstd[s / perGroup];
            segShift[s] = bv?[ch] ?? 0;
        }
        var y = Affine("group_norm", x, segments, l, segMean, segScale, segShift);
        var inputs = Inputs(x, gamma, beta);
        if (!Tensor.NeedsGrad(inputs)) return y;
        return y.Record("group_norm", inputs, g =>
        {
            var (s1, s2) = GradientSums(g, x, segments, l, segMean);
            var dgamma = new double[c];
            var dbeta = new double[c];
            for (int s = 0; s < segments; s++)
            {
                dgamma[s % c] += s2[s] * rstd[s / perGroup];
                dbeta[s % c] += s1[s];
            }
            var grads = new Tensor?[inputs.Length];
            if (x.RequiresGrad)
            {
                var a = new double[segments];
                var b = new double[segments];
                var k = new double[segments];
                for (int r = 0; r < rows; r++)
                {
                    double sumGh = 0, sumGhDev = 0;
                    for (int j = 0; j < perGroup; j++)
                    {
                        int s = r * perGroup + j;
                        double gam = gv?[s % c] ?? 1;
                        sumGh += gam * s1[s];
                        sumGhDev += gam * s2[s];
                    }
                    double rs = rstd[r];
                    for (int j = 0; j < perGroup; j++)
                    {
                        int s = r * perGroup + j;
                        a[s] = rs * (gv?[s % c] ?? 1);
                        b[s] = -rs * rs * rs * sumGhDev / d;
                        k[s] = -rs * sumGh / d;
                    }
                }
                grads[0] = AffineGradient("group_norm", g, x, segments, l, segMean, a, b, k);
            }
            int at = 1;
            if (gamma is not null) grads[at++] = gamma.RequiresGrad ? Tensor.FromArray(dgamma).To(gamma.DType).Detach().ReshapeRaw(gamma.ShapeArray) : null;
            if (beta is not null) grads[at] = beta.RequiresGrad ? Tensor.FromArray(dbeta).To(beta.DType).Detach().ReshapeRaw(beta.ShapeArray) : null;
            return grads;
        });
    }

    /// <summary><c>total[r] = Σ_j perSegment[r·perRow + j]</c>, segments in order.</summary>
    private static double[] RowTotals(double[] perSegment, int rows, int perRow)
    {
        var total = new double[rows];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < perRow; j++) total[r] += perSegment[r * perRow + j];
        return total;
    }

    /// <summary>
    /// Layer norm over the trailing <paramref name="d"/> elements of each row, in the tensor's own
    /// precision on the segment kernels (a row is a segment): per-row mean and 1/σ in double, x̂ never
    /// stored (backward recomputes it from x and the two per-row numbers, as PyTorch does).
    /// Backward per row: <c>dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))</c>, ĝ = γ·g; <c>dγ = Σ_rows g·x̂</c>,
    /// <c>dβ = Σ_rows g</c>, the column sums taken over fixed chunks of rows and the chunks added in
    /// order, so the result is the same for any thread count.
    /// </summary>
    public static Tensor LayerNorm(Tensor x, int d, Tensor? gamma, Tensor? beta, double eps)
    {
        const string op = "layer_norm";
        return x.Storage is float[] ? LayerNorm<float>(op, x, d, gamma, beta, eps) : LayerNorm<double>(op, x, d, gamma, beta, eps);
    }

    private static Tensor LayerNorm<T>(string op, Tensor x, int d, Tensor? gamma, Tensor? beta, double eps) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (gamma is not null && gamma.DType != x.DType) gamma = gamma.To(x.DType);
        if (beta is not null && beta.DType != x.DType) beta = beta.To(x.DType);
        int rows = d == 0 ? 0 : x.Count / d;
        var mean = new double[rows];
        var rstd = new double[rows];
        var y = Tensor.Uninitialized(op, x, x.ShapeArray);
        if (rows > 0)
        {
            var xv = x.Span<T>();
            NormKernels.SegmentSums(xv, rows, d, mean);
            for (int r = 0; r < rows; r++) mean[r] /= d;
            NormKernels.SegmentSquaredDeviations(xv, rows, d, mean, rstd);
            for (int r = 0; r < rows; r++) rstd[r] = 1 / Math.Sqrt(rstd[r] / d + eps);
            NormKernels.RowAffine(xv, rows, d, mean, rstd, gamma is null ? default : gamma.Span<T>(), beta is null ? default : beta.Span<T>(), y.Span<T>());
        }
        var inputs = Inputs(x, gamma, beta);
        if (!Tensor.NeedsGrad(inputs)) return y;
        return y.Record(op, inputs, g =>
        {
            var grads = new Tensor?[inputs.Length];
            var dx = x.RequiresGrad ? Tensor.Uninitialized(op, x, x.ShapeArray) : null;
            var dgamma = gamma is { RequiresGrad: true } ? new double[d] : null;
            var dbeta = beta is { RequiresGrad: true } ? new double[d] : null;
            if (rows > 0)
                NormKernels.RowNormGradient(g.Span<T>(), x.Span<T>(), rows, d, mean, rstd, gamma is null ? default : gamma.Span<T>(),
                    dx is null ? default : dx.Span<T>(), dgamma, dbeta);
            grads[0] = dx;
            int k = 1;
            if (gamma is not null) grads[k++] = dgamma is null ? null : Tensor.FromArray(dgamma).To(gamma.DType).Detach().ReshapeRaw(gamma.ShapeArray);
            if (beta is not null) grads[k] = dbeta is null ? null : Tensor.FromArray(dbeta).To(beta.DType).Detach().ReshapeRaw(beta.ShapeArray);
            return grads;
        });
    }


}

/// <summary>One training batch's statistics for a batch norm's running statistics: per-channel mean and (biased) variance over <see cref="Count"/> values per channel.</summary>
public sealed record RunningStatisticsUpdate(double[] Mean, double[] Var, int Count);
