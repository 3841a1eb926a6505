using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Diagnostics;

/// <summary>The monitor on transformer layers: each block's signal, its heads' attention entropy, and their JSON form.</summary>
public class TransformerMonitorTests
{
    private const int B = 3, T = 5, Vocab = 7;

    private static GradFlow.Nn.Network.Network Lm(string spec = "transformer vocab=7 d=8 heads=2 layers=2 ctx=5") =>
        NetworkBuilder.Build(NetworkDescription.Parse(spec), new Generator(11));

    private static Tensor Tokens() => Tensor.FromArray(Enumerable.Range(0, B * T).Select(i => (double)((i * 5 + 3) % Vocab)).ToArray(), [B, T]).To(DType.Float32);

    private static TransformerEncoderLayer Layer(GradFlow.Nn.Network.Network net, int i) => (TransformerEncoderLayer)net.NamedModules().First(m => m.Name == $"layers.{i}").Module;

    [Fact]
    public void Sample_BlockSignal_IsTheRmsOfTheGradientAtTheBlocksOutput()
    {
        var net = Lm();
        using var monitor = new GradientMonitor(net);
        Tensor? out1 = null;
        using var hook = Layer(net, 1).RegisterForwardHook((_, _, y) => (out1 = y).RetainGrad());
        monitor.BeginSample(0);
        var y = net.Forward(Tokens());
        (y * y).Sum().Backward();
        monitor.RecordGradients(0);
        monitor.EndSample();
        var g = out1!.Grad!.ToDoubleArray();
        double expected = Math.Sqrt(g.Sum(v => v * v) / g.Length);
        var blocks = monitor.Last!.Blocks!;
        Assert.Equal(2, blocks.Length);
        Assert.Equal([1, 3], blocks.Select(b => b.AttentionLayer));
        Assert.Equal(expected, blocks[1].BackpropagatedSignalRms, expected * 1e-6);
        Assert.True(blocks[0].BackpropagatedSignalRms > 0);
    }

    [Fact]
    public void Sample_UniformAttention_HasTheEntropyOfItsVisibleKeys()
    {
        var net = Lm();
        // zero queries and keys: every query spreads its attention evenly over the keys it sees (causal: 1..T)
        for (int i = 0; i < 2; i++)
        {
            var attn = Layer(net, i).SelfAttn;
            Assert.True(attn.Causal);
            using (GradMode.NoGrad())
            {
                var w = attn.InProjWeight.Data.Span<float>();
                w[..(2 * 8 * 8)].Clear();
                attn.InProjBias.Data.Span<float>()[..(2 * 8)].Clear();
            }
        }
        using var monitor = new GradientMonitor(net);
        monitor.BeginSample(0);
        net.Forward(Tokens()).Sum().Backward();
        monitor.RecordGradients(0);
        monitor.EndSample();
        double expected = Enumerable.Range(1, T).Average(k => Math.Log(k));
        foreach (var b in monitor.Last!.Blocks!)
        {
            Assert.Equal(Math.Log(T), b.MaxEntropy, 12);
            Assert.Equal(2, b.AttentionEntropy.Length);
            Assert.All(b.AttentionEntropy, e => Assert.Equal(expected, e, 5));
        }
    }

    [Fact]
    public void Entropy_IsComputedOnSampledStepsOnly()
    {
        var net = Lm();
        using var monitor = new GradientMonitor(net);
        var attn = Layer(net, 0).SelfAttn;
        Assert.Null(attn.EntropyObserver);
        monitor.BeginSample(0);
        Assert.NotNull(attn.EntropyObserver);
        net.Forward(Tokens()).Sum().Backward();
        monitor.RecordGradients(0);
        monitor.EndSample();
        Assert.Null(attn.EntropyObserver);
        Assert.All(monitor.Last!.Blocks![0].AttentionEntropy, e => Assert.InRange(e, 0, Math.Log(T)));
    }

    [Fact]
    public void MetricsLine_Blocks_RoundTrip()
    {
        var net = Lm();
        using var monitor = new GradientMonitor(net);
        monitor.BeginSample(4);
        net.Forward(Tokens()).Sum().Backward();
        monitor.RecordGradients(1.5);
        monitor.EndSample();
        var line = MonitorLog.ToJsonLine(monitor.Last!);
        Assert.Contains("\"blocks\":[{\"block\":1,\"attention_layer\":1,", line, StringComparison.Ordinal);
        var back = MonitorLog.Parse(line).Blocks!;
        var original = monitor.Last!.Blocks!;
        Assert.Equal(original.Length, back.Length);
        for (int k = 0; k < back.Length; k++)
        {
            Assert.Equal(original[k].BackpropagatedSignalRms, back[k].BackpropagatedSignalRms);
            Assert.Equal(original[k].MaxEntropy, back[k].MaxEntropy);
            Assert.Equal(original[k].AttentionEntropy, back[k].AttentionEntropy);
        }
    }
}
