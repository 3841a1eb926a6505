using System.Reflection;
using GradFlow.Kernels;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>The <c>gradflow</c> command. Exit codes: 0 done or healthy, 1 error, 2 usage, 3 problem found (diagnose, repair).</summary>
public static class CliApp
{
    /// <summary>Runs the command with <paramref name="args"/>, writing to the given writers.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args is ["--help"] or ["-h"] or ["help"])
        {
            stdout.Write(Help);
            return args.Length == 0 ? 2 : 0;
        }
        if (args is ["--version"])
        {
            stdout.WriteLine(VersionLine());
            return 0;
        }
        try
        {
            return args[0] switch
            {
                "train" => TrainCommand.Run(args[1..], stdout, stderr, CancellationToken.None),
                "grads" => GradsCommand.Run(args[1..], stdout, stderr),
                "demo" => DemoCommand.Run(args[1..], stdout, stderr),
                "diagnose" => DiagnoseCommand.Run(args[1..], stdout, stderr),
                "repair" => RepairCommand.Run(args[1..], stdout, stderr),
                "report" => ReportCommand.Run(args[1..], stdout, stderr),
                "serve" => ServeCommand.Run(args[1..], stdout, stderr, CancellationToken.None),
                "evaluate" => EvaluateCommand.Run(args[1..], stdout, stderr),
                "catalogue" => CatalogueCommand.Run(args[1..], stdout, stderr),
                "generate" => GenerateCommand.Run(args[1..], stdout, stderr),
                "export" => ExportCommand.Run(args[1..], stdout, stderr),
                _ => Unknown(args[0], stderr),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine(Communicators.RankPrefix + e.Message);
            return EndJob(2);
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or NotSupportedException
                                      or ArgumentException or InvalidOperationException or IOException)
        {
            stderr.WriteLine(Communicators.RankPrefix + Prefixed(args[0], e.Message));
            return EndJob(1);
        }
    }

    /// <summary>
    /// After an error on this process under mpirun, once MPI is initialised: ends the job (MPI_Abort), so that the other processes
    /// do not wait for this one in a collective, nor this one in MPI_Finalize, forever. Otherwise returns <paramref name="code"/>
    /// (before MPI_Init, a process exiting non-zero makes mpirun end the job). A run that stops by itself (done, a non-finite
    /// loss, a problem found) stops the same way on every process and ends without an abort, so rank 0 finishes writing its files.
    /// </summary>
    private static int EndJob(int code)
    {
        if (Communicators.Initialised is { Size: > 1 } world) world.Abort(code);
        return code;
    }

    /// <summary>"gradflow VERB: message", without repeating a prefix the message already carries.</summary>
    internal static string Prefixed(string verb, string message) =>
        message.StartsWith("gradflow ", StringComparison.Ordinal) ? message
        : message.StartsWith(verb + ": ", StringComparison.Ordinal) ? "gradflow " + message
        : $"gradflow {verb}: {message}";

    private static int Unknown(string command, TextWriter stderr)
    {
        stderr.WriteLine($"gradflow: unknown command or option '{command}'. Run 'gradflow --help'.");
        return 2;
    }

    /// <summary>Version, kernel instruction set and thread count, e.g. <c>gradflow 0.1.0 (kernels: avx512, threads: 2)</c>.</summary>
    public static string VersionLine()
    {
        var version = typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        int plus = version.IndexOf('+');
        if (plus >= 0) version = version[..plus];
        return $"gradflow {version} (kernels: {KernelIsa.Name(KernelIsa.Best)}, threads: {KernelThreads.Count})";
    }

    private const string Help = """
        gradflow - train deep networks and see, explain and fix their gradient flow

        Usage: gradflow <command> [options]

        Commands:
          demo        the vanishing gradient problem measured, diagnosed and repaired, end to end
          train       train a model spec on a data set (gradflow train --help)
          diagnose    measure gradient flow, detect vanishing/exploding gradients, say why and what to change
          repair      apply remedies in short trials until the gradient flow is healthy
          report      self-contained HTML report of a run directory, or a comparison of several
          serve       live dashboard of the runs under a folder, in the browser (localhost)
          evaluate    measure diagnosis and repair on a labelled catalogue of configurations
          catalogue   generate a catalogue labelled by the outcomes of full training runs
          generate    sample text from a trained character-level language model
          grads       gradients of one batch, written to safetensors for comparison with other frameworks
          export      a trained run's model as an ONNX file (gradflow export RUN --onnx FILE.onnx)

        Options:
          --version   print the version, the kernel instruction set and thread count
          -h, --help  print this help

        Exit codes: 0 done (diagnose, repair: healthy), 1 error, 2 usage, 3 problem found (diagnose, repair).

        """;
}
