using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Optim;

/// <summary>
/// Adagrad (Duchi, Hazan &amp; Singer, 2011): PyTorch's <c>torch.optim.Adagrad</c>.
/// </summary>
/// <remarks>
/// For each parameter θ with gradient g at step t (γ = lr, η = lr decay, λ = weight decay,
/// τ = initial accumulator value, ε = eps; s₀ = τ):
/// <code>
/// g_t ← ∇θ
/// if λ ≠ 0:  g_t ← g_t + λ·θ_{t−1}
/// γ̃ ← γ / (1 + (t − 1)·η)
/// s_t ← s_{t−1} + g_t²
/// θ_t ← θ_{t−1} − γ̃ · g_t / (√s_t + ε)
/// </code>
/// State: <c>sum</c> (s), <c>step</c>. Defaults as PyTorch: lr 1e-2, η = λ = τ = 0, ε 1e-10.
/// </remarks>
public sealed class Adagrad : Optimizer
{
    private const int Sum = 0;

    /// <exception cref="ArgumentException">naming Adagrad and the argument, for negative values.</exception>
    public Adagrad(IEnumerable<Parameter> parameters, double learningRate = 1e-2, double lrDecay = 0, double weightDecay = 0,
        double initialAccumulatorValue = 0, double eps = 1e-10)
        : base("Adagrad", parameters, learningRate, ["sum"])
    {
        Configure(lrDecay, weightDecay, initialAccumulatorValue, eps);
    }

    /// <summary>Learning-rate decay η.</summary>
    public double LrDecay { get; private set; }

    /// <summary>L2 penalty λ added to the gradient.</summary>
    public double WeightDecay { get; private set; }

    /// <summary>Initial value τ of the squared-gradient sum.</summary>
    public double InitialAccumulatorValue { get; private set; }

    /// <summary>ε added to the denominator.</summary>
    public double Eps { get; private set; }

    private void Configure(double lrDecay, double weightDecay, double initialAccumulatorValue, double eps)
    {
        CheckNonNegative("lr_decay", lrDecay);
        CheckNonNegative("weight_decay", weightDecay);
        CheckNonNegative("initial_accumulator_value", initialAccumulatorValue);
        CheckNonNegative("eps", eps);
        (LrDecay, WeightDecay, InitialAccumulatorValue, Eps) = (lrDecay, weightDecay, initialAccumulatorValue, eps);
    }

    /// <inheritdoc />
    protected override void Update(int index, Tensor weight, Tensor gradient)
    {
        var sum = State(index, Sum, InitialAccumulatorValue);
        Tensor s0 = Scratch(index, 0), s1 = Scratch(index, 1);
        double clr = LearningRate / (1 + (StepCount(index) - 1) * LrDecay);
        if (weight.Is<float>())
            Apply<float>(weight.Span<float>(), gradient.Span<float>(), sum.Span<float>(), s0.Span<float>(), s1.Span<float>(), clr);
        else
            Apply<double>(weight.Span<double>(), gradient.Span<double>(), sum.Span<double>(), s0.Span<double>(), s1.Span<double>(), clr);
    }

    private void Apply<T>(Span<T> w, ReadOnlySpan<T> g, Span<T> sum, Span<T> s0, Span<T> s1, double clr)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ReadOnlySpan<T> grad = g;
        if (WeightDecay != 0)
        {
            TensorPrimitives.MultiplyAdd(w, T.CreateTruncating(WeightDecay), g, s0);
            grad = s0;
        }
        TensorPrimitives.Multiply(grad, grad, s1);
        TensorPrimitives.Add(sum, s1, sum);
        TensorPrimitives.Sqrt(sum, s1);
        TensorPrimitives.Add(s1, T.CreateTruncating(Eps), s1);
        TensorPrimitives.Divide(grad, s1, s1);
        TensorPrimitives.MultiplyAdd<T>(s1, T.CreateTruncating(-clr), w, w);
    }

    /// <inheritdoc />
    protected override IEnumerable<(string Name, double Value)> HyperParameters() =>
    [
        ("lr_decay", LrDecay), ("weight_decay", WeightDecay), ("initial_accumulator_value", InitialAccumulatorValue), ("eps", Eps),
    ];

    /// <inheritdoc />
    protected override void LoadHyperParameters(IReadOnlyDictionary<string, double> values) =>
        Configure(values["lr_decay"], values["weight_decay"], values["initial_accumulator_value"], values["eps"]);
}
