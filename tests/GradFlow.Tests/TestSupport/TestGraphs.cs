using GradFlow.Tensors;

namespace GradFlow.Tests.TestSupport;

/// <summary>What a tensor's autograd graph is made of.</summary>
internal static class TestGraphs
{
    /// <summary>How many nodes of each op the graph that made <paramref name="y"/> has (each node once).</summary>
    public static Dictionary<string, int> OpCounts(Tensor y)
    {
        var ops = new Dictionary<string, int>();
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Tensor>([y]);
        while (stack.Count > 0)
        {
            var t = stack.Pop();
            if (!seen.Add(t) || t.GradFn is null) continue;
            ops[t.GradFn.Op] = ops.GetValueOrDefault(t.GradFn.Op) + 1;
            foreach (var input in t.GradFn.InputTensors) stack.Push(input);
        }
        return ops;
    }
}
