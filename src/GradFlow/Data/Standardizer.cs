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
    private Standardizer(double[] mean, double[] std)
    {
        Mean = mean;
        Std = std;
    }

    /// <summary>The mean of each group.</summary>
    public IReadOnlyList<double> Mean { get; }

    /// <summary>The standard deviation of each group (1 where it was 0).</summary>
    public IReadOnlyList<double> Std { get; }

    /// <summary>Fits the statistics of <paramref name="inputs"/> <c>[N, ...]</c> (float32) over <paramref name="groups"/> groups per example.</summary>
    /// <exception cref="ArgumentException">when the per-example size is not a multiple of <paramref name="groups"/>, or there are no examples.</exception>
    public static Standardizer Fit(Tensor inputs, int groups)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var x = (float[])inputs.Storage;
        int n = inputs.Size(0);
        if (n == 0) throw new ArgumentException("Standardizer.Fit: the training set is empty.", nameof(inputs));
        int per = inputs.Count / n;
        if (groups < 1 || per % groups != 0)
            throw new ArgumentException($"Standardizer.Fit: {per} values per example do not split into {groups} groups.", nameof(groups));
        int run = per / groups;
        var mean = new double[groups];
        var std = new double[groups];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < per; j++) mean[j / run] += x[i * per + j];
        double count = (double)n * run;
        for (int g = 0; g < groups; g++) mean[g] /= count;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < per; j++)
            {
                double d = x[i * per + j] - mean[j / run];
                std[j / run] += d * d;
            }
        for (int g = 0; g < groups; g++)
        {
            std[g] = Math.Sqrt(std[g] / count);
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
        int run = n == 0 ? 1 : per / groups;
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int g = i % Math.Max(per, 1) / run;
            y[i] = (float)((x[i] - Mean[g]) / Std[g]);
        }
        return new Tensor(y, inputs.Shape.ToArray());
    }
}
