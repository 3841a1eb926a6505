using System.Text.Json.Nodes;
using GradFlow.Autograd;
using GradFlow.Data;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Recurrent;

/// <summary>Recurrent model specs, their models, the sequence data sources and the trainer on regression data.</summary>
public class RecurrentSpecTests
{
    [Theory]
    [InlineData("lstm 2-64-1", RecurrentCellKind.Lstm, 2, 64, 1, 1)]
    [InlineData("gru 28-128x2-10", RecurrentCellKind.Gru, 28, 128, 2, 10)]
    [InlineData("rnn 3-16x3-4", RecurrentCellKind.RnnTanh, 3, 16, 3, 4)]
    [InlineData("rnn 3-16-4 act=relu", RecurrentCellKind.RnnRelu, 3, 16, 1, 4)]
    public void Parse_ReadsKindSizesAndLayers(string text, RecurrentCellKind cell, int input, int hidden, int layers, int output)
    {
        var spec = Assert.IsType<RecurrentSpec>(NetworkSpecs.ParseAny(text));
        Assert.Equal((cell, input, hidden, layers, output), (spec.Cell, spec.Input, spec.Hidden, spec.Layers, spec.Output));
        Assert.Equal(RecurrentInitKind.Default, spec.Init.Kind);
        Assert.Null(spec.ForgetBias);
    }

    [Theory]
    [InlineData("lstm 2-64-1 init=orthogonal forget-bias=1")]
    [InlineData("rnn 2-64x2-1 act=relu init=identity:0.9")]
    [InlineData("rnn 2-64-1 act=tanh init=default:3")]
    [InlineData("gru 5-8-3 init=normal:0.25")]
    public void TextAndJson_RoundTrip(string text)
    {
        var spec = RecurrentSpec.Parse(text);
        Assert.Equal(spec, RecurrentSpec.Parse(spec.ToString()));
        Assert.Equal(spec, NetworkSpecs.ParseAny(spec.ToJson().ToJsonString()));
    }

    [Theory]
    [InlineData("lstm 2-64-1 act=relu", "'act' applies to rnn only")]
    [InlineData("gru 2-64-1 forget-bias=1", "'forget-bias' applies to lstm only")]
    [InlineData("rnn 2-64-1 init=glorot", "unknown recurrent init 'glorot'")]
    [InlineData("rnn 2-64-1 init=normal", "needs its standard deviation")]
    [InlineData("rnn 2-64-1 act=sigmoid", "rnn activation 'sigmoid'")]
    [InlineData("lstm 2-64", "must be IN-HIDDEN-OUT")]
    [InlineData("lstm 2-64-0", "output size '0'")]
    [InlineData("lstm 2-64-1 depth=3", "unknown option 'depth'")]
    [InlineData("cnn 2-64-1", "expected a kind first")]
    public void Parse_BadText_NamesTheToken(string text, string message)
    {
        var e = Assert.Throws<FormatException>(() => NetworkSpecs.ParseAny(text));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void FromJson_BadField_NamesIt()
    {
        var e = Assert.Throws<FormatException>(() => NetworkSpecs.ParseAny("""{"kind":"lstm","input":2,"hidden":0,"output":1}"""));
        Assert.Contains("'hidden'", e.Message);
        e = Assert.Throws<FormatException>(() => NetworkSpecs.ParseAny("""{"kind":"gru","input":2,"hidden":4,"output":1,"forgetBias":1}"""));
        Assert.Contains("forgetBias", e.Message);
        // a misspelt field was ignored: an LSTM without the forget-gate bias it was given
        e = Assert.Throws<FormatException>(() => NetworkSpecs.ParseAny("""{"kind":"lstm","input":2,"hidden":4,"output":1,"forgetbias":1}"""));
        Assert.Contains("unknown field 'forgetbias'", e.Message);
    }

    [Fact]
    public void Build_DefaultScaled_IsTheDefaultTimesTheScale()
    {
        var plain = RecurrentSpec.Parse("rnn 2-16-1").Build(new Generator(5));
        var scaled = RecurrentSpec.Parse("rnn 2-16-1 init=default:3").Build(new Generator(5));
        var a = plain.Recurrent.WeightHh(0).Data.ToDoubleArray();
        var b = scaled.Recurrent.WeightHh(0).Data.ToDoubleArray();
        for (int i = 0; i < a.Length; i++) Assert.Equal(3 * a[i], b[i], 1e-6);
        Assert.Equal(plain.Recurrent.WeightIh(0).Data.ToDoubleArray(), scaled.Recurrent.WeightIh(0).Data.ToDoubleArray());
    }

    [Fact]
    public void Build_Orthogonal_EveryGateBlockHasOrthogonalColumnsTimesTheGain()
    {
        var model = RecurrentSpec.Parse("gru 3-8x2-1 init=orthogonal:1.5").Build(new Generator(2));
        for (int l = 0; l < 2; l++)
        {
            var w = model.Recurrent.WeightHh(l).Data.ToDoubleArray(); // [3H, H]
            for (int g = 0; g < 3; g++)
                for (int i = 0; i < 8; i++)
                    for (int j = 0; j < 8; j++)
                    {
                        double dot = 0;
                        for (int r = 0; r < 8; r++) dot += w[(g * 8 + r) * 8 + i] * w[(g * 8 + r) * 8 + j];
                        Assert.Equal(i == j ? 2.25 : 0, dot, 1e-5);
                    }
        }
    }

    [Fact]
    public void Build_Identity_IsTheIrnn()
    {
        var spec = RecurrentSpec.Parse("rnn 2-6-1 act=relu init=identity");
        var model = spec.Build(new Generator(1));
        Assert.Equal(RnnNonlinearity.Relu, ((Rnn)model.Recurrent).Nonlinearity);
        var w = model.Recurrent.WeightHh(0).Data.ToDoubleArray();
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) Assert.Equal(i == j ? 1.0 : 0.0, w[i * 6 + j]);
        Assert.All(model.Recurrent.BiasIh(0)!.Data.ToDoubleArray(), v => Assert.Equal(0.0, v));
        Assert.All(model.Recurrent.BiasHh(0)!.Data.ToDoubleArray(), v => Assert.Equal(0.0, v));
        Assert.All(model.Recurrent.WeightIh(0).Data.ToDoubleArray(), v => Assert.True(Math.Abs(v) < 0.01, $"W_ih element {v}"));
    }

    [Fact]
    public void Build_ForgetBias_SetsTheForgetSliceOfTheSumOfBiases()
    {
        var model = RecurrentSpec.Parse("lstm 2-4-1 forget-bias=2").Build(new Generator(1));
        var bi = model.Recurrent.BiasIh(0)!.Data.ToDoubleArray();
        var bh = model.Recurrent.BiasHh(0)!.Data.ToDoubleArray();
        for (int k = 4; k < 8; k++) Assert.Equal(2.0, bi[k] + bh[k], 1e-7);
        Assert.Equal(1, model.Head.OutFeatures);
    }

    [Fact]
    public void DataSources_Adding_HasTheSequenceLengthAndFreshTestSet_WhateverTheBudget()
    {
        var config = new TrainingConfig { Model = "lstm 2-8-1", Data = "adding", SequenceLength = 30, MaxSteps = 10, BatchSize = 16 };
        var data = DataSources.Load(config, config.Description());
        Assert.Equal([DataSources.AddingTrainSteps / 30, 30, 2], data.Train.Inputs.Shape.ToArray());
        Assert.Equal([2000, 30, 2], data.Test.Inputs.Shape.ToArray());
        Assert.False(data.Train.IsClassification);
        // the test set is the same for every run seed and is not the start of the training set
        var other = DataSources.Load(config with { Seed = 9 }, config.Description());
        // a short trial and a full run of the same seed train on the same sequences
        var longer = DataSources.Load(config with { MaxSteps = 4000 }, config.Description());
        Assert.Equal(data.Train.Subset(0, 10).Inputs.ToDoubleArray(), longer.Train.Subset(0, 10).Inputs.ToDoubleArray());
        Assert.Equal(data.Test.Inputs.ToDoubleArray(), other.Test.Inputs.ToDoubleArray());
        Assert.NotEqual(data.Train.Subset(0, 1).Inputs.ToDoubleArray(), data.Test.Subset(0, 1).Inputs.ToDoubleArray());
    }

    [Theory]
    [InlineData("lstm 3-8-1", "adding", "2 features per time step but the model expects 3")]
    [InlineData("lstm 2-8-2", "adding", "1 regression target per example but the model has 2 outputs")]
    [InlineData("lstm 2-8-4", "teacher", "not a sequence data set")]
    public void DataSources_SizesThatDoNotFit_AreNamed(string model, string data, string message)
    {
        var config = new TrainingConfig { Model = model, Data = data, SequenceLength = 10, MaxSteps = 2 };
        var e = Assert.Throws<ArgumentException>(() => DataSources.Load(config, NetworkDescription.Parse(model)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Trainer_OnTheAddingProblem_MinimisesMseAndReportsTheTestMseOfTheModel()
    {
        var config = new TrainingConfig
        {
            Model = "gru 2-16-1", Data = "adding", SequenceLength = 10, Optimizer = OptimizerKind.Adam, LearningRate = 1e-2,
            BatchSize = 32, Epochs = 1, MaxSteps = 400, ClipNorm = 1, Seed = 3, Threads = 1,
        };
        var trainer = new Trainer(config);
        Assert.True(trainer.IsRegression);
        var result = trainer.Run(cancellation: TestContext.Current.CancellationToken);
        var last = result.Epochs[^1];
        Assert.True(double.IsNaN(last.TestAccuracy) && double.IsNaN(last.TrainAccuracy));
        Assert.True(last.TestLoss < 0.2 * SequenceTasks.AddingBaselineMse, $"test MSE {last.TestLoss}");
        // the reported test loss is the mean squared error of the model on the test set, computed here example by example
        double sum = 0;
        using (GradMode.NoGrad())
        {
            var test = trainer.Data.Test;
            var prediction = trainer.Model.Forward(test.Inputs).ToDoubleArray();
            var target = test.Targets!.ToDoubleArray();
            for (int i = 0; i < target.Length; i++) sum += (prediction[i] - target[i]) * (prediction[i] - target[i]);
            Assert.Equal(sum / target.Length, last.TestLoss, 1e-5);
        }
    }

    [Theory]
    [InlineData("rnn 2-64-1", "cell:gru", "gru 2-64-1 init=default")]
    [InlineData("rnn 2-64-1", "cell:lstm", "lstm 2-64-1 init=default forget-bias=1")]
    [InlineData("rnn 2-64-1 init=orthogonal", "cell:lstm", "lstm 2-64-1 init=orthogonal forget-bias=1")]
    [InlineData("rnn 2-64-1", "init:identity", "rnn 2-64-1 act=relu init=identity")]
    [InlineData("gru 2-64-1", "init:orthogonal", "gru 2-64-1 init=orthogonal")]
    [InlineData("lstm 2-64-1", "forget-bias:1", "lstm 2-64-1 init=default forget-bias=1")]
    public void Remedies_ChangeTheRecurrentSpec(string model, string remedy, string expected)
    {
        var config = new TrainingConfig { Model = model, Data = "adding" };
        Assert.Equal(expected, Remedies.Apply(remedy, config).Model);
    }

    [Theory]
    [InlineData("gru 2-64-1", "forget-bias:1", "forget-bias applies to an LSTM")]
    [InlineData("lstm 2-64-1", "init:identity", "for a vanilla RNN")]
    [InlineData("rnn 2-64-1", "norm:batch", "does not apply to a recurrent network")]
    [InlineData("rnn 2-64-1", "cell:lstm@1-1", "every layer")]
    public void Remedies_ThatDoNotApply_SaySo(string model, string remedy, string message)
    {
        var e = Assert.Throws<FormatException>(() => Remedies.Apply(remedy, new TrainingConfig { Model = model, Data = "adding" }));
        Assert.Contains(message, e.Message);
    }
}
