using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

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

    [Theory]
    [InlineData(new[] { 64, 16, 28, 28 }, new[] { 16, 1, 0, 0 })]     // a global average pool's gradient expanded over H, W
    [InlineData(new[] { 5, 7, 3, 11 }, new[] { 0, 33, 11, 1 })]       // broadcast over the first axis, the rest contiguous
    [InlineData(new[] { 9, 4, 130, 13 }, new[] { 1, 9, 36, 4680 })]  // a full permutation (nothing coalesces)
    [InlineData(new[] { 3, 1, 257, 1, 97 }, new[] { 0, 5, 97, 3, 1 })] // axes of extent 1 with any stride
    [InlineData(new[] { 1, 1 }, new[] { 7, 3 })]                      // one element
    [InlineData(new[] { 400, 6, 5 }, new[] { 60, 5, 1 })]             // rows of a wider matrix: the last two axes merge, the first not
    [InlineData(new[] { 300, 250 }, new[] { 1, 1 })]                  // overlapping windows (equal strides that must not merge)
    public void Gather_CoalescedAndCut_CopiesEveryElementFromItsStridedPlace(int[] shape, int[] strides)
    {
        // Gather merges axes that x steps over as one and cuts large copies over the kernel threads: every element of y
        // must still be x at Σ index·stride, the same on one and two threads.
        long total = 1, extent = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            total *= shape[d];
            extent += (long)(shape[d] - 1) * strides[d];
        }
        var x = KernelLengths.Values((int)extent + 1, seed: (int)total).Select(v => (double)v).ToArray();
        var expected = new double[total];
        var idx = new int[shape.Length];
        for (long k = 0; k < total; k++)
        {
            long rest = k, off = 0;
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                idx[d] = (int)(rest % shape[d]);
                rest /= shape[d];
                off += (long)idx[d] * strides[d];
            }
            expected[k] = x[off];
        }
        var (one, two) = KernelThreadCounts.OneAndTwo(() =>
        {
            var y = new double[total];
            BroadcastKernels.Gather<double>(x, strides, y, shape);
            return y;
        });
        Assert.Equal(expected, one);
        Assert.Equal(expected, two);
    }

    [Fact]
    public void Binary_StridesReachPastOperand_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            BroadcastKernels.Binary<float>(BinaryOp.Add, new float[3], [1], new float[4], [1], new float[4], [4]));
        Assert.Contains("operand a", e.Message);
    }
}
