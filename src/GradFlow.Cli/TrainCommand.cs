using System.Diagnostics;
using System.Globalization;
using System.CommandLine;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow train</c>: trains any model description on a data set, with live progress (<see cref="TrainingView"/>) and a final table.</summary>
internal static class TrainCommand
{
    // the options of 'train' beyond the config's (TrainOptions.Config); one line each
    public static readonly Option<string?> Out = Opt.String("out",
        "run directory: config.json, metrics.jsonl, checkpoints/ (refused when DIR already holds a run: --resume it, or --force)", "DIR");
    public static readonly Option<bool> Force = Opt.Flag("force", "with --out: delete the run already in DIR and start over");
    public static readonly Option<string?> Resume = Opt.String("resume",
        "continue the run in DIR from its newest intact checkpoint (its config, monitoring included; options given override it)", "DIR");
    public static readonly Option<bool> Json = Opt.Flag("json",
        "print JSON lines instead of the table: one per epoch and a last one for the run, as in metrics.jsonl (\"type\": \"epoch\", \"end\")");
    public static readonly Option<string?> Tensorboard = Opt.String("tensorboard",
        "TensorBoard event files in DIR: loss, accuracy, learning rate, weight and gradient histograms, and (turning on --monitor) the gradient " +
        "ratio, per-layer signal RMS, weight-gradient norm, update ratio, saturation, dead units and the verdict as text", "DIR");
    public static readonly Option<bool> ServeFlag = Opt.Flag("serve",
        "the live dashboard of this run in the browser (gradflow serve), from the start of training until Ctrl+C; needs --out or --resume; " +
        "--port and --host as for 'gradflow serve'");
    public static readonly Option<bool> Monitor = Opt.Flag("monitor",
        "live per-layer gradient display (every --monitor-every steps, default 10), monitor samples in metrics.jsonl, and a diagnosis at the end");

    /// <summary>The 'train' command: the config's options, then the run's, and the rules between them.</summary>
    public static Command Declare()
    {
        var command = new Verb("train", "train a model spec on a data set",
            "Trains a model (any network description: MLP, conv net or ResNet, recurrent network, transformer) and prints a table of per-epoch metrics. Options override --config.");
        foreach (var o in TrainOptions.Config) command.Options.Add(o);
        foreach (Option o in new Option[] { Out, Force, Resume, Json, Tensorboard, ServeFlag, ServeCommand.Port, ServeCommand.Host, Monitor }) command.Options.Add(o);
        command.Validators.Add(r =>
        {
            if ((r.Has(ServeCommand.Port) || r.Has(ServeCommand.Host)) && !r.Has(ServeFlag)) r.AddError("--port and --host go with --serve.");
            else if (r.Has(ServeFlag) && !r.Has(Out) && !r.Has(Resume)) r.AddError("--serve shows the run directory: give --out DIR (or --resume DIR).");
            else if (r.Has(Resume) && r.Has(Out)) r.AddError("give either --out or --resume, not both.");
            else if (r.Has(Resume) && r.Has(TrainOptions.ConfigFile)) r.AddError("give either --config or --resume (which continues with the run's own config.json), not both.");
            else if (r.Has(Force) && !r.Has(Out)) r.AddError("--force goes with --out (it starts the run in that directory over).");
        });
        command.NoFileFor(Out, Resume);
        command.SetAction(r => Run(r, r.Out(), r.Err(), CancellationToken.None));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        string? runDir = o.GetValue(Resume) ?? o.GetValue(Out);
        bool startOver = o.Has(Out) && RunDirectory.HoldsRun(runDir!);
        if (startOver && !o.Has(Force))
            throw new UsageException($"gradflow train: {runDir} already holds a run (config.json, metrics.jsonl). " +
                $"Use --resume {runDir} to continue it, or --force to delete it and start over.");
        var config = TrainOptions.BuildConfig(o, o.Has(Resume) ? Path.Combine(o.GetValue(Resume)!, "config.json") : null, monitor: o.Has(Monitor) || o.Has(Tensorboard));
        var world = Communicators.FromEnvironment();
        if (world.Size > 1)
        {
            config = config with { MicroBatches = config.MicroBatches ?? world.Size };
            if (config.MicroBatches % world.Size != 0)
                throw new UsageException($"gradflow train: {config.MicroBatches} micro-batches (--micro-batches{(o.Has(Resume) ? ", or the resumed run's config" : "")}) cannot be shared by {world.Size} processes; run a number of processes that divides it.");
            if (world.Rank > 0) stdout = stderr = TextWriter.Null;
        }
        // the dashboard's port is taken first: one already in use is refused before the run directory is created and the data loaded
        var dashboard = o.Has(ServeFlag) && world.Rank == 0 ? ServeCommand.Start(o, [runDir!], cancellation) : null;
        try
        {
            return Run(o, runDir, startOver, config, world, dashboard, stdout, stderr, cancellation);
        }
        catch when (dashboard is not null)
        {
            dashboard.DisposeAsync().AsTask().GetAwaiter().GetResult(); // the port is given back before the error is reported
            throw;
        }
    }

    /// <summary>The run, once its config is built and its dashboard (with --serve, on rank 0) listens.</summary>
    private static int Run(ParseResult o, string? runDir, bool startOver, TrainingConfig config, ICommunicator world, Dashboard.DashboardServer? dashboard,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        // one writer per run directory; a run that appeared while this one set up is another process's
        IDisposable? held = null;
        bool created = runDir is not null && !Directory.Exists(runDir);
        if (runDir is not null && world.Rank == 0)
        {
            try
            {
                held = RunDirectory.Lock(runDir);
            }
            catch (IOException e)
            {
                throw new UsageException($"gradflow train: {e.Message}");
            }
            if (o.Has(Out) && !startOver && RunDirectory.HoldsRun(runDir))
            {
                held.Dispose();
                throw new UsageException($"gradflow train: {runDir} already holds a run (written while this one set up). Use --resume {runDir} to continue it, or --force to start over.");
            }
        }
        using var _ = held;
        Trainer trainer;
        try
        {
            trainer = new Trainer(config) { Communicator = world };
        }
        catch when (created && world.Rank == 0)
        {
            // the data or the model failed before anything was written: the directory this run created goes (an empty one was
            // left behind, and a rerun then had to say --force)
            held?.Dispose();
            if (Directory.Exists(runDir) && !Directory.EnumerateFileSystemEntries(runDir!).Any()) Directory.Delete(runDir!);
            throw;
        }
        trainer.Warning += stderr.WriteLine;
        if (startOver && world.Rank == 0) new RunDirectory(runDir!).Clear();
        // every process has checked the directory before rank 0 writes into it
        world.Barrier();
        bool json = o.Has(Json);
        var view = new TrainingView(stdout, stderr, config.Epochs, trainer.Loader.BatchCount, json);
        trainer.AddObserver(view);
        // every process monitors (the statistics are combined over the global batch, docs/distributed.md); rank 0 alone writes them
        bool writer = world.Rank == 0;
        using var tensorboard = o.GetValue(Tensorboard) is { } tbDir && writer ? new Training.TensorBoard.EventWriter(tbDir) : null;
        if (tensorboard is not null) trainer.AddObserver(new Training.TensorBoard.TensorBoardObserver(tensorboard, config.MonitorEvery ?? 10));
        // the evidence a trial's verdict reads (docs/diagnosis.md), so that the end of a run is judged as a trial is
        // (a run too short for the loss-trend rules' samples at that step samples more often, as a trial does, unless --monitor-every says)
        using var watch = config.MonitorEvery is { } every ? new Diagnostics.RunWatch(trainer, config, every, exactEvery: o.Has(TrainOptions.MonitorEvery)) : null;
        if (watch is not null)
        {
            if (runDir is not null && writer) watch.WriteTo(new RunDirectory(runDir));
            if (tensorboard is not null) Diagnostics.TensorBoardLog.WriteTo(watch.Monitor, tensorboard);
            watch.Monitor.SampleCompleted += view.ShowSample;
        }
        if (!json)
        {
            stdout.WriteLine(trainer.Spec is { } spec ? $"model: {spec} ({trainer.Model.ParameterCount():N0} parameters)" : $"model: {config.DescribeModel()}");
            stdout.WriteLine($"data: {config.Data}, {trainer.Data.Train.Count} training / {trainer.Data.Test.Count} test examples; " +
                $"optimizer {config.Optimizer.ToString().ToLowerInvariant()} lr {Fmt(config.LearningRate)}; seed {config.Seed}");
        }
        if (dashboard is not null)
        {
            stderr.WriteLine($"dashboard: {dashboard.Address}#run={Uri.EscapeDataString(Dashboard.DashboardServer.OwnRunId(runDir!))}");
            stderr.Flush();
        }
        var result = view.Run(() => trainer.Run(runDir, resume: o.Has(Resume), cancellation));
        Diagnostics.Diagnosis? verdict = null;
        if (watch is not null)
        {
            var diagnosis = watch.Diagnose(result);
            if (runDir is not null && writer) AtomicFile.WriteAllText(Path.Combine(runDir, "diagnosis.json"), Diagnostics.DiagnosisJson.Serialize(diagnosis));
            verdict = diagnosis;
            if (tensorboard is not null) Diagnostics.TensorBoardLog.WriteVerdict(tensorboard, DiagnosisView.Verdict(diagnosis), result.Steps);
        }
        if (json)
        {
            // the lines metrics.jsonl holds for them (the epochs were printed with the record's own PascalCase names)
            foreach (var e in result.Epochs) stdout.WriteLine(RunDirectory.EpochLine(e));
            stdout.WriteLine(RunDirectory.EndLine(result));
        }
        else
        {
            stdout.WriteLine();
            TrainingView.WriteEpochTable(stdout, result.Epochs);
            if (DataSources.IsCorpus(config.Data) && result.Epochs.Count > 0)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"validation: {result.Epochs[^1].TestLoss:F4} nats per character = {result.Epochs[^1].TestLoss / Math.Log(2):F4} bits per character"));
            stdout.WriteLine($"stopped: {result.Stop}{(result.Message is null ? "" : " - " + result.Message)}; {result.Steps} steps in {result.Seconds:F1} s");
            if (runDir is not null) stdout.WriteLine($"run directory: {Path.GetFullPath(runDir)}");
            if (verdict is not null) DiagnosisView.WriteVerdict(stdout, verdict);
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

    private static string Fmt(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
