using GradFlow.Autograd;
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
