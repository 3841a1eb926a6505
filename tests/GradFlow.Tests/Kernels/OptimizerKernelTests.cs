using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

public class OptimizerKernelTests
{
    [Fact]
    public void SgdMomentum_EveryLength_BitwiseEqualToTheUnfusedSequence()
    {
        var rng = new Random(3);
        for (int n = 0; n <= 300; n++)
        {
            var w = new float[n];
            var g = new float[n];
            var b = new float[n];
            for (int i = 0; i < n; i++) (w[i], g[i], b[i]) = ((float)rng.NextDouble() - 0.5f, (float)rng.NextDouble() - 0.5f, (float)rng.NextDouble() - 0.5f);
            float[] w2 = (float[])w.Clone(), b2 = (float[])b.Clone();
            TensorPrimitives.Multiply(b2, 0.9f, b2);
            TensorPrimitives.MultiplyAdd(g, 0.75f, b2, b2);
            TensorPrimitives.MultiplyAdd(b2, -0.01f, w2, w2);
            OptimizerKernels.SgdMomentum(w, g, b, 0.9f, 0.75f, -0.01f);
            Assert.Equal(b2, b);
            Assert.Equal(w2, w);
        }
    }

    [Fact]
    public void SgdMomentum_LengthMismatch_NamesTheKernel()
    {
        var e = Assert.Throws<ArgumentException>(() => OptimizerKernels.SgdMomentum(new float[3], new float[2], new float[3], 0.9f, 1f, -0.1f));
        Assert.Contains("SgdMomentum", e.Message);
    }
}
