using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Optim;

/// <summary>
/// Adam (Kingma &amp; Ba, 2015) with optional L2 weight decay added to the gradient and the AMSGrad
/// variant (Reddi et al., 2018): PyTorch's <c>torch.optim.Adam</c>.
/// </summary>
/// <remarks>
/// For each parameter θ with gradient g at step t (γ = lr, β₁, β₂ = betas, λ = weight decay, ε = eps;
/// m₀ = v₀ = v̂max₀ = 0):
/// <code>
/// g_t ← ∇θ
/// if λ ≠ 0:  g_t ← g_t + λ·θ_{t−1}
/// m_t ← β₁·m_{t−1} + (1 − β₁)·g_t
/// v_t ← β₂·v_{t−1} + (1 − β₂)·g_t²
/// if amsgrad:  v̂max_t ← max(v̂max_{t−1}, v_t);  s_t ← v̂max_t
/// else:        s_t ← v_t
/// θ_t ← θ_{t−1} − γ/(1 − β₁ᵗ) · m_t / (√s_t / √(1 − β₂ᵗ) + ε)
/// </code>
/// State: <c>exp_avg</c> (m), <c>exp_avg_sq</c> (v), <c>max_exp_avg_sq</c> (v̂max, amsgrad only),
/// <c>step</c>. Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.
/// The bias corrections are computed in double, the element-wise update in the parameter's type.
/// </remarks>
/// <example><code>var opt = new Adam(model.Parameters(), learningRate: 3e-4);</code></example>
public class Adam : Optimizer
{
    private const int ExpAvg = 0, ExpAvgSq = 1, MaxExpAvgSq = 2;
    private readonly bool _decoupled;

    /// <exception cref="ArgumentException">naming Adam and the argument: negative lr, eps or weight decay, betas outside [0, 1).</exception>
    public Adam(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0, bool amsgrad = false)
        : this("Adam", decoupled: false, parameters, learningRate, beta1, beta2, eps, weightDecay, amsgrad)
    {
    }

    private protected Adam(string name, bool decoupled, IEnumerable<Parameter> parameters, double learningRate, double beta1,
        double beta2, double eps, double weightDecay, bool amsgrad)
        : base(name, parameters, learningRate, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
    {
        _decoupled = decoupled;
        Configure(beta1, beta2, eps, weightDecay, amsgrad);
    }

    /// <summary>β₁, the decay of the first-moment (mean) estimate.</summary>
    public double Beta1 { get; private set; }

    /// <summary>β₂, the decay of the second-moment (uncentred variance) estimate.</summary>
    public double Beta2 { get; private set; }

    /// <summary>ε added to the denominator.</summary>
    public double Eps { get; private set; }

    /// <summary>Weight decay λ (L2 on the gradient for Adam, decoupled for <see cref="AdamW"/>).</summary>
    public double WeightDecay { get; private set; }

    /// <summary>Whether the AMSGrad maximum of the second moment is used.</summary>
    public bool Amsgrad { get; private set; }

    private void Configure(double beta1, double beta2, double eps, double weightDecay, bool amsgrad)
    {
        CheckUnitInterval("beta1", beta1);
        CheckUnitInterval("beta2", beta2);
        CheckNonNegative("eps", eps);
        CheckNonNegative("weight_decay", weightDecay);
        (Beta1, Beta2, Eps, WeightDecay, Amsgrad) = (beta1, beta2, eps, weightDecay, amsgrad);
    }

    /// <inheritdoc />
    protected sealed override void Update(int index, Tensor weight, Tensor gradient)
    {
        var m = State(index, ExpAvg);
        var v = State(index, ExpAvgSq);
        if (weight.Is<float>() && !Amsgrad)
        {
            // One fused pass, run with the step's other float tensors over the kernel threads at the end of the step.
            Fused(weight, gradient, m, v, StepCount(index));
            return;
        }
        var vMax = Amsgrad ? State(index, MaxExpAvgSq) : null;
        var scratch = Scratch(index);
        long t = StepCount(index);
        if (weight.Is<float>())
            Apply<float>(weight.Span<float>(), gradient.Span<float>(), m.Span<float>(), v.Span<float>(), vMax is null ? default : vMax.Span<float>(), scratch.Span<float>(), t);
        else
            Apply<double>(weight.Span<double>(), gradient.Span<double>(), m.Span<double>(), v.Span<double>(), vMax is null ? default : vMax.Span<double>(), scratch.Span<double>(), t);
    }

    /// <summary>This step's fused updates (as <see cref="Sgd"/> keeps its momentum's), run over the kernel threads when the step ends.</summary>
    private FusedPieces<(float[] W, float[] G, float[] M, float[] V, Kernels.AdamConstants C)>? _fused;

    private void Fused(Tensor weight, Tensor gradient, Tensor m, Tensor v, long t)
    {
        double lr = LearningRate;
        // the float constants Apply<float> uses, rounded the same way
        var c = new Kernels.AdamConstants(_decoupled, WeightDecay == 0 ? 0f : _decoupled ? (float)(1 - lr * WeightDecay) : (float)WeightDecay,
            (float)Beta1, (float)(1 - Beta1), (float)Beta2, (float)(1 - Beta2), (float)Math.Sqrt(1 - Math.Pow(Beta2, t)), (float)Eps,
            (float)(-lr / (1 - Math.Pow(Beta1, t))));
        (_fused ??= new(UpdatePiece)).Add(((float[])weight.Storage, (float[])gradient.Storage, (float[])m.Storage, (float[])v.Storage, c), weight.Count);
        if (TrackUpdates) EndStep(); // the tracking reads each parameter right after its update
    }

    /// <inheritdoc />
    protected sealed override void EndStep() => _fused?.Run();

    private static void UpdatePiece((float[] W, float[] G, float[] M, float[] V, Kernels.AdamConstants C) p, int start, int length) =>
        Kernels.OptimizerKernels.Adam(p.W.AsSpan(start, length), p.G.AsSpan(start, length), p.M.AsSpan(start, length), p.V.AsSpan(start, length), p.C);

    private void Apply<T>(Span<T> w, ReadOnlySpan<T> g, Span<T> m, Span<T> v, Span<T> vMax, Span<T> scratch, long t)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double lr = LearningRate;
        ReadOnlySpan<T> grad = g;
        if (WeightDecay != 0)
        {
            if (_decoupled) TensorPrimitives.Multiply(w, T.CreateTruncating(1 - lr * WeightDecay), w);
            else
            {
                TensorPrimitives.MultiplyAdd(w, T.CreateTruncating(WeightDecay), g, scratch);
                grad = scratch;
            }
        }
        TensorPrimitives.Multiply(m, T.CreateTruncating(Beta1), m);
        TensorPrimitives.MultiplyAdd(grad, T.CreateTruncating(1 - Beta1), m, m);
        TensorPrimitives.Multiply(v, T.CreateTruncating(Beta2), v);
        TensorPrimitives.Multiply(grad, grad, scratch); // the gradient is not needed after this
        TensorPrimitives.MultiplyAdd<T>(scratch, T.CreateTruncating(1 - Beta2), v, v);

        double biasCorrection1 = 1 - Math.Pow(Beta1, t);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, t));
        ReadOnlySpan<T> second = v;
        if (Amsgrad)
        {
            TensorPrimitives.Max(vMax, v, vMax);
            second = vMax;
        }
        TensorPrimitives.Sqrt(second, scratch);
        TensorPrimitives.Divide(scratch, T.CreateTruncating(biasCorrection2Sqrt), scratch);
        TensorPrimitives.Add(scratch, T.CreateTruncating(Eps), scratch);
        TensorPrimitives.Divide(m, scratch, scratch);
        TensorPrimitives.MultiplyAdd<T>(scratch, T.CreateTruncating(-lr / biasCorrection1), w, w);
    }

    /// <inheritdoc />
    protected sealed override IEnumerable<(string Name, double Value)> HyperParameters() =>
    [
        ("beta1", Beta1), ("beta2", Beta2), ("eps", Eps), ("weight_decay", WeightDecay), ("amsgrad", Amsgrad ? 1 : 0),
    ];

    /// <inheritdoc />
    protected sealed override void LoadHyperParameters(IReadOnlyDictionary<string, double> values) =>
        Configure(values["beta1"], values["beta2"], values["eps"], values["weight_decay"], values["amsgrad"] != 0);
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter, 2019): Adam with decoupled weight decay, PyTorch's
/// <c>torch.optim.AdamW</c>.
/// </summary>
/// <remarks>
/// As <see cref="Adam"/>, except that the weight decay does not enter the gradient; it shrinks the
/// weights before the Adam update:
/// <code>
/// θ_{t−1} ← θ_{t−1} − γ·λ·θ_{t−1}                       (computed as θ·(1 − γλ))
/// m_t ← β₁·m_{t−1} + (1 − β₁)·g_t
/// v_t ← β₂·v_{t−1} + (1 − β₂)·g_t²
/// s_t ← amsgrad ? max(v̂max_{t−1}, v_t) : v_t
/// θ_t ← θ_{t−1} − γ/(1 − β₁ᵗ) · m_t / (√s_t / √(1 − β₂ᵗ) + ε)
/// </code>
/// Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
/// </remarks>
public sealed class AdamW : Adam
{
    /// <exception cref="ArgumentException">naming AdamW and the argument: negative lr, eps or weight decay, betas outside [0, 1).</exception>
    public AdamW(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 1e-2, bool amsgrad = false)
        : base("AdamW", decoupled: true, parameters, learningRate, beta1, beta2, eps, weightDecay, amsgrad)
    {
    }
}
