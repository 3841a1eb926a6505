using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Optim;

public class LrSchedulerTests
{
    private static Sgd NewOptimizer(double lr) => new([new Parameter(Tensor.Zeros(3))], learningRate: lr);

    /// <summary>Steps the schedule <paramref name="count"/> times; returns the optimiser's rate at t = 0..count.</summary>
    private static double[] Rates(LrScheduler schedule, int count)
    {
        var rates = new double[count + 1];
        rates[0] = schedule.Optimizer.LearningRate;
        for (int t = 1; t <= count; t++)
        {
            schedule.Step();
            rates[t] = schedule.Optimizer.LearningRate;
            Assert.Equal(rates[t], schedule.LastLearningRate);
        }
        return rates;
    }

    [Fact]
    public void StepLr_StepSize3_DecaysEveryThirdStep()
    {
        var rates = Rates(new StepLr(NewOptimizer(0.5), stepSize: 3, gamma: 0.1), 9);
        double[] expected = [0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005, 0.005, 0.0005];
        for (int t = 0; t < expected.Length; t++) Assert.Equal(expected[t], rates[t], 1e-15);
    }

    [Fact]
    public void CosineAnnealingLr_SeveralSteps_MatchesClosedForm()
    {
        const double lr0 = 0.1, etaMin = 0.001;
        var rates = Rates(new CosineAnnealingLr(NewOptimizer(lr0), tMax: 10, etaMin: etaMin), 20);
        foreach (int t in new[] { 0, 1, 3, 5, 9, 10, 15, 20 })
            Assert.Equal(etaMin + (lr0 - etaMin) * (1 + Math.Cos(Math.PI * t / 10)) / 2, rates[t], 1e-15);
        Assert.Equal(lr0, rates[0], 1e-15);
        Assert.Equal((lr0 + etaMin) / 2, rates[5], 1e-15);
        Assert.Equal(etaMin, rates[10], 1e-15);
    }

    [Fact]
    public void LinearDecayLr_FallsLinearlyToZeroThenHolds()
    {
        var rates = Rates(new LinearDecayLr(NewOptimizer(0.8), steps: 4), 6);
        double[] expected = [0.8, 0.6, 0.4, 0.2, 0, 0, 0];
        for (int t = 0; t < expected.Length; t++) Assert.Equal(expected[t], rates[t], 1e-15);
        Assert.Equal("steps", Assert.Throws<ArgumentException>(() => new LinearDecayLr(NewOptimizer(1), 0)).ParamName);
    }

    [Fact]
    public void LinearWarmup_Alone_RisesLinearlyThenHolds()
    {
        var rates = Rates(new LinearWarmup(NewOptimizer(0.4), warmupSteps: 4, startFactor: 0.25), 6);
        double[] expected = [0.1, 0.175, 0.25, 0.325, 0.4, 0.4, 0.4];
        for (int t = 0; t < expected.Length; t++) Assert.Equal(expected[t], rates[t], 1e-15);
    }

    [Fact]
    public void LinearWarmup_ThenCosine_WarmsUpThenFollowsShiftedCosine()
    {
        var opt = NewOptimizer(1.0);
        var cosine = new CosineAnnealingLr(opt, tMax: 8);
        var rates = Rates(new LinearWarmup(opt, warmupSteps: 2, startFactor: 0.5, then: cosine), 10);
        Assert.Equal(0.5, rates[0], 1e-15);
        Assert.Equal(0.75, rates[1], 1e-15);
        for (int t = 2; t <= 10; t++)
            Assert.Equal((1 + Math.Cos(Math.PI * (t - 2) / 8)) / 2, rates[t], 1e-15);
        Assert.Equal(0.0, rates[10], 1e-15);
    }

    [Fact]
    public void LrScheduler_SetLastStep_ResumesAtThatStep()
    {
        var schedule = new StepLr(NewOptimizer(1.0), stepSize: 2, gamma: 0.5);
        schedule.LastStep = 5;
        Assert.Equal(0.25, schedule.Optimizer.LearningRate);
        schedule.Step();
        Assert.Equal(0.125, schedule.Optimizer.LearningRate);
    }

    [Fact]
    public void Schedules_BadArguments_ThrowArgumentException()
    {
        Assert.Equal("stepSize", Assert.Throws<ArgumentException>(() => new StepLr(NewOptimizer(1), 0)).ParamName);
        Assert.Equal("tMax", Assert.Throws<ArgumentException>(() => new CosineAnnealingLr(NewOptimizer(1), 0)).ParamName);
        Assert.Equal("startFactor", Assert.Throws<ArgumentException>(() => new LinearWarmup(NewOptimizer(1), 3, 0)).ParamName);
        Assert.Equal("then", Assert.Throws<ArgumentException>(() => new LinearWarmup(NewOptimizer(1), 3, 0.5, new StepLr(NewOptimizer(1), 1))).ParamName);
        Assert.Equal("factor", Assert.Throws<ArgumentException>(() => new ReduceLrOnPlateau(NewOptimizer(1), factor: 1)).ParamName);
    }

    [Fact]
    public void ReduceLrOnPlateau_PatienceAndCooldown_ReducesAtTheHandTracedSteps()
    {
        // patience 2, cooldown 1, factor 0.5. Trace (bad = calls without improvement):
        // 10 best | 9 best | 9 bad1 | 9 bad2 | 9 bad3 > 2: lr 0.5, cooldown 1 | 9 in cooldown (bad reset) |
        // 9 bad1 | 9 bad2 | 9 bad3: lr 0.25, cooldown 1 | 8 best (cooldown ends) | 8 bad1 | 8 bad2 | 8 bad3: lr 0.125
        var opt = NewOptimizer(1.0);
        var plateau = new ReduceLrOnPlateau(opt, factor: 0.5, patience: 2, cooldown: 1);
        double[] metrics = [10, 9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8];
        double[] expected = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125];
        for (int i = 0; i < metrics.Length; i++)
        {
            plateau.Step(metrics[i]);
            Assert.True(expected[i] == opt.LearningRate, $"call {i + 1} (metric {metrics[i]}): expected lr {expected[i]}, got {opt.LearningRate}.");
        }
        Assert.Equal(8, plateau.Best);
    }

    [Fact]
    public void ReduceLrOnPlateau_ImprovementBelowRelativeThreshold_CountsAsBad()
    {
        var opt = NewOptimizer(1.0);
        var plateau = new ReduceLrOnPlateau(opt, patience: 0);
        plateau.Step(10);
        plateau.Step(10 * (1 - 0.5e-4)); // better, but by less than threshold 1e-4 relative
        Assert.Equal(0.1, opt.LearningRate, 1e-15);
        Assert.Equal(10, plateau.Best);
        plateau.Step(10 * (1 - 2e-4)); // significant
        Assert.Equal(0.1, opt.LearningRate, 1e-15);
    }

    [Fact]
    public void ReduceLrOnPlateau_MaxModeAndMinLr_StopsAtMinLr()
    {
        var opt = NewOptimizer(1.0);
        var plateau = new ReduceLrOnPlateau(opt, mode: PlateauMode.Max, factor: 0.1, patience: 0, minLr: 0.05);
        plateau.Step(0.5);
        plateau.Step(0.6);
        Assert.Equal(1.0, opt.LearningRate);
        plateau.Step(0.6);
        Assert.Equal(0.1, opt.LearningRate, 1e-15);
        plateau.Step(0.55);
        Assert.Equal(0.05, opt.LearningRate, 1e-15);
        plateau.Step(0.55);
        Assert.Equal(0.05, opt.LearningRate, 1e-15);
    }
}
