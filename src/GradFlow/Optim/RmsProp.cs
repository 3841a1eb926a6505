using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Optim;

/// <summary>
/// RMSprop (Hinton, Lecture 6e; centred form after Graves, 2013): PyTorch's <c>torch.optim.RMSprop</c>.
/// </summary>
/// <remarks>
/// For each parameter θ with gradient g at step t (γ = lr, α = smoothing constant, λ = weight decay,
/// μ = momentum, ε = eps; v₀ = ḡ₀ = b₀ = 0):
/// <code>
/// g_t ← ∇θ
/// if λ ≠ 0:  g_t ← g_t + λ·θ_{t−1}
/// v_t ← α·v_{t−1} + (1 − α)·g_t²
/// if centered:  ḡ_t ← α·ḡ_{t−1} + (1 − α)·g_t;  ṽ_t ← max(v_t − ḡ_t², 0)
/// else:         ṽ_t ← v_t
/// if μ &gt; 0:  b_t ← μ·b_{t−1} + g_t/(√ṽ_t + ε);  θ_t ← θ_{t−1} − γ·b_t
/// else:      θ_t ← θ_{t−1} − γ·g_t/(√ṽ_t + ε)
/// </code>
/// State: <c>square_avg</c> (v), <c>momentum_buffer</c> (b, μ &gt; 0), <c>grad_avg</c> (ḡ, centered), <c>step</c>.
/// Defaults as PyTorch: lr 1e-2, α 0.99, ε 1e-8, λ = μ = 0, not centred. We differ from PyTorch in
/// one place: the centred variance is clamped at 0, so rounding (v_t − ḡ_t² is ≥ 0 in exact
/// arithmetic) cannot make its square root NaN.
/// </remarks>
public sealed class RmsProp : Optimizer
{
    private const int SquareAvg = 0, MomentumBuffer = 1, GradAvg = 2;

    /// <exception cref="ArgumentException">naming RMSprop and the argument: negative lr, eps, momentum or weight decay, alpha outside [0, 1).</exception>
    public RmsProp(IEnumerable<Parameter> parameters, double learningRate = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weightDecay = 0, double momentum = 0, bool centered = false)
        : base("RMSprop", parameters, learningRate, ["square_avg", "momentum_buffer", "grad_avg"])
    {
        Configure(alpha, eps, weightDecay, momentum, centered);
    }

    /// <summary>Smoothing constant α of the squared-gradient average.</summary>
    public double Alpha { get; private set; }

    /// <summary>ε added to the denominator.</summary>
    public double Eps { get; private set; }

    /// <summary>L2 penalty λ added to the gradient.</summary>
    public double WeightDecay { get; private set; }

    /// <summary>Momentum factor μ.</summary>
    public double Momentum { get; private set; }

    /// <summary>Whether the gradient is normalised by an estimate of its variance rather than its second moment.</summary>
    public bool Centered { get; private set; }

    private void Configure(double alpha, double eps, double weightDecay, double momentum, bool centered)
    {
        CheckUnitInterval("alpha", alpha);
        CheckNonNegative("eps", eps);
        CheckNonNegative("weight_decay", weightDecay);
        CheckNonNegative("momentum", momentum);
        (Alpha, Eps, WeightDecay, Momentum, Centered) = (alpha, eps, weightDecay, momentum, centered);
    }

    /// <inheritdoc />
    protected override void Update(int index, Tensor weight, Tensor gradient)
    {
        var v = State(index, SquareAvg);
        var b = Momentum > 0 ? State(index, MomentumBuffer) : null;
        var gAvg = Centered ? State(index, GradAvg) : null;
        Tensor s0 = Scratch(index, 0), s1 = Scratch(index, 1);
        if (weight.Is<float>())
            Apply<float>(weight.Span<float>(), gradient.Span<float>(), v.Span<float>(), b is null ? default : b.Span<float>(),
                gAvg is null ? default : gAvg.Span<float>(), s0.Span<float>(), s1.Span<float>());
        else
            Apply<double>(weight.Span<double>(), gradient.Span<double>(), v.Span<double>(), b is null ? default : b.Span<double>(),
                gAvg is null ? default : gAvg.Span<double>(), s0.Span<double>(), s1.Span<double>());
    }

    private void Apply<T>(Span<T> w, ReadOnlySpan<T> g, Span<T> v, Span<T> b, Span<T> gAvg, Span<T> s0, Span<T> s1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ReadOnlySpan<T> grad = g;
        if (WeightDecay != 0)
        {
            TensorPrimitives.MultiplyAdd(w, T.CreateTruncating(WeightDecay), g, s0);
            grad = s0;
        }
        T oneMinusAlpha = T.CreateTruncating(1 - Alpha);
        TensorPrimitives.Multiply(v, T.CreateTruncating(Alpha), v);
        TensorPrimitives.Multiply(grad, grad, s1);
        TensorPrimitives.MultiplyAdd<T>(s1, oneMinusAlpha, v, v);
        if (Centered)
        {
            TensorPrimitives.Multiply(gAvg, T.CreateTruncating(Alpha), gAvg);
            TensorPrimitives.MultiplyAdd(grad, oneMinusAlpha, gAvg, gAvg);
            TensorPrimitives.Multiply(gAvg, gAvg, s1);
            TensorPrimitives.Subtract(v, s1, s1);
            TensorPrimitives.Max(s1, T.Zero, s1);
            TensorPrimitives.Sqrt(s1, s1);
        }
        else TensorPrimitives.Sqrt(v, s1);
        TensorPrimitives.Add(s1, T.CreateTruncating(Eps), s1);
        TensorPrimitives.Divide(grad, s1, s1);
        T minusLr = T.CreateTruncating(-LearningRate);
        if (Momentum > 0)
        {
            TensorPrimitives.Multiply(b, T.CreateTruncating(Momentum), b);
            TensorPrimitives.Add(b, s1, b);
            TensorPrimitives.MultiplyAdd(b, minusLr, w, w);
        }
        else TensorPrimitives.MultiplyAdd<T>(s1, minusLr, w, w);
    }

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> HyperParameters() =>
    [
        ("alpha", Alpha), ("eps", Eps), ("weight_decay", WeightDecay), ("momentum", Momentum), ("centered", Centered ? 1 : 0),
    ];

    /// <inheritdoc />
    protected override void LoadHyperParameters(IReadOnlyDictionary<string, double> values) =>
        Configure(values["alpha"], values["eps"], values["weight_decay"], values["momentum"], values["centered"] != 0);
}
