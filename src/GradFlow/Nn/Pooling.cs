using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// 2-D max pooling, as <c>torch.nn.MaxPool2d</c> (floor mode, no indices returned): the maximum of
/// each window (<see cref="Tensor.MaxPool2d"/>). Stride defaults to the kernel size, padding 0 (at
/// most half the kernel), dilation 1. Gradient: to the first maximum of each window in scan order.
/// </summary>
/// <example><code>var pool = new MaxPool2d(2); // halves H and W</code></example>
public sealed class MaxPool2d(Size2d kernelSize, Size2d? stride = null, Size2d? padding = null, Size2d? dilation = null) : Module
{
    /// <summary>Window size.</summary>
    public Size2d KernelSize { get; } = kernelSize;

    /// <summary>Stride (default: the kernel size).</summary>
    public Size2d Stride { get; } = stride ?? kernelSize;

    /// <summary>Implicit −∞ padding on each side (never chosen).</summary>
    public Size2d Padding { get; } = padding ?? 0;

    /// <summary>Spacing of the window taps.</summary>
    public Size2d Dilation { get; } = dilation ?? 1;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => Tensor.MaxPool2d(input, KernelSize, Stride, Padding, Dilation);

    /// <inheritdoc />
    protected override string ExtraRepr() =>
        $"kernel_size={Pool.Repr(KernelSize)}, stride={Pool.Repr(Stride)}, padding={Pool.Repr(Padding)}, dilation={Pool.Repr(Dilation)}, ceil_mode=False";
}

/// <summary>
/// 2-D average pooling, as <c>torch.nn.AvgPool2d</c> (floor mode): the mean of each window
/// (<see cref="Tensor.AvgPool2d"/>). Stride defaults to the kernel size, padding 0; with
/// <c>countIncludePad</c> (PyTorch's default) the zero padding counts in the divisor.
/// </summary>
public sealed class AvgPool2d(Size2d kernelSize, Size2d? stride = null, Size2d? padding = null, bool countIncludePad = true) : Module
{
    /// <summary>Window size.</summary>
    public Size2d KernelSize { get; } = kernelSize;

    /// <summary>Stride (default: the kernel size).</summary>
    public Size2d Stride { get; } = stride ?? kernelSize;

    /// <summary>Zero padding on each side.</summary>
    public Size2d Padding { get; } = padding ?? 0;

    /// <summary>Whether the padding counts in the divisor.</summary>
    public bool CountIncludePad { get; } = countIncludePad;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => Tensor.AvgPool2d(input, KernelSize, Stride, Padding, CountIncludePad);

    /// <inheritdoc />
    protected override string ExtraRepr() => $"kernel_size={Pool.Repr(KernelSize)}, stride={Pool.Repr(Stride)}, padding={Pool.Repr(Padding)}";
}

/// <summary>
/// Adaptive average pooling to a fixed output size, as <c>torch.nn.AdaptiveAvgPool2d</c>
/// (<see cref="Tensor.AdaptiveAvgPool2d"/>); output size 1 is global average pooling, the usual head
/// of a ResNet before <see cref="Flatten"/> and <see cref="Linear"/>.
/// </summary>
/// <example><code>var gap = new AdaptiveAvgPool2d(1); // [N, C, H, W] → [N, C, 1, 1]</code></example>
public sealed class AdaptiveAvgPool2d(Size2d outputSize) : Module
{
    /// <summary>(OH, OW).</summary>
    public Size2d OutputSize { get; } = outputSize;

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input) => Tensor.AdaptiveAvgPool2d(input, OutputSize);

    /// <inheritdoc />
    protected override string ExtraRepr() => $"output_size={Pool.Repr(OutputSize)}";
}

internal static class Pool
{
    /// <summary>As PyTorch prints an int-or-tuple argument given as an int when square: <c>2</c>, else <c>(2, 3)</c>.</summary>
    public static string Repr(Size2d s) => s.IsSquare ? s.H.ToString(System.Globalization.CultureInfo.InvariantCulture) : s.ToString();
}
