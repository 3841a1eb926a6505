using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Tests.Recurrent;

/// <summary>
/// <see cref="RecurrentGradientProbe"/>: the per-step Σ(dL/dh_t)² a stacked recurrent layer's fused
/// backward reports, against dL/dh_t taken by the autograd engine from the same recurrence unrolled
/// into one single-step op per step and layer (retained gradients on every h_t), in float64.
/// </summary>
public class RecurrentGradientProbeTests
{
    private const int Steps = 6, Batch = 3, Input = 4, Hidden = 5;

    internal static RecurrentLayer Module(ReferenceKind kind, int numLayers, ulong seed) => kind switch
    {
        ReferenceKind.RnnTanh => new Rnn(Input, Hidden, new Generator(seed), numLayers, RnnNonlinearity.Tanh),
        ReferenceKind.RnnRelu => new Rnn(Input, Hidden, new Generator(seed), numLayers, RnnNonlinearity.Relu),
        ReferenceKind.Lstm => new Lstm(Input, Hidden, new Generator(seed), numLayers),
        _ => new Gru(Input, Hidden, new Generator(seed), numLayers),
    };

    /// <summary>
    /// The loss: Σ r·h_{T−1} of the last layer (<paramref name="allSteps"/> false), or Σ_t Σ R_t·h_t over
    /// every step of the last layer, with fixed random weights r, R.
    /// </summary>
    private static Tensor Loss(IReadOnlyList<Tensor> lastLayerSteps, Tensor weights, bool allSteps)
    {
        Tensor? loss = null;
        for (int t = allSteps ? 0 : Steps - 1; t < Steps; t++)
        {
            var term = (lastLayerSteps[t] * weights.Narrow(0, t, 1).Reshape(Batch, Hidden)).Sum();
            loss = loss is null ? term : loss + term;
        }
        return loss!;
    }

    /// <summary>dL/dh_t of every layer and step, [layer][t][B·H], from the unrolled single-step ops.</summary>
    private static double[][][] Unrolled(ReferenceKind kind, RecurrentLayer m, Tensor x, Tensor weights, bool allSteps)
    {
        int layers = m.NumLayers;
        var hs = new Tensor[layers][];
        var input = Enumerable.Range(0, Steps).Select(t => x.Narrow(0, t, 1)).ToArray(); // [1, B, I] each
        for (int l = 0; l < layers; l++)
        {
            Tensor W(Parameter? p) => p!.Data.To(DType.Float64);
            Tensor wIh = W(m.WeightIh(l)), wHh = W(m.WeightHh(l)), bIh = W(m.BiasIh(l)), bHh = W(m.BiasHh(l));
            var h = Tensor.Zeros(DType.Float64, Batch, Hidden);
            var c = Tensor.Zeros(DType.Float64, Batch, Hidden);
            hs[l] = new Tensor[Steps];
            for (int t = 0; t < Steps; t++)
            {
                switch (kind)
                {
                    case ReferenceKind.Lstm:
                        (_, h, c) = Tensor.Lstm(input[t], h, c, wIh, wHh, bIh, bHh);
                        break;
                    case ReferenceKind.Gru:
                        h = Tensor.Gru(input[t], h, wIh, wHh, bIh, bHh).HN;
                        break;
                    default:
                        h = Tensor.Rnn(input[t], h, wIh, wHh, bIh, bHh, kind == ReferenceKind.RnnRelu ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh).HN;
                        break;
                }
                hs[l][t] = h.RetainGrad();
            }
            input = hs[l].Select(v => v.Unsqueeze(0)).ToArray();
        }
        Loss(hs[^1], weights, allSteps).Backward();
        // a step the loss does not reach (layer below, steps after the last one used) has no gradient: zeros
        return hs.Select(layer => layer.Select(v => v.Grad?.ToDoubleArray() ?? new double[Batch * Hidden]).ToArray()).ToArray();
    }

    /// <summary>The probes of one fused pass of the module over <paramref name="x"/>.</summary>
    private static RecurrentGradientProbe[] Probed(RecurrentLayer m, Tensor x, Tensor weights, bool allSteps)
    {
        var probes = Enumerable.Range(0, m.NumLayers).Select(_ => new RecurrentGradientProbe()).ToArray();
        m.ArmGradientProbes(probes);
        var output = m.Forward(x, null).Output;
        var steps = Enumerable.Range(0, Steps).Select(t => output.Narrow(0, t, 1).Reshape(Batch, Hidden)).ToArray();
        Loss(steps, weights, allSteps).Backward();
        return probes;
    }

    public static TheoryData<ReferenceKind, int, bool> Cases()
    {
        var data = new TheoryData<ReferenceKind, int, bool>();
        foreach (var kind in Enum.GetValues<ReferenceKind>())
        foreach (int layers in new[] { 1, 2 })
        foreach (bool allSteps in new[] { false, true })
            data.Add(kind, layers, allSteps);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Probe_PerStepRms_EqualsTheUnrolledRecurrence(ReferenceKind kind, int numLayers, bool allSteps)
    {
        var m = Module(kind, numLayers, 10 + (ulong)kind);
        var x = Tensor.Normal(new Generator(3), 0, 1, DType.Float64, Steps, Batch, Input);
        var weights = Tensor.Normal(new Generator(4), 0, 1, DType.Float64, Steps, Batch, Hidden);
        var probes = Probed(m, x, weights, allSteps);
        var reference = Unrolled(kind, m, x, weights, allSteps);
        for (int l = 0; l < numLayers; l++)
        {
            var probe = probes[l];
            Assert.True(probe.Recorded);
            Assert.Equal(Steps, probe.Steps);
            Assert.Equal(Batch * Hidden, probe.ElementsPerStep);
            for (int t = 0; t < Steps; t++)
            {
                double rms = Math.Sqrt(reference[l][t].Sum(v => v * v) / (Batch * Hidden));
                Assert.True(rms > 0, $"layer {l} step {t}: the reference gradient is zero, the comparison would be empty");
                Assert.Equal(rms, probe.Rms(t), rms * 1e-10);
                Assert.Equal(0, probe.NonFinite[t]);
            }
        }
    }

    [Fact]
    public void Probe_LossOnLastStepOfTanhRnn_DecaysWithLag()
    {
        // single layer, the loss only at T−1: dh_{t−1} = (dh_t ⊙ (1 − h_t²))·W_hh, so ||dh_{t−1}|| ≤ ||W_hh||₂·||dh_t||
        var m = Module(ReferenceKind.RnnTanh, 1, 7);
        using (GradMode.NoGrad()) m.WeightHh(0).Data.MulInPlace(0.3);
        var x = Tensor.Normal(new Generator(3), 0, 1, DType.Float64, Steps, Batch, Input);
        var weights = Tensor.Normal(new Generator(4), 0, 1, DType.Float64, Steps, Batch, Hidden);
        var probe = Probed(m, x, weights, allSteps: false)[0];
        var w = m.WeightHh(0).Data.ToDoubleArray();
        double frobenius = Math.Sqrt(w.Sum(v => v * v)); // ≥ the spectral norm
        Assert.True(frobenius < 1);
        for (int t = Steps - 1; t > 0; t--)
            Assert.True(probe.Rms(t - 1) <= frobenius * probe.Rms(t) * (1 + 1e-12), $"step {t - 1}: {probe.Rms(t - 1)} vs {frobenius} × {probe.Rms(t)}");
        Assert.True(probe.Rms(0) < Math.Pow(frobenius, Steps - 1) * probe.Rms(Steps - 1) * (1 + 1e-12));
    }

    [Fact]
    public void Probe_Float32_AgreesWithFloat64()
    {
        foreach (var kind in Enum.GetValues<ReferenceKind>())
        {
            var m = Module(kind, 2, 5);
            var x = Tensor.Normal(new Generator(3), 0, 1, DType.Float64, Steps, Batch, Input);
            var weights = Tensor.Normal(new Generator(4), 0, 1, DType.Float64, Steps, Batch, Hidden);
            var p64 = Probed(m, x, weights, allSteps: true);
            var p32 = Probed(m, x.To(DType.Float32), weights.To(DType.Float32), allSteps: true);
            for (int l = 0; l < 2; l++)
            for (int t = 0; t < Steps; t++)
                Assert.Equal(p64[l].Rms(t), p32[l].Rms(t), p64[l].Rms(t) * 1e-5);
        }
    }

    [Fact]
    public void Probe_DoesNotChangeTheGradients()
    {
        foreach (var kind in Enum.GetValues<ReferenceKind>())
        {
            double[][] Grads(bool probed)
            {
                var m = Module(kind, 2, 9);
                var x = Tensor.RandN(new Generator(1), Steps, Batch, Input);
                if (probed) m.ArmGradientProbes([new RecurrentGradientProbe(), new RecurrentGradientProbe()]);
                (m.Forward(x, null).Output * Tensor.RandN(new Generator(2), Steps, Batch, Hidden)).Sum().Backward();
                return m.Parameters().Select(p => p.Grad!.ToDoubleArray()).ToArray();
            }
            var plain = Grads(false);
            var probed = Grads(true);
            for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], probed[i]);
        }
    }

    [Fact]
    public void Probe_CountsNonFiniteSteps_AndIsUsedForOnePassOnly()
    {
        var m = Module(ReferenceKind.Gru, 1, 2);
        var x = Tensor.RandN(new Generator(1), Steps, Batch, Input);
        var r = Tensor.RandN(new Generator(2), Steps, Batch, Hidden).ToArray();
        r[3 * Batch * Hidden + 4] = float.NaN; // one element of dL/dh_3's own term
        var weights = Tensor.FromArray(r, Steps, Batch, Hidden);
        var probe = new RecurrentGradientProbe();
        m.ArmGradientProbes([probe]);
        (m.Forward(x, null).Output * weights).Sum().Backward();
        Assert.Equal(1, probe.NonFinite[3]);
        Assert.True(double.IsNaN(probe.SumOfSquares[3]));
        for (int t = 4; t < Steps; t++) Assert.Equal(0, probe.NonFinite[t]);
        for (int t = 0; t < 3; t++) Assert.True(probe.NonFinite[t] > 0); // the NaN spreads back through W_hh
        // the next pass runs unarmed: the probe keeps the first recording
        probe.Reset();
        (m.Forward(x, null).Output * weights).Sum().Backward();
        Assert.False(probe.Recorded);
        Assert.Throws<ArgumentException>(() => m.ArmGradientProbes([probe, probe]));
    }
}
