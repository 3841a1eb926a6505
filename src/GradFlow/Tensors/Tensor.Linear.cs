using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>
    /// The affine map of a linear layer, fused: <c>y = x·Wᵀ + b</c> for x [..., in], W [out, in],
    /// b [out] (optional); y [..., out]. One GEMM with W transposed in the packing (never
    /// materialised) and, in float32, the bias added in the GEMM's epilogue (float64: copied in first). Backward: <c>dx = g·W</c>, <c>dW = gᵀ·x</c>
    /// (over all leading dimensions), <c>db = Σ_rows g</c> (float32: summed from dW's packed gᵀ while it is in cache).
    /// </summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) => Linear(input, weight, bias, FusedActivation.None);

    /// <summary>
    /// A linear layer and its activation as one op: <c>y = act(x·Wᵀ + b)</c>, the activation applied
    /// in the GEMM's epilogue (float32; float64: after the product). The pre-activation is never
    /// stored. Backward: <c>dz = g·act′</c> from the output (ReLU: 1 where y &gt; 0, else 0, PyTorch's
    /// subgradient at 0; tanh: 1 − y²; σ: y(1 − y)), then <c>dx = dz·W</c>, <c>dW = dzᵀ·x</c>,
    /// <c>db = Σ_rows dz</c>. Same values as <c>act(Linear(x, W, b))</c> up to the last bits of the
    /// vector activation; Sequential uses it for a Linear followed by ReLU, Tanh or
    /// Sigmoid when no hook watches either module.
    /// </summary>
    /// <exception cref="ArgumentException">as <see cref="Linear(Tensor, Tensor, Tensor?)"/>, or for an undefined activation.</exception>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias, FusedActivation activation)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        CheckSameDType("linear", input, weight);
        if (weight.Rank != 2)
            throw new ArgumentException($"linear: weight must be [out, in], got {Shapes.Format(weight._shape)}.");
        int outF = weight._shape[0], inF = weight._shape[1];
        if (input.Rank == 0 || input._shape[^1] != inF)
            throw new ArgumentException($"linear: input {Shapes.Format(input._shape)} does not end with in_features {inF} (weight {Shapes.Format(weight._shape)}).");
        if (bias is not null)
        {
            CheckSameDType("linear", input, bias);
            if (bias.Rank != 1 || bias._shape[0] != outF)
                throw new ArgumentException($"linear: bias must be [{outF}], got {Shapes.Format(bias._shape)}.");
        }
        if (!Enum.IsDefined(activation))
            throw new ArgumentException($"linear: unknown activation {(int)activation}.", nameof(activation));
        int rows = input.Count / inF;
        var outShape = input._shape.AsSpan().ToArray();
        outShape[^1] = outF;
        var y = Uninitialized("linear", input, outShape);
        if (y.Storage is float[])
        {
            var ys = y.Span<float>();
            if (bias is not null || activation != FusedActivation.None)
                Gemm.Multiply(false, true, rows, outF, inF, 1f, input.Span<float>(), inF, weight.Span<float>(), inF,
                    bias is null ? default : bias.Span<float>(), ys, outF, activation);
            else
                Gemm.Multiply(false, true, rows, outF, inF, 1f, input.Span<float>(), inF, weight.Span<float>(), inF, 0f, ys, outF);
        }
        else
        {
            var ys = y.Span<double>();
            if (bias is not null)
            {
                var bs = bias.Span<double>();
                for (int r = 0; r < rows; r++) bs.CopyTo(ys.Slice(r * outF, outF));
            }
            Gemm.Multiply(false, true, rows, outF, inF, 1.0, input.Span<double>(), inF, weight.Span<double>(), inF,
                bias is null ? 0.0 : 1.0, ys, outF);
            GemmEpilogue.Apply(activation, ys);
        }
        Tensor[] inputs = bias is null ? [input, weight] : [input, weight, bias];
        if (!NeedsGrad(inputs)) return y;
        string op = activation switch
        {
            FusedActivation.Relu => "linear_relu",
            FusedActivation.Tanh => "linear_tanh",
            FusedActivation.Sigmoid => "linear_sigmoid",
            _ => "linear",
        };
        return y.Record(op, inputs, gOut =>
        {
            var g = activation == FusedActivation.None ? gOut : ActivationGradient(activation, y, gOut);
            Tensor? dx = null, dw = null, db = null;
            if (input.RequiresGrad)
            {
                dx = Uninitialized("linear", input, input._shape);
                if (dx.Storage is float[])
                    Gemm.Multiply(false, false, rows, inF, outF, 1f, g.Span<float>(), outF, weight.Span<float>(), inF, 0f, dx.Span<float>(), inF);
                else
                    Gemm.Multiply(false, false, rows, inF, outF, 1.0, g.Span<double>(), outF, weight.Span<double>(), inF, 0.0, dx.Span<double>(), inF);
            }
            if (bias is not null && bias.RequiresGrad) db = Uninitialized("linear", bias, bias._shape);
            // float32: db = Σ_rows g summed from dW's packed gᵀ, when there is a dW
            bool dbFromWeightGradient = db is not null && weight.RequiresGrad && db.Storage is float[];
            if (weight.RequiresGrad)
            {
                dw = Uninitialized("linear", weight, weight._shape);
                if (dw.Storage is float[])
                    Gemm.Multiply(true, false, outF, inF, rows, 1f, g.Span<float>(), outF, input.Span<float>(), inF, 0f, dw.Span<float>(), inF,
                        dbFromWeightGradient ? db!.Span<float>() : default);
                else
                    Gemm.Multiply(true, false, outF, inF, rows, 1.0, g.Span<double>(), outF, input.Span<double>(), inF, 0.0, dw.Span<double>(), inF);
            }
            if (db is not null && !dbFromWeightGradient)
            {
                if (db.Storage is float[]) ReduceKernels.Sum(g.Span<float>(), 1, rows, outF, db.Span<float>());
                else ReduceKernels.Sum(g.Span<double>(), 1, rows, outF, db.Span<double>());
            }
            if (!ReferenceEquals(g, gOut)) g.ReleaseStorage(); // dz: this rule's own temporary
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }

    /// <summary>dz = g·act′(z), the derivative read from the output y = act(z) (see the fused <see cref="Linear(Tensor, Tensor, Tensor?, FusedActivation)"/>).</summary>
    /// <remarks>An element-wise <see cref="Zip"/>, so a large one runs in chunks on the kernel threads with the bits of one pass (mlp-wide's
    /// 128×1024 activations: 0.9 % of a step's samples on one thread while the other waited). ReLU's y &gt; 0 exactly where its input is
    /// &gt; 0 (gradient 0 at 0, as PyTorch).</remarks>
    private static Tensor ActivationGradient(FusedActivation activation, Tensor y, Tensor g) => activation switch
    {
        FusedActivation.Relu => Zip("linear", y, g, ActivationKernels.ReluBackward, ActivationKernels.ReluBackward),
        FusedActivation.Tanh => Zip("linear", y, g, ActivationKernels.TanhBackward, ActivationKernels.TanhBackward),
        FusedActivation.Sigmoid => Zip("linear", y, g, ActivationKernels.SigmoidBackward, ActivationKernels.SigmoidBackward),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "linear: no activation to differentiate."),
    };
}
