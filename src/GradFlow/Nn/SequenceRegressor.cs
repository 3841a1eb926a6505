using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>The recurrence of a <see cref="SequenceRegressor"/> (PyTorch's <c>mode</c>: RNN_TANH, RNN_RELU, LSTM, GRU).</summary>
public enum RecurrentCellKind
{
    /// <summary>An <see cref="Rnn"/> with tanh.</summary>
    RnnTanh,

    /// <summary>An <see cref="Rnn"/> with ReLU.</summary>
    RnnRelu,

    /// <summary>An <see cref="Lstm"/>.</summary>
    Lstm,

    /// <summary>A <see cref="Gru"/>.</summary>
    Gru,
}

/// <summary>
/// A recurrent layer read out at the end of the sequence: the last layer's final hidden state goes
/// through one linear unit, <c>y = h_T^(L)·wᵀ + b</c>. This is the reference benchmark's
/// <c>rnn_regressor</c> (<c>self.head(h_n[-1])</c>) and the model of the adding problem (Hochreiter and
/// Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016).
/// </summary>
/// <remarks>
/// Children <c>rnn</c> (the <see cref="Rnn"/>, <see cref="Lstm"/> or <see cref="Gru"/>) and
/// <c>head</c> (<see cref="Linear"/>(H, 1)), so the state-dict keys are PyTorch's for the same module
/// (<c>rnn.weight_ih_l0</c>, …, <c>head.weight</c>, <c>head.bias</c>). Default initialisation is that
/// of the two children (PyTorch's); the recurrent layer is built first from the generator, then the head.
/// Input [B, T, I] (batch-first, the default, as the reference) or [T, B, I]; output [B, outputs]
/// (1 by default; class logits when it classifies, as <see cref="RecurrentSpec"/> builds it for
/// Fashion-MNIST read by rows).
/// </remarks>
/// <example><code>
/// var model = new SequenceRegressor(RecurrentCellKind.Lstm, inputSize: 2, hiddenSize: 64, new Generator(0));
/// var y = model.Forward(x);   // x [32, 100, 2] → y [32, 1]
/// </code></example>
public sealed class SequenceRegressor : Module
{
    /// <summary>A <paramref name="numLayers"/>-layer recurrence of <paramref name="cell"/> with <paramref name="hiddenSize"/> units and a linear head of <paramref name="outputSize"/> outputs.</summary>
    /// <exception cref="ArgumentOutOfRangeException">for an unknown cell or sizes below 1.</exception>
    public SequenceRegressor(RecurrentCellKind cell, int inputSize, int hiddenSize, Generator generator, int numLayers = 1, bool batchFirst = true,
        int outputSize = 1)
    {
        ArgumentNullException.ThrowIfNull(generator);
        Cell = cell;
        Recurrent = RegisterModule("rnn", cell switch
        {
            RecurrentCellKind.RnnTanh => (RecurrentLayer)new Rnn(inputSize, hiddenSize, generator, numLayers, RnnNonlinearity.Tanh, batchFirst: batchFirst),
            RecurrentCellKind.RnnRelu => new Rnn(inputSize, hiddenSize, generator, numLayers, RnnNonlinearity.Relu, batchFirst: batchFirst),
            RecurrentCellKind.Lstm => new Lstm(inputSize, hiddenSize, generator, numLayers, batchFirst: batchFirst),
            RecurrentCellKind.Gru => new Gru(inputSize, hiddenSize, generator, numLayers, batchFirst: batchFirst),
            _ => throw new ArgumentOutOfRangeException(nameof(cell), $"SequenceRegressor: unknown cell {cell}; use RnnTanh, RnnRelu, Lstm or Gru."),
        });
        Head = RegisterModule("head", new Linear(hiddenSize, outputSize, generator));
    }

    /// <summary>The recurrence.</summary>
    public RecurrentCellKind Cell { get; }

    /// <summary>The recurrent layer (child <c>rnn</c>).</summary>
    public RecurrentLayer Recurrent { get; }

    /// <summary>The read-out, <see cref="Linear"/>(H, outputs) (child <c>head</c>).</summary>
    public Linear Head { get; }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        var h = Recurrent.Forward(input, null).State.H;               // [L, B, H]
        int layers = h.Shape[0], batch = h.Shape[1], hidden = h.Shape[2];
        var last = layers == 1 ? h : h.Narrow(0, layers - 1, 1);
        return Head.Forward(last.Reshape(batch, hidden));
    }
}
