using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Tensors;

/// <summary>
/// Large element-wise ops run in fixed chunks on the kernel threads (Tensor.Map and Tensor.Zip): the values must be the
/// bits of one pass over the whole tensor, forward and backward, in float and double, whatever the thread count.
/// </summary>
public class ElementwiseThreadsTests
{
    // two whole chunks and a partial one with a tail shorter than any vector; and just above the serial floor
    [Theory]
    [InlineData(3 * 32768 + 13, DType.Float32)]
    [InlineData(3 * 32768 + 13, DType.Float64)]
    [InlineData(65536 + 1, DType.Float32)]
    public void ChunkedOnTwoThreads_GivesTheBitsOfOnePass(int n, DType dtype)
    {
        Func<Tensor, Tensor>[] ops =
        [
            t => t.Gelu(), t => t.Gelu(GeluApproximation.Tanh), t => t.Relu(), t => t.Sigmoid(), t => t.Tanh(), t => t.Silu(),
            t => t.LeakyRelu(0.1), t => t.Mish(),
        ];
        foreach (var op in ops)
        {
            (double[] Y, double[] Dx) Run()
            {
                var gen = new Generator(7);
                var x = Tensor.Normal(gen, 0, 3, dtype, n);
                x.RequiresGrad = true;
                var g = Tensor.Normal(gen, 0, 1, dtype, n);
                var y = op(x);
                y.Backward(g);
                return (y.Detach().ToDoubleArray(), x.Grad!.ToDoubleArray());
            }
            var (one, two) = KernelThreadCounts.OneAndTwo(Run);
            Assert.Equal(one.Y, two.Y);
            Assert.Equal(one.Dx, two.Dx);
            // and the values are the op's, not a chunk's neighbour's: y is odd or monotone in x, so no two ops agree everywhere
            Assert.NotEqual(one.Y, one.Dx);
        }
    }

    /// <summary>
    /// float32 GELU under autograd keeps its derivative from the forward: the gradient must be the bits of the GELU
    /// backward kernel on the input, a retained graph must give them twice, and without it the second pass must refuse
    /// (the kept derivative went back to the pool).
    /// </summary>
    [Theory]
    [InlineData(1000)]
    [InlineData(3 * 32768 + 13)]
    public void GeluFloat32_KeepsItsDerivative_GradientIsTheBackwardKernels(int n)
    {
        var gen = new Generator(3);
        var x0 = Tensor.Normal(gen, 0, 3, DType.Float32, n);
        var g = Tensor.Normal(gen, 0, 1, DType.Float32, n);
        var want = new float[n];
        GradFlow.Kernels.ActivationKernels.GeluBackward<float>(x0.ToArray(), g.ToArray(), want);
        var x = x0.Detach();
        x.RequiresGrad = true;
        var y = x.Gelu();
        y.Backward(g, retainGraph: true);
        Assert.Equal(want, x.Grad!.ToArray());
        x.Grad = null;
        y.Backward(g);
        Assert.Equal(want, x.Grad!.ToArray());
        Assert.Throws<InvalidOperationException>(() => y.Backward(g));
    }

    [Theory]
    [InlineData(3 * 32768 + 13, DType.Float32)]
    [InlineData(3 * 32768 + 13, DType.Float64)]
    public void SameShapeArithmeticAndInPlaceAdds_ChunkedOnTwoThreads_GiveTheBitsOfOnePass(int n, DType dtype)
    {
        Func<Tensor, Tensor, Tensor>[] ops =
        [
            (a, b) => a + b, (a, b) => a - b, (a, b) => a * b, (a, b) => a / b,
            (a, b) => a.Detach().AddInPlace(b), (a, b) => a.Detach().AddInPlace(b, alpha: 0.37),
        ];
        foreach (var op in ops)
        {
            double[] Run()
            {
                var gen = new Generator(9);
                var a = Tensor.Normal(gen, 0, 3, dtype, n);
                var b = Tensor.Normal(gen, 1, 2, dtype, n);
                return op(a, b).ToDoubleArray();
            }
            var (one, two) = KernelThreadCounts.OneAndTwo(Run);
            Assert.Equal(one, two);
        }
        // and each is the operation: against a scalar loop in double on the same operands (float: one rounding of each)
        var g = new Generator(9);
        var x = Tensor.Normal(g, 0, 3, dtype, n);
        var y = Tensor.Normal(g, 1, 2, dtype, n);
        var (xs, ys) = (x.ToDoubleArray(), y.ToDoubleArray());
        var (_, sum) = KernelThreadCounts.OneAndTwo(() => (x + y).ToDoubleArray()); // the chunked pass
        for (int i = 0; i < n; i++)
            Assert.Equal(dtype == DType.Float32 ? (double)(float)(xs[i] + ys[i]) : xs[i] + ys[i], sum[i]);
    }

    /// <summary>
    /// The row-parallel reductions of a training step: a bias gradient (column sums over the batch, split into blocks of
    /// columns) and the cross-entropy gradient (split into blocks of rows) give the serial bits on two threads.
    /// </summary>
    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float64)]
    public void ColumnSumsAndCrossEntropyGradient_OnTwoThreads_GiveTheSerialBits(DType dtype)
    {
        (double[] Sum, double[] Dx, double Loss) Run()
        {
            var gen = new Generator(11);
            var m = Tensor.Normal(gen, 0, 1, dtype, 300, 700);
            var logits = Tensor.Normal(gen, 0, 2, dtype, 3000, 41);
            logits.RequiresGrad = true;
            var target = GradFlow.Tensors.IndexTensor.FromArray(Enumerable.Range(0, 3000).Select(i => (i * 7) % 41).ToArray(), 3000);
            var loss = GradFlow.Nn.Losses.CrossEntropy(logits, target, labelSmoothing: 0.1);
            loss.Backward();
            return (m.Sum(0).ToDoubleArray(), logits.Grad!.ToDoubleArray(), loss.Item());
        }
        var (one, two) = KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Sum, two.Sum);
        Assert.Equal(one.Dx, two.Dx);
        Assert.Equal(one.Loss, two.Loss);
    }

    /// <summary>
    /// A linear layer with its activation fused into the GEMM takes g·act′ from its output in chunks on the kernel threads
    /// when the output is large: on two threads the gradients must be the one-thread bits, and the bias gradient the column
    /// sums of the activation's backward kernel applied to the whole output (so no chunk was skipped or shifted).
    /// </summary>
    [Theory]
    [InlineData(GradFlow.Kernels.FusedActivation.Relu)]
    [InlineData(GradFlow.Kernels.FusedActivation.Tanh)]
    [InlineData(GradFlow.Kernels.FusedActivation.Sigmoid)]
    public void FusedLinearActivationGradient_OnTwoThreads_GivesTheOneThreadBits(GradFlow.Kernels.FusedActivation activation)
    {
        const int rows = 97, inF = 33, outF = 1031; // 100 007 outputs: three chunks and a tail
        (float[] Dx, float[] Dw, float[] Db, float[] Y, float[] G) Run()
        {
            var gen = new Generator(5);
            var x = Tensor.Normal(gen, 0, 1, DType.Float32, rows, inF);
            var w = Tensor.Normal(gen, 0, 0.5, DType.Float32, outF, inF);
            var b = Tensor.Normal(gen, 0, 0.5, DType.Float32, outF);
            var g = Tensor.Normal(gen, 0, 1, DType.Float32, rows, outF);
            x.RequiresGrad = w.RequiresGrad = b.RequiresGrad = true;
            var y = Tensor.Linear(x, w, b, activation);
            y.Backward(g);
            return (x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray(), y.Detach().ToArray(), g.ToArray());
        }
        var (one, two) = KernelThreadCounts.OneAndTwo(Run);
        Assert.Equal(one.Dx, two.Dx);
        Assert.Equal(one.Dw, two.Dw);
        Assert.Equal(one.Db, two.Db);
        var dz = new float[rows * outF];
        switch (activation)
        {
            case GradFlow.Kernels.FusedActivation.Relu: GradFlow.Kernels.ActivationKernels.ReluBackward<float>(one.Y, one.G, dz); break;
            case GradFlow.Kernels.FusedActivation.Tanh: GradFlow.Kernels.ActivationKernels.TanhBackward<float>(one.Y, one.G, dz); break;
            default: GradFlow.Kernels.ActivationKernels.SigmoidBackward<float>(one.Y, one.G, dz); break;
        }
        for (int o = 0; o < outF; o++)
        {
            double want = 0, magnitude = 0;
            for (int r = 0; r < rows; r++) { want += dz[r * outF + o]; magnitude += Math.Abs(dz[r * outF + o]); }
            Assert.True(Math.Abs(two.Db[o] - want) <= 1e-5 * magnitude + 1e-6, $"{activation}: bias gradient {o} is {two.Db[o]}, want {want}");
        }
    }
}
