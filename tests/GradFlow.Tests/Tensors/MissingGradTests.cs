using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Tensors;

/// <summary>
/// Finite-difference checks for the op paths that docs/ops.md found without one: the dtype-changing
/// path of <see cref="Tensor.To"/> (ShapeOpTests checks only the same-type path, which is Clone) and
/// the named scalar-operand methods (<c>x.Add(2.0)</c>, …; ArithmeticTests checks the operators).
/// </summary>
public class MissingGradTests
{
    public static readonly int[][] Shapes = [[], [1], [7], [3, 5], [2, 1, 33]];

    [Fact]
    public void To_Float32AndBack_Backward_MatchesFiniteDifferences()
    {
        // Multiples of 1/16 in [−4, 4] and steps h = 2⁻⁷ are exact in float32, so the float32 round
        // trip adds no rounding and the float64 central difference stays exact.
        var options = new GradCheckOptions(Epsilon: 1.0 / 128);
        foreach (var shape in Shapes)
        {
            int count = shape.Aggregate(1, (a, b) => a * b);
            var v = Enumerable.Range(0, count).Select(i => ((i * 37 + 11) % 129 - 64) / 16.0).ToArray();
            var x = shape.Length == 0 ? Tensor.Scalar(v[0], DType.Float64) : Tensor.FromArray(v, shape);
            x.RequiresGrad = true;
            GradCheck.Assert(t => (t[0].To(DType.Float32) * 3).To(DType.Float64), [x], options, name: "to float32 and back");
        }
    }

    [Fact]
    public void ScalarOperandMethods_Backward_MatchFiniteDifferences()
    {
        foreach (var shape in Shapes)
        {
            GradCheck.Assert(t => t[0].Add(2.5), [TestTensors.Leaf(1, shape)], name: "add scalar");
            GradCheck.Assert(t => t[0].Sub(-1.5), [TestTensors.Leaf(2, shape)], name: "sub scalar");
            GradCheck.Assert(t => t[0].Mul(-3), [TestTensors.Leaf(3, shape)], name: "mul scalar");
            GradCheck.Assert(t => t[0].Div(0.75), [TestTensors.Leaf(4, shape)], name: "div scalar");
            GradCheck.Assert(t => -t[0], [TestTensors.Leaf(5, shape)], name: "unary minus");
        }
    }
}
