using System.Globalization;
using GradFlow.Autograd;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Interop;

/// <summary>
/// Every activation's value and gradient at 0, −0, each of its kinks (ReLU-family 0, hard tanh ±1,
/// ReLU6 0 and 6 — hard tanh with (0, 6) —, hard sigmoid ±3, softplus's threshold switch) and NaN,
/// against the numbers PyTorch computes live (tests/python/activation_kinks.py, Debian's
/// python3-torch): the kernels on every instruction-set path in float32 and float64, the points
/// cycled through 67 positions so each lands in vector lanes and in the scalar tail, and the
/// PReLU module through autograd.
/// </summary>
/// <remarks>
/// float32 within 16 ulps (2e−6 relative) plus 2e−7 of the upstream gradient; float64 within 1e−10
/// relative plus 1e−14 of the upstream gradient: PyTorch's own float64 GELU, ½x(1 + erf(x/√2)), loses
/// digits to cancellation for negative x (at x = −6 about half of them), and its float64
/// hard-sigmoid backward multiplies by 1/6 rounded to float32 (PyTorch 1.13 takes the constant as
/// <c>1.0f / 6.0f</c>), so that one slope is compared with the float32 constant. Either is far
/// tighter than the gap between two subgradient choices.
/// </remarks>
[Trait("Category", "Interop")]
public sealed class PyTorchActivationKinkTests
{
    private const double Grad = 1.5, Slope = 0.25;

    private sealed record TorchValues(double[] Points, Dictionary<string, double[]> Series);

    private static readonly Lazy<TorchValues> Torch = new(RunPyTorch);

    private static TorchValues RunPyTorch()
    {
        var (exit, stdout, stderr) = PyTorchScript.Run("activation_kinks.py");
        Assert.True(exit == 0, $"activation_kinks.py failed: {stderr}");
        double[]? points = null;
        var series = new Dictionary<string, double[]>(StringComparer.Ordinal);
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(' ');
            if (f[0] == "points") points = f[1..].Select(Parse).ToArray();
            else series[$"{f[0]} {f[1]} {f[2]}"] = f[3..].Select(Parse).ToArray();
        }
        Assert.NotNull(points);
        return new TorchValues(points, series);
    }

    private static double Parse(string s) => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>An activation kernel pair, run as forward(x) → y and backward(x, y, dy) → dx on a path.</summary>
    public sealed record Case(string Name,
        Action<float[], float[], InstructionSet> F, Action<float[], float[], float[], float[], InstructionSet> BF,
        Action<double[], double[], InstructionSet> D, Action<double[], double[], double[], double[], InstructionSet> BD);

    private static readonly Case[] Cases =
    [
        new("sigmoid", (x, y, i) => ActivationKernels.Sigmoid<float>(x, y), (x, y, g, d, i) => ActivationKernels.SigmoidBackward<float>(y, g, d, i),
            (x, y, i) => ActivationKernels.Sigmoid<double>(x, y), (x, y, g, d, i) => ActivationKernels.SigmoidBackward<double>(y, g, d, i)),
        new("tanh", (x, y, i) => ActivationKernels.Tanh<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.TanhBackward<float>(y, g, d, i),
            (x, y, i) => ActivationKernels.Tanh<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.TanhBackward<double>(y, g, d, i)),
        new("relu", (x, y, i) => ActivationKernels.Relu<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.ReluBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.Relu<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.ReluBackward<double>(x, g, d, i)),
        new("leaky_relu", (x, y, i) => ActivationKernels.LeakyRelu<float>(x, 0.01f, y, i), (x, y, g, d, i) => ActivationKernels.LeakyReluBackward<float>(x, 0.01f, g, d, i),
            (x, y, i) => ActivationKernels.LeakyRelu<double>(x, 0.01, y, i), (x, y, g, d, i) => ActivationKernels.LeakyReluBackward<double>(x, 0.01, g, d, i)),
        new("elu", (x, y, i) => ActivationKernels.Elu<float>(x, 1f, y, i), (x, y, g, d, i) => ActivationKernels.EluBackward<float>(x, y, 1f, g, d, i),
            (x, y, i) => ActivationKernels.Elu<double>(x, 1.0, y, i), (x, y, g, d, i) => ActivationKernels.EluBackward<double>(x, y, 1.0, g, d, i)),
        new("selu", (x, y, i) => ActivationKernels.Selu<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.SeluBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.Selu<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.SeluBackward<double>(x, g, d, i)),
        new("gelu", (x, y, i) => ActivationKernels.Gelu<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.GeluBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.Gelu<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.GeluBackward<double>(x, g, d, i)),
        new("gelu_tanh", (x, y, i) => ActivationKernels.GeluTanh<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.GeluTanhBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.GeluTanh<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.GeluTanhBackward<double>(x, g, d, i)),
        new("silu", (x, y, i) => ActivationKernels.Silu<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.SiluBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.Silu<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.SiluBackward<double>(x, g, d, i)),
        new("mish", (x, y, i) => ActivationKernels.Mish<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.MishBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.Mish<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.MishBackward<double>(x, g, d, i)),
        new("softplus", (x, y, i) => ActivationKernels.Softplus<float>(x, 1f, 20f, y, i), (x, y, g, d, i) => ActivationKernels.SoftplusBackward<float>(x, 1f, 20f, g, d, i),
            (x, y, i) => ActivationKernels.Softplus<double>(x, 1, 20, y, i), (x, y, g, d, i) => ActivationKernels.SoftplusBackward<double>(x, 1, 20, g, d, i)),
        new("softplus_b2_t5", (x, y, i) => ActivationKernels.Softplus<float>(x, 2f, 5f, y, i), (x, y, g, d, i) => ActivationKernels.SoftplusBackward<float>(x, 2f, 5f, g, d, i),
            (x, y, i) => ActivationKernels.Softplus<double>(x, 2, 5, y, i), (x, y, g, d, i) => ActivationKernels.SoftplusBackward<double>(x, 2, 5, g, d, i)),
        new("hard_sigmoid", (x, y, i) => ActivationKernels.HardSigmoid<float>(x, y, i), (x, y, g, d, i) => ActivationKernels.HardSigmoidBackward<float>(x, g, d, i),
            (x, y, i) => ActivationKernels.HardSigmoid<double>(x, y, i), (x, y, g, d, i) => ActivationKernels.HardSigmoidBackward<double>(x, g, d, i)),
        HardTanhCase("hard_tanh", -1, 1),
        HardTanhCase("hard_tanh_half", -0.5, 0.5),
        HardTanhCase("relu6", 0, 6),
    ];

    private static Case HardTanhCase(string name, double min, double max) => new(name,
        (x, y, i) => ActivationKernels.HardTanh<float>(x, (float)min, (float)max, y, i),
        (x, y, g, d, i) => ActivationKernels.HardTanhBackward<float>(x, (float)min, (float)max, g, d, i),
        (x, y, i) => ActivationKernels.HardTanh<double>(x, min, max, y, i),
        (x, y, g, d, i) => ActivationKernels.HardTanhBackward<double>(x, min, max, g, d, i));

    public static TheoryData<string> CaseNames
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var c in Cases) data.Add(c.Name);
            return data;
        }
    }

    private const int Length = 67;

    /// <summary>Position j of the test arrays holds point j mod (number of points).</summary>
    private static T[] Cycle<T>(IReadOnlyList<T> values) => Enumerable.Range(0, Length).Select(j => values[j % values.Count]).ToArray();

    private static void AssertClose(string what, double x, double got, double want, bool f32, double oneSixthSlack = 0)
    {
        bool ok = double.IsNaN(want) ? double.IsNaN(got)
            : f32 ? Math.Abs(got - want) <= 2e-6 * Math.Abs(want) + 2e-7 * Grad
            : Math.Abs(got - want) <= 1e-10 * Math.Abs(want) + 1e-14 * Grad + oneSixthSlack;
        Assert.True(ok, $"{what} at x = {x:R}: GradFlow {got:R}, PyTorch {want:R}");
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Kernel_AtKinksZeroAndNaN_MatchesPyTorchOnEveryPath(string name)
    {
        var torch = Torch.Value;
        var op = Cases.Single(c => c.Name == name);
        var x64 = Cycle(torch.Points);
        var x32 = x64.Select(v => (float)v).ToArray();
        var g32 = Enumerable.Repeat((float)Grad, Length).ToArray();
        var g64 = Enumerable.Repeat(Grad, Length).ToArray();
        var y32Want = Cycle(torch.Series[$"float32 {name} y"]);
        var dx32Want = Cycle(torch.Series[$"float32 {name} dx"]);
        var y64Want = Cycle(torch.Series[$"float64 {name} y"]);
        var dx64Want = Cycle(torch.Series[$"float64 {name} dx"]);
        // PyTorch 1.13's float64 hard-sigmoid slope is (float)(1/6): allow exactly that rounding.
        double sixth = name == "hard_sigmoid" ? Math.Abs((double)(1f / 6f) - 1.0 / 6) * Grad : 0;
        foreach (var isa in KernelIsa.All)
        {
            string path = KernelIsa.Name(isa);
            var y32 = new float[Length];
            var dx32 = new float[Length];
            op.F(x32, y32, isa);
            op.BF(x32, y32, g32, dx32, isa);
            var y64 = new double[Length];
            var dx64 = new double[Length];
            op.D(x64, y64, isa);
            op.BD(x64, y64, g64, dx64, isa);
            for (int j = 0; j < Length; j++)
            {
                AssertClose($"{name} float32 {path} forward [{j}]", x64[j], y32[j], y32Want[j], f32: true);
                AssertClose($"{name} float32 {path} gradient [{j}]", x64[j], dx32[j], dx32Want[j], f32: true);
                AssertClose($"{name} float64 {path} forward [{j}]", x64[j], y64[j], y64Want[j], f32: false);
                AssertClose($"{name} float64 {path} gradient [{j}]", x64[j], dx64[j], dx64Want[j], f32: false, sixth);
            }
        }
    }

    [Fact]
    public void PReluKernels_AtKinksZeroAndNaN_MatchPyTorchOnEveryPath()
    {
        var torch = Torch.Value;
        var x64 = Cycle(torch.Points);
        var x32 = x64.Select(v => (float)v).ToArray();
        foreach (var (t, f32) in new[] { ("float32", true), ("float64", false) })
        {
            var yw = Cycle(torch.Series[$"{t} prelu y"]);
            var dxw = Cycle(torch.Series[$"{t} prelu dx"]);
            var daw = Cycle(torch.Series[$"{t} prelu da"]);
            foreach (var isa in KernelIsa.All)
            {
                double[] y, dx, da;
                if (f32)
                {
                    float[] a = Enumerable.Repeat((float)Slope, Length).ToArray(), g = Enumerable.Repeat((float)Grad, Length).ToArray();
                    float[] yf = new float[Length], dxf = new float[Length], daf = new float[Length];
                    ActivationKernels.PRelu<float>(x32, a, yf, isa);
                    ActivationKernels.PReluBackward<float>(x32, a, g, dxf, isa);
                    ActivationKernels.PReluWeightBackward<float>(x32, g, daf, isa);
                    (y, dx, da) = (yf.Select(v => (double)v).ToArray(), dxf.Select(v => (double)v).ToArray(), daf.Select(v => (double)v).ToArray());
                }
                else
                {
                    double[] a = Enumerable.Repeat(Slope, Length).ToArray(), g = Enumerable.Repeat(Grad, Length).ToArray();
                    (y, dx, da) = (new double[Length], new double[Length], new double[Length]);
                    ActivationKernels.PRelu<double>(x64, a, y, isa);
                    ActivationKernels.PReluBackward<double>(x64, a, g, dx, isa);
                    ActivationKernels.PReluWeightBackward<double>(x64, g, da, isa);
                }
                string path = KernelIsa.Name(isa);
                for (int j = 0; j < Length; j++)
                {
                    AssertClose($"prelu {t} {path} forward [{j}]", x64[j], y[j], yw[j], f32);
                    AssertClose($"prelu {t} {path} input gradient [{j}]", x64[j], dx[j], dxw[j], f32);
                    AssertClose($"prelu {t} {path} slope gradient [{j}]", x64[j], da[j], daw[j], f32);
                }
            }
        }
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float64)]
    public void PReluModule_AtKinksZeroAndNaN_MatchesPyTorchInputAndSlopeGradients(DType dtype)
    {
        var torch = Torch.Value;
        string t = dtype == DType.Float32 ? "float32" : "float64";
        int n = torch.Points.Length;
        // One slope per point: input [1, n], weight [n], so each slope's gradient is one point's.
        var m = new PRelu(numParameters: n, init: Slope);
        var x = Tensor.FromArray(torch.Points, 1, n).To(dtype);
        x.RequiresGrad = true;
        var y = m.Forward(x);
        (y * Tensor.Full(Grad, dtype, 1, n)).Sum().Backward();
        var yw = torch.Series[$"{t} prelu y"];
        var dxw = torch.Series[$"{t} prelu dx"];
        var daw = torch.Series[$"{t} prelu da"];
        for (int j = 0; j < n; j++)
        {
            AssertClose($"prelu {t} forward", torch.Points[j], y.GetFlat(j), yw[j], dtype == DType.Float32);
            AssertClose($"prelu {t} input gradient", torch.Points[j], x.Grad!.GetFlat(j), dxw[j], dtype == DType.Float32);
            AssertClose($"prelu {t} slope gradient", torch.Points[j], m.Weight.Grad!.GetFlat(j), daw[j], dtype == DType.Float32);
        }
    }
}
