namespace GradFlow.Tensors;

/// <summary>
/// An integer tensor of indices (class labels, gather/scatter positions, argmax results):
/// contiguous row-major <see cref="int"/> storage, not differentiable.
/// </summary>
public sealed class IndexTensor
{
    private readonly int[] _shape;

    internal IndexTensor(int[] data, int[] shape)
    {
        Data = data;
        _shape = shape;
    }

    /// <summary>Wraps a copy of <paramref name="data"/> with the given shape (default: 1-D).</summary>
    public static IndexTensor FromArray(int[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (shape.Length == 0) shape = [data.Length];
        int n = Shapes.Numel("IndexTensor.FromArray", shape);
        if (n != data.Length)
            throw new ArgumentException($"IndexTensor.FromArray: {data.Length} values do not fill shape {Shapes.Format(shape)} ({n} elements).");
        return new IndexTensor((int[])data.Clone(), (int[])shape.Clone());
    }

    internal int[] Data { get; }

    /// <summary>The dimensions.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    internal int[] ShapeArray => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public int Count => Data.Length;

    /// <summary>Element at a flat (row-major) position.</summary>
    public int this[int flatIndex] => Data[flatIndex];

    /// <summary>The same values as one dimension (sharing the storage).</summary>
    internal IndexTensor Flat() => Rank == 1 ? this : new IndexTensor(Data, [Data.Length]);

    /// <summary>A copy of the values, row-major.</summary>
    public int[] ToArray() => (int[])Data.Clone();

    /// <inheritdoc />
    public override string ToString() => $"IndexTensor(shape={Shapes.Format(_shape)})";
}
