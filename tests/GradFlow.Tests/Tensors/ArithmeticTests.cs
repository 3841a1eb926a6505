using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Tensors;

public class ArithmeticTests
{
    /// <summary>Shape pairs covering equal shapes, broadcasting both ways, size-1 dims, scalars and SIMD tails.</summary>
    private static readonly (int[] A, int[] B)[] ShapePairs =
    [
        ([7], [7]),
        ([3, 5], [3, 5]),
        ([3, 5], [5]),
        ([4, 1], [1, 33]),
        ([2, 1, 33], [4, 1]),
        ([], [3, 2]),
        ([1], [67]),
        ([2, 3, 1], [1]),
    ];

    private static readonly Dictionary<string, (Func<Tensor, Tensor, Tensor> Op, Func<double, double, double> Reference)> Binary = new()
    {
        ["add"] = (Tensor.Add, (a, b) => a + b),
        ["sub"] = (Tensor.Sub, (a, b) => a - b),
        ["mul"] = (Tensor.Mul, (a, b) => a * b),
        ["div"] = (Tensor.Div, (a, b) => a / b),
        ["maximum"] = (Tensor.Maximum, Math.Max),
        ["minimum"] = (Tensor.Minimum, Math.Min),
        ["pow"] = (Tensor.Pow, Math.Pow),
    };

    public static TheoryData<string, int[], int[]> OpsAndShapes
    {
        get
        {
            var data = new TheoryData<string, int[], int[]>();
            foreach (var op in Binary.Keys)
                foreach (var (a, b) in ShapePairs) data.Add(op, a, b);
            return data;
        }
    }

    private static (Tensor A, Tensor B) Operands(string op, int[] sa, int[] sb)
    {
        // pow: positive bases; div: divisors away from zero.
        var a = op == "pow" ? TestTensors.AwayFromZero(1, 0.5, 2, positive: true, sa) : TestTensors.Leaf(1, sa);
        var b = op == "div" ? TestTensors.AwayFromZero(2, 0.5, 2, positive: false, sb) : TestTensors.Leaf(2, sb);
        return (a, b);
    }

    [Theory]
    [MemberData(nameof(OpsAndShapes))]
    public void BinaryOp_Broadcasting_MatchesElementwiseReference(string op, int[] sa, int[] sb)
    {
        var (a, b) = Operands(op, sa, sb);
        var (f, reference) = Binary[op];
        var expected = TestTensors.BroadcastReference(a, b, reference, out var shape);
        var y = f(a, b);
        Assert.Equal(shape, y.Shape.ToArray());
        TestTensors.AllClose(expected, y.ToDoubleArray(), 1e-14, 1e-15, op);

        // float32 path: same values within float32 rounding.
        var y32 = f(a.Detach().To(DType.Float32), b.Detach().To(DType.Float32));
        TestTensors.AllClose(expected, y32.ToDoubleArray(), 2e-6, 1e-6, op + " float32");
    }

    [Theory]
    [MemberData(nameof(OpsAndShapes))]
    public void BinaryOp_Broadcasting_GradientMatchesFiniteDifferences(string op, int[] sa, int[] sb)
    {
        var (a, b) = Operands(op, sa, sb);
        GradCheck.Assert(t => Binary[op].Op(t[0], t[1]), [a, b], name: op);
    }

    [Fact]
    public void Maximum_Tie_SplitsGradientEqually()
    {
        var a = Tensor.FromArray([1.0, 2.0, 5.0]);
        var b = Tensor.FromArray([1.0, 3.0, 4.0]);
        a.RequiresGrad = b.RequiresGrad = true;
        Tensor.Maximum(a, b).Sum().Backward();
        Assert.Equal([0.5, 0.0, 1.0], a.Grad!.ToDoubleArray());
        Assert.Equal([0.5, 1.0, 0.0], b.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Minimum_Tie_SplitsGradientEqually()
    {
        var a = Tensor.FromArray([1.0, 2.0, 5.0]);
        var b = Tensor.FromArray([1.0, 3.0, 4.0]);
        a.RequiresGrad = b.RequiresGrad = true;
        Tensor.Minimum(a, b).Sum().Backward();
        Assert.Equal([0.5, 1.0, 0.0], a.Grad!.ToDoubleArray());
        Assert.Equal([0.5, 0.0, 1.0], b.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Maximum_NaNOperand_PropagatesNaN()
    {
        var y = Tensor.Maximum(Tensor.FromArray([float.NaN, 1f]), Tensor.FromArray([0f, float.NaN]));
        Assert.All(y.ToArray(), v => Assert.True(float.IsNaN(v)));
    }

    public static TheoryData<string, int[]> UnaryOpsAndShapes
    {
        get
        {
            var data = new TheoryData<string, int[]>();
            foreach (var op in new[] { "neg", "exp", "log", "sqrt", "square", "pow3", "pow-0.5", "pow2.5" })
                foreach (var s in new[] { Array.Empty<int>(), [1], [7], [3, 5], [2, 1, 33], [67] })
                    data.Add(op, s);
            return data;
        }
    }

    private static (Func<Tensor, Tensor> Op, Func<double, double> Reference, bool Positive) Unary(string op) => op switch
    {
        "neg" => (t => t.Neg(), v => -v, false),
        "exp" => (t => t.Exp(), Math.Exp, false),
        "log" => (t => t.Log(), Math.Log, true),
        "sqrt" => (t => t.Sqrt(), Math.Sqrt, true),
        "square" => (t => t.Square(), v => v * v, false),
        "pow3" => (t => t.Pow(3), v => v * v * v, false),
        "pow-0.5" => (t => t.Pow(-0.5), v => 1 / Math.Sqrt(v), true),
        "pow2.5" => (t => t.Pow(2.5), v => v * v * Math.Sqrt(v), true),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    [Theory]
    [MemberData(nameof(UnaryOpsAndShapes))]
    public void UnaryOp_MatchesReferenceAndFiniteDifferences(string op, int[] shape)
    {
        var (f, reference, positive) = Unary(op);
        var x = positive ? TestTensors.AwayFromZero(3, 0.3, 3, positive: true, shape) : TestTensors.Leaf(3, shape);
        var expected = x.ToDoubleArray().Select(reference).ToArray();
        TestTensors.AllClose(expected, f(x).ToDoubleArray(), 1e-14, 1e-15, op);
        TestTensors.AllClose(expected, f(x.Detach().To(DType.Float32)).ToDoubleArray(), 3e-6, 1e-6, op + " float32");
        GradCheck.Assert(t => f(t[0]), [x], name: op);
    }

    [Fact]
    public void ScalarForms_MatchTensorForms()
    {
        var x = TestTensors.Leaf(4, 3, 4);
        var v = x.ToDoubleArray();
        TestTensors.AllClose(v.Select(e => e + 2.5).ToArray(), (x + 2.5).ToDoubleArray(), 1e-15, 0, "x + s");
        TestTensors.AllClose(v.Select(e => 2.5 - e).ToArray(), (2.5 - x).ToDoubleArray(), 1e-15, 0, "s - x");
        TestTensors.AllClose(v.Select(e => e * -3).ToArray(), (x * -3).ToDoubleArray(), 1e-15, 0, "x * s");
        TestTensors.AllClose(v.Select(e => 2 / e).ToArray(), (2 / x).ToDoubleArray(), 1e-15, 0, "s / x");
        TestTensors.AllClose(v.Select(e => -e).ToArray(), (-x).ToDoubleArray(), 0, 0, "-x");
        GradCheck.Assert(t => 3 * t[0] - t[0] / 2 + 1, [x], name: "scalar forms");
    }

    [Fact]
    public void Add_NonBroadcastableShapes_ThrowsNamingOpAndShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3, 4) + Tensor.Zeros(5));
        Assert.Contains("add", e.Message);
        Assert.Contains("[3, 4]", e.Message);
        Assert.Contains("[5]", e.Message);
    }

    [Fact]
    public void Mul_DifferentElementTypes_ThrowsNamingOp()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3) * Tensor.Zeros(DType.Float64, 3));
        Assert.Contains("mul", e.Message);
    }

    [Fact]
    public void Log_NegativeInput_ThrowsInsteadOfNaN()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.FromArray([1f, -2f]).Log());
        Assert.Contains("log", e.Message);
        Assert.Contains("[2]", e.Message);
    }

    [Fact]
    public void Sqrt_NegativeInput_ThrowsInsteadOfNaN()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.FromArray([-1f]).Sqrt());
        Assert.Contains("sqrt", e.Message);
    }

    [Fact]
    public void Pow_NegativeBaseFractionalExponent_Throws()
    {
        Assert.Contains("pow", Assert.Throws<ArgumentException>(() => Tensor.FromArray([-2f]).Pow(0.5)).Message);
        Assert.Contains("pow", Assert.Throws<ArgumentException>(() => Tensor.Pow(Tensor.FromArray([-2f, 1f]), Tensor.FromArray([0.5f]))).Message);
        // integer exponents of negative bases are fine
        Assert.Equal([-8f], Tensor.FromArray([-2f]).Pow(3).ToArray());
    }

    [Fact]
    public void Log_AtZero_IsMinusInfinityNotNaN()
    {
        Assert.Equal(float.NegativeInfinity, Tensor.FromArray([0f]).Log().ToArray()[0]);
    }

    [Fact]
    public void InPlaceOps_OnTensorRequiringGrad_ThrowUnderGradMode()
    {
        var w = TestTensors.Leaf(5, 3);
        Assert.Throws<InvalidOperationException>(() => w.AddInPlace(w.Detach()));
        using (GradMode.NoGrad())
        {
            var before = w.ToDoubleArray();
            w.AddInPlace(Tensor.Ones(DType.Float64, 3), alpha: -0.5);
            Assert.Equal(before.Select(v => v - 0.5).ToArray(), w.ToDoubleArray());
            w.MulInPlace(2);
            Assert.Equal(before.Select(v => (v - 0.5) * 2).ToArray(), w.ToDoubleArray());
        }
    }

    [Fact]
    public void AddInPlace_ShapeMismatch_ThrowsNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).AddInPlace(Tensor.Zeros(4)));
        Assert.Contains("[3]", e.Message);
        Assert.Contains("[4]", e.Message);
    }
}

public class PowEdgeCaseTests
{
    [Fact]
    public void Pow_ZeroExponentAtZeroBase_GradientIsZeroNotNaN()
    {
        var a = Tensor.FromArray([0.0, 2.0]);
        a.RequiresGrad = true;
        Tensor.Pow(a, Tensor.FromArray([0.0, 0.0])).Sum().Backward();
        Assert.Equal([0.0, 0.0], a.Grad!.ToDoubleArray());
        var x = Tensor.FromArray([0.0, 2.0]);
        x.RequiresGrad = true;
        x.Pow(0).Sum().Backward();
        Assert.Equal([0.0, 0.0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Pow_EmptyTensorFractionalExponent_IsEmpty()
    {
        Assert.Equal(0, Tensor.Zeros(DType.Float64, 0).Pow(0.5).Count);
    }
}
