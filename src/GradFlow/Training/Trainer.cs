using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GradFlow.Data;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>Why a run ended.</summary>
public enum StopReason
{
    /// <summary>All epochs ran.</summary>
    Completed,
    /// <summary>The step budget (<see cref="TrainingConfig.MaxSteps"/>) was reached.</summary>
    MaxSteps,
    /// <summary>The loss became NaN or infinite; the step that produced it was not applied.</summary>
    NonFiniteLoss,
    /// <summary>Cancelled by the caller.</summary>
    Cancelled,
    /// <summary>The gradient norm became NaN or infinite (only with <see cref="Trainer.StopOnNonFiniteGradient"/>); the step was not applied.</summary>
    NonFiniteGradient,
}

/// <summary>Metrics of one epoch (one line of <c>metrics.jsonl</c> with <c>"type": "epoch"</c>).</summary>
public sealed record EpochMetrics(int Epoch, long Step, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double LearningRate, double Seconds);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainingResult(IReadOnlyList<EpochMetrics> Epochs, StopReason Stop, long Steps, string? Message, double Seconds)
{
    /// <summary>The last epoch's test accuracy (NaN when no epoch finished).</summary>
    public double FinalTestAccuracy => Epochs.Count > 0 ? Epochs[^1].TestAccuracy : double.NaN;
}

/// <summary>The state of the current step, passed to observers (one reused instance).</summary>
public sealed class StepInfo
{
    /// <summary>Global step index (0-based: the number of optimiser steps before this one).</summary>
    public long Step { get; internal set; }

    /// <summary>Epoch index (0-based).</summary>
    public int Epoch { get; internal set; }

    /// <summary>Batch index within the epoch.</summary>
    public int Batch { get; internal set; }

    /// <summary>Batches per epoch.</summary>
    public int BatchCount { get; internal set; }

    /// <summary>This step's loss.</summary>
    public double Loss { get; internal set; }

    /// <summary>Global L2 norm of the gradients before clipping (NaN until computed).</summary>
    public double GradientNorm { get; internal set; } = double.NaN;

    /// <summary>Mean training loss of the epoch so far.</summary>
    public double RunningLoss { get; internal set; }

    /// <summary>Training accuracy of the epoch so far.</summary>
    public double RunningAccuracy { get; internal set; }

    /// <summary>The model.</summary>
    public Module Model { get; internal set; } = null!;

    /// <summary>The optimiser.</summary>
    public Optimizer Optimizer { get; internal set; } = null!;
}

/// <summary>Hooks into the training loop (the gradient monitor and the CLI's progress display are observers).</summary>
public interface ITrainingObserver
{
    /// <summary>Before the forward pass of a step.</summary>
    void OnStepStart(StepInfo step)
    {
    }

    /// <summary>After backward, before clipping and the optimiser step: gradients are in place.</summary>
    void OnBackward(StepInfo step)
    {
    }

    /// <summary>After the optimiser step.</summary>
    void OnStepEnd(StepInfo step)
    {
    }

    /// <summary>After an epoch's evaluation.</summary>
    void OnEpochEnd(EpochMetrics metrics)
    {
    }

    /// <summary>
    /// What this observer carries from step to step that a resumed run needs to go on as the uninterrupted run would (a monitor's
    /// losses since its last sample), as text that every checkpoint keeps; null when there is nothing.
    /// </summary>
    string? CheckpointState() => null;

    /// <summary>Takes back what <see cref="CheckpointState"/> gave, when a run resumes from that checkpoint.</summary>
    /// <exception cref="InvalidDataException">when the text is not what <see cref="CheckpointState"/> writes.</exception>
    void RestoreCheckpointState(string state)
    {
    }
}

/// <summary>
/// The training loop for any model a <see cref="TrainingConfig"/> describes (MLPs, conv nets and
/// ResNets, recurrent networks: one <see cref="NetworkDescription"/> built by <see cref="NetworkBuilder"/>): seeded model, data order and dropout; cross-entropy loss on classification data, mean
/// squared error on regression data (the adding problem; accuracies are then NaN); clipping; optimiser and schedule; evaluation on
/// the test set after every epoch; a run directory with <c>config.json</c>, <c>metrics.jsonl</c> and
/// <c>checkpoints/epoch-NNNN.safetensors</c>, from which <see cref="Run"/> can resume bit for bit.
/// </summary>
public sealed class Trainer
{
    private readonly List<ITrainingObserver> _observers = [];

    private readonly Func<long, Batch>? _stream;

    /// <summary>Prepares a run: builds the data, the model (seeded) and the optimiser.</summary>
    /// <param name="config">The run's configuration (validated).</param>
    /// <param name="data">The data sets, or null to load them as the config says.</param>
    /// <param name="stream">
    /// A fresh training batch for each step (the step index in, the batch out) instead of epochs over
    /// <paramref name="data"/>'s training set: one epoch of <see cref="TrainingConfig.MaxSteps"/> steps
    /// (the adding problem draws every batch anew, <see cref="AddingProblem.Train"/>); null: the loader.
    /// </param>
    /// <param name="scheduleOf">
    /// The longer run whose first steps this one is (a diagnosis trial): the learning-rate schedule spans
    /// that run's budget, so step k has the learning rate it has there. Null: the schedule spans this run.
    /// </param>
    public Trainer(TrainingConfig config, DataBundle? data = null, Func<long, Batch>? stream = null, TrainingConfig? scheduleOf = null)
    {
        if (stream is not null && (config?.MaxSteps is null || config.Epochs != 1))
            throw new ArgumentException("Trainer: a batch stream needs a step budget (maxSteps) and one epoch.", nameof(stream));
        _stream = stream;
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        if (config.Threads is { } t) KernelThreads.SetCount(t);
        Description = config.Description();
        Spec = config.Spec();
        CheckFitsInMemory(Description, config);
        if (Description.ParameterCount() == 0)
            throw new ArgumentException($"Trainer: the model '{Spec?.ToString() ?? config.Model}' has no parameters to train.");
        Data = data ?? DataSources.Load(config, Description);
        if (Data.Train.IsClassification != Data.Test.IsClassification)
            throw new ArgumentException("Trainer: the training and test sets must both be classification sets (class labels) or both regression sets (targets).");
        IsRegression = !Data.Train.IsClassification;
        var generator = new Generator(config.Seed);
        Tensor? lsuvBatch = null;
        if (UsesLsuv(Description.Root))
            lsuvBatch = Data.Train.Subset(0, Math.Min(256, Data.Train.Count)).Materialize().Inputs;
        Model = NetworkBuilder.Build(Description, generator, lsuvBatch);
        if (config.ImportedModel() is { } imported) Onnx.OnnxImport.Load(Model, imported.Weights, config.Model.Trim());
        Optimizer = CreateOptimizer(config, Model.Parameters());
        ImageAugmentation? augmentation = null;
        if (config.AugmentPadding > 0 || config.AugmentFlip > 0)
        {
            if (Data.Train.InputShape.Length != 4)
                throw new ArgumentException($"Trainer: augmentation (augmentPadding {config.AugmentPadding}, augmentFlip {config.AugmentFlip}) needs images [N, C, H, W], but the training inputs are {Shapes.Format(Data.Train.InputShape)}: give the model an image input (e.g. \"resnet20 in=1x28x28\").");
            augmentation = new ImageAugmentation(config.AugmentPadding, config.AugmentFlip);
        }
        // a last batch of one example cannot be batch-normalised in training (PyTorch raises there too): it is left out of each
        // epoch, as drop_last would (a 129-example run with batch 128 stopped after its first step, without a checkpoint)
        bool dropLast = Data.Train.Count > 1 && Data.Train.Count % config.BatchSize == 1 && Model.NamedModules().Any(c => c.Module is BatchNormBase);
        Loader = new DataLoader(Data.Train, config.BatchSize, shuffle: true, seed: config.Seed ^ 0x5DEECE66DUL, dropLast: dropLast, reuseBuffers: true)
            { Augmentation = augmentation };
        var horizon = scheduleOf ?? config;
        int totalSteps = (int)Math.Clamp(horizon.MaxSteps ?? (long)Loader.BatchCount * horizon.Epochs, 1, int.MaxValue);
        int afterWarmup = Math.Max(1, totalSteps - config.WarmupSteps);
        LrScheduler? schedule = config.Schedule switch
        {
            ScheduleKind.Cosine => new CosineAnnealingLr(Optimizer, afterWarmup),
            ScheduleKind.Step => new StepLr(Optimizer, Math.Max(1, afterWarmup / 3)),
            ScheduleKind.Linear => new LinearDecayLr(Optimizer, afterWarmup),
            _ => null,
        };
        Scheduler = config.WarmupSteps > 0 ? new LinearWarmup(Optimizer, config.WarmupSteps, 1.0 / config.WarmupSteps, schedule) : schedule;
    }

    /// <summary>The configuration.</summary>
    public TrainingConfig Config { get; }

    /// <summary>The model's network description (<see cref="TrainingConfig.Description"/>).</summary>
    public NetworkDescription Description { get; }

    /// <summary>The spec the model is written as (an <c>mlp …</c> or <c>rnn|lstm|gru …</c> text), or null for any other description.</summary>
    public INetworkSpec? Spec { get; }

    /// <summary>Whether the data are regression targets (loss: mean squared error) rather than class labels (cross-entropy).</summary>
    public bool IsRegression { get; }

    /// <summary>Training and test data.</summary>
    public DataBundle Data { get; }

    /// <summary>The model, built from <see cref="Description"/> (<see cref="NetworkBuilder.Build"/>).</summary>
    public Network Model { get; }

    private static bool UsesLsuv(Block block) => block switch
    {
        LinearBlock { Init.Kind: InitKind.Lsuv } => true,
        SequenceBlock s => s.Blocks.Any(UsesLsuv),
        ResidualBlock r => UsesLsuv(r.Branch),
        _ => false,
    };

    /// <summary>The optimiser.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>
    /// Take the global gradient norm at every step (clipping it when the config says so) and stop with
    /// <see cref="StopReason.NonFiniteGradient"/>, before the update, when it is NaN or infinite; the
    /// norm is in <see cref="StepInfo.GradientNorm"/>. Off by default: a run then stops on the
    /// non-finite loss that follows.
    /// </summary>
    public bool StopOnNonFiniteGradient { get; init; }

    /// <summary>
    /// The processes that share each batch (<see cref="DataParallel"/>, with <see cref="TrainingConfig.MicroBatches"/> a multiple
    /// of their count); rank 0 alone writes the run directory. Default: this process alone.
    /// </summary>
    public ICommunicator Communicator { get; init; } = SingleProcessCommunicator.Instance;

    /// <summary>Batches per epoch: the loader's, or the step budget with a batch stream.</summary>
    public int BatchCount => _stream is null ? Loader.BatchCount : Config.MaxSteps!.Value;

    /// <summary>The schedule, or null for a constant rate.</summary>
    public LrScheduler? Scheduler { get; }

    /// <summary>The training-set loader.</summary>
    public DataLoader Loader { get; }

    /// <summary>
    /// Raised with a one-line message when <see cref="Run"/> works around a problem instead of failing
    /// (e.g. resuming from an earlier checkpoint because the newest is damaged).
    /// </summary>
    public event Action<string>? Warning;

    /// <summary>Adds an observer (called in registration order).</summary>
    public Trainer AddObserver(ITrainingObserver observer)
    {
        _observers.Add(observer ?? throw new ArgumentNullException(nameof(observer)));
        return this;
    }

    /// <summary>
    /// Refuses, before anything is allocated, a model whose float32 parameters, gradients and
    /// optimiser state exceed what this process can allocate (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>:
    /// the machine's memory or the container's limit).
    /// </summary>
    /// <exception cref="InvalidOperationException">naming the parameter count, the bytes and the limit.</exception>
    private static void CheckFitsInMemory(NetworkDescription description, TrainingConfig config)
    {
        int copies = 2 + OptimizerStateTensors(config);
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        string bytesText;
        string countText;
        try
        {
            long count = description.ParameterCount();
            long bytes = checked(count * sizeof(float) * copies);
            if (bytes <= limit) return;
            countText = count.ToString("N0", CultureInfo.InvariantCulture);
            bytesText = $"{bytes.ToString("N0", CultureInfo.InvariantCulture)} bytes ({Gib(bytes)} GiB)";
        }
        catch (OverflowException)
        {
            countText = "more than " + long.MaxValue.ToString("N0", CultureInfo.InvariantCulture);
            bytesText = "more bytes than a 64-bit count holds";
        }
        throw new InvalidOperationException(
            $"Trainer: the model '{config.Spec()?.ToString() ?? config.Model}' has {countText} parameters; as float32 with their gradients and " +
            $"{config.Optimizer.ToString().ToLowerInvariant()}'s {copies - 2} state tensor(s) that is {bytesText}, more than the " +
            $"{limit.ToString("N0", CultureInfo.InvariantCulture)} bytes ({Gib(limit)} GiB) this process can allocate " +
            "(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes). Use fewer or narrower layers.");
    }

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>Tensors of optimiser state per parameter tensor: Adam's two moments, momentum buffers, squared-gradient averages.</summary>
    private static int OptimizerStateTensors(TrainingConfig config) => config.Optimizer switch
    {
        OptimizerKind.Adam or OptimizerKind.AdamW => 2,
        OptimizerKind.RmsProp => config.Momentum > 0 ? 2 : 1,
        OptimizerKind.Adagrad => 1,
        _ => config.Momentum > 0 ? 1 : 0,
    };

    /// <summary>Builds the optimiser a config names.</summary>
    public static Optimizer CreateOptimizer(TrainingConfig config, IEnumerable<Parameter> parameters) => config.Optimizer switch
    {
        OptimizerKind.Sgd => new Sgd(parameters, config.LearningRate, momentum: config.Momentum, weightDecay: config.WeightDecay, nesterov: config.Nesterov),
        OptimizerKind.Adam => new Adam(parameters, config.LearningRate, weightDecay: config.WeightDecay),
        OptimizerKind.AdamW => new AdamW(parameters, config.LearningRate, weightDecay: config.WeightDecay),
        OptimizerKind.RmsProp => new RmsProp(parameters, config.LearningRate, momentum: config.Momentum, weightDecay: config.WeightDecay),
        OptimizerKind.Adagrad => new Adagrad(parameters, config.LearningRate, weightDecay: config.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(config)),
    };

    /// <summary>
    /// Trains. With <paramref name="runDirectory"/>, writes config, metrics and checkpoints there;
    /// with <paramref name="resume"/>, first loads the directory's last checkpoint and continues from it.
    /// </summary>
    public TrainingResult Run(string? runDirectory = null, bool resume = false, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        int startEpoch = 0, startBatch = 0;
        long step = 0;
        (double LossSum, long Correct, long Seen, long SeenLabels) partial = default;
        RunDirectory? run = runDirectory is null ? null : new RunDirectory(runDirectory);
        // with several processes, rank 0 alone writes the run directory; every process reads the checkpoint it resumes from
        bool writer = Communicator.Rank == 0;
        int microBatches = Config.MicroBatches ?? 1;
        var parallel = microBatches > 1 || Communicator.Size > 1 ? new DataParallel(Model, Optimizer, Communicator, microBatches, _observers.OfType<IMicroBatchStatistics>().ToArray(), Config.SyncBatchNorm) : null;
        if (writer) run?.RemoveOrphanedTemporaries();
        if (Loader.DropLast && _stream is null)
            Warning?.Invoke($"warning: {Data.Train.Count} training examples in batches of {Config.BatchSize} leave a last batch of one, which batch norm " +
                "cannot normalise in training: each epoch leaves that example out (a different one each epoch, as the order is shuffled).");
        if (resume)
        {
            if (run is null) throw new ArgumentException("Trainer: resume needs a run directory.");
            var info = LoadNewestIntactCheckpoint(run);
            // a budget that ended before the checkpoint trained nothing, said "Completed" and wrote that budget into the run's config.json
            int trainedEpochs = info.Epoch + (info.Batch > 0 ? 1 : 0);
            if (trainedEpochs > Config.Epochs || Config.MaxSteps is { } maxSteps && info.Step > maxSteps)
                throw new InvalidOperationException($"Trainer: the run in {run.Path} has trained {info.Step} steps " +
                    $"({(info.Batch > 0 ? $"into epoch {trainedEpochs}" : $"{info.Epoch} epochs")}), past the {(trainedEpochs > Config.Epochs ? $"{Config.Epochs} epochs" : $"{Config.MaxSteps} steps")} " +
                    "asked for: a resumed run goes on from its checkpoint, so give it a budget at least that long (--epochs, --max-steps).");
            (startEpoch, step, startBatch, partial) = (info.Epoch, info.Step, info.Batch, info.Partial);
            foreach (var (key, o) in KeyedObservers())
                if (info.Observers.TryGetValue(key, out var state)) o.RestoreCheckpointState(state);
            if (Scheduler is not null) Scheduler.LastStep = (int)step;
            if (writer) run.TruncateMetrics(startEpoch, step);
        }
        if (writer) run?.WriteConfig(Config);
        // how a data file's examples were read and standardised, so that new files can be predicted without the training file
        if (writer && run is not null && Data.Preprocessing is { } preprocessing) preprocessing.Write(run.Path);

        var epochs = new List<EpochMetrics>();
        var info2 = new StepInfo { Model = Model, Optimizer = Optimizer, BatchCount = BatchCount };
        var parameters = Model.Parameters().ToArray();
        StopReason stop = StopReason.Completed;
        string? message = null;
        for (int epoch = startEpoch; epoch < Config.Epochs && stop == StopReason.Completed; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            Model.Train();
            // a resumed run goes on inside the epoch its checkpoint stopped in, with that epoch's sums so far
            int from = epoch == startEpoch ? startBatch : 0;
            var (lossSum, correct, seen, seenLabels) = epoch == startEpoch ? partial : default;
            int batches = 0;
            info2.Epoch = epoch;
            foreach (var batch in _stream is null ? Loader.Epoch(epoch, from) : Stream(_stream, step))
            {
                if (cancellation.IsCancellationRequested)
                {
                    stop = StopReason.Cancelled;
                    break;
                }
                info2.Step = step;
                info2.Batch = batch.Index;
                info2.GradientNorm = double.NaN;
                foreach (var o in _observers) o.OnStepStart(info2);
                Optimizer.ZeroGrad();
                double lossValue;
                long batchCorrect = 0;
                // --precision bf16: the forward and backward GEMMs multiply bf16-rounded operands (float32 accumulation and
                // outputs); the master weights, their gradients and the optimiser state stay float32
                using var precision = BFloat16.OperandsScope(Config.Precision == PrecisionKind.Bf16);
                if (parallel is null)
                {
                    var logits = Model.Forward(batch.Inputs);
                    var loss = Loss(logits, batch);
                    lossValue = loss.Item();
                    if (double.IsFinite(lossValue))
                    {
                        if (!IsRegression) batchCorrect = CountCorrect(logits, batch.Labels!);
                        // nothing reads the step's intermediates after backward (observers' hooks measure in the forward and
                        // backward passes): their storage goes back to the pool, so a step in steady state allocates none
                        Autograd.BackwardEngine.Backward(loss, releaseIntermediates: true);
                    }
                }
                else (lossValue, batchCorrect) = parallel.ComputeGradients(batch, Loss, IsRegression ? null : (output, micro) => CountCorrect(output, micro.Labels!));
                info2.Loss = lossValue;
                if (!double.IsFinite(lossValue))
                {
                    stop = StopReason.NonFiniteLoss;
                    message = $"the loss became {lossValue.ToString(CultureInfo.InvariantCulture)} at step {step} (epoch {epoch + 1}, batch {batch.Index + 1}); training stopped before applying that step.";
                    break;
                }
                foreach (var o in _observers) o.OnBackward(info2);
                if (StopOnNonFiniteGradient)
                {
                    info2.GradientNorm = GradClip.ClipGradNorm(parameters, Config.ClipNorm ?? double.PositiveInfinity);
                    if (!double.IsFinite(info2.GradientNorm))
                    {
                        stop = StopReason.NonFiniteGradient;
                        message = $"the gradient norm became {info2.GradientNorm.ToString(CultureInfo.InvariantCulture)} at step {step} (epoch {epoch + 1}, batch {batch.Index + 1}); training stopped before applying that step.";
                        break;
                    }
                }
                else if (Config.ClipNorm is { } maxNorm) info2.GradientNorm = GradClip.ClipGradNorm(parameters, maxNorm);
                if (Config.ClipValue is { } clipValue) GradClip.ClipGradValue(parameters, clipValue);
                if (Config.ClipAgc is { } lambda) GradClip.ClipGradAdaptive(parameters, lambda);
                Optimizer.Step();
                Scheduler?.Step();
                step++;
                batches++;
                lossSum += lossValue * batch.Count;
                correct += batchCorrect;
                seen += batch.Count;
                seenLabels += IsRegression ? batch.Count : batch.Labels!.Count;
                info2.RunningLoss = lossSum / seen;
                info2.RunningAccuracy = IsRegression ? double.NaN : (double)correct / seenLabels;
                foreach (var o in _observers) o.OnStepEnd(info2);
                if (Config.MaxSteps is { } max && step >= max)
                {
                    stop = StopReason.MaxSteps;
                    break;
                }
            }
            if (seen == 0) break;
            var (testLoss, testAccuracy) = Evaluate(Data.Test);
            var metrics = new EpochMetrics(epoch + 1, step, lossSum / seen, IsRegression ? double.NaN : (double)correct / seenLabels, testLoss, testAccuracy,
                Optimizer.LearningRate, epochClock.Elapsed.TotalSeconds);
            epochs.Add(metrics);
            foreach (var o in _observers) o.OnEpochEnd(metrics);
            if (run is not null && writer)
            {
                run.AppendMetrics(metrics);
                bool last = epoch + 1 == Config.Epochs || stop != StopReason.Completed;
                // stopped inside the epoch (its step limit, a cancellation): the checkpoint says how far, so that a resumed run trains
                // the epoch's other batches (it used to count the epoch complete and skip them)
                if ((Config.CheckpointEvery is { } every && (epoch + 1) % every == 0) || last)
                {
                    int done = from + batches;
                    var info = (_stream is null && done < BatchCount
                        ? new Checkpoint.Info(epoch, step, Config.ToJson()) { Batch = done, Partial = (lossSum, correct, seen, seenLabels) }
                        : new Checkpoint.Info(epoch + 1, step, Config.ToJson())) with { Observers = ObserverStates() };
                    Checkpoint.Save(run.CheckpointPath(epoch + 1), Model, Optimizer, info);
                }
            }
        }
        var result = new TrainingResult(epochs, stop, step, message, clock.Elapsed.TotalSeconds);
        // the run stopped (not a crash): its last line says so, monitored or not (the dashboard's "done")
        if (run is not null && writer) run.AppendEnd(result);
        return result;
    }

    /// <summary>The observers with their checkpoint keys: the type's name, and its place among the observers of that type after the first.</summary>
    private IEnumerable<(string Key, ITrainingObserver Observer)> KeyedObservers() =>
        _observers.Select((o, i) =>
        {
            string name = o.GetType().FullName ?? o.GetType().Name;
            int same = _observers.Take(i).Count(p => p.GetType() == o.GetType());
            return (same == 0 ? name : string.Create(CultureInfo.InvariantCulture, $"{name}#{same}"), o);
        });

    private Dictionary<string, string> ObserverStates() =>
        KeyedObservers().Select(k => (k.Key, State: k.Observer.CheckpointState())).Where(k => k.State is not null).ToDictionary(k => k.Key, k => k.State!);

    private static IEnumerable<Batch> Stream(Func<long, Batch> stream, long from)
    {
        for (long s = from; ; s++) yield return stream(s);
    }

    /// <summary>
    /// Loads the newest checkpoint of <paramref name="run"/> that reads back intact; each damaged one
    /// (truncated, corrupt, or not fitting the model) is skipped with a <see cref="Warning"/> naming it.
    /// </summary>
    /// <exception cref="InvalidOperationException">when the run has no checkpoint.</exception>
    /// <exception cref="InvalidDataException">when none is intact, with each file's error.</exception>
    private Checkpoint.Info LoadNewestIntactCheckpoint(RunDirectory run)
    {
        var checkpoints = run.CheckpointFiles();
        if (checkpoints.Count == 0) throw new InvalidOperationException($"Trainer: no checkpoint to resume from in {run.Checkpoints}.");
        var errors = new List<string>();
        for (int i = checkpoints.Count - 1; i >= 0; i--)
        {
            string file = Path.GetFileName(checkpoints[i]);
            try
            {
                var info = Checkpoint.Load(checkpoints[i], Model, Optimizer);
                if (errors.Count > 0) Warning?.Invoke($"warning: resuming from {file} (epoch {info.Epoch}), the newest intact checkpoint.");
                return info;
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                // a checkpoint that reads but does not fit: written by another model or optimiser (a --resume that changes them), not damaged
                if (OtherRun(checkpoints[i]) is { } other) throw new InvalidDataException($"Trainer: {file} {other}; resuming continues that run, so its model " +
                    "and optimiser cannot change: resume without the option that changes them, or train a new run.", e);
                errors.Add(e.Message);
                if (i > 0) Warning?.Invoke($"warning: checkpoint {file} is damaged, trying the previous one: {e.Message}");
            }
        }
        throw new InvalidDataException($"Trainer: no intact checkpoint to resume from in {run.Checkpoints}: {string.Join(" ", errors)}");
    }

    /// <summary>What differs between the run that wrote <paramref name="checkpoint"/> (its metadata's config) and this one's model or optimiser, or null.</summary>
    private string? OtherRun(string checkpoint)
    {
        TrainingConfig written;
        try
        {
            written = TrainingConfig.FromJson(SafeTensors.Read(checkpoint).Metadata["config"], checkpoint, requireData: false);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or KeyNotFoundException or ArgumentException)
        {
            return null; // damaged indeed
        }
        if (written.Model != Config.Model) return $"was written by a run of the model '{written.Model}', not '{Config.Model}'";
        if (written.Optimizer != Config.Optimizer) return $"was written by a run of the optimiser {written.Optimizer}, not {Config.Optimizer}";
        return null;
    }

    /// <summary>Optimiser steps of one full run: epochs × batches per epoch, or <see cref="TrainingConfig.MaxSteps"/> when that is fewer.</summary>
    public long StepBudget => BudgetOf(Config);

    /// <summary>
    /// <see cref="StepBudget"/> of <paramref name="config"/> on this trainer's data: what a trial (a trainer made with the
    /// trial's step limit) reads as the budget of the run it is the start of.
    /// </summary>
    public long BudgetOf(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long perEpoch = _stream is null ? Loader.BatchCount : config.MaxSteps!.Value;
        return Math.Min(perEpoch * config.Epochs, config.MaxSteps ?? long.MaxValue);
    }

    /// <summary>The training loss of one batch: cross-entropy (with the config's label smoothing) on class labels, mean squared error on targets.</summary>
    public Tensor Loss(Tensor output, Batch batch)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(batch);
        return IsRegression ? Losses.Mse(output, batch.Targets!) : CrossEntropy(output, batch.Labels!, Config.LabelSmoothing);
    }

    /// <summary>
    /// Cross-entropy of <paramref name="logits"/> against class <paramref name="labels"/> as training computes it: logits [N, C] against
    /// a label per example [N]; or logits [N, T, C] against a label per position [N, T] (a language model's next tokens), the logits
    /// read as [N·T, C] rows, so the mean is over every position. <c>gradflow grads</c> uses it too.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, IndexTensor labels, double labelSmoothing = 0, Reduction reduction = Reduction.Mean)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        var rows = labels.Rank == 1 ? logits : logits.Reshape(labels.Count, logits.Shape[^1]);
        return Losses.CrossEntropy(rows, labels.Flat(), labelSmoothing, reduction);
    }

    /// <summary>Mean cross-entropy and accuracy on <paramref name="data"/> in evaluation mode, without a graph (regression: mean squared error and NaN).</summary>
    public (double Loss, double Accuracy) Evaluate(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = Model.Training;
        Model.Eval();
        try
        {
            using var _ = GradMode.NoGrad();
            using var precision = BFloat16.OperandsScope(Config.Precision == PrecisionKind.Bf16);
            double lossSum = 0;
            long correct = 0;
            var loader = new DataLoader(data, 1000, shuffle: false);
            foreach (var batch in loader.Epoch(0))
            {
                var logits = Model.Forward(batch.Inputs);
                if (IsRegression)
                {
                    // mean over targets per example, summed over examples (Mse's mean is over every element)
                    int perExample = batch.Targets!.Count / batch.Count;
                    lossSum += Losses.Mse(logits, batch.Targets!, Reduction.Sum).Item() / perExample;
                    continue;
                }
                lossSum += CrossEntropy(logits, batch.Labels!, reduction: Reduction.Sum).Item();
                correct += CountCorrect(logits, batch.Labels!);
            }
            // per label: per example, or per position of a sequence labelled at every position
            long labels = IsRegression ? data.Count : data.Labels!.Count;
            return (lossSum / labels, IsRegression ? double.NaN : (double)correct / labels);
        }
        finally
        {
            Model.Train(wasTraining);
        }
    }

    private static long CountCorrect(Tensor logits, IndexTensor labels)
    {
        var (_, predicted) = logits.Detach().Max(-1);
        long correct = 0;
        for (int i = 0; i < labels.Count; i++)
            if (predicted[i] == labels[i]) correct++;
        return correct;
    }
}

/// <summary>
/// A run directory: <c>config.json</c>, <c>metrics.jsonl</c> (one JSON object per line, flushed per
/// line; a crash leaves every completed line intact) and <c>checkpoints/</c>.
/// </summary>
public sealed class RunDirectory
{
    /// <summary>Opens (creating) <paramref name="path"/>.</summary>
    public RunDirectory(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(Path);
        Directory.CreateDirectory(Checkpoints);
    }

    /// <summary>The directory.</summary>
    public string Path { get; }

    /// <summary>The checkpoints folder.</summary>
    public string Checkpoints => System.IO.Path.Combine(Path, "checkpoints");

    /// <summary>The metrics file.</summary>
    public string Metrics => System.IO.Path.Combine(Path, "metrics.jsonl");

    /// <summary>The config file.</summary>
    public string Config => System.IO.Path.Combine(Path, "config.json");

    /// <summary>The checkpoint file of an epoch.</summary>
    public string CheckpointPath(int epoch) => System.IO.Path.Combine(Checkpoints, $"epoch-{epoch:D4}.safetensors");

    /// <summary>The checkpoint of the latest epoch, or null.</summary>
    public string? LastCheckpoint() => CheckpointFiles().LastOrDefault();

    /// <summary>The checkpoint files, oldest epoch first.</summary>
    public IReadOnlyList<string> CheckpointFiles() => Directory.EnumerateFiles(Checkpoints, "epoch-*.safetensors").Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Takes the directory for one writer process (creating it): an exclusive lock on its <c>.gradflow.lock</c> (deleted when released;
    /// a killed process's lock goes with it). Two <c>train --out DIR</c> started together both found no run there and both wrote into it.
    /// </summary>
    /// <exception cref="IOException">when another process holds the directory, naming it.</exception>
    public static IDisposable Lock(string path)
    {
        Directory.CreateDirectory(path);
        string file = System.IO.Path.Combine(path, ".gradflow.lock");
        try
        {
            return new FileStream(file, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new IOException($"{path} is being written by another gradflow process (it holds {file}); wait for it, or choose another directory.", e);
        }
    }

    /// <summary>Whether the directory already holds a run (its <c>config.json</c> or <c>metrics.jsonl</c>).</summary>
    public static bool HoldsRun(string path) =>
        File.Exists(System.IO.Path.Combine(path, "config.json")) || File.Exists(System.IO.Path.Combine(path, "metrics.jsonl"));

    /// <summary>Files a run writes besides its checkpoints, which <see cref="Clear"/> deletes.</summary>
    private static readonly string[] RunFiles = ["config.json", "metrics.jsonl", "diagnosis.json", "report.html", Preprocessing.FileName];

    /// <summary>
    /// Deletes the run this directory holds, to start over: config, metrics, diagnosis, report, every
    /// checkpoint, and the temporary files of interrupted writes. Other files are left alone.
    /// </summary>
    public void Clear()
    {
        foreach (var name in RunFiles) File.Delete(System.IO.Path.Combine(Path, name));
        foreach (var checkpoint in CheckpointFiles()) File.Delete(checkpoint);
        RemoveOrphanedTemporaries();
    }

    /// <summary>
    /// Deletes the temporary files that a killed process left behind in the directory and its
    /// checkpoints folder (<see cref="AtomicFile.RemoveOrphanedTemporaries"/>); returns their paths.
    /// </summary>
    public IReadOnlyList<string> RemoveOrphanedTemporaries() =>
        [.. AtomicFile.RemoveOrphanedTemporaries(Path), .. AtomicFile.RemoveOrphanedTemporaries(Checkpoints)];

    /// <summary>Writes the config atomically.</summary>
    public void WriteConfig(TrainingConfig config) => AtomicFile.WriteAllText(Config, config.ToJson() + "\n");

    /// <summary>Appends one epoch line (<see cref="EpochLine"/>) and flushes it to disk.</summary>
    public void AppendMetrics(EpochMetrics m) => AppendLine(EpochLine(m));

    /// <summary>Appends the end line (<see cref="EndLine"/>) and flushes it to disk.</summary>
    public void AppendEnd(TrainingResult result) => AppendLine(EndLine(result));

    /// <summary>
    /// The metrics line of an epoch, <c>{"type":"epoch","epoch":2,"step":126,"train_loss":…,"train_accuracy":…,"test_loss":…,"test_accuracy":…,"lr":…,"seconds":…}</c>
    /// (also what <c>gradflow train --json</c> prints for each epoch).
    /// </summary>
    public static string EpochLine(EpochMetrics m) => JsonSerializer.Serialize(new
    {
        type = "epoch", epoch = m.Epoch, step = m.Step, train_loss = m.TrainLoss, train_accuracy = m.TrainAccuracy,
        test_loss = m.TestLoss, test_accuracy = m.TestAccuracy, lr = m.LearningRate, seconds = m.Seconds,
    }, JsonLines);

    /// <summary>
    /// The last metrics line of a run that stopped — all its epochs done, its step limit reached, a non-finite loss or gradient, or a
    /// cancellation; a crashed run has none: <c>{"type":"end","stop":"Completed","steps":252,"message":null,"seconds":…}</c> (also the
    /// last line of <c>gradflow train --json</c>). Whether a run has finished is read from it (<see cref="HasEnded"/>), monitored or not;
    /// a resumed run drops it (<see cref="TruncateMetrics"/>).
    /// </summary>
    public static string EndLine(TrainingResult result) => JsonSerializer.Serialize(new
    {
        type = "end", stop = result.Stop.ToString(), steps = result.Steps, message = result.Message, seconds = result.Seconds,
    }, JsonLines);

    /// <summary>Whether <paramref name="line"/> is an end line (<see cref="EndLine"/>).</summary>
    public static bool IsEndLine(string line) => line.StartsWith(EndPrefix, StringComparison.Ordinal);

    private const string EndPrefix = "{\"type\":\"end\"";

    /// <summary>
    /// Whether the run in <paramref name="path"/> has finished: the last complete line of its metrics file is an end line
    /// (<see cref="EndLine"/>). Reads the file's last bytes only; false for a directory without one, or while a line is being written.
    /// </summary>
    public static bool HasEnded(string path) => EndStop(path) is not null;

    /// <summary>
    /// Why the run in <paramref name="path"/> stopped (<see cref="StopReason"/>'s name in its end line: <c>Completed</c>, <c>Cancelled</c>, …),
    /// or null while it has not ended (<see cref="HasEnded"/>).
    /// </summary>
    public static string? EndStop(string path)
    {
        string metrics = System.IO.Path.Combine(path, "metrics.jsonl");
        if (!File.Exists(metrics)) return null;
        try
        {
            using var stream = new FileStream(metrics, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            // an end line is short; a longer last line is some other line
            int length = (int)Math.Min(stream.Length, 4096);
            if (length == 0) return null;
            var tail = new byte[length];
            stream.Position = stream.Length - length;
            stream.ReadExactly(tail);
            if (tail[^1] != (byte)'\n') return null; // a line being written
            int previous = length >= 2 ? Array.LastIndexOf(tail, (byte)'\n', length - 2) : -1;
            if (previous < 0 && stream.Length > length) return null; // the last line began before these bytes: too long for an end line
            string line = System.Text.Encoding.UTF8.GetString(tail, previous + 1, length - previous - 2);
            if (!IsEndLine(line)) return null;
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.TryGetProperty("stop", out var stop) && stop.ValueKind == JsonValueKind.String ? stop.GetString() : "";
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null; // deleted or replaced while read, or a damaged line: not known to have ended
        }
    }

    /// <summary>
    /// Options of every metrics line: NaN and ±Infinity are written as the strings "NaN", "Infinity",
    /// "-Infinity" — a diverging run's numbers are the ones a user needs to see, not an error. Text is
    /// escaped only where JSON requires it (a message reads "2.2E+004", not "2.2E\\u002B004"); the lines are
    /// data, never embedded in HTML.
    /// </summary>
    public static readonly JsonSerializerOptions JsonLines = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Appends a line (a complete JSON object) to <c>metrics.jsonl</c> and flushes it.</summary>
    public void AppendLine(string json)
    {
        using var stream = new FileStream(Metrics, FileMode.Append, FileAccess.Write, FileShare.Read);
        var bytes = System.Text.Encoding.UTF8.GetBytes(json + "\n");
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Drops the metrics lines a resumed run writes again (before resuming from <paramref name="epoch"/> epochs and <paramref name="step"/>
    /// steps): the end line, epoch lines after <paramref name="epoch"/> (a run stopped inside an epoch wrote a line for its part of it), the other lines
    /// of steps from <paramref name="step"/> on (of epochs from <paramref name="epoch"/> on when they have no step), and any incomplete last line.
    /// </summary>
    public void TruncateMetrics(int epoch, long step)
    {
        if (!File.Exists(Metrics)) return;
        var keep = new List<string>();
        foreach (var line in File.ReadAllText(Metrics).Split('\n'))
        {
            if (line.Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                string? type = root.TryGetProperty("type", out var t) ? t.GetString() : null;
                if (type == "end") continue; // the resumed run has not ended
                bool isEpoch = type is null or "epoch";
                if (isEpoch && root.TryGetProperty("epoch", out var e) && e.GetInt32() > epoch) continue;
                if (!isEpoch && (root.TryGetProperty("step", out var s) ? s.GetInt64() >= step
                    : root.TryGetProperty("epoch", out var se) && se.GetInt32() >= epoch)) continue;
                keep.Add(line);
            }
            catch (JsonException)
            {
                // an incomplete line from a crash: drop it
            }
        }
        AtomicFile.WriteAllText(Metrics, keep.Count == 0 ? "" : string.Join("\n", keep) + "\n");
    }
}
