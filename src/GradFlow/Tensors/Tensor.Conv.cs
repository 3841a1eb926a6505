using GradFlow.Kernels;

namespace GradFlow.Tensors;

// Convolution and pooling over NCHW images (an unbatched CHW input is treated as a batch of one):
// each op validates at this boundary, calls ConvKernels / PoolKernels, and records its backward rule.
public sealed partial class Tensor
{
    /// <summary>
    /// 2-D convolution (cross-correlation), as <c>torch.nn.functional.conv2d</c>:
    /// <c>y[n, o, i, j] = b[o] + Σ_{c, kh, kw} W[o, c, kh, kw]·x[n, g·C/G + c, i·SH − PH + kh·DH, j·SW − PW + kw·DW]</c>
    /// with g = o / (Cout/G) the group of output channel o and x zero outside the image. Shapes: x
    /// [N, C, H, W] (or [C, H, W]), W [Cout, C/G, KH, KW], b [Cout] optional; y [N, Cout, OH, OW] with
    /// <c>OH = ⌊(H + 2·PH − DH·(KH − 1) − 1)/SH⌋ + 1</c>. Defaults stride 1, padding 0, dilation 1, groups 1;
    /// groups = C (with Cout a multiple of C) is a depthwise convolution. Computed by im2col and the
    /// packed GEMM, depthwise layers by direct loops (<see cref="ConvKernels"/>). Backward: <c>dx = convᵀ(g, W)</c> (GEMM Wᵀ·g, then col2im),
    /// <c>dW = Σ_n g_n·col(x_n)ᵀ</c>, <c>db = Σ_{n, i, j} g</c>.
    /// </summary>
    /// <exception cref="ArgumentException">naming conv2d, the argument and the shapes: wrong ranks, channels not
    /// divisible by the groups, weight channels that do not match the input, a bias of the wrong size,
    /// a non-positive stride or dilation, negative padding, or a kernel larger than the padded input.</exception>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, Size2d? stride = null, Size2d? padding = null,
        Size2d? dilation = null, int groups = 1)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        CheckSameDType("conv2d", input, weight);
        if (input.Rank == 3)
            return Conv2d(input.Unsqueeze(0), weight, bias, stride, padding, dilation, groups).Squeeze(0);
        if (input.Rank != 4)
            throw new ArgumentException($"conv2d: input must be [N, C, H, W] or [C, H, W], got {Shapes.Format(input._shape)}.", nameof(input));
        if (weight.Rank != 4)
            throw new ArgumentException($"conv2d: weight must be [out_channels, in_channels/groups, KH, KW], got {Shapes.Format(weight._shape)}.", nameof(weight));
        if (groups < 1) throw new ArgumentException($"conv2d: groups must be at least 1, got {groups}.", nameof(groups));
        int n = input._shape[0], c = input._shape[1], h = input._shape[2], w = input._shape[3];
        int cout = weight._shape[0], kh = weight._shape[2], kw = weight._shape[3];
        if (c % groups != 0)
            throw new ArgumentException($"conv2d: in_channels {c} of input {Shapes.Format(input._shape)} is not divisible by groups {groups}.", nameof(groups));
        if (cout % groups != 0)
            throw new ArgumentException($"conv2d: out_channels {cout} of weight {Shapes.Format(weight._shape)} is not divisible by groups {groups}.", nameof(groups));
        if (weight._shape[1] * groups != c)
            throw new ArgumentException(
                $"conv2d: weight {Shapes.Format(weight._shape)} with groups {groups} expects {weight._shape[1] * groups} input channels, but input {Shapes.Format(input._shape)} has {c}.",
                nameof(weight));
        if (bias is not null)
        {
            CheckSameDType("conv2d", input, bias);
            if (bias.Rank != 1 || bias._shape[0] != cout)
                throw new ArgumentException($"conv2d: bias must be [{cout}] (out_channels of weight {Shapes.Format(weight._shape)}), got {Shapes.Format(bias._shape)}.", nameof(bias));
        }
        var (s, p, d) = (stride ?? 1, padding ?? 0, dilation ?? 1);
        if (kh < 1 || kw < 1)
            throw new ArgumentException($"conv2d: weight {Shapes.Format(weight._shape)} has an empty kernel.", nameof(weight));
        CheckWindow("conv2d", input._shape, (kh, kw), s, p, d);
        var shape = new ConvShape(n, c, h, w, cout, kh, kw, s.H, s.W, p.H, p.W, d.H, d.W, groups);
        var y = Uninitialized("conv2d", input, [n, cout, shape.OH, shape.OW]);
        if (y.Storage is float[])
        {
            bool bf16 = BFloat16.Operands;
            using var xs = new Operand(input.Span<float>(), bf16);
            using var ws = new Operand(weight.Span<float>(), bf16);
            ConvKernels.Forward(shape, xs.Span, ws.Span, bias is null ? default : bias.Span<float>(), y.Span<float>());
        }
        else
            ConvKernels.Forward(shape, input.Span<double>(), weight.Span<double>(), bias is null ? default : bias.Span<double>(), y.Span<double>());
        Tensor[] inputs = bias is null ? [input, weight] : [input, weight, bias];
        if (!NeedsGrad(inputs)) return y;
        return y.Record("conv2d", inputs, g =>
        {
            Tensor? dx = null, dw = null, db = null;
            if (input.RequiresGrad) dx = Uninitialized("conv2d", input, input._shape);
            if (weight.RequiresGrad) dw = Uninitialized("conv2d", weight, weight._shape);
            if (g.Storage is float[])
            {
                // --precision bf16: dy rounded once for both gradients; w and x only when the gradient that reads them is asked for
                bool bf16 = BFloat16.Operands;
                using var gs = new Operand(g.Span<float>(), bf16);
                using var ws = new Operand(dx is null ? default : weight.Span<float>(), bf16);
                using var xs = new Operand(dw is null ? default : input.Span<float>(), bf16);
                ConvKernels.Backward(shape, xs.Span, ws.Span, gs.Span, Gradient<float>(dx), Gradient<float>(dw));
            }
            else ConvKernels.Backward(shape, input.Span<double>(), weight.Span<double>(), g.Span<double>(), Gradient<double>(dx), Gradient<double>(dw));
            if (bias is not null && bias.RequiresGrad)
            {
                // Σ over each output plane, then over the batch: a fixed order.
                int planes = n * cout, hw = shape.OH * shape.OW;
                var perPlane = Uninitialized("conv2d", bias, [planes]);
                db = Uninitialized("conv2d", bias, bias._shape);
                if (db.Storage is float[])
                {
                    ReduceKernels.Sum(g.Span<float>(), planes, hw, 1, perPlane.Span<float>());
                    ReduceKernels.Sum(perPlane.Span<float>(), 1, n, cout, db.Span<float>());
                }
                else
                {
                    ReduceKernels.Sum(g.Span<double>(), planes, hw, 1, perPlane.Span<double>());
                    ReduceKernels.Sum(perPlane.Span<double>(), 1, n, cout, db.Span<double>());
                }
                perPlane.ReleaseStorage();
            }
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }

    /// <summary>
    /// 2-D max pooling, as <c>torch.nn.functional.max_pool2d</c> (floor mode): <c>y[n, c, i, j] = max</c> of
    /// x over the window rows <c>i·SH − PH + kh·DH</c>, columns <c>j·SW − PW + kw·DW</c> that lie inside
    /// the image (padding is never chosen). Stride defaults to the kernel size; padding at most half the
    /// kernel (PyTorch's rule). Backward: g goes to the chosen element of each window (added up where
    /// windows overlap). Subgradient at ties: the first maximum in the window's scan order (kh, then kw)
    /// gets all of g, as PyTorch; a NaN in a window is chosen and propagates.
    /// </summary>
    /// <exception cref="ArgumentException">naming max_pool2d, the argument and the shapes.</exception>
    public static Tensor MaxPool2d(Tensor input, Size2d kernelSize, Size2d? stride = null, Size2d? padding = null, Size2d? dilation = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank == 3) return MaxPool2d(input.Unsqueeze(0), kernelSize, stride, padding, dilation).Squeeze(0);
        var shape = PoolGeometry("max_pool2d", input, kernelSize, stride ?? kernelSize, padding ?? 0, dilation ?? 1);
        var y = Uninitialized("max_pool2d", input, [input._shape[0], input._shape[1], shape.OH, shape.OW]);
        var argmax = new int[y.Count];
        if (y.Storage is float[]) PoolKernels.MaxForward(shape, input.Span<float>(), y.Span<float>(), argmax);
        else PoolKernels.MaxForward(shape, input.Span<double>(), y.Span<double>(), argmax);
        if (!NeedsGrad(input)) return y;
        return y.Record("max_pool2d", [input], g =>
        {
            var dx = Uninitialized("max_pool2d", input, input._shape);
            if (dx.Storage is float[]) PoolKernels.MaxBackward(shape, g.Span<float>(), argmax, dx.Span<float>());
            else PoolKernels.MaxBackward(shape, g.Span<double>(), argmax, dx.Span<double>());
            return [dx];
        });
    }

    /// <summary>
    /// 2-D average pooling, as <c>torch.nn.functional.avg_pool2d</c> (floor mode): the mean of each window.
    /// Stride defaults to the kernel size; padding (zeros) at most half the kernel. With
    /// <paramref name="countIncludePad"/> (PyTorch's default) the divisor counts the padding, KH·KW;
    /// otherwise only the input elements of the window. Backward: each input element of a window gets
    /// <c>g/divisor</c> (added up where windows overlap).
    /// </summary>
    /// <exception cref="ArgumentException">naming avg_pool2d, the argument and the shapes.</exception>
    public static Tensor AvgPool2d(Tensor input, Size2d kernelSize, Size2d? stride = null, Size2d? padding = null, bool countIncludePad = true)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank == 3) return AvgPool2d(input.Unsqueeze(0), kernelSize, stride, padding, countIncludePad).Squeeze(0);
        var shape = PoolGeometry("avg_pool2d", input, kernelSize, stride ?? kernelSize, padding ?? 0, 1);
        var y = Uninitialized("avg_pool2d", input, [input._shape[0], input._shape[1], shape.OH, shape.OW]);
        if (y.Storage is float[]) PoolKernels.AvgForward(shape, countIncludePad, input.Span<float>(), y.Span<float>());
        else PoolKernels.AvgForward(shape, countIncludePad, input.Span<double>(), y.Span<double>());
        if (!NeedsGrad(input)) return y;
        return y.Record("avg_pool2d", [input], g =>
        {
            var dx = Uninitialized("avg_pool2d", input, input._shape);
            if (dx.Storage is float[]) PoolKernels.AvgBackward(shape, countIncludePad, g.Span<float>(), dx.Span<float>());
            else PoolKernels.AvgBackward(shape, countIncludePad, g.Span<double>(), dx.Span<double>());
            return [dx];
        });
    }

    /// <summary>
    /// Adaptive average pooling to a fixed output size, as <c>torch.nn.functional.adaptive_avg_pool2d</c>:
    /// output row i averages input rows <c>[⌊i·H/OH⌋, ⌈(i + 1)·H/OH⌉)</c>, columns alike (windows may
    /// overlap when H is not a multiple of OH). Output size 1 is global average pooling. Backward: each
    /// element of a window gets <c>g/|window|</c>.
    /// </summary>
    /// <exception cref="ArgumentException">naming adaptive_avg_pool2d, the output size and the input shape.</exception>
    public static Tensor AdaptiveAvgPool2d(Tensor input, Size2d outputSize)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank == 3) return AdaptiveAvgPool2d(input.Unsqueeze(0), outputSize).Squeeze(0);
        if (input.Rank != 4)
            throw new ArgumentException($"adaptive_avg_pool2d: input must be [N, C, H, W] or [C, H, W], got {Shapes.Format(input._shape)}.", nameof(input));
        if (outputSize.H < 1 || outputSize.W < 1)
            throw new ArgumentException($"adaptive_avg_pool2d: output size {outputSize} must be positive.", nameof(outputSize));
        int n = input._shape[0], c = input._shape[1], h = input._shape[2], w = input._shape[3];
        if (h < 1 || w < 1)
            throw new ArgumentException($"adaptive_avg_pool2d: input {Shapes.Format(input._shape)} has an empty image.", nameof(input));
        int oh = outputSize.H, ow = outputSize.W, planes = n * c;
        var y = Uninitialized("adaptive_avg_pool2d", input, [n, c, oh, ow]);
        if (y.Storage is float[]) PoolKernels.AdaptiveAvgForward(planes, h, w, oh, ow, input.Span<float>(), y.Span<float>());
        else PoolKernels.AdaptiveAvgForward(planes, h, w, oh, ow, input.Span<double>(), y.Span<double>());
        if (!NeedsGrad(input)) return y;
        return y.Record("adaptive_avg_pool2d", [input], g =>
        {
            var dx = Uninitialized("adaptive_avg_pool2d", input, input._shape);
            if (dx.Storage is float[]) PoolKernels.AdaptiveAvgBackward(planes, h, w, oh, ow, g.Span<float>(), dx.Span<float>());
            else PoolKernels.AdaptiveAvgBackward(planes, h, w, oh, ow, g.Span<double>(), dx.Span<double>());
            return [dx];
        });
    }

    /// <summary>Validates a pooling window on [N, C, H, W] (padding at most half the kernel, PyTorch's rule) and returns its shape.</summary>
    private static PoolShape PoolGeometry(string op, Tensor input, Size2d kernel, Size2d stride, Size2d padding, Size2d dilation)
    {
        if (input.Rank != 4)
            throw new ArgumentException($"{op}: input must be [N, C, H, W] or [C, H, W], got {Shapes.Format(input._shape)}.", nameof(input));
        if (kernel.H < 1 || kernel.W < 1)
            throw new ArgumentException($"{op}: kernel_size {kernel} must be positive.", nameof(kernel));
        if (padding.H > kernel.H / 2 || padding.W > kernel.W / 2)
            throw new ArgumentException($"{op}: padding {padding} must be at most half of kernel_size {kernel}.", nameof(padding));
        CheckWindow(op, input._shape, (kernel.H, kernel.W), stride, padding, dilation);
        return new PoolShape(input._shape[0] * input._shape[1], input._shape[2], input._shape[3], kernel.H, kernel.W,
            stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);
    }

    /// <summary>Stride ≥ 1, padding ≥ 0, dilation ≥ 1, and the dilated kernel fits the padded image of [N, C, H, W].</summary>
    private static void CheckWindow(string op, int[] input, Size2d kernel, Size2d stride, Size2d padding, Size2d dilation)
    {
        if (stride.H < 1 || stride.W < 1) throw new ArgumentException($"{op}: stride {stride} must be positive.", nameof(stride));
        if (padding.H < 0 || padding.W < 0) throw new ArgumentException($"{op}: padding {padding} must not be negative.", nameof(padding));
        if (dilation.H < 1 || dilation.W < 1) throw new ArgumentException($"{op}: dilation {dilation} must be positive.", nameof(dilation));
        long effH = (long)dilation.H * (kernel.H - 1) + 1, effW = (long)dilation.W * (kernel.W - 1) + 1;
        long paddedH = input[2] + 2L * padding.H, paddedW = input[3] + 2L * padding.W;
        if (effH > paddedH || effW > paddedW)
            throw new ArgumentException(
                $"{op}: kernel {kernel} (dilation {dilation}, effective ({effH}, {effW})) is larger than the padded input ({paddedH}, {paddedW}) (input {Shapes.Format(input)}, padding {padding}).",
                "kernel_size");
    }

    /// <summary>A gradient's storage, or an empty span when it is not asked for (<see cref="ConvKernels.Backward{T}"/> then skips it).</summary>
    private static Span<T> Gradient<T>(Tensor? gradient) where T : unmanaged => gradient is null ? default : gradient.Span<T>();

    /// <summary>
    /// A float32 convolution operand: the tensor's own values, or under <c>--precision bf16</c> a bf16-rounded copy in pooled
    /// storage, so that every convolution path — direct, flat implicit GEMM, Winograd, im2col — multiplies bf16 values and
    /// accumulates in float32, as the GEMMs do.
    /// </summary>
    private readonly ref struct Operand
    {
        private readonly float[]? _copy;
        public readonly ReadOnlySpan<float> Span;

        public Operand(ReadOnlySpan<float> values, bool bf16)
        {
            if (!bf16 || values.IsEmpty)
            {
                Span = values;
                return;
            }
            _copy = System.Buffers.ArrayPool<float>.Shared.Rent(values.Length);
            var rounded = _copy.AsSpan(0, values.Length);
            values.CopyTo(rounded);
            BFloat16.Round(rounded);
            Span = rounded;
        }

        public void Dispose()
        {
            if (_copy is not null) System.Buffers.ArrayPool<float>.Shared.Return(_copy);
        }
    }
}
