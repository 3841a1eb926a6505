using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace GradFlow.Cli;

/// <summary>
/// What 'gradflow train' shows while it trains. When stderr is a terminal: a Spectre.Console progress bar
/// per epoch (batches, running loss and accuracy, elapsed time) with the newest monitor sample's per-layer
/// table redrawn above it. Otherwise plain lines: one per epoch on stdout (not with --json), one per
/// monitor sample on stderr.
/// </summary>
internal sealed class TrainingView(TextWriter stdout, TextWriter stderr, int epochs, int batches, bool json) : ITrainingObserver
{
    private readonly bool _live = Terminal.IsTerminal(stderr);
    private ProgressContext? _context;
    private ProgressTask? _task;
    private IRenderable? _sample;
    private int _width = 200;

    /// <summary>Runs <paramref name="train"/>, inside the live progress display when there is one.</summary>
    public TrainingResult Run(Func<TrainingResult> train)
    {
        if (!_live) return train();
        var console = Terminal.For(stderr);
        _width = console.Profile.Width;
        return console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .UseRenderHook((progress, _) => _sample is null ? progress : new Rows(_sample, progress))
            .Start(context =>
            {
                _context = context;
                return train();
            });
    }

    public void OnStepEnd(StepInfo s)
    {
        if (_context is null) return;
        string label = string.Create(CultureInfo.InvariantCulture, $"epoch {s.Epoch + 1}/{epochs}");
        if (_task is null || _task.IsFinished) _task = _context.AddTask(label, maxValue: Math.Max(1, batches));
        _task.Value = s.Batch + 1;
        _task.Description = string.Create(CultureInfo.InvariantCulture,
            $"{label}  {s.Batch + 1}/{batches}  loss {s.RunningLoss:F4}  acc {Percent(s.RunningAccuracy)}");
    }

    public void OnEpochEnd(EpochMetrics m)
    {
        _task?.StopTask();
        if (json || Terminal.IsTerminal(stdout) && _live) return; // the finished bar keeps the epoch's figures; the table follows
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"epoch {m.Epoch}: train loss {m.TrainLoss:F4} acc {Percent(m.TrainAccuracy)} | test loss {m.TestLoss:F4} acc {Percent(m.TestAccuracy)} ({m.Seconds:F1} s)"));
    }

    /// <summary>A monitor sample: the per-layer table above the progress bar, or a summary line.</summary>
    public void ShowSample(MonitorSample s)
    {
        if (_context is not null)
        {
            _sample = new Rows(new Text($"monitor, step {s.Step}"), DiagnosisView.LayerTable(s, tty: true, _width));
            _context.Refresh();
            return;
        }
        stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"monitor step {s.Step}: loss {s.Loss:F4}, gradient ratio {s.GradientRatio:E2}, signal layer 1 {s.Layers[0].BackpropagatedSignalRms:E2}, layer {s.Layers.Length} {s.Layers[^1].BackpropagatedSignalRms:E2}"));
    }

    /// <summary>The per-epoch table: losses, accuracies, learning rate and time of each epoch.</summary>
    public static void WriteEpochTable(TextWriter w, IReadOnlyList<EpochMetrics> epochs)
    {
        var table = Terminal.Table(Terminal.IsTerminal(w), ("epoch", true), ("train loss", true), ("train acc", true), ("test loss", true), ("test acc", true), ("lr", true), ("time", true));
        foreach (var e in epochs)
            table.AddRow(e.Epoch.ToString(CultureInfo.InvariantCulture), F4(e.TrainLoss), Percent(e.TrainAccuracy), F4(e.TestLoss), Percent(e.TestAccuracy),
                e.LearningRate.ToString("G3", CultureInfo.InvariantCulture), e.Seconds.ToString("F1", CultureInfo.InvariantCulture) + "s");
        Terminal.Write(w, table);
    }

    /// <summary>An accuracy as a percentage, or "-" for regression runs (NaN).</summary>
    internal static string Percent(double accuracy) =>
        double.IsNaN(accuracy) ? "-" : (accuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + "%";

    private static string F4(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
}
