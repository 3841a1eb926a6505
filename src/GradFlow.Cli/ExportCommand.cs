using System.CommandLine;
using GradFlow.Training;
using GradFlow.Training.Onnx;

namespace GradFlow.Cli;

/// <summary><c>gradflow export</c>: a trained run's model as an ONNX file.</summary>
internal static class ExportCommand
{
    // the arguments and options of 'export'; one line each
    public static readonly Argument<string> RunDir = new("RUN") { Description = "the run directory (its config.json and newest intact checkpoint)" };
    public static readonly Option<string?> Onnx = new("--onnx") { Description = "the ONNX file to write", HelpName = "FILE.onnx", Required = true };
    public static readonly Option<bool> WithPreprocessing = Opt.Flag("with-preprocessing", "standardise in the graph with the run's statistics (preprocessing.json): the model takes the values as the data file holds them");

    public static Command Declare()
    {
        var command = new Verb("export", "a trained run's model as an ONNX file",
            "Writes the model of the run directory RUN (its config.json's model with the weights of its newest intact checkpoint) as an ONNX model " +
            "(opset 17) for inference: input 'input' [N, ...the model's input shape], output 'output'; BatchNorm uses its running statistics and " +
            "dropout is left out. Any network description exports (MLP, conv net and ResNet, RNN/LSTM/GRU; docs/onnx.md). A run on a data file " +
            "adds its class names and standardisation statistics (preprocessing.json) as metadata (gradflow.classes, gradflow.input_mean, " +
            "gradflow.input_std); the model takes standardised inputs unless --with-preprocessing puts the standardisation into the graph. " +
            "The file is written atomically. Exit code: 0 written, 1 error, 2 usage.")
        { RunDir, Onnx, WithPreprocessing };
        command.SetAction(r => Run(r, r.Out(), r.Err()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout, TextWriter stderr)
    {
        string run = o.GetValue(RunDir)!;
        string path = o.GetValue(Onnx)!;
        var network = OnnxExport.LoadRun(run, out string checkpoint);
        var preprocessing = Preprocessing.Read(run);
        bool standardize = o.GetValue(WithPreprocessing);
        if (standardize && preprocessing?.Mean is null)
            throw new ArgumentException($"--with-preprocessing: {run} has no standardisation statistics to put into the graph " +
                (preprocessing is null ? $"(no {Preprocessing.FileName}: a run on a built-in data set, or one trained before it was written)." : "(its inputs were kept as read)."));
        OnnxExport.Write(network, path, preprocessing, standardize);
        stdout.WriteLine($"wrote {path}: {network.Description.Describe()}");
        if (!standardize && preprocessing?.Mean is not null)
            stdout.WriteLine($"the model takes standardised inputs, (x - mean) / std with the statistics of {Path.Combine(run, Preprocessing.FileName)} " +
                "(also in the model's metadata); --with-preprocessing puts them into the graph.");
        // a run that stopped on a non-finite loss or gradient keeps the checkpoint of its last whole epoch, which may already be
        // diverging (a loss of 1e27, a NaN test loss): exported without a word, it passed for a trained model
        if (RunDirectory.EndStop(run) is ("NonFiniteLoss" or "NonFiniteGradient") and var stop)
            stderr.WriteLine($"gradflow export: warning: the run stopped on a non-finite {(stop == "NonFiniteLoss" ? "loss" : "gradient")}; " +
                $"{Path.GetFileName(checkpoint)} is its last checkpoint{EpochFigures(run, checkpoint)}, saved before that step: it may be diverging.");
        return 0;
    }

    /// <summary>", whose epoch ended at a training loss of … and a test loss of …" from the run's epoch line of <paramref name="checkpoint"/>, or "".</summary>
    private static string EpochFigures(string run, string checkpoint)
    {
        string metrics = Path.Combine(run, "metrics.jsonl");
        if (!int.TryParse(Path.GetFileNameWithoutExtension(checkpoint).AsSpan("epoch-".Length), out int epoch) || !File.Exists(metrics)) return "";
        foreach (var line in File.ReadLines(metrics))
        {
            if (!line.StartsWith("{\"type\":\"epoch\"", StringComparison.Ordinal)) continue;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                var e = doc.RootElement;
                if (e.GetProperty("epoch").GetInt32() == epoch)
                    return $", whose epoch ended at a training loss of {e.GetProperty("train_loss")} and a test loss of {e.GetProperty("test_loss")}";
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                return "";
            }
        }
        return "";
    }
}
