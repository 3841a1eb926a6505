using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Recurrent;

/// <summary>
/// The sequence layers <see cref="Rnn"/>, <see cref="Lstm"/>, <see cref="Gru"/> and the cells: PyTorch's
/// parameter names and shapes, default initialisation, stacked forward against the written-out
/// equations, float64 gradient checks through the stacked computation (2 layers, both layouts, with and
/// without an initial state), truncated BPTT with a detached state, and their errors.
/// </summary>
public class RecurrentLayerTests
{
    private static RecurrentKind Kind(ReferenceKind kind) => kind switch
    {
        ReferenceKind.RnnTanh => RecurrentKind.RnnTanh,
        ReferenceKind.RnnRelu => RecurrentKind.RnnRelu,
        ReferenceKind.Lstm => RecurrentKind.Lstm,
        _ => RecurrentKind.Gru,
    };

    private static RecurrentLayer Make(ReferenceKind kind, int input, int hidden, ulong seed, int numLayers = 1, bool bias = true, bool batchFirst = false) =>
        kind switch
        {
            ReferenceKind.Lstm => new Lstm(input, hidden, new Generator(seed), numLayers, bias, batchFirst),
            ReferenceKind.Gru => new Gru(input, hidden, new Generator(seed), numLayers, bias, batchFirst),
            ReferenceKind.RnnRelu => new Rnn(input, hidden, new Generator(seed), numLayers, RnnNonlinearity.Relu, bias, batchFirst),
            _ => new Rnn(input, hidden, new Generator(seed), numLayers, RnnNonlinearity.Tanh, bias, batchFirst),
        };

    // ------------------------------------------------------------------ names, shapes, init

    [Theory]
    [InlineData(ReferenceKind.RnnTanh, 1)]
    [InlineData(ReferenceKind.Lstm, 4)]
    [InlineData(ReferenceKind.Gru, 3)]
    public void StateDict_HasPyTorchNamesAndShapes(ReferenceKind kind, int gates)
    {
        var layer = Make(kind, input: 5, hidden: 7, seed: 1, numLayers: 2);
        var expected = new (string, int[])[]
        {
            ("weight_ih_l0", [gates * 7, 5]), ("weight_hh_l0", [gates * 7, 7]), ("bias_ih_l0", [gates * 7]), ("bias_hh_l0", [gates * 7]),
            ("weight_ih_l1", [gates * 7, 7]), ("weight_hh_l1", [gates * 7, 7]), ("bias_ih_l1", [gates * 7]), ("bias_hh_l1", [gates * 7]),
        };
        Assert.Equal(expected.Select(e => e.Item1), layer.StateDict().Select(kv => kv.Key));
        Assert.Equal(expected.Select(e => e.Item2), layer.StateDict().Select(kv => kv.Value.Shape.ToArray()));
        Assert.Same(layer.WeightHh(1).Data, layer.StateDict()[5].Value);

        var noBias = Make(kind, 5, 7, 1, numLayers: 2, bias: false);
        Assert.Equal(["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"], noBias.StateDict().Select(kv => kv.Key));
        Assert.Null(noBias.BiasIh(1));
    }

    [Fact]
    public void Cells_HavePyTorchNamesAndShapes()
    {
        var g = new Generator(1);
        Assert.Equal(["weight_ih", "weight_hh", "bias_ih", "bias_hh"], new LstmCell(3, 5, g).StateDict().Select(kv => kv.Key));
        Assert.Equal([[20, 3], [20, 5], [20], [20]], new LstmCell(3, 5, g).StateDict().Select(kv => kv.Value.Shape.ToArray()));
        Assert.Equal([[15, 3], [15, 5], [15], [15]], new GruCell(3, 5, g).StateDict().Select(kv => kv.Value.Shape.ToArray()));
        Assert.Equal([[5, 3], [5, 5]], new RnnCell(3, 5, g, bias: false).StateDict().Select(kv => kv.Value.Shape.ToArray()));
    }

    [Fact]
    public void DefaultInit_IsUniformWithinOneOverSqrtHidden_AndSeeded()
    {
        var lstm = new Lstm(30, 100, new Generator(3), numLayers: 2);
        double bound = 1 / Math.Sqrt(100);
        var all = lstm.Parameters().SelectMany(p => p.Data.ToDoubleArray()).ToArray();
        Assert.All(all, v => Assert.InRange(v, -bound, bound));
        double var = all.Sum(v => v * v) / all.Length;
        Assert.InRange(var, bound * bound / 3 * 0.97, bound * bound / 3 * 1.03);
        var again = new Lstm(30, 100, new Generator(3), numLayers: 2).Parameters().SelectMany(p => p.Data.ToDoubleArray());
        Assert.Equal(all, again);
        var other = new Lstm(30, 100, new Generator(4), numLayers: 2).Parameters().SelectMany(p => p.Data.ToDoubleArray());
        Assert.NotEqual(all, other);
    }

    [Fact]
    public void Repr_IsPyTorchLike()
    {
        var g = new Generator(0);
        Assert.Equal("Lstm(10, 20, num_layers=2, batch_first=True)", new Lstm(10, 20, g, numLayers: 2, batchFirst: true).ToString());
        Assert.Equal("Gru(3, 4, bias=False)", new Gru(3, 4, g, bias: false).ToString());
        Assert.Equal("Rnn(3, 4, nonlinearity=relu)", new Rnn(3, 4, g, nonlinearity: RnnNonlinearity.Relu).ToString());
        Assert.Equal("LstmCell(3, 4)", new LstmCell(3, 4, g).ToString());
    }

    // ------------------------------------------------------------------ forward

    /// <summary>The stacked layers from the reference equations, layer by layer, in [T, B, ·] layout.</summary>
    private static (double[] Output, double[] H, double[]? C) StackedReference(ReferenceKind kind, RecurrentLayer layer, double[] x,
        int steps, int batch, double[]? h0, double[]? c0)
    {
        int hidden = layer.HiddenSize, bh = batch * hidden, inputSize = layer.InputSize;
        var hs = new List<double>();
        var cs = new List<double>();
        for (int l = 0; l < layer.NumLayers; l++)
        {
            var h = h0?[(l * bh)..((l + 1) * bh)] ?? new double[bh];
            var c = kind != ReferenceKind.Lstm ? null : c0?[(l * bh)..((l + 1) * bh)] ?? new double[bh];
            var r = RecurrentReference.Layer(kind, x, steps, batch, l == 0 ? inputSize : hidden, hidden, h, c,
                layer.WeightIh(l).Data.ToDoubleArray(), layer.WeightHh(l).Data.ToDoubleArray(),
                layer.BiasIh(l)?.Data.ToDoubleArray(), layer.BiasHh(l)?.Data.ToDoubleArray());
            x = r.Output;
            hs.AddRange(r.H);
            if (r.C is not null) cs.AddRange(r.C);
        }
        return (x, hs.ToArray(), kind == ReferenceKind.Lstm ? cs.ToArray() : null);
    }

    [Theory]
    [InlineData(ReferenceKind.RnnTanh, false, false)]
    [InlineData(ReferenceKind.RnnRelu, true, true)]
    [InlineData(ReferenceKind.Lstm, false, true)]
    [InlineData(ReferenceKind.Lstm, true, false)]
    [InlineData(ReferenceKind.Gru, true, true)]
    public void Forward_TwoLayers_MatchesStackedEquations(ReferenceKind kind, bool batchFirst, bool withState)
    {
        const int steps = 5, batch = 3, input = 4, hidden = 6;
        var layer = Make(kind, input, hidden, seed: 2, numLayers: 2, batchFirst: batchFirst);
        var g = new Generator(5);
        var x = batchFirst ? Tensor.RandN(g, batch, steps, input) : Tensor.RandN(g, steps, batch, input);
        RecurrentState? state = withState
            ? new RecurrentState(Tensor.RandN(g, 2, batch, hidden) * 0.5, kind == ReferenceKind.Lstm ? Tensor.RandN(g, 2, batch, hidden) * 0.5 : null)
            : null;
        var (output, final) = layer.Forward(x, state);

        var xt = batchFirst ? RecurrentReference.SwapLeading(x.ToDoubleArray(), batch, steps, input) : x.ToDoubleArray();
        var want = StackedReference(kind, layer, xt, steps, batch, state?.H.ToDoubleArray(), state?.C?.ToDoubleArray());
        var wantOut = batchFirst ? RecurrentReference.SwapLeading(want.Output, steps, batch, hidden) : want.Output;
        Assert.Equal(batchFirst ? [batch, steps, hidden] : [steps, batch, hidden], output.Shape.ToArray());
        Assert.Equal([2, batch, hidden], final.H.Shape.ToArray());
        TestTensors.AllClose(wantOut, output.ToDoubleArray(), 1e-5, 1e-5, $"{kind} output");
        TestTensors.AllClose(want.H, final.H.ToDoubleArray(), 1e-5, 1e-5, $"{kind} h_n");
        if (want.C is not null) TestTensors.AllClose(want.C, final.C!.ToDoubleArray(), 1e-5, 1e-5, $"{kind} c_n");
        else Assert.Null(final.C);

        // The one-argument Forward is the same computation from a zero state.
        if (!withState) Assert.Equal(output.ToDoubleArray(), layer.Forward(x).ToDoubleArray());
    }

    [Fact]
    public void Forward_Float64Input_ConvertsParameters()
    {
        var gru = new Gru(3, 4, new Generator(1), numLayers: 2);
        var x = Tensor.RandN(new Generator(2), 2, 5, 3);
        var y32 = gru.Forward(x).ToDoubleArray();
        var y64 = gru.Forward(x.To(DType.Float64));
        Assert.Equal(DType.Float64, y64.DType);
        TestTensors.AllClose(y32, y64.ToDoubleArray(), 1e-5, 1e-6, "gru float64");
    }

    // ------------------------------------------------------------------ gradients

    public static TheoryData<ReferenceKind, bool, bool> StackedCases()
    {
        var data = new TheoryData<ReferenceKind, bool, bool>();
        foreach (var kind in Enum.GetValues<ReferenceKind>())
            foreach (bool batchFirst in new[] { false, true })
                foreach (bool withState in new[] { false, true })
                    data.Add(kind, batchFirst, withState);
        return data;
    }

    [Theory]
    [MemberData(nameof(StackedCases))]
    public void Stacked_TwoLayers_GradientMatchesFiniteDifferences(ReferenceKind kind, bool batchFirst, bool withState)
    {
        // The modules' own computation (RecurrentFunctional.Run) with every weight, the input and the
        // initial state as float64 leaves. H = 5 and I = 3 leave SIMD tails in every kernel.
        const int steps = 3, batch = 2, input = 3, hidden = 5, layers = 2;
        bool lstm = kind == ReferenceKind.Lstm;
        int g = RecurrentReference.Gates(kind) * hidden;
        var t = new List<Tensor> { RecurrentOpTests.Leaf(1, 1, batchFirst ? [batch, steps, input] : [steps, batch, input]) };
        if (withState)
        {
            t.Add(RecurrentOpTests.Leaf(2, 0.5, layers, batch, hidden));
            if (lstm) t.Add(RecurrentOpTests.Leaf(3, 0.5, layers, batch, hidden));
        }
        int first = t.Count;
        for (int l = 0; l < layers; l++)
        {
            t.Add(RecurrentOpTests.Leaf(10UL + (ulong)l, 0.5, g, l == 0 ? input : hidden));
            t.Add(RecurrentOpTests.Leaf(20UL + (ulong)l, 0.5, g, hidden));
            t.Add(RecurrentOpTests.Leaf(30UL + (ulong)l, 0.5, g));
            t.Add(RecurrentOpTests.Leaf(40UL + (ulong)l, 0.5, g));
        }
        GradCheck.Assert(x =>
        {
            var state = withState ? new RecurrentState(x[1], lstm ? x[2] : null) : null;
            var r = RecurrentFunctional.Run(Kind(kind), kind.ToString(), x[0], state, x[first..], layers, bias: true, batchFirst);
            Tensor[] parts = r.State.C is null
                ? [r.Output.Reshape(-1), r.State.H.Reshape(-1)]
                : [r.Output.Reshape(-1), r.State.H.Reshape(-1), r.State.C.Reshape(-1)];
            return Tensor.Concat(parts);
        }, t.ToArray(), name: $"{kind} stacked");
    }

    [Theory]
    [InlineData(ReferenceKind.RnnTanh)]
    [InlineData(ReferenceKind.RnnRelu)]
    [InlineData(ReferenceKind.Lstm)]
    [InlineData(ReferenceKind.Gru)]
    public void Cell_GradientMatchesFiniteDifferences_AndEqualsOneStepOfLayer(ReferenceKind kind)
    {
        const int batch = 3, input = 4, hidden = 7;
        bool lstm = kind == ReferenceKind.Lstm;
        int g = RecurrentReference.Gates(kind) * hidden;
        Tensor[] t =
        [
            RecurrentOpTests.Leaf(1, 1, batch, input), RecurrentOpTests.Leaf(2, 0.5, batch, hidden), RecurrentOpTests.Leaf(3, 0.5, batch, hidden),
            RecurrentOpTests.Leaf(4, 0.5, g, input), RecurrentOpTests.Leaf(5, 0.5, g, hidden), RecurrentOpTests.Leaf(6, 0.5, g), RecurrentOpTests.Leaf(7, 0.5, g),
        ];
        t[2].RequiresGrad = lstm; // c only for the LSTM
        GradCheck.Assert(x =>
        {
            var (_, hn, cn) = RecurrentFunctional.Layer(Kind(kind), x[0].Unsqueeze(0), x[1], lstm ? x[2] : null, x[3], x[4], x[5], x[6]);
            return cn is null ? hn : Tensor.Concat([hn.Reshape(-1), cn.Reshape(-1)]);
        }, t, name: $"{kind} cell");

        // The module: a step of the cell is a step of the one-layer sequence module with the same weights.
        RecurrentCell cell = kind switch
        {
            ReferenceKind.Lstm => new LstmCell(input, hidden, new Generator(8)),
            ReferenceKind.Gru => new GruCell(input, hidden, new Generator(8)),
            _ => new RnnCell(input, hidden, new Generator(8), nonlinearity: kind == ReferenceKind.RnnRelu ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh),
        };
        var layer = Make(kind, input, hidden, seed: 9);
        layer.LoadStateDict(cell.StateDict().ToDictionary(kv => kv.Key + "_l0", kv => kv.Value));
        var xs = Tensor.RandN(new Generator(10), 4, batch, input);
        RecurrentState? state = null;
        var steps = new List<double>();
        for (int s = 0; s < 4; s++)
        {
            state = cell.Forward(xs.Narrow(0, s, 1).Squeeze(0), state);
            steps.AddRange(state.H.ToDoubleArray());
        }
        var (output, final) = layer.Forward(xs, null);
        TestTensors.AllClose(output.ToDoubleArray(), steps.ToArray(), 1e-6, 1e-6, $"{kind} cell loop vs layer");
        if (lstm) TestTensors.AllClose(final.C!.ToDoubleArray(), state!.C!.ToDoubleArray(), 1e-6, 1e-6, "c");
        else Assert.Null(state!.C);
    }

    // ------------------------------------------------------------------ truncated BPTT

    [Fact]
    public void TruncatedBptt_DetachedState_CarriesValuesButStopsGradients()
    {
        var lstm = new Lstm(3, 5, new Generator(1), numLayers: 2, batchFirst: true);
        var x = Tensor.RandN(new Generator(2), 2, 8, 3);
        var whole = lstm.Forward(x, null);

        // Two chunks of 4 steps, the state detached between them: same outputs as the whole sequence.
        var first = x.Narrow(1, 0, 4);
        var second = x.Narrow(1, 4, 4);
        first.RequiresGrad = true;
        var a = lstm.Forward(first, null);
        var carried = a.State.Detach();
        Assert.False(carried.H.RequiresGrad);
        Assert.False(carried.C!.RequiresGrad);
        var b = lstm.Forward(second, carried);
        TestTensors.AllClose(whole.Output.ToDoubleArray(), [.. a.Output.ToDoubleArray().Chunk(20).Zip(b.Output.ToDoubleArray().Chunk(20)).SelectMany(p => p.First.Concat(p.Second))],
            1e-6, 1e-7, "chunked output");
        TestTensors.AllClose(whole.State.C!.ToDoubleArray(), b.State.C!.ToDoubleArray(), 1e-6, 1e-7, "final c");

        // The second chunk's loss reaches the parameters but not the first chunk's input.
        lstm.ZeroGrad();
        b.Output.Square().Sum().Backward();
        Assert.Null(first.Grad);
        var grads = lstm.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();

        // And the parameter gradients equal a run of the second chunk from a constant state with those values.
        lstm.ZeroGrad();
        var constant = new RecurrentState(Tensor.FromArray(carried.H.ToArray(), 2, 2, 5), Tensor.FromArray(carried.C.ToArray(), 2, 2, 5));
        lstm.Forward(second, constant).Output.Square().Sum().Backward();
        var expected = lstm.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();
        for (int i = 0; i < grads.Length; i++) Assert.Equal(expected[i], grads[i]);
    }

    [Fact]
    public void Forward_WithState_RunsForwardHooksOnce()
    {
        var gru = new Gru(2, 3, new Generator(1));
        var seen = new List<int[]>();
        using var _ = gru.RegisterForwardHook((m, input, output) => seen.Add(output.Shape.ToArray()));
        var (output, state) = gru.Forward(Tensor.Zeros(4, 2, 2), new RecurrentState(Tensor.Zeros(1, 2, 3)));
        Assert.Equal([[4, 2, 3]], seen);
        Assert.Equal([1, 2, 3], state.H.Shape.ToArray());
        Assert.Equal([4, 2, 3], output.Shape.ToArray());
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void BadShapes_ThrowNamingLayerAndShapes()
    {
        var lstm = new Lstm(5, 4, new Generator(1), numLayers: 2, batchFirst: true);
        var e = Assert.Throws<ArgumentException>(() => lstm.Forward(Tensor.Zeros(3, 7, 6)));
        Assert.Contains("Lstm", e.Message);
        Assert.Contains("[B, T, I]", e.Message);
        Assert.Contains("[3, 7, 6]", e.Message);

        var x = Tensor.Zeros(3, 7, 5);
        e = Assert.Throws<ArgumentException>(() => lstm.Forward(x, new RecurrentState(Tensor.Zeros(1, 3, 4), Tensor.Zeros(1, 3, 4))));
        Assert.Contains("[2, 3, 4]", e.Message);
        Assert.Contains("[1, 3, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => lstm.Forward(x, new RecurrentState(Tensor.Zeros(2, 3, 4))));
        Assert.Contains("cell state", e.Message);

        var gru = new Gru(5, 4, new Generator(1));
        e = Assert.Throws<ArgumentException>(() => gru.Forward(Tensor.Zeros(7, 3, 5), new RecurrentState(Tensor.Zeros(1, 3, 4), Tensor.Zeros(1, 3, 4))));
        Assert.Contains("only an LSTM", e.Message);

        var cell = new LstmCell(5, 4, new Generator(1));
        e = Assert.Throws<ArgumentException>(() => cell.Forward(Tensor.Zeros(3, 6)));
        Assert.Contains("LstmCell", e.Message);
        Assert.Contains("[B, 5]", e.Message);
        Assert.Contains("[3, 6]", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => lstm.WeightIh(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Gru(0, 4, new Generator(1)));
    }
}
