using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// Standardisation <c>x' = (x - mean_g) / std_g</c> with statistics fitted on a training set, over
/// groups of an example's values: every value its own group (per feature, for tables and arrays),
/// one group per channel (images), or one group (all values).
/// </summary>
/// <remarks>
/// The example's flattened values are split into <c>groups</c> consecutive runs of equal length
/// (channels first). Means and population standard deviations are accumulated in double, in two
/// passes. A group whose standard deviation is 0 (a constant feature) is only centred.
/// </remarks>
/// <example>
/// <code>
/// var s = Standardizer.Fit(train.Inputs, groups: features);
/// var trainX = s.Apply(train.Inputs); var testX = s.Apply(test.Inputs);
/// </code>
/// </example>
public sealed class Standardizer
{
    private readonly double[] _mean, _std;

    private Standardizer(double[] mean, double[] std)
    {
        _mean = mean;
        _std = std;
        Mean = mean;
        Std = std;
    }

    /// <summary>The mean of each group.</summary>
    public IReadOnlyList<double> Mean { get; }

    /// <summary>The standard deviation of each group (1 where it was 0).</summary>
    public IReadOnlyList<double> Std { get; }

    /// <summary>
    /// The standardiser of recorded statistics (a run's <c>preprocessing.json</c>): a mean and a standard deviation per group.
    /// </summary>
    /// <exception cref="ArgumentException">when the lists are empty or of different lengths, or a deviation is not a positive finite number, or a mean not finite.</exception>
    public static Standardizer FromStatistics(IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Count == 0 || mean.Count != std.Count)
            throw new ArgumentException($"Standardizer: {mean.Count} means and {std.Count} standard deviations; a non-empty pair of equal lengths is needed.");
        for (int g = 0; g < mean.Count; g++)
            if (!double.IsFinite(mean[g]) || !(std[g] > 0) || !double.IsFinite(std[g]))
                throw new ArgumentException($"Standardizer: group {g} has mean {mean[g]} and standard deviation {std[g]}; the mean must be finite and the deviation positive and finite.");
        return new Standardizer([.. mean], [.. std]);
    }

    /// <summary>Fits the statistics of <paramref name="inputs"/> <c>[N, ...]</c> (float32) over <paramref name="groups"/> groups per example.</summary>
    /// <exception cref="ArgumentException">when the per-example size is not a multiple of <paramref name="groups"/>, or there are no examples.</exception>
    public static Standardizer Fit(Tensor inputs, int groups)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var x = (float[])inputs.Storage;
        int n = inputs.Size(0);
        if (n == 0) throw new ArgumentException("Standardizer.Fit: the training set is empty.", nameof(inputs));
        return Fit(n, inputs.Count / n, groups, (start, count) => x.AsSpan(start * (inputs.Count / n), count * (inputs.Count / n)));
    }

    /// <summary>
    /// Fits the statistics of <paramref name="data"/>'s inputs: a set in memory as <see cref="Fit(Tensor, int)"/>;
    /// a streamed set in two streaming passes of <see cref="ChunkExamples"/> examples at a time, adding
    /// the values in the same order, so the statistics are bitwise those of the same data in memory.
    /// </summary>
    public static Standardizer Fit(Dataset data, int groups)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!data.IsStreamed) return Fit(data.Inputs, groups);
        if (data.Count == 0) throw new ArgumentException("Standardizer.Fit: the training set is empty.", nameof(data));
        int per = 1;
        foreach (int d in data.InputShape.AsSpan(1)) per *= d;
        Tensor? buffer = null;
        int bufferStart = -1, bufferCount = 0;
        return Fit(data.Count, per, groups, (start, count) =>
        {
            if (start != bufferStart || count != bufferCount)
            {
                var idx = new int[count];
                for (int i = 0; i < count; i++) idx[i] = start + i;
                buffer = data.GatherInputs(idx, buffer is not null && buffer.Size(0) == count ? buffer : null);
                (bufferStart, bufferCount) = (start, count);
            }
            return ((float[])buffer!.Storage).AsSpan(0, count * per);
        });
    }

    /// <summary>Examples read at a time by the streaming <see cref="Fit(Dataset, int)"/>.</summary>
    public const int ChunkExamples = 1024;

    private delegate ReadOnlySpan<float> Chunk(int start, int count);

    // the one accumulation both paths use: means then population deviations in double, examples in order
    private static Standardizer Fit(int n, int per, int groups, Chunk chunk)
    {
        if (groups < 1 || per % groups != 0)
            throw new ArgumentException($"Standardizer.Fit: {per} values per example do not split into {groups} groups.", nameof(groups));
        int run = per / groups;
        var mean = new double[groups];
        var std = new double[groups];
        for (int start = 0; start < n; start += ChunkExamples)
        {
            int count = Math.Min(ChunkExamples, n - start);
            var x = chunk(start, count);
            for (int i = 0; i < count; i++)
                for (int j = 0; j < per; j++) mean[j / run] += x[i * per + j];
        }
        double total = (double)n * run;
        for (int g = 0; g < groups; g++) mean[g] /= total;
        for (int start = 0; start < n; start += ChunkExamples)
        {
            int count = Math.Min(ChunkExamples, n - start);
            var x = chunk(start, count);
            for (int i = 0; i < count; i++)
                for (int j = 0; j < per; j++)
                {
                    double d = x[i * per + j] - mean[j / run];
                    std[j / run] += d * d;
                }
        }
        for (int g = 0; g < groups; g++)
        {
            std[g] = Math.Sqrt(std[g] / total);
            if (!(std[g] > 0)) std[g] = 1;
        }
        return new Standardizer(mean, std);
    }

    /// <summary>A standardised copy of <paramref name="inputs"/> <c>[N, ...]</c> (same per-example size as the fitted set).</summary>
    public Tensor Apply(Tensor inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var x = (float[])inputs.Storage;
        int n = inputs.Size(0), groups = Mean.Count;
        int per = n == 0 ? 0 : inputs.Count / n;
        if (n > 0 && per % groups != 0)
            throw new ArgumentException($"Standardizer.Apply: {per} values per example do not split into the fitted {groups} groups.", nameof(inputs));
        var y = (float[])x.Clone();
        if (n > 0) ApplyRows(y, per);
        return new Tensor(y, inputs.Shape.ToArray());
    }

    /// <summary>Standardises whole examples of <paramref name="per"/> values in <paramref name="values"/> in place, with <see cref="Apply"/>'s arithmetic.</summary>
    internal void ApplyInPlace(Span<float> values, int per)
    {
        if (per % _mean.Length != 0)
            throw new ArgumentException($"Standardizer.Apply: {per} values per example do not split into the fitted {_mean.Length} groups.", nameof(per));
        ApplyRows(values, per);
    }

    private void ApplyRows(Span<float> x, int per)
    {
        int run = per / _mean.Length;
        for (int i = 0; i < x.Length; i++)
        {
            int g = i % per / run;
            x[i] = (float)((x[i] - _mean[g]) / _std[g]);
        }
    }
}
