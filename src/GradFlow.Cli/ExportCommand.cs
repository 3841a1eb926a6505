using GradFlow.Training.Onnx;

namespace GradFlow.Cli;

/// <summary><c>gradflow export</c>: a trained run's model as an ONNX file.</summary>
internal static class ExportCommand
{
    public const string Help = """
        Usage: gradflow export RUN --onnx FILE.onnx

        Writes the model of the run directory RUN (its config.json's model with the weights of its
        newest intact checkpoint) as an ONNX model (opset 17) for inference: input 'input'
        [N, ...the model's input shape], output 'output'; BatchNorm uses its running statistics and
        dropout is left out. Any network description exports (MLP, conv net and ResNet, RNN/LSTM/GRU;
        docs/onnx.md). The file is written atomically.
        Exit code: 0 written, 1 error, 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        if (args.Count == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
            throw new UsageException("gradflow export: the run directory is required: gradflow export RUN --onnx FILE.onnx");
        string run = args[0];
        var o = new CliOptions("export", args.Skip(1).ToArray(), ["onnx"], []);
        string path = o.String("onnx") ?? throw new UsageException("gradflow export: --onnx FILE.onnx is required.");
        var network = OnnxExport.LoadRun(run);
        OnnxExport.Write(network, path);
        stdout.WriteLine($"wrote {path}: {network.Description.Describe()}");
        return 0;
    }
}
