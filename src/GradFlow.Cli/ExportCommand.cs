using System.CommandLine;
using GradFlow.Training.Onnx;

namespace GradFlow.Cli;

/// <summary><c>gradflow export</c>: a trained run's model as an ONNX file.</summary>
internal static class ExportCommand
{
    // the arguments and options of 'export'; one line each
    public static readonly Argument<string> RunDir = new("RUN") { Description = "the run directory (its config.json and newest intact checkpoint)" };
    public static readonly Option<string?> Onnx = new("--onnx") { Description = "the ONNX file to write", HelpName = "FILE.onnx", Required = true };

    public static Command Declare()
    {
        var command = new Verb("export", "a trained run's model as an ONNX file",
            "Writes the model of the run directory RUN (its config.json's model with the weights of its newest intact checkpoint) as an ONNX model " +
            "(opset 17) for inference: input 'input' [N, ...the model's input shape], output 'output'; BatchNorm uses its running statistics and " +
            "dropout is left out. Any network description exports (MLP, conv net and ResNet, RNN/LSTM/GRU; docs/onnx.md). The file is written " +
            "atomically. Exit code: 0 written, 1 error, 2 usage.")
        { RunDir, Onnx };
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        string run = o.GetValue(RunDir)!;
        string path = o.GetValue(Onnx)!;
        var network = OnnxExport.LoadRun(run);
        OnnxExport.Write(network, path);
        stdout.WriteLine($"wrote {path}: {network.Description.Describe()}");
        return 0;
    }
}
