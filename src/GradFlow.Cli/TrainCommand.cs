using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow train</c>: trains any model description on a data set, with a progress bar per epoch and a final table.</summary>
internal static class TrainCommand
{
    public const string Help = """
        Usage: gradflow train [options]

        Trains a model (any network description: MLP, conv net or ResNet, recurrent network) and
        prints a table of per-epoch metrics.
        Options override --config.

        Model and data:
          --model MODEL         a spec or shorthand, e.g. "mlp 784-256x2-10 act=relu init=he-normal",
                                "lstm 2-64-1 forget-bias=1", "resnet20 in=1x28x28", "plain20 in=1x28x28",
                                "cnn 1x28x28-c16-p-c32-p-10", or a 'net ...' description (docs/model-spec.md);
                                or FILE.onnx, a model exported by torch.onnx.export, with its weights as the
                                starting point (docs/onnx.md);
                                the data are laid out as its input shape ([N, 1, 28, 28] for 1x28x28)
          --model-file FILE     the model in a file (any of those texts, or a JSON description or spec)
          --data NAME           fashion-mnist (default), spirals, circles, teacher; for recurrent models
                                adding (the adding problem, regression) and fashion-mnist-rows; for language
                                models ("transformer vocab=65 ..."), kjv (the King James Bible by character,
                                Debian's bible-kjv-text; the last 10 % validates, reported in bits per character)
                                or a file or folder of your own (docs/data.md): FILE.csv / FILE.tsv (a header,
                                numeric features, --target COLUMN), FILE.npz or FILE.safetensors (arrays x, y),
                                X.npy (targets in Y.npy, or --target FILE), IDX images (labels found by name,
                                or --target FILE), or a folder with one subfolder of PNG/JPEG images per class
          --target NAME         the target column of a table, or the target file of NPY or IDX data
          --task KIND           auto (default: integers and strings are classes, other numbers values),
                                classes or values
          --test-data PATH      test data in the same format (default: a seeded split of --data)
          --test-fraction X     fraction of --data held out for testing without --test-data (default 0.2)
          --no-standardize      keep the inputs as read (default: standardise with training-set statistics)
          --image-size WxH      resize the images of an image folder (default: the first image's size)
          --channels N          1 (grey) or 3 (RGB, default) channels for an image folder
          --seq-len N           steps per sequence of the adding problem (default 100)
          --data-dir DIR        Fashion-MNIST directory (else $GRADFLOW_DATA, else /usr/share/datasets/fashion-mnist)
          --train-limit N       use the first N training examples
          --test-limit N        use the first N test examples
        Optimisation:
          --optimizer NAME      sgd, adam (default), adamw, rmsprop, adagrad
          --lr X                learning rate (default 0.001)
          --momentum X          momentum for sgd and rmsprop
          --weight-decay X      weight decay
          --schedule NAME       constant (default), cosine, step
          --warmup N            linear learning-rate warm-up over the first N steps, then the schedule
          --epochs N            epochs (default 10)
          --batch-size N        batch size (default 128)
          --max-steps N         stop after N optimiser steps
          --clip-norm X         clip the global gradient norm to X
          --clip-value X        clip gradient elements to +-X
          --clip-agc X          adaptive gradient clipping with factor X
          --label-smoothing X   cross-entropy label smoothing
          --augment-crop P      image models: random crop of the training images with P pixels of zero
                                padding (seeded; evaluation is not augmented)
          --augment-flip P      image models: horizontal flip of training images with probability P
        Run:
          --seed N              seed of every random choice (default 0)
          --threads N           kernel threads (default: all cores; under mpirun give threads per process)
          --micro-batches M     cut every batch into M micro-batches combined in a fixed order, so that
                                'mpirun -np N gradflow train ...' (N dividing M) gives the same weights, bit
                                for bit, as one process with the same M (default: 1, or N under mpirun;
                                docs/distributed.md)
          --sync-batch-norm     under mpirun, batch norms take the statistics of the whole global batch
                                over the processes (as PyTorch's SyncBatchNorm), not of each process's
                                share; needs one micro-batch per process
          --config FILE         start from a config.json (from a run directory, or 'gradflow repair')
          --out DIR             run directory: config.json, metrics.jsonl, checkpoints/ (refused when DIR
                                already holds a run: --resume it, or --force)
          --force               with --out: delete the run already in DIR and start over
          --resume DIR          continue the run in DIR from its newest intact checkpoint (its config,
                                monitoring included; options given override it)
          --json                print one JSON object per epoch instead of the table
          --tensorboard DIR     TensorBoard event files in DIR: loss, accuracy, learning rate, weight and
                                gradient histograms, and (turning on --monitor) the gradient ratio, per-layer
                                signal RMS, weight-gradient norm, update ratio, saturation, dead units and
                                the verdict as text
          --serve               the live dashboard of this run in the browser (gradflow serve), from the start
                                of training until Ctrl+C; needs --out or --resume. --port P (default 6070,
                                0: any free port) and --host ADDRESS (default 127.0.0.1) as for 'gradflow serve'
          --monitor             live per-layer gradient display (every --monitor-every steps, default 10),
                                monitor samples in metrics.jsonl, and a diagnosis at the end
        """;

    internal static readonly string[] ValuedOptions =
    [
        "model", "model-file", "data", "data-dir", "seq-len", "train-limit", "test-limit", "optimizer", "lr", "momentum", "weight-decay",
        "schedule", "warmup", "epochs", "batch-size", "max-steps", "clip-norm", "clip-value", "clip-agc", "label-smoothing", "augment-crop", "augment-flip", "seed",
        "threads", "micro-batches", "config", "out", "resume", "monitor-every", "target", "task", "test-data", "test-fraction", "image-size", "channels", "tensorboard",
    ];

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("train", args, [.. ValuedOptions, "port", "host"], ["json", "monitor", "force", "no-standardize", "serve", "sync-batch-norm"]);
        if ((o.Has("port") || o.Has("host")) && !o.Has("serve")) throw new UsageException("gradflow train: --port and --host go with --serve.");
        if (o.Has("serve") && !o.Has("out") && !o.Has("resume")) throw new UsageException("gradflow train: --serve shows the run directory: give --out DIR (or --resume DIR).");
        if (o.Has("resume") && o.Has("out")) throw new UsageException("gradflow train: give either --out or --resume, not both.");
        if (o.Has("force") && !o.Has("out")) throw new UsageException("gradflow train: --force goes with --out (it starts the run in that directory over).");
        string? runDir = o.String("resume") ?? o.String("out");
        bool startOver = o.Has("out") && RunDirectory.HoldsRun(runDir!);
        if (startOver && !o.Has("force"))
            throw new UsageException($"gradflow train: {runDir} already holds a run (config.json, metrics.jsonl). " +
                $"Use --resume {runDir} to continue it, or --force to delete it and start over.");
        var config = BuildConfig(o, o.Has("resume") ? Path.Combine(o.String("resume")!, "config.json") : null);
        var world = Communicators.FromEnvironment();
        if (world.Size > 1)
        {
            config = config with { MicroBatches = config.MicroBatches ?? world.Size };
            if (config.MicroBatches % world.Size != 0)
                throw new UsageException($"gradflow train: {config.MicroBatches} micro-batches (--micro-batches{(o.Has("resume") ? ", or the resumed run's config" : "")}) cannot be shared by {world.Size} processes; run a number of processes that divides it.");
            if (config.SyncBatchNorm && config.MicroBatches != world.Size)
                throw new UsageException($"gradflow train: --sync-batch-norm needs one micro-batch per process: {config.MicroBatches} micro-batches for {world.Size} processes (leave --micro-batches out, or give {world.Size}).");
            if (world.Rank > 0) stdout = stderr = TextWriter.Null;
        }
        var trainer = new Trainer(config) { Communicator = world };
        trainer.Warning += stderr.WriteLine;
        if (startOver && world.Rank == 0) new RunDirectory(runDir!).Clear();
        // every process has checked the directory before rank 0 writes into it
        world.Barrier();
        bool json = o.Has("json");
        var progress = new ProgressObserver(stderr, config.Epochs, trainer.Loader.BatchCount, json ? null : stdout);
        trainer.AddObserver(progress);
        // every process monitors (the statistics are combined over the global batch, docs/distributed.md); rank 0 alone writes them
        bool writer = world.Rank == 0;
        using var tensorboard = o.String("tensorboard") is { } tbDir && writer ? new Training.TensorBoard.EventWriter(tbDir) : null;
        if (tensorboard is not null) trainer.AddObserver(new Training.TensorBoard.TensorBoardObserver(tensorboard, config.MonitorEvery ?? 10));
        Diagnostics.GradientMonitor? monitor = null;
        Diagnostics.NonFiniteTracer? tracer = null;
        if (config.MonitorEvery is { } every)
        {
            monitor = new Diagnostics.GradientMonitor(trainer.Model, every);
            tracer = new Diagnostics.NonFiniteTracer(trainer.Model);
            trainer.AddObserver(tracer).AddObserver(monitor);
            if (runDir is not null && writer) Diagnostics.MonitorLog.WriteTo(monitor, new RunDirectory(runDir));
            if (tensorboard is not null) Diagnostics.TensorBoardLog.WriteTo(monitor, tensorboard);
            var live = new LiveDisplay(stderr, ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected);
            monitor.SampleCompleted += live.Show;
        }
        if (!json)
        {
            stdout.WriteLine(trainer.Spec is { } spec ? $"model: {spec} ({trainer.Model.ParameterCount():N0} parameters)" : $"model: {config.DescribeModel()}");
            stdout.WriteLine($"data: {config.Data}, {trainer.Data.Train.Count} training / {trainer.Data.Test.Count} test examples; " +
                $"optimizer {config.Optimizer.ToString().ToLowerInvariant()} lr {Fmt(config.LearningRate)}; seed {config.Seed}");
        }
        Dashboard.DashboardServer? dashboard = null;
        if (o.Has("serve") && writer)
        {
            var (host, port) = ServeCommand.Endpoint(o);
            Directory.CreateDirectory(runDir!);
            dashboard = Dashboard.DashboardServer.StartAsync([runDir!], host, port, cancellation).GetAwaiter().GetResult();
            stderr.WriteLine($"dashboard: {dashboard.Address}#run={Uri.EscapeDataString(Path.GetFileName(Path.GetFullPath(runDir!)))}");
            stderr.Flush();
        }
        TrainingResult result;
        try
        {
            result = trainer.Run(runDir, resume: o.Has("resume"), cancellation);
        }
        catch when (dashboard is not null)
        {
            dashboard.DisposeAsync().AsTask().GetAwaiter().GetResult(); // the port is given back before the error is reported
            throw;
        }
        string? verdict = null;
        if (monitor is not null)
        {
            var diagnosis = Diagnostics.Diagnoser.Diagnose(monitor.Samples, config, trainer.Model, nonFiniteOrigin: tracer!.Origin,
                nonFiniteLoss: result.Stop == StopReason.NonFiniteLoss ? double.NaN : null, recentLosses: monitor.RecentLosses());
            if (runDir is not null && writer) AtomicFile.WriteAllText(Path.Combine(runDir, "diagnosis.json"), Diagnostics.DiagnosisJson.Serialize(diagnosis));
            verdict = DiagnosisView.Verdict(diagnosis);
            if (tensorboard is not null) Diagnostics.TensorBoardLog.WriteVerdict(tensorboard, verdict, result.Steps);
            monitor.Dispose();
            tracer.Dispose();
        }
        if (json)
        {
            foreach (var e in result.Epochs) stdout.WriteLine(JsonSerializer.Serialize(e, RunDirectory.JsonLines));
            stdout.WriteLine(JsonSerializer.Serialize(new { stop = result.Stop.ToString(), steps = result.Steps, message = result.Message, seconds = result.Seconds }, RunDirectory.JsonLines));
        }
        else
        {
            stdout.WriteLine();
            stdout.WriteLine(Table(result.Epochs));
            if (DataSources.IsCorpus(config.Data) && result.Epochs.Count > 0)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"validation: {result.Epochs[^1].TestLoss:F4} nats per character = {result.Epochs[^1].TestLoss / Math.Log(2):F4} bits per character"));
            stdout.WriteLine($"stopped: {result.Stop}{(result.Message is null ? "" : " - " + result.Message)}; {result.Steps} steps in {result.Seconds:F1} s");
            if (runDir is not null) stdout.WriteLine($"run directory: {Path.GetFullPath(runDir)}");
            if (verdict is not null) stdout.WriteLine(verdict);
        }
        if (dashboard is not null) Serve(dashboard, stderr, cancellation);
        return result.Stop is StopReason.Completed or StopReason.MaxSteps ? 0 : 1;
    }

    /// <summary>After training with --serve: the dashboard stays up (the run can be studied) until Ctrl+C.</summary>
    private static void Serve(Dashboard.DashboardServer dashboard, TextWriter stderr, CancellationToken cancellation)
    {
        stderr.WriteLine($"training finished; the dashboard stays at {dashboard.Address} until Ctrl+C");
        dashboard.ServeUntilCtrlC(cancellation);
    }

    /// <summary>The config: --config (or the resumed run's), then each explicit option.</summary>
    internal static TrainingConfig BuildConfig(CliOptions o, string? resumedConfig)
    {
        var c = new TrainingConfig();
        string? file = o.String("config") ?? resumedConfig;
        if (file is not null)
        {
            if (!File.Exists(file)) throw new UsageException($"gradflow {o.Command}: config file {file} does not exist.");
            c = TrainingConfig.FromJson(File.ReadAllText(file), file);
        }
        if (o.String("model-file") is { } mf)
        {
            if (!File.Exists(mf)) throw new UsageException($"gradflow {o.Command}: model file {mf} does not exist.");
            c = c with { Model = File.ReadAllText(mf).Trim() };
        }
        c = c with
        {
            Model = o.String("model") ?? c.Model,
            Data = o.String("data") ?? c.Data,
            DataDir = o.String("data-dir") ?? c.DataDir,
            SequenceLength = o.Int("seq-len") ?? c.SequenceLength,
            TrainLimit = o.Int("train-limit") ?? c.TrainLimit,
            TestLimit = o.Int("test-limit") ?? c.TestLimit,
            Optimizer = o.Enum<OptimizerKind>("optimizer") ?? c.Optimizer,
            LearningRate = o.Double("lr") ?? c.LearningRate,
            Momentum = o.Double("momentum") ?? c.Momentum,
            WeightDecay = o.Double("weight-decay") ?? c.WeightDecay,
            Schedule = o.Enum<ScheduleKind>("schedule") ?? c.Schedule,
            WarmupSteps = o.Int("warmup") ?? c.WarmupSteps,
            Epochs = o.Int("epochs") ?? c.Epochs,
            BatchSize = o.Int("batch-size") ?? c.BatchSize,
            MaxSteps = o.Int("max-steps") ?? c.MaxSteps,
            ClipNorm = o.Double("clip-norm") ?? c.ClipNorm,
            ClipValue = o.Double("clip-value") ?? c.ClipValue,
            ClipAgc = o.Double("clip-agc") ?? c.ClipAgc,
            LabelSmoothing = o.Double("label-smoothing") ?? c.LabelSmoothing,
            AugmentPadding = o.Int("augment-crop") ?? c.AugmentPadding,
            AugmentFlip = o.Double("augment-flip") ?? c.AugmentFlip,
            Seed = o.ULong("seed") ?? c.Seed,
            Threads = o.Int("threads") ?? c.Threads,
            MicroBatches = o.Int("micro-batches") ?? c.MicroBatches,
            SyncBatchNorm = o.Has("sync-batch-norm") || c.SyncBatchNorm,
            Target = o.String("target") ?? c.Target,
            TargetKind = o.Enum<Data.TargetKind>("task") ?? c.TargetKind,
            TestData = o.String("test-data") ?? c.TestData,
            TestFraction = o.Double("test-fraction") ?? c.TestFraction,
            Standardize = !o.Has("no-standardize") && c.Standardize,
            ImageWidth = ImageSize(o)?.Width ?? c.ImageWidth,
            ImageHeight = ImageSize(o)?.Height ?? c.ImageHeight,
            ImageChannels = o.Int("channels") ?? c.ImageChannels,
            MonitorEvery = o.Has("monitor") || o.Has("tensorboard") || c.MonitorEvery is not null ? o.Int("monitor-every") ?? c.MonitorEvery ?? 10 : null,
        };
        try
        {
            c.Validate($"gradflow {o.Command}");
        }
        catch (FormatException e) when (e.Data.Contains(TrainingConfig.OutOfRangeField))
        {
            throw new UsageException(e.Message); // an out-of-range option value is a usage error (exit 2), like any other; a bad model stays an error (1)
        }
        return c;
    }

    /// <summary>--image-size WxH (or one number for a square), or null.</summary>
    private static (int Width, int Height)? ImageSize(CliOptions o)
    {
        if (o.String("image-size") is not { } v) return null;
        var parts = v.Split('x', 'X');
        if (parts.Length is 1 or 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int h) && w >= 1 && h >= 1)
            return (w, h);
        throw new UsageException($"gradflow {o.Command}: --image-size '{v}' is not WIDTHxHEIGHT (e.g. 32x32) or one number.");
    }

    internal static string Table(IReadOnlyList<EpochMetrics> epochs)
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine(" epoch   train loss   train acc   test loss   test acc          lr    time");
        sb.AppendLine(" -----   ----------   ---------   ---------   --------   ---------   -----");
        foreach (var e in epochs)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $" {e.Epoch,5}   {e.TrainLoss,10:F4}   {Percent(e.TrainAccuracy),9}   {e.TestLoss,9:F4}   {Percent(e.TestAccuracy),8}   {e.LearningRate,9:G3}   {e.Seconds,4:F1}s"));
        return sb.ToString().TrimEnd();
    }

    /// <summary>An accuracy as a percentage, or "-" for regression runs (NaN).</summary>
    internal static string Percent(double accuracy) =>
        double.IsNaN(accuracy) ? "-" : (accuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + "%";

    private static string Fmt(double v) => v.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>
    /// The live gradient display: in a terminal, the per-layer table redrawn in place at every sample;
    /// otherwise one summary line per sample (step, loss, gradient ratio, signal at the first and last layer).
    /// </summary>
    private sealed class LiveDisplay(TextWriter w, bool interactive)
    {
        private int _lines;

        public void Show(Diagnostics.MonitorSample s)
        {
            if (!interactive)
            {
                w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"\nmonitor step {s.Step}: loss {s.Loss:F4}, gradient ratio {s.GradientRatio:E2}, signal layer 1 {s.Layers[0].BackpropagatedSignalRms:E2}, layer {s.Layers.Length} {s.Layers[^1].BackpropagatedSignalRms:E2}"));
                return;
            }
            var table = $"monitor, step {s.Step}\n" + DiagnosisView.LayerTable(s);
            // the cursor is on the progress line just below the previous table: go up over the table, clear, redraw
            if (_lines > 0) w.Write($"\u001b[{_lines}A");
            w.Write("\r\u001b[J");
            w.WriteLine(table);
            _lines = table.Split('\n').Length;
        }
    }

    /// <summary>A one-line progress bar per epoch on stderr (redrawn at most 10 times a second), and an epoch summary line.</summary>
    private sealed class ProgressObserver(TextWriter progress, int epochs, int batches, TextWriter? summary) : ITrainingObserver
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _lastDraw = -1000;

        public void OnStepEnd(StepInfo s)
        {
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDraw < 100 && s.Batch + 1 < batches) return;
            _lastDraw = now;
            int width = 30, filled = (int)((long)(s.Batch + 1) * width / Math.Max(1, batches));
            progress.Write(string.Create(CultureInfo.InvariantCulture,
                $"\repoch {s.Epoch + 1}/{epochs} [{new string('#', filled)}{new string('.', width - filled)}] {s.Batch + 1}/{batches}  loss {s.RunningLoss:F4}  acc {Percent(s.RunningAccuracy)}"));
            progress.Flush();
        }

        public void OnEpochEnd(EpochMetrics m)
        {
            progress.WriteLine();
            summary?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {m.Epoch}: train loss {m.TrainLoss:F4} acc {Percent(m.TrainAccuracy)} | test loss {m.TestLoss:F4} acc {Percent(m.TestAccuracy)} ({m.Seconds:F1} s)"));
        }
    }
}
