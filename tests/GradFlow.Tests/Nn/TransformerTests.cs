using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

/// <summary>
/// The transformer ops and layers: scaled dot-product attention against a reference written here
/// from the definition and against float64 finite differences (with causal and padding masks),
/// RMSNorm, rotary and sinusoidal positions, multi-head attention and encoder layers in every form.
/// PyTorch parity is in Interop/PyTorchTransformerParityTests.
/// </summary>
public class TransformerTests
{
    /// <summary>softmax(s·Q·Kᵀ + mask)·V element by element, from the definition; rows with no visible key are zeros.</summary>
    private static double[] ReferenceAttention(Tensor q, Tensor k, Tensor v, bool causal, bool[]? pad)
    {
        int b = q.Shape[0], h = q.Shape[1], t = q.Shape[2], d = q.Shape[3], s = k.Shape[2], dv = v.Shape[3];
        double[] qv = q.ToDoubleArray(), kv = k.ToDoubleArray(), vv = v.ToDoubleArray();
        var o = new double[b * h * t * dv];
        for (int n = 0; n < b; n++)
            for (int head = 0; head < h; head++)
                for (int i = 0; i < t; i++)
                {
                    var w = new double[s];
                    var visible = new bool[s];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < s; j++)
                    {
                        visible[j] = !(causal && j > i) && !(pad is not null && pad[n * s + j]);
                        if (!visible[j]) continue;
                        double dot = 0;
                        for (int c = 0; c < d; c++) dot += qv[((n * h + head) * t + i) * d + c] * kv[((n * h + head) * s + j) * d + c];
                        w[j] = dot / Math.Sqrt(d);
                        max = Math.Max(max, w[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < s; j++) sum += w[j] = visible[j] ? Math.Exp(w[j] - max) : 0;
                    for (int c = 0; c < dv; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < s; j++) acc += sum == 0 ? 0 : w[j] / sum * vv[((n * h + head) * s + j) * dv + c];
                        o[((n * h + head) * t + i) * dv + c] = acc;
                    }
                }
        return o;
    }

    public static TheoryData<int, int, int, bool, bool> AttentionCases => new()
    {
        // T, S, D, causal, padding (B = 2, H = 2, Dv = 3)
        { 4, 4, 3, false, false },
        { 4, 4, 3, true, false },
        { 3, 5, 2, false, true },
        { 5, 5, 4, true, true },
        { 1, 1, 1, false, false },
    };

    private static bool[] Padding(int b, int s)
    {
        var pad = new bool[b * s];
        for (int j = Math.Max(0, s - 2); j < s; j++) pad[j] = j > 0;   // the first sequence ends with padding
        pad[s + 1 < b * s ? s + 1 : 0] = s > 1;            // a hole inside the second
        return pad;
    }

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void Attention_Forward_MatchesDefinition(int t, int s, int d, bool causal, bool padding)
    {
        Tensor q = TestTensors.Leaf(1, 2, 2, t, d), k = TestTensors.Leaf(2, 2, 2, s, d), v = TestTensors.Leaf(3, 2, 2, s, 3);
        var pad = padding ? Padding(2, s) : null;
        var expected = ReferenceAttention(q, k, v, causal, pad);
        TestTensors.AllClose(expected, Tensor.ScaledDotProductAttention(q, k, v, causal, pad).ToDoubleArray(), 1e-12, 1e-14, "attention");
        var f = Tensor.ScaledDotProductAttention(q.To(DType.Float32), k.To(DType.Float32), v.To(DType.Float32), causal, pad);
        TestTensors.AllClose(expected, f.ToDoubleArray(), 1e-5, 1e-6, "attention float32");
    }

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void Attention_Backward_MatchesFiniteDifferences(int t, int s, int d, bool causal, bool padding)
    {
        var pad = padding ? Padding(2, s) : null;
        GradCheck.Assert(x => Tensor.ScaledDotProductAttention(x[0], x[1], x[2], causal, pad),
            [TestTensors.Leaf(4, 2, 2, t, d), TestTensors.Leaf(5, 2, 2, s, d), TestTensors.Leaf(6, 2, 2, s, 3)], name: "attention");
    }

    public static TheoryData<int, int, bool, bool> PackedCases => new()
    {
        // T, heads (E = 6), causal, padding (B = 2)
        { 4, 2, false, false },
        { 5, 3, true, false },
        { 4, 1, false, true },
        { 5, 2, true, true },
        { 1, 6, false, false },
    };

    /// <summary>[B, T, 3E] → Q, K, V as [B, H, T, E/H] each, by split, reshape and permute (the unfused path).</summary>
    private static (Tensor Q, Tensor K, Tensor V) Heads(Tensor qkv, int heads)
    {
        int b = qkv.Shape[0], t = qkv.Shape[1], e = qkv.Shape[2] / 3;
        var parts = qkv.Split(e, dim: 2);
        Tensor H(Tensor x) => x.Reshape(b, t, heads, e / heads).Permute(0, 2, 1, 3);
        return (H(parts[0]), H(parts[1]), H(parts[2]));
    }

    [Theory]
    [MemberData(nameof(PackedCases))]
    public void PackedSelfAttention_Forward_MatchesDefinitionOnTheHeads(int t, int heads, bool causal, bool padding)
    {
        var qkv = TestTensors.Leaf(21, 2, t, 18);
        var pad = padding ? Padding(2, t) : null;
        var (q, k, v) = Heads(qkv, heads);
        // the definition gives [B, H, T, E/H]; the packed op gives the heads side by side, [B, T, E]
        var expected = ReferenceAttention(q, k, v, causal, pad);
        var y = Tensor.PackedSelfAttention(qkv, heads, causal, pad);
        Assert.Equal([2, t, 6], y.Shape.ToArray());
        var got = y.Reshape(2, t, heads, 6 / heads).Permute(0, 2, 1, 3).ToDoubleArray();
        TestTensors.AllClose(expected, got, 1e-12, 1e-14, "packed attention");
        var f = Tensor.PackedSelfAttention(qkv.To(DType.Float32), heads, causal, pad).Reshape(2, t, heads, 6 / heads).Permute(0, 2, 1, 3);
        TestTensors.AllClose(expected, f.ToDoubleArray(), 1e-5, 1e-6, "packed attention float32");
    }

    [Theory]
    [MemberData(nameof(PackedCases))]
    public void PackedSelfAttention_Backward_MatchesFiniteDifferences(int t, int heads, bool causal, bool padding)
    {
        var pad = padding ? Padding(2, t) : null;
        GradCheck.Assert(x => Tensor.PackedSelfAttention(x[0], heads, causal, pad), [TestTensors.Leaf(22, 2, t, 18)], name: "packed_self_attention");
    }

    [Fact]
    public void PackedSelfAttention_Float32_GivesTheUnfusedPathsGradient_AndItsEntropy()
    {
        const int b = 3, t = 16, heads = 4, e = 32;
        var gen = new Generator(5);
        var data = Tensor.RandN(gen, b, t, 3 * e).To(DType.Float32);
        var upstream = Tensor.RandN(gen, b, t, e).To(DType.Float32);
        var pad = new bool[b * t];
        pad[t - 1] = pad[2 * t + 3] = true;
        var fused = data.Detach();
        fused.RequiresGrad = true;
        double[,]? entropy = null;
        var y1 = Tensor.PackedSelfAttention(fused, heads, causal: true, pad, entropy: h => entropy = h);
        (y1 * upstream).Sum().Backward();
        var plain = data.Detach();
        plain.RequiresGrad = true;
        var (q, k, v) = Heads(plain, heads);
        var y2 = Tensor.ScaledDotProductAttention(q, k, v, causal: true, pad).Permute(0, 2, 1, 3).Reshape(b, t, e);
        (y2 * upstream).Sum().Backward();
        TestTensors.AllClose(y2.ToDoubleArray(), y1.ToDoubleArray(), 1e-5, 1e-6, "output");
        TestTensors.AllClose(plain.Grad!.ToDoubleArray(), fused.Grad!.ToDoubleArray(), 1e-4, 1e-5, "gradient");
        var reference = Transformers.AttentionEntropy(q, k, causal: true, pad);
        Assert.NotNull(entropy);
        for (int n = 0; n < b; n++)
            for (int h = 0; h < heads; h++)
                Assert.Equal(reference[n, h], entropy![n, h], 5);
    }

    /// <summary>
    /// Both attention ops run one kernel-thread task per sequence: outputs and gradients are bitwise the same on one and
    /// two threads, in float32 and with bf16 operands (a per-thread mode the tasks must take over from the caller:
    /// bf16 results differ from float32 ones, so a task that ran in float32 would break the equality).
    /// </summary>
    [Fact]
    public void Attention_OneAndTwoKernelThreads_BitwiseIdentical_AlsoWithBf16Operands()
    {
        const int b = 6, t = 40, heads = 4, e = 32;
        var gen = new Generator(8);
        var data = Tensor.RandN(gen, b, t, 3 * e).To(DType.Float32);
        var upstream = Tensor.RandN(gen, b, t, e).To(DType.Float32);
        var pad = new bool[b * t];
        pad[5] = pad[t + 7] = true;
        float[][] Run(bool bf16)
        {
            using var precision = GradFlow.Kernels.BFloat16.OperandsScope(bf16);
            var packed = data.Detach();
            packed.RequiresGrad = true;
            var y1 = Tensor.PackedSelfAttention(packed, heads, causal: true, pad);
            (y1 * upstream).Sum().Backward();
            var plain = data.Detach();
            plain.RequiresGrad = true;
            var (q, k, v) = Heads(plain, heads);
            var y2 = Tensor.ScaledDotProductAttention(q, k, v, causal: false, pad);
            (y2 * upstream.Reshape(b, t, heads, e / heads).Permute(0, 2, 1, 3)).Sum().Backward();
            return [y1.ToArray(), packed.Grad!.ToArray(), y2.ToArray(), plain.Grad!.ToArray()];
        }
        foreach (bool bf16 in new[] { false, true })
        {
            var (one, two) = KernelThreadCounts.OneAndTwo(() => Run(bf16));
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
        }
        Assert.NotEqual(Run(false)[0], Run(true)[0]);
    }

    [Fact]
    public void PackedSelfAttention_BadShapes_ThrowNamingThem()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.PackedSelfAttention(Tensor.Zeros(2, 3, 10), 2));
        Assert.Contains("[2, 3, 10]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.PackedSelfAttention(Tensor.Zeros(2, 3, 12), 2, keyPadding: new bool[5]));
        Assert.Contains("padding mask has 5", e.Message);
    }

    [Fact]
    public void Attention_LargeLogits_StayFinite()
    {
        var q = Tensor.Full(300.0, DType.Float32, 1, 1, 3, 4);
        var k = Tensor.FromArray(new float[] { 300, 300, 300, 300, -300, -300, -300, -300, 1, 1, 1, 1 }, 1, 1, 3, 4);
        var v = Tensor.FromArray(new float[] { 1, 2, 3 }, 1, 1, 3, 1);
        var y = Tensor.ScaledDotProductAttention(q, k, v).ToDoubleArray();
        Assert.All(y, x => Assert.Equal(1.0, x, 6));   // all weight on the first key
    }

    [Fact]
    public void Attention_QueryWithNoVisibleKey_GivesZerosAndPassesNoGradient()
    {
        var q = TestTensors.Leaf(7, 1, 1, 2, 2);
        var k = TestTensors.Leaf(8, 1, 1, 2, 2);
        var v = TestTensors.Leaf(9, 1, 1, 2, 2);
        var y = Tensor.ScaledDotProductAttention(q, k, v, keyPadding: [true, true]);
        Assert.All(y.ToDoubleArray(), x => Assert.Equal(0.0, x));
        y.Sum().Backward();
        Assert.All(q.Grad!.ToDoubleArray(), x => Assert.Equal(0.0, x));
        Assert.All(v.Grad!.ToDoubleArray(), x => Assert.Equal(0.0, x));
    }

    [Fact]
    public void Attention_BadShapes_ThrowNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.ScaledDotProductAttention(Tensor.Zeros(1, 2, 3, 4), Tensor.Zeros(1, 2, 3, 5), Tensor.Zeros(1, 2, 3, 4)));
        Assert.Contains("[1, 2, 3, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.ScaledDotProductAttention(Tensor.Zeros(1, 1, 3, 4), Tensor.Zeros(1, 1, 2, 4), Tensor.Zeros(1, 1, 2, 4), causal: true));
        Assert.Contains("causal", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tensor.ScaledDotProductAttention(Tensor.Zeros(1, 1, 3, 4), Tensor.Zeros(1, 1, 3, 4), Tensor.Zeros(1, 1, 3, 4), keyPadding: new bool[2]));
        Assert.Contains("padding mask has 2", e.Message);
    }

    [Fact]
    public void RmsNorm_MatchesDefinitionAndFiniteDifferences()
    {
        var norm = new RmsNorm(4, eps: 1e-6);
        using (GradMode.NoGrad()) norm.Weight.Data.CopyFrom(Tensor.FromArray(new float[] { 1, 2, 0.5f, -1 }));
        var x = Tensor.FromArray(new double[] { 1, 2, 3, 4, -1, 0, 0, 1 }, 2, 4);
        double r0 = Math.Sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6), r1 = Math.Sqrt(2 / 4.0 + 1e-6);
        TestTensors.AllClose([1 / r0, 4 / r0, 1.5 / r0, -4 / r0, -1 / r1, 0, 0, -1 / r1], norm.Forward(x).ToDoubleArray(), 1e-12, 1e-14, "rms_norm");
        GradCheck.Assert(t => norm.Forward(t[0]), [TestTensors.Leaf(10, 3, 2, 4)], name: "rms_norm");
    }

    [Fact]
    public void Rotary_KeepsNormsDependsOnOffsetOnlyAndMatchesFiniteDifferences()
    {
        // the same vector at every position: rotated, q_i·k_j depends on i − j only
        var one = Tensor.Normal(new Generator(11), 0, 1, DType.Float64, 1, 6);
        var x = Tensor.Concat(Enumerable.Repeat(one, 5).ToArray(), 0);
        var r = Transformers.Rotate(x).ToDoubleArray();
        double Dot(int i, int j) => Enumerable.Range(0, 6).Sum(c => r[i * 6 + c] * r[j * 6 + c]);
        Assert.Equal(Dot(3, 1), Dot(4, 2), 12);
        Assert.Equal(Dot(2, 0), Dot(4, 2), 12);
        Assert.Equal(Dot(0, 0), Dot(4, 4), 12);
        Assert.Equal(x.ToDoubleArray().Take(6).Sum(a => a * a), Dot(3, 3), 12);
        // position 1, pair i = 0 (angle 1 rad): [x0 cos 1 − x3 sin 1, …, x3 cos 1 + x0 sin 1, …]
        var v = one.ToDoubleArray();
        Assert.Equal(v[0] * Math.Cos(1) - v[3] * Math.Sin(1), r[6], 12);
        Assert.Equal(v[3] * Math.Cos(1) + v[0] * Math.Sin(1), r[9], 12);
        GradCheck.Assert(t => Transformers.Rotate(t[0]), [TestTensors.Leaf(12, 2, 3, 4, 6)], name: "rotary");
    }

    [Fact]
    public void Sinusoids_AreVaswanisTable()
    {
        var pe = PositionalEncoding.Sinusoids(3, 4).ToDoubleArray();
        // PE[t, 2i] = sin(t / 10000^(2i/4)), PE[t, 2i+1] = cos(…)
        TestTensors.AllClose([0, 1, 0, 1, Math.Sin(1), Math.Cos(1), Math.Sin(0.01), Math.Cos(0.01), Math.Sin(2), Math.Cos(2), Math.Sin(0.02), Math.Cos(0.02)],
            pe, 1e-6, 1e-7, "sinusoids");
    }

    [Theory]
    [InlineData(PositionalKind.Learned)]
    [InlineData(PositionalKind.Sinusoidal)]
    public void PositionalEncoding_AddsTheTableAndMatchesFiniteDifferences(PositionalKind kind)
    {
        var pos = new PositionalEncoding(kind, 6, 4, new Generator(13));
        var x = Tensor.Zeros(DType.Float64, 2, 5, 4);
        var expected = (kind == PositionalKind.Learned ? pos.Weight!.Data : PositionalEncoding.Sinusoids(6, 4)).ToDoubleArray().Take(20).ToArray();
        var y = pos.Forward(x).ToDoubleArray();
        TestTensors.AllClose([.. expected, .. expected], y, 1e-7, 1e-7, "positions");
        GradCheck.Assert(t => pos.Forward(t[0]), [TestTensors.Leaf(14, 2, 5, 4)], name: "positions");
        Assert.Throws<ArgumentException>(() => pos.Forward(Tensor.Zeros(1, 7, 4)));
    }

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)]
    [InlineData(true, true, true)]
    public void MultiheadAttention_Backward_MatchesFiniteDifferences(bool causal, bool rotary, bool qkNorm)
    {
        var mha = new MultiheadAttention(8, 2, new Generator(15), causal, rotary, qkNorm);
        GradCheck.Assert(t => mha.Forward(t[0]), [TestTensors.Leaf(16, 2, 3, 8)], name: "multihead_attention");
    }

    [Fact]
    public void MultiheadAttention_Causal_OutputDoesNotSeeTheFuture()
    {
        var mha = new MultiheadAttention(8, 2, new Generator(17), causal: true, rotary: true);
        var x = Tensor.Normal(new Generator(18), 0, 1, DType.Float32, 1, 5, 8);
        var y = mha.Forward(x).ToDoubleArray();
        var changed = x.ToArray();
        for (int c = 0; c < 8; c++) changed[4 * 8 + c] += 3;   // the last position only
        var y2 = mha.Forward(Tensor.FromArray(changed, 1, 5, 8)).ToDoubleArray();
        Assert.Equal(y.Take(32), y2.Take(32));
        Assert.NotEqual(y.Skip(32), y2.Skip(32));
    }

    public static TheoryData<bool, FeedForwardKind, bool> LayerForms => new()
    {
        { false, FeedForwardKind.Relu, false },
        { true, FeedForwardKind.Gelu, false },
        { true, FeedForwardKind.SwiGlu, true },
        { false, FeedForwardKind.Gelu, true },
    };

    [Theory]
    [MemberData(nameof(LayerForms))]
    public void EncoderLayer_Backward_MatchesFiniteDifferences(bool normFirst, FeedForwardKind ff, bool rms)
    {
        var layer = new TransformerEncoderLayer(8, 2, 12, new Generator(19), normFirst, ff, dropout: 0, rmsNorm: rms, causal: true);
        GradCheck.Assert(t => layer.Forward(t[0]), [TestTensors.Leaf(20, 2, 3, 8)], name: "encoder_layer");
    }

    [Fact]
    public void EncoderLayer_HasPyTorchNamesAndShapes()
    {
        var layer = new TransformerEncoderLayer(8, 2, 12, new Generator(21));
        Assert.Equal(
            ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
             "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"],
            layer.StateDict().Select(kv => kv.Key));
        Assert.Equal([24, 8], layer.SelfAttn.InProjWeight.Shape.ToArray());
        Assert.All(layer.SelfAttn.InProjBias.Data.ToDoubleArray(), b => Assert.Equal(0.0, b));
    }

    [Fact]
    public void EncoderLayer_Dropout_SameSeedSameNumbers()
    {
        static double[] Run()
        {
            var layer = new TransformerEncoderLayer(8, 2, 12, new Generator(22), normFirst: true, dropout: 0.2);
            return layer.Forward(Tensor.Normal(new Generator(23), 0, 1, DType.Float32, 2, 4, 8)).ToDoubleArray();
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void TiedLinear_SharesTheEmbeddingWeightAndSumsBothGradients()
    {
        var emb = new Embedding(5, 3, new Generator(24));
        var head = new TiedLinear(emb.Weight);
        var logits = head.Forward(emb.Forward(Tensor.FromArray(new float[] { 1, 3 }, 2)));
        logits.Sum().Backward();
        var w = emb.Weight.Data.ToDoubleArray();
        var g = emb.Weight.Grad!.ToDoubleArray();
        // d/dE of Σ_t Σ_v e_t·E_v: every row gets Σ_t e_t from the read-out; rows 1 and 3 also Σ_v E_v from the lookup
        for (int v = 0; v < 5; v++)
            for (int c = 0; c < 3; c++)
            {
                double expected = w[1 * 3 + c] + w[3 * 3 + c];
                if (v is 1 or 3) expected += Enumerable.Range(0, 5).Sum(r => w[r * 3 + c]);
                Assert.Equal(expected, g[v * 3 + c], 5);
            }
    }

    [Fact]
    public void AttentionEntropy_UniformAttention_IsLnOfTheVisibleKeys()
    {
        // q = 0: every visible key gets the same weight, so a row's entropy is ln(visible keys)
        var q = Tensor.Zeros(DType.Float64, 1, 2, 4, 3);
        var k = TestTensors.Leaf(25, 1, 2, 4, 3);
        var full = Transformers.AttentionEntropy(q, k, causal: false, null);
        Assert.Equal(Math.Log(4), full[0, 1], 12);
        var causal = Transformers.AttentionEntropy(q, k, causal: true, null);
        Assert.Equal((Math.Log(1) + Math.Log(2) + Math.Log(3) + Math.Log(4)) / 4, causal[0, 0], 12);
        // the module hands the same numbers to its observer, one per example and head
        var mha = new MultiheadAttention(4, 2, new Generator(26));
        double[,]? seen = null;
        mha.EntropyObserver = e => seen = e;
        mha.Forward(Tensor.Normal(new Generator(27), 0, 1, DType.Float32, 3, 5, 4));
        Assert.Equal(3, seen!.GetLength(0));
        Assert.Equal(2, seen.GetLength(1));
        Assert.All(seen.Cast<double>(), e => Assert.InRange(e, 0, Math.Log(5) + 1e-9));
    }
}
