using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// The options that describe a training config: 'gradflow train' takes them all, and diagnose, repair and
/// demo --model take the same (<see cref="Config"/>). Adding an option to the config is one line here
/// (and one in <see cref="BuildConfig"/>).
/// </summary>
internal static class TrainOptions
{
    // model and data
    public static readonly Option<string?> Model = Opt.String("model",
        "a spec or shorthand, e.g. \"mlp 784-256x2-10 act=relu init=he-normal\", \"lstm 2-64-1 forget-bias=1\", \"resnet20 in=1x28x28\", " +
        "\"cnn 1x28x28-c16-p-c32-p-10\", or a 'net ...' description (docs/model-spec.md); or FILE.onnx, a model exported by torch.onnx.export, " +
        "with its weights as the starting point (docs/onnx.md); the data are laid out as its input shape", "MODEL");
    public static readonly Option<string?> ModelFile = Opt.String("model-file", "the model in a file (any of those texts, or a JSON description or spec)", "FILE");
    public static readonly Option<string?> Data = Opt.String("data",
        "fashion-mnist (default), spirals, circles, teacher; for recurrent models adding (the adding problem, regression) and fashion-mnist-rows; " +
        "for language models (\"transformer vocab=65 ...\") kjv (the King James Bible by character; the last 10 % validates, in bits per character); " +
        "or a file or folder of your own (docs/data.md): FILE.csv / FILE.tsv (a header, numeric features, --target COLUMN), FILE.npz or " +
        "FILE.safetensors (arrays x, y), X.npy (targets in Y.npy, or --target FILE), IDX images, or a folder with one subfolder of images per class", "NAME");
    public static readonly Option<string?> Target = Opt.String("target", "the target column of a table, or the target file of NPY or IDX data", "NAME");
    public static readonly Option<Data.TargetKind?> Task = Opt.Enum<Data.TargetKind>("task",
        "auto (default: integers and strings are classes, other numbers values), classes (whole numbers such as 1.0 are their integer) or values");
    public static readonly Option<string?> TestData = Opt.String("test-data", "test data in the same format (default: a seeded split of --data)", "PATH");
    public static readonly Option<double?> TestFraction = Opt.Double("test-fraction", "fraction of --data held out for testing without --test-data (default 0.2)");
    public static readonly Option<bool> NoStandardize = Opt.Flag("no-standardize", "keep the inputs as read (default: standardise with training-set statistics)");
    public static readonly Option<bool> Stream = Opt.Flag("stream", "read a CSV/TSV file or image folder from disk batch by batch (data larger than memory)");
    public static readonly Option<string?> ImageSize = Opt.String("image-size", "resize the images of an image folder (default: the first image's size)", "WxH");
    public static readonly Option<int?> Channels = Opt.Int("channels", "1 (grey) or 3 (RGB, default) channels for an image folder");
    public static readonly Option<int?> SeqLen = Opt.Int("seq-len", "steps per sequence: the adding problem's (default 100), or the T a data file's flat rows of T·I values are cut into (default: values / I)");
    public static readonly Option<string?> DataDir = Opt.String("data-dir", "Fashion-MNIST directory (else $GRADFLOW_DATA, else /usr/share/datasets/fashion-mnist)", "DIR");
    public static readonly Option<int?> TrainLimit = Opt.Int("train-limit", "use the first N training examples");
    public static readonly Option<int?> TestLimit = Opt.Int("test-limit", "use the first N test examples");
    // optimisation
    public static readonly Option<OptimizerKind?> Optimizer = Opt.Enum<OptimizerKind>("optimizer", "the optimiser (default adam)");
    public static readonly Option<double?> Lr = Opt.Double("lr", "learning rate (default 0.001)");
    public static readonly Option<double?> Momentum = Opt.Double("momentum", "momentum for sgd and rmsprop");
    public static readonly Option<bool> Nesterov = Opt.Flag("nesterov", "Nesterov momentum for sgd (needs --momentum > 0)");
    public static readonly Option<double?> WeightDecay = Opt.Double("weight-decay", "weight decay");
    public static readonly Option<ScheduleKind?> Schedule = Opt.Enum<ScheduleKind>("schedule", "learning-rate schedule (default constant)");
    public static readonly Option<int?> Warmup = Opt.Int("warmup", "linear learning-rate warm-up over the first N steps, then the schedule");
    public static readonly Option<int?> Epochs = Opt.Int("epochs", "epochs (default 10)");
    public static readonly Option<int?> BatchSize = Opt.Int("batch-size", "batch size (default 128)");
    public static readonly Option<int?> MaxSteps = Opt.Int("max-steps", "stop after N optimiser steps");
    public static readonly Option<double?> ClipNorm = Opt.Double("clip-norm", "clip the global gradient norm to X");
    public static readonly Option<double?> ClipValue = Opt.Double("clip-value", "clip gradient elements to +-X");
    public static readonly Option<double?> ClipAgc = Opt.Double("clip-agc", "adaptive gradient clipping with factor X");
    public static readonly Option<double?> LabelSmoothing = Opt.Double("label-smoothing", "cross-entropy label smoothing");
    public static readonly Option<PrecisionKind?> Precision = Opt.Enum<PrecisionKind>("precision",
        "matrix products in fp32 (default) or bf16: operands rounded to bfloat16, float32 accumulation, float32 master weights and optimiser state");
    public static readonly Option<int?> AugmentCrop = Opt.Int("augment-crop", "image models: random crop of the training images with P pixels of zero padding (seeded; evaluation is not augmented)", "P");
    public static readonly Option<double?> AugmentFlip = Opt.Double("augment-flip", "image models: horizontal flip of training images with probability P", "P");
    // run
    public static readonly Option<ulong?> Seed = Opt.ULong("seed", "seed of every random choice (default 0)");
    public static readonly Option<int?> Threads = Opt.Int("threads", "kernel threads (default: all cores; under mpirun give threads per process)");
    public static readonly Option<int?> MicroBatches = Opt.Int("micro-batches",
        "cut every batch into M micro-batches combined in a fixed order, so that 'mpirun -np N gradflow train ...' (N dividing M) gives the same " +
        "weights, bit for bit, as one process with the same M (default: 1, or N under mpirun; docs/distributed.md)", "M");
    public static readonly Option<bool> SyncBatchNorm = Opt.Flag("sync-batch-norm",
        "under mpirun, batch norms take the statistics of the whole global batch over the processes (as PyTorch's SyncBatchNorm), not of each process's share (a process's micro-batches then run as one forward)");
    public static readonly Option<string?> ConfigFile = Opt.String("config", "start from a config.json (from a run directory, or 'gradflow repair')", "FILE");
    public static readonly Option<int?> MonitorEvery = Opt.Int("monitor-every", "monitor sample every N steps (default 10, or more often in a run too short for 8 samples at 10)");

    /// <summary>The options of a training config, in help order; every verb that builds a config declares these.</summary>
    public static readonly Option[] Config =
    [
        Model, ModelFile, Data, Target, Task, TestData, TestFraction, NoStandardize, Stream, ImageSize, Channels, SeqLen, DataDir, TrainLimit, TestLimit,
        Optimizer, Lr, Momentum, Nesterov, WeightDecay, Schedule, Warmup, Epochs, BatchSize, MaxSteps, ClipNorm, ClipValue, ClipAgc, LabelSmoothing, Precision,
        AugmentCrop, AugmentFlip, Seed, Threads, MicroBatches, SyncBatchNorm, ConfigFile, MonitorEvery,
    ];

    /// <summary>The config: --config (or the resumed run's), then each explicit option; monitoring on when <paramref name="monitor"/> or the config has it.</summary>
    internal static TrainingConfig BuildConfig(ParseResult r, string? resumedConfig, bool monitor = false)
    {
        string verb = r.Verb();
        var c = new TrainingConfig();
        string? file = r.GetValue(ConfigFile) ?? resumedConfig;
        if (file is not null)
        {
            if (!File.Exists(file)) throw new UsageException($"gradflow {verb}: config file {file} does not exist.");
            c = TrainingConfig.FromJson(File.ReadAllText(file), file);
        }
        if (r.GetValue(ModelFile) is { } mf)
        {
            if (r.GetValue(Model) is not null) throw new UsageException($"gradflow {verb}: give either --model or --model-file, not both.");
            if (!File.Exists(mf)) throw new UsageException($"gradflow {verb}: model file {mf} does not exist.");
            c = c with { Model = File.ReadAllText(mf).Trim() };
        }
        var size = ParseImageSize(r);
        c = c with
        {
            Model = FullPath(r.GetValue(Model)) ?? c.Model,
            Data = FullPath(r.GetValue(Data)) ?? c.Data,
            DataDir = FullPath(r.GetValue(DataDir)) ?? c.DataDir,
            SequenceLength = r.GetValue(SeqLen) ?? c.SequenceLength,
            TrainLimit = r.GetValue(TrainLimit) ?? c.TrainLimit,
            TestLimit = r.GetValue(TestLimit) ?? c.TestLimit,
            Optimizer = r.GetValue(Optimizer) ?? c.Optimizer,
            LearningRate = r.GetValue(Lr) ?? c.LearningRate,
            Momentum = r.GetValue(Momentum) ?? c.Momentum,
            WeightDecay = r.GetValue(WeightDecay) ?? c.WeightDecay,
            Schedule = r.GetValue(Schedule) ?? c.Schedule,
            WarmupSteps = r.GetValue(Warmup) ?? c.WarmupSteps,
            Epochs = r.GetValue(Epochs) ?? c.Epochs,
            BatchSize = r.GetValue(BatchSize) ?? c.BatchSize,
            MaxSteps = r.GetValue(MaxSteps) ?? c.MaxSteps,
            ClipNorm = r.GetValue(ClipNorm) ?? c.ClipNorm,
            ClipValue = r.GetValue(ClipValue) ?? c.ClipValue,
            ClipAgc = r.GetValue(ClipAgc) ?? c.ClipAgc,
            LabelSmoothing = r.GetValue(LabelSmoothing) ?? c.LabelSmoothing,
            Precision = r.GetValue(Precision) ?? c.Precision,
            AugmentPadding = r.GetValue(AugmentCrop) ?? c.AugmentPadding,
            AugmentFlip = r.GetValue(AugmentFlip) ?? c.AugmentFlip,
            Seed = r.GetValue(Seed) ?? c.Seed,
            Threads = r.GetValue(Threads) ?? c.Threads,
            MicroBatches = r.GetValue(MicroBatches) ?? c.MicroBatches,
            SyncBatchNorm = r.GetValue(SyncBatchNorm) || c.SyncBatchNorm,
            Nesterov = r.GetValue(Nesterov) || c.Nesterov,
            Target = r.GetValue(Target) ?? c.Target,
            TargetKind = r.GetValue(Task) ?? c.TargetKind,
            TestData = FullPath(r.GetValue(TestData)) ?? c.TestData,
            TestFraction = r.GetValue(TestFraction) ?? c.TestFraction,
            Standardize = !r.GetValue(NoStandardize) && c.Standardize,
            Stream = r.GetValue(Stream) || c.Stream,
            ImageWidth = size?.Width ?? c.ImageWidth,
            ImageHeight = size?.Height ?? c.ImageHeight,
            ImageChannels = r.GetValue(Channels) ?? c.ImageChannels,
            // --monitor-every asks for monitoring (`train --monitor-every 2` without --monitor took no sample and saved nothing)
            MonitorEvery = monitor || r.GetValue(MonitorEvery) is not null || c.MonitorEvery is not null ? r.GetValue(MonitorEvery) ?? c.MonitorEvery ?? 10 : null,
        };
        try
        {
            c.Validate($"gradflow {verb}");
        }
        catch (FormatException e) when (e.Data[TrainingConfig.OutOfRangeField] is string field)
        {
            // an out-of-range option value is a usage error (exit 2), like any other; a bad model stays an error (1). A value typed as an
            // option is named as typed (`--batch-size 0` said "field 'batchSize'"); one from --config or the resumed run's config keeps its field
            throw new UsageException(OptionOf(field) is { } option && r.Has(option)
                ? e.Message.Replace($"field '{field}'", option.Name, StringComparison.Ordinal) : e.Message);
        }
        return c;
    }

    /// <summary>
    /// The option that sets the config field <paramref name="field"/> (its name in config.json): the option named as the field in
    /// kebab case (<c>batchSize</c>: <c>--batch-size</c>), or one of <see cref="OtherNames"/>; null for a field no option sets.
    /// </summary>
    internal static Option? OptionOf(string field) =>
        OtherNames.GetValueOrDefault(field) ?? Config.FirstOrDefault(o => o.Name == "--" + JsonNamingPolicy.KebabCaseLower.ConvertName(field));

    /// <summary>The options whose name is not their config field's in kebab case.</summary>
    private static readonly Dictionary<string, Option> OtherNames = new(StringComparer.Ordinal)
    {
        ["learningRate"] = Lr, ["warmupSteps"] = Warmup, ["sequenceLength"] = SeqLen, ["augmentPadding"] = AugmentCrop, ["imageChannels"] = Channels,
        ["imageWidth"] = ImageSize, ["imageHeight"] = ImageSize, ["targetKind"] = Task, ["standardize"] = NoStandardize,
    };

    /// <summary>
    /// <paramref name="value"/> as an absolute path when it names an existing file or folder (and is not a built-in data set), else as
    /// given: the run's config.json then finds its data and ONNX model from any directory (`export`, `--resume` and `--config` of a run
    /// trained with `--data e.csv` failed elsewhere).
    /// </summary>
    internal static string? FullPath(string? value) =>
        value is null || DataSources.Names.Contains(value) || !(File.Exists(value) || Directory.Exists(value)) ? value : Path.GetFullPath(value);

    /// <summary>--image-size WxH (or one number for a square), or null.</summary>
    private static (int Width, int Height)? ParseImageSize(ParseResult r)
    {
        if (r.GetValue(ImageSize) is not { } v) return null;
        var parts = v.Split('x', 'X');
        if (parts.Length is 1 or 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int h) && w >= 1 && h >= 1)
            return (w, h);
        throw new UsageException($"gradflow {r.Verb()}: --image-size '{v}' is not WIDTHxHEIGHT (e.g. 32x32) or one number.");
    }
}
