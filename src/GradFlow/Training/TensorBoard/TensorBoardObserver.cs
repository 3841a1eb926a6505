using GradFlow.Tensors;

namespace GradFlow.Training.TensorBoard;

/// <summary>
/// Writes a training run to TensorBoard (<c>gradflow train --tensorboard DIR</c>): per step the loss
/// (<c>train/loss</c>), learning rate (<c>train/learning_rate</c>) and, when clipping by norm measures
/// it, the global gradient norm (<c>train/gradient_norm</c>); per epoch <c>epoch/train_loss</c>, <c>epoch/train_accuracy</c>,
/// <c>epoch/test_loss</c>, <c>epoch/test_accuracy</c> (accuracies only for classification); and every
/// <c>histogramEvery</c> steps, when the gradients are complete, histograms of every parameter
/// (<c>weights/NAME</c>) and its gradient (<c>gradients/NAME</c>). The monitor's per-layer figures and
/// the verdicts are written by <c>Diagnostics.TensorBoardLog</c>.
/// </summary>
public sealed class TensorBoardObserver(EventWriter writer, int histogramEvery = 10) : ITrainingObserver
{
    /// <summary>The event file written to.</summary>
    public EventWriter Writer { get; } = writer ?? throw new ArgumentNullException(nameof(writer));

    /// <inheritdoc />
    public void OnBackward(StepInfo step)
    {
        if (histogramEvery < 1 || step.Step % histogramEvery != 0) return;
        foreach (var (name, p) in step.Model.NamedParameters())
        {
            Writer.AddHistogram("weights/" + name, Floats(p.Data), step.Step);
            if (p.Data.Grad is { } g) Writer.AddHistogram("gradients/" + name, Floats(g), step.Step);
        }
    }

    /// <inheritdoc />
    public void OnStepEnd(StepInfo step)
    {
        // the global gradient norm is measured only when clipping by norm
        if (double.IsNaN(step.GradientNorm))
            Writer.AddScalars([("train/loss", step.Loss), ("train/learning_rate", step.Optimizer.LearningRate)], step.Step);
        else
            Writer.AddScalars([("train/loss", step.Loss), ("train/learning_rate", step.Optimizer.LearningRate), ("train/gradient_norm", step.GradientNorm)], step.Step);
    }

    /// <inheritdoc />
    public void OnEpochEnd(EpochMetrics m)
    {
        var values = new List<(string, double)> { ("epoch/train_loss", m.TrainLoss), ("epoch/test_loss", m.TestLoss) };
        if (!double.IsNaN(m.TrainAccuracy)) values.Add(("epoch/train_accuracy", m.TrainAccuracy));
        if (!double.IsNaN(m.TestAccuracy)) values.Add(("epoch/test_accuracy", m.TestAccuracy));
        Writer.AddScalars(values, m.Step);
    }

    private static float[] Floats(Tensor t) => t.Storage switch
    {
        float[] f => f.Length == t.Count ? f : f[..t.Count],
        double[] d => Array.ConvertAll(d[..t.Count], v => (float)v),
        _ => [],
    };
}
