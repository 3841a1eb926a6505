using GradFlow.Data;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

/// <summary>Image augmentation from the training config: it reaches the training batches only, seeded.</summary>
public class TrainerAugmentationTests
{
    private static TrainingConfig Cnn(int padding, double flip) => new()
    {
        Model = "cnn 1x28x28-c8-p-c8-gap-10",
        Data = "fashion-mnist",
        TrainLimit = 256,
        TestLimit = 128,
        BatchSize = 32,
        Epochs = 1,
        MaxSteps = 6,
        Optimizer = OptimizerKind.Sgd,
        LearningRate = 0.05,
        Momentum = 0.9,
        Seed = 3,
        Threads = 1,
        AugmentPadding = padding,
        AugmentFlip = flip,
    };

    private static double[] TrainLosses(TrainingConfig config)
    {
        var losses = new Losses();
        new Trainer(config).AddObserver(losses).Run(cancellation: TestContext.Current.CancellationToken);
        return losses.Values.ToArray();
    }

    private sealed class Losses : ITrainingObserver
    {
        public List<double> Values { get; } = [];

        public void OnStepEnd(StepInfo step) => Values.Add(step.Loss);
    }

    [Fact]
    public void Augmentation_ReachesTheTrainingBatches_SameSeedSameNumbers()
    {
        var plain = TrainLosses(Cnn(0, 0));
        var augmented = TrainLosses(Cnn(3, 0.5));
        Assert.Equal(6, augmented.Length);
        Assert.Equal(augmented, TrainLosses(Cnn(3, 0.5)));
        // the first step's weights are the same; only the augmented batch can make its loss differ
        Assert.NotEqual(plain[0], augmented[0]);
        Assert.Equal(new ImageAugmentation(3, 0.5), new Trainer(Cnn(3, 0.5)).Loader.Augmentation);
        Assert.Null(new Trainer(Cnn(0, 0)).Loader.Augmentation);
    }

    [Fact]
    public void Evaluation_IsNotAugmented()
    {
        // the test set's loss of the untrained model is the same with and without training-batch augmentation
        var a = new Trainer(Cnn(0, 0) with { MaxSteps = 1 });
        var b = new Trainer(Cnn(4, 1) with { MaxSteps = 1 });
        Assert.Equal(a.Evaluate(a.Data.Test), b.Evaluate(b.Data.Test));
    }

    [Fact]
    public void Augmentation_OfFlatInputs_IsRefusedNamingTheShape()
    {
        var e = Assert.Throws<ArgumentException>(() => new Trainer(Cnn(2, 0) with { Model = "mlp 784-32-10" }));
        Assert.Contains("needs images [N, C, H, W]", e.Message);
        Assert.Contains("[256, 784]", e.Message);
        Assert.Contains("augmentPadding", Assert.Throws<FormatException>(() => Cnn(17, 0).Validate()).Message);
    }
}
