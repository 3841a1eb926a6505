using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// The state a recurrent layer or cell carries from one step (or chunk) to the next: the hidden state
/// <see cref="H"/> and, for an LSTM, the cell state <see cref="C"/>. For a sequence layer both are
/// [numLayers, B, H]; for a cell, [B, H].
/// </summary>
/// <param name="H">Hidden state.</param>
/// <param name="C">Cell state (LSTM only; null otherwise).</param>
public sealed record RecurrentState(Tensor H, Tensor? C = null)
{
    /// <summary>
    /// The same values cut off from the graph: feed this as the next chunk's initial state for
    /// truncated backpropagation through time (gradients then stop at the chunk boundary, while the
    /// forward pass still carries the state across it).
    /// </summary>
    public RecurrentState Detach() => new(H.Detach(), C?.Detach());
}

/// <summary>What a recurrent sequence layer returns: the last layer's output at every step, and the final state of every layer.</summary>
/// <param name="Output">[T, B, H] (or [B, T, H] with batchFirst).</param>
/// <param name="State">h_n (and c_n), [numLayers, B, H].</param>
public sealed record RecurrentOutput(Tensor Output, RecurrentState State);

/// <summary>The recurrence a layer runs (PyTorch's <c>mode</c>: RNN_TANH, RNN_RELU, LSTM, GRU).</summary>
internal enum RecurrentKind
{
    RnnTanh,
    RnnRelu,
    Lstm,
    Gru,
}

/// <summary>
/// Base of the sequence layers <see cref="Rnn"/>, <see cref="Lstm"/> and <see cref="Gru"/>, as
/// <c>torch.nn.RNNBase</c>: <c>numLayers</c> stacked layers, layer l reading layer l − 1's outputs;
/// parameters <c>weight_ih_l{k}</c> [gates·H, I or H], <c>weight_hh_l{k}</c> [gates·H, H],
/// <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [gates·H] (PyTorch's names, order and gate layout, so
/// safetensors checkpoints load into <c>torch.nn.LSTM</c> etc. unchanged). Default initialisation
/// (PyTorch's): every parameter U(−1/√H, 1/√H); see <see cref="Init.OrthogonalRecurrent"/>,
/// <see cref="Init.IdentityRecurrent"/> and <see cref="Init.ForgetGateBias"/> for the recurrent schemes.
/// </summary>
/// <remarks>
/// <para>Shapes: input [T, B, I] (time-major, the default) or [B, T, I] with <c>batchFirst</c>; the
/// state is always [numLayers, B, H] (as PyTorch, batchFirst does not apply to it); zero when not
/// given. Each layer is one fused op over the whole sequence (<see cref="Tensor.Lstm"/> etc.).</para>
/// <para>Truncated backpropagation through time: run the sequence in chunks and pass the previous
/// chunk's <see cref="RecurrentOutput.State"/> through <see cref="RecurrentState.Detach"/> as the next
/// initial state.</para>
/// <para><see cref="Module.Forward"/> (one argument) runs from a zero state and returns the output;
/// <see cref="Forward(Tensor, RecurrentState?)"/> also takes and returns the state. Both run the
/// module's hooks.</para>
/// </remarks>
public abstract class RecurrentLayer : Module
{
    private readonly Generator _generator;
    private readonly RecurrentKind _kind;
    private readonly List<Parameter> _parameters = [];
    private RecurrentState? _stateIn;
    private RecurrentState? _stateOut;
    private IReadOnlyList<RecurrentGradientProbe>? _probes;

    private protected RecurrentLayer(RecurrentKind kind, int inputSize, int hiddenSize, Generator generator, int numLayers, bool bias, bool batchFirst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numLayers, 1);
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        _kind = kind;
        (InputSize, HiddenSize, NumLayers, Bias, BatchFirst) = (inputSize, hiddenSize, numLayers, bias, batchFirst);
        int g = RecurrentFunctional.GateCount(kind) * hiddenSize;
        for (int l = 0; l < numLayers; l++)
        {
            _parameters.Add(RegisterParameter($"weight_ih_l{l}", Tensor.Zeros(g, l == 0 ? inputSize : hiddenSize)));
            _parameters.Add(RegisterParameter($"weight_hh_l{l}", Tensor.Zeros(g, hiddenSize)));
            if (!bias) continue;
            _parameters.Add(RegisterParameter($"bias_ih_l{l}", Tensor.Zeros(g)));
            _parameters.Add(RegisterParameter($"bias_hh_l{l}", Tensor.Zeros(g)));
        }
        ResetParameters();
    }

    /// <summary>I, the features per step of the input.</summary>
    public int InputSize { get; }

    /// <summary>H, the features of the hidden state.</summary>
    public int HiddenSize { get; }

    /// <summary>Number of stacked layers.</summary>
    public int NumLayers { get; }

    /// <summary>Whether the layers have the biases b_ih and b_hh.</summary>
    public bool Bias { get; }

    /// <summary>Whether input and output are [B, T, ·] rather than [T, B, ·].</summary>
    public bool BatchFirst { get; }

    /// <summary>The recurrence (for the gradient monitor).</summary>
    internal RecurrentKind Kind => _kind;

    private int PerLayer => Bias ? 4 : 2;

    /// <summary>W_ih of layer <paramref name="layer"/> (0-based), [gates·H, I] for layer 0 and [gates·H, H] above.</summary>
    public Parameter WeightIh(int layer) => _parameters[LayerIndex(layer) * PerLayer];

    /// <summary>W_hh of layer <paramref name="layer"/>, [gates·H, H].</summary>
    public Parameter WeightHh(int layer) => _parameters[LayerIndex(layer) * PerLayer + 1];

    /// <summary>b_ih of layer <paramref name="layer"/>, [gates·H], or null without biases.</summary>
    public Parameter? BiasIh(int layer) => Bias ? _parameters[LayerIndex(layer) * PerLayer + 2] : null;

    /// <summary>b_hh of layer <paramref name="layer"/>, [gates·H], or null without biases.</summary>
    public Parameter? BiasHh(int layer) => Bias ? _parameters[LayerIndex(layer) * PerLayer + 3] : null;

    private int LayerIndex(int layer)
    {
        if ((uint)layer >= (uint)NumLayers)
            throw new ArgumentOutOfRangeException(nameof(layer), $"{GetType().Name}: layer {layer} is outside 0..{NumLayers - 1}.");
        return layer;
    }

    /// <summary>
    /// Arms gradient probes for the next forward pass only: probe l receives, during that pass's
    /// backward, Σ(dL/dh_t)² and the non-finite count of stacked layer l's hidden state at every step
    /// (see <see cref="RecurrentGradientProbe"/>). The forward pass consumes them; later passes run
    /// without probes until armed again. The gradient monitor uses this on its sampled steps.
    /// </summary>
    /// <param name="probes">One probe per stacked layer (<see cref="NumLayers"/>), layer 0 first; null disarms.</param>
    /// <exception cref="ArgumentException">when the count is not <see cref="NumLayers"/> or a probe is null.</exception>
    public void ArmGradientProbes(IReadOnlyList<RecurrentGradientProbe>? probes)
    {
        if (probes is not null)
        {
            if (probes.Count != NumLayers)
                throw new ArgumentException($"{GetType().Name}.ArmGradientProbes: {probes.Count} probes given for {NumLayers} stacked layers.", nameof(probes));
            for (int l = 0; l < probes.Count; l++)
                if (probes[l] is null) throw new ArgumentException($"{GetType().Name}.ArmGradientProbes: probe {l} is null.", nameof(probes));
        }
        _probes = probes;
    }

    /// <summary>PyTorch's default: every weight and bias U(−1/√H, 1/√H), in parameter order.</summary>
    public override void ResetParameters()
    {
        double bound = 1 / Math.Sqrt(HiddenSize);
        foreach (var p in _parameters) Init.Uniform(p.Data, _generator, -bound, bound);
    }

    /// <summary>
    /// Runs the layers over <paramref name="input"/> from <paramref name="state"/> (zeros when null).
    /// </summary>
    /// <param name="input">[T, B, I], or [B, T, I] with <see cref="BatchFirst"/>.</param>
    /// <param name="state">h_0 (and c_0 for an LSTM), [numLayers, B, H]; null for zeros.</param>
    /// <returns>The last layer's output at every step and the final state of every layer.</returns>
    /// <exception cref="ArgumentException">naming the layer and the shapes when they do not fit.</exception>
    public RecurrentOutput Forward(Tensor input, RecurrentState? state)
    {
        ArgumentNullException.ThrowIfNull(input);
        // Through Module.Forward, so forward and backward hooks see this call too; the state goes in
        // and out beside it.
        _stateIn = state;
        try
        {
            var output = Forward(input);
            return new RecurrentOutput(output, _stateOut!);
        }
        finally
        {
            _stateIn = null;
            _stateOut = null;
        }
    }

    /// <inheritdoc />
    protected sealed override Tensor ForwardCore(Tensor input)
    {
        var probes = _probes;
        _probes = null; // armed for one pass
        var result = RecurrentFunctional.Run(_kind, GetType().Name, input, _stateIn, _parameters.Select(p => p.Data).ToArray(),
            NumLayers, Bias, BatchFirst, probes);
        _stateOut = result.State;
        return result.Output;
    }

    /// <inheritdoc />
    protected override string ExtraRepr()
    {
        var s = $"{InputSize}, {HiddenSize}";
        if (NumLayers != 1) s += $", num_layers={NumLayers}";
        if (_kind == RecurrentKind.RnnRelu) s += ", nonlinearity=relu";
        if (!Bias) s += ", bias=False";
        if (BatchFirst) s += ", batch_first=True";
        return s;
    }
}

/// <summary>
/// A stacked vanilla (Elman) recurrent network, as <c>torch.nn.RNN</c>: per layer
/// <c>h_t = φ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)</c>, φ = tanh (default) or ReLU; parameters
/// <c>weight_ih_l{k}</c> [H, I], <c>weight_hh_l{k}</c> [H, H], <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [H].
/// </summary>
/// <remarks>
/// Gradient flow: backpropagating through a step multiplies the signal by <c>W_hhᵀ·diag(φ′)</c>, so
/// over many steps it shrinks or grows geometrically with the spectral radius of W_hh (Bengio et
/// al. 1994; Pascanu et al. 2013). Orthogonal W_hh (<see cref="Init.OrthogonalRecurrent"/>) or, with
/// ReLU, the identity (<see cref="Init.IdentityRecurrent"/>, the IRNN of Le et al. 2015) start it at 1.
/// </remarks>
/// <example><code>
/// var rnn = new Rnn(inputSize: 2, hiddenSize: 64, new Generator(0), nonlinearity: RnnNonlinearity.Relu, batchFirst: true);
/// var (output, state) = rnn.Forward(x, null);   // x [B, T, 2] → output [B, T, 64], state.H [1, B, 64]
/// </code></example>
public sealed class Rnn : RecurrentLayer
{
    /// <summary>A stacked RNN; see <see cref="RecurrentLayer"/> for the shapes.</summary>
    public Rnn(int inputSize, int hiddenSize, Generator generator, int numLayers = 1, RnnNonlinearity nonlinearity = RnnNonlinearity.Tanh,
        bool bias = true, bool batchFirst = false)
        : base(KindOf(nonlinearity), inputSize, hiddenSize, generator, numLayers, bias, batchFirst)
    {
        Nonlinearity = nonlinearity;
    }

    /// <summary>φ.</summary>
    public RnnNonlinearity Nonlinearity { get; }

    private static RecurrentKind KindOf(RnnNonlinearity nonlinearity) => nonlinearity switch
    {
        RnnNonlinearity.Tanh => RecurrentKind.RnnTanh,
        RnnNonlinearity.Relu => RecurrentKind.RnnRelu,
        _ => throw new ArgumentOutOfRangeException(nameof(nonlinearity), $"Rnn: unknown nonlinearity {nonlinearity}."),
    };
}

/// <summary>
/// A stacked LSTM, as <c>torch.nn.LSTM</c> (Hochreiter and Schmidhuber 1997; forget gate, Gers et al.
/// 2000): per layer, with the gates in PyTorch's order i, f, g, o,
/// <c>[i, f, g, o] = [σ, σ, tanh, σ](x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)</c>,
/// <c>c_t = f·c_{t−1} + i·g</c>, <c>h_t = o·tanh(c_t)</c>; parameters <c>weight_ih_l{k}</c> [4H, I],
/// <c>weight_hh_l{k}</c> [4H, H], <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [4H]. The state is (h, c).
/// </summary>
/// <remarks>
/// Gradient flow: along the cell state the backpropagated signal is multiplied by f at each step (the
/// "constant error carousel"), not by a weight matrix, so with forget gates near 1 it survives long
/// delays. A positive forget-gate bias (<see cref="InitForgetGateBias"/>; Gers et al. 2000,
/// Jozefowicz et al. 2015) starts training there.
/// </remarks>
/// <example><code>
/// var lstm = new Lstm(inputSize: 28, hiddenSize: 128, new Generator(0), numLayers: 2, batchFirst: true);
/// lstm.InitForgetGateBias(1.0);
/// var (output, state) = lstm.Forward(images, null);   // [B, 28, 28] → [B, 28, 128]; state.H, state.C [2, B, 128]
/// </code></example>
public sealed class Lstm : RecurrentLayer
{
    /// <summary>A stacked LSTM; see <see cref="RecurrentLayer"/> for the shapes.</summary>
    public Lstm(int inputSize, int hiddenSize, Generator generator, int numLayers = 1, bool bias = true, bool batchFirst = false)
        : base(RecurrentKind.Lstm, inputSize, hiddenSize, generator, numLayers, bias, batchFirst)
    {
    }

    /// <summary>
    /// Sets every layer's total forget-gate bias to <paramref name="value"/>: the forget slice [H, 2H) of
    /// <c>bias_ih</c> to the value and of <c>bias_hh</c> to 0 (the two are added, so the sum is the value).
    /// </summary>
    /// <exception cref="InvalidOperationException">when the layer has no biases.</exception>
    public void InitForgetGateBias(double value = 1.0)
    {
        if (!Bias) throw new InvalidOperationException("Lstm.InitForgetGateBias: this LSTM was built with bias: false.");
        for (int l = 0; l < NumLayers; l++)
        {
            Init.ForgetGateBias(BiasIh(l)!.Data, value);
            Init.ForgetGateBias(BiasHh(l)!.Data, 0.0);
        }
    }
}

/// <summary>
/// A stacked GRU, as <c>torch.nn.GRU</c> (Cho et al. 2014, PyTorch's form): per layer, with
/// <c>x_t·W_ihᵀ + b_ih = [x_r, x_z, x_n]</c> and <c>h_{t−1}·W_hhᵀ + b_hh = [h_r, h_z, h_n]</c>,
/// <c>r = σ(x_r + h_r)</c>, <c>z = σ(x_z + h_z)</c>, <c>n = tanh(x_n + r·h_n)</c>,
/// <c>h_t = (1 − z)·n + z·h_{t−1}</c>; parameters <c>weight_ih_l{k}</c> [3H, I], <c>weight_hh_l{k}</c> [3H, H],
/// <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [3H].
/// </summary>
/// <remarks>Gradient flow: the path <c>h_{t−1} → h_t</c> through <c>z·h_{t−1}</c> carries the signal
/// scaled by z, without a weight matrix, as the LSTM's cell state does.</remarks>
public sealed class Gru : RecurrentLayer
{
    /// <summary>A stacked GRU; see <see cref="RecurrentLayer"/> for the shapes.</summary>
    public Gru(int inputSize, int hiddenSize, Generator generator, int numLayers = 1, bool bias = true, bool batchFirst = false)
        : base(RecurrentKind.Gru, inputSize, hiddenSize, generator, numLayers, bias, batchFirst)
    {
    }
}

/// <summary>The computation of the recurrent layers and cells as functions of their parameters (the modules call these; so do the gradient checks).</summary>
internal static class RecurrentFunctional
{
    public static int GateCount(RecurrentKind kind) => kind switch
    {
        RecurrentKind.Lstm => 4,
        RecurrentKind.Gru => 3,
        _ => 1,
    };

    /// <summary>One layer over a time-major sequence [T, B, I] (with an optional gradient probe).</summary>
    public static (Tensor Output, Tensor HN, Tensor? CN) Layer(RecurrentKind kind, Tensor x, Tensor h0, Tensor? c0,
        Tensor weightIh, Tensor weightHh, Tensor? biasIh, Tensor? biasHh, RecurrentGradientProbe? probe = null)
    {
        switch (kind)
        {
            case RecurrentKind.Lstm:
                var (output, hn, cn) = Tensor.Lstm(x, h0, c0!, weightIh, weightHh, biasIh, biasHh, probe);
                return (output, hn, cn);
            case RecurrentKind.Gru:
                var gru = Tensor.Gru(x, h0, weightIh, weightHh, biasIh, biasHh, probe);
                return (gru.Output, gru.HN, null);
            default:
                var rnn = Tensor.Rnn(x, h0, weightIh, weightHh, biasIh, biasHh,
                    kind == RecurrentKind.RnnRelu ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh, probe);
                return (rnn.Output, rnn.HN, null);
        }
    }

    /// <summary>
    /// The stacked layers: <paramref name="weights"/> holds per layer weight_ih, weight_hh (and bias_ih,
    /// bias_hh when <paramref name="bias"/>), converted to the input's element type when they differ;
    /// <paramref name="probes"/>, when given, one gradient probe per layer.
    /// </summary>
    public static RecurrentOutput Run(RecurrentKind kind, string module, Tensor input, RecurrentState? state, IReadOnlyList<Tensor> weights,
        int numLayers, bool bias, bool batchFirst, IReadOnlyList<RecurrentGradientProbe>? probes = null)
    {
        int inputSize = weights[0].Shape[1], hidden = weights[1].Shape[1];
        string layout = batchFirst ? "[B, T, I]" : "[T, B, I]";
        if (input.Rank != 3 || input.Shape[2] != inputSize || input.Shape[0] < 1 || input.Shape[1] < 1)
            throw new ArgumentException(
                $"{module}: input must be {layout} with I = {inputSize}{(batchFirst ? " (batchFirst)" : "")} and B, T at least 1, got {Shapes.Format(input.Shape)}.");
        var x = batchFirst ? input.Transpose(0, 1) : input;
        int batch = x.Shape[1];
        bool lstm = kind == RecurrentKind.Lstm;
        CheckState(module, lstm, state, [numLayers, batch, hidden], "numLayers, B, H", input);
        var hn = new Tensor[numLayers];
        var cn = lstm ? new Tensor[numLayers] : null;
        int per = bias ? 4 : 2;
        for (int l = 0; l < numLayers; l++)
        {
            var w = weights.Skip(l * per).Take(per).Select(t => t.DType == input.DType ? t : t.To(input.DType)).ToArray();
            var h0 = state is null ? Tensor.Zeros(input.DType, batch, hidden) : LayerOf(state.H, l, numLayers);
            var c0 = !lstm ? null : state is null ? Tensor.Zeros(input.DType, batch, hidden) : LayerOf(state.C!, l, numLayers);
            (x, hn[l], var c) = Layer(kind, x, h0, c0, w[0], w[1], bias ? w[2] : null, bias ? w[3] : null, probes?[l]);
            if (cn is not null) cn[l] = c!;
        }
        var output = batchFirst ? x.Transpose(0, 1) : x;
        return new RecurrentOutput(output, new RecurrentState(Layers(hn), cn is null ? null : Layers(cn)));
    }

    /// <summary>Checks a given state against the expected shape: H always, C for an LSTM only.</summary>
    public static void CheckState(string module, bool lstm, RecurrentState? state, int[] shape, string dims, Tensor input)
    {
        if (state is null) return;
        ArgumentNullException.ThrowIfNull(state.H);
        if (!state.H.Shape.SequenceEqual(shape))
            throw new ArgumentException(
                $"{module}: state H must be [{dims}] = {Shapes.Format(shape)} for input {Shapes.Format(input.Shape)}, got {Shapes.Format(state.H.Shape)}.");
        if (lstm && state.C is null)
            throw new ArgumentException($"{module}: an LSTM state needs the cell state C {Shapes.Format(shape)} as well as H.");
        if (!lstm && state.C is not null)
            throw new ArgumentException($"{module}: only an LSTM has a cell state; pass a state with C = null.");
        if (lstm && !state.C!.Shape.SequenceEqual(shape))
            throw new ArgumentException(
                $"{module}: state C must be [{dims}] = {Shapes.Format(shape)} for input {Shapes.Format(input.Shape)}, got {Shapes.Format(state.C.Shape)}.");
    }

    private static Tensor LayerOf(Tensor stacked, int layer, int numLayers) =>
        numLayers == 1 ? stacked.Squeeze(0) : stacked.Narrow(0, layer, 1).Squeeze(0);

    private static Tensor Layers(Tensor[] perLayer) => perLayer.Length == 1 ? perLayer[0].Unsqueeze(0) : Tensor.Stack(perLayer);
}
