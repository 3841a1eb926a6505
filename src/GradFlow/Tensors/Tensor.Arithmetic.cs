using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

// Element-wise arithmetic with NumPy broadcasting, and the unary math functions.
// Each forward is followed by its backward rule; broadcast inputs get their gradient summed back
// to their own shape (SumTo). Backward rules run with grad mode off (the engine disables it).
public sealed partial class Tensor
{
    /// <summary><c>a + b</c> with broadcasting. Backward: da = g, db = g (summed to each shape).</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        var y = BroadcastRaw("add", BinaryOp.Add, a, b);
        if (!NeedsGrad(a, b)) return y;
        int[] sa = a._shape, sb = b._shape;
        return y.Record("add", [a, b], g => [SumTo(g, sa), SumTo(g, sb)]);
    }

    /// <summary><c>a - b</c> with broadcasting. Backward: da = g, db = -g.</summary>
    public static Tensor Sub(Tensor a, Tensor b)
    {
        var y = BroadcastRaw("sub", BinaryOp.Subtract, a, b);
        if (!NeedsGrad(a, b)) return y;
        int[] sa = a._shape, sb = b._shape;
        return y.Record("sub", [a, b], g => [SumTo(g, sa), b.RequiresGrad ? SumTo(ScaleRaw(g, -1), sb) : null]);
    }

    /// <summary><c>a * b</c> with broadcasting. Backward: da = g·b, db = g·a.</summary>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        var y = BroadcastRaw("mul", BinaryOp.Multiply, a, b);
        if (!NeedsGrad(a, b)) return y;
        return y.Record("mul", [a, b], g =>
        [
            a.RequiresGrad ? SumTo(BroadcastRaw("mul", BinaryOp.Multiply, g, b), a._shape) : null,
            b.RequiresGrad ? SumTo(BroadcastRaw("mul", BinaryOp.Multiply, g, a), b._shape) : null,
        ]);
    }

    /// <summary><c>a / b</c> with broadcasting (IEEE: x/0 = ±inf). Backward: da = g/b, db = -g·a/b².</summary>
    public static Tensor Div(Tensor a, Tensor b)
    {
        var y = BroadcastRaw("div", BinaryOp.Divide, a, b);
        if (!NeedsGrad(a, b)) return y;
        return y.Record("div", [a, b], g =>
        [
            a.RequiresGrad ? SumTo(BroadcastRaw("div", BinaryOp.Divide, g, b), a._shape) : null,
            b.RequiresGrad
                ? SumTo(ScaleRaw(BroadcastRaw("div", BinaryOp.Divide, BroadcastRaw("mul", BinaryOp.Multiply, g, y), b), -1), b._shape)
                : null,
        ]);
    }

    /// <summary>
    /// <c>a ^ b</c> with broadcasting. Throws when a negative base meets a non-integer exponent (the
    /// result would be NaN). Backward: da = g·b·a^(b-1), taken as 0 where b = 0 (a^0 is constant;
    /// PyTorch's choice, which also avoids 0·∞ at a = 0); db = g·a^b·ln a, taken as 0 where a = 0
    /// (the limit for b &gt; 0, PyTorch's choice).
    /// </summary>
    public static Tensor Pow(Tensor a, Tensor b)
    {
        CheckSameDType("pow", a, b);
        CheckPowDomain(a, b);
        var y = BroadcastRaw("pow", BinaryOp.Pow, a, b);
        if (!NeedsGrad(a, b)) return y;
        return y.Record("pow", [a, b], g =>
        {
            Tensor? da = null, db = null;
            if (a.RequiresGrad)
            {
                var bm1 = BroadcastRaw("pow", BinaryOp.Subtract, b, Scalar(1, b.DType));
                var d = BroadcastRaw("pow", BinaryOp.Multiply, b, BroadcastRaw("pow", BinaryOp.Pow, a, bm1));
                var eb = ExpandRaw(b, d._shape);
                for (int i = 0; i < d.Count; i++)
                    if (eb.GetFlat(i) == 0) d.SetFlatRaw(i, 0);
                da = SumTo(BroadcastRaw("pow", BinaryOp.Multiply, g, d), a._shape);
            }
            if (b.RequiresGrad)
            {
                var lnA = Map("log", a, SafeLog<float>, SafeLog<double>);
                var d = BroadcastRaw("pow", BinaryOp.Multiply, y, lnA);
                db = SumTo(BroadcastRaw("pow", BinaryOp.Multiply, g, d), b._shape);
            }
            return [da, db];
        });
    }

    /// <summary><c>x ^ p</c> for a scalar exponent. Backward: g·p·x^(p-1) (0 for p = 0).</summary>
    public Tensor Pow(double p)
    {
        if (!double.IsInteger(p) && Count > 0 && Min() < 0)
            throw new ArgumentException($"pow: a negative base raised to the non-integer power {p} is NaN (input shape {Shapes.Format(_shape)}).");
        var x = this;
        var y = Map("pow", x, (s, d) => TensorPrimitives.Pow(s, (float)p, d), (s, d) => TensorPrimitives.Pow(s, p, d));
        if (!NeedsGrad(x)) return y;
        return y.Record("pow", [x], g =>
        {
            if (p == 0) return [ZerosOf(x, x._shape)];
            var d = Map("pow", x, (s, o) => TensorPrimitives.Pow(s, (float)(p - 1), o), (s, o) => TensorPrimitives.Pow(s, p - 1, o));
            return [BroadcastRaw("pow", BinaryOp.Multiply, g, ScaleRaw(d, p))];
        });
    }

    /// <summary>
    /// Element-wise maximum with broadcasting (NaN if either is NaN). Backward: g goes to the larger
    /// input; at ties it is split equally (as PyTorch).
    /// </summary>
    public static Tensor Maximum(Tensor a, Tensor b) => MinMax("maximum", BinaryOp.Maximum, a, b);

    /// <summary>Element-wise minimum with broadcasting; ties split the gradient equally.</summary>
    public static Tensor Minimum(Tensor a, Tensor b) => MinMax("minimum", BinaryOp.Minimum, a, b);

    private static Tensor MinMax(string op, BinaryOp kind, Tensor a, Tensor b)
    {
        var y = BroadcastRaw(op, kind, a, b);
        if (!NeedsGrad(a, b)) return y;
        return y.Record(op, [a, b], g =>
        {
            // weight of a: 1 where a is chosen alone, 1/2 at ties, 0 otherwise; b gets 1 - that.
            var ea = ExpandRaw(a, y._shape);
            var eb = ExpandRaw(b, y._shape);
            var wa = Uninitialized(op, y, y._shape);
            for (int i = 0; i < wa.Count; i++)
            {
                double va = ea.GetFlat(i), vb = eb.GetFlat(i);
                bool aWins = kind == BinaryOp.Maximum ? va > vb : va < vb;
                wa.SetFlatRaw(i, va == vb ? 0.5 : aWins ? 1.0 : 0.0);
            }
            var ga = BroadcastRaw(op, BinaryOp.Multiply, g, wa);
            var gb = BroadcastRaw(op, BinaryOp.Subtract, g, ga);
            return [SumTo(ga, a._shape), SumTo(gb, b._shape)];
        });
    }

    /// <summary>Scalar operand forms.</summary>
    public Tensor Add(double s) => Add(this, Scalar(s, DType));

    public Tensor Sub(double s) => Sub(this, Scalar(s, DType));

    public Tensor Mul(double s) => Mul(this, Scalar(s, DType));

    public Tensor Div(double s) => Div(this, Scalar(s, DType));

    public static Tensor operator +(Tensor a, Tensor b) => Add(a, b);
    public static Tensor operator -(Tensor a, Tensor b) => Sub(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Mul(a, b);
    public static Tensor operator /(Tensor a, Tensor b) => Div(a, b);
    public static Tensor operator +(Tensor a, double s) => Add(a, Scalar(s, a.DType));
    public static Tensor operator +(double s, Tensor a) => Add(Scalar(s, a.DType), a);
    public static Tensor operator -(Tensor a, double s) => Sub(a, Scalar(s, a.DType));
    public static Tensor operator -(double s, Tensor a) => Sub(Scalar(s, a.DType), a);
    public static Tensor operator *(Tensor a, double s) => Mul(a, Scalar(s, a.DType));
    public static Tensor operator *(double s, Tensor a) => Mul(Scalar(s, a.DType), a);
    public static Tensor operator /(Tensor a, double s) => Div(a, Scalar(s, a.DType));
    public static Tensor operator /(double s, Tensor a) => Div(Scalar(s, a.DType), a);
    public static Tensor operator -(Tensor a) => a.Neg();

    /// <summary><c>-x</c>. Backward: -g.</summary>
    public Tensor Neg()
    {
        var x = this;
        var y = ScaleRaw(x, -1);
        return NeedsGrad(x) ? y.Record("neg", [x], g => [ScaleRaw(g, -1)]) : y;
    }

    /// <summary><c>e^x</c>. Backward: g·y.</summary>
    public Tensor Exp()
    {
        var x = this;
        var y = Map("exp", x, TensorPrimitives.Exp, TensorPrimitives.Exp);
        return NeedsGrad(x) ? y.Record("exp", [x], g => [Zip("exp", g, y, TensorPrimitives.Multiply, TensorPrimitives.Multiply)]) : y;
    }

    /// <summary>Natural log; throws for negative inputs (NaN). log 0 = -inf. Backward: g/x.</summary>
    public Tensor Log()
    {
        var x = this;
        if (x.Count > 0 && x.Min() < 0)
            throw new ArgumentException($"log: input of shape {Shapes.Format(_shape)} has negative values (minimum {x.Min()}); log would be NaN.");
        var y = Map("log", x, TensorPrimitives.Log, TensorPrimitives.Log);
        return NeedsGrad(x) ? y.Record("log", [x], g => [Zip("log", g, x, TensorPrimitives.Divide, TensorPrimitives.Divide)]) : y;
    }

    /// <summary>Square root; throws for negative inputs (NaN). Backward: g/(2·y).</summary>
    public Tensor Sqrt()
    {
        var x = this;
        if (x.Count > 0 && x.Min() < 0)
            throw new ArgumentException($"sqrt: input of shape {Shapes.Format(_shape)} has negative values (minimum {x.Min()}); sqrt would be NaN.");
        var y = Map("sqrt", x, TensorPrimitives.Sqrt, TensorPrimitives.Sqrt);
        return NeedsGrad(x) ? y.Record("sqrt", [x], g => [ScaleRaw(Zip("sqrt", g, y, TensorPrimitives.Divide, TensorPrimitives.Divide), 0.5)]) : y;
    }

    /// <summary><c>x²</c> (a fused <c>Pow(2)</c>). Backward: 2·g·x.</summary>
    public Tensor Square()
    {
        var x = this;
        var y = Zip("square", x, x, TensorPrimitives.Multiply, TensorPrimitives.Multiply);
        return NeedsGrad(x) ? y.Record("square", [x], g => [ScaleRaw(Zip("square", g, x, TensorPrimitives.Multiply, TensorPrimitives.Multiply), 2)]) : y;
    }

    /// <summary>The smallest element (no graph; NaN if any element is NaN).</summary>
    public double Min()
    {
        if (Count == 0) throw new InvalidOperationException("min: the tensor is empty.");
        return Storage is float[] ? TensorPrimitives.Min(Span<float>()) : TensorPrimitives.Min(Span<double>());
    }

    /// <summary>The largest element (no graph; NaN if any element is NaN).</summary>
    public double MaxValue()
    {
        if (Count == 0) throw new InvalidOperationException("max: the tensor is empty.");
        return Storage is float[] ? TensorPrimitives.Max(Span<float>()) : TensorPrimitives.Max(Span<double>());
    }

    private static void SafeLog<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        TensorPrimitives.Log(x, y);
        for (int i = 0; i < y.Length; i++)
            if (x[i] <= T.Zero) y[i] = T.Zero;
    }

    private static void CheckPowDomain(Tensor a, Tensor b)
    {
        if (a.Count == 0 || a.Min() >= 0) return;
        var shape = Shapes.Broadcast("pow", a._shape, b._shape);
        var ea = ExpandRaw(a, shape);
        var eb = ExpandRaw(b, shape);
        for (int i = 0; i < ea.Count; i++)
        {
            double va = ea.GetFlat(i), vb = eb.GetFlat(i);
            if (va < 0 && !double.IsInteger(vb))
                throw new ArgumentException(
                    $"pow: negative base {va} raised to non-integer exponent {vb} (element {i} of the broadcast shape {Shapes.Format(shape)}) is NaN.");
        }
    }
}

public sealed partial class Tensor
{
    /// <summary>
    /// <c>this += alpha · other</c> in place (same shape and type). For optimisers and gradient
    /// accumulation: throws when this tensor requires grad while grad mode is on.
    /// </summary>
    public Tensor AddInPlace(Tensor other, double alpha = 1.0)
    {
        CheckInPlace("AddInPlace");
        CheckSameDType("AddInPlace", this, other);
        if (!Shapes.Equal(_shape, other._shape))
            throw new ArgumentException($"AddInPlace: shapes {Shapes.Format(_shape)} and {Shapes.Format(other._shape)} differ.");
        // element by element, so the chunks on the kernel threads give the bits of one pass
        if (IsLarge(Count)) AddScaledInChunks(this, other, alpha);
        else AddScaled(this, other, alpha, 0, Count);
        return this;
    }

    private static void AddScaledInChunks(Tensor d, Tensor other, double alpha) => InChunks(d.Count, (lo, len) => AddScaled(d, other, alpha, lo, len));

    private static void AddScaled(Tensor d, Tensor other, double alpha, int start, int length)
    {
        if (d.Storage is float[])
        {
            var x = d.Span<float>().Slice(start, length);
            if (alpha == 1.0) TensorPrimitives.Add(x, other.Span<float>().Slice(start, length), x);
            else TensorPrimitives.MultiplyAdd(other.Span<float>().Slice(start, length), (float)alpha, x, x);
        }
        else
        {
            var x = d.Span<double>().Slice(start, length);
            if (alpha == 1.0) TensorPrimitives.Add(x, other.Span<double>().Slice(start, length), x);
            else TensorPrimitives.MultiplyAdd(other.Span<double>().Slice(start, length), alpha, x, x);
        }
    }

    /// <summary><c>this *= s</c> in place.</summary>
    public Tensor MulInPlace(double s)
    {
        CheckInPlace("MulInPlace");
        if (Storage is float[]) TensorPrimitives.Multiply(Span<float>(), (float)s, Span<float>());
        else TensorPrimitives.Multiply(Span<double>(), s, Span<double>());
        return this;
    }

    /// <summary>Sets every element to <paramref name="value"/> in place.</summary>
    public Tensor FillInPlace(double value)
    {
        CheckInPlace("FillInPlace");
        FillRaw(value);
        return this;
    }

    /// <summary>Copies <paramref name="source"/>'s values into this tensor (same shape and type).</summary>
    public Tensor CopyFrom(Tensor source)
    {
        CheckInPlace("CopyFrom");
        CheckSameDType("CopyFrom", this, source);
        if (!Shapes.Equal(_shape, source._shape))
            throw new ArgumentException($"CopyFrom: shapes {Shapes.Format(_shape)} and {Shapes.Format(source._shape)} differ.");
        Array.Copy(source.Storage, Storage, Count);
        return this;
    }

    private void CheckInPlace(string op)
    {
        if (RequiresGrad && GradMode.IsEnabled)
            throw new InvalidOperationException(
                $"{op}: in-place change of a tensor that requires grad would corrupt the graph; wrap it in GradMode.NoGrad().");
    }
}
