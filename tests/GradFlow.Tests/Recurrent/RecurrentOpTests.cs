using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Recurrent;

/// <summary>
/// The fused sequence ops <see cref="Tensor.Rnn"/>, <see cref="Tensor.Lstm"/> and <see cref="Tensor.Gru"/>:
/// forward against the equations written out in <see cref="RecurrentReference"/>, backward against float64
/// finite differences and against the same recurrence composed from primitive ops, and their errors.
/// </summary>
public class RecurrentOpTests
{
    /// <summary>kind, T, B, I, H, with biases, whether h0 (and c0) require grad. Odd sizes reach the SIMD tails.</summary>
    public static TheoryData<ReferenceKind, int, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<ReferenceKind, int, int, int, int, bool, bool>();
        foreach (var kind in Enum.GetValues<ReferenceKind>())
        {
            data.Add(kind, 3, 2, 5, 9, true, true);
            data.Add(kind, 1, 1, 1, 1, false, true);
            data.Add(kind, 4, 3, 3, 5, true, false);
        }
        return data;
    }

    internal static Tensor Leaf(ulong seed, double std, params int[] shape)
    {
        var t = Tensor.Normal(new Generator(seed), 0, std, DType.Float64, shape);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>Inputs in the op's order: x, h0, (c0), W_ih, W_hh, (b_ih, b_hh).</summary>
    internal static Tensor[] Inputs(ReferenceKind kind, int steps, int batch, int input, int hidden, bool bias, bool stateGrad, ulong seed = 1)
    {
        int g = RecurrentReference.Gates(kind) * hidden;
        var list = new List<Tensor> { Leaf(seed, 1, steps, batch, input), Leaf(seed + 1, 0.5, batch, hidden) };
        if (kind == ReferenceKind.Lstm) list.Add(Leaf(seed + 2, 0.5, batch, hidden));
        list.Add(Leaf(seed + 3, 0.5, g, input));
        list.Add(Leaf(seed + 4, 0.5, g, hidden));
        if (bias)
        {
            list.Add(Leaf(seed + 5, 0.5, g));
            list.Add(Leaf(seed + 6, 0.5, g));
        }
        if (!stateGrad)
        {
            list[1].RequiresGrad = false;
            if (kind == ReferenceKind.Lstm) list[2].RequiresGrad = false;
        }
        return list.ToArray();
    }

    /// <summary>Calls the op for <paramref name="kind"/> on inputs in <see cref="Inputs"/>' order.</summary>
    internal static (Tensor Output, Tensor HN, Tensor? CN) Call(ReferenceKind kind, Tensor[] t)
    {
        bool lstm = kind == ReferenceKind.Lstm;
        int w = lstm ? 3 : 2;
        Tensor? bIh = t.Length > w + 2 ? t[w + 2] : null, bHh = t.Length > w + 3 ? t[w + 3] : null;
        switch (kind)
        {
            case ReferenceKind.Lstm:
                return Tensor.Lstm(t[0], t[1], t[2], t[3], t[4], bIh, bHh);
            case ReferenceKind.Gru:
                var gru = Tensor.Gru(t[0], t[1], t[2], t[3], bIh, bHh);
                return (gru.Output, gru.HN, null);
            default:
                var rnn = Tensor.Rnn(t[0], t[1], t[2], t[3], bIh, bHh, kind == ReferenceKind.RnnRelu ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh);
                return (rnn.Output, rnn.HN, null);
        }
    }

    private static (double[] Output, double[] H, double[]? C) Reference(ReferenceKind kind, Tensor[] t, int steps, int batch, int input, int hidden)
    {
        bool lstm = kind == ReferenceKind.Lstm;
        int w = lstm ? 3 : 2;
        return RecurrentReference.Layer(kind, t[0].ToDoubleArray(), steps, batch, input, hidden, t[1].ToDoubleArray(),
            lstm ? t[2].ToDoubleArray() : null, t[w].ToDoubleArray(), t[w + 1].ToDoubleArray(),
            t.Length > w + 2 ? t[w + 2].ToDoubleArray() : null, t.Length > w + 3 ? t[w + 3].ToDoubleArray() : null);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Op_Forward_MatchesCellEquations(ReferenceKind kind, int steps, int batch, int input, int hidden, bool bias, bool stateGrad)
    {
        var t = Inputs(kind, steps, batch, input, hidden, bias, stateGrad);
        var want = Reference(kind, t, steps, batch, input, hidden);
        var (output, hn, cn) = Call(kind, t);
        Assert.Equal([steps, batch, hidden], output.Shape.ToArray());
        Assert.Equal([batch, hidden], hn.Shape.ToArray());
        TestTensors.AllClose(want.Output, output.ToDoubleArray(), 1e-12, 1e-13, $"{kind} output");
        TestTensors.AllClose(want.H, hn.ToDoubleArray(), 1e-12, 1e-13, $"{kind} h_n");
        if (want.C is not null) TestTensors.AllClose(want.C, cn!.ToDoubleArray(), 1e-12, 1e-13, $"{kind} c_n");
        else Assert.Null(cn);

        // float32: the same numbers to float precision.
        var (of, hf, cf) = Call(kind, t.Select(x => x.Detach().To(DType.Float32)).ToArray());
        Assert.Equal(DType.Float32, of.DType);
        TestTensors.AllClose(want.Output, of.ToDoubleArray(), 1e-5, 1e-5, $"{kind} float output");
        TestTensors.AllClose(want.H, hf.ToDoubleArray(), 1e-5, 1e-5, $"{kind} float h_n");
        if (want.C is not null) TestTensors.AllClose(want.C, cf!.ToDoubleArray(), 1e-5, 1e-5, $"{kind} float c_n");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Op_Backward_MatchesFiniteDifferences(ReferenceKind kind, int steps, int batch, int input, int hidden, bool bias, bool stateGrad)
    {
        var t = Inputs(kind, steps, batch, input, hidden, bias, stateGrad);
        // Every result in the loss: the outputs of all steps, h_n and (LSTM) c_n.
        GradCheck.Assert(x =>
        {
            var (o, hn, cn) = Call(kind, x);
            return Tensor.Concat(cn is null ? [o.Reshape(-1), hn.Reshape(-1)] : [o.Reshape(-1), hn.Reshape(-1), cn.Reshape(-1)]);
        }, t, name: kind.ToString());
    }

    [Theory]
    [InlineData(ReferenceKind.Lstm)]
    [InlineData(ReferenceKind.Gru)]
    public void Op_Backward_FromFinalStateOnly_MatchesFiniteDifferences(ReferenceKind kind)
    {
        // Only c_n (LSTM) or h_n in the loss: the gradient enters at the last step and flows back through time alone.
        var t = Inputs(kind, 5, 2, 3, 4, true, true, seed: 40);
        GradCheck.Assert(x =>
        {
            var (_, hn, cn) = Call(kind, x);
            return cn ?? hn;
        }, t, name: kind + " final state");
    }

    /// <summary>The same recurrence built from primitive ops (linear, sigmoid, tanh, narrow, mul, add), one step at a time.</summary>
    private static (Tensor Output, Tensor H, Tensor? C) Composed(ReferenceKind kind, Tensor[] t)
    {
        bool lstm = kind == ReferenceKind.Lstm;
        int w = lstm ? 3 : 2;
        Tensor x = t[0], h = t[1], wIh = t[w], wHh = t[w + 1];
        Tensor? c = lstm ? t[2] : null, bIh = t.Length > w + 2 ? t[w + 2] : null, bHh = t.Length > w + 3 ? t[w + 3] : null;
        int hidden = h.Shape[1];
        Tensor Gate(Tensor a, int k) => a.Narrow(-1, k * hidden, hidden);
        var outputs = new List<Tensor>();
        for (int s = 0; s < x.Shape[0]; s++)
        {
            var xs = x.Narrow(0, s, 1).Reshape(x.Shape[1], x.Shape[2]);
            var xa = Tensor.Linear(xs, wIh, bIh);
            var ha = Tensor.Linear(h, wHh, bHh);
            switch (kind)
            {
                case ReferenceKind.Lstm:
                    var a = xa + ha;
                    c = Gate(a, 1).Sigmoid() * c! + Gate(a, 0).Sigmoid() * Gate(a, 2).Tanh();
                    h = Gate(a, 3).Sigmoid() * c.Tanh();
                    break;
                case ReferenceKind.Gru:
                    var r = (Gate(xa, 0) + Gate(ha, 0)).Sigmoid();
                    var z = (Gate(xa, 1) + Gate(ha, 1)).Sigmoid();
                    var n = (Gate(xa, 2) + r * Gate(ha, 2)).Tanh();
                    h = (1.0 - z) * n + z * h;
                    break;
                default:
                    h = kind == ReferenceKind.RnnRelu ? (xa + ha).Relu() : (xa + ha).Tanh();
                    break;
            }
            outputs.Add(h);
        }
        return (Tensor.Stack(outputs.ToArray()), h, c);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Op_FusedBackward_EqualsComposedPrimitiveOps(ReferenceKind kind, int steps, int batch, int input, int hidden, bool bias, bool stateGrad)
    {
        var t = Inputs(kind, steps, batch, input, hidden, bias, stateGrad, seed: 20);
        var v = Tensor.Normal(new Generator(9), 0, 1, DType.Float64, steps, batch, hidden);
        Tensor Loss((Tensor Output, Tensor H, Tensor? C) r) =>
            (r.Output * v).Sum() + r.H.Square().Sum() + (r.C is null ? Tensor.Scalar(0, DType.Float64) : (r.C * 0.5).Sum());
        Loss(Call(kind, t)).Backward();
        var fused = t.Select(x => x.Grad?.ToDoubleArray()).ToArray();
        foreach (var x in t) x.Grad = null;
        Loss(Composed(kind, t)).Backward();
        for (int i = 0; i < t.Length; i++)
        {
            if (!t[i].RequiresGrad)
            {
                Assert.Null(fused[i]);
                continue;
            }
            TestTensors.AllClose(t[i].Grad!.ToDoubleArray(), fused[i]!, 1e-11, 1e-12, $"{kind} gradient of input {i}");
        }
    }

    [Fact]
    public void Op_NoGrad_RecordsNothing()
    {
        var t = Inputs(ReferenceKind.Lstm, 2, 2, 3, 4, true, true);
        using (GradMode.NoGrad())
        {
            var (o, hn, cn) = Call(ReferenceKind.Lstm, t);
            Assert.False(o.RequiresGrad);
            Assert.False(hn.RequiresGrad);
            Assert.False(cn!.RequiresGrad);
        }
        // With grad on, c_n is a view (reshape of a slice) of the one "lstm" node.
        var ops = new List<string>();
        for (var n = Tensor.Lstm(t[0], t[1], t[2], t[3], t[4]).CN.GradFn; n is not null; n = n.InputTensors[0].GradFn) ops.Add(n.Op);
        Assert.Equal(["reshape", "slice", "lstm"], ops);
    }

    [Fact]
    public void Op_BadShapes_ThrowNamingOpAndShapes()
    {
        var x = Tensor.Zeros(3, 2, 4);
        var h = Tensor.Zeros(2, 6);
        // weight_ih expects I = 5, the input has 4.
        var e = Assert.Throws<ArgumentException>(() => Tensor.Lstm(x, h, h, Tensor.Zeros(24, 5), Tensor.Zeros(24, 6)));
        Assert.Contains("lstm", e.Message);
        Assert.Contains("[3, 2, 4]", e.Message);
        Assert.Contains("[24, 5]", e.Message);
        // weight_hh not [3H, H].
        e = Assert.Throws<ArgumentException>(() => Tensor.Gru(x, h, Tensor.Zeros(18, 4), Tensor.Zeros(17, 6)));
        Assert.Contains("gru", e.Message);
        Assert.Contains("[17, 6]", e.Message);
        // h0 of the wrong batch.
        e = Assert.Throws<ArgumentException>(() => Tensor.Rnn(x, Tensor.Zeros(3, 6), Tensor.Zeros(6, 4), Tensor.Zeros(6, 6)));
        Assert.Contains("rnn_tanh", e.Message);
        Assert.Contains("h0", e.Message);
        Assert.Contains("[3, 6]", e.Message);
        Assert.Contains("[2, 6]", e.Message);
        // bias of the wrong length.
        e = Assert.Throws<ArgumentException>(() => Tensor.Rnn(x, h, Tensor.Zeros(6, 4), Tensor.Zeros(6, 6), Tensor.Zeros(5), null, RnnNonlinearity.Relu));
        Assert.Contains("rnn_relu", e.Message);
        Assert.Contains("bias_ih", e.Message);
        // a 2-D input.
        e = Assert.Throws<ArgumentException>(() => Tensor.Gru(Tensor.Zeros(2, 4), h, Tensor.Zeros(18, 4), Tensor.Zeros(18, 6)));
        Assert.Contains("[2, 4]", e.Message);
        // mixed element types.
        e = Assert.Throws<ArgumentException>(() => Tensor.Rnn(x, Tensor.Zeros(DType.Float64, 2, 6), Tensor.Zeros(6, 4), Tensor.Zeros(6, 6)));
        Assert.Contains("element types", e.Message);
    }

    [Fact]
    public void Op_SameInputs_GiveBitIdenticalResults()
    {
        var t = Inputs(ReferenceKind.Lstm, 6, 4, 7, 33, true, true, seed: 70).Select(x =>
        {
            var f = x.Detach().To(DType.Float32);
            f.RequiresGrad = true;
            return f;
        }).ToArray();
        double[][] Run()
        {
            foreach (var x in t) x.Grad = null;
            var (o, hn, cn) = Call(ReferenceKind.Lstm, t);
            (o.Sum() + hn.Square().Sum() + cn!.Sum()).Backward();
            return [o.ToDoubleArray(), .. t.Select(x => x.Grad!.ToDoubleArray())];
        }
        var first = Run();
        var second = Run();
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }
}
