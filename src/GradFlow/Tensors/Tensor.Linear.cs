using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>
    /// The affine map of a linear layer, fused: <c>y = x·Wᵀ + b</c> for x [..., in], W [out, in],
    /// b [out] (optional); y [..., out]. One GEMM with W transposed in the packing (never
    /// materialised) and, in float32, the bias added in the GEMM's epilogue (float64: copied in first). Backward: <c>dx = g·W</c>, <c>dW = gᵀ·x</c>
    /// (over all leading dimensions), <c>db = Σ_rows g</c>.
    /// </summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null)
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
        int rows = input.Count / inF;
        var outShape = (int[])input._shape.Clone();
        outShape[^1] = outF;
        var y = Uninitialized("linear", input, outShape);
        if (y.Storage is float[])
        {
            var ys = y.Span<float>();
            if (bias is not null)
                Gemm.Multiply(false, true, rows, outF, inF, 1f, input.Span<float>(), inF, weight.Span<float>(), inF, bias.Span<float>(), ys, outF);
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
        }
        Tensor[] inputs = bias is null ? [input, weight] : [input, weight, bias];
        if (!NeedsGrad(inputs)) return y;
        return y.Record("linear", inputs, g =>
        {
            Tensor? dx = null, dw = null, db = null;
            if (input.RequiresGrad)
            {
                dx = Uninitialized("linear", input, input._shape);
                if (dx.Storage is float[])
                    Gemm.Multiply(false, false, rows, inF, outF, 1f, g.Span<float>(), outF, weight.Span<float>(), inF, 0f, dx.Span<float>(), inF);
                else
                    Gemm.Multiply(false, false, rows, inF, outF, 1.0, g.Span<double>(), outF, weight.Span<double>(), inF, 0.0, dx.Span<double>(), inF);
            }
            if (weight.RequiresGrad)
            {
                dw = Uninitialized("linear", weight, weight._shape);
                if (dw.Storage is float[])
                    Gemm.Multiply(true, false, outF, inF, rows, 1f, g.Span<float>(), outF, input.Span<float>(), inF, 0f, dw.Span<float>(), inF);
                else
                    Gemm.Multiply(true, false, outF, inF, rows, 1.0, g.Span<double>(), outF, input.Span<double>(), inF, 0.0, dw.Span<double>(), inF);
            }
            if (bias is not null && bias.RequiresGrad)
            {
                db = Uninitialized("linear", bias, bias._shape);
                if (db.Storage is float[]) ReduceKernels.Sum(g.Span<float>(), 1, rows, outF, db.Span<float>());
                else ReduceKernels.Sum(g.Span<double>(), 1, rows, outF, db.Span<double>());
            }
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }
}
