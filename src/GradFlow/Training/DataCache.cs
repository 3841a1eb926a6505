using System.Collections.Concurrent;

namespace GradFlow.Training;

/// <summary>
/// The data sets of many runs loaded once: runs whose configs load the same data (a catalogue evaluation,
/// the points of a sweep) share one <see cref="DataBundle"/>. Safe for concurrent use; a bundle is loaded
/// by the first run that needs it, the others wait for it.
/// </summary>
/// <remarks>
/// Two configs share data when they differ only in what training does with the data (<see cref="Key"/>):
/// the key is the whole config with those fields reset, so a field added later counts as data until it
/// is listed here (fewer shared loads, never wrong data).
/// </remarks>
public sealed class DataCache
{
    private readonly ConcurrentDictionary<string, Lazy<DataBundle>> _bundles = new();

    /// <summary>
    /// The data of <paramref name="config"/>, loaded on first use (<see cref="DataSources.Load"/>). Data streamed from
    /// disk (<see cref="TrainingConfig.Stream"/>) is loaded for each call: its reader belongs to one run.
    /// </summary>
    public DataBundle For(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var description = config.Description();
        if (config.Stream) return DataSources.Load(config, description);
        return _bundles.GetOrAdd(Key(config), _ => new Lazy<DataBundle>(() => DataSources.Load(config, description))).Value;
    }

    /// <summary>
    /// What decides the data a config loads: the config without its optimiser, schedule, budget, clipping,
    /// augmentation (applied per batch), threads, checkpoints and monitor, with the model reduced to its
    /// input and output shapes (the teacher task and a file's layout follow them), and without the seed for
    /// Fashion-MNIST (the same for every seed; synthetic sets and file splits are drawn from it).
    /// </summary>
    public static string Key(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var description = config.Description();
        var dataOnly = config with
        {
            Model = $"{string.Join("x", description.Input)}->{string.Join("x", description.OutputShape())}",
            Optimizer = default, LearningRate = 0, Momentum = 0, Nesterov = false, WeightDecay = 0, Schedule = default, WarmupSteps = 0,
            Epochs = 0, BatchSize = 0, MaxSteps = null, ClipNorm = null, ClipValue = null, ClipAgc = null, LabelSmoothing = 0,
            AugmentPadding = 0, AugmentFlip = 0, Threads = null, MicroBatches = null, SyncBatchNorm = false,
            CheckpointEvery = null, MonitorEvery = null,
            Seed = config.Data == "fashion-mnist" ? 0 : config.Seed,
        };
        return dataOnly.ToJson();
    }
}
