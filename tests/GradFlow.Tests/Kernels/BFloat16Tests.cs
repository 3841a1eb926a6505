using System.Globalization;
using GradFlow.Autograd;
using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// Rounding to bfloat16 (every instruction-set path, against hand-derived bits and against PyTorch's own rounding),
/// the mixed-precision GEMM (bf16 operands, float32 accumulation) on every path, and <c>--precision bf16</c> training.
/// </summary>
public sealed class BFloat16Tests
{
    [Theory]
    [InlineData(0x3F80_0000u, 0x3F80_0000u)] // 1 is a bf16
    [InlineData(0x3F80_8000u, 0x3F80_0000u)] // 1 + 2⁻⁸: halfway between 1 and 1 + 2⁻⁷, ties to the even 1
    [InlineData(0x3F81_8000u, 0x3F82_0000u)] // 1 + 3·2⁻⁸: halfway, ties to the even 1 + 2·2⁻⁷ (up)
    [InlineData(0x3F80_8001u, 0x3F81_0000u)] // just above halfway: up
    [InlineData(0x3F80_7FFFu, 0x3F80_0000u)] // just below halfway: down
    [InlineData(0xBF80_8001u, 0xBF81_0000u)] // the same magnitude, negative: away from zero
    [InlineData(0x8000_0000u, 0x8000_0000u)] // −0 stays −0
    [InlineData(0x0000_8001u, 0x0001_0000u)] // a subnormal rounds like any other value
    [InlineData(0x7F7F_FFFFu, 0x7F80_0000u)] // float's largest is above bf16's largest + half an ulp: ∞
    [InlineData(0x7F7F_7FFFu, 0x7F7F_0000u)] // bf16's largest stays
    [InlineData(0xFF80_0000u, 0xFF80_0000u)] // −∞
    public void Round_IsNearestTiesToEven(uint bits, uint expected)
    {
        foreach (var isa in KernelIsa.All)
        {
            var x = Enumerable.Repeat(BitConverter.UInt32BitsToSingle(bits), 37).ToArray(); // vector lanes and the scalar tail
            BFloat16.Round(x, isa);
            Assert.All(x, v => Assert.Equal(expected, BitConverter.SingleToUInt32Bits(v)));
        }
        Assert.Equal(expected, BitConverter.SingleToUInt32Bits(BFloat16.Round(BitConverter.UInt32BitsToSingle(bits))));
    }

    [Fact]
    public void Round_NaNStaysNaN_OnEveryPath()
    {
        foreach (var isa in KernelIsa.All)
        {
            // a NaN whose payload lives only in the low 16 bits would become ∞ if rounded as a number
            var x = Enumerable.Repeat(BitConverter.UInt32BitsToSingle(0x7F80_0001u), 21).ToArray();
            BFloat16.Round(x, isa);
            Assert.All(x, v => Assert.True(float.IsNaN(v)));
        }
    }

    private static uint[] RandomBits(int n, int seed)
    {
        var rng = new Random(seed);
        var bits = new uint[n];
        for (int i = 0; i < n; i++)
            bits[i] = (i % 4) switch
            {
                0 => (uint)rng.NextInt64(0, 1L << 32), // any pattern, NaNs and infinities included
                1 => BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() * 2 - 1)),
                2 => (BitConverter.SingleToUInt32Bits((float)rng.NextDouble()) & 0xFFFF_0000u) | 0x8000u, // exact ties
                _ => BitConverter.SingleToUInt32Bits((float)Math.ScaleB(rng.NextDouble(), rng.Next(-140, 128))),
            };
        return bits;
    }

    [Fact]
    public void Round_VectorPathsGiveTheScalarBits()
    {
        var bits = RandomBits(4099, seed: 3);
        var scalar = bits.Select(b => BFloat16.Round(BitConverter.UInt32BitsToSingle(b))).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var x = bits.Select(BitConverter.UInt32BitsToSingle).ToArray();
            BFloat16.Round(x, isa);
            for (int i = 0; i < x.Length; i++)
                if (float.IsNaN(scalar[i])) Assert.True(float.IsNaN(x[i]), $"{isa}, {bits[i]:x8}");
                else Assert.Equal(BitConverter.SingleToUInt32Bits(scalar[i]), BitConverter.SingleToUInt32Bits(x[i]));
        }
    }

    [Fact]
    [Trait("Category", "Interop")]
    public void Round_MatchesPyTorch()
    {
        var bits = RandomBits(2000, seed: 11);
        string file = Path.Combine(Path.GetTempPath(), $"gradflow-bf16-{Environment.ProcessId}-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllLines(file, bits.Select(b => b.ToString("x8", CultureInfo.InvariantCulture)));
            var (exit, stdout, stderr) = PyTorchScript.Run("bf16_round.py", file);
            Assert.True(exit == 0, stderr);
            var torch = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(bits.Length, torch.Length);
            var x = bits.Select(BitConverter.UInt32BitsToSingle).ToArray();
            BFloat16.Round(x);
            for (int i = 0; i < bits.Length; i++)
                if (torch[i] == "nan") Assert.True(float.IsNaN(x[i]), $"{bits[i]:x8}");
                else Assert.Equal(torch[i], BitConverter.SingleToUInt32Bits(x[i]).ToString("x8", CultureInfo.InvariantCulture));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// C = op(A)·op(B) with bf16 operands: against the float64 product of the operands rounded one by one (the scalar
    /// rounding above), within the float32 accumulation's bound k·2⁻²³·Σ|a||b| (+ the rounding of C); and farther from
    /// the float32 product than that bound allows, so the operands were rounded.
    /// </summary>
    [Theory]
    [InlineData(5, 7, 3)]
    [InlineData(64, 64, 64)] // the small-GEMM size: must take the packed loops to round
    [InlineData(37, 45, 600)]
    [InlineData(130, 40, 513)]
    public void Gemm_Bf16Operands_IsTheProductOfRoundedOperands(int m, int n, int k)
    {
        var rng = new Random(m * 31 + n * 7 + k);
        foreach (var isa in KernelIsa.All)
            for (int t = 0; t < 4; t++)
            {
                bool ta = (t & 1) != 0, tb = (t & 2) != 0;
                var a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var b = Enumerable.Range(0, k * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var c = new float[m * n];
                var plain = new float[m * n];
                using (BFloat16.OperandsScope()) Gemm.MultiplyBatched(isa, 1, ta, tb, m, n, k, 1f, a, ta ? m : k, 0, b, tb ? k : n, 0, 0f, c, n, 0);
                Assert.False(BFloat16.Operands);
                Gemm.MultiplyBatched(isa, 1, ta, tb, m, n, k, 1f, a, ta ? m : k, 0, b, tb ? k : n, 0, 0f, plain, n, 0);
                double farthest = 0;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double exact = 0, bound = 0, exactPlain = 0;
                        for (int p = 0; p < k; p++)
                        {
                            float ai = ta ? a[p * m + i] : a[i * k + p], bj = tb ? b[j * k + p] : b[p * n + j];
                            double prod = (double)BFloat16.Round(ai) * BFloat16.Round(bj);
                            exact += prod;
                            exactPlain += (double)ai * bj;
                            bound += Math.Abs(prod);
                        }
                        double tol = (k + 2) * Math.ScaleB(1, -23) * bound + 1e-30;
                        Assert.True(Math.Abs(c[i * n + j] - exact) <= tol, $"{isa} t={t} ({i},{j}): {c[i * n + j]} vs {exact} ± {tol}");
                        farthest = Math.Max(farthest, Math.Abs(c[i * n + j] - exactPlain) / tol);
                    }
                Assert.True(farthest > 1, $"{isa} t={t}: the bf16 product is within float32 rounding of the float32 one");
            }
    }

    [Fact]
    public void Training_Bf16_KeepsFloat32MasterWeights_IsDeterministic_AndDiffersFromFp32()
    {
        var config = new TrainingConfig
        {
            Model = "mlp 20-32x2-4 act=relu", Data = "teacher", Seed = 3, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3,
            BatchSize = 32, MaxSteps = 20, Epochs = 1, Threads = 1, Precision = PrecisionKind.Bf16,
        };
        Assert.Equal(PrecisionKind.Bf16, TrainingConfig.FromJson(config.ToJson()).Precision);
        Assert.Contains("\"precision\": \"bf16\"", config.ToJson());
        float[] Weights(TrainingConfig c)
        {
            var trainer = new Trainer(c);
            trainer.Run();
            return trainer.Model.Parameters().SelectMany(p => p.Data.ToArray()).ToArray();
        }
        var bf16 = Weights(config);
        Assert.Equal(bf16, Weights(config));
        Assert.NotEqual(bf16, Weights(config with { Precision = PrecisionKind.Fp32 }));
        // the master weights are float32: Adam's updates leave bits below bf16's 8-bit significand
        Assert.Contains(bf16, w => (BitConverter.SingleToUInt32Bits(w) & 0xFFFF) != 0);
    }

    /// <summary>
    /// A convolution under <c>--precision bf16</c> is the float32 convolution of the rounded operands, forward and both
    /// gradients (the weight and dy for dx, x and dy for dW), on the shapes of every convolution path: a one-channel stem
    /// (direct loops), 3×3 stride 1 (flat implicit GEMM or Winograd), stride 2 (im2col + GEMM).
    /// </summary>
    [Theory]
    [InlineData(1, 8, 1)]
    [InlineData(8, 8, 1)]
    [InlineData(8, 16, 2)]
    public void Conv2d_Bf16_IsTheConvolutionOfRoundedOperands(int cin, int cout, int stride)
    {
        var gen = new GradFlow.Tensors.Generator(5);
        var x = GradFlow.Tensors.Tensor.RandN(gen, 3, cin, 11, 9);
        var w = GradFlow.Tensors.Tensor.RandN(gen, cout, cin, 3, 3);
        var g = GradFlow.Tensors.Tensor.RandN(gen, 3, cout, (11 + 2 - 3) / stride + 1, (9 + 2 - 3) / stride + 1);
        GradFlow.Tensors.Tensor Rounded(GradFlow.Tensors.Tensor t)
        {
            var r = t.Detach().ToArray().Select(BFloat16.Round).ToArray();
            return GradFlow.Tensors.Tensor.FromArray(r, t.Shape.ToArray());
        }
        (float[] Y, float[] Dx, float[] Dw) Run(GradFlow.Tensors.Tensor xi, GradFlow.Tensors.Tensor wi, GradFlow.Tensors.Tensor gi, bool bf16)
        {
            var xl = xi.Detach();
            var wl = wi.Detach();
            xl.RequiresGrad = wl.RequiresGrad = true;
            using (BFloat16.OperandsScope(bf16))
            {
                var y = GradFlow.Tensors.Tensor.Conv2d(xl, wl, stride: stride, padding: 1);
                y.Backward(gi);
                return (y.Detach().ToArray(), xl.Grad!.ToArray(), wl.Grad!.ToArray());
            }
        }
        var bf = Run(x, w, g, bf16: true);
        var reference = Run(Rounded(x), Rounded(w), Rounded(g), bf16: false);
        Assert.Equal(reference.Y, bf.Y);
        Assert.Equal(reference.Dx, bf.Dx);
        Assert.Equal(reference.Dw, bf.Dw);
        var fp32 = Run(x, w, g, bf16: false);
        Assert.NotEqual(fp32.Y, bf.Y);
    }
}
