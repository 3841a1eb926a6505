using System.Diagnostics;
using System.Globalization;
using GradFlow.Autograd;
using GradFlow.Data;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>
/// Settings of one adding-problem run (<see cref="AddingProblem.Train"/>). The defaults are the
/// experiment of Le et al. (2015) and Arjovsky et al. (2016) as the recurrent-networks issue states
/// it: one layer of 64 units, Adam at 10⁻³, batches of 32, a test set of 1000 fresh sequences.
/// </summary>
public sealed record AddingProblemOptions
{
    /// <summary>The recurrence (default LSTM).</summary>
    public RecurrentCellKind Cell { get; init; } = RecurrentCellKind.Lstm;

    /// <summary>T, the steps per sequence (at least 2).</summary>
    public int Length { get; init; } = 50;

    /// <summary>H, the hidden units per layer.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary>Stacked recurrent layers.</summary>
    public int NumLayers { get; init; } = 1;

    /// <summary>Sequences per training batch; every step draws a new batch.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The step budget (optimiser steps).</summary>
    public int Steps { get; init; } = 1000;

    /// <summary>Adam's learning rate (β = (0.9, 0.999), ε = 10⁻⁸).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Clip the gradients to this global 2-norm before each step (<see cref="GradClip.ClipGradNorm"/>); null: no clipping.</summary>
    public double? ClipNorm { get; init; }

    /// <summary>Seeds the model's initialisation and the training batches.</summary>
    public ulong Seed { get; init; }

    /// <summary>Sequences in the test set.</summary>
    public int TestSize { get; init; } = 1000;

    /// <summary>Seed of the test set; by default one fixed set, the same for every <see cref="Seed"/>, that training never draws.</summary>
    public ulong TestSeed { get; init; } = 0x7E57_5E7_0F_ADD5UL;

    /// <summary>Evaluate (and record a curve point) every this many steps, and after the last step.</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Stop at the first evaluation whose test MSE is below this; null: run all <see cref="Steps"/>.</summary>
    public double? TargetTestMse { get; init; }

    /// <summary>Changes the freshly built model (children <c>rnn</c>, the stacked recurrent layer, and <c>head</c>, the Linear read-out) before training (a recurrent initialisation, a forget-gate bias), with grad mode off so it may change the parameters in place; null: PyTorch's defaults.</summary>
    public Action<Nn.Network.Network>? Initialise { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option that is out of range.</summary>
    public void Validate()
    {
        static void Require(bool ok, string option, string rule, object value)
        {
            if (!ok)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"AddingProblemOptions.{option} must be {rule}; got {value}."), option);
        }
        Require(Enum.IsDefined(Cell), nameof(Cell), "RnnTanh, RnnRelu, Lstm or Gru", Cell);
        Require(Length >= 2, nameof(Length), "at least 2 (one marker in each half)", Length);
        Require(HiddenSize >= 1, nameof(HiddenSize), "at least 1", HiddenSize);
        Require(NumLayers >= 1, nameof(NumLayers), "at least 1", NumLayers);
        Require(BatchSize >= 1, nameof(BatchSize), "at least 1", BatchSize);
        Require(Steps >= 1, nameof(Steps), "at least 1", Steps);
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), "positive and finite", LearningRate);
        Require(ClipNorm is null || (ClipNorm > 0 && double.IsFinite(ClipNorm.Value)), nameof(ClipNorm), "null (no clipping) or positive and finite", ClipNorm!);
        Require(TestSize >= 1, nameof(TestSize), "at least 1", TestSize);
        Require(EvalEvery >= 1, nameof(EvalEvery), "at least 1", EvalEvery);
        Require(TargetTestMse is null || TargetTestMse > 0, nameof(TargetTestMse), "null or positive", TargetTestMse!);
    }
}

/// <summary>One evaluation point of an adding-problem run.</summary>
/// <param name="Step">Optimiser steps taken so far.</param>
/// <param name="TrainLoss">Mean training MSE over the steps since the previous point.</param>
/// <param name="TestMse">MSE on the fixed test set after <paramref name="Step"/> steps.</param>
/// <param name="GradientNorm">Global 2-norm of the gradients before clipping, at the last step before this point.</param>
/// <param name="MaxGradientNorm">The largest pre-clip norm since the previous point (+∞ or NaN once any was not finite).</param>
/// <param name="Seconds">Wall time since the run started (model building and test-set generation included).</param>
public sealed record AddingProblemPoint(long Step, double TrainLoss, double TestMse, double GradientNorm, double MaxGradientNorm, double Seconds);

/// <summary>Why an adding-problem run ended.</summary>
public enum AddingProblemStop
{
    /// <summary>All steps ran.</summary>
    Completed,

    /// <summary>The test MSE fell below <see cref="AddingProblemOptions.TargetTestMse"/>.</summary>
    ReachedTarget,

    /// <summary>A training loss was NaN or infinite; that step's update was not applied.</summary>
    NonFiniteLoss,

    /// <summary>The pre-clip gradient norm was NaN or infinite; that step's update was not applied.</summary>
    NonFiniteGradient,
}

/// <summary>The outcome of <see cref="AddingProblem.Train"/>.</summary>
/// <param name="Options">The settings it ran with.</param>
/// <param name="Curve">The evaluation points, in step order (the last is after the last applied step).</param>
/// <param name="Stop">Why it ended.</param>
/// <param name="Steps">Optimiser steps applied.</param>
/// <param name="Seconds">Total wall time.</param>
/// <param name="Message">What went wrong, naming the step, when the run diverged; null otherwise.</param>
public sealed record AddingProblemResult(AddingProblemOptions Options, IReadOnlyList<AddingProblemPoint> Curve, AddingProblemStop Stop,
    long Steps, double Seconds, string? Message)
{
    /// <summary>The test MSE at the last evaluation.</summary>
    public double FinalTestMse => Curve[^1].TestMse;

    /// <summary>Whether the run stopped on a non-finite loss or gradient.</summary>
    public bool Diverged => Stop is AddingProblemStop.NonFiniteLoss or AddingProblemStop.NonFiniteGradient;

    /// <summary>The largest pre-clip gradient norm seen in the run.</summary>
    public double MaxGradientNorm => Curve.Select(p => p.MaxGradientNorm).Aggregate(0.0, (a, b) => double.IsNaN(b) ? b : Math.Max(a, b));
}

/// <summary>
/// The adding problem as a training experiment: a <see cref="SequenceRegressor"/> learns to output the
/// sum of the two marked values of a sequence (<see cref="SequenceTasks.Adding"/>), on fresh batches,
/// scored by its MSE on a fixed set of fresh sequences against the 1/6 of a model that remembers
/// nothing (<see cref="SequenceTasks.AddingBaselineMse"/>). The standard probe of learning over long
/// time lags: a tanh RNN stays at the baseline as T grows, LSTM and GRU do not (Hochreiter and
/// Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016).
/// </summary>
/// <remarks>
/// <para>One training loop: the run is a <see cref="Trainer"/> of the spec <c>lstm|gru|rnn 2-H[xL]-1</c> on a
/// stream of fresh batches (<see cref="Trainer.StopOnNonFiniteGradient"/> on). Each step: draw batch s as <c>SequenceTasks.Adding(B, T, Mix(Seed + Mix(s + 1)))</c> (Mix the
/// SplitMix64 finaliser, as <see cref="DataLoader"/>'s epochs), forward, MSE, backward, take the
/// global gradient norm (clipping to <see cref="AddingProblemOptions.ClipNorm"/> when set), Adam step.
/// The model is initialised from <c>new Generator(Seed)</c>, the recurrent layer first. A NaN or
/// infinite loss, or gradient norm, ends the run before that step's update.</para>
/// <para>Deterministic: the same options give the same curve, bit for bit (wall times aside), at a
/// given kernel thread count.</para>
/// </remarks>
/// <example><code>
/// var result = AddingProblem.Train(new AddingProblemOptions { Cell = RecurrentCellKind.Gru, Length = 100, Steps = 4000, ClipNorm = 1 });
/// Console.WriteLine($"{result.FinalTestMse:F4} after {result.Steps} steps");
/// </code></example>
public static class AddingProblem
{
    /// <summary>Trains one model on the adding problem as <paramref name="options"/> say.</summary>
    /// <param name="options">The settings (validated first).</param>
    /// <param name="progress">Called with every evaluation point as it is recorded; null for none.</param>
    /// <returns>The learning curve and how the run ended.</returns>
    /// <exception cref="ArgumentException">naming the option that is out of range.</exception>
    public static AddingProblemResult Train(AddingProblemOptions options, Action<AddingProblemPoint>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = Stopwatch.StartNew();
        string cell = options.Cell switch { RecurrentCellKind.Lstm => "lstm", RecurrentCellKind.Gru => "gru", _ => "rnn" };
        string model = string.Create(CultureInfo.InvariantCulture,
            $"{cell} 2-{options.HiddenSize}{(options.NumLayers > 1 ? $"x{options.NumLayers}" : "")}-1{(options.Cell == RecurrentCellKind.RnnRelu ? " act=relu" : "")}");
        var config = new TrainingConfig
        {
            Model = model, Data = "adding", SequenceLength = options.Length, Optimizer = OptimizerKind.Adam, LearningRate = options.LearningRate,
            ClipNorm = options.ClipNorm, Seed = options.Seed, Epochs = 1, BatchSize = options.BatchSize, MaxSteps = options.Steps, Threads = null,
        };
        var test = SequenceTasks.Adding(options.TestSize, options.Length, options.TestSeed);
        // batch s: SequenceTasks.Adding(B, T, Mix(Seed + Mix(s + 1))), fresh at every step
        var trainer = new Trainer(config, new DataBundle(test, test),
            s => AsBatch(SequenceTasks.Adding(options.BatchSize, options.Length, DataLoader.Mix(options.Seed + DataLoader.Mix((ulong)s + 1))), (int)Math.Min(s, int.MaxValue)))
        {
            StopOnNonFiniteGradient = true,
        };
        using (GradMode.NoGrad()) options.Initialise?.Invoke(trainer.Model);
        using var target = new CancellationTokenSource();
        var curve = new Curve(options, trainer, test, clock, progress, target);
        trainer.AddObserver(curve);
        var result = trainer.Run(cancellation: target.Token);
        var stop = result.Stop switch
        {
            StopReason.NonFiniteLoss => AddingProblemStop.NonFiniteLoss,
            StopReason.NonFiniteGradient => AddingProblemStop.NonFiniteGradient,
            StopReason.Cancelled => AddingProblemStop.ReachedTarget,
            _ => AddingProblemStop.Completed,
        };
        string? message = null;
        if (stop == AddingProblemStop.NonFiniteGradient)
        {
            curve.Diverged(curve.Info!.GradientNorm);
            message = Diverged("gradient norm", curve.Info.GradientNorm, result.Steps, options);
        }
        else if (stop == AddingProblemStop.NonFiniteLoss) message = Diverged("loss", curve.Info!.Loss, result.Steps, options);
        if (curve.Points.Count == 0 || curve.Points[^1].Step != result.Steps || message is not null) curve.Record(result.Steps);
        return new AddingProblemResult(options, curve.Points, stop, result.Steps, clock.Elapsed.TotalSeconds, message);
    }

    /// <summary>All of <paramref name="data"/> as one batch.</summary>
    private static Batch AsBatch(Dataset data, int index) =>
        new(index, Enumerable.Range(0, data.Count).ToArray(), data.Inputs, data.Labels, data.Targets);

    /// <summary>Records the learning curve from the trainer's steps: every <see cref="AddingProblemOptions.EvalEvery"/> steps, the test MSE; stops the run at the target.</summary>
    private sealed class Curve(AddingProblemOptions options, Trainer trainer, Dataset test, Stopwatch clock, Action<AddingProblemPoint>? progress,
        CancellationTokenSource target) : ITrainingObserver
    {
        private double _lossSum, _lastNorm = double.NaN, _intervalMaxNorm;
        private int _lossCount;

        public List<AddingProblemPoint> Points { get; } = [];

        /// <summary>The trainer's step state (one reused instance): after a stop, the step that stopped it.</summary>
        public StepInfo? Info { get; private set; }

        public void OnStepStart(StepInfo step) => Info = step;

        public void OnStepEnd(StepInfo step)
        {
            Add(step.GradientNorm);
            _lossSum += step.Loss;
            _lossCount++;
            long done = step.Step + 1;
            if (done % options.EvalEvery == 0 || done == options.Steps)
            {
                Record(done);
                if (Points[^1].TestMse < options.TargetTestMse) target.Cancel();
            }
        }

        /// <summary>Counts a non-finite gradient norm that stopped the run.</summary>
        public void Diverged(double norm) => Add(norm);

        private void Add(double norm)
        {
            _lastNorm = norm;
            _intervalMaxNorm = double.IsNaN(norm) || double.IsNaN(_intervalMaxNorm) ? double.NaN : Math.Max(_intervalMaxNorm, norm);
        }

        public void Record(long step)
        {
            var point = new AddingProblemPoint(step, _lossCount > 0 ? _lossSum / _lossCount : double.NaN, trainer.Evaluate(test).Loss, _lastNorm,
                _intervalMaxNorm, clock.Elapsed.TotalSeconds);
            Points.Add(point);
            progress?.Invoke(point);
            (_lossSum, _lossCount, _intervalMaxNorm) = (0, 0, 0);
        }
    }

    private static string Diverged(string quantity, double value, long step, AddingProblemOptions options)
    {
        var clip = options.ClipNorm is { } c ? c.ToString(CultureInfo.InvariantCulture) : "off";
        return string.Create(CultureInfo.InvariantCulture,
            $"AddingProblem: the {quantity} became {value} at step {step} ({options.Cell}, T = {options.Length}, lr {options.LearningRate}, clip {clip}); the update was not applied. ") +
            "Clip the gradient norm (ClipNorm), lower the learning rate, or start the recurrent weights smaller.";
    }
}
