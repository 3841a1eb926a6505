using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Recurrent;

/// <summary>
/// <see cref="SequenceRegressor"/> and <see cref="AddingProblem"/>: the model is the recurrent layer's
/// last h_n through Linear(H, 1); LSTM and GRU learn short adding problems far below the 1/6 baseline;
/// runs are bit-for-bit repeatable; a tanh RNN started with a large recurrent matrix has exploding
/// gradient norms; a non-finite loss stops the run; bad options are named. The experiment of the issue
/// (T = 50 and T = 100, one layer of 64, clipping at 1) is in the Experiment tests, which the suite leaves out
/// (<c>bash scripts/adding-problem.sh</c> runs them).
/// </summary>
public class AddingProblemTests
{
    [Theory]
    [InlineData(RecurrentCellKind.RnnTanh, true)]
    [InlineData(RecurrentCellKind.Lstm, false)]
    [InlineData(RecurrentCellKind.Gru, true)]
    public void SequenceRegressor_Forward_IsTheHeadOfTheLastLayersFinalHiddenState(RecurrentCellKind cell, bool batchFirst)
    {
        // The same generator order (recurrent layer first, then the head) gives the same parameters, so
        // the model must equal the two modules composed by hand, bit for bit.
        var model = new SequenceRegressor(cell, inputSize: 3, hiddenSize: 5, new Generator(9), numLayers: 2, batchFirst: batchFirst);
        var g = new Generator(9);
        RecurrentLayer rnn = cell switch
        {
            RecurrentCellKind.Lstm => new Lstm(3, 5, g, 2, batchFirst: batchFirst),
            RecurrentCellKind.Gru => new Gru(3, 5, g, 2, batchFirst: batchFirst),
            _ => new Rnn(3, 5, g, 2, batchFirst: batchFirst),
        };
        var head = new Linear(5, 1, g);
        var x = batchFirst ? Tensor.RandN(new Generator(1), 4, 7, 3) : Tensor.RandN(new Generator(1), 7, 4, 3);

        var y = model.Forward(x);

        var h = rnn.Forward(x, null).State.H;                       // [2, 4, 5]
        var expected = head.Forward(h.Narrow(0, 1, 1).Reshape(4, 5));
        Assert.Equal([4, 1], y.Shape.ToArray());
        Assert.Equal(expected.ToArray(), y.ToArray());
        Assert.Equal(
            ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
             "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1", "head.weight", "head.bias"],
            model.StateDict().Select(kv => kv.Key));
    }

    [Theory]
    [InlineData(RecurrentCellKind.Lstm)]
    [InlineData(RecurrentCellKind.Gru)]
    public void Train_LstmAndGruAtLength20_FallFarBelowTheBaseline(RecurrentCellKind cell)
    {
        // Measured: LSTM at 0.0043 after 500 steps, GRU at 0.0069 after 200 (both start at ≈ 0.17).
        var result = AddingProblem.Train(new AddingProblemOptions
        {
            Cell = cell, Length = 20, HiddenSize = 32, LearningRate = 1e-2, Steps = 800, EvalEvery = 50, TestSize = 500,
            TargetTestMse = 0.01, Seed = 0,
        });
        Assert.InRange(result.Curve[0].TestMse, 0.1, 0.3);     // a plateau near 1/6 first
        Assert.Equal(AddingProblemStop.ReachedTarget, result.Stop);
        Assert.True(result.FinalTestMse < 0.05,
            $"{cell}: test MSE {result.FinalTestMse} after {result.Steps} steps (baseline {SequenceTasks.AddingBaselineMse:F3})");
        Assert.False(result.Diverged);
        Assert.Equal(result.Steps, result.Curve[^1].Step);
    }

    [Fact]
    public void Train_SameOptions_SameCurveBitForBit_OtherSeed_OtherCurve()
    {
        var options = new AddingProblemOptions { Cell = RecurrentCellKind.Gru, Length = 10, HiddenSize = 16, Steps = 60, EvalEvery = 20, TestSize = 200, ClipNorm = 1 };
        static double[] Numbers(AddingProblemResult r) => r.Curve.SelectMany(p => new[] { p.Step, p.TrainLoss, p.TestMse, p.GradientNorm, p.MaxGradientNorm }).ToArray();

        var first = Numbers(AddingProblem.Train(options));
        var second = Numbers(AddingProblem.Train(options));
        var other = Numbers(AddingProblem.Train(options with { Seed = 1 }));

        Assert.Equal(3 * 5, first.Length);
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Train_TanhRnnWithSpectralRadiusAbout3_GradientNormExplodes_AndClippingKeepsTheRunFinite()
    {
        // W_hh ~ U(±1/√H)·5 has spectral radius ≈ 5·√(H·1/(3H)) ≈ 2.9 (circular law). Measured with
        // H = 32, T = 20, 300 steps: largest pre-clip norm 555 against ≈ 3 for the default start. Adam's
        // step is bounded by about lr per coordinate whatever the gradient's scale, so neither run
        // overflows; with clipping the applied gradient has norm ≤ 1 and the run must stay finite.
        var options = new AddingProblemOptions { Cell = RecurrentCellKind.RnnTanh, Length = 20, HiddenSize = 32, Steps = 300, EvalEvery = 50, TestSize = 200 };
        static void Scale(GradFlow.Nn.Network.Network m) => ((RecurrentLayer)m.NamedChildren().Single(c => c.Name == "rnn").Module).WeightHh(0).Data.MulInPlace(5);

        var normal = AddingProblem.Train(options);
        var large = AddingProblem.Train(options with { Initialise = Scale });
        var clipped = AddingProblem.Train(options with { Initialise = Scale, ClipNorm = 1 });

        Assert.True(normal.MaxGradientNorm < 10, $"default start: largest gradient norm {normal.MaxGradientNorm}");
        Assert.True(!double.IsFinite(large.MaxGradientNorm) || large.MaxGradientNorm > 30 * normal.MaxGradientNorm,
            $"spectral radius ≈ 3: largest gradient norm {large.MaxGradientNorm} against {normal.MaxGradientNorm} from the default start");
        Assert.True(clipped.MaxGradientNorm > 30 * normal.MaxGradientNorm, $"clipping acts after the norm is taken: {clipped.MaxGradientNorm}");
        Assert.False(clipped.Diverged, clipped.Message);
        Assert.All(clipped.Curve, p => Assert.True(double.IsFinite(p.TrainLoss) && double.IsFinite(p.TestMse), $"step {p.Step}: {p}"));
    }

    [Fact]
    public void Train_NonFiniteLoss_StopsBeforeTheUpdate_AndSaysWhere()
    {
        var result = AddingProblem.Train(new AddingProblemOptions
        {
            Cell = RecurrentCellKind.Lstm, Length = 6, HiddenSize = 4, Steps = 50, TestSize = 10,
            Initialise = m => ((Linear)m.NamedChildren().Single(c => c.Name == "head").Module).Weight.Data.FillInPlace(double.PositiveInfinity),
        });
        Assert.True(result.Diverged);
        Assert.Equal(AddingProblemStop.NonFiniteLoss, result.Stop);
        Assert.Equal(0, result.Steps);
        Assert.Contains("loss became", result.Message);
        Assert.Contains("step 0", result.Message);
        Assert.Single(result.Curve);
    }

    [Theory]
    [InlineData("Length")]
    [InlineData("HiddenSize")]
    [InlineData("BatchSize")]
    [InlineData("Steps")]
    [InlineData("LearningRate")]
    [InlineData("ClipNorm")]
    [InlineData("TestSize")]
    [InlineData("EvalEvery")]
    [InlineData("TargetTestMse")]
    [InlineData("Cell")]
    public void Train_BadOption_ThrowsNamingIt(string option)
    {
        var good = new AddingProblemOptions();
        var bad = option switch
        {
            "Length" => good with { Length = 1 },
            "HiddenSize" => good with { HiddenSize = 0 },
            "BatchSize" => good with { BatchSize = 0 },
            "Steps" => good with { Steps = 0 },
            "LearningRate" => good with { LearningRate = double.NaN },
            "ClipNorm" => good with { ClipNorm = 0 },
            "TestSize" => good with { TestSize = 0 },
            "EvalEvery" => good with { EvalEvery = 0 },
            "TargetTestMse" => good with { TargetTestMse = -1 },
            _ => good with { Cell = (RecurrentCellKind)17 },
        };
        var e = Assert.Throws<ArgumentException>(() => AddingProblem.Train(bad));
        Assert.Equal(option, e.ParamName);
        Assert.Contains($"AddingProblemOptions.{option} must be", e.Message);
    }

    // ------------------------------------------------------------------ the experiment of the issue (Long)

    // The numbers these tests rest on are in docs/recurrent.md ("The adding problem at T = 50 and 100").

    /// <summary>One layer of 64 units, Adam, clipping at norm 1, batches of 32, 1000 fresh test sequences, PyTorch's default initialisation.</summary>
    private static AddingProblemResult RunExperiment(RecurrentCellKind cell, int length, ulong seed, int steps, double learningRate, double? target)
    {
        var result = AddingProblem.Train(new AddingProblemOptions
        {
            Cell = cell, Length = length, HiddenSize = 64, LearningRate = learningRate, ClipNorm = 1, BatchSize = 32, Steps = steps,
            EvalEvery = 250, TestSize = 1000, Seed = seed, TargetTestMse = target,
        });
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{cell} T={length} lr={learningRate} seed={seed}: test MSE {result.FinalTestMse:F4} after {result.Steps} steps, {result.Seconds:F0} s ({result.Stop})");
        return result;
    }

    [Theory]
    [Trait("Category", "Experiment")]
    [InlineData(RecurrentCellKind.Lstm, 4000, 1e-2)]
    [InlineData(RecurrentCellKind.Gru, 4000, 1e-2)]
    [InlineData(RecurrentCellKind.RnnTanh, 12000, 1e-3)]   // measured: at 1e-2 and 3e-3 it stays at the plateau; at 1e-3 below 0.05 from about step 6500
    public void Experiment_Length50_EveryCellLearns(RecurrentCellKind cell, int maxSteps, double learningRate)
    {
        var result = RunExperiment(cell, 50, seed: 0, maxSteps, learningRate, target: 0.05);
        Assert.True(result.FinalTestMse < 0.05, $"{cell} at T = 50: test MSE {result.FinalTestMse} after {result.Steps} steps");
    }

    [Fact]
    [Trait("Category", "Experiment")]
    public void Experiment_Length100_LstmAndGruLearnInTwoOfThreeSeeds_TanhRnnInNone()
    {
        int Learnt(RecurrentCellKind cell, double? target) =>
            Enumerable.Range(0, 3).Count(seed => RunExperiment(cell, 100, (ulong)seed, 4000, 1e-2, target).FinalTestMse < 0.05);
        int lstm = Learnt(RecurrentCellKind.Lstm, 0.05), gru = Learnt(RecurrentCellKind.Gru, 0.05), rnn = Learnt(RecurrentCellKind.RnnTanh, null);
        Assert.True(lstm >= 2 && gru >= 2 && rnn == 0, $"seeds below 0.05 at T = 100 within 4000 steps: LSTM {lstm}/3, GRU {gru}/3, tanh RNN {rnn}/3");
    }
}
