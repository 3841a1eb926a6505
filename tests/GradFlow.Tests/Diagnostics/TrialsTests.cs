using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>A diagnosis trial is the first steps of the configured run, not a shorter run.</summary>
public class TrialsTests
{
    private sealed class LearningRates : ITrainingObserver
    {
        public List<double> AtStepEnd { get; } = [];

        public void OnStepEnd(StepInfo step) => AtStepEnd.Add(step.Optimizer.LearningRate);
    }

    [Theory]
    [InlineData(ScheduleKind.Cosine, 0)]
    [InlineData(ScheduleKind.Cosine, 10)]
    [InlineData(ScheduleKind.Step, 0)]
    public void Trial_FollowsTheFullRunsSchedule_NotOneSqueezedIntoTheTrial(ScheduleKind schedule, int warmup)
    {
        // circles: 4000 training examples at batch 100 -> 40 steps per epoch, 10 epochs -> 400 steps; the trial takes 40
        var config = new TrainingConfig
        {
            Model = "mlp 2-8-2", Data = "circles", Epochs = 10, BatchSize = 100, Optimizer = OptimizerKind.Sgd, LearningRate = 0.1,
            Schedule = schedule, WarmupSteps = warmup, Seed = 1, Threads = 1,
        };
        var full = new LearningRates();
        var fullTrainer = new Trainer(config);
        Assert.Equal(400, fullTrainer.StepBudget);
        fullTrainer.AddObserver(full);
        fullTrainer.Run(cancellation: TestContext.Current.CancellationToken);
        var trial = new LearningRates();
        Trials.Run(config, steps: 40, observer: trial, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(40, trial.AtStepEnd.Count);
        Assert.Equal(full.AtStepEnd.Take(40), trial.AtStepEnd);
        // and that is the schedule of 400 steps: after step 40 (of 400 - warm-up) the cosine is still near its start
        if (schedule == ScheduleKind.Cosine && warmup == 0)
            Assert.Equal(0.1 * (1 + Math.Cos(Math.PI * 40 / 400)) / 2, trial.AtStepEnd[^1], 1e-12);
    }
}
