using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>One mini-batch: contiguous copies of the selected examples.</summary>
public sealed class Batch
{
    internal Batch(int index, int[] indices, Tensor inputs, IndexTensor? labels, Tensor? targets)
    {
        Index = index;
        Indices = indices;
        Inputs = inputs;
        Labels = labels;
        Targets = targets;
    }

    /// <summary>Position of this batch in its epoch (0-based).</summary>
    public int Index { get; }

    /// <summary>The data-set positions of the examples, in batch order.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>Number of examples in the batch.</summary>
    public int Count => Indices.Count;

    /// <summary>Inputs <c>[B, ...]</c>.</summary>
    public Tensor Inputs { get; }

    /// <summary>Class labels <c>[B]</c> (classification sets).</summary>
    public IndexTensor? Labels { get; }

    /// <summary>Targets <c>[B, ...]</c> (regression sets).</summary>
    public Tensor? Targets { get; }

    /// <summary>
    /// Examples <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> − 1 of this batch as a batch
    /// of their own (copies; same <see cref="Index"/>): a micro-batch of data-parallel training.
    /// </summary>
    public Batch Rows(int start, int count)
    {
        if (start < 0 || count < 1 || start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Batch.Rows: rows [{start}, {start}+{count}) are not a non-empty part of a batch of {Count}.");
        var rows = new int[count];
        for (int i = 0; i < count; i++) rows[i] = start + i;
        var indices = new int[count];
        for (int i = 0; i < count; i++) indices[i] = Indices[start + i];
        return new Batch(Index, indices, Dataset.GatherRows(Inputs, rows, null),
            Labels is null ? null : Dataset.GatherLabels(Labels, rows, null),
            Targets is null ? null : Dataset.GatherRows(Targets, rows, null));
    }
}

/// <summary>
/// Iterates a <see cref="Dataset"/> in mini-batches, reshuffled every epoch.
/// </summary>
/// <remarks>
/// Epoch <c>e</c>'s order is a Fisher-Yates permutation drawn from
/// <c>new Generator(Mix(seed + Mix(e + 1)))</c> (<c>Mix</c> the SplitMix64 finaliser), so it
/// depends only on the seed and the epoch number: resuming a run at epoch <c>e</c> sees exactly
/// the batches an uninterrupted run would. Without shuffling the order is <c>0..N-1</c>. The last
/// batch holds the remaining <c>N mod batchSize</c> examples, or is dropped when
/// <c>dropLast</c>. Each batch is copied into contiguous tensors; with
/// <c>reuseBuffers</c> the loader writes every batch into the same tensors (one set for full
/// batches, one for the short last batch), so a batch is valid only until the next one is
/// produced: use it for training steps, not to keep.
/// </remarks>
public sealed class DataLoader
{
    private Tensor? _fullInputs, _lastInputs, _fullTargets, _lastTargets;
    private IndexTensor? _fullLabels, _lastLabels;

    /// <summary>Creates a loader over <paramref name="dataset"/>.</summary>
    public DataLoader(Dataset dataset, int batchSize, bool shuffle = true, ulong seed = 0, bool dropLast = false, bool reuseBuffers = false)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"DataLoader: batch size {batchSize} must be at least 1.");
        Dataset = dataset;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        DropLast = dropLast;
        ReuseBuffers = reuseBuffers;
    }

    /// <summary>The data set.</summary>
    public Dataset Dataset { get; }

    /// <summary>Examples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Seed of the per-epoch shuffles.</summary>
    public ulong Seed { get; }

    /// <summary>Whether a last batch smaller than <see cref="BatchSize"/> is dropped.</summary>
    public bool DropLast { get; }

    /// <summary>Whether batches are written into reused tensors.</summary>
    public bool ReuseBuffers { get; }

    /// <summary>
    /// Augmentation applied to every batch's inputs (image batches <c>[B, C, H, W]</c>), drawn from a
    /// generator seeded by (seed, epoch, batch index); null (the default) leaves the inputs as they are.
    /// </summary>
    public ImageAugmentation? Augmentation { get; init; }

    /// <summary>Batches per epoch.</summary>
    public int BatchCount => DropLast ? Dataset.Count / BatchSize : (Dataset.Count + BatchSize - 1) / BatchSize;

    /// <summary>The order in which epoch <paramref name="epoch"/> visits the examples.</summary>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (Shuffle) return Dataset.Permutation(Dataset.Count, new Generator(Mix(Seed + Mix((ulong)epoch + 1))));
        var order = new int[Dataset.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        return order;
    }

    /// <summary>The batches of epoch <paramref name="epoch"/>, from batch <paramref name="from"/> on (the rest of an epoch a resumed run had begun).</summary>
    public IEnumerable<Batch> Epoch(int epoch, int from = 0)
    {
        var order = Order(epoch);
        int batches = BatchCount;
        for (int b = from; b < batches; b++)
        {
            int start = b * BatchSize;
            int count = Math.Min(BatchSize, order.Length - start);
            var indices = order.AsSpan(start, count).ToArray();
            var batch = MakeBatch(b, indices);
            if (Augmentation is { } augmentation)
                batch = new Batch(b, indices, augmentation.Apply(batch.Inputs, new Generator(Mix(Mix(Seed + Mix((ulong)epoch + 1)) + (ulong)b + 1))),
                    batch.Labels, batch.Targets);
            yield return batch;
        }
    }

    private Batch MakeBatch(int index, int[] indices)
    {
        var d = Dataset;
        bool full = indices.Length == BatchSize;
        if (!ReuseBuffers)
            return new Batch(index, indices, d.GatherInputs(indices, null),
                d.Labels is null ? null : Dataset.GatherLabels(d.Labels, indices, null),
                d.Targets is null ? null : Dataset.GatherRows(d.Targets, indices, null));

        ref var inputs = ref full ? ref _fullInputs : ref _lastInputs;
        inputs = d.GatherInputs(indices, inputs);
        IndexTensor? labels = null;
        Tensor? targets = null;
        if (d.Labels is not null)
        {
            ref var l = ref full ? ref _fullLabels : ref _lastLabels;
            labels = l = Dataset.GatherLabels(d.Labels, indices, l);
        }
        else
        {
            ref var t = ref full ? ref _fullTargets : ref _lastTargets;
            targets = t = Dataset.GatherRows(d.Targets!, indices, t);
        }
        return new Batch(index, indices, inputs, labels, targets);
    }

    /// <summary>The SplitMix64 finaliser (Steele, Lea and Flood, 2014): a bijective 64-bit mix.</summary>
    internal static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
