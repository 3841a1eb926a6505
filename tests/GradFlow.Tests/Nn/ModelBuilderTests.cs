using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Tests.Nn;

public class ModelBuilderTests
{
    [Fact]
    public void Build_PlainMlp_HasPyTorchNamesAndLayerIndex()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 6-5x2-3 act=tanh norm=batch"), new Generator(1));
        Assert.Equal(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias",
            "layers.4.weight", "layers.4.bias", "layers.6.weight", "layers.6.bias"], m.NamedParameters().Select(p => p.Name));
        Assert.Equal([1, 2, 3], m.Layers.Select(l => l.Index));
        Assert.IsType<Tanh>(m.Layers[0].Activation);
        Assert.IsType<BatchNorm1d>(m.Layers[1].Norm);
        Assert.Null(m.Layers[2].Activation);
        Assert.Equal([4, 3], m.Forward(Tensor.Zeros(4, 6)).Shape.ToArray());
    }

    [Fact]
    public void Build_SameSeed_SameWeights()
    {
        var spec = ModelSpec.Parse("mlp 8-16x3-4 act=relu init=he-normal dropout=0.1");
        var a = ModelBuilder.Build(spec, new Generator(5)).StateDict();
        var b = ModelBuilder.Build(spec, new Generator(5)).StateDict();
        Assert.Equal(a.Select(kv => kv.Value.ToArray()), b.Select(kv => kv.Value.ToArray()));
    }

    [Fact]
    public void Build_ZeroInitResidual_IsIdentityOnHiddenLayersAtStart()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 4-4x5-2 act=relu residual=zero init=he-normal"), new Generator(2));
        var x = Tensor.RandN(new Generator(3), 7, 4);
        // with α = 0 every residual block is the identity, so the net is just its output layer
        var direct = Tensor.Linear(x, m.Layers[^1].Linear.Weight, m.Layers[^1].Linear.Bias!);
        Assert.Equal(direct.ToArray(), m.Forward(x).ToArray());
        Assert.All(m.Layers.Take(5), l => Assert.IsType<Residual>(l.Output));
    }

    [Fact]
    public void Build_ResidualWithWidthChange_UsesProjection_AndGradientsFlow()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 3-6-6-2 act=tanh residual=yes"), new Generator(4));
        Assert.NotNull(((Residual)m.Layers[0].Output).Shortcut);
        Assert.Null(((Residual)m.Layers[1].Output).Shortcut);
        var loss = Losses.CrossEntropy(m.Forward(Tensor.RandN(new Generator(5), 4, 3)), IndexTensor.FromArray([0, 1, 1, 0], 4));
        loss.Backward();
        Assert.All(m.Parameters(), p => Assert.NotNull(p.Grad));
    }

    [Fact]
    public void Build_XavierWithTanh_UsesTanhGain()
    {
        var m = ModelBuilder.Build(ModelSpec.Parse("mlp 300-500-10 act=tanh init=xavier-normal"), new Generator(6));
        var w = m.Layers[0].Linear.Weight.Data.ToDoubleArray();
        double var = w.Sum(v => v * v) / w.Length;
        double expected = 25.0 / 9 * 2 / 800;
        Assert.InRange(var, expected * 0.97, expected * 1.03);
        Assert.All(m.Layers[0].Linear.Bias!.Data.ToArray(), b => Assert.Equal(0f, b));
    }

    [Fact]
    public void Build_Lsuv_GivesUnitVarianceLayerOutputs()
    {
        var spec = ModelSpec.Parse("mlp 20-64x4-5 act=tanh init=lsuv");
        var batch = Tensor.RandN(new Generator(7), 256, 20) * 3;
        var m = ModelBuilder.Build(spec, new Generator(8), batch);
        var vars = new List<double>();
        foreach (var layer in m.Layers.Take(4))
            layer.Linear.RegisterForwardHook((_, _, y) =>
            {
                var v = y.ToDoubleArray();
                double mean = v.Average();
                vars.Add(v.Sum(e => (e - mean) * (e - mean)) / v.Length);
            });
        m.Forward(batch);
        Assert.Equal(4, vars.Count);
        Assert.All(vars, v => Assert.InRange(v, 0.9, 1.1));
        Assert.Throws<ArgumentException>(() => ModelBuilder.Build(spec, new Generator(8)));
    }

    /// <summary>Every parameter of two models built from the same seed: (name, scaled, unscaled).</summary>
    private static IEnumerable<(string Name, float[] Scaled, float[] Unscaled)> Pairs(Mlp scaled, Mlp unscaled) =>
        scaled.NamedParameters().Zip(unscaled.NamedParameters(), (a, b) => (a.Name, a.Parameter.Data.ToArray(), b.Parameter.Data.ToArray()));

    [Theory]
    [InlineData("default")]
    [InlineData("lsuv")]
    public void Build_InitWithScale_WeightsAreScaleTimesUnscaledAndBiasesUnchanged(string init)
    {
        var batch = Tensor.RandN(new Generator(7), 64, 8);
        var scaled = ModelBuilder.Build(ModelSpec.Parse($"mlp 8-16x2-4 act=tanh init={init}:3 out-init={init}:3"), new Generator(5), batch);
        var unscaled = ModelBuilder.Build(ModelSpec.Parse($"mlp 8-16x2-4 act=tanh init={init} out-init={init}"), new Generator(5), batch);
        foreach (var (name, s, u) in Pairs(scaled, unscaled))
        {
            var want = name.EndsWith(".weight", StringComparison.Ordinal) ? u.Select(v => v * 3f).ToArray() : u;
            Assert.True(want.SequenceEqual(s), $"{init}:3 {name}: [{string.Join(", ", s.Take(4))}, …], expected [{string.Join(", ", want.Take(4))}, …]");
        }
    }

    [Theory]
    [InlineData("mlp 5-1")]
    [InlineData("mlp 6-5x2-3 act=tanh norm=batch")]
    [InlineData("mlp 7-4-9x2-3 act=prelu norm=layer residual=zero")]
    [InlineData("mlp 3-6-6-2 act=relu residual=yes dropout=0.1")]
    [InlineData("rnn 3-5-2")]
    [InlineData("lstm 2-4x3-1")]
    [InlineData("gru 4-3x2-2")]
    public void ParameterCount_FromSpec_EqualsTheBuiltModels(string text)
    {
        var spec = NetworkSpecs.ParseAny(text);
        var built = NetworkSpecs.Build(spec, new Generator(1), Tensor.RandN(new Generator(2), 8, spec.Input));
        Assert.Equal(built.Parameters().Sum(p => (long)p.Count), NetworkSpecs.ParameterCount(spec));
    }
}
