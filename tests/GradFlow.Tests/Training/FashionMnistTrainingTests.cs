using GradFlow.Data;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

public class FashionMnistTrainingTests
{
    /// <summary>Stops the run once the target accuracy is reached (the requirement is "within 10 epochs").</summary>
    private sealed class StopAt(double target, CancellationTokenSource cts) : ITrainingObserver
    {
        public void OnEpochEnd(EpochMetrics m)
        {
            if (m.TestAccuracy >= target) cts.Cancel();
        }
    }

    [Fact]
    [Trait("Category", "Training")]
    public void Mlp784x256x256_ReluHeAdam_Reaches88PercentWithin10Epochs()
    {
        var dir = DataResolver.ResolveFashionMnist(null); // throws with install instructions when the package is missing
        var config = new TrainingConfig
        {
            Model = "mlp 784-256-256-10 act=relu init=he-normal",
            Data = "fashion-mnist",
            DataDir = dir,
            Optimizer = OptimizerKind.Adam,
            LearningRate = 1e-3,
            Epochs = 10,
            BatchSize = 128,
            Seed = 0,
        };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var result = new Trainer(config).AddObserver(new StopAt(0.88, cts)).Run(cancellation: cts.Token);
        var best = result.Epochs.Max(e => e.TestAccuracy);
        Assert.True(best >= 0.88, $"best test accuracy {best:P2} after {result.Epochs.Count} epochs: " +
            string.Join(", ", result.Epochs.Select(e => $"{e.Epoch}: {e.TestAccuracy:P2}")));
        Assert.True(result.Epochs.Count <= 10);
    }
}
