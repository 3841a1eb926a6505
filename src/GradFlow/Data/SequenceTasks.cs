using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// Sequence tasks for recurrent networks, the standard tests of learning across long time lags
/// (where vanishing gradients show): the adding problem, the copy (memory) task, and Fashion-MNIST
/// read row by row. The synthetic ones are generated in process from a seed; the same seed gives the
/// same data, bit for bit, on every machine (every draw comes from one <see cref="Generator"/>).
/// </summary>
/// <remarks>
/// Inputs are batch-first, <c>[N, T, features]</c> (a <see cref="DataLoader"/> batches along the
/// first dimension): use the layers with <c>batchFirst: true</c>, or transpose to [T, B, ·].
/// </remarks>
public static class SequenceTasks
{
    /// <summary>
    /// MSE of the best constant prediction on the adding problem, Var(u₁ + u₂) = 2·(1/12) = 1/6 ≈ 0.167:
    /// a model that has not learnt to remember the marked values stays here.
    /// </summary>
    public const double AddingBaselineMse = 1.0 / 6.0;

    /// <summary>
    /// The adding problem (Hochreiter and Schmidhuber 1997), in the form of Le, Jaitly and Hinton (2015)
    /// and Arjovsky et al. (2016): each step has two features, a value and a marker. The values are
    /// U[0, 1); the marker is 1 at exactly two steps, one uniformly in the first half
    /// <c>[0, ⌊T/2⌋)</c> and one uniformly in the second half <c>[⌊T/2⌋, T)</c>, and 0 elsewhere. The
    /// target is the sum of the two marked values. Always predicting 1 scores
    /// <see cref="AddingBaselineMse"/>.
    /// </summary>
    /// <remarks>Draw order per example: the T values (<see cref="Generator.NextDouble"/>, rounded to
    /// float), then the first marker's step, then the second's. The target is the float sum of the two
    /// stored values.</remarks>
    /// <param name="n">Number of sequences (at least 1).</param>
    /// <param name="length">T, the steps per sequence (at least 2).</param>
    /// <param name="seed">Generator seed.</param>
    /// <returns>A regression set: inputs [n, T, 2] (value, marker), targets [n, 1].</returns>
    public static Dataset Adding(int n, int length, ulong seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (length < 2)
            throw new ArgumentOutOfRangeException(nameof(length), $"SequenceTasks.Adding: length {length} must be at least 2 (one marker in each half).");
        var g = new Generator(seed);
        var x = new float[n * length * 2];
        var y = new float[n];
        int half = length / 2;
        for (int e = 0; e < n; e++)
        {
            int row = e * length * 2;
            for (int t = 0; t < length; t++) x[row + 2 * t] = (float)g.NextDouble();
            int first = g.NextInt(half), second = half + g.NextInt(length - half);
            x[row + 2 * first + 1] = 1;
            x[row + 2 * second + 1] = 1;
            y[e] = x[row + 2 * first] + x[row + 2 * second];
        }
        return Dataset.Regression(Tensor.FromArray(x, n, length, 2), Tensor.FromArray(y, n, 1));
    }

    /// <summary>
    /// The copy (memory) task (Hochreiter and Schmidhuber 1997; the form of Arjovsky, Shah and Bengio
    /// 2016): remember K symbols for a delay of T steps, then reproduce them. With an alphabet of A data
    /// symbols there are A + 2 classes: 0 = blank, 1..A = data, A + 1 = delimiter. Each sequence has
    /// <c>L = T + 2K</c> steps: the input is K data symbols drawn uniformly from 1..A, then T − 1 blanks,
    /// the delimiter, and K blanks; the target is T + K blanks followed by the K data symbols.
    /// A model that outputs blanks and then guesses uniformly scores
    /// <see cref="CopyBaselineCrossEntropy"/>; below it, the model is remembering.
    /// </summary>
    /// <remarks>Draw order: per sequence, its K symbols (<see cref="Generator.NextInt"/>(A) + 1).</remarks>
    /// <param name="n">Number of sequences (at least 1).</param>
    /// <param name="delay">T, the steps between the last data symbol and the delimiter, plus one (at least 1).</param>
    /// <param name="symbols">K, symbols to copy (default 10, as Arjovsky et al.).</param>
    /// <param name="alphabet">A, distinct data symbols (default 8).</param>
    /// <param name="seed">Generator seed.</param>
    /// <returns>
    /// A regression set with one-hot float inputs and targets, both [n, L, A + 2]. Train with
    /// cross-entropy against the one-hot target, e.g. <c>−(target·logits.LogSoftmax()).Sum() / (B·L)</c>.
    /// </returns>
    public static Dataset Copy(int n, int delay, int symbols = 10, int alphabet = 8, ulong seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(symbols, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(alphabet, 1);
        var g = new Generator(seed);
        int length = delay + 2 * symbols, classes = alphabet + 2, delimiter = alphabet + 1;
        var x = new float[n * length * classes];
        var y = new float[n * length * classes];
        for (int e = 0; e < n; e++)
        {
            int at = e * length * classes;
            var data = new int[symbols];
            for (int k = 0; k < symbols; k++) data[k] = 1 + g.NextInt(alphabet);
            for (int t = 0; t < length; t++)
            {
                int input = t < symbols ? data[t] : t == symbols + delay - 1 ? delimiter : 0;
                int target = t < symbols + delay ? 0 : data[t - symbols - delay];
                x[at + t * classes + input] = 1;
                y[at + t * classes + target] = 1;
            }
        }
        return Dataset.Regression(Tensor.FromArray(x, n, length, classes), Tensor.FromArray(y, n, length, classes));
    }

    /// <summary>
    /// Mean cross-entropy per step of the memoryless strategy on <see cref="Copy"/>: blanks (certain)
    /// for the first T + K steps, uniform over the A data symbols for the last K:
    /// <c>K·ln A / (T + 2K)</c>.
    /// </summary>
    public static double CopyBaselineCrossEntropy(int delay, int symbols = 10, int alphabet = 8) =>
        symbols * Math.Log(alphabet) / (delay + 2 * symbols);

    /// <summary>
    /// Fashion-MNIST as sequences: each 28 × 28 image read row by row, 28 steps of 28 pixels (the
    /// row-sequential image task; pixels scaled as <see cref="FashionMnist.Load"/> does).
    /// </summary>
    /// <param name="directory">Folder with the IDX files (see <see cref="DataResolver.ResolveFashionMnist"/>).</param>
    /// <param name="split">Training or test half.</param>
    /// <param name="standardise">Whether pixels become <c>(p/255 − 0.2860)/0.3530</c> (default) or stay p/255.</param>
    /// <returns>A classification set: inputs [N, 28, 28] (example, step = image row, feature = column), 10 classes.</returns>
    public static Dataset FashionMnistRows(string directory, MnistSplit split, bool standardise = true) =>
        FashionMnist.Load(directory, split, ImageLayout.Grid, standardise);
}
