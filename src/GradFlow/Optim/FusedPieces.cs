using GradFlow.Kernels;

namespace GradFlow.Optim;

/// <summary>
/// A step's fused parameter updates not yet run (SGD's momentum, Adam's): a tensor below two chunks is one piece, a
/// larger one is cut into chunks of <see cref="Chunk"/> elements. <see cref="Run"/> runs them all as one job of the
/// kernel threads, a task per piece (element-wise updates, so the same bits on any thread). Nothing is allocated per step.
/// </summary>
/// <typeparam name="TPiece">What the update of one tensor reads and writes (its arrays and constants).</typeparam>
internal sealed class FusedPieces<TPiece>
{
    /// <summary>Elements per task (64 Ki floats: 256 KiB of each operand).</summary>
    public const int Chunk = 1 << 16;

    private readonly List<(TPiece Piece, int Start, int Length)> _pending = [];
    private readonly Action<TPiece, int, int> _update;
    private readonly Action<int> _task;

    /// <param name="update">Updates elements [start, start + length) of a piece.</param>
    public FusedPieces(Action<TPiece, int, int> update)
    {
        _update = update;
        _task = t =>
        {
            var (piece, start, length) = _pending[t];
            _update(piece, start, length);
        };
    }

    /// <summary>Queues the update of a tensor of <paramref name="count"/> elements.</summary>
    public void Add(TPiece piece, int count)
    {
        if (count < 2 * Chunk) _pending.Add((piece, 0, count));
        else
            for (int start = 0; start < count; start += Chunk) _pending.Add((piece, start, Math.Min(Chunk, count - start)));
    }

    /// <summary>Runs the queued updates and forgets them.</summary>
    public void Run()
    {
        if (_pending.Count == 0) return;
        try
        {
            long elements = 0;
            foreach (var piece in _pending) elements += piece.Length;
            KernelThreads.Run(_pending.Count, _task, elements);
        }
        finally
        {
            _pending.Clear();
        }
    }
}
