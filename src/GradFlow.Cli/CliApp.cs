using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Reflection;
using GradFlow.Kernels;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// The <c>gradflow</c> command, declared with System.CommandLine: each verb declares its options in its own
/// file (<c>XCommand.Declare</c>; the training config's in <see cref="TrainOptions"/>), and this class puts
/// them together. Exit codes: 0 done or healthy, 1 error, 2 usage (every parse error, every rule between
/// options, every out-of-range value), 3 problem found (diagnose, repair).
/// </summary>
public static class CliApp
{
    /// <summary>Runs the command with <paramref name="args"/>, writing to the given writers.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var result = TheRoot.Value.Parse(args.Length == 0 ? ["--help"] : args);
        string verb = result.CommandResult.Command is RootCommand ? "" : result.CommandResult.Command.Name;
        if (result.Action is ParseErrorAction)
        {
            WriteUsageErrors(result, verb, stderr);
            return 2;
        }
        try
        {
            int code = result.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
            return args.Length == 0 ? 2 : code; // no command: the help, as a usage error
        }
        catch (UsageException e)
        {
            stderr.WriteLine(Communicators.RankPrefix + Prefixed(verb, e.Message));
            return EndJob(2);
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or NotSupportedException
                                      or ArgumentException or InvalidOperationException or IOException)
        {
            stderr.WriteLine(Communicators.RankPrefix + Prefixed(verb, e.Message));
            return EndJob(1);
        }
        catch (OutOfMemoryException)
        {
            // an allocation beyond the process's memory, such as a batch's activations (the parameters are checked up front);
            // unhandled, the runtime printed "Out of memory." and aborted
            long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            string bytes = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{limit:N0} bytes ({limit / (double)(1L << 30):F1} GiB)");
            stderr.WriteLine(Communicators.RankPrefix + Prefixed(verb, $"out of memory: an allocation did not fit in the {bytes} this process can allocate " +
                "(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes). Use a smaller --batch-size, smaller inputs, or fewer or narrower layers."));
            return EndJob(1);
        }
    }

    /// <summary>
    /// The command tree, built once: its options are static fields shared by verbs, and System.CommandLine
    /// links each to its parents when it is added, so a tree per call would grow them (and race in parallel calls).
    /// Actions write to the writers of the invocation (<see cref="Opt.Out"/>, <see cref="Opt.Err"/>).
    /// </summary>
    private static readonly Lazy<RootCommand> TheRoot = new(Root);

    /// <summary>The root command with every verb.</summary>
    private static RootCommand Root()
    {
        var root = new RootCommand(
            "gradflow - train deep networks and see, explain and fix their gradient flow.\n" +
            "Exit codes: 0 done (diagnose, repair: healthy), 1 error, 2 usage, 3 problem found (diagnose, repair).")
        {
            DemoCommand.Declare(),
            TrainCommand.Declare(),
            DiagnoseCommand.Declare(),
            RepairCommand.Declare(),
            ReportCommand.Declare(),
            ServeCommand.Declare(),
            EvaluateCommand.Declare(),
            SweepCommand.Declare(),
            CatalogueCommand.Declare(),
            GenerateCommand.Declare(),
            GradsCommand.Declare(),
            ExportCommand.Declare(),
            PredictCommand.Declare(),
            CompletionCommand.Declare(),
        };
        root.HelpName = "gradflow"; // also when the assembly runs as 'dotnet GradFlow.Cli.dll' or inside the tests' process
        foreach (var option in root.Options)
            if (option is VersionOption version)
            {
                version.Description = "print the version, the kernel instruction set and thread count";
                version.Action = new VersionAction();
            }
            else if (option is HelpOption { Action: HelpAction help } helpOption)
            {
                help.MaxWidth = 110; // a terminal or a file alike: lines that wrap at a readable width
                helpOption.Action = new VerbHelpAction(help);
            }
        return root;
    }

    /// <summary>
    /// Every parse error once, as "gradflow VERB: message", then System.CommandLine's suggestions for a
    /// misspelt verb or option ("Did you mean ..."), then where the help is.
    /// </summary>
    private static void WriteUsageErrors(ParseResult result, string verb, TextWriter stderr)
    {
        var messages = result.Errors.Select(e => e.Message).Distinct().ToList();
        if (messages.Count > 1) messages.Remove(LocalizedRequiredCommand(result)); // 'gradflow trian': the unknown word says it
        foreach (var message in messages)
            stderr.WriteLine(Communicators.RankPrefix + Prefixed(verb, message));
        foreach (var token in result.UnmatchedTokens)
        {
            var suggestions = Suggestions(result.CommandResult.Command, token);
            if (suggestions.Length > 0) stderr.WriteLine($"'{token}' was not matched. Did you mean {string.Join(" or ", suggestions.Select(s => $"'{s}'"))}?");
        }
        stderr.WriteLine($"Run 'gradflow{(verb.Length == 0 ? "" : " " + verb)} --help' for usage.");
    }

    /// <summary>
    /// The verbs and options of <paramref name="command"/> nearest to <paramref name="token"/> in edit distance (at most
    /// a third of the name, or 2), nearest first. System.CommandLine's own typo correction (ParseErrorAction) prints
    /// in its own format, apart from the errors, and offers '-h' for a stray value; this keeps one format.
    /// </summary>
    internal static string[] Suggestions(Command command, string token)
    {
        var names = command.Subcommands.Select(c => c.Name).Concat(command.Options.Where(o => !o.Hidden).Select(o => o.Name)).Distinct().ToArray();
        return [.. names.Select(n => (Name: n, Distance: Distance(token, n)))
            .Where(x => x.Distance <= Math.Max(2, x.Name.Length / 3))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal).Take(3).Select(x => x.Name)];
    }

    /// <summary>Levenshtein distance, for suggestions.</summary>
    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int previous = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int current = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), previous + (a[i - 1] == b[j - 1] ? 0 : 1));
                previous = current;
            }
        }
        return row[b.Length];
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
        message.StartsWith("gradflow ", StringComparison.Ordinal) || message.StartsWith("gradflow:", StringComparison.Ordinal) ? message
        : verb.Length == 0 ? "gradflow: " + message
        : message.StartsWith(verb + ": ", StringComparison.Ordinal) ? "gradflow " + message
        : $"gradflow {verb}: {message}";

    /// <summary>Version, kernel instruction set and thread count, e.g. <c>gradflow 0.1.0 (kernels: avx512, threads: 2)</c>.</summary>
    public static string VersionLine()
    {
        var version = typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        int plus = version.IndexOf('+');
        if (plus >= 0) version = version[..plus];
        return $"gradflow {version} (kernels: {KernelIsa.Name(KernelIsa.Best)}, threads: {KernelThreads.Count})";
    }

    private static string LocalizedRequiredCommand(ParseResult result) =>
        result.Errors.FirstOrDefault(e => e.Message.StartsWith("Required command", StringComparison.Ordinal))?.Message ?? "";

    /// <summary>System.CommandLine's generated help, then the verb's details.</summary>
    private sealed class VerbHelpAction(HelpAction generated) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var stdout = parseResult.Out();
            generated.Invoke(parseResult);
            if (parseResult.CommandResult.Command is Verb { Details: { Length: > 0 } details })
            {
                stdout.WriteLine("Details:");
                foreach (var line in Wrap(details, 100)) stdout.WriteLine("  " + line);
                stdout.WriteLine();
            }
            return 0;
        }

        private static IEnumerable<string> Wrap(string text, int width)
        {
            var line = new System.Text.StringBuilder();
            foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (line.Length > 0 && line.Length + 1 + word.Length > width)
                {
                    yield return line.ToString();
                    line.Clear();
                }
                if (line.Length > 0) line.Append(' ');
                line.Append(word);
            }
            if (line.Length > 0) yield return line.ToString();
        }
    }

    private sealed class VersionAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.Out().WriteLine(VersionLine());
            return 0;
        }
    }
}
