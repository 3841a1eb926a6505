using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

public class ActivationTests
{
    /// <summary>Scalar, [1], [7], [3,5] and [2,1,33] (66 elements: whole vectors plus a tail on every path).</summary>
    public static readonly int[][] Shapes = [[], [1], [7], [3, 5], [2, 1, 33]];

    /// <summary>The activations under test, with parameters off their defaults where they have any.</summary>
    public static TheoryData<string> Activations => new(Ops.Keys);

    private static readonly Dictionary<string, Func<Tensor, Tensor>> Ops = new()
    {
        ["sigmoid"] = t => t.Sigmoid(),
        ["tanh"] = t => t.Tanh(),
        ["relu"] = t => t.Relu(),
        ["leaky_relu"] = t => t.LeakyRelu(0.2),
        ["elu"] = t => t.Elu(0.7),
        ["selu"] = t => t.Selu(),
        ["gelu"] = t => t.Gelu(),
        ["gelu_tanh"] = t => t.Gelu(GeluApproximation.Tanh),
        ["silu"] = t => t.Silu(),
        ["swish"] = t => t.Swish(),
        ["mish"] = t => t.Mish(),
        ["softplus"] = t => t.Softplus(),
        ["softplus_beta2_threshold3"] = t => t.Softplus(beta: 2, threshold: 3),
        ["hard_sigmoid"] = t => t.HardSigmoid(),
        ["hard_tanh"] = t => t.HardTanh(-1, 1.5),
    };

    /// <summary>Kinks (and PyTorch's threshold switch of softplus) that the checked points keep 0.05 away from.</summary>
    private static readonly double[] Kinks = [0, -1, 1.5, -3, 3];

    /// <summary>Deterministic points in about [−3.5, 3.5], nudged away from every kink.</summary>
    internal static Tensor Points(int[] shape, int seed)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        var rng = new Random(seed);
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            double x = rng.NextDouble() * 7 - 3.5;
            while (Kinks.Any(k => Math.Abs(x - k) < 0.05)) x += 0.1;
            v[i] = x;
        }
        var t = shape.Length == 0 ? Tensor.Scalar(v[0], DType.Float64) : Tensor.FromArray(v, shape);
        t.RequiresGrad = true;
        return t;
    }

    [Theory]
    [MemberData(nameof(Activations))]
    public void Activation_Backward_MatchesFiniteDifferencesOverShapes(string name)
    {
        foreach (var shape in Shapes)
        {
            var x = Points(shape, seed: shape.Length * 31 + shape.Sum());
            GradCheck.Assert(a => Ops[name](a[0]), [x], name: $"{name} [{string.Join(", ", shape)}]");
        }
    }

    [Theory]
    [MemberData(nameof(Activations))]
    public void Activation_Backward_DensePointsOnEveryBranch_MatchFiniteDifferences(string name)
    {
        // −3.95, −3.85, …, 3.95: 0.05 from every kink: every branch of every activation
        var x = Tensor.FromArray(Enumerable.Range(0, 80).Select(i => -3.95 + i * 0.1).ToArray(), 80);
        x.RequiresGrad = true;
        GradCheck.Assert(a => Ops[name](a[0]), [x], name: name);
    }

    /// <summary>Reference values at x = ±1 (mathematical values to 17 digits; PyTorch float64 prints the same).</summary>
    public static TheoryData<string, double, double> KnownValues => new()
    {
        { "gelu", 1, 0.8413447460685429 },
        { "gelu", -1, -0.15865525393145705 },
        { "gelu_tanh", 1, 0.8411919906082767 },
        { "selu", -1, -1.1113307378125628 },
        { "selu", 1, 1.0507009873554805 },
        { "mish", 1, 0.8650983882673103 },
        { "softplus", 1, 1.3132616875182228 },
        { "softplus_beta2_threshold3", 1, 1.0634640055214862 },
        { "softplus_beta2_threshold3", 2, 2 },
        { "silu", 1, 0.7310585786300049 },
        { "swish", 1, 0.7310585786300049 },
        { "sigmoid", 1, 0.7310585786300049 },
        { "tanh", 1, 0.7615941559557649 },
        { "elu", -1, -0.7 * 0.6321205588285577 },
        { "leaky_relu", -2, -0.4 },
        { "relu", -2, 0 },
        { "hard_sigmoid", 1, 2.0 / 3 },
        { "hard_tanh", 2, 1.5 },
        { "hard_tanh", -2, -1 },
    };

    [Theory]
    [MemberData(nameof(KnownValues))]
    public void Activation_Forward_MatchesKnownValues(string name, double x, double expected)
    {
        double d = Ops[name](Tensor.Scalar(x, DType.Float64)).Item();
        Assert.True(Math.Abs(d - expected) <= 4e-16 * Math.Max(1, Math.Abs(expected)), $"{name}({x}) float64 = {d:R}, expected {expected:R}");
        double f = Ops[name](Tensor.FromArray(Enumerable.Repeat((float)x, 19).ToArray(), 19)).ToArray()[18];
        Assert.True(Math.Abs(f - expected) <= 2e-7 * Math.Max(1, Math.Abs(expected)), $"{name}({x}) float32 = {f:R}, expected {expected:R}");
    }

    [Fact]
    public void Activation_Forward_KeepsShapeAndType()
    {
        var x = Tensor.Zeros(2, 1, 33);
        foreach (var (name, op) in Ops)
        {
            var y = op(x);
            Assert.Equal([2, 1, 33], y.Shape.ToArray());
            Assert.Equal(DType.Float32, y.DType);
        }
    }

    [Fact]
    public void Sigmoid_SaturatedInputs_GiveZeroOneAndZeroGradientWithoutNaN()
    {
        var x = Tensor.FromArray([-1000f, -40f, 40f, 1000f], 4);
        x.RequiresGrad = true;
        var y = x.Sigmoid();
        y.Sum().Backward();
        Assert.Equal(0f, y.ToArray()[0]);
        Assert.Equal(1f, y.ToArray()[3]);
        Assert.All(x.Grad!.ToArray(), g => Assert.True(g >= 0 && g < 1e-17, $"gradient {g}"));
    }

    [Fact]
    public void PRelu_Backward_InputAndBroadcastSlopes_MatchFiniteDifferencesOverShapes()
    {
        // (input shape, slope shape): one shared slope, one per channel of [N, C] and of [N, C, L], one per element.
        (int[] X, int[] A)[] cases = [([7], [1]), ([3, 5], [5]), ([2, 3, 11], [3, 1]), ([2, 1, 33], [2, 1, 33])];
        foreach (var (xs, As) in cases)
        {
            var x = Points(xs, seed: xs.Sum());
            var a = Points(As, seed: As.Sum() + 1);
            GradCheck.Assert(t => t[0].PRelu(t[1]), [x, a], name: $"prelu x [{string.Join(", ", xs)}] a [{string.Join(", ", As)}]");
        }
    }

    [Fact]
    public void PRelu_SlopesNotBroadcastingToInput_ThrowsNamingShapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3).PRelu(Tensor.Zeros(2, 1, 3)));
        Assert.Contains("prelu", ex.Message);
        Assert.Contains("[2, 1, 3]", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
    }

    [Fact]
    public void HardTanh_MinNotBelowMax_ThrowsNamingTheOp()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).HardTanh(1, 1));
        Assert.Contains("hard_tanh", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).HardTanh(2, -2));
        Assert.Contains("hard_tanh", ex.Message);
    }

    [Fact]
    public void Softplus_NonPositiveBeta_ThrowsNamingTheOp()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).Softplus(beta: 0));
        Assert.Contains("softplus", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).Softplus(beta: -1));
        Assert.Contains("softplus", ex.Message);
    }
}
