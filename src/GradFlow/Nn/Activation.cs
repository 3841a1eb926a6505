namespace GradFlow.Nn;

/// <summary>The activation functions GradFlow offers as modules (and in model specs).</summary>
public enum Activation
{
    /// <summary>No nonlinearity.</summary>
    Identity,
    /// <summary>Logistic sigmoid; saturates, derivative at most 1/4.</summary>
    Sigmoid,
    /// <summary>Hyperbolic tangent; saturates, derivative at most 1.</summary>
    Tanh,
    /// <summary>max(0, x).</summary>
    Relu,
    /// <summary>Leaky ReLU, negative slope 0.01.</summary>
    LeakyRelu,
    /// <summary>Learnable-slope ReLU (He et al. 2015), initial slope 0.25.</summary>
    PRelu,
    /// <summary>ELU, α = 1.</summary>
    Elu,
    /// <summary>SELU (self-normalising).</summary>
    Selu,
    /// <summary>GELU, exact erf form.</summary>
    Gelu,
    /// <summary>GELU, tanh approximation.</summary>
    GeluTanh,
    /// <summary>SiLU / Swish-1, x·σ(x).</summary>
    Silu,
    /// <summary>Mish, x·tanh(softplus(x)).</summary>
    Mish,
    /// <summary>Softplus, β = 1.</summary>
    Softplus,
    /// <summary>Hard sigmoid, relu6(x + 3)/6.</summary>
    HardSigmoid,
    /// <summary>Hard tanh, clamp(x, −1, 1).</summary>
    HardTanh,
}
