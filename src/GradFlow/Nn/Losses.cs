using GradFlow.Kernels;
using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>How a loss combines its per-element values (PyTorch's <c>reduction</c>).</summary>
public enum Reduction
{
    /// <summary>The mean over elements (over examples for cross-entropy and NLL).</summary>
    Mean,
    /// <summary>The sum.</summary>
    Sum,
    /// <summary>No reduction: one value per element (per example for cross-entropy and NLL).</summary>
    None,
}

/// <summary>
/// Loss functions, as <c>torch.nn.functional</c>. Regression losses take input and target of the
/// same shape; classification losses take logits [N, C] (or [C]) and class indices [N] (or a
/// scalar index). Cross-entropy and binary cross-entropy with logits are fused ops with
/// hand-written backward rules (stable for any logit); the others are compositions of
/// differentiable tensor ops.
/// </summary>
public static class Losses
{
    /// <summary>Mean squared error, <c>(x − y)²</c> reduced.</summary>
    public static Tensor Mse(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        CheckSame("mse_loss", input, target);
        return Reduce((input - target).Square(), reduction);
    }

    /// <summary>Mean absolute error, <c>|x − y|</c> reduced (subgradient 0 at x = y).</summary>
    public static Tensor L1(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        CheckSame("l1_loss", input, target);
        return Reduce((input - target).Abs(), reduction);
    }

    /// <summary>
    /// Huber loss (δ = <paramref name="delta"/>, default 1): <c>½d²</c> for |d| &lt; δ, else
    /// <c>δ(|d| − ½δ)</c>, d = x − y. Computed as <c>½m² + δ(|d| − m)</c>, m = min(|d|, δ).
    /// </summary>
    public static Tensor Huber(Tensor input, Tensor target, double delta = 1.0, Reduction reduction = Reduction.Mean)
    {
        CheckSame("huber_loss", input, target);
        if (!(delta > 0)) throw new ArgumentException($"huber_loss: delta must be positive, got {delta}.");
        var d = (input - target).Abs();
        var m = d.Clamp(max: delta);
        return Reduce(m.Square() * 0.5 + (d - m) * delta, reduction);
    }

    /// <summary>
    /// Cross-entropy of logits against class indices, with optional label smoothing ε:
    /// <c>ℓ_n = −(1 − ε)·log p_n[y_n] − (ε/C)·Σ_c log p_n[c]</c>, p = softmax(x) (as PyTorch).
    /// Fused: one log-softmax pass forward; backward <c>(p − q)·g</c> with q the smoothed one-hot target.
    /// </summary>
    /// <param name="logits">[N, C] (or [C] for one example).</param>
    /// <param name="target">[N] class indices in [0, C) (or a one-element index for [C] logits).</param>
    /// <param name="labelSmoothing">ε in [0, 1].</param>
    /// <param name="reduction">Mean over examples (default), sum, or none ([N]).</param>
    public static Tensor CrossEntropy(Tensor logits, IndexTensor target, double labelSmoothing = 0.0, Reduction reduction = Reduction.Mean)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        if (!(labelSmoothing >= 0 && labelSmoothing <= 1))
            throw new ArgumentException($"cross_entropy: label smoothing must be in [0, 1], got {labelSmoothing}.");
        var (x, n, c) = Rows("cross_entropy", logits, target);
        var logp = Tensor.Uninitialized("cross_entropy", x, x.ShapeArray);
        var losses = Tensor.Uninitialized("cross_entropy", x, [n]);
        double eps = labelSmoothing;
        if (x.Storage is float[]) RowLogSoftmax<float>(x, logp, n, c);
        else RowLogSoftmax<double>(x, logp, n, c);
        for (int i = 0; i < n; i++)
        {
            double picked = logp.GetFlat(i * c + target.Data[i]);
            double mean = 0;
            if (eps > 0)
            {
                for (int j = 0; j < c; j++) mean += logp.GetFlat(i * c + j);
                mean /= c;
            }
            losses.SetFlatRaw(i, -(1 - eps) * picked - eps * mean);
        }
        var y = ReduceRaw(losses, reduction, logits.Rank == 1);
        if (!Tensor.NeedsGrad(logits)) return y;
        var idx = target.Data;
        return y.Record("cross_entropy", [logits], g =>
        {
            // dℓ_n/dx_nc = p_nc − q_nc, q = (1 − ε)·onehot + ε/C; times the reduction's weight.
            var dx = Tensor.Uninitialized("cross_entropy", x, x.ShapeArray);
            var gv = g.ToDoubleArray();
            if (x.Storage is float[]) CrossEntropyGradient<float>(logp, dx, idx, gv, n, c, eps, reduction);
            else CrossEntropyGradient<double>(logp, dx, idx, gv, n, c, eps, reduction);
            return [dx.ReshapeRaw(logits.ShapeArray)];
        });
    }

    /// <summary>Rows of [n, c] per kernel-thread task of the cross-entropy passes: about 16 Ki elements, by shape only.</summary>
    private static int RowBlock(int c) => Math.Max(1, (1 << 14) / Math.Max(1, c));

    /// <summary>Row-wise log-softmax of [n, c] in the row blocks of <see cref="CrossEntropyGradient"/> over the kernel threads (row by row: the same bits).</summary>
    private static void RowLogSoftmax<T>(Tensor x, Tensor logp, int n, int c) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int rows = RowBlock(c);
        Kernels.KernelThreads.Run((n + rows - 1) / rows, t =>
        {
            int r0 = t * rows, count = Math.Min(rows, n - r0);
            SoftmaxKernels.LogSoftmax(x.Span<T>().Slice(r0 * c, count * c), logp.Span<T>().Slice(r0 * c, count * c), c);
        }, (long)n * c);
    }

    /// <summary>
    /// <c>dx_nc = (e^(logp_nc) − q_nc)·w_n</c>, q = (1 − ε)·onehot + ε/C, w_n the reduction's weight of row n; evaluated
    /// in double and rounded once, rows split into tasks of the kernel threads by shape (the same bits on any thread).
    /// </summary>
    private static void CrossEntropyGradient<T>(Tensor logp, Tensor dx, int[] idx, double[] gv, int n, int c, double eps, Reduction reduction)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int rows = RowBlock(c);
        Kernels.KernelThreads.Run((n + rows - 1) / rows, t =>
        {
            var lp = logp.Span<T>();
            var d = dx.Span<T>();
            for (int i = t * rows, end = Math.Min(n, i + rows); i < end; i++)
            {
                double w = reduction switch { Reduction.Mean => gv[0] / n, Reduction.Sum => gv[0], _ => gv[i] };
                for (int j = 0; j < c; j++)
                {
                    double q = eps / c + (j == idx[i] ? 1 - eps : 0);
                    d[i * c + j] = T.CreateTruncating((Math.Exp(double.CreateTruncating(lp[i * c + j])) - q) * w);
                }
            }
        }, (long)n * c);
    }

    /// <summary>Negative log-likelihood of log-probabilities [N, C] against class indices: <c>ℓ_n = −x_n[y_n]</c>.</summary>
    public static Tensor Nll(Tensor logProbabilities, IndexTensor target, Reduction reduction = Reduction.Mean)
    {
        ArgumentNullException.ThrowIfNull(logProbabilities);
        ArgumentNullException.ThrowIfNull(target);
        var (_, n, c) = Rows("nll_loss", logProbabilities, target);
        var x = logProbabilities.Rank == 1 ? logProbabilities.Reshape(1, c) : logProbabilities;
        var picked = x.Gather(1, IndexTensor.FromArray(target.ToArray(), n, 1)).Reshape(n).Neg();
        if (reduction == Reduction.None && logProbabilities.Rank == 1) return picked.Reshape();
        return Reduce(picked, reduction);
    }

    /// <summary>
    /// Binary cross-entropy with logits: <c>ℓ = max(x, 0) − x·y + log(1 + e^−|x|)</c>, the stable form
    /// of <c>−[y log σ(x) + (1 − y) log(1 − σ(x))]</c>; targets y in [0, 1]. Fused: backward <c>(σ(x) − y)·g</c>.
    /// </summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target, Reduction reduction = Reduction.Mean)
    {
        CheckSame("binary_cross_entropy_with_logits", logits, target);
        var xv = logits.ToDoubleArray();
        var yv = target.ToDoubleArray();
        var l = Tensor.Uninitialized("binary_cross_entropy_with_logits", logits, logits.ShapeArray);
        for (int i = 0; i < xv.Length; i++)
        {
            double x = xv[i];
            l.SetFlatRaw(i, Math.Max(x, 0) - x * yv[i] + Math.Log(1 + Math.Exp(-Math.Abs(x))));
        }
        var y = ReduceRaw(l, reduction, scalarInput: false);
        if (!Tensor.NeedsGrad(logits, target)) return y;
        int count = xv.Length;
        return y.Record("binary_cross_entropy_with_logits", [logits, target], g =>
        {
            var gv = g.ToDoubleArray();
            var dx = Tensor.Uninitialized("binary_cross_entropy_with_logits", logits, logits.ShapeArray);
            var dy = Tensor.Uninitialized("binary_cross_entropy_with_logits", target, target.ShapeArray);
            for (int i = 0; i < count; i++)
            {
                double w = reduction switch { Reduction.Mean => gv[0] / count, Reduction.Sum => gv[0], _ => gv[i] };
                double x = xv[i];
                double s = x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));
                dx.SetFlatRaw(i, (s - yv[i]) * w);
                dy.SetFlatRaw(i, -x * w);
            }
            return [dx, target.RequiresGrad ? dy : null];
        });
    }

    private static Tensor Reduce(Tensor perElement, Reduction reduction) => reduction switch
    {
        Reduction.Mean => perElement.Mean(),
        Reduction.Sum => perElement.Sum(),
        _ => perElement,
    };

    /// <summary>Reduces a tensor that is not in the graph (the fused losses record their own node).</summary>
    private static Tensor ReduceRaw(Tensor perElement, Reduction reduction, bool scalarInput)
    {
        using (GradMode.NoGrad())
        {
            var r = Reduce(perElement, reduction);
            return reduction == Reduction.None && scalarInput ? r.Reshape() : r;
        }
    }

    private static (Tensor Logits2d, int N, int C) Rows(string op, Tensor logits, IndexTensor target)
    {
        if (logits.Rank is not (1 or 2))
            throw new ArgumentException($"{op}: input must be [N, C] or [C], got shape {Shapes.Format(logits.Shape)}.");
        int n = logits.Rank == 2 ? logits.Shape[0] : 1;
        int c = logits.Shape[^1];
        if (target.Count != n || (logits.Rank == 2 && target.Rank != 1))
            throw new ArgumentException($"{op}: target shape {Shapes.Format(target.Shape)} does not match input shape {Shapes.Format(logits.Shape)} (needs [{n}] class indices).");
        for (int i = 0; i < n; i++)
            if ((uint)target.Data[i] >= (uint)c)
                throw new ArgumentException($"{op}: target {target.Data[i]} at position {i} is not a class index in [0, {c}).");
        if (n == 0) throw new ArgumentException($"{op}: the batch is empty.");
        var x = logits.Rank == 1 ? logits.Detach().ReshapeRaw([1, c]) : logits.Detach();
        return (x, n, c);
    }

    private static void CheckSame(string op, Tensor input, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(target);
        if (!input.Shape.SequenceEqual(target.Shape))
            throw new ArgumentException($"{op}: input shape {Shapes.Format(input.Shape)} and target shape {Shapes.Format(target.Shape)} differ.");
        if (input.DType != target.DType)
            throw new ArgumentException($"{op}: input is {input.DType} but target is {target.DType}.");
    }
}
