namespace GradFlow.Tensors;

/// <summary>
/// One recorded op of the define-by-run graph: the op's name, its inputs and its backward rule.
/// </summary>
/// <remarks>
/// The backward rule receives dL/d(output) and returns dL/d(input_i) for each input (null where an
/// input needs no gradient), already reduced to that input's shape. It captures what the forward
/// saved; <see cref="Release"/> drops it after a backward pass unless the graph is retained.
/// </remarks>
public sealed class Node
{
    private Func<Tensor, Tensor?[]>? _backward;
    private Action? _onRelease;

    internal Node(string op, Tensor[] inputs, Func<Tensor, Tensor?[]> backward, Action? onRelease = null)
    {
        Op = op;
        Inputs = inputs;
        _backward = backward;
        _onRelease = onRelease;
    }

    /// <summary>The op that produced the tensor, e.g. <c>matmul</c>.</summary>
    public string Op { get; }

    /// <summary>The op's tensor inputs, in argument order.</summary>
    public IReadOnlyList<Tensor> InputTensors => Inputs;

    internal Tensor[] Inputs { get; }

    /// <summary>Whether the saved values were freed by a backward pass.</summary>
    public bool IsReleased => _backward is null;

    internal Tensor?[] Apply(Tensor gradOutput)
    {
        var backward = _backward ?? throw new InvalidOperationException(
            $"backward: trying to backpropagate through '{Op}' a second time, but its saved values were freed by the first backward pass. Pass retainGraph: true to the first Backward call.");
        var grads = backward(gradOutput);
        if (grads.Length != Inputs.Length)
            throw new InvalidOperationException($"backward: '{Op}' returned {grads.Length} gradients for {Inputs.Length} inputs.");
        return grads;
    }

    /// <summary>
    /// Drops the backward rule and runs the op's release action once (e.g. returning saved buffers to
    /// the <see cref="TensorPool"/>): after this the saved values can never be read again.
    /// </summary>
    internal void Release()
    {
        _backward = null;
        var release = _onRelease;
        _onRelease = null;
        release?.Invoke();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Op}Backward";
}
