using GradFlow.Autograd;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

public class LinearTests
{
    public static TheoryData<int[], int, bool> Cases => new()
    {
        { [4, 3], 5, true },
        { [1, 7], 1, true },
        { [2, 3, 33], 17, false },
        { [9], 4, true },
        { [5, 67], 3, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void LinearOp_MatchesReferenceAndFiniteDifferences(int[] inputShape, int outF, bool withBias)
    {
        int inF = inputShape[^1];
        var x = TestTensors.Leaf(1, inputShape);
        var w = TestTensors.Leaf(2, outF, inF);
        var b = TestTensors.Leaf(3, outF);
        var y = Tensor.Linear(x, w, withBias ? b : null);
        var xv = x.ToDoubleArray();
        var wv = w.ToDoubleArray();
        var bv = b.ToDoubleArray();
        int rows = xv.Length / inF;
        var expected = new double[rows * outF];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outF; o++)
            {
                double s = withBias ? bv[o] : 0;
                for (int i = 0; i < inF; i++) s += xv[r * inF + i] * wv[o * inF + i];
                expected[r * outF + o] = s;
            }
        Assert.Equal([.. inputShape[..^1], outF], y.Shape.ToArray());
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-12, 1e-13, "linear");
        Tensor[] inputs = withBias ? [x, w, b] : [x, w];
        GradCheck.Assert(t => Tensor.Linear(t[0], t[1], withBias ? t[2] : null), inputs, name: "linear");
    }

    public static TheoryData<FusedActivation, int[], int, bool> FusedCases => new()
    {
        { FusedActivation.Relu, [4, 3], 5, true },
        { FusedActivation.Relu, [2, 3, 33], 17, false },
        { FusedActivation.Tanh, [4, 3], 5, true },
        { FusedActivation.Tanh, [5, 67], 3, false },
        { FusedActivation.Sigmoid, [1, 7], 1, true },
        { FusedActivation.Sigmoid, [2, 3, 33], 17, true },
    };

    [Theory]
    [MemberData(nameof(FusedCases))]
    public void LinearOpWithActivation_MatchesReferenceAndFiniteDifferences(FusedActivation act, int[] inputShape, int outF, bool withBias)
    {
        int inF = inputShape[^1];
        // ReLU: inputs scaled so no pre-activation sits within the finite-difference step of the kink.
        var x = TestTensors.Leaf(11, inputShape);
        var w = TestTensors.Leaf(12, outF, inF);
        var b = TestTensors.Leaf(13, outF);
        var y = Tensor.Linear(x, w, withBias ? b : null, act);
        var (xv, wv, bv) = (x.ToDoubleArray(), w.ToDoubleArray(), b.ToDoubleArray());
        int rows = xv.Length / inF;
        var expected = new double[rows * outF];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outF; o++)
            {
                double z = withBias ? bv[o] : 0;
                for (int i = 0; i < inF; i++) z += xv[r * inF + i] * wv[o * inF + i];
                expected[r * outF + o] = act switch
                {
                    FusedActivation.Relu => Math.Max(0, z),
                    FusedActivation.Tanh => Math.Tanh(z),
                    _ => 1 / (1 + Math.Exp(-z)),
                };
            }
        Assert.Equal([.. inputShape[..^1], outF], y.Shape.ToArray());
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-12, 1e-13, $"linear {act}");
        Tensor[] inputs = withBias ? [x, w, b] : [x, w];
        GradCheck.Assert(t => Tensor.Linear(t[0], t[1], withBias ? t[2] : null, act), inputs, name: $"linear {act}");
    }

    [Theory]
    [InlineData(FusedActivation.Relu)]
    [InlineData(FusedActivation.Tanh)]
    [InlineData(FusedActivation.Sigmoid)]
    public void LinearOpWithActivation_Float32_EqualsComposedOpsAndTheirGradients(FusedActivation act)
    {
        // 70×300 → 45: partial tiles and two k blocks; float32 against the separate linear and activation ops.
        var gen = new Generator(21);
        Tensor Leaf(params int[] shape) { var t = Tensor.RandN(gen, shape); t.RequiresGrad = true; return t; }
        var (x, w, b, up) = (Leaf(70, 300), Leaf(45, 300), Leaf(45), Tensor.RandN(gen, 70, 45));
        Tensor Composed(Tensor z) => act switch { FusedActivation.Relu => z.Relu(), FusedActivation.Tanh => z.Tanh(), _ => z.Sigmoid() };
        var fused = Tensor.Linear(x, w, b, act);
        (fused * up).Sum().Backward();
        var (gx, gw, gb) = (x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray());
        x.Grad = w.Grad = b.Grad = null;
        var composed = Composed(Tensor.Linear(x, w, b));
        (composed * up).Sum().Backward();
        // The same float32 GEMM and activation kernel: equal up to the vector/scalar split of the activation.
        TestTensors.AllClose(composed.ToDoubleArray(), fused.ToDoubleArray(), 1e-6, 1e-7, $"{act} forward");
        TestTensors.AllClose(x.Grad!.ToDoubleArray(), gx.Select(v => (double)v).ToArray(), 1e-5, 1e-5, $"{act} dx");
        TestTensors.AllClose(w.Grad!.ToDoubleArray(), gw.Select(v => (double)v).ToArray(), 1e-5, 1e-5, $"{act} dW");
        TestTensors.AllClose(b.Grad!.ToDoubleArray(), gb.Select(v => (double)v).ToArray(), 1e-5, 1e-5, $"{act} db");
    }

    [Fact]
    public void LinearOp_UndefinedActivation_ThrowsNamingIt()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Linear(Tensor.Zeros(2, 3), Tensor.Zeros(4, 3), null, (FusedActivation)42));
        Assert.Contains("activation", e.Message);
    }

    [Fact]
    public void Sequential_LinearThenActivation_FusedUnlessHooked_SameOutputsAndGradients()
    {
        // The same weights twice: one Sequential fuses each Linear with its activation, the other has a
        // forward hook on each activation module (which must then see every activation's output).
        Sequential Build(bool hooked, List<Tensor> seen)
        {
            var gen = new Generator(5);
            var s = new Sequential(new Linear(20, 16, gen), new Tanh(), new Linear(16, 16, gen), new Relu(), new Linear(16, 8, gen), new Sigmoid(), new Linear(8, 3, gen));
            if (hooked)
                foreach (int i in new[] { 1, 3, 5 })
                    s[i].RegisterForwardHook((_, _, output) => seen.Add(output));
            return s;
        }
        var seen = new List<Tensor>();
        var fused = Build(false, seen);
        var hooked = Build(true, seen);
        var x = Tensor.RandN(new Generator(6), 9, 20);
        var yF = fused.Forward(x);
        var yH = hooked.Forward(x);
        Assert.Equal(3, seen.Count);
        Assert.Equal(new[] { 16, 16, 8 }, seen.Select(t => t.Shape[1]).ToArray());
        TestTensors.AllClose(yH.ToDoubleArray(), yF.ToDoubleArray(), 1e-6, 1e-6, "output");
        yF.Square().Sum().Backward();
        yH.Square().Sum().Backward();
        var pF = fused.NamedParameters().ToList();
        var pH = hooked.NamedParameters().ToList();
        for (int i = 0; i < pF.Count; i++)
            TestTensors.AllClose(pH[i].Parameter.Grad!.ToDoubleArray(), pF[i].Parameter.Grad!.ToDoubleArray(), 1e-5, 1e-5, pF[i].Name);
    }

    [Fact]
    public void Sequential_OutputAndBackwardHooksOnTheActivation_KeepItFused_AndSeeWhatAForwardHookSees()
    {
        // Three copies of the same weights: no hook (fused), output and backward hooks on each activation (must stay
        // fused: the same bits as no hook, and the hooks see the fused op's output and gradient), and forward plus
        // backward hooks on each activation (the forward hook reads the activation's input, so each runs as a module).
        (Tensor Y, Dictionary<string, int> Ops, List<Tensor> Outputs, List<Tensor> Grads, double[][] ParamGrads) Run(int hooks)
        {
            var gen = new Generator(5);
            var s = new Sequential(new Linear(20, 16, gen), new Tanh(), new Linear(16, 16, gen), new Relu(), new Linear(16, 8, gen), new Sigmoid(), new Linear(8, 3, gen));
            var outputs = new List<Tensor>();
            var grads = new List<Tensor>();
            foreach (int i in new[] { 1, 3, 5 })
            {
                if (hooks == 1) s[i].RegisterOutputHook((m, output) => { Assert.Same(s[i], m); outputs.Add(output); });
                if (hooks == 2) s[i].RegisterForwardHook((_, _, output) => outputs.Add(output));
                if (hooks > 0) s[i].RegisterBackwardHook((_, g) => grads.Add(g.Clone()));
            }
            var y = s.Forward(Tensor.RandN(new Generator(6), 9, 20));
            var ops = TestGraphs.OpCounts(y);
            y.Square().Sum().Backward();
            return (y, ops, outputs, grads, s.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray());
        }
        var plain = Run(0);
        var watched = Run(1);
        var unfused = Run(2);
        foreach (var op in new[] { "linear_tanh", "linear_relu", "linear_sigmoid" })
        {
            Assert.Equal(1, plain.Ops.GetValueOrDefault(op));
            Assert.Equal(1, watched.Ops.GetValueOrDefault(op));
            Assert.False(unfused.Ops.ContainsKey(op), op);
        }
        Assert.Equal(plain.Y.ToArray(), watched.Y.ToArray());
        for (int i = 0; i < plain.ParamGrads.Length; i++) Assert.Equal(plain.ParamGrads[i], watched.ParamGrads[i]);
        Assert.Equal(3, watched.Outputs.Count);
        Assert.Equal(3, watched.Grads.Count); // backward: sigmoid, relu, tanh
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(unfused.Outputs[i].ShapeArray, watched.Outputs[i].ShapeArray);
            TestTensors.AllClose(unfused.Outputs[i].ToDoubleArray(), watched.Outputs[i].ToDoubleArray(), 1e-6, 1e-6, $"activation {i} output");
            TestTensors.AllClose(unfused.Grads[i].ToDoubleArray(), watched.Grads[i].ToDoubleArray(), 1e-5, 1e-5, $"activation gradient {i}");
        }
    }

    [Fact]
    public void Sequential_OutputHookOnTheLinear_KeepsItApartFromItsActivation()
    {
        // the fused op would hide the linear layer's own output, which its hook is to see
        var gen = new Generator(5);
        var linear = new Linear(6, 4, gen);
        var s = new Sequential(linear, new Relu());
        Tensor? seen = null;
        using var handle = linear.RegisterOutputHook((_, y) => seen = y);
        var x = Tensor.RandN(new Generator(6), 3, 6);
        var y = s.Forward(x);
        var ops = TestGraphs.OpCounts(y);
        Assert.False(ops.ContainsKey("linear_relu"));
        Assert.NotNull(seen);
        Assert.Contains(seen!.ToArray(), v => v < 0); // the pre-activation, not the ReLU's output
        Assert.Equal(seen.Relu().ToArray(), y.ToArray());
    }

    [Fact]
    public void LinearOp_EqualsComposedMatmulPlusBias()
    {
        var x = TestTensors.Leaf(4, 6, 5);
        var w = TestTensors.Leaf(5, 3, 5);
        var b = TestTensors.Leaf(6, 3);
        Tensor.Linear(x, w, b).Square().Sum().Backward();
        var (gx, gw, gb) = (x.Grad!.ToDoubleArray(), w.Grad!.ToDoubleArray(), b.Grad!.ToDoubleArray());
        x.Grad = w.Grad = b.Grad = null;
        (x.Matmul(w.T()) + b).Square().Sum().Backward();
        TestTensors.AllClose(x.Grad!.ToDoubleArray(), gx, 1e-12, 1e-13, "dx");
        TestTensors.AllClose(w.Grad!.ToDoubleArray(), gw, 1e-12, 1e-13, "dw");
        TestTensors.AllClose(b.Grad!.ToDoubleArray(), gb, 1e-12, 1e-13, "db");
    }

    [Fact]
    public void Linear_DefaultInit_IsUniformWithinOneOverSqrtFanIn()
    {
        var fc = new Linear(400, 300, new Generator(1));
        double bound = 1 / Math.Sqrt(400);
        Assert.All(fc.Weight.Data.ToArray(), v => Assert.InRange(v, -bound, bound));
        Assert.All(fc.Bias!.Data.ToArray(), v => Assert.InRange(v, -bound, bound));
        var v = fc.Weight.Data.ToDoubleArray();
        double var = v.Sum(e => e * e) / v.Length;
        Assert.InRange(var, bound * bound / 3 * 0.97, bound * bound / 3 * 1.03);
        Assert.Equal("Linear(in_features=400, out_features=300, bias=True)", fc.ToString());
        Assert.Equal(["weight", "bias"], fc.NamedParameters().Select(p => p.Name));
    }

    [Fact]
    public void Linear_WrongInputSize_ThrowsNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => new Linear(4, 2, new Generator(1)).Forward(Tensor.Zeros(3, 5)));
        Assert.Contains("[3, 5]", e.Message);
        Assert.Contains("linear", e.Message);
    }
}
