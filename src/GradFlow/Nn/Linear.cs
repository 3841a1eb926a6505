using GradFlow.Kernels;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// A fully connected layer, as <c>torch.nn.Linear</c>: <c>y = x·Wᵀ + b</c>, input [..., in],
/// output [..., out]; <c>weight</c> [out, in] and <c>bias</c> [out]. Default initialisation (PyTorch's):
/// both U(−1/√in, 1/√in) — Kaiming-uniform with a = √5 for the weight. Use <see cref="Init"/> for the
/// schemes that keep gradients flowing (Xavier, He, LeCun, orthogonal, LSUV).
/// </summary>
/// <example><code>var fc = new Linear(784, 256, new Generator(0));</code></example>
public sealed class Linear : Module
{
    private readonly Generator _generator;

    /// <summary>A linear layer from <paramref name="inFeatures"/> to <paramref name="outFeatures"/>, initialised from <paramref name="generator"/>.</summary>
    public Linear(int inFeatures, int outFeatures, Generator generator, bool bias = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Tensor.Zeros(outFeatures, inFeatures));
        if (bias) Bias = RegisterParameter("bias", Tensor.Zeros(outFeatures));
        ResetParameters();
    }

    /// <summary>Input size.</summary>
    public int InFeatures { get; }

    /// <summary>Output size.</summary>
    public int OutFeatures { get; }

    /// <summary>W, [out, in].</summary>
    public Parameter Weight { get; }

    /// <summary>b, [out], or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>PyTorch's default: weight Kaiming-uniform (a = √5, i.e. U(±1/√in)), bias U(±1/√in).</summary>
    public override void ResetParameters()
    {
        Init.KaimingUniform(Weight.Data, _generator, a: Math.Sqrt(5));
        if (Bias is not null)
        {
            double bound = 1 / Math.Sqrt(InFeatures);
            Init.Uniform(Bias.Data, _generator, -bound, bound);
        }
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => ForwardFused(input, FusedActivation.None);

    /// <summary>
    /// <c>act(x·Wᵀ + b)</c> in one op (<see cref="Tensor.Linear(Tensor, Tensor, Tensor?, FusedActivation)"/>),
    /// bypassing <see cref="Module.Forward"/>: the caller has checked that no hook watches this module.
    /// </summary>
    internal Tensor ForwardFused(Tensor input, FusedActivation activation)
    {
        Tensor w = Weight;
        Tensor? b = Bias?.Data;
        if (input.DType != w.DType)
        {
            w = w.To(input.DType);
            b = b?.To(input.DType);
        }
        return Tensor.Linear(input, w, b, activation);
    }

    /// <inheritdoc />
    protected override string ExtraRepr() => $"in_features={InFeatures}, out_features={OutFeatures}, bias={(Bias is null ? "False" : "True")}";
}
