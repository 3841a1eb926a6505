using GradFlow.Training;

namespace GradFlow.Tests.Training;

public sealed class DataCacheTests
{
    private static readonly TrainingConfig Spirals = new() { Model = "mlp 2-16x2-2 act=relu", Data = "spirals", Seed = 3, Threads = 1 };

    [Fact]
    public void TrainingSettingsAndHiddenLayers_ShareTheData()
    {
        var cache = new DataCache();
        var first = cache.For(Spirals);
        var other = Spirals with
        {
            Model = "mlp 2-64x5-2 act=tanh init=xavier-normal", Optimizer = OptimizerKind.Sgd, LearningRate = 0.3, Momentum = 0.9,
            BatchSize = 16, Epochs = 3, MaxSteps = 50, ClipNorm = 1, AugmentFlip = 0.5, Threads = 2, MonitorEvery = 5,
        };
        Assert.Same(first, cache.For(other));
        Assert.Equal(DataCache.Key(Spirals), DataCache.Key(other));
    }

    [Theory]
    [InlineData("seed")]
    [InlineData("train-limit")]
    [InlineData("data")]
    [InlineData("classes")]
    [InlineData("test-fraction")]
    public void WhatChangesTheData_ChangesTheKey(string change)
    {
        var teacher = Spirals with { Data = "teacher" };
        var (a, b) = change switch
        {
            "seed" => (Spirals, Spirals with { Seed = 4 }),
            "train-limit" => (Spirals, Spirals with { TrainLimit = 100 }),
            "data" => (Spirals, Spirals with { Data = "circles" }),
            "classes" => (teacher, teacher with { Model = "mlp 2-16x2-3 act=relu" }), // the teacher task takes its class count from the model
            _ => (Spirals, Spirals with { TestFraction = 0.3 }),
        };
        Assert.NotEqual(DataCache.Key(a), DataCache.Key(b));
        if (change is "seed" or "data")
        {
            // synthetic sets are drawn from the seed: the loaded examples differ
            var cache = new DataCache();
            Assert.NotEqual(cache.For(a).Train.Inputs.ToArray(), cache.For(b).Train.Inputs.ToArray());
        }
    }

    [Fact]
    public void FashionMnist_IsTheSameForEverySeed()
    {
        var config = new TrainingConfig { Data = "fashion-mnist", TrainLimit = 100, TestLimit = 50, Seed = 1 };
        Assert.Equal(DataCache.Key(config), DataCache.Key(config with { Seed = 2 }));
        Assert.NotEqual(DataCache.Key(config), DataCache.Key(config with { TestLimit = 60 }));
    }
}
