using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Optim;

/// <summary>
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight
/// decay: PyTorch's <c>torch.optim.SGD</c>.
/// </summary>
/// <remarks>
/// For each parameter θ with gradient g at step t (γ = lr, λ = weight decay, μ = momentum,
/// τ = dampening):
/// <code>
/// g_t ← ∇θ
/// if λ ≠ 0:  g_t ← g_t + λ·θ_{t−1}
/// if μ ≠ 0:
///     if t = 1:  b_t ← g_t                              (first step: the buffer is the gradient)
///     else:      b_t ← μ·b_{t−1} + (1 − τ)·g_t
///     if nesterov:  g_t ← g_t + μ·b_t
///     else:         g_t ← b_t
/// θ_t ← θ_{t−1} − γ·g_t
/// </code>
/// State: <c>momentum_buffer</c> (b), only when μ ≠ 0. Defaults as PyTorch: lr 1e-3, μ = τ = λ = 0.
/// Nesterov needs μ &gt; 0 and τ = 0. Like PyTorch, SGD keeps no step count in its state dict.
/// </remarks>
/// <example><code>var opt = new Sgd(model.Parameters(), learningRate: 0.1, momentum: 0.9, nesterov: true);</code></example>
public sealed class Sgd : Optimizer
{
    private const int MomentumBuffer = 0;

    /// <exception cref="ArgumentException">naming SGD and the argument, for negative values, or Nesterov without momentum or with dampening.</exception>
    public Sgd(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false)
        : base("SGD", parameters, learningRate, ["momentum_buffer"])
    {
        Configure(momentum, dampening, weightDecay, nesterov);
    }

    /// <summary>Momentum factor μ.</summary>
    public double Momentum { get; private set; }

    /// <summary>Dampening τ of the gradient added to the momentum buffer.</summary>
    public double Dampening { get; private set; }

    /// <summary>L2 penalty λ added to the gradient.</summary>
    public double WeightDecay { get; private set; }

    /// <summary>Whether Nesterov momentum is used.</summary>
    public bool Nesterov { get; private set; }

    private void Configure(double momentum, double dampening, double weightDecay, bool nesterov)
    {
        CheckNonNegative("momentum", momentum);
        CheckNonNegative("dampening", dampening);
        CheckNonNegative("weight_decay", weightDecay);
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException($"SGD: Nesterov momentum requires momentum > 0 and dampening = 0; got momentum {momentum}, dampening {dampening}.", nameof(nesterov));
        (Momentum, Dampening, WeightDecay, Nesterov) = (momentum, dampening, weightDecay, nesterov);
    }

    /// <inheritdoc />
    protected override void Update(int index, Tensor weight, Tensor gradient)
    {
        bool first = !HasState(index, MomentumBuffer);
        var buffer = Momentum != 0 ? State(index, MomentumBuffer) : null;
        if (weight.Is<float>() && buffer is not null && !first && WeightDecay == 0 && !Nesterov)
        {
            // The common case in one fused pass, run with the step's other such tensors over the
            // kernel threads (element-wise, so any split gives the same bits).
            FusedMomentum(weight, gradient, buffer);
            return;
        }
        var scratch = Scratch(index);
        if (weight.Is<float>()) Apply<float>(weight.Span<float>(), gradient.Span<float>(), buffer is null ? default : buffer.Span<float>(), scratch.Span<float>(), first);
        else Apply<double>(weight.Span<double>(), gradient.Span<double>(), buffer is null ? default : buffer.Span<double>(), scratch.Span<double>(), first);
    }

    /// <summary>This step's fused momentum updates, run over the kernel threads when the step ends.</summary>
    private FusedPieces<(float[] W, float[] G, float[] B)>? _fused;
    private float _mu, _s, _negLr;

    private void FusedMomentum(Tensor weight, Tensor gradient, Tensor buffer)
    {
        (_mu, _s, _negLr) = ((float)Momentum, (float)(1 - Dampening), (float)-LearningRate);
        (_fused ??= new(UpdatePiece)).Add(((float[])weight.Storage, (float[])gradient.Storage, (float[])buffer.Storage), weight.Count);
        if (TrackUpdates) EndStep(); // the tracking reads each parameter right after its update
    }

    /// <inheritdoc />
    protected override void EndStep() => _fused?.Run();

    private void UpdatePiece((float[] W, float[] G, float[] B) p, int start, int length) =>
        OptimizerKernels.SgdMomentum(p.W.AsSpan(start, length), p.G.AsSpan(start, length), p.B.AsSpan(start, length), _mu, _s, _negLr);

    private void Apply<T>(Span<T> w, ReadOnlySpan<T> g, Span<T> buffer, Span<T> scratch, bool first)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ReadOnlySpan<T> direction = g;
        if (WeightDecay != 0)
        {
            TensorPrimitives.MultiplyAdd(w, T.CreateTruncating(WeightDecay), g, scratch);
            direction = scratch;
        }
        if (Momentum != 0)
        {
            if (first) direction.CopyTo(buffer);
            else
            {
                TensorPrimitives.Multiply(buffer, T.CreateTruncating(Momentum), buffer);
                TensorPrimitives.MultiplyAdd(direction, T.CreateTruncating(1 - Dampening), buffer, buffer);
            }
            if (Nesterov)
            {
                TensorPrimitives.MultiplyAdd(buffer, T.CreateTruncating(Momentum), direction, scratch);
                direction = scratch;
            }
            else direction = buffer;
        }
        TensorPrimitives.MultiplyAdd(direction, T.CreateTruncating(-LearningRate), w, w);
    }

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> HyperParameters() =>
    [
        ("momentum", Momentum), ("dampening", Dampening), ("weight_decay", WeightDecay), ("nesterov", Nesterov ? 1 : 0),
    ];

    /// <inheritdoc />
    protected override void LoadHyperParameters(IReadOnlyDictionary<string, double> values) =>
        Configure(values["momentum"], values["dampening"], values["weight_decay"], values["nesterov"] != 0);
}
