using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// A supervised data set: inputs <c>[N, ...]</c> and, per example, either a class
/// label (<see cref="Labels"/>, an <see cref="IndexTensor"/> <c>[N]</c>, for classification) or a
/// float target (<see cref="Targets"/>, a <see cref="Tensor"/> <c>[N, ...]</c>, for regression).
/// </summary>
/// <remarks>
/// The inputs are held in memory (<see cref="Inputs"/>), or, for a streamed set
/// (<see cref="Streamed"/>, <see cref="IsStreamed"/>), read from an <see cref="IInputSource"/> only
/// when a batch asks for them: a streamed set is a list of the source's rows (a subset or split is
/// a new list over the same source) and, when standardised, the statistics applied to each row as
/// it is read. Labels and targets (one per example) stay in memory either way.
/// </remarks>
/// <example>
/// <code>
/// var data = Synthetic.TwoSpirals(1000, noise: 0.05, turns: 1.5, seed: 7);
/// var (train, test) = data.Split(800);
/// </code>
/// </example>
public sealed class Dataset
{
    private readonly Tensor? _inputs;
    private readonly IInputSource? _source;
    private readonly int[]? _rows;
    private readonly int[] _exampleShape;
    private readonly Standardizer? _standardizer;

    private Dataset(Tensor inputs, IndexTensor? labels, Tensor? targets, int classCount, IReadOnlyList<string>? classNames)
    {
        _inputs = inputs;
        _exampleShape = inputs.Shape[1..].ToArray();
        Count = inputs.Size(0);
        Labels = labels;
        Targets = targets;
        ClassCount = classCount;
        ClassNames = classNames;
    }

    /// <summary>
    /// A classification set: <paramref name="inputs"/> <c>[N, ...]</c>, <paramref name="labels"/> <c>[N]</c> in <c>0..classCount-1</c>,
    /// or <c>[N, T]</c>, a class for each of T positions (a language model's next tokens).
    /// </summary>
    /// <exception cref="ArgumentException">when the shapes disagree, or a label is out of range (the message gives its position).</exception>
    public static Dataset Classification(Tensor inputs, IndexTensor labels, int classCount, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        CheckInputs(inputs);
        if (labels.Rank is not (1 or 2) || labels.Shape[0] != inputs.Size(0))
            throw new ArgumentException(
                $"Dataset.Classification: labels have shape {Shapes.Format(labels.Shape)}, expected [{inputs.Size(0)}] or [{inputs.Size(0)}, T] to match inputs {Shapes.Format(inputs.Shape)}.", nameof(labels));
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 1);
        if (classNames is not null && classNames.Count != classCount)
            throw new ArgumentException($"Dataset.Classification: {classNames.Count} class names for {classCount} classes.", nameof(classNames));
        for (int i = 0; i < labels.Count; i++)
            if ((uint)labels[i] >= (uint)classCount)
                throw new ArgumentException($"Dataset.Classification: label {labels[i]} at position {i} is outside 0..{classCount - 1}.", nameof(labels));
        return new Dataset(inputs, labels, null, classCount, classNames);
    }

    /// <summary>A regression set: <paramref name="inputs"/> <c>[N, ...]</c>, <paramref name="targets"/> <c>[N, ...]</c>.</summary>
    public static Dataset Regression(Tensor inputs, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(targets);
        CheckInputs(inputs);
        if (targets.Rank == 0 || targets.Size(0) != inputs.Size(0))
            throw new ArgumentException(
                $"Dataset.Regression: targets have shape {Shapes.Format(targets.Shape)}, expected [{inputs.Size(0)}, ...] to match inputs {Shapes.Format(inputs.Shape)}.", nameof(targets));
        return new Dataset(inputs, null, targets, 0, null);
    }

    private Dataset(IInputSource source, int[] rows, int[] exampleShape, Standardizer? standardizer, IndexTensor? labels, Tensor? targets, int classCount, IReadOnlyList<string>? classNames)
    {
        _source = source;
        _rows = rows;
        _exampleShape = exampleShape;
        _standardizer = standardizer;
        Count = rows.Length;
        Labels = labels;
        Targets = targets;
        ClassCount = classCount;
        ClassNames = classNames;
    }

    /// <summary>
    /// A streamed set over every example of <paramref name="source"/>, with either
    /// <paramref name="labels"/> <c>[N]</c> (and <paramref name="classCount"/>) or
    /// <paramref name="targets"/> <c>[N, ...]</c>: the inputs are read when a batch needs them.
    /// </summary>
    /// <exception cref="ArgumentException">when neither or both of labels and targets are given, their length is not the source's, or a label is out of range.</exception>
    public static Dataset Streamed(IInputSource source, IndexTensor? labels, Tensor? targets, int classCount = 0, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (labels is null == targets is null)
            throw new ArgumentException("Dataset.Streamed: give either class labels or regression targets.", nameof(labels));
        int n = source.Count;
        if (labels is not null)
        {
            if (labels.Rank != 1 || labels.Shape[0] != n)
                throw new ArgumentException($"Dataset.Streamed: labels have shape {Shapes.Format(labels.Shape)}, expected [{n}].", nameof(labels));
            ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 1);
            for (int i = 0; i < n; i++)
                if ((uint)labels[i] >= (uint)classCount)
                    throw new ArgumentException($"Dataset.Streamed: label {labels[i]} at position {i} is outside 0..{classCount - 1}.", nameof(labels));
        }
        else if (targets!.Rank == 0 || targets.Size(0) != n)
            throw new ArgumentException($"Dataset.Streamed: targets have shape {Shapes.Format(targets.Shape)}, expected [{n}, ...].", nameof(targets));
        var rows = new int[n];
        for (int i = 0; i < n; i++) rows[i] = i;
        return new Dataset(source, rows, [.. source.ExampleShape], null, labels, targets, labels is null ? 0 : classCount, classNames);
    }
    private static void CheckInputs(Tensor inputs)
    {
        if (inputs.Rank == 0)
            throw new ArgumentException("Dataset: inputs must have a leading example dimension [N, ...]; got a scalar.", nameof(inputs));
    }

    /// <summary>The inputs, <c>[N, ...]</c>, of a set held in memory.</summary>
    /// <exception cref="InvalidOperationException">for a streamed set: read its inputs by batches (<see cref="DataLoader"/>) or <see cref="Materialize"/> a subset.</exception>
    public Tensor Inputs => _inputs ?? throw new InvalidOperationException(
        $"Dataset: the inputs of this streamed set ({Count} examples) are read from disk by batches; use a DataLoader, or Materialize() a subset.");

    /// <summary>Whether the inputs are read from disk when asked for (<see cref="Streamed"/>) rather than held in memory.</summary>
    public bool IsStreamed => _source is not null;

    /// <summary>The shape of the inputs, <c>[N, ...]</c> (known without reading a streamed set).</summary>
    public int[] InputShape => [Count, .. _exampleShape];

    /// <summary>Class labels <c>[N]</c> for a classification set; null for regression.</summary>
    public IndexTensor? Labels { get; }

    /// <summary>Float targets <c>[N, ...]</c> for a regression set; null for classification.</summary>
    public Tensor? Targets { get; }

    /// <summary>Number of classes (0 for regression).</summary>
    public int ClassCount { get; }

    /// <summary>Human-readable class names, when known.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>True when targets are class labels.</summary>
    public bool IsClassification => Labels is not null;

    /// <summary>Number of examples N.</summary>
    public int Count { get; }

    /// <summary>Number of examples of each class (classification sets only).</summary>
    public int[] ClassCounts()
    {
        if (Labels is null) throw new InvalidOperationException("ClassCounts: this is a regression data set; it has no class labels.");
        var counts = new int[ClassCount];
        foreach (int y in Labels.Data) counts[y]++;
        return counts;
    }

    /// <summary>The examples at <paramref name="indices"/> (in that order; repeats allowed), copied.</summary>
    /// <exception cref="ArgumentOutOfRangeException">when an index is outside <c>0..Count-1</c>.</exception>
    public Dataset Subset(ReadOnlySpan<int> indices)
    {
        for (int i = 0; i < indices.Length; i++)
            if ((uint)indices[i] >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"Dataset.Subset: index {indices[i]} at position {i} is outside 0..{Count - 1}.");
        if (_source is not null)
        {
            var rows = new int[indices.Length];
            for (int i = 0; i < rows.Length; i++) rows[i] = _rows![indices[i]];
            return new Dataset(_source, rows, _exampleShape, _standardizer, Labels is null ? null : GatherLabels(Labels, indices, null),
                Targets is null ? null : GatherRows(Targets, indices, null), ClassCount, ClassNames);
        }
        var inputs = GatherRows(Inputs, indices, null);
        if (Labels is not null)
            return new Dataset(inputs, GatherLabels(Labels, indices, null), null, ClassCount, ClassNames);
        return new Dataset(inputs, null, GatherRows(Targets!, indices, null), 0, null);
    }

    /// <summary>The same examples held in memory: a streamed set's inputs read (all of them: use it on a subset); a set in memory itself.</summary>
    public Dataset Materialize()
    {
        if (_source is null) return this;
        var all = new int[Count];
        for (int i = 0; i < all.Length; i++) all[i] = i;
        var inputs = GatherInputs(all, null);
        return Labels is not null ? new Dataset(inputs, Labels, null, ClassCount, ClassNames) : new Dataset(inputs, null, Targets, 0, null);
    }

    /// <summary>The same examples with each input laid out as <paramref name="exampleShape"/> (the same number of values).</summary>
    /// <exception cref="ArgumentException">when the number of values per example differs.</exception>
    public Dataset WithExampleShape(IReadOnlyList<int> exampleShape)
    {
        ArgumentNullException.ThrowIfNull(exampleShape);
        int per = 1, now = 1;
        foreach (int d in exampleShape) per *= d;
        foreach (int d in _exampleShape) now *= d;
        if (per != now)
            throw new ArgumentException($"Dataset.WithExampleShape: {Shapes.Format([.. exampleShape])} has {per} values, the examples {now}.", nameof(exampleShape));
        if (_source is not null) return new Dataset(_source, _rows!, [.. exampleShape], _standardizer, Labels, Targets, ClassCount, ClassNames);
        var inputs = Inputs.Reshape([Count, .. exampleShape]);
        return Labels is not null ? new Dataset(inputs, Labels, null, ClassCount, ClassNames) : new Dataset(inputs, null, Targets, 0, null);
    }

    /// <summary>
    /// The same examples with inputs standardised by <paramref name="standardizer"/>: a copy for a set
    /// in memory (<see cref="Standardizer.Apply"/>); for a streamed set, applied to each example as it
    /// is read, with the same arithmetic, so both give the same numbers.
    /// </summary>
    /// <exception cref="InvalidOperationException">when a streamed set is standardised already.</exception>
    public Dataset Standardized(Standardizer standardizer)
    {
        ArgumentNullException.ThrowIfNull(standardizer);
        if (_source is null)
        {
            var inputs = standardizer.Apply(Inputs);
            return Labels is not null ? new Dataset(inputs, Labels, null, ClassCount, ClassNames) : new Dataset(inputs, null, Targets, 0, null);
        }
        if (_standardizer is not null) throw new InvalidOperationException("Dataset.Standardized: this streamed set is standardised already.");
        return new Dataset(_source, _rows!, _exampleShape, standardizer, Labels, Targets, ClassCount, ClassNames);
    }

    /// <summary>The <paramref name="length"/> examples starting at <paramref name="start"/>, copied.</summary>
    public Dataset Subset(int start, int length)
    {
        if (start < 0 || length < 0 || start > Count - length)
            throw new ArgumentOutOfRangeException(nameof(start), $"Dataset.Subset: range [{start}, {start}+{length}) is outside 0..{Count}.");
        var idx = new int[length];
        for (int i = 0; i < length; i++) idx[i] = start + i;
        return Subset(idx);
    }

    /// <summary>The first <paramref name="firstCount"/> examples and the rest, in their current order.</summary>
    public (Dataset First, Dataset Second) Split(int firstCount)
    {
        if (firstCount < 0 || firstCount > Count)
            throw new ArgumentOutOfRangeException(nameof(firstCount), $"Dataset.Split: {firstCount} is outside 0..{Count}.");
        return (Subset(0, firstCount), Subset(firstCount, Count - firstCount));
    }

    /// <summary>
    /// A random split: the examples are permuted by a Fisher-Yates shuffle drawn from
    /// <c>new Generator(seed)</c>, the first <c>round(fraction * N)</c> go to the first set.
    /// </summary>
    public (Dataset First, Dataset Second) RandomSplit(double fraction, ulong seed)
    {
        if (!(fraction >= 0 && fraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), $"Dataset.RandomSplit: fraction {fraction} is outside [0, 1].");
        var order = Permutation(Count, new Generator(seed));
        int k = (int)Math.Round(fraction * Count, MidpointRounding.AwayFromZero);
        return (Subset(order.AsSpan(0, k)), Subset(order.AsSpan(k)));
    }

    /// <summary>A uniformly random permutation of <c>0..n-1</c> by Fisher-Yates (Durstenfeld's form), drawn from <paramref name="generator"/>.</summary>
    public static int[] Permutation(int n, Generator generator)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentNullException.ThrowIfNull(generator);
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = generator.NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    /// <inheritdoc />
    public override string ToString() => IsClassification
        ? $"Dataset(classification{(IsStreamed ? ", streamed" : "")}, N={Count}, inputs={Shapes.Format(InputShape)}, classes={ClassCount})"
        : $"Dataset(regression{(IsStreamed ? ", streamed" : "")}, N={Count}, inputs={Shapes.Format(InputShape)}, targets={Shapes.Format(Targets!.Shape)})";

    // ---------------------------------------------------------------- row copies shared with DataLoader

    /// <summary>
    /// The inputs of examples <paramref name="indices"/> into <paramref name="into"/> (reused when given and
    /// of the right shape) or a new float32 tensor: copied rows of a set in memory, or read (and
    /// standardised) rows of a streamed set.
    /// </summary>
    internal Tensor GatherInputs(ReadOnlySpan<int> indices, Tensor? into)
    {
        if (_source is null) return GatherRows(Inputs, indices, into);
        var result = into ?? Tensor.Zeros(DType.Float32, [indices.Length, .. _exampleShape]);
        var rows = new int[indices.Length];
        for (int i = 0; i < rows.Length; i++) rows[i] = _rows![indices[i]];
        var values = ((float[])result.Storage).AsSpan(0, result.Count);
        _source.Read(rows, values);
        if (indices.Length > 0) _standardizer?.ApplyInPlace(values, values.Length / indices.Length);
        return result;
    }

    /// <summary>Rows <paramref name="indices"/> of <paramref name="source"/> into <paramref name="into"/> (reused when given and of the right shape) or a new tensor.</summary>
    internal static Tensor GatherRows(Tensor source, ReadOnlySpan<int> indices, Tensor? into)
    {
        var shape = source.Shape.ToArray();
        shape[0] = indices.Length;
        var result = into ?? Tensor.Zeros(source.DType, shape);
        int row = source.Size(0) == 0 ? 0 : source.Count / source.Size(0);
        if (source.Storage is float[] f) Copy(f, (float[])result.Storage, row, indices);
        else Copy((double[])source.Storage, (double[])result.Storage, row, indices);
        return result;
    }

    private static void Copy<T>(T[] source, T[] destination, int row, ReadOnlySpan<int> indices)
    {
        for (int i = 0; i < indices.Length; i++)
            source.AsSpan(indices[i] * row, row).CopyTo(destination.AsSpan(i * row, row));
    }

    internal static IndexTensor GatherLabels(IndexTensor source, ReadOnlySpan<int> indices, IndexTensor? into)
    {
        int per = source.Rank == 1 ? 1 : source.Shape[1];
        var result = into ?? new IndexTensor(new int[indices.Length * per], source.Rank == 1 ? [indices.Length] : [indices.Length, per]);
        for (int i = 0; i < indices.Length; i++) source.Data.AsSpan(indices[i] * per, per).CopyTo(result.Data.AsSpan(i * per, per));
        return result;
    }
}
