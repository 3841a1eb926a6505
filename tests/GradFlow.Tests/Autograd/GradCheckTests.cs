using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Autograd;

public class GradCheckTests
{
    /// <summary>An op whose forward is 2x but whose backward (wrongly) returns 3g at element 4.</summary>
    private static Tensor WrongDouble(Tensor x)
    {
        var y = Tensor.Map("wrong_double", x, (s, d) => { for (int i = 0; i < s.Length; i++) d[i] = 2 * s[i]; },
            (s, d) => { for (int i = 0; i < s.Length; i++) d[i] = 2 * s[i]; });
        return y.Record("wrong_double", [x], g =>
        {
            var dx = g.Detach().Clone() * 2;
            dx.SetFlatRaw(4, g.GetFlat(4) * 3);
            return [dx];
        });
    }

    [Fact]
    public void Run_WrongBackwardRule_FailsNamingOpInputElementAndValues()
    {
        var x = TestTensors.Leaf(1, 2, 3);
        var result = GradCheck.Run(t => WrongDouble(t[0]), [x]);
        Assert.False(result.Passed);
        Assert.Equal("wrong_double", result.Op);
        Assert.Equal(0, result.Input);
        Assert.Equal([1, 1], result.Element);
        Assert.Equal(1.5 * result.Numeric, result.Analytic, 1e-6);
        Assert.Contains("wrong_double", result.Message);
        Assert.Contains("element [1, 1]", result.Message);
        Assert.Throws<GradCheckException>(() => GradCheck.Assert(t => WrongDouble(t[0]), [x]));
    }

    [Fact]
    public void Run_CorrectRule_PassesWithWorstErrorWithinTolerance()
    {
        var result = GradCheck.Run(t => (t[0] * t[1]).Exp(), [TestTensors.Leaf(1, 4), TestTensors.Leaf(2, 4)]);
        Assert.True(result.Passed, result.Message);
        Assert.True(Math.Abs(result.Analytic - result.Numeric) <= 1e-5 + 1e-3 * Math.Abs(result.Numeric));
    }

    [Fact]
    public void Run_NoInputRequiresGrad_Throws()
    {
        Assert.Throws<ArgumentException>(() => GradCheck.Run(t => t[0] * 2, [Tensor.Ones(DType.Float64, 2)]));
    }

    [Fact]
    public void Run_InputWithoutRequiresGrad_IsNotDifferentiated()
    {
        var a = TestTensors.Leaf(1, 3);
        var b = Tensor.Normal(new Generator(2), 0, 1, DType.Float64, 3);
        Assert.True(GradCheck.Run(t => t[0] * t[1], [a, b]).Passed);
    }
}
