using GradFlow.Kernels;

namespace GradFlow.Tensors;

// Reductions over any set of axes, with keepDim. Multi-axis reductions run one axis at a time from
// the last to the first, each through ReduceKernels' (outer, n, inner) view, so the summation
// order is fixed and results are deterministic.
public sealed partial class Tensor
{
    /// <summary>Sum of all elements (a scalar). Backward: g broadcast to the input shape.</summary>
    public Tensor Sum() => Sum([], keepDim: false);

    /// <summary>
    /// Sum over <paramref name="axes"/> (empty = all). With <paramref name="keepDim"/> the reduced
    /// axes stay as size 1. Backward: g broadcast back to the input shape.
    /// </summary>
    public Tensor Sum(int[] axes, bool keepDim = false)
    {
        var x = this;
        var ax = Shapes.Axes("sum", axes, Rank);
        var y = SumRaw(x, ax, keepDim);
        if (!NeedsGrad(x)) return y;
        var kept = KeptShape(x._shape, ax);
        return y.Record("sum", [x], g => [ExpandRaw(g.ReshapeRaw(kept), x._shape)]);
    }

    /// <summary>Sum over one axis.</summary>
    public Tensor Sum(int axis, bool keepDim = false) => Sum([axis], keepDim);

    /// <summary>Mean of all elements.</summary>
    public Tensor Mean() => Mean([], keepDim: false);

    /// <summary>Mean over one axis.</summary>
    public Tensor Mean(int axis, bool keepDim = false) => Mean([axis], keepDim);

    /// <summary>
    /// Mean over <paramref name="axes"/> (empty = all): the sum divided by the number of reduced
    /// elements. Backward: g / N broadcast back.
    /// </summary>
    public Tensor Mean(int[] axes, bool keepDim = false)
    {
        var x = this;
        var ax = Shapes.Axes("mean", axes, Rank);
        long n = 1;
        foreach (int a in ax) n *= _shape[a];
        if (n == 0) throw new ArgumentException($"mean: reducing axes of size 0 in shape {Shapes.Format(_shape)} has no elements to average.");
        var y = ScaleRaw(SumRaw(x, ax, keepDim), 1.0 / n);
        if (!NeedsGrad(x)) return y;
        var kept = KeptShape(x._shape, ax);
        return y.Record("mean", [x], g => [ExpandRaw(ScaleRaw(g, 1.0 / n).ReshapeRaw(kept), x._shape)]);
    }

    /// <summary>
    /// Variance over <paramref name="axes"/> (empty = all): <c>Σ(x - mean)² / (N - correction)</c>
    /// (correction 1 = unbiased, PyTorch's default; 0 = population). Composed of differentiable ops,
    /// so its gradient is <c>2(x - mean)/(N - correction)</c> by the chain rule.
    /// </summary>
    public Tensor Var(int[] axes, int correction = 1, bool keepDim = false)
    {
        var ax = Shapes.Axes("var", axes, Rank);
        long n = 1;
        foreach (int a in ax) n *= _shape[a];
        if (n - correction <= 0)
            throw new ArgumentException($"var: {n} elements per reduction with correction {correction} leaves no degrees of freedom (shape {Shapes.Format(_shape)}).");
        var centered = this - Mean(ax, keepDim: true);
        return centered.Square().Sum(ax, keepDim) / (double)(n - correction);
    }

    /// <summary>Variance over one axis.</summary>
    public Tensor Var(int axis, int correction = 1, bool keepDim = false) => Var([axis], correction, keepDim);

    /// <summary>
    /// Maximum over one axis and the index where it occurs (the first index at ties; a NaN counts as
    /// the maximum). Backward: g flows to the arg-max element only.
    /// </summary>
    public (Tensor Values, IndexTensor Indices) Max(int axis, bool keepDim = false)
    {
        var x = this;
        int a = Shapes.Axis("max", axis, Rank);
        if (_shape[a] == 0) throw new ArgumentException($"max: axis {axis} of shape {Shapes.Format(_shape)} is empty.");
        var (outer, n, inner) = Split3(_shape, a);
        var kept = KeptShape(_shape, [a]);
        var outShape = keepDim ? kept : Removed(_shape, [a]);
        var y = Uninitialized("max", x, outShape);
        var idx = new int[outer * inner];
        if (x.Storage is float[]) ReduceKernels.Max(x.Span<float>(), outer, n, inner, y.Span<float>(), idx);
        else ReduceKernels.Max(x.Span<double>(), outer, n, inner, y.Span<double>(), idx);
        var indices = new IndexTensor(idx, (int[])outShape.Clone());
        if (!NeedsGrad(x)) return (y, indices);
        y.Record("max", [x], g =>
        {
            var dx = ZerosOf(x, x._shape);
            for (int o = 0; o < outer; o++)
                for (int i = 0; i < inner; i++)
                {
                    int k = o * inner + i;
                    dx.SetFlatRaw((o * n + idx[k]) * inner + i, g.GetFlat(k));
                }
            return [dx];
        });
        return (y, indices);
    }

    /// <summary>
    /// Maximum over <paramref name="axes"/> (empty = all), without indices: the reduced axes are
    /// moved last and flattened, then <see cref="Max(int, bool)"/> runs on that axis.
    /// </summary>
    public Tensor Max(int[] axes, bool keepDim = false)
    {
        var ax = Shapes.Axes("max", axes, Rank);
        if (ax.Length == 1) return Max(ax[0], keepDim).Values;
        var rest = Enumerable.Range(0, Rank).Where(i => Array.IndexOf(ax, i) < 0).ToArray();
        var perm = rest.Concat(ax).ToArray();
        var restShape = rest.Select(i => _shape[i]).ToArray();
        if (restShape.Contains(0))
        {
            // Nothing to reduce into: an empty result (reduced axes must still be non-empty).
            foreach (int a in ax)
                if (_shape[a] == 0) throw new ArgumentException($"max: axis {a} of shape {Shapes.Format(_shape)} is empty.");
            return ZerosOf(this, keepDim ? KeptShape(_shape, ax) : restShape);
        }
        var flat = Permute(perm).Reshape([.. restShape, -1]);
        var (values, _) = flat.Max(-1);
        return values.Reshape(keepDim ? KeptShape(_shape, ax) : restShape);
    }

    /// <summary>
    /// Sum over sorted, normalised axes without recording (the shared reduction path). A run of adjacent axes is one
    /// reduction over their flattened extent (the data are contiguous): a global average pool's axes (2, 3) of
    /// [N, C, H, W] are N·C sums of H·W elements, not N·C·H sums of W and then N·C of H.
    /// </summary>
    internal static Tensor SumRaw(Tensor x, int[] axes, bool keepDim)
    {
        var cur = x;
        var shape = (int[])x._shape.Clone();
        for (int k = axes.Length - 1; k >= 0;)
        {
            int last = axes[k], first = last;
            for (k--; k >= 0 && axes[k] == first - 1; k--) first = axes[k];
            var (outer, n, inner) = Split3(shape, first, last);
            for (int i = first; i <= last; i++) shape[i] = 1;
            var y = Uninitialized("sum", x, (int[])shape.Clone());
            if (x.Storage is float[]) ReduceKernels.Sum(cur.Span<float>(), outer, n, inner, y.Span<float>());
            else ReduceKernels.Sum(cur.Span<double>(), outer, n, inner, y.Span<double>());
            cur = y;
        }
        if (cur == x) cur = x.CloneRaw();
        return keepDim ? cur : cur.ReshapeRaw(Removed(x._shape, axes));
    }

    internal static (int Outer, int N, int Inner) Split3(ReadOnlySpan<int> shape, int axis) => Split3(shape, axis, axis);

    /// <summary>The (outer, n, inner) view of contiguous data with axes [first, last] flattened into the middle one.</summary>
    internal static (int Outer, int N, int Inner) Split3(ReadOnlySpan<int> shape, int first, int last)
    {
        int outer = 1, n = 1, inner = 1;
        for (int i = 0; i < first; i++) outer *= shape[i];
        for (int i = first; i <= last; i++) n *= shape[i];
        for (int i = last + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, n, inner);
    }

    internal static int[] KeptShape(ReadOnlySpan<int> shape, int[] axes)
    {
        var r = shape.ToArray();
        foreach (int a in axes) r[a] = 1;
        return r;
    }

    internal static int[] Removed(ReadOnlySpan<int> shape, int[] axes)
    {
        var r = new List<int>(shape.Length);
        for (int i = 0; i < shape.Length; i++)
            if (Array.IndexOf(axes, i) < 0) r.Add(shape[i]);
        return r.ToArray();
    }
}
