using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class BroadcastKernelTests
{
    public static TheoryData<int> Lengths => KernelLengths.All;

    private static double Reference(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Subtract => a - b,
        BinaryOp.Multiply => a * b,
        BinaryOp.Divide => a / b,
        BinaryOp.Pow => Math.Pow(a, b),
        BinaryOp.Maximum => Math.Max(a, b),
        BinaryOp.Minimum => Math.Min(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Binary_EveryOpAndBroadcastPattern_MatchesReference(int n)
    {
        // Shapes [2, n] op [2, n], [2, n] op [1, n], [2, 1] op [2, n], [1, 1] op [2, n].
        var patterns = new (int[] Sa, int[] Sb)[]
        {
            ([n, 1], [n, 1]),
            ([n, 1], [0, 1]),
            ([1, 0], [n, 1]),
            ([0, 0], [n, 1]),
        };
        int[] shape = [2, n];
        foreach (var op in Enum.GetValues<BinaryOp>())
            foreach (var (sa, sb) in patterns)
            {
                var a = KernelLengths.Values(2 * n, seed: n).Select(v => op == BinaryOp.Pow ? Math.Abs(v) + 0.5f : v).ToArray();
                var b = KernelLengths.Values(2 * n, seed: n + 100).Select(v => op == BinaryOp.Divide ? v + (v >= 0 ? 0.5f : -0.5f) : v).ToArray();
                var y = new float[2 * n];
                BroadcastKernels.Binary<float>(op, a, sa, b, sb, y, shape);
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double expected = Reference(op, a[i * sa[0] + j * sa[1]], b[i * sb[0] + j * sb[1]]);
                        double got = y[i * n + j];
                        Assert.True(Math.Abs(got - expected) <= 2e-6 * Math.Abs(expected) + 1e-6,
                            $"{op} n={n} strides a=[{sa[0]},{sa[1]}] b=[{sb[0]},{sb[1]}] at ({i},{j}): {got} vs {expected}");
                    }
            }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void GatherAndAddStrided_Transpose_AreAdjoint(int n)
    {
        // Gather with transposed strides reads x[j, i]; AddStrided writes back to the same places.
        var x = KernelLengths.Values(3 * n, seed: n).Select(v => (double)v).ToArray();
        var y = new double[3 * n];
        BroadcastKernels.Gather<double>(x, [1, n], y, [n, 3]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 3; j++)
                Assert.Equal(x[j * n + i], y[i * 3 + j]);
        var back = new double[3 * n];
        BroadcastKernels.AddStrided<double>(y, back, [1, n], [n, 3]);
        Assert.Equal(x, back);
    }

    [Fact]
    public void Binary_StridesReachPastOperand_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            BroadcastKernels.Binary<float>(BinaryOp.Add, new float[3], [1], new float[4], [1], new float[4], [4]));
        Assert.Contains("operand a", e.Message);
    }
}
