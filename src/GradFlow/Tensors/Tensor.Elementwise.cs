using GradFlow.Kernels;

namespace GradFlow.Tensors;

// Piecewise element-wise ops: abs, sign, clamp, where.
public sealed partial class Tensor
{
    /// <summary><c>|x|</c>. Backward: <c>g·sign(x)</c>, 0 at x = 0 (PyTorch's subgradient).</summary>
    public Tensor Abs()
    {
        var x = this;
        var y = Map("abs", x, System.Numerics.Tensors.TensorPrimitives.Abs, System.Numerics.Tensors.TensorPrimitives.Abs);
        return NeedsGrad(x) ? y.Record("abs", [x], g => [Zip("abs", x, g, ElementwiseKernels.AbsBackward, ElementwiseKernels.AbsBackward)]) : y;
    }

    /// <summary><c>sign(x)</c> ∈ {−1, 0, 1}. Its gradient is zero everywhere it exists.</summary>
    public Tensor Sign()
    {
        var x = this;
        var y = Map("sign", x, ElementwiseKernels.Sign, ElementwiseKernels.Sign);
        return NeedsGrad(x) ? y.Record("sign", [x], g => [ZerosOf(x, x._shape)]) : y;
    }

    /// <summary>
    /// <c>min(max(x, min), max)</c>. Backward: g where min ≤ x ≤ max (boundaries included, as
    /// PyTorch), else 0.
    /// </summary>
    public Tensor Clamp(double min = double.NegativeInfinity, double max = double.PositiveInfinity)
    {
        if (double.IsNaN(min) || double.IsNaN(max) || min > max)
            throw new ArgumentException($"clamp: min {min} must not exceed max {max}.");
        var x = this;
        var y = Map("clamp", x,
            (s, o) => System.Numerics.Tensors.TensorPrimitives.Clamp(s, (float)min, (float)max, o),
            (s, o) => System.Numerics.Tensors.TensorPrimitives.Clamp(s, min, max, o));
        if (!NeedsGrad(x)) return y;
        return y.Record("clamp", [x], g => [Zip("clamp", x, g,
            (s, d, o) => ElementwiseKernels.ClampBackward(s, (float)min, (float)max, d, o),
            (s, d, o) => ElementwiseKernels.ClampBackward(s, min, max, d, o))]);
    }

    /// <summary>
    /// <c>condition ≠ 0 ? a : b</c> with broadcasting of all three. Backward: g to a where the
    /// condition holds, to b elsewhere (summed to each shape); the condition gets none.
    /// </summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        CheckSameDType("where", a, b);
        CheckSameDType("where", condition, a);
        var shape = Shapes.Broadcast("where", Shapes.Broadcast("where", condition._shape, a._shape), b._shape);
        var c = ExpandRaw(condition, shape);
        var ea = ExpandRaw(a, shape);
        var eb = ExpandRaw(b, shape);
        var y = Uninitialized("where", a, shape);
        if (y.Storage is float[]) ElementwiseKernels.Where(c.Span<float>(), ea.Span<float>(), eb.Span<float>(), y.Span<float>());
        else ElementwiseKernels.Where(c.Span<double>(), ea.Span<double>(), eb.Span<double>(), y.Span<double>());
        if (!NeedsGrad(a, b)) return y;
        return y.Record("where", [a, b], g =>
        {
            var zero = ZerosOf(g, g._shape);
            Tensor? da = null, db = null;
            if (a.RequiresGrad)
            {
                da = Uninitialized("where", g, g._shape);
                if (g.Storage is float[]) ElementwiseKernels.Where(c.Span<float>(), g.Span<float>(), zero.Span<float>(), da.Span<float>());
                else ElementwiseKernels.Where(c.Span<double>(), g.Span<double>(), zero.Span<double>(), da.Span<double>());
                da = SumTo(da, a._shape);
            }
            if (b.RequiresGrad)
            {
                db = Uninitialized("where", g, g._shape);
                if (g.Storage is float[]) ElementwiseKernels.Where(c.Span<float>(), zero.Span<float>(), g.Span<float>(), db.Span<float>());
                else ElementwiseKernels.Where(c.Span<double>(), zero.Span<double>(), g.Span<double>(), db.Span<double>());
                db = SumTo(db, b._shape);
            }
            return [da, db];
        });
    }
}
