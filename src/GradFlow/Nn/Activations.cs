using System.Globalization;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>Factory and facts for <see cref="Activation"/>.</summary>
public static class Activations
{
    /// <summary>A new module computing <paramref name="kind"/> with PyTorch's default arguments.</summary>
    public static Module Create(Activation kind) => kind switch
    {
        Activation.Identity => new Identity(),
        Activation.Sigmoid => new Sigmoid(),
        Activation.Tanh => new Tanh(),
        Activation.Relu => new Relu(),
        Activation.LeakyRelu => new LeakyRelu(),
        Activation.PRelu => new PRelu(),
        Activation.Elu => new Elu(),
        Activation.Selu => new Selu(),
        Activation.Gelu => new Gelu(),
        Activation.GeluTanh => new Gelu(GeluApproximation.Tanh),
        Activation.Silu => new Silu(),
        Activation.Mish => new Mish(),
        Activation.Softplus => new Softplus(),
        Activation.HardSigmoid => new HardSigmoid(),
        Activation.HardTanh => new HardTanh(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown activation"),
    };

    /// <summary>The <see cref="Activation"/> a module computes, or null when it is not an activation module.</summary>
    public static Activation? KindOf(Module module) => module switch
    {
        Identity => Activation.Identity,
        Sigmoid => Activation.Sigmoid,
        Tanh => Activation.Tanh,
        Relu => Activation.Relu,
        LeakyRelu => Activation.LeakyRelu,
        PRelu => Activation.PRelu,
        Elu => Activation.Elu,
        Selu => Activation.Selu,
        Gelu g => g.Approximate == GeluApproximation.Tanh ? Activation.GeluTanh : Activation.Gelu,
        Silu => Activation.Silu,
        Mish => Activation.Mish,
        Softplus => Activation.Softplus,
        HardSigmoid => Activation.HardSigmoid,
        HardTanh => Activation.HardTanh,
        _ => null,
    };

    /// <summary>Whether the activation saturates on both sides (its derivative tends to 0 for large |x|): sigmoid, tanh and their hard forms.</summary>
    public static bool Saturates(Activation kind) =>
        kind is Activation.Sigmoid or Activation.Tanh or Activation.HardSigmoid or Activation.HardTanh;

    /// <summary>Whether it belongs to the ReLU family (units can die: output exactly 0 on a half-line).</summary>
    public static bool IsReluFamily(Activation kind) => kind is Activation.Relu;
}

/// <summary><c>σ(x) = 1/(1 + e^−x)</c>, as <c>torch.nn.Sigmoid</c>.</summary>
public sealed class Sigmoid : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Sigmoid();
}

/// <summary><c>tanh(x)</c>, as <c>torch.nn.Tanh</c>.</summary>
public sealed class Tanh : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Tanh();
}

/// <summary><c>max(0, x)</c>, as <c>torch.nn.ReLU</c> (Nair and Hinton 2010). Gradient 0 at x = 0.</summary>
public sealed class Relu : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Relu();
}

/// <summary><c>x</c> for x &gt; 0, else <c>negativeSlope·x</c> (default 0.01), as <c>torch.nn.LeakyReLU</c> (Maas et al. 2013). Gradient negativeSlope at x = 0.</summary>
public sealed class LeakyRelu(double negativeSlope = 0.01) : Module
{
    /// <summary>The slope for x &lt; 0.</summary>
    public double NegativeSlope { get; } = negativeSlope;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.LeakyRelu(NegativeSlope);

    /// <inheritdoc />
    protected override string ExtraRepr() => "negative_slope=" + NegativeSlope.ToString(CultureInfo.InvariantCulture);
}

/// <summary><c>x</c> for x &gt; 0, else <c>α(eˣ − 1)</c> (default α = 1), as <c>torch.nn.ELU</c> (Clevert et al. 2016). Gradient α at x = 0.</summary>
public sealed class Elu(double alpha = 1.0) : Module
{
    /// <summary>α.</summary>
    public double Alpha { get; } = alpha;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Elu(Alpha);

    /// <inheritdoc />
    protected override string ExtraRepr() => "alpha=" + Alpha.ToString(CultureInfo.InvariantCulture);
}

/// <summary>SELU, <c>λ·elu(x, α)</c> with λ ≈ 1.0507, α ≈ 1.6733, as <c>torch.nn.SELU</c> (Klambauer et al. 2017). Gradient λα at x = 0. Pair with LeCun-normal initialisation.</summary>
public sealed class Selu : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Selu();
}

/// <summary>GELU, <c>x·Φ(x)</c> or its tanh approximation, as <c>torch.nn.GELU</c> (Hendrycks and Gimpel 2016).</summary>
public sealed class Gelu(GeluApproximation approximate = GeluApproximation.None) : Module
{
    /// <summary>Exact or tanh form.</summary>
    public GeluApproximation Approximate { get; } = approximate;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Gelu(Approximate);

    /// <inheritdoc />
    protected override string ExtraRepr() => Approximate == GeluApproximation.Tanh ? "approximate='tanh'" : "approximate='none'";
}

/// <summary>SiLU / Swish-1, <c>x·σ(x)</c>, as <c>torch.nn.SiLU</c> (Ramachandran et al. 2017).</summary>
public sealed class Silu : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Silu();
}

/// <summary>Mish, <c>x·tanh(softplus(x))</c>, as <c>torch.nn.Mish</c> (Misra 2019).</summary>
public sealed class Mish : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Mish();
}

/// <summary><c>(1/β)·log(1 + e^(βx))</c> (β = 1, linear above threshold 20), as <c>torch.nn.Softplus</c>.</summary>
public sealed class Softplus(double beta = 1.0, double threshold = 20.0) : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.Softplus(beta, threshold);

    /// <inheritdoc />
    protected override string ExtraRepr() => string.Create(CultureInfo.InvariantCulture, $"beta={beta}, threshold={threshold}");
}

/// <summary><c>relu6(x + 3)/6</c>, as <c>torch.nn.Hardsigmoid</c>. Gradient 0 at x = ±3.</summary>
public sealed class HardSigmoid : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.HardSigmoid();
}

/// <summary><c>clamp(x, min, max)</c> (−1, 1), as <c>torch.nn.Hardtanh</c> (with (0, 6), <c>torch.nn.ReLU6</c>). Gradient 0 at x = min and x = max.</summary>
public sealed class HardTanh(double min = -1.0, double max = 1.0) : Module
{
    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => input.HardTanh(min, max);

    /// <inheritdoc />
    protected override string ExtraRepr() => string.Create(CultureInfo.InvariantCulture, $"min_val={min}, max_val={max}");
}

/// <summary>
/// PReLU (He et al. 2015): <c>x</c> for x &gt; 0, else <c>a·x</c> with a learnt slope a (parameter
/// <c>weight</c>, shape [numParameters], initial value 0.25), as <c>torch.nn.PReLU</c>. With
/// numParameters = C the slope is per channel (dimension 1 of the input).
/// One fused op (<see cref="Tensor.PRelu"/>) with PyTorch's gradients: <c>∂/∂x = 1</c> for x &gt; 0,
/// else <c>a</c>; <c>∂/∂a = 0</c> for x &gt; 0, else <c>x</c>. At x = 0 the subgradient is a w.r.t. x and
/// 0 w.r.t. a.
/// </summary>
public sealed class PRelu : Module
{
    private readonly double _init;

    /// <summary>A PReLU with <paramref name="numParameters"/> slopes (1, or the channel count) initialised to <paramref name="init"/>.</summary>
    public PRelu(int numParameters = 1, double init = 0.25)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numParameters, 1);
        _init = init;
        Weight = RegisterParameter("weight", Tensor.Full(init, numParameters));
    }

    /// <summary>The slopes a, shape [numParameters].</summary>
    public Parameter Weight { get; }

    /// <inheritdoc />
    public override void ResetParameters()
    {
        using (GradMode.NoGrad()) Weight.Data.FillInPlace(_init);
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        int c = Weight.Count;
        Tensor a = Weight;
        if (c > 1)
        {
            if (input.Rank < 2 || input.Shape[1] != c)
                throw new ArgumentException($"PReLU: {c} slopes need the input's dimension 1 to be {c}; got shape {Shapes.Format(input.Shape)}.");
            var shape = new int[input.Rank - 1];
            shape[0] = c;
            for (int i = 1; i < shape.Length; i++) shape[i] = 1;
            a = a.Reshape(shape);
        }
        if (a.DType != input.DType) a = a.To(input.DType);
        return input.PRelu(a);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"num_parameters={Weight.Count}";
}
