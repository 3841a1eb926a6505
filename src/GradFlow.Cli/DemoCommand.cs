using System.CommandLine;
using System.Globalization;
using GradFlow.Data;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// <c>gradflow demo</c>: the vanishing gradient problem, measured, explained and repaired, end to end
/// in about two minutes on two cores: preflight of a 20-layer sigmoid network, diagnosis, automatic
/// repair, then the same training budget before and after with the monitor on; then a deep plain CNN,
/// a recurrent net through time and a Post-LN language model, each diagnosed and repaired; and the reports.
/// </summary>
internal static class DemoCommand
{
    // the options of 'demo'; with --model (or --model-file) it also takes the config's (TrainOptions.Config)
    public static readonly Option<string?> Out = Opt.String("out", "where the run directories go (default ./gradflow-demo)", "DIR");
    public static readonly Option<int?> Steps = Opt.Int("steps", "optimiser steps of each trial (default 300)");

    public static Command Declare()
    {
        var command = new Verb("demo", "the vanishing gradient problem measured, diagnosed and repaired, end to end",
            "The vanishing gradient problem measured, diagnosed and repaired, end to end. A 20-layer sigmoid network on Fashion-MNIST (or, when the " +
            "data set is not installed, a synthetic 784-input task): preflight with the per-layer signal and the diagnosis; the same budget (--steps) " +
            "for the network and for each remedy (ReLU + He, BatchNorm, zero-initialised residual connections) with the gradient monitor on; then " +
            "automatic repair in short trials. Then images: a plain CNN of 54 conv layers stays at chance and repair makes it a ResNet (skipped " +
            "without the data set). Then the same through time: a tanh RNN and a GRU on the adding problem at T = 100, and the repair of the RNN. " +
            "Then language: a 4-layer Post-LN transformer on the King James Bible by character, at AdamW 0.03 without warm-up, is diagnosed " +
            "(Post-LN without warm-up) and repaired, the repaired config trains for 600 steps and continues a prompt (skipped without the corpus). " +
            "With --model (or --model-file), the same story on that model, with data and settings as 'gradflow train' takes them: preflight, a " +
            "monitored trial of --steps, automatic repair in trials of the same length, and the report of the trial.");
        foreach (var o in TrainOptions.Config) command.Options.Add(o);
        command.Options.Add(Out);
        command.Options.Add(Steps);
        command.Validators.Add(r =>
        {
            bool custom = r.Has(TrainOptions.Model) || r.Has(TrainOptions.ModelFile);
            var modelOnly = TrainOptions.Config.Where(o => o != TrainOptions.DataDir && o != TrainOptions.Seed && r.Has(o)).Select(o => o.Name).ToArray();
            if (!custom && modelOnly.Length > 0) r.AddError($"{string.Join(", ", modelOnly)} go{(modelOnly.Length == 1 ? "es" : "")} with --model or --model-file (the built-in demo takes --out, --data-dir, --steps and --seed).");
            else if (custom && r.Valid(Steps) is < 1) r.AddError("--steps must be at least 1.");
            else if (!custom && r.Valid(Steps) is < 10) r.AddError("--steps must be at least 10.");
        });
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    public const string Model = "mlp 784-256x20-10 act=sigmoid init=xavier-uniform";

    /// <summary>The image part's deep plain CNN: a plain-56's widths without its stride-1 stem (a quarter of the cost).</summary>
    public const string PlainCnn = "cnn 1x28x28-c8s2-c8x17-c16s2-c16x17-c32s2-c32x17-gap-10";

    /// <summary>The runs of the demo: the problem and each remedy (label, directory, model).</summary>
    private static readonly (string Label, string Dir, string Model)[] Remedies =
    [
        ("sigmoid + Xavier (the problem)", "sigmoid", Model),
        ("ReLU + He", "relu-he", "mlp 784-256x20-10 act=relu init=he-normal"),
        ("sigmoid + Xavier + BatchNorm", "sigmoid-batchnorm", "mlp 784-256x20-10 act=sigmoid init=xavier-uniform norm=batch"),
        ("ReLU + He + residual (zero-init)", "relu-residual", "mlp 784-256x20-10 act=relu init=he-normal residual=zero"),
    ];

    private static int Run(ParseResult o, TextWriter stdout)
    {
        bool custom = o.Has(TrainOptions.Model) || o.Has(TrainOptions.ModelFile);
        string outDir = Path.GetFullPath(o.GetValue(Out) ?? "gradflow-demo");
        int steps = o.GetValue(Steps) ?? 300;
        if (custom) return OfModel(TrainOptions.BuildConfig(o, null), steps, outDir, stdout);
        var config = new TrainingConfig
        {
            Model = Model,
            Data = "fashion-mnist",
            DataDir = o.GetValue(TrainOptions.DataDir),
            Optimizer = OptimizerKind.Adam,
            LearningRate = 1e-3,
            Epochs = 10,
            BatchSize = 128,
            Seed = o.GetValue(TrainOptions.Seed) ?? 0,
            TestLimit = 5000,
        };
        stdout.WriteLine($"gradflow demo: reading the data and building the 20-layer network; run directories go to {outDir}");
        stdout.Flush();
        try
        {
            DataResolver.ResolveFashionMnist(config.DataDir);
        }
        catch (FileNotFoundException)
        {
            stdout.WriteLine("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); using a synthetic 784-input, 10-class teacher task instead.");
            config = config with { Data = "teacher", DataDir = null, TestLimit = null };
        }
        Heading(stdout, "1. The model");
        stdout.WriteLine($"{Model}: 20 hidden sigmoid layers of 256 units, Xavier initialisation, Adam, batch 128, data {config.Data}.");

        Heading(stdout, "2. Preflight: one forward and backward pass, before any training");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (preflight, sample) = Trials.Preflight(config);
        DiagnosisView.WriteLayerTable(stdout, sample);
        stdout.WriteLine();
        DiagnosisView.WriteVerdict(stdout, preflight);
        stdout.WriteLine($"({sw.ElapsedMilliseconds} ms including data and model set-up)");

        Heading(stdout, $"3. The same network and budget ({steps} steps), with each remedy");
        Directory.CreateDirectory(outDir);
        var runs = new List<(string Label, string Dir, TrialResult Trial)>();
        foreach (var (label, dir, model) in Remedies)
        {
            stdout.Write(string.Create(CultureInfo.InvariantCulture, $"{label,-34} ")); // the label at once: each trial takes seconds
            stdout.Flush();
            var trial = Trials.Run(config with { Model = model }, steps, every: 10, runDirectory: Path.Combine(outDir, dir));
            runs.Add((label, Path.Combine(outDir, dir), trial));
            var last = trial.Samples.Count > 0 ? trial.Samples[^1] : null;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"test accuracy {trial.TestAccuracy,6:P1}   gradient ratio {trial.Diagnosis.GradientRatio,9:E1}   signal layer 1 {last?.Layers[0].BackpropagatedSignalRms ?? double.NaN,9:E1}   {(trial.Diagnosis.Healthy ? "healthy" : string.Join(", ", trial.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind))))}"));
        }
        stdout.WriteLine();
        stdout.WriteLine("per-layer signal at the end of the sigmoid run and of the ReLU + He run:");
        DiagnosisView.WriteLayerTable(stdout, runs[0].Trial.Samples[^1]);
        DiagnosisView.WriteLayerTable(stdout, runs[1].Trial.Samples[^1]);

        Heading(stdout, "4. Automatic repair of the sigmoid network (short trials, same seed)");
        var repair = RepairCommand.Run(config, steps: 100, attempts: 3, stdout);
        AtomicFile.WriteAllText(Path.Combine(outDir, "repaired-config.json"), repair.Config.ToJson() + "\n");

        var imageRuns = config.Data == "fashion-mnist" ? Images(stdout, outDir, config) : [];

        int section = imageRuns.Length > 0 ? 6 : 5;
        var sequenceRuns = ThroughTime(stdout, outDir, config.Seed, section);
        var languageRuns = Language(stdout, outDir, config.Seed, section + 1);

        Heading(stdout, $"{section + 2}. Files");
        foreach (var r in runs) Reports.ReportWriter.Write(r.Dir);
        foreach (var r in sequenceRuns) Reports.ReportWriter.Write(r);
        var comparison = Reports.ReportWriter.WriteComparison(
            [.. runs.Select(r => (r.Label, r.Dir)), .. sequenceRuns.Select(d => (Path.GetFileName(d) == "rnn-adding" ? "tanh RNN, adding problem" : "GRU, adding problem", d))],
            Path.Combine(outDir, "report.html"));
        stdout.WriteLine($"report: {comparison} (all runs side by side); each run directory has its own report.html");
        stdout.WriteLine($"run directories: {string.Join(", ", runs.Select(r => r.Dir))} (config.json, metrics.jsonl with per-layer samples, diagnosis.json)");
        stdout.WriteLine($"repaired config: {Path.Combine(outDir, "repaired-config.json")} (gradflow train --config accepts it)");
        if (imageRuns.Length > 0)
        {
            foreach (var r in imageRuns) Reports.ReportWriter.Write(r.Dir);
            var images = Reports.ReportWriter.WriteComparison(imageRuns, Path.Combine(outDir, "report-images.html"));
            stdout.WriteLine($"images: {images} (the plain CNN and its repair side by side), {Path.Combine(outDir, "repaired-cnn-config.json")}");
        }
        stdout.WriteLine($"through time: {string.Join(", ", sequenceRuns)} (report.html with the time x layer heatmaps)");
        if (languageRuns.Length > 0)
        {
            foreach (var r in languageRuns) Reports.ReportWriter.Write(r.Dir);
            var language = Reports.ReportWriter.WriteComparison(languageRuns, Path.Combine(outDir, "report-language.html"));
            stdout.WriteLine($"language: {language} (the Post-LN trial and the repaired model side by side; per-head attention entropy in each run's report.html)");
        }
        return 0;
    }

    /// <summary>
    /// The image part: 54 conv layers of a plain CNN (BatchNorm, ReLU, He init: healthy signals) on 2000
    /// Fashion-MNIST images stay at chance where 18 such layers learn — the degradation of He et al. 2016;
    /// the diagnosis names the deep plain stack and repair makes the net a ResNet.
    /// </summary>
    private static (string Label, string Dir)[] Images(TextWriter stdout, string outDir, TrainingConfig mlp)
    {
        const int steps = 60;
        Heading(stdout, "5. Images: a deep plain CNN on Fashion-MNIST");
        var config = new TrainingConfig
        {
            Model = PlainCnn, Data = "fashion-mnist", DataDir = mlp.DataDir, TrainLimit = 2000, TestLimit = 1000,
            Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, BatchSize = 32, Epochs = 10, Seed = mlp.Seed,
        };
        stdout.WriteLine($"{PlainCnn}: 54 3x3 conv layers (stride 2 at layers 1, 19 and 37) with BatchNorm and ReLU, He init, no shortcuts;");
        stdout.WriteLine($"2000 training images, Adam 1e-3, batch 32, {steps} steps per trial.");
        var data = DataSources.Load(config, config.Description());
        string plainDir = Path.Combine(outDir, "cnn-plain"), repairedDir = Path.Combine(outDir, "cnn-repaired");
        var repair = DiagnoseAndRepair(stdout, config, steps, every: 3, data, attempts: 1, plainDir, t => Line("plain CNN, 54 layers", t), Path.Combine(outDir, "repaired-cnn-config.json"));
        var repaired = Trials.Run(repair.Config, steps, every: 3, data, runDirectory: repairedDir);
        stdout.WriteLine(Line("repaired: a ResNet", repaired));
        return [("plain CNN (54 layers)", plainDir), ("repaired into a ResNet", repairedDir)];
    }

    /// <summary>
    /// A part's story: a monitored trial of <paramref name="config"/> (its run directory <paramref name="dir"/>) with its
    /// line and verdict, then automatic repair in trials of the same length, whose config is written to <paramref name="repairedConfig"/>.
    /// </summary>
    private static RepairResult DiagnoseAndRepair(TextWriter stdout, TrainingConfig config, int steps, int every, DataBundle data, int attempts,
        string dir, Func<TrialResult, string> line, string repairedConfig)
    {
        var trial = Trials.Run(config, steps, every, data, runDirectory: dir);
        stdout.WriteLine(line(trial));
        stdout.WriteLine();
        DiagnosisView.WriteVerdict(stdout, trial.Diagnosis);
        stdout.WriteLine();
        stdout.WriteLine($"automatic repair (trials of {steps} steps):");
        var repair = RepairCommand.Run(config, steps, attempts, stdout, data);
        AtomicFile.WriteAllText(repairedConfig, repair.Config.ToJson() + "\n");
        return repair;
    }

    private static string Line(string label, TrialResult trial) => string.Create(CultureInfo.InvariantCulture,
        $"{label,-22} test accuracy {trial.TestAccuracy,6:P1}   loss {trial.FinalLoss,6:F3}   gradient ratio {trial.Diagnosis.GradientRatio,9:E1}   {(trial.Diagnosis.Healthy ? "healthy" : string.Join(", ", trial.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind))))}");

    /// <summary>The demo's story on any model: preflight, a monitored trial, repair in trials of the same length, the report.</summary>
    private static int OfModel(TrainingConfig config, int steps, string outDir, TextWriter stdout)
    {
        Heading(stdout, "1. The model");
        stdout.WriteLine($"{config.DescribeModel()}; data {config.Data}, {config.Optimizer.ToString().ToLowerInvariant()} lr {config.LearningRate.ToString("G3", CultureInfo.InvariantCulture)}, batch {config.BatchSize}.");

        Heading(stdout, "2. Preflight: one forward and backward pass, before any training");
        var (preflight, sample) = Trials.Preflight(config);
        DiagnosisView.WriteLayerTable(stdout, sample);
        stdout.WriteLine();
        DiagnosisView.WriteVerdict(stdout, preflight);

        Heading(stdout, $"3. A monitored trial of {steps} steps");
        string dir = Path.Combine(outDir, "trial");
        Directory.CreateDirectory(outDir);
        var trial = Trials.Run(config, steps, every: Math.Max(1, Math.Min(10, steps / 4)), runDirectory: dir);
        if (trial.Samples.Count > 0) DiagnosisView.WriteLayerTable(stdout, trial.Samples[^1]);
        stdout.WriteLine();
        DiagnosisView.WriteVerdict(stdout, trial.Diagnosis);

        Heading(stdout, $"4. Automatic repair (trials of {steps} steps, same seed)");
        var repair = RepairCommand.Run(config, steps, attempts: 2, stdout);
        AtomicFile.WriteAllText(Path.Combine(outDir, "repaired-config.json"), repair.Config.ToJson() + "\n");

        Heading(stdout, "5. Files");
        stdout.WriteLine($"report: {Reports.ReportWriter.Write(dir)}");
        stdout.WriteLine($"repaired config: {Path.Combine(outDir, "repaired-config.json")} (gradflow train --config accepts it)");
        return 0;
    }

    /// <summary>The adding problem at T = 100 (docs/recurrent.md): the tanh RNN's signal vanishes through time, a GRU's does not; repair switches the cell.</summary>
    private static string[] ThroughTime(TextWriter stdout, string outDir, ulong seed, int section)
    {
        Heading(stdout, $"{section}. Through time: the adding problem at T = 100, one recurrent layer of 64 units");
        var config = new TrainingConfig
        {
            Model = "rnn 2-64-1", Data = "adding", SequenceLength = 100, Optimizer = OptimizerKind.Adam, LearningRate = 1e-2,
            ClipNorm = 1, BatchSize = 32, Epochs = 1, MaxSteps = 4000, Seed = seed,
        };
        stdout.WriteLine("The sum of the two marked values of a 100-step sequence; predicting the mean scores 0.167. Adam 1e-2, clipping at 1, batch 32, 1000 steps each.");
        var dirs = new List<string>();
        TrialResult? rnn = null;
        foreach (var (label, dir, model) in new[] { ("tanh RNN", "rnn-adding", "rnn 2-64-1"), ("GRU", "gru-adding", "gru 2-64-1") })
        {
            string path = Path.Combine(outDir, dir);
            stdout.Write(string.Create(CultureInfo.InvariantCulture, $"{label,-10} "));
            stdout.Flush();
            var trial = Trials.Run(config with { Model = model }, 1000, every: 50, runDirectory: path);
            dirs.Add(path);
            rnn ??= trial;
            var signal = trial.Samples.Count > 0 ? trial.Samples[^1].TimeSignal?[^1] : null;
            int lag = signal is null ? -1 : Diagnoser.LagBelow(signal, new DiagnosisSettings().VanishingRatio);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"test MSE {trial.Result.Epochs[^1].TestLoss,7:F4}   signal at t = 1 / t = 100 {trial.Diagnosis.GradientRatio,9:E1}   below 1e-3 from lag {(lag < 0 ? "-" : lag.ToString(CultureInfo.InvariantCulture)),3}   {(trial.Diagnosis.Healthy ? "healthy" : string.Join(", ", trial.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind))))}"));
        }
        stdout.WriteLine();
        DiagnosisView.WriteVerdict(stdout, rnn!.Diagnosis);
        stdout.WriteLine();
        stdout.WriteLine("automatic repair of the tanh RNN (trials of 1000 steps):");
        RepairCommand.Run(config, steps: 1000, attempts: 2, stdout);
        return [.. dirs];
    }

    /// <summary>The language part's model: 4 Post-LN transformer layers of width 16 over 16 characters of the King James Bible.</summary>
    public const string LanguageModel = "transformer vocab=63 d=16 heads=2 layers=4 ctx=16 norm=post";

    /// <summary>
    /// The language-model part: <see cref="LanguageModel"/> at AdamW 0.03 without a warm-up does not learn, and
    /// the diagnosis names Post-LN without warm-up (Xiong et al. 2020); repair (trials of
    /// <paramref name="trialSteps"/> steps) rewrites it, the repaired config trains for
    /// <paramref name="trainSteps"/> steps, and the trained model continues a prompt, as 'gradflow generate'
    /// does. Skipped, saying why, when the corpus is not installed. Returns the two runs (label, directory).
    /// </summary>
    internal static (string Label, string Dir)[] Language(TextWriter stdout, string outDir, ulong seed, int section, int trialSteps = 80, int trainSteps = 600)
    {
        Heading(stdout, $"{section}. Language: a Post-LN transformer on the King James Bible, by character");
        var config = new TrainingConfig
        {
            Model = LanguageModel, Data = "kjv", Optimizer = OptimizerKind.AdamW, LearningRate = 0.03, BatchSize = 32,
            Epochs = 1, MaxSteps = trainSteps, TestLimit = 500, Seed = seed,
        };
        DataBundle data;
        try
        {
            data = DataSources.Load(config, config.Description());
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException) // no bible program, or no text for it
        {
            stdout.WriteLine($"skipped: {e.Message}");
            return [];
        }
        stdout.WriteLine($"{LanguageModel}: 4 Post-LN layers (LayerNorm after each residual sum), d = 16, 2 heads, 16 characters of context;");
        stdout.WriteLine($"AdamW 0.03 from the first step (no warm-up), batch 32; a trial of {trialSteps} steps. Uniform guessing is log2 63 = 5.98 bits per character.");
        string brokenDir = Path.Combine(outDir, "lm-post-ln"), repairedDir = Path.Combine(outDir, "lm-repaired");
        var repair = DiagnoseAndRepair(stdout, config, trialSteps, every: 4, data, attempts: 2, brokenDir, t => LanguageLine("Post-LN, no warm-up", t),
            Path.Combine(outDir, "repaired-lm-config.json"));
        stdout.WriteLine();
        stdout.WriteLine($"the repaired config trained for {trainSteps} steps:");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var trained = Trials.Run(repair.Config, trainSteps, every: 10, data, runDirectory: repairedDir);
        stdout.WriteLine(LanguageLine("repaired", trained) + string.Create(CultureInfo.InvariantCulture, $"   ({sw.Elapsed.TotalSeconds:F0} s)"));
        const string prompt = "And God said";
        stdout.WriteLine();
        stdout.WriteLine($"gradflow generate --model {repairedDir} --prompt \"{prompt}\" --length 100 --seed 1");
        stdout.WriteLine(GenerateCommand.FromRun(repairedDir, prompt, length: 100, temperature: 0.8, seed: 1).ReplaceLineEndings(" / "));
        return [("Post-LN, no warm-up", brokenDir), ("repaired", repairedDir)];
    }

    private static string LanguageLine(string label, TrialResult trial)
    {
        double test = trial.Result.Epochs.Count > 0 ? trial.Result.Epochs[^1].TestLoss : double.NaN;
        return string.Create(CultureInfo.InvariantCulture,
            $"{label,-22} training loss {trial.FinalLoss,6:F3}   validation {test / Math.Log(2),5:F2} bits per character   gradient ratio {trial.Diagnosis.GradientRatio,9:E1}   {(trial.Diagnosis.Healthy ? "healthy" : string.Join(", ", trial.Diagnosis.Problems.Select(p => Catalogue.KindName(p.Kind))))}");
    }

    private static void Heading(TextWriter w, string title)
    {
        w.WriteLine();
        w.WriteLine(title);
        w.WriteLine(new string('-', title.Length));
    }
}
