using GradFlow.Diagnostics;
using GradFlow.Tensors;

namespace GradFlow.Tests.Diagnostics;

/// <summary>
/// The monitor's reductions when one call needs more chunks (of 2^15 values) than any call before: a conv net's activation
/// (64×16×28×28 values, 25 chunks) measured before gradients that together span more chunks than the gradient lists held.
/// <c>gradflow diagnose</c> of a 6-layer sigmoid CNN on Fashion-MNIST crashed here with an IndexOutOfRangeException.
/// </summary>
public class StatisticsKernelTests
{
    private const int Chunk = 1 << 15;

    private static (double SumSq, double MaxAbs) Direct(Tensor t)
    {
        var v = t.ToDoubleArray();
        return (v.Sum(x => x * x), v.Max(Math.Abs));
    }

    [Fact]
    public void MeasureAll_AfterMomentsOfALargeTensor_MeasuresEveryTensor()
    {
        var gen = new Generator(7);
        var kernel = new StatisticsKernel();
        var activation = Tensor.RandN(gen, 20 * Chunk + 5);
        var (sum, sumSq, bad) = kernel.Moments(activation);
        var a = activation.ToDoubleArray();
        Assert.Equal(a.Sum(), sum, 1e-6 * a.Length);
        Assert.Equal(a.Sum(x => x * x), sumSq, 1e-5 * sumSq);
        Assert.Equal(0, bad);
        // 12 chunks over three tensors: more than the lists' first 8, fewer than the 21 partials Moments needed
        Tensor?[] grads = [Tensor.RandN(gen, 5 * Chunk), null, Tensor.RandN(gen, 6 * Chunk + 3)];
        var results = new (double SumSq, double MaxAbs, long NonFinite)[3];
        var fp16 = new (long, long, long)[3];
        kernel.MeasureAll(grads, results, fp16);
        foreach (int i in new[] { 0, 2 })
        {
            var (ss, max) = Direct(grads[i]!);
            Assert.Equal(ss, results[i].SumSq, 1e-5 * ss);
            Assert.Equal(max, results[i].MaxAbs, 1e-6);
            Assert.Equal(0, results[i].NonFinite);
        }
        Assert.Equal((0.0, 0.0, 0L), results[1]);
        // and larger again than anything before, after a single-tensor measure
        var single = Tensor.RandN(gen, 40 * Chunk);
        Assert.Equal(Direct(single).SumSq, kernel.Measure(single).SumSq, 1e-5 * Direct(single).SumSq);
        Tensor?[] more = [.. Enumerable.Range(0, 9).Select(_ => (Tensor?)Tensor.RandN(gen, 5 * Chunk))];
        var moreResults = new (double SumSq, double MaxAbs, long NonFinite)[9];
        kernel.MeasureAll(more, moreResults);
        for (int i = 0; i < 9; i++) Assert.Equal(Direct(more[i]!).SumSq, moreResults[i].SumSq, 1e-5 * moreResults[i].SumSq);
    }
}
