namespace GradFlow.Tensors;

/// <summary>
/// A (height, width) pair for the 2-D ops: kernel size, stride, padding, dilation, output size. As
/// PyTorch's <c>int or (int, int)</c> arguments: an int converts to a square pair, a tuple to (H, W).
/// </summary>
/// <example><code>Tensor.Conv2d(x, w, stride: 2, padding: (1, 0));</code></example>
public readonly record struct Size2d(int H, int W)
{
    /// <summary>The square pair (n, n).</summary>
    public static implicit operator Size2d(int n) => new(n, n);

    /// <summary>The pair (h, w).</summary>
    public static implicit operator Size2d((int H, int W) pair) => new(pair.H, pair.W);

    /// <summary>Whether both parts are equal.</summary>
    public bool IsSquare => H == W;

    /// <summary>PyTorch's tuple form, <c>(3, 3)</c>.</summary>
    public override string ToString() => $"({H}, {W})";
}
