using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// A 2-D convolution layer over NCHW images, as <c>torch.nn.Conv2d</c>:
/// <c>y = conv(x, W) + b</c> (<see cref="Tensor.Conv2d"/>), input [N, C_in, H, W] (or [C_in, H, W]),
/// output [N, C_out, OH, OW], <c>OH = ⌊(H + 2·padding − dilation·(KH − 1) − 1)/stride⌋ + 1</c>.
/// Parameters <c>weight</c> [C_out, C_in/groups, KH, KW] and <c>bias</c> [C_out] (optional).
/// Defaults as PyTorch: stride 1, padding 0, dilation 1, groups 1, bias. Initialisation (PyTorch's):
/// weight Kaiming-uniform with a = √5, i.e. U(±1/√fan_in) with fan_in = C_in/groups·KH·KW, and bias
/// U(±1/√fan_in). Zero padding only (no padding modes, no <c>padding="same"</c>).
/// </summary>
/// <example><code>var conv = new Conv2d(1, 16, 3, new Generator(0), padding: 1, bias: false);</code></example>
public sealed class Conv2d : Module
{
    private readonly Generator _generator;

    /// <summary>A convolution from <paramref name="inChannels"/> to <paramref name="outChannels"/> channels, initialised from <paramref name="generator"/>.</summary>
    /// <exception cref="ArgumentException">when a size is not positive, padding is negative, or the channels are not divisible by the groups.</exception>
    public Conv2d(int inChannels, int outChannels, Size2d kernelSize, Generator generator, Size2d? stride = null, Size2d? padding = null,
        Size2d? dilation = null, int groups = 1, bool bias = true)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        Stride = stride ?? 1;
        Padding = padding ?? 0;
        Dilation = dilation ?? 1;
        if (inChannels < 1 || outChannels < 1 || groups < 1)
            throw new ArgumentException($"Conv2d: in_channels {inChannels}, out_channels {outChannels} and groups {groups} must be positive.");
        if (inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"Conv2d: in_channels {inChannels} and out_channels {outChannels} must both be divisible by groups {groups}.");
        if (kernelSize.H < 1 || kernelSize.W < 1 || Stride.H < 1 || Stride.W < 1 || Dilation.H < 1 || Dilation.W < 1 || Padding.H < 0 || Padding.W < 0)
            throw new ArgumentException(
                $"Conv2d: kernel_size {kernelSize}, stride {Stride} and dilation {Dilation} must be positive and padding {Padding} not negative.");
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Groups = groups;
        Weight = RegisterParameter("weight", Tensor.Zeros(outChannels, inChannels / groups, kernelSize.H, kernelSize.W));
        if (bias) Bias = RegisterParameter("bias", Tensor.Zeros(outChannels));
        ResetParameters();
    }

    /// <summary>C_in.</summary>
    public int InChannels { get; }

    /// <summary>C_out.</summary>
    public int OutChannels { get; }

    /// <summary>(KH, KW).</summary>
    public Size2d KernelSize { get; }

    /// <summary>Stride.</summary>
    public Size2d Stride { get; }

    /// <summary>Zero padding on each side.</summary>
    public Size2d Padding { get; }

    /// <summary>Spacing of the kernel taps.</summary>
    public Size2d Dilation { get; }

    /// <summary>Channel groups (C_in = groups: depthwise).</summary>
    public int Groups { get; }

    /// <summary>W, [C_out, C_in/groups, KH, KW].</summary>
    public Parameter Weight { get; }

    /// <summary>b, [C_out], or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>PyTorch's default: weight Kaiming-uniform (a = √5, i.e. U(±1/√fan_in)), bias U(±1/√fan_in).</summary>
    public override void ResetParameters()
    {
        Init.KaimingUniform(Weight.Data, _generator, a: Math.Sqrt(5));
        if (Bias is not null)
        {
            double bound = 1 / Math.Sqrt(Init.Fans(Weight.Data).FanIn);
            Init.Uniform(Bias.Data, _generator, -bound, bound);
        }
    }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        Tensor w = Weight;
        Tensor? b = Bias?.Data;
        if (input.DType != w.DType)
        {
            w = w.To(input.DType);
            b = b?.To(input.DType);
        }
        return Tensor.Conv2d(input, w, b, Stride, Padding, Dilation, Groups);
    }

    /// <summary>PyTorch's repr: <c>16, 32, kernel_size=(3, 3), stride=(1, 1)</c>, then padding, dilation, groups and bias only when not the default.</summary>
    protected override string ExtraRepr()
    {
        var s = $"{InChannels}, {OutChannels}, kernel_size={KernelSize}, stride={Stride}";
        if (Padding != new Size2d(0, 0)) s += $", padding={Padding}";
        if (Dilation != new Size2d(1, 1)) s += $", dilation={Dilation}";
        if (Groups != 1) s += $", groups={Groups}";
        if (Bias is null) s += ", bias=False";
        return s;
    }
}
