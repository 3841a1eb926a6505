using GradFlow.Kernels;

namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>
    /// Softmax along <paramref name="axis"/>: <c>exp(x_i − max) / Σ exp(x_j − max)</c> (stable for any
    /// finite input). Backward: <c>y ⊙ (g − Σ g⊙y)</c>.
    /// </summary>
    public Tensor Softmax(int axis = -1) => SoftmaxFamily("softmax", axis, log: false);

    /// <summary>
    /// Log-softmax along <paramref name="axis"/>: <c>x_i − max − log Σ exp(x_j − max)</c>.
    /// Backward: <c>g − exp(y)·Σ g</c>.
    /// </summary>
    public Tensor LogSoftmax(int axis = -1) => SoftmaxFamily("log_softmax", axis, log: true);

    private Tensor SoftmaxFamily(string op, int axis, bool log)
    {
        int a = Shapes.Axis(op, axis, Math.Max(Rank, 1));
        if (Rank == 0) return Reshape(1).SoftmaxFamily(op, 0, log).Reshape();
        if (a != Rank - 1)
        {
            // Move the axis last, run on rows, move it back: both permutes are differentiable.
            var perm = Enumerable.Range(0, Rank).ToArray();
            (perm[a], perm[Rank - 1]) = (perm[Rank - 1], perm[a]);
            return Permute(perm).SoftmaxFamily(op, -1, log).Permute(perm);
        }
        var x = this;
        int n = _shape[^1];
        var y = Uninitialized(op, x, _shape);
        if (Count > 0)
        {
            if (x.Storage is float[])
            {
                if (log) SoftmaxKernels.LogSoftmax(x.Span<float>(), y.Span<float>(), n);
                else SoftmaxKernels.Softmax(x.Span<float>(), y.Span<float>(), n);
            }
            else if (log) SoftmaxKernels.LogSoftmax(x.Span<double>(), y.Span<double>(), n);
            else SoftmaxKernels.Softmax(x.Span<double>(), y.Span<double>(), n);
        }
        if (!NeedsGrad(x)) return y;
        return y.Record(op, [x], g =>
        {
            var dx = Uninitialized(op, x, x._shape);
            if (dx.Count == 0) return [dx];
            if (dx.Storage is float[])
            {
                if (log) SoftmaxKernels.LogSoftmaxBackward(y.Span<float>(), g.Span<float>(), dx.Span<float>(), n);
                else SoftmaxKernels.SoftmaxBackward(y.Span<float>(), g.Span<float>(), dx.Span<float>(), n);
            }
            else if (log) SoftmaxKernels.LogSoftmaxBackward(y.Span<double>(), g.Span<double>(), dx.Span<double>(), n);
            else SoftmaxKernels.SoftmaxBackward(y.Span<double>(), g.Span<double>(), dx.Span<double>(), n);
            return [dx];
        });
    }
}
