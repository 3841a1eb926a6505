using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Tensors;

public class SoftmaxTests
{
    public static TheoryData<int[], int> ShapesAndAxes => new()
    {
        { [7], 0 },
        { [3, 5], -1 },
        { [3, 5], 0 },
        { [2, 1, 33], 2 },
        { [2, 4, 3], 1 },
        { [1, 67], -1 },
    };

    /// <summary>Softmax computed in the test, one lane of <paramref name="axis"/> at a time, straight from the definition.</summary>
    private static double[] Reference(Tensor x, int axis, bool log)
    {
        var shape = x.Shape.ToArray();
        int a = axis < 0 ? axis + shape.Length : axis;
        int outer = 1, inner = 1, n = shape[a];
        for (int i = 0; i < a; i++) outer *= shape[i];
        for (int i = a + 1; i < shape.Length; i++) inner *= shape[i];
        var v = x.ToDoubleArray();
        var r = new double[v.Length];
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < n; j++) max = Math.Max(max, v[(o * n + j) * inner + i]);
                double sum = 0;
                for (int j = 0; j < n; j++) sum += Math.Exp(v[(o * n + j) * inner + i] - max);
                for (int j = 0; j < n; j++)
                {
                    double z = v[(o * n + j) * inner + i] - max;
                    r[(o * n + j) * inner + i] = log ? z - Math.Log(sum) : Math.Exp(z) / sum;
                }
            }
        return r;
    }

    [Theory]
    [MemberData(nameof(ShapesAndAxes))]
    public void Softmax_Forward_MatchesDefinition(int[] shape, int axis)
    {
        var x = TestTensors.Leaf(7, shape);
        TestTensors.AllClose(Reference(x, axis, log: false), x.Softmax(axis).ToDoubleArray(), 1e-13, 1e-16, "softmax");
        TestTensors.AllClose(Reference(x, axis, log: false), x.Detach().To(DType.Float32).Softmax(axis).ToDoubleArray(), 2e-6, 1e-7, "softmax float32");
    }

    [Theory]
    [MemberData(nameof(ShapesAndAxes))]
    public void LogSoftmax_Forward_MatchesDefinition(int[] shape, int axis)
    {
        var x = TestTensors.Leaf(8, shape);
        TestTensors.AllClose(Reference(x, axis, log: true), x.LogSoftmax(axis).ToDoubleArray(), 1e-13, 1e-14, "log_softmax");
        TestTensors.AllClose(Reference(x, axis, log: true), x.Detach().To(DType.Float32).LogSoftmax(axis).ToDoubleArray(), 2e-6, 2e-6, "log_softmax float32");
    }

    [Theory]
    [MemberData(nameof(ShapesAndAxes))]
    public void Softmax_Gradient_MatchesFiniteDifferences(int[] shape, int axis)
    {
        GradCheck.Assert(t => t[0].Softmax(axis), [TestTensors.Leaf(9, shape)], name: "softmax");
    }

    [Theory]
    [MemberData(nameof(ShapesAndAxes))]
    public void LogSoftmax_Gradient_MatchesFiniteDifferences(int[] shape, int axis)
    {
        GradCheck.Assert(t => t[0].LogSoftmax(axis), [TestTensors.Leaf(10, shape)], name: "log_softmax");
    }

    [Fact]
    public void Softmax_HugeLogits_StaysFinite()
    {
        var x = Tensor.FromArray([1000f, 999f, -1000f, 88.8f]);
        var y = x.Softmax().ToArray();
        Assert.All(y, v => Assert.True(float.IsFinite(v)));
        double e1 = Math.Exp(-1), e2 = Math.Exp(88.8 - 1000);
        double s = 1 + e1 + e2;
        Assert.Equal(1 / s, y[0], 1e-6);
        Assert.Equal(e1 / s, y[1], 1e-6);
        Assert.Equal(0f, y[2]);
        var ly = x.LogSoftmax().ToArray();
        Assert.Equal(-2000 - Math.Log(s), ly[2], 1e-3);
        Assert.All(ly, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Softmax_BadAxis_ThrowsNamingOp()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.Zeros(2, 3).Softmax(2));
        Assert.Contains("softmax", e.Message);
    }
}
