using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Kernels;

public class ReduceKernelTests
{
    public static TheoryData<int> Lengths => KernelLengths.All;

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Sum_ContiguousRows_MatchesReference(int n)
    {
        var x = KernelLengths.Values(3 * n, seed: n);
        var y = new float[3];
        ReduceKernels.Sum<float>(x, 3, n, 1, y);
        for (int o = 0; o < 3; o++)
        {
            double reference = 0, magnitude = 0;
            for (int j = 0; j < n; j++)
            {
                reference += x[o * n + j];
                magnitude += Math.Abs(x[o * n + j]);
            }
            Assert.True(Math.Abs(y[o] - reference) <= 1e-6 * magnitude + 1e-7, $"n={n} row {o}: {y[o]} vs {reference}");
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Sum_MiddleAxis_MatchesReference(int inner)
    {
        const int outer = 2, n = 5;
        var x = KernelLengths.Values(outer * n * inner, seed: inner).Select(v => (double)v).ToArray();
        var y = new double[outer * inner];
        ReduceKernels.Sum<double>(x, outer, n, inner, y);
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                double reference = 0;
                for (int j = 0; j < n; j++) reference += x[(o * n + j) * inner + i];
                Assert.Equal(reference, y[o * inner + i], 12);
            }
    }

    [Theory]
    [InlineData(300, 256)]
    [InlineData(257, 777)]  // a last column block of 9, a vector tail
    [InlineData(4096, 130)] // a weight gradient's bias: many rows, two blocks
    [InlineData(2000, 40)]  // too narrow to cut: one block, on the calling thread
    public void Sum_ColumnsOfATallMatrix_AreTheRowByRowSums_BitwiseOnOneAndTwoThreads(int n, int inner)
    {
        // The parallel column-block path (a bias gradient over a batch): each column must be the float sum of its rows
        // in row order, whatever the vector width or the thread count.
        var x = KernelLengths.Values(n * inner, seed: n + inner);
        var expected = x[..inner];
        for (int j = 1; j < n; j++)
            for (int i = 0; i < inner; i++) expected[i] += x[j * inner + i];
        var xd = x.Select(v => (double)v * 1.5).ToArray();
        var expectedD = xd[..inner];
        for (int j = 1; j < n; j++)
            for (int i = 0; i < inner; i++) expectedD[i] += xd[j * inner + i];
        var (one, two) = KernelThreadCounts.OneAndTwo(() =>
        {
            var y = new float[inner];
            var yd = new double[inner];
            ReduceKernels.Sum<float>(x, 1, n, inner, y);
            ReduceKernels.Sum<double>(xd, 1, n, inner, yd);
            return (y, yd);
        });
        foreach (var (y, yd) in new[] { one, two })
            for (int i = 0; i < inner; i++)
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(y[i]));
                Assert.Equal(BitConverter.DoubleToInt64Bits(expectedD[i]), BitConverter.DoubleToInt64Bits(yd[i]));
            }
    }

    [Theory]
    [InlineData(1024, 784, 1)] // a global average pool's sums of [64, 16, 28, 28]: rows cut over the threads
    [InlineData(3, 40_000, 1)] // fewer rows than tasks
    [InlineData(37, 19, 97)]   // middle axis, blocks cut over the threads
    [InlineData(2, 300, 200)]
    public void Sum_ManyOutputs_AreTheSerialSums_BitwiseOnOneAndTwoThreads(int outer, int n, int inner)
    {
        // Above the serial floor the outputs are cut over the kernel threads: each must still be the sum of its own
        // elements in the serial order (a row by TensorPrimitives.Sum; a block's rows added in order), on any count.
        var x = KernelLengths.Values(outer * n * inner, seed: outer + n + inner);
        var expected = new float[outer * inner];
        double worst = 0;
        for (int o = 0; o < outer; o++)
        {
            if (inner == 1) expected[o] = System.Numerics.Tensors.TensorPrimitives.Sum(x.AsSpan(o * n, n));
            else
                for (int i = 0; i < inner; i++)
                {
                    float s = x[o * n * inner + i];
                    for (int j = 1; j < n; j++) s += x[(o * n + j) * inner + i];
                    expected[o * inner + i] = s;
                }
            for (int i = 0; i < inner; i++)
            {
                double exact = 0, magnitude = 0;
                for (int j = 0; j < n; j++) { exact += x[(o * n + j) * inner + i]; magnitude += Math.Abs(x[(o * n + j) * inner + i]); }
                worst = Math.Max(worst, Math.Abs(expected[o * inner + i] - exact) / (magnitude + 1e-30));
            }
        }
        Assert.True(worst < 1e-5, $"the serial reference itself is off by {worst} of the magnitude");
        var (one, two) = KernelThreadCounts.OneAndTwo(() =>
        {
            var y = new float[outer * inner];
            ReduceKernels.Sum<float>(x, outer, n, inner, y);
            return y;
        });
        foreach (var y in new[] { one, two })
            for (int k = 0; k < expected.Length; k++)
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[k]), BitConverter.SingleToInt32Bits(y[k]));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Max_AnyAxis_ReturnsFirstMaximumAndItsIndex(int n)
    {
        foreach (int inner in new[] { 1, 3, n })
        {
            const int outer = 2;
            // Quantised values make ties common: the first index must win.
            var x = KernelLengths.Values(outer * n * inner, seed: n + inner).Select(v => MathF.Round(v * 2)).ToArray();
            var y = new float[outer * inner];
            var idx = new int[outer * inner];
            ReduceKernels.Max<float>(x, outer, n, inner, y, idx);
            for (int o = 0; o < outer; o++)
                for (int i = 0; i < inner; i++)
                {
                    int best = 0;
                    for (int j = 1; j < n; j++)
                        if (x[(o * n + j) * inner + i] > x[(o * n + best) * inner + i]) best = j;
                    Assert.Equal(best, idx[o * inner + i]);
                    Assert.Equal(x[(o * n + best) * inner + i], y[o * inner + i]);
                }
        }
    }

    [Fact]
    public void Max_RowWithNaN_ReturnsTheNaN()
    {
        var x = new[] { 1f, float.NaN, 3f, 2f, 5f, float.NaN };
        var y = new float[2];
        var idx = new int[2];
        ReduceKernels.Max<float>(x, 2, 3, 1, y, idx);
        Assert.True(float.IsNaN(y[0]));
        Assert.Equal(1, idx[0]);
        Assert.True(float.IsNaN(y[1]));
        Assert.Equal(2, idx[1]);
    }

    [Fact]
    public void Sum_InputTooShort_ThrowsNamingTheExtents()
    {
        var e = Assert.Throws<ArgumentException>(() => ReduceKernels.Sum<float>(new float[5], 2, 3, 1, new float[2]));
        Assert.Contains("sum", e.Message);
        Assert.Contains("n=3", e.Message);
    }
}
