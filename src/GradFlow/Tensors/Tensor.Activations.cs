using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

/// <summary>Which form of GELU to compute.</summary>
public enum GeluApproximation
{
    /// <summary>Exact: <c>x·Φ(x) = ½x(1 + erf(x/√2))</c>.</summary>
    None,

    /// <summary>Tanh form: <c>½x(1 + tanh(√(2/π)(x + 0.044715x³)))</c>.</summary>
    Tanh,
}

// Activations as fused ops: one kernel pass forward, one hand-written kernel pass backward
// (ActivationKernels), saving the input or the output, whichever the derivative needs.
public sealed partial class Tensor
{
    /// <summary><c>σ(x) = 1/(1 + e^−x)</c>. Backward: <c>g·y(1 − y)</c> (saves y).</summary>
    public Tensor Sigmoid() => FromOutput("sigmoid",
        ActivationKernels.Sigmoid, ActivationKernels.Sigmoid,
        ActivationKernels.SigmoidBackward, ActivationKernels.SigmoidBackward);

    /// <summary><c>tanh x</c>. Backward: <c>g(1 − y²)</c> (saves y).</summary>
    public Tensor Tanh() => FromOutput("tanh",
        ActivationKernels.Tanh, ActivationKernels.Tanh,
        ActivationKernels.TanhBackward, ActivationKernels.TanhBackward);

    /// <summary><c>max(0, x)</c>. Backward: g where x &gt; 0, else 0 (subgradient 0 at x = 0).</summary>
    public Tensor Relu() => FromInput("relu",
        ActivationKernels.Relu, ActivationKernels.Relu,
        ActivationKernels.ReluBackward, ActivationKernels.ReluBackward);

    /// <summary><c>x</c> for x &gt; 0, else <c>slope·x</c> (PyTorch default slope 0.01). Backward: g for x &gt; 0, else slope·g (slope·g at x = 0).</summary>
    public Tensor LeakyRelu(double negativeSlope = 0.01) => FromInput("leaky_relu",
        (x, y) => ActivationKernels.LeakyRelu(x, (float)negativeSlope, y),
        (x, y) => ActivationKernels.LeakyRelu(x, negativeSlope, y),
        (x, g, d) => ActivationKernels.LeakyReluBackward(x, (float)negativeSlope, g, d),
        (x, g, d) => ActivationKernels.LeakyReluBackward(x, negativeSlope, g, d));

    /// <summary>
    /// PReLU (He et al. 2015): <c>x</c> for x &gt; 0, else <c>a·x</c>, the slopes <paramref name="weight"/>
    /// broadcast to this tensor's shape (the <c>PRelu</c> module reshapes its [C] slopes to [C, 1, …]).
    /// Backward, as PyTorch's: <c>dx = g</c> for x &gt; 0, else <c>a·g</c> (so a·g at x = 0);
    /// <c>da = Σ x·g</c> over the elements with x ≤ 0 (x = 0 contributes 0).
    /// </summary>
    public Tensor PRelu(Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        CheckSameDType("prelu", this, weight);
        var x = this;
        if (!Shapes.Equal(Shapes.Broadcast("prelu", x._shape, weight._shape), x._shape))
            throw new ArgumentException($"prelu: slopes of shape {Shapes.Format(weight._shape)} do not broadcast to the input's shape {Shapes.Format(x._shape)}.");
        var a = ExpandRaw(weight, x._shape);
        var y = Zip("prelu", x, a, ActivationKernels.PRelu, ActivationKernels.PRelu);
        if (!NeedsGrad(x, weight)) return y;
        int[] weightShape = weight._shape;
        return y.Record("prelu", [x, weight], g =>
        {
            Tensor? dx = null;
            if (x.RequiresGrad)
            {
                dx = Uninitialized("prelu", x, x._shape);
                if (dx.Storage is float[]) ActivationKernels.PReluBackward(x.Span<float>(), a.Span<float>(), g.Span<float>(), dx.Span<float>());
                else ActivationKernels.PReluBackward(x.Span<double>(), a.Span<double>(), g.Span<double>(), dx.Span<double>());
            }
            var da = weight.RequiresGrad
                ? SumTo(Zip("prelu", x, g, ActivationKernels.PReluWeightBackward, ActivationKernels.PReluWeightBackward), weightShape)
                : null;
            return [dx, da];
        });
    }

    /// <summary><c>x</c> for x &gt; 0, else <c>α(eˣ − 1)</c> (Clevert et al. 2016; α = 1). Backward: g for x &gt; 0, else g(y + α) (α·g at x = 0; g at a NaN x, as PyTorch).</summary>
    public Tensor Elu(double alpha = 1.0)
    {
        var x = this;
        var y = Map("elu", x, (s, o) => ActivationKernels.Elu(s, (float)alpha, o), (s, o) => ActivationKernels.Elu(s, alpha, o));
        if (!NeedsGrad(x)) return y;
        return y.Record("elu", [x], g =>
        {
            var dx = Uninitialized("elu", x, x._shape);
            if (dx.Storage is float[]) ActivationKernels.EluBackward(x.Span<float>(), y.Span<float>(), (float)alpha, g.Span<float>(), dx.Span<float>());
            else ActivationKernels.EluBackward(x.Span<double>(), y.Span<double>(), alpha, g.Span<double>(), dx.Span<double>());
            return [dx];
        });
    }

    /// <summary>
    /// <c>λ·x</c> for x &gt; 0, else <c>λα(eˣ − 1)</c>, λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017,
    /// self-normalising). Backward: λg for x &gt; 0, else g·λαeˣ (λα·g at x = 0; λg at a NaN x, as PyTorch).
    /// </summary>
    public Tensor Selu() => FromInput("selu",
        ActivationKernels.Selu, ActivationKernels.Selu,
        ActivationKernels.SeluBackward, ActivationKernels.SeluBackward);

    /// <summary>
    /// GELU (Hendrycks and Gimpel 2016): exact <c>x·Φ(x)</c>, or its tanh approximation. Backward:
    /// <c>g(Φ(x) + x·φ(x))</c>, or the derivative of the tanh form.
    /// </summary>
    public Tensor Gelu(GeluApproximation approximate = GeluApproximation.None) => approximate == GeluApproximation.Tanh
        ? FromInput("gelu_tanh", ActivationKernels.GeluTanh, ActivationKernels.GeluTanh,
            ActivationKernels.GeluTanhBackward, ActivationKernels.GeluTanhBackward)
        : Storage is float[] && NeedsGrad(this) ? GeluKeepingDerivative()
        : FromInput("gelu", ActivationKernels.Gelu, ActivationKernels.Gelu,
            ActivationKernels.GeluBackward, ActivationKernels.GeluBackward);

    /// <summary>
    /// float32 GELU that is differentiated: the forward keeps GELU′(x), computed from the same Φ as the output, so the
    /// backward is <c>g·GELU′(x)</c> (the same bits as evaluating GELU′ there) instead of a second evaluation of Φ, the
    /// costly part (transformer-small: about 2.5 % of a step). The derivative goes back to the pool when the node is
    /// released (after the backward pass, unless the graph is retained).
    /// </summary>
    private Tensor GeluKeepingDerivative()
    {
        var x = this;
        var y = Uninitialized("gelu", x, x._shape);
        var d = Uninitialized("gelu", x, x._shape);
        if (IsLarge(y.Count)) GeluInChunks(x, y, d);
        else ActivationKernels.GeluWithDerivative(x.Span<float>(), y.Span<float>(), d.Span<float>());
        return y.Record("gelu", [x], g => [Zip("gelu", d, g, TensorPrimitives.Multiply, TensorPrimitives.Multiply)], onRelease: d.ReleaseStorage);
    }

    private static void GeluInChunks(Tensor x, Tensor y, Tensor d) =>
        InChunks(y.Count, (lo, len) => ActivationKernels.GeluWithDerivative(x.Span<float>().Slice(lo, len), y.Span<float>().Slice(lo, len), d.Span<float>().Slice(lo, len)));

    /// <summary>SiLU / Swish-1: <c>x·σ(x)</c>. Backward: <c>g·σ(x)(1 + x(1 − σ(x)))</c>.</summary>
    public Tensor Silu() => FromInput("silu",
        ActivationKernels.Silu, ActivationKernels.Silu,
        ActivationKernels.SiluBackward, ActivationKernels.SiluBackward);

    /// <summary>Swish (Ramachandran et al. 2017) with β = 1, which is <see cref="Silu"/>.</summary>
    public Tensor Swish() => Silu();

    /// <summary>Mish (Misra 2019): <c>x·tanh(softplus(x))</c>. Backward: <c>g(t + x·σ(x)(1 − t²))</c>, t = tanh(softplus x).</summary>
    public Tensor Mish() => FromInput("mish",
        ActivationKernels.Mish, ActivationKernels.Mish,
        ActivationKernels.MishBackward, ActivationKernels.MishBackward);

    /// <summary>
    /// <c>(1/β)·log(1 + e^(βx))</c>, and x where βx &gt; threshold (PyTorch: β = 1, threshold 20).
    /// Backward: <c>g·σ(βx)</c> (g above the threshold).
    /// </summary>
    public Tensor Softplus(double beta = 1.0, double threshold = 20.0)
    {
        if (!(beta > 0)) throw new ArgumentException($"softplus: beta must be positive, got {beta}.");
        return FromInput("softplus",
            (x, y) => ActivationKernels.Softplus(x, (float)beta, (float)threshold, y),
            (x, y) => ActivationKernels.Softplus(x, beta, threshold, y),
            (x, g, d) => ActivationKernels.SoftplusBackward(x, (float)beta, (float)threshold, g, d),
            (x, g, d) => ActivationKernels.SoftplusBackward(x, beta, threshold, g, d));
    }

    /// <summary><c>relu6(x + 3)/6</c>: 0 below −3, 1 above 3. Backward: g/6 for −3 &lt; x &lt; 3, else 0 (0 at ±3, as PyTorch).</summary>
    public Tensor HardSigmoid() => FromInput("hard_sigmoid",
        ActivationKernels.HardSigmoid, ActivationKernels.HardSigmoid,
        ActivationKernels.HardSigmoidBackward, ActivationKernels.HardSigmoidBackward);

    /// <summary>
    /// <c>clamp(x, min, max)</c> (defaults −1, 1; <c>HardTanh(0, 6)</c> is ReLU6). Backward: g for
    /// min &lt; x &lt; max, else 0 (0 at x = min and x = max, as PyTorch's hardtanh and relu6).
    /// </summary>
    public Tensor HardTanh(double min = -1.0, double max = 1.0)
    {
        if (!(min < max)) throw new ArgumentException($"hard_tanh: min {min} must be below max {max}.");
        return FromInput("hard_tanh",
            (x, y) => ActivationKernels.HardTanh(x, (float)min, (float)max, y),
            (x, y) => ActivationKernels.HardTanh(x, min, max, y),
            (x, g, d) => ActivationKernels.HardTanhBackward(x, (float)min, (float)max, g, d),
            (x, g, d) => ActivationKernels.HardTanhBackward(x, min, max, g, d));
    }

    /// <summary>A fused activation whose backward needs the input: backward(x, g) → dx.</summary>
    private Tensor FromInput(string op, SpanMap<float> f, SpanMap<double> d, SpanZip<float> bf, SpanZip<double> bd)
    {
        var x = this;
        var y = Map(op, x, f, d);
        return NeedsGrad(x) ? y.Record(op, [x], g => [Zip(op, x, g, bf, bd)]) : y;
    }

    /// <summary>A fused activation whose backward needs the output: backward(y, g) → dx.</summary>
    private Tensor FromOutput(string op, SpanMap<float> f, SpanMap<double> d, SpanZip<float> bf, SpanZip<double> bd)
    {
        var x = this;
        var y = Map(op, x, f, d);
        return NeedsGrad(x) ? y.Record(op, [x], g => [Zip(op, y, g, bf, bd)]) : y;
    }
}
