using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// Synthetic classification tasks generated in process from a seed: the same seed gives the same
/// data, bit for bit, on every machine (every draw comes from one <see cref="Generator"/>).
/// </summary>
/// <remarks>
/// Example <c>i</c> of the 2-D sets has class <c>i mod 2</c>, so classes alternate and any prefix is
/// balanced to within one example. Inputs are float32 <c>[n, 2]</c>, labels <c>[n]</c>.
/// </remarks>
public static class Synthetic
{
    /// <summary>Innermost radius of <see cref="TwoSpirals"/>: keeps the two arms apart at the centre.</summary>
    public const double SpiralInnerRadius = 0.1;

    /// <summary>
    /// Two interleaved spiral arms (after Lang and Witbrock, 1988), the classic task a shallow or
    /// saturated network fails to fit.
    /// </summary>
    /// <remarks>
    /// For example <c>i</c> with class <c>c = i mod 2</c>, draw <c>t ~ U[0, 1)</c> and
    /// <c>e1, e2 ~ N(0, 1)</c>:
    /// <c>r = 0.1 + 0.9 t</c>, <c>theta = 2 pi turns t + c pi</c>,
    /// <c>x = (r cos theta + noise e1, r sin theta + noise e2)</c>.
    /// Without noise every point of class <c>c</c> lies on the arm <c>theta = 2 pi turns (r - 0.1) / 0.9 + c pi</c>,
    /// with radius in <c>[0.1, 1)</c>; arm 1 is arm 0 rotated by half a turn.
    /// </remarks>
    /// <param name="n">Number of examples (at least 2).</param>
    /// <param name="noise">Standard deviation of the Gaussian noise added to each coordinate (0 for none).</param>
    /// <param name="turns">How many full turns each arm makes (positive).</param>
    /// <param name="seed">Generator seed.</param>
    public static Dataset TwoSpirals(int n, double noise = 0.0, double turns = 1.5, ulong seed = 0)
    {
        CheckCommon(nameof(TwoSpirals), n, noise);
        if (!(turns > 0 && double.IsFinite(turns)))
            throw new ArgumentOutOfRangeException(nameof(turns), $"TwoSpirals: turns {turns} must be positive and finite.");
        var g = new Generator(seed);
        return Planar(n, noise, g, ["spiral 0", "spiral 1"], c =>
        {
            double t = g.NextDouble();
            return (SpiralInnerRadius + (1 - SpiralInnerRadius) * t, 2 * Math.PI * turns * t + c * Math.PI);
        });
    }

    /// <summary>A large circle around a small one (as scikit-learn's <c>make_circles</c>).</summary>
    /// <remarks>
    /// For example <c>i</c> with class <c>c = i mod 2</c>, draw <c>u ~ U[0, 1)</c> and
    /// <c>e1, e2 ~ N(0, 1)</c>: <c>r = 1</c> for class 0 (outer), <c>r = factor</c> for class 1
    /// (inner), <c>theta = 2 pi u</c>, <c>x = (r cos theta + noise e1, r sin theta + noise e2)</c>.
    /// </remarks>
    /// <param name="n">Number of examples (at least 2).</param>
    /// <param name="noise">Standard deviation of the Gaussian noise added to each coordinate.</param>
    /// <param name="factor">Inner radius relative to the outer one, in (0, 1).</param>
    /// <param name="seed">Generator seed.</param>
    public static Dataset ConcentricCircles(int n, double noise = 0.0, double factor = 0.5, ulong seed = 0)
    {
        CheckCommon(nameof(ConcentricCircles), n, noise);
        if (!(factor > 0 && factor < 1))
            throw new ArgumentOutOfRangeException(nameof(factor), $"ConcentricCircles: factor {factor} must lie in (0, 1).");
        var g = new Generator(seed);
        return Planar(n, noise, g, ["outer", "inner"], c => (c == 0 ? 1.0 : factor, 2 * Math.PI * g.NextDouble()));
    }

    /// <summary>
    /// The 2-D sets: example <c>i</c> has class <c>c = i mod 2</c>, polar position <c>(r, theta) = polar(c)</c>
    /// (which draws its own numbers from <paramref name="g"/> first), then noise <c>e1, e2 ~ N(0, 1)</c> from <paramref name="g"/>.
    /// </summary>
    private static Dataset Planar(int n, double noise, Generator g, string[] classNames, Func<int, (double R, double Theta)> polar)
    {
        var x = new float[2 * n];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            int c = i % 2;
            var (r, theta) = polar(c);
            double e1 = g.NextNormal(), e2 = g.NextNormal();
            x[2 * i] = (float)(r * Math.Cos(theta) + noise * e1);
            x[2 * i + 1] = (float)(r * Math.Sin(theta) + noise * e2);
            y[i] = c;
        }
        return Dataset.Classification(new Tensor(x, [n, 2]), new IndexTensor(y, [n]), 2, classNames);
    }

    /// <summary>
    /// A teacher-student task: Gaussian inputs labelled by a fixed random MLP, so the labels are a
    /// deterministic, learnable function of the inputs at any input size.
    /// </summary>
    /// <remarks>
    /// <c>g = new Generator(seed)</c> first builds <c>new TeacherMlp(inputSize, classes, teacherDepth,
    /// teacherWidth, g)</c>, then draws inputs <c>x ~ N(0, I)</c> (rounded to float32) from the same
    /// <c>g</c> and labels each by <c>argmax_k teacher(x)_k</c>. Classes are balanced exactly by
    /// rejection: class <c>k</c> takes the first <c>floor(n / classes)</c> (plus one for
    /// <c>k &lt; n mod classes</c>) inputs it labels, later ones are discarded. Inputs are therefore
    /// Gaussian conditioned on their class. Throws <see cref="InvalidOperationException"/> if some
    /// class is so rare that <c>1000 n + 100000</c> draws do not fill it.
    /// </remarks>
    public static Dataset TeacherClassification(int n, int inputSize, int classes, int teacherDepth = 2, int teacherWidth = 32, ulong seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        var g = new Generator(seed);
        var teacher = new TeacherMlp(inputSize, classes, teacherDepth, teacherWidth, g);
        var quota = new int[classes];
        for (int k = 0; k < classes; k++) quota[k] = n / classes + (k < n % classes ? 1 : 0);
        var x = new float[(long)n * inputSize <= Array.MaxLength ? n * inputSize
            : throw new ArgumentOutOfRangeException(nameof(n), $"TeacherClassification: {n} x {inputSize} inputs exceed the largest array.")];
        var y = new int[n];
        var sample = new double[inputSize];
        long maxDraws = 1000L * n + 100_000, draws = 0;
        int filled = 0;
        while (filled < n)
        {
            if (++draws > maxDraws)
            {
                int rare = Array.FindIndex(quota, q => q > 0);
                throw new InvalidOperationException(
                    $"TeacherClassification: after {maxDraws} draws class {rare} still lacks {quota[rare]} examples; the teacher (depth {teacherDepth}, width {teacherWidth}, seed {seed}) almost never predicts it. Try another seed or fewer classes.");
            }
            for (int j = 0; j < inputSize; j++) sample[j] = (float)g.NextNormal();
            int label = teacher.Classify(sample);
            if (quota[label] == 0) continue;
            quota[label]--;
            for (int j = 0; j < inputSize; j++) x[filled * inputSize + j] = (float)sample[j];
            y[filled++] = label;
        }
        return Dataset.Classification(new Tensor(x, [n, inputSize]), new IndexTensor(y, [n]), classes);
    }

    private static void CheckCommon(string op, int n, double noise)
    {
        if (n < 2) throw new ArgumentOutOfRangeException(nameof(n), $"{op}: n = {n}; need at least 2 examples (one per class).");
        if (!(noise >= 0 && double.IsFinite(noise)))
            throw new ArgumentOutOfRangeException(nameof(noise), $"{op}: noise {noise} must be finite and non-negative.");
    }
}

/// <summary>
/// A fixed random multilayer perceptron used as a labelling function, evaluated in double with
/// plain loops (it is data, not a model: no autograd, no parameters to train).
/// </summary>
/// <remarks>
/// <para>Layers: <c>h_0 = x</c>; <c>h_l = tanh(W_l h_{l-1} + b_l)</c> for <c>l = 1..depth</c>
/// (width units each); logits <c>z = W_out h_depth + b_out</c>. Drawn from the generator in that
/// order, row-major: <c>W_l ~ N(0, 1 / fan_in)</c>, <c>b_l ~ N(0, 0.1^2)</c>.</para>
/// <para>Calibration: the teacher then draws <c>max(2048, 256 classes)</c> inputs <c>x ~ N(0, I)</c>
/// and standardises each logit, <c>z'_k = (z_k - mean_k) / std_k</c>, so that no class dominates
/// the argmax merely through a larger bias or scale.</para>
/// <para>The label is <c>argmax_k z'_k</c> (the lowest <c>k</c> on ties). Not thread-safe (it reuses
/// scratch buffers).</para>
/// </remarks>
public sealed class TeacherMlp
{
    private readonly double[][] _weights, _biases;
    private readonly double[] _shift, _scale;
    private readonly double[] _a, _b;

    /// <summary>Draws a teacher from <paramref name="generator"/> (see remarks for the exact order).</summary>
    public TeacherMlp(int inputSize, int classes, int depth, int width, Generator generator)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentNullException.ThrowIfNull(generator);
        InputSize = inputSize;
        Classes = classes;
        _weights = new double[depth + 1][];
        _biases = new double[depth + 1][];
        int fanIn = inputSize;
        for (int l = 0; l <= depth; l++)
        {
            int fanOut = l == depth ? classes : width;
            double std = 1 / Math.Sqrt(fanIn);
            _weights[l] = new double[fanOut * fanIn];
            for (int i = 0; i < _weights[l].Length; i++) _weights[l][i] = std * generator.NextNormal();
            _biases[l] = new double[fanOut];
            for (int i = 0; i < fanOut; i++) _biases[l][i] = 0.1 * generator.NextNormal();
            fanIn = fanOut;
        }
        int widest = Math.Max(Math.Max(inputSize, width), classes);
        _a = new double[widest];
        _b = new double[widest];

        _shift = new double[classes];
        _scale = new double[classes];
        Array.Fill(_scale, 1.0);
        int pool = Math.Max(2048, 256 * classes);
        var sum = new double[classes];
        var sumSq = new double[classes];
        var x = new double[inputSize];
        var z = new double[classes];
        for (int s = 0; s < pool; s++)
        {
            for (int j = 0; j < inputSize; j++) x[j] = generator.NextNormal();
            Logits(x, z);
            for (int k = 0; k < classes; k++)
            {
                sum[k] += z[k];
                sumSq[k] += z[k] * z[k];
            }
        }
        for (int k = 0; k < classes; k++)
        {
            double mean = sum[k] / pool;
            double var = Math.Max(sumSq[k] / pool - mean * mean, 0);
            _shift[k] = mean;
            _scale[k] = var > 1e-24 ? 1 / Math.Sqrt(var) : 1.0;
        }
    }

    /// <summary>Input size.</summary>
    public int InputSize { get; }

    /// <summary>Number of classes (logits).</summary>
    public int Classes { get; }

    /// <summary>The calibrated logits <c>z'</c> of one input.</summary>
    public void Logits(ReadOnlySpan<double> x, Span<double> logits)
    {
        if (x.Length != InputSize || logits.Length != Classes)
            throw new ArgumentException($"TeacherMlp.Logits: input of length {x.Length} (expected {InputSize}), logits of length {logits.Length} (expected {Classes}).");
        var h = _a.AsSpan(0, InputSize);
        x.CopyTo(h);
        int depth = _weights.Length - 1;
        for (int l = 0; l <= depth; l++)
        {
            var w = _weights[l];
            var bias = _biases[l];
            int fanIn = h.Length, fanOut = bias.Length;
            var next = l == depth ? logits : (h.Overlaps(_a) ? _b : _a).AsSpan(0, fanOut);
            for (int o = 0; o < fanOut; o++)
            {
                double acc = bias[o];
                var row = w.AsSpan(o * fanIn, fanIn);
                for (int i = 0; i < fanIn; i++) acc += row[i] * h[i];
                next[o] = l == depth ? (acc - _shift[o]) * _scale[o] : Math.Tanh(acc);
            }
            h = next;
        }
    }

    /// <summary>The teacher's label for one input: <c>argmax_k z'_k</c>, lowest index on ties.</summary>
    public int Classify(ReadOnlySpan<double> x)
    {
        Span<double> z = Classes <= 256 ? stackalloc double[Classes] : new double[Classes];
        Logits(x, z);
        int best = 0;
        for (int k = 1; k < z.Length; k++)
            if (z[k] > z[best]) best = k;
        return best;
    }
}
