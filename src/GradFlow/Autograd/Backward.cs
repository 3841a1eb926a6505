using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GradFlow.Tensors;

namespace GradFlow.Autograd;

/// <summary>The reverse-mode engine: <c>loss.Backward()</c>.</summary>
/// <remarks>
/// Tensors are visited once each in reverse topological order, found by an iterative depth-first
/// search (deep graphs cannot overflow the stack). A tensor's gradient is complete when all its
/// consumers have run; then its hooks see it (and may replace it), and it flows either into
/// <see cref="Tensor.Grad"/> (leaves, accumulated with +=) or through its node's backward rule to
/// its inputs. A leaf is taken as soon as its last consumer has run (its consumers are counted before
/// the walk), not at its place in the order, so a parameter's gradient is final as early as the graph
/// allows (the <c>leafGradientReady</c> callback). The walk runs with grad mode off. Unless <c>retainGraph</c> is set, each node frees
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
    /// <param name="root">The output to differentiate (usually the loss).</param>
    /// <param name="gradient">dL/d(root); omitted for a one-element root (then 1).</param>
    /// <param name="retainGraph">Keep the saved values so that a second backward pass through the graph works.</param>
    /// <param name="releaseIntermediates">
    /// Opt-in for training loops that do not read intermediate results after backward: when the pass
    /// is done, the storage of every intermediate tensor of the graph (each non-leaf except the root,
    /// and their views) goes back to the tensor pool, so the next forward pass reuses it and a step in
    /// steady state allocates no tensor storage. Reading such a tensor afterwards throws (e.g. logits
    /// kept for an accuracy: compute it before backward, or leave this off). Leaves (parameters,
    /// inputs), their gradients, the root and retained gradients are never touched. Ignored with
    /// <paramref name="retainGraph"/>.
    /// </param>
    /// <param name="leafGradientReady">
    /// Called with each leaf as soon as this pass has added its last contribution to the leaf's <see cref="Tensor.Grad"/>, while
    /// the walk goes on to the nodes below (e.g. to start sending a layer's gradients while the layers before it run their
    /// backward: <c>Training.DataParallel</c>). A leaf is visited once, after every node that consumes it (the walk is in
    /// reverse topological order), so its gradient is final when it is visited; the callback must not change it. Leaves that
    /// no gradient reaches (not in the graph, or every path cut) are not called.
    /// </param>
    public static void Backward(this Tensor root, Tensor? gradient = null, bool retainGraph = false, bool releaseIntermediates = false,
        Action<Tensor>? leafGradientReady = null)
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
            gradient = Tensor.Full(1.0, root.DType, root.ShapeArray);
        }
        else
        {
            if (!root.Shape.SequenceEqual(gradient.Shape))
                throw new ArgumentException($"backward: gradient shape {Format(gradient.Shape)} differs from output shape {Format(root.Shape)}.");
            if (gradient.DType != root.DType)
                throw new ArgumentException($"backward: gradient type {gradient.DType} differs from output type {root.DType}.");
        }

        var ctx = Pass.Rent();
        var order = ctx.Order;
        TopologicalOrder(root, ctx);
        var outerTracking = TensorPool.Track(ctx.Fresh);
        try
        {
            root.PendingGrad = gradient;
            ctx.Ref(gradient);
            using var _ = GradMode.NoGrad();
            for (int k = order.Count - 1; k >= 0; k--)
            {
                var t = order[k];
                var g = t.PendingGrad;
                t.PendingGrad = null;
                if (g is null) continue;
                Visit(t, g, ctx, retainGraph, leafGradientReady);
            }
        }
        finally
        {
            foreach (var t in order) t.PendingGrad = null;
            TensorPool.Track(outerTracking);
        }
        try
        {
            if (releaseIntermediates && !retainGraph) ReleaseIntermediates(root, ctx);
        }
        finally
        {
            ctx.Return();
        }
    }

    /// <summary>
    /// Takes <paramref name="t"/>'s complete gradient <paramref name="g"/> (its pending slot already emptied): observers and
    /// hooks, then a leaf's accumulation, or the node's backward rule into its inputs' pending gradients.
    /// </summary>
    private static void Visit(Tensor t, Tensor g, Pass ctx, bool retainGraph, Action<Tensor>? leafGradientReady)
    {
        ctx.Unref(g);
        if (t.Observers is Action<Tensor> observer) observer(g);
        else if (t.Observers is Action<Tensor>[] observers)
            foreach (var o in observers) o(g);
        if (t.Hooks is { } hooks)
        {
            // A hook may keep what it sees: neither g nor a replacement is reused.
            ctx.Escape(g);
            g = RunHooks(t, hooks, g);
            ctx.Escape(g);
        }
        var node = t.GradFn;
        if (node is null)
        {
            Accumulate(t, g, ctx);
            leafGradientReady?.Invoke(t);
            return;
        }
        if (t.RetainsGrad)
        {
            ctx.Escape(g);
            Accumulate(t, g, ctx);
        }
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
            var pending = input.PendingGrad;
            if (pending is null)
            {
                input.PendingGrad = gi;
                ctx.Ref(gi);
            }
            else if (ctx.IsExclusive(pending))
            {
                pending.AddInPlace(gi);
                ctx.Candidates.Add(gi);
            }
            else
            {
                var sum = pending + gi;
                ctx.Unref(pending);
                input.PendingGrad = sum;
                ctx.Ref(sum);
                ctx.Candidates.Add(pending);
                ctx.Candidates.Add(gi);
            }
        }
        // A leaf whose last contribution this was is done now, not at its place in the walk (which may be much later: a
        // leaf input before the other operand, w·x, comes before x's whole subgraph in the order); the same bits either way.
        for (int i = 0; i < inputs.Length; i++)
        {
            var input = inputs[i];
            if (!input.IsLeaf) continue;
            ref int left = ref CollectionsMarshal.GetValueRefOrNullRef(ctx.LeafEdges, input);
            if (Unsafe.IsNullRef(ref left) || --left > 0) continue;
            var pending = input.PendingGrad;
            input.PendingGrad = null;
            if (pending is not null) Visit(input, pending, ctx, retainGraph, leafGradientReady);
        }
        // Only now: the same tensor may have gone to several inputs.
        ctx.Candidates.Add(g);
        ctx.RecycleCandidates();
    }

    /// <summary>Releases the storage of each non-leaf tensor of the graph whose storage no leaf, the root or a retained gradient shares.</summary>
    private static void ReleaseIntermediates(Tensor root, Pass ctx)
    {
        var keep = ctx.Keep;
        keep.Add(root.Box);
        foreach (var t in ctx.Order)
        {
            if (t.IsLeaf || t.RetainsGrad) keep.Add(t.Box);
            if (t.Grad is { } g) keep.Add(g.Box);
        }
        // Each storage once (views share it); the pool learns how much comes back before it does.
        long bytes = 0;
        var release = ctx.Release;
        foreach (var t in ctx.Order)
        {
            if (!t.IsLeaf && !t.IsReleased && keep.Add(t.Box))
            {
                release.Add(t);
                bytes += Bytes(t);
            }
            // engine-made gradients of leaves come back too, at the next ZeroGrad
            else if (t.IsLeaf && t.Grad is { IsEngineGrad: true, IsReleased: false } g) bytes += Bytes(g);
        }
        TensorPool.EndStep(bytes);
        foreach (var t in release) t.ReleaseStorage();
    }

    private static long Bytes(Tensor t) => t.Storage is double[] d ? d.Length * 8L : t.Storage.Length * 4L;

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

    /// <summary>
    /// Adds g into a leaf's (or retained) gradient. With no gradient yet, a temporary the engine owns
    /// alone becomes the gradient as is (no copy); anything else is copied, since g may be shared.
    /// </summary>
    private static void Accumulate(Tensor t, Tensor g, Pass ctx)
    {
        if (t.Grad is null)
        {
            if (ctx.IsUnreferencedTemporary(g))
            {
                ctx.Escape(g);
                t.Grad = g;
            }
            else
            {
                var copy = g.Clone();
                ctx.Escape(copy);
                t.Grad = copy;
            }
            t.Grad.IsEngineGrad = true;
            return;
        }
        var acc = t.Grad;
        if (!acc.Shape.SequenceEqual(g.Shape) || acc.DType != g.DType)
            throw new InvalidOperationException(
                $"backward: existing Grad of shape {Format(acc.Shape)} cannot accumulate a gradient of shape {Format(g.Shape)}.");
        acc.AddInPlace(g);
        ctx.Candidates.Add(g);
        ctx.RecycleCandidates();
    }

    /// <summary>Tensors reachable from <paramref name="root"/> through nodes, inputs before consumers (into ctx.Order).</summary>
    private static void TopologicalOrder(Tensor root, Pass ctx)
    {
        var order = ctx.Order;
        var visited = ctx.Visited;
        var stack = ctx.Stack;
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
                if (child.RequiresGrad && child.IsLeaf) CollectionsMarshal.GetValueRefOrAddDefault(ctx.LeafEdges, child, out _)++;
                if (child.RequiresGrad && visited.Add(child)) stack.Push((child, 0));
                continue;
            }
            order.Add(t);
        }
    }

    /// <summary>
    /// The bookkeeping of one backward pass, reused across passes on a thread (nothing is allocated
    /// per pass in steady state). <see cref="Fresh"/> holds every storage array allocated during the
    /// pass that has not escaped (to a hook, a retained or leaf gradient); <see cref="_refs"/> counts,
    /// per storage, the pending-gradient slots that refer to it. A fresh storage with no reference
    /// left is dead: it goes back to the <see cref="TensorPool"/>.
    /// </summary>
    private sealed class Pass
    {
        [ThreadStatic] private static Pass? _cached;

        public readonly List<Tensor> Order = [];
        public readonly HashSet<Tensor> Visited = new(IdentityComparer<Tensor>.Instance);
        public readonly Stack<(Tensor Tensor, int Next)> Stack = new();
        public readonly HashSet<Array> Fresh = new(ReferenceEqualityComparer.Instance);
        public readonly List<Tensor> Candidates = [];
        public readonly HashSet<StorageBox> Keep = new(IdentityComparer<StorageBox>.Instance);
        public readonly List<Tensor> Release = [];
        /// <summary>Per leaf of the graph: the node inputs that refer to it and have not yet given it their gradient.</summary>
        public readonly Dictionary<Tensor, int> LeafEdges = new(IdentityComparer<Tensor>.Instance);
        private readonly Dictionary<StorageBox, int> _refs = new(IdentityComparer<StorageBox>.Instance);

        /// <summary>The thread's cached pass (a new one when a backward runs inside another, e.g. from a hook).</summary>
        public static Pass Rent()
        {
            var p = _cached ?? new Pass();
            _cached = null;
            return p;
        }

        public void Return()
        {
            Order.Clear();
            Visited.Clear();
            Stack.Clear();
            Fresh.Clear();
            Candidates.Clear();
            Keep.Clear();
            Release.Clear();
            LeafEdges.Clear();
            _refs.Clear();
            _cached = this;
        }

        public void Ref(Tensor t) => _refs[t.Box] = _refs.GetValueOrDefault(t.Box) + 1;

        public void Unref(Tensor t)
        {
            int n = _refs.GetValueOrDefault(t.Box) - 1;
            if (n <= 0) _refs.Remove(t.Box);
            else _refs[t.Box] = n;
        }

        public void Escape(Tensor t)
        {
            if (!t.IsReleased) Fresh.Remove(t.Storage);
        }

        /// <summary>Allocated in this pass, not escaped, and no pending slot refers to it.</summary>
        public bool IsUnreferencedTemporary(Tensor t) => !t.IsReleased && !_refs.ContainsKey(t.Box) && Fresh.Contains(t.Storage);

        /// <summary>A pending gradient that only its own slot refers to and that the engine allocated: safe to add into.</summary>
        public bool IsExclusive(Tensor t) => !t.IsReleased && _refs.GetValueOrDefault(t.Box) == 1 && Fresh.Contains(t.Storage);

        public void RecycleCandidates()
        {
            foreach (var c in Candidates)
            {
                if (!IsUnreferencedTemporary(c)) continue;
                Fresh.Remove(c.Storage);
                c.ReleaseStorage();
            }
            Candidates.Clear();
        }
    }

    private static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
