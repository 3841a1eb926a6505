namespace GradFlow.Data;

/// <summary>
/// Inputs read from disk example by example (a streamed <see cref="Dataset"/>): a CSV/TSV table
/// through its row index (<see cref="StreamedTable"/>), or an image folder's file list
/// (<see cref="ImageFolder.Stream"/>). Only the examples asked for are read, so memory is bounded by
/// a batch.
/// </summary>
public interface IInputSource
{
    /// <summary>Number of examples.</summary>
    int Count { get; }

    /// <summary>The shape of one example's inputs (e.g. <c>[features]</c> or <c>[C·H·W]</c>).</summary>
    IReadOnlyList<int> ExampleShape { get; }

    /// <summary>
    /// Reads examples <paramref name="rows"/> (in that order) into <paramref name="destination"/>,
    /// row-major, one example's values after another.
    /// </summary>
    /// <exception cref="InvalidDataException">naming the file (and line and column) when the data cannot be read.</exception>
    void Read(ReadOnlySpan<int> rows, Span<float> destination);
}
