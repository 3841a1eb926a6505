using System.Globalization;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>
/// A training checkpoint: one safetensors file holding the model's state dict under PyTorch's names
/// (<c>layers.0.weight</c>, readable by <c>safetensors.torch.load_file</c> and
/// <c>model.load_state_dict(..., strict=False)</c>), the optimiser's state under <c>optimizer.</c>,
/// and metadata: epoch, global step, the run's config, and the states of the dropout generators, so
/// that training resumes bit for bit. Written atomically.
/// </summary>
public static class Checkpoint
{
    /// <summary>Prefix of the optimiser's tensors.</summary>
    public const string OptimizerPrefix = "optimizer.";

    /// <summary>What a checkpoint records besides tensors.</summary>
    /// <param name="Epoch">Epochs completed.</param>
    /// <param name="Step">Optimiser steps completed.</param>
    /// <param name="Config">The run's config (JSON).</param>
    public sealed record Info(int Epoch, long Step, string Config)
    {
        /// <summary>Batches of the next epoch already trained (a run stopped inside an epoch, by its step limit or a cancellation); 0 at an epoch's end.</summary>
        public int Batch { get; init; }

        /// <summary>The next epoch's running sums over those batches (loss × examples, correct labels, examples, labels), so that its metrics are an uninterrupted run's.</summary>
        public (double LossSum, long Correct, long Seen, long SeenLabels) Partial { get; init; }

        /// <summary>The training observers' states by key (<see cref="ITrainingObserver.CheckpointState"/>), kept as metadata fields <c>observer.KEY</c>.</summary>
        public IReadOnlyDictionary<string, string> Observers { get; init; } = new Dictionary<string, string>();
    }

    private const string ObserverPrefix = "observer.";

    /// <summary>Writes model, optimiser and metadata to <paramref name="path"/> (atomically).</summary>
    public static void Save(string path, Module model, Optimizer optimizer, Info info)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        var tensors = new List<KeyValuePair<string, Tensor>>(model.StateDict());
        foreach (var (k, v) in optimizer.StateDict()) tensors.Add(new(OptimizerPrefix + k, v));
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["epoch"] = info.Epoch.ToString(CultureInfo.InvariantCulture),
            ["step"] = info.Step.ToString(CultureInfo.InvariantCulture),
            ["config"] = info.Config,
            ["rng"] = string.Join(";", Dropouts(model).Select(d => string.Join(",", d.MaskGenerator.GetState().Select(w => w.ToString("x16", CultureInfo.InvariantCulture))))),
        };
        if (info.Batch > 0)
        {
            meta["batch"] = info.Batch.ToString(CultureInfo.InvariantCulture);
            var (lossSum, correct, seen, labels) = info.Partial;
            meta["partial"] = string.Create(CultureInfo.InvariantCulture, $"{BitConverter.DoubleToInt64Bits(lossSum):x16},{correct},{seen},{labels}");
        }
        foreach (var (key, state) in info.Observers) meta[ObserverPrefix + key] = state;
        SafeTensors.Write(path, tensors, meta);
    }

    /// <summary>Loads a checkpoint into <paramref name="model"/> and <paramref name="optimizer"/>; returns its info.</summary>
    /// <exception cref="InvalidDataException">when the file lacks the metadata GradFlow writes or does not fit the model.</exception>
    public static Info Load(string path, Module model, Optimizer optimizer)
    {
        var contents = SafeTensors.Read(path);
        string file = Path.GetFileName(path);
        string Meta(string key) => contents.Metadata.TryGetValue(key, out var v)
            ? v
            : throw new InvalidDataException($"checkpoint: {file}: metadata field '{key}' is missing (not a GradFlow checkpoint?).");
        var modelState = contents.Tensors.Where(kv => !kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var optState = contents.Tensors.Where(kv => kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[OptimizerPrefix.Length..], kv => kv.Value);
        try
        {
            model.LoadStateDict(modelState);
            optimizer.LoadStateDict(optState);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"checkpoint: {file}: {e.Message}", e);
        }
        var dropouts = Dropouts(model).ToArray();
        var rng = Meta("rng");
        var states = rng.Length == 0 ? [] : rng.Split(';');
        if (states.Length != dropouts.Length)
            throw new InvalidDataException($"checkpoint: {file}: metadata field 'rng' has {states.Length} generator states, the model has {dropouts.Length} dropout layers.");
        for (int i = 0; i < states.Length; i++)
        {
            var words = states[i].Split(',').Select(w => ulong.Parse(w, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
            dropouts[i].MaskGenerator.SetState(words);
        }
        if (!int.TryParse(Meta("epoch"), NumberStyles.None, CultureInfo.InvariantCulture, out int epoch) ||
            !long.TryParse(Meta("step"), NumberStyles.None, CultureInfo.InvariantCulture, out long step))
            throw new InvalidDataException($"checkpoint: {file}: metadata fields 'epoch'/'step' are not integers.");
        var info = new Info(epoch, step, Meta("config"))
        {
            Observers = contents.Metadata.Where(kv => kv.Key.StartsWith(ObserverPrefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[ObserverPrefix.Length..], kv => kv.Value),
        };
        // a checkpoint inside an epoch (written since 2026-12-06; earlier ones claimed the epoch complete)
        if (contents.Metadata.TryGetValue("batch", out var b))
        {
            var p = contents.Metadata.TryGetValue("partial", out var pv) ? pv.Split(',') : [];
            if (!int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out int batch) || batch < 1 || p.Length != 4
                || !long.TryParse(p[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long bits)
                || !long.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out long correct)
                || !long.TryParse(p[2], NumberStyles.None, CultureInfo.InvariantCulture, out long seen)
                || !long.TryParse(p[3], NumberStyles.None, CultureInfo.InvariantCulture, out long labels))
                throw new InvalidDataException($"checkpoint: {file}: metadata fields 'batch'/'partial' ('{b}', '{pv}') are not a batch count and four sums.");
            info = info with { Batch = batch, Partial = (BitConverter.Int64BitsToDouble(bits), correct, seen, labels) };
        }
        return info;
    }

    /// <summary>Loads only the model's weights from a checkpoint (for inference: sampling, evaluation).</summary>
    /// <exception cref="InvalidDataException">when the file does not fit the model, naming the file and the key.</exception>
    public static void LoadModel(string path, Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var contents = SafeTensors.Read(path);
        try
        {
            model.LoadStateDict(contents.Tensors.Where(kv => !kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value));
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"checkpoint: {Path.GetFileName(path)}: {e.Message}", e);
        }
    }

    private static IEnumerable<Dropout> Dropouts(Module model) => model.NamedModules().Select(m => m.Module).OfType<Dropout>();
}
