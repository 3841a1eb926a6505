using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

public class RemediesTests
{
    private static readonly TrainingConfig Base = new() { Model = "mlp 10-8x4-2 act=sigmoid init=xavier-uniform", LearningRate = 0.01 };

    private static ModelSpec SpecOf(TrainingConfig c) => ModelSpec.ParseAny(c.Model);

    /// <summary>
    /// A remedy that rewrites a spec with what it already had re-renders the model string in full, so the configs differ as records
    /// while the model is the same: <see cref="Remedies.Changes"/> compares the descriptions, and every other field as is.
    /// </summary>
    [Theory]
    [InlineData("mlp 10-8x4-2 act=relu init=he-normal", "init:he", false)]
    [InlineData("mlp 10-8x4-2 act=relu init=xavier-uniform", "init:he", true)]
    [InlineData("mlp 10-8x4-2 act=relu init=he-normal norm=batch", "norm:batch", false)]
    [InlineData("mlp 10-8x4-2 act=relu init=he-normal", "norm:batch", true)]
    [InlineData("mlp 10-8x4-2 act=relu init=he-normal", "lr:0.1", true)]
    [InlineData("mlp 10-8x4-2 act=relu init=he-normal", "clip:1", true)]
    [InlineData("lstm 1-16-1", "cell:lstm", true)] // an LSTM remedy also sets the forget-gate bias to 1
    [InlineData("lstm 1-16-1 forget-bias=1", "cell:lstm", false)]
    [InlineData("rnn 1-16-1", "cell:lstm", true)]
    public void Changes_ComparesTheModelByItsDescription(string model, string remedy, bool changes)
    {
        var config = Base with { Model = model, Data = model.StartsWith("mlp", StringComparison.Ordinal) ? "teacher" : "adding" };
        var after = Remedies.Apply(remedy, config);
        Assert.Equal(changes, Remedies.Changes(config, after));
        Assert.False(Remedies.Changes(config, config));
    }

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
        // Nesterov is SGD's: a switch away from SGD drops it (the config would not validate), a switch to SGD keeps it
        var nesterov = Base with { Optimizer = OptimizerKind.Sgd, Momentum = 0.9, Nesterov = true };
        var switched = Remedies.Apply("optimizer:adam", nesterov);
        Assert.False(switched.Nesterov);
        switched.Validate();
        Assert.True(Remedies.Apply("optimizer:sgd=0.1", nesterov).Nesterov);
    }

    [Theory]
    [InlineData(OptimizerKind.AdamW, 0.01, OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.Sgd, 5e-4, OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.RmsProp, 1e-4, OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.Adam, 0.01, OptimizerKind.Adam)]
    [InlineData(OptimizerKind.Sgd, 0.0, OptimizerKind.Adam)]
    [InlineData(OptimizerKind.AdamW, 0.0, OptimizerKind.Adam)]
    public void SwitchToAdam_KeepsWeightDecayDecoupled(OptimizerKind from, double decay, OptimizerKind expected)
    {
        var c = Remedies.Apply("optimizer:adam=0.01", Base with { Optimizer = from, WeightDecay = decay });
        Assert.Equal(expected, c.Optimizer);
        Assert.Equal(decay, c.WeightDecay);
        Assert.Equal(0.01, c.LearningRate);
    }

    [Fact]
    public void Recipe_Mlp_ReluHeZeroStartedResidualEverywhere_KeepsNormsWidthsAndClipsAtOne()
    {
        var config = Base with { Model = "mlp 10-8-16-8-2 act=tanh init=normal:0.05 norm=layer" };
        var recipe = Remedies.Apply("recipe:standard", config);
        var s = SpecOf(recipe);
        Assert.Equal([8, 16, 8], s.Hidden.Select(h => h.Width));
        Assert.All(s.Hidden, h =>
        {
            Assert.Equal(Activation.Relu, h.Activation);
            Assert.Equal(InitKind.KaimingNormal, h.Init.Kind);
            Assert.Equal(ResidualKind.ZeroInit, h.Residual);
            Assert.Equal(NormKind.Layer, h.Norm);
        });
        Assert.Equal(1.0, recipe.ClipNorm);
        Assert.Equal(0.25, Remedies.Apply("recipe:standard", config with { ClipNorm = 0.25 }).ClipNorm);
        Assert.Equal(config.Optimizer, recipe.Optimizer);
        Assert.Equal(config.LearningRate, recipe.LearningRate);
        // one hidden layer: nothing to stack, no residual
        Assert.Equal(ResidualKind.None, SpecOf(Remedies.Apply("recipe:standard", Base with { Model = "mlp 10-8-2 act=tanh" })).Hidden[0].Residual);
    }

    [Fact]
    public void Recipe_Recurrent_SwitchesToAGru_KeepingSizes()
    {
        var config = Base with { Model = "rnn 2-32x2-1 init=orthogonal", Data = "adding" };
        var recipe = Remedies.Apply("recipe:standard", config);
        var s = RecurrentSpec.Parse(recipe.Model);
        Assert.Equal((RecurrentCellKind.Gru, 2, 32, 2, 1), (s.Cell, s.Input, s.Hidden, s.Layers, s.Output));
        Assert.Equal(1.0, recipe.ClipNorm);
    }

    [Fact]
    public void Combination_AppliesLeftToRight_AndOptimizerTakesALearningRate()
    {
        var c = Remedies.Apply("recipe:standard + optimizer:adam=0.01 + lr:0.5", Base with { Optimizer = OptimizerKind.Sgd });
        Assert.Equal(OptimizerKind.Adam, c.Optimizer);
        Assert.Equal(0.005, c.LearningRate, 1e-15);
        Assert.All(SpecOf(c).Hidden, h => Assert.Equal(Activation.Relu, h.Activation));
        Assert.Contains("empty part", Assert.Throws<FormatException>(() => Remedies.Apply("clip:1 + ", Base)).Message);
        Assert.Contains("'-3' is not a positive number", Assert.Throws<FormatException>(() => Remedies.Apply("optimizer:adam=-3", Base)).Message);
        // an optimizer by its name only, as configs and the command line take it (Enum.TryParse read "2" as AdamW)
        Assert.Equal(OptimizerKind.AdamW, Remedies.Apply("optimizer:adam-w", Base).Optimizer);
        Assert.Contains("unknown optimizer '2' (sgd, adam, adamw, rmsprop, adagrad)", Assert.Throws<FormatException>(() => Remedies.Apply("optimizer:2", Base)).Message);
    }

    [Fact]
    public void Recipe_ForADiagnosis_SwitchesTheOptimiserOnlyWhenTheLossStalledOrTheLearningRateIsNamed()
    {
        var sgd = Base with { Optimizer = OptimizerKind.Sgd, Momentum = 0.9 };
        Problem P(ProblemKind kind, params Cause[] causes) => new() { Kind = kind, Severity = 1, Layers = [], Steps = [], Summary = "", Evidence = new Dictionary<string, double>(), Causes = causes };
        Diagnosis D(params Problem[] problems) => new(problems, 10, 1);
        Assert.Null(Remedies.Recipe(D(), sgd));
        Assert.Equal("recipe:standard", Remedies.Recipe(D(P(ProblemKind.VanishingGradient)), sgd)!.Id);
        Assert.Equal("recipe:standard + optimizer:adam", Remedies.Recipe(D(P(ProblemKind.VanishingGradient), P(ProblemKind.StalledLoss)), sgd)!.Id);
        Assert.Equal("recipe:standard + optimizer:adam",
            Remedies.Recipe(D(P(ProblemKind.ExplodingGradient, new Cause("learning rate too large for the gradient scale", 2, ""))), sgd)!.Id);
        var rnn = sgd with { Model = "rnn 2-16-1", Data = "adding" };
        Assert.Equal("recipe:standard + optimizer:adam=0.01", Remedies.Recipe(D(P(ProblemKind.StalledLoss)), rnn)!.Id);
        // a conv net, with a BatchNorm after every conv, at 1e-2 too (an MLP's 1e-3 repaired 4 of 16 broken conv nets, 1e-2 10)
        var conv = sgd with { Model = "cnn 1x28x28-c8s2-c8-p-c16-gap-10 act=tanh norm=none", Data = "fashion-mnist" };
        var convRecipe = Remedies.Recipe(D(P(ProblemKind.StalledLoss)), conv)!;
        Assert.Equal("recipe:standard + optimizer:adam=0.01", convRecipe.Id);
        Assert.Contains("BatchNorm after every conv", convRecipe.Description);
        // a config that already follows the recipe has none
        var done = Remedies.Apply("recipe:standard + optimizer:adam", sgd);
        Assert.Null(Remedies.Recipe(D(P(ProblemKind.StalledLoss)), done));
        // a run that ends at chance within its whole budget is also trained longer, even when it already follows the recipe
        var shortRun = new Cause(Diagnoser.ShortRunCause, 2, "");
        Assert.Equal("recipe:standard + optimizer:adam + epochs:5", Remedies.Recipe(D(P(ProblemKind.StalledLoss, shortRun)), sgd)!.Id);
        var longer = Remedies.Recipe(D(P(ProblemKind.StalledLoss, shortRun)), done)!;
        Assert.Equal("recipe:standard + epochs:5", longer.Id);
        Assert.Contains("trained 5 times longer", longer.Description);
    }

    [Fact]
    public void Epochs_MultipliesTheEpochsAndAStepLimit()
    {
        Assert.Equal(50, Remedies.Apply("epochs:5", Base).Epochs);
        Assert.Null(Remedies.Apply("epochs:5", Base).MaxSteps);
        var limited = Remedies.Apply("epochs:3", Base with { Epochs = 4, MaxSteps = 70 });
        Assert.Equal((12, 210), (limited.Epochs, limited.MaxSteps));
        Assert.Equal(Base.Model, limited.Model);
    }

    [Theory]
    [InlineData("recipe:fancy", "unknown recipe 'fancy'")]
    [InlineData("recipe:standard@1-2", "no @range")]
    [InlineData("activation", "expected kind:argument")]
    [InlineData("activation:swishy", "unknown activation 'swishy'")]
    [InlineData("norm:group", "unknown norm 'group'")]
    [InlineData("lr:-1", "not a positive number")]
    [InlineData("epochs:1", "not a whole factor of at least 2")]
    [InlineData("epochs:2.5", "not a whole factor of at least 2")]
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
