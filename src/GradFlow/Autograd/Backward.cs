using GradFlow.Tensors;

namespace GradFlow.Autograd;

/// <summary>The reverse-mode engine: <c>loss.Backward()</c>.</summary>
/// <remarks>
/// Tensors are visited once each in reverse topological order, found by an iterative depth-first
/// search (deep graphs cannot overflow the stack). A tensor's gradient is complete when all its
/// consumers have run; then its hooks see it (and may replace it), and it flows either into
/// <see cref="Tensor.Grad"/> (leaves, accumulated with +=) or through its node's backward rule to
/// its inputs. The walk runs with grad mode off. Unless <c>retainGraph</c> is set, each node frees
/// its saved values after use, so a second pass through it throws.
/// </remarks>
public static class BackwardEngine
{
    /// <summary>
    /// Computes dL/d(leaf) for every leaf that requires grad and adds it to the leaf's
    /// <see cref="Tensor.Grad"/>. <paramref name="gradient"/> is dL/d(<paramref name="root"/>): it may
    /// be omitted only for a one-element root (then 1).
    /// </summary>
    /// <exception cref="InvalidOperationException">when the root does not require grad, is not a
    /// scalar and no gradient is given, or the graph was freed by an earlier backward pass.</exception>
    /// <exception cref="ArgumentException">when <paramref name="gradient"/> has the wrong shape or type.</exception>
    public static void Backward(this Tensor root, Tensor? gradient = null, bool retainGraph = false)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (!root.RequiresGrad)
            throw new InvalidOperationException(
                $"backward: the tensor of shape {Format(root.Shape)} does not require grad and has no grad_fn; set RequiresGrad on the inputs before computing it.");
        if (gradient is null)
        {
            if (root.Count != 1)
                throw new InvalidOperationException(
                    $"backward: the output has shape {Format(root.Shape)}, not a scalar; pass its gradient (dL/doutput) explicitly.");
            gradient = Tensor.Full(1.0, root.DType, root.Shape.ToArray());
        }
        else
        {
            if (!root.Shape.SequenceEqual(gradient.Shape))
                throw new ArgumentException($"backward: gradient shape {Format(gradient.Shape)} differs from output shape {Format(root.Shape)}.");
            if (gradient.DType != root.DType)
                throw new ArgumentException($"backward: gradient type {gradient.DType} differs from output type {root.DType}.");
        }

        var order = TopologicalOrder(root);
        try
        {
            root.PendingGrad = gradient;
            using var _ = GradMode.NoGrad();
            for (int k = order.Count - 1; k >= 0; k--)
            {
                var t = order[k];
                var g = t.PendingGrad;
                t.PendingGrad = null;
                if (g is null) continue;
                if (t.Hooks is { } hooks) g = RunHooks(t, hooks, g);
                var node = t.GradFn;
                if (node is null)
                {
                    Accumulate(t, g);
                    continue;
                }
                if (t.RetainsGrad) Accumulate(t, g);
                var grads = node.Apply(g);
                if (!retainGraph) node.Release();
                var inputs = node.Inputs;
                for (int i = 0; i < inputs.Length; i++)
                {
                    var gi = grads[i];
                    var input = inputs[i];
                    if (gi is null || !input.RequiresGrad) continue;
                    if (!input.Shape.SequenceEqual(gi.Shape))
                        throw new InvalidOperationException(
                            $"backward: '{node.Op}' produced a gradient of shape {Format(gi.Shape)} for input {i} of shape {Format(input.Shape)}.");
                    input.PendingGrad = input.PendingGrad is null ? gi : input.PendingGrad + gi;
                }
            }
        }
        finally
        {
            foreach (var t in order) t.PendingGrad = null;
        }
    }

    private static Tensor RunHooks(Tensor t, object hooks, Tensor g)
    {
        // One delegate, or a copy-on-write array: a hook that removes itself does not disturb the loop.
        if (hooks is Func<Tensor, Tensor?> one) return Replace(t, one(g), g);
        foreach (var hook in (Func<Tensor, Tensor?>[])hooks) g = Replace(t, hook(g), g);
        return g;
    }

    private static Tensor Replace(Tensor t, Tensor? replaced, Tensor g)
    {
        if (replaced is null) return g;
        if (!replaced.Shape.SequenceEqual(t.Shape) || replaced.DType != t.DType)
            throw new InvalidOperationException(
                $"backward: a hook on a tensor of shape {Format(t.Shape)} ({t.DType}) returned a gradient of shape {Format(replaced.Shape)} ({replaced.DType}).");
        return replaced;
    }

    private static void Accumulate(Tensor t, Tensor g)
    {
        if (t.Grad is null)
        {
            // Own the storage: g may be shared with other tensors' gradients.
            t.Grad = g.Clone();
            return;
        }
        var acc = t.Grad;
        if (!acc.Shape.SequenceEqual(g.Shape) || acc.DType != g.DType)
            throw new InvalidOperationException(
                $"backward: existing Grad of shape {Format(acc.Shape)} cannot accumulate a gradient of shape {Format(g.Shape)}.");
        acc.AddInPlace(g);
    }

    /// <summary>Tensors reachable from <paramref name="root"/> through nodes, inputs before consumers.</summary>
    private static List<Tensor> TopologicalOrder(Tensor root)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor Tensor, int Next)>();
        visited.Add(root);
        stack.Push((root, 0));
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.GradFn?.Inputs;
            if (inputs is not null && next < inputs.Length)
            {
                stack.Push((t, next + 1));
                var child = inputs[next];
                if (child.RequiresGrad && visited.Add(child)) stack.Push((child, 0));
                continue;
            }
            order.Add(t);
        }
        return order;
    }

    private static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
