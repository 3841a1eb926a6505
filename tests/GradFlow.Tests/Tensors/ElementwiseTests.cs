using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

public class ElementwiseTests
{
    public static readonly int[][] Shapes = [[], [1], [7], [3, 5], [2, 1, 33]];

    [Fact]
    public void Abs_Backward_MatchesFiniteDifferencesOverShapes()
    {
        foreach (var shape in Shapes)
            GradCheck.Assert(a => a[0].Abs(), [ActivationTests.Points(shape, seed: 1 + shape.Length)], name: "abs");
    }

    [Fact]
    public void Sign_Backward_IsZeroAndMatchesFiniteDifferencesOverShapes()
    {
        foreach (var shape in Shapes)
            GradCheck.Assert(a => a[0].Sign(), [ActivationTests.Points(shape, seed: 2 + shape.Length)], name: "sign");
    }

    [Fact]
    public void Clamp_Backward_MatchesFiniteDifferencesOverShapes()
    {
        // bounds −1 and 1.5 are among the kinks the points avoid
        foreach (var shape in Shapes)
        {
            GradCheck.Assert(a => a[0].Clamp(-1, 1.5), [ActivationTests.Points(shape, seed: 3 + shape.Length)], name: "clamp");
            GradCheck.Assert(a => a[0].Clamp(min: -1), [ActivationTests.Points(shape, seed: 4 + shape.Length)], name: "clamp min only");
        }
    }

    [Fact]
    public void Where_Backward_MatchesFiniteDifferencesWithBroadcasting()
    {
        (int[] c, int[] a, int[] b)[] cases = [([], [], []), ([7], [7], [1]), ([3, 5], [3, 1], [5]), ([2, 1, 33], [33], [2, 1, 1])];
        foreach (var (cs, sa, sb) in cases)
        {
            var cond = ActivationTests.Points(cs, seed: 5).Relu().Detach(); // zeros and non-zeros
            var a = ActivationTests.Points(sa, seed: 6);
            var b = ActivationTests.Points(sb, seed: 7);
            GradCheck.Assert(x => Tensor.Where(x[0], x[1], x[2]), [cond, a, b], name: "where");
        }
    }

    [Fact]
    public void Forward_KnownValues_Match()
    {
        var x = Tensor.FromArray([-2f, -0.5f, 0f, 0.5f, 3f], 5);
        Assert.Equal([2f, 0.5f, 0f, 0.5f, 3f], x.Abs().ToArray());
        Assert.Equal([-1f, -1f, 0f, 1f, 1f], x.Sign().ToArray());
        Assert.Equal([-1f, -0.5f, 0f, 0.5f, 1.5f], x.Clamp(-1, 1.5).ToArray());
        var cond = Tensor.FromArray([1f, 0f, 2f, 0f, -1f], 5);
        Assert.Equal([-2f, 10f, 0f, 10f, 3f], Tensor.Where(cond, x, Tensor.Full(10, 1)).ToArray());
    }

    [Fact]
    public void Clamp_Backward_AtBoundaries_PassesGradient()
    {
        var x = Tensor.FromArray([-1.0, 0.0, 1.0, 2.0], 4);
        x.RequiresGrad = true;
        x.Clamp(-1, 1).Sum().Backward();
        Assert.Equal([1.0, 1.0, 1.0, 0.0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Abs_Backward_AtZero_IsZero()
    {
        var x = Tensor.FromArray([-3.0, 0.0, 2.0], 3);
        x.RequiresGrad = true;
        x.Abs().Sum().Backward();
        Assert.Equal([-1.0, 0.0, 1.0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Clamp_MinAboveMax_ThrowsNamingTheOp()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Zeros(3).Clamp(2, 1));
        Assert.Contains("clamp", ex.Message);
    }

    [Fact]
    public void Where_NonBroadcastableShapes_ThrowsNamingTheOp()
    {
        var ex = Assert.Throws<ArgumentException>(() => Tensor.Where(Tensor.Zeros(2, 3), Tensor.Zeros(4), Tensor.Zeros(3)));
        Assert.Contains("where", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Tensor.Where(Tensor.Zeros(3), Tensor.Zeros(3), Tensor.Zeros(2, 4)));
        Assert.Contains("where", ex.Message);
    }
}
