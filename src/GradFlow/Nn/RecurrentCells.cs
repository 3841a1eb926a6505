using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>
/// Base of the single-step cells <see cref="RnnCell"/>, <see cref="LstmCell"/> and <see cref="GruCell"/>,
/// as <c>torch.nn.RNNCellBase</c>: one time step for a batch, input [B, I], state [B, H]; parameters
/// <c>weight_ih</c> [gates·H, I], <c>weight_hh</c> [gates·H, H], <c>bias_ih</c>, <c>bias_hh</c> [gates·H]
/// (PyTorch's names). Default initialisation (PyTorch's): every parameter U(−1/√H, 1/√H).
/// </summary>
/// <remarks>
/// A cell is the matching sequence op run for one step (<see cref="Tensor.Lstm"/> etc. with T = 1), so
/// its equations, gate order and gradients are exactly the sequence layers'. Write your own loop over
/// time with it: <c>state = cell.Forward(x_t, state)</c>. <see cref="Module.Forward"/> (one argument)
/// starts from zeros and returns h′.
/// </remarks>
public abstract class RecurrentCell : Module
{
    private readonly Generator _generator;
    private readonly RecurrentKind _kind;
    private RecurrentState? _stateIn;
    private Tensor? _cellOut;

    private protected RecurrentCell(RecurrentKind kind, int inputSize, int hiddenSize, Generator generator, bool bias)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        _kind = kind;
        (InputSize, HiddenSize) = (inputSize, hiddenSize);
        int g = RecurrentFunctional.GateCount(kind) * hiddenSize;
        WeightIh = RegisterParameter("weight_ih", Tensor.Zeros(g, inputSize));
        WeightHh = RegisterParameter("weight_hh", Tensor.Zeros(g, hiddenSize));
        if (bias)
        {
            BiasIh = RegisterParameter("bias_ih", Tensor.Zeros(g));
            BiasHh = RegisterParameter("bias_hh", Tensor.Zeros(g));
        }
        ResetParameters();
    }

    /// <summary>I.</summary>
    public int InputSize { get; }

    /// <summary>H.</summary>
    public int HiddenSize { get; }

    /// <summary>W_ih, [gates·H, I].</summary>
    public Parameter WeightIh { get; }

    /// <summary>W_hh, [gates·H, H].</summary>
    public Parameter WeightHh { get; }

    /// <summary>b_ih, [gates·H], or null.</summary>
    public Parameter? BiasIh { get; }

    /// <summary>b_hh, [gates·H], or null.</summary>
    public Parameter? BiasHh { get; }

    /// <summary>PyTorch's default: every weight and bias U(−1/√H, 1/√H), in parameter order.</summary>
    public override void ResetParameters()
    {
        double bound = 1 / Math.Sqrt(HiddenSize);
        foreach (var p in Parameters()) Init.Uniform(p.Data, _generator, -bound, bound);
    }

    /// <summary>One step from <paramref name="state"/> (zeros when null).</summary>
    /// <param name="input">x, [B, I].</param>
    /// <param name="state">h (and c for an LSTM cell), [B, H]; null for zeros.</param>
    /// <returns>The new state h′ (and c′).</returns>
    /// <exception cref="ArgumentException">naming the cell and the shapes when they do not fit.</exception>
    public RecurrentState Forward(Tensor input, RecurrentState? state)
    {
        ArgumentNullException.ThrowIfNull(input);
        // Through Module.Forward so the hooks run; the state goes in and out beside it.
        _stateIn = state;
        try
        {
            var h = Forward(input);
            return new RecurrentState(h, _cellOut);
        }
        finally
        {
            _stateIn = null;
            _cellOut = null;
        }
    }

    /// <inheritdoc />
    protected sealed override Tensor ForwardCore(Tensor input)
    {
        string module = GetType().Name;
        if (input.Rank != 2 || input.Shape[1] != InputSize || input.Shape[0] < 1)
            throw new ArgumentException($"{module}: input must be [B, {InputSize}] with B at least 1, got {Shapes.Format(input.Shape)}.");
        int batch = input.Shape[0];
        bool lstm = _kind == RecurrentKind.Lstm;
        RecurrentFunctional.CheckState(module, lstm, _stateIn, [batch, HiddenSize], "B, H", input);
        var h = _stateIn?.H ?? Tensor.Zeros(input.DType, batch, HiddenSize);
        var c = !lstm ? null : _stateIn?.C ?? Tensor.Zeros(input.DType, batch, HiddenSize);
        var (_, hn, cn) = RecurrentFunctional.Layer(_kind, input.Unsqueeze(0), h, c,
            Cast(WeightIh, input), Cast(WeightHh, input), BiasIh is null ? null : Cast(BiasIh, input), BiasHh is null ? null : Cast(BiasHh, input));
        _cellOut = cn;
        return hn;
    }

    private static Tensor Cast(Parameter p, Tensor like) => p.Data.DType == like.DType ? p.Data : p.Data.To(like.DType);

    /// <inheritdoc />
    protected override string ExtraRepr()
    {
        var s = $"{InputSize}, {HiddenSize}";
        if (BiasIh is null) s += ", bias=False";
        if (_kind == RecurrentKind.RnnRelu) s += ", nonlinearity=relu";
        return s;
    }
}

/// <summary>
/// One step of a vanilla RNN, as <c>torch.nn.RNNCell</c>: <c>h′ = φ(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)</c>,
/// φ = tanh (default) or ReLU; <c>weight_ih</c> [H, I], <c>weight_hh</c> [H, H], biases [H].
/// </summary>
public sealed class RnnCell : RecurrentCell
{
    /// <summary>An RNN cell from <paramref name="inputSize"/> to <paramref name="hiddenSize"/>.</summary>
    public RnnCell(int inputSize, int hiddenSize, Generator generator, bool bias = true, RnnNonlinearity nonlinearity = RnnNonlinearity.Tanh)
        : base(nonlinearity switch
        {
            RnnNonlinearity.Tanh => RecurrentKind.RnnTanh,
            RnnNonlinearity.Relu => RecurrentKind.RnnRelu,
            _ => throw new ArgumentOutOfRangeException(nameof(nonlinearity), $"RnnCell: unknown nonlinearity {nonlinearity}."),
        }, inputSize, hiddenSize, generator, bias)
    {
        Nonlinearity = nonlinearity;
    }

    /// <summary>φ.</summary>
    public RnnNonlinearity Nonlinearity { get; }
}

/// <summary>
/// One LSTM step, as <c>torch.nn.LSTMCell</c>: gates i, f, g, o from <c>x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh</c>
/// (σ, σ, tanh, σ), <c>c′ = f·c + i·g</c>, <c>h′ = o·tanh(c′)</c>; <c>weight_ih</c> [4H, I],
/// <c>weight_hh</c> [4H, H], biases [4H]. The state is (h, c).
/// </summary>
public sealed class LstmCell : RecurrentCell
{
    /// <summary>An LSTM cell from <paramref name="inputSize"/> to <paramref name="hiddenSize"/>.</summary>
    public LstmCell(int inputSize, int hiddenSize, Generator generator, bool bias = true)
        : base(RecurrentKind.Lstm, inputSize, hiddenSize, generator, bias)
    {
    }
}

/// <summary>
/// One GRU step, as <c>torch.nn.GRUCell</c>: <c>r = σ(x_r + h_r)</c>, <c>z = σ(x_z + h_z)</c>,
/// <c>n = tanh(x_n + r·h_n)</c>, <c>h′ = (1 − z)·n + z·h</c>, with <c>[x_r, x_z, x_n] = x·W_ihᵀ + b_ih</c>
/// and <c>[h_r, h_z, h_n] = h·W_hhᵀ + b_hh</c>; <c>weight_ih</c> [3H, I], <c>weight_hh</c> [3H, H], biases [3H].
/// </summary>
public sealed class GruCell : RecurrentCell
{
    /// <summary>A GRU cell from <paramref name="inputSize"/> to <paramref name="hiddenSize"/>.</summary>
    public GruCell(int inputSize, int hiddenSize, Generator generator, bool bias = true)
        : base(RecurrentKind.Gru, inputSize, hiddenSize, generator, bias)
    {
    }
}
