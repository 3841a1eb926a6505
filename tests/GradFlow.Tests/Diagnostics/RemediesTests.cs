using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

public class RemediesTests
{
    private static readonly TrainingConfig Base = new() { Model = "mlp 10-8x4-2 act=sigmoid init=xavier-uniform", LearningRate = 0.01 };

    private static ModelSpec SpecOf(TrainingConfig c) => ModelSpec.ParseAny(c.Model);

    [Fact]
    public void Activation_OnRange_ChangesOnlyThoseLayersWithMatchedInit()
    {
        var s = SpecOf(Remedies.Apply("activation:relu@2-3", Base));
        Assert.Equal([Activation.Sigmoid, Activation.Relu, Activation.Relu, Activation.Sigmoid], s.Hidden.Select(h => h.Activation));
        Assert.Equal(InitKind.KaimingNormal, s.Hidden[1].Init.Kind);
        Assert.Equal(InitKind.XavierUniform, s.Hidden[0].Init.Kind);
    }

    [Fact]
    public void NormResidualInit_ApplyToAllHiddenLayersWithoutRange()
    {
        Assert.All(SpecOf(Remedies.Apply("norm:batch", Base)).Hidden, h => Assert.Equal(NormKind.Batch, h.Norm));
        Assert.All(SpecOf(Remedies.Apply("residual:zero", Base)).Hidden, h => Assert.Equal(ResidualKind.ZeroInit, h.Residual));
        Assert.All(SpecOf(Remedies.Apply("init:orthogonal", Base)).Hidden, h => Assert.Equal(InitKind.Orthogonal, h.Init.Kind));
        var lsuv = SpecOf(Remedies.Apply("init:lsuv", Base));
        Assert.Equal(InitKind.Lsuv, lsuv.OutputInit.Kind);
    }

    [Fact]
    public void TrainingSettings_ClipLearningRateOptimizer()
    {
        Assert.Equal(1.0, Remedies.Apply("clip:1", Base).ClipNorm);
        Assert.Equal(0.001, Remedies.Apply("lr:0.1", Base).LearningRate, 1e-15);
        var adam = Remedies.Apply("optimizer:adam", Base with { Optimizer = OptimizerKind.Sgd });
        Assert.Equal(OptimizerKind.Adam, adam.Optimizer);
        Assert.Equal(Base.Model, Remedies.Apply("clip:1", Base).Model);
    }

    [Theory]
    [InlineData("activation", "expected kind:argument")]
    [InlineData("activation:swishy", "unknown activation 'swishy'")]
    [InlineData("norm:group", "unknown norm 'group'")]
    [InlineData("lr:-1", "not a positive number")]
    [InlineData("teleport:now", "unknown remedy kind 'teleport'")]
    [InlineData("activation:relu@3-1", "bad layer range")]
    public void Apply_BadId_ThrowsNamingIt(string id, string expected)
    {
        var e = Assert.Throws<FormatException>(() => Remedies.Apply(id, Base));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Id_FullRange_HasNoRange()
    {
        Assert.Equal("norm:batch", Remedies.Id("norm", "batch", 1, 4, 4));
        Assert.Equal("norm:batch@2-3", Remedies.Id("norm", "batch", 2, 3, 4));
    }
}
