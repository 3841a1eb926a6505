using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>Whether an initialiser scales by the fan-in (preserves forward variance) or fan-out (preserves backward variance).</summary>
public enum FanMode
{
    /// <summary>Inputs per unit: <c>size(1)·receptive field</c>.</summary>
    FanIn,
    /// <summary>Outputs per unit: <c>size(0)·receptive field</c>.</summary>
    FanOut,
}

/// <summary>The nonlinearity an initialiser's gain is computed for (<c>torch.nn.init.calculate_gain</c>).</summary>
public enum Nonlinearity
{
    /// <summary>Identity / linear layer: gain 1.</summary>
    Linear,
    /// <summary>Sigmoid: gain 1.</summary>
    Sigmoid,
    /// <summary>Tanh: gain 5/3.</summary>
    Tanh,
    /// <summary>ReLU: gain √2.</summary>
    Relu,
    /// <summary>Leaky ReLU with slope a: gain √(2/(1 + a²)).</summary>
    LeakyRelu,
    /// <summary>SELU: gain 3/4 (PyTorch's choice for self-normalising nets with Kaiming/Xavier).</summary>
    Selu,
}

/// <summary>
/// Weight initialisers, in place and seeded: each draws its samples in row-major order from the
/// given <see cref="Generator"/>, so the same seed gives the same weights on every machine. Formulas
/// and defaults are <c>torch.nn.init</c>'s; each runs under no-grad and returns its tensor.
/// </summary>
/// <remarks>
/// Why they matter for gradient flow: with weights of variance σ², a layer multiplies the variance
/// of its signal by about <c>fan · σ² · E[φ'(h)²]</c> (backward) or <c>fan · σ² · E[φ(h)²]/Var h</c>
/// (forward). Xavier/Glorot (2010) sets σ² = 2/(fan_in + fan_out) for linear-regime units; He/Kaiming
/// (2015) sets σ² = 2/fan for ReLU, whose half-line kills half the variance; LeCun (1998) σ² = 1/fan_in
/// for SELU; orthogonal (Saxe et al. 2014) keeps every singular value at the gain.
/// </remarks>
public static class Init
{
    /// <summary>The recommended gain for <paramref name="nonlinearity"/> (<paramref name="param"/>: the leaky-ReLU slope, default 0.01).</summary>
    public static double CalculateGain(Nonlinearity nonlinearity, double? param = null) => nonlinearity switch
    {
        Nonlinearity.Linear or Nonlinearity.Sigmoid => 1.0,
        Nonlinearity.Tanh => 5.0 / 3.0,
        Nonlinearity.Relu => Math.Sqrt(2.0),
        Nonlinearity.LeakyRelu => Math.Sqrt(2.0 / (1 + Math.Pow(param ?? 0.01, 2))),
        Nonlinearity.Selu => 0.75,
        _ => throw new ArgumentOutOfRangeException(nameof(nonlinearity)),
    };

    /// <summary>The nonlinearity whose gain suits <paramref name="activation"/> (the closest PyTorch knows).</summary>
    public static Nonlinearity NonlinearityOf(Activation activation) => activation switch
    {
        Activation.Sigmoid or Activation.HardSigmoid => Nonlinearity.Sigmoid,
        Activation.Tanh or Activation.HardTanh => Nonlinearity.Tanh,
        Activation.Relu or Activation.Gelu or Activation.GeluTanh or Activation.Silu or Activation.Mish or Activation.Elu or Activation.Softplus => Nonlinearity.Relu,
        Activation.LeakyRelu or Activation.PRelu => Nonlinearity.LeakyRelu,
        Activation.Selu => Nonlinearity.Selu,
        _ => Nonlinearity.Linear,
    };

    /// <summary>(fan_in, fan_out) of a weight of rank ≥ 2: <c>size(1)·r</c> and <c>size(0)·r</c>, r the product of the remaining dims.</summary>
    /// <exception cref="ArgumentException">for tensors of rank below 2.</exception>
    public static (int FanIn, int FanOut) Fans(Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank < 2)
            throw new ArgumentException($"init: fan in and fan out need a tensor of at least 2 dimensions, got shape {Shapes.Format(weight.Shape)}.");
        int receptive = 1;
        for (int i = 2; i < weight.Rank; i++) receptive *= weight.Shape[i];
        return (weight.Shape[1] * receptive, weight.Shape[0] * receptive);
    }

    /// <summary>U(<paramref name="low"/>, <paramref name="high"/>).</summary>
    public static Tensor Uniform(Tensor tensor, Generator generator, double low = 0, double high = 1) =>
        Fill(tensor, Tensor.Uniform(generator, low, high, tensor.DType, tensor.Shape.ToArray()));

    /// <summary>N(<paramref name="mean"/>, <paramref name="std"/>²).</summary>
    public static Tensor Normal(Tensor tensor, Generator generator, double mean = 0, double std = 1) =>
        Fill(tensor, Tensor.Normal(generator, mean, std, tensor.DType, tensor.Shape.ToArray()));

    /// <summary>Every element = <paramref name="value"/>.</summary>
    public static Tensor Constant(Tensor tensor, double value)
    {
        using (GradMode.NoGrad()) return tensor.FillInPlace(value);
    }

    /// <summary>Xavier/Glorot uniform: U(−a, a), <c>a = gain·√(6/(fan_in + fan_out))</c> (Glorot and Bengio 2010).</summary>
    public static Tensor XavierUniform(Tensor tensor, Generator generator, double gain = 1.0)
    {
        var (fanIn, fanOut) = Fans(tensor);
        double a = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
        return Uniform(tensor, generator, -a, a);
    }

    /// <summary>Xavier/Glorot normal: N(0, σ²), <c>σ = gain·√(2/(fan_in + fan_out))</c>.</summary>
    public static Tensor XavierNormal(Tensor tensor, Generator generator, double gain = 1.0)
    {
        var (fanIn, fanOut) = Fans(tensor);
        return Normal(tensor, generator, 0, gain * Math.Sqrt(2.0 / (fanIn + fanOut)));
    }

    /// <summary>
    /// He/Kaiming uniform: U(−b, b), <c>b = √3 · gain/√fan</c>, gain from <paramref name="nonlinearity"/>
    /// (and slope <paramref name="a"/> for leaky ReLU) (He et al. 2015). PyTorch's defaults:
    /// a = 0, fan-in, leaky_relu (which with a = 0 is ReLU's √2).
    /// </summary>
    public static Tensor KaimingUniform(Tensor tensor, Generator generator, double a = 0, FanMode mode = FanMode.FanIn,
        Nonlinearity nonlinearity = Nonlinearity.LeakyRelu)
    {
        double std = KaimingStd(tensor, a, mode, nonlinearity);
        double bound = Math.Sqrt(3.0) * std;
        return Uniform(tensor, generator, -bound, bound);
    }

    /// <summary>He/Kaiming normal: N(0, σ²), <c>σ = gain/√fan</c>.</summary>
    public static Tensor KaimingNormal(Tensor tensor, Generator generator, double a = 0, FanMode mode = FanMode.FanIn,
        Nonlinearity nonlinearity = Nonlinearity.LeakyRelu) =>
        Normal(tensor, generator, 0, KaimingStd(tensor, a, mode, nonlinearity));

    /// <summary>
    /// LeCun normal: N(0, 1/fan_in) (LeCun et al. 1998; the initialiser SELU's self-normalisation
    /// assumes, Klambauer et al. 2017). Untruncated, as <c>kaiming_normal_(nonlinearity='linear')</c>.
    /// </summary>
    public static Tensor LecunNormal(Tensor tensor, Generator generator) =>
        Normal(tensor, generator, 0, 1.0 / Math.Sqrt(Fans(tensor).FanIn));

    /// <summary>
    /// A (semi-)orthogonal matrix times <paramref name="gain"/> (Saxe et al. 2014), as
    /// <c>torch.nn.init.orthogonal_</c>: the tensor viewed as rows × cols (rows = size(0)) is the Q
    /// factor of the QR decomposition of a standard normal matrix (of its transpose when rows &lt;
    /// cols), with the signs of R's diagonal folded in so the result is uniformly distributed.
    /// QR is Householder's, in float64.
    /// </summary>
    public static Tensor Orthogonal(Tensor tensor, Generator generator, double gain = 1.0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Rank < 2)
            throw new ArgumentException($"orthogonal: needs a tensor of at least 2 dimensions, got shape {Shapes.Format(tensor.Shape)}.");
        int rows = tensor.Shape[0], cols = tensor.Count / Math.Max(rows, 1);
        var flat = Tensor.Normal(generator, 0, 1, DType.Float64, rows, cols).ToDoubleArray();
        bool transpose = rows < cols;
        int m = transpose ? cols : rows, n = transpose ? rows : cols; // m ≥ n
        var a = new double[m * n];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                a[transpose ? j * n + i : i * n + j] = flat[i * cols + j];
        var q = Householder.ThinQ(a, m, n);
        var result = new double[rows * cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                result[i * cols + j] = gain * (transpose ? q[j * n + i] : q[i * n + j]);
        return Fill(tensor, Tensor.FromArray(result, tensor.Shape.ToArray()).To(tensor.DType));
    }

    /// <summary>The identity matrix (ones on the diagonal of a 2-D tensor, as <c>torch.nn.init.eye_</c>); for IRNN-style recurrent weights (Le et al. 2015).</summary>
    public static Tensor Eye(Tensor tensor, double gain = 1.0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Rank != 2) throw new ArgumentException($"eye: needs a 2-D tensor, got shape {Shapes.Format(tensor.Shape)}.");
        var v = new double[tensor.Count];
        int rows = tensor.Shape[0], cols = tensor.Shape[1];
        for (int i = 0; i < Math.Min(rows, cols); i++) v[i * cols + i] = gain;
        return Fill(tensor, Tensor.FromArray(v, rows, cols).To(tensor.DType));
    }

    /// <summary>
    /// Applies <paramref name="init"/> to each H×H gate block of a recurrent weight [gates·H, H] (rows
    /// k·H..(k+1)·H, as <c>weight_hh</c> of <see cref="Lstm"/>, <see cref="Gru"/> and <see cref="Rnn"/>),
    /// block by block in gate order. Each block is passed as a float64 [H, H] tensor of zeros.
    /// </summary>
    /// <exception cref="ArgumentException">when the tensor is not [gates·H, H].</exception>
    public static Tensor PerGateBlock(Tensor weightHh, Func<Tensor, Tensor> init)
    {
        ArgumentNullException.ThrowIfNull(weightHh);
        ArgumentNullException.ThrowIfNull(init);
        if (weightHh.Rank != 2 || weightHh.Shape[1] < 1 || weightHh.Shape[0] % weightHh.Shape[1] != 0 || weightHh.Shape[0] == 0)
            throw new ArgumentException($"per-gate init: a recurrent weight must be [gates·H, H], got shape {Shapes.Format(weightHh.Shape)}.");
        int h = weightHh.Shape[1], gates = weightHh.Shape[0] / h;
        var values = new double[weightHh.Count];
        for (int k = 0; k < gates; k++)
        {
            var block = Tensor.Zeros(DType.Float64, h, h);
            init(block);
            block.ToDoubleArray().CopyTo(values, k * h * h);
        }
        return Fill(weightHh, Tensor.FromArray(values, weightHh.Shape.ToArray()));
    }

    /// <summary>
    /// Each H×H gate block of a recurrent weight orthogonal (times <paramref name="gain"/>), drawn in
    /// gate order by <see cref="Orthogonal"/> (Saxe et al. 2014): every singular value of each block's
    /// recurrent map is the gain, so a linearised step neither shrinks nor grows the backpropagated
    /// signal. Orthogonalising the whole [4H, H] matrix instead would only make its columns orthonormal,
    /// leaving each gate's block with singular values about ½.
    /// </summary>
    public static Tensor OrthogonalRecurrent(Tensor weightHh, Generator generator, double gain = 1.0)
    {
        ArgumentNullException.ThrowIfNull(generator);
        return PerGateBlock(weightHh, block => Orthogonal(block, generator, gain));
    }

    /// <summary>
    /// Each H×H gate block of a recurrent weight = <paramref name="gain"/>·I. With a ReLU RNN and zero
    /// biases this is the IRNN of Le, Jaitly and Hinton (2015), "A Simple Way to Initialize Recurrent
    /// Networks of Rectified Linear Units" (they draw W_ih from N(0, 0.001²); set that and the biases
    /// separately).
    /// </summary>
    public static Tensor IdentityRecurrent(Tensor weightHh, double gain = 1.0) => PerGateBlock(weightHh, block => Eye(block, gain));

    /// <summary>
    /// Sets the forget-gate slice [H, 2H) of an LSTM bias [4H] (gate order i, f, g, o) to
    /// <paramref name="value"/>, leaving the other gates unchanged (Gers et al. 2000; Jozefowicz et
    /// al. 2015 recommend 1). PyTorch adds <c>bias_ih</c> and <c>bias_hh</c>, so the effective bias is
    /// the sum of both slices; <see cref="Lstm.InitForgetGateBias"/> sets one to the value and the other to 0.
    /// </summary>
    /// <exception cref="ArgumentException">when the bias is not 1-D with a length divisible by 4.</exception>
    public static Tensor ForgetGateBias(Tensor bias, double value = 1.0)
    {
        ArgumentNullException.ThrowIfNull(bias);
        if (bias.Rank != 1 || bias.Count == 0 || bias.Count % 4 != 0)
            throw new ArgumentException($"forget-gate bias: an LSTM bias must be [4·H], got shape {Shapes.Format(bias.Shape)}.");
        int h = bias.Count / 4;
        var values = bias.ToDoubleArray();
        values.AsSpan(h, h).Fill(value);
        return Fill(bias, Tensor.FromArray(values, bias.Count));
    }

    private static double KaimingStd(Tensor tensor, double a, FanMode mode, Nonlinearity nonlinearity)
    {
        var (fanIn, fanOut) = Fans(tensor);
        int fan = mode == FanMode.FanIn ? fanIn : fanOut;
        if (fan == 0) throw new ArgumentException($"kaiming: a tensor of shape {Shapes.Format(tensor.Shape)} has zero fan.");
        return CalculateGain(nonlinearity, a) / Math.Sqrt(fan);
    }

    private static Tensor Fill(Tensor tensor, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using (GradMode.NoGrad()) return tensor.CopyFrom(values.DType == tensor.DType ? values : values.To(tensor.DType));
    }

    /// <summary>Householder QR in float64 (used by <see cref="Orthogonal"/>).</summary>
    private static class Householder
    {
        /// <summary>
        /// The m×n matrix Q (m ≥ n, orthonormal columns) of A = QR, with column j multiplied by
        /// sign(R_jj) so that R has a non-negative diagonal (the Haar-uniform choice).
        /// </summary>
        public static double[] ThinQ(double[] a, int m, int n)
        {
            var r = (double[])a.Clone();
            var vs = new double[n][];
            var rdiagSign = new double[n];
            for (int k = 0; k < n; k++)
            {
                double norm = 0;
                for (int i = k; i < m; i++) norm += r[i * n + k] * r[i * n + k];
                norm = Math.Sqrt(norm);
                double alpha = r[k * n + k] > 0 ? -norm : norm;
                var v = new double[m];
                for (int i = k; i < m; i++) v[i] = r[i * n + k];
                v[k] -= alpha;
                double vnorm = 0;
                for (int i = k; i < m; i++) vnorm += v[i] * v[i];
                if (vnorm > 0)
                    for (int j = k; j < n; j++)
                    {
                        double dot = 0;
                        for (int i = k; i < m; i++) dot += v[i] * r[i * n + j];
                        double f = 2 * dot / vnorm;
                        for (int i = k; i < m; i++) r[i * n + j] -= f * v[i];
                    }
                vs[k] = v;
                rdiagSign[k] = r[k * n + k] < 0 ? -1 : 1;
            }
            // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of the identity.
            var q = new double[m * n];
            for (int j = 0; j < n; j++) q[j * n + j] = 1;
            for (int k = n - 1; k >= 0; k--)
            {
                var v = vs[k];
                double vnorm = 0;
                for (int i = k; i < m; i++) vnorm += v[i] * v[i];
                if (vnorm == 0) continue;
                for (int j = 0; j < n; j++)
                {
                    double dot = 0;
                    for (int i = k; i < m; i++) dot += v[i] * q[i * n + j];
                    double f = 2 * dot / vnorm;
                    for (int i = k; i < m; i++) q[i * n + j] -= f * v[i];
                }
            }
            for (int j = 0; j < n; j++)
                if (rdiagSign[j] < 0)
                    for (int i = 0; i < m; i++) q[i * n + j] = -q[i * n + j];
            return q;
        }
    }
}
