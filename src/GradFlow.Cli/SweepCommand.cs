using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// <c>gradflow sweep --grid KEY=V,V,… --out DIR</c>: every combination of the grid's values is a monitored run with a verdict;
/// results in DIR (results.jsonl, results.md), restartable, spread over threads (--jobs) or the processes of mpirun.
/// </summary>
internal static partial class SweepCommand
{
    // the options of 'sweep' beyond the config's (TrainOptions.Config); one line each
    public static readonly Option<string[]> Grid = new("--grid")
    {
        Description = "an axis of the grid: KEY=V,V,... where KEY is an option of the config without its dashes (lr, batch-size, optimizer, " +
            "clip-norm, monitor-every, ...; a unique prefix will do: batch) and each V is parsed as that option's value, or a key of an mlp/rnn/lstm/gru " +
            "spec (act, init, norm, ...), set in --model's text; repeat for more axes (the first varies slowest)",
        HelpName = "KEY=V,V,...",
        Required = true,
        AllowMultipleArgumentsPerToken = false,
    };
    public static readonly Option<int?> Steps = Opt.Int("steps", "each point is a trial of N steps (default: the config's full training run)");
    public static readonly Option<int?> Every = Opt.Int("every",
        "monitor sample every N steps (default 10, and a point too short for 8 samples at 10 samples more often; an explicit N, or --monitor-every N, is kept)");
    public static readonly Option<int?> Jobs = Opt.Jobs("points run at once on threads (the results are the same for any N; under mpirun each process runs N)");
    public static readonly Option<string?> Out = new("--out")
    {
        Description = "the sweep directory: sweep.json, results.jsonl (one line per point), results.md; run the same command again to finish an interrupted sweep",
        HelpName = "DIR",
        Required = true,
    };

    public static Command Declare()
    {
        var command = new Verb("sweep", "train every point of a hyperparameter grid with the monitor and a verdict; restartable, spread over threads or mpirun",
            "Trains every combination of the --grid values (a full training run, or a trial of --steps steps) with the gradient monitor, and " +
            "records per point the final loss, test loss and accuracy, the gradient ratio and the verdict: one JSON line per point in " +
            "DIR/results.jsonl, in grid order (the file is rewritten atomically with each point), and the table DIR/results.md with the best " +
            "point marked (highest test accuracy, else lowest test loss). Every other option is as in 'gradflow train'. Run the same command " +
            "again in DIR to run only the points not yet recorded; a different grid or config is refused, naming the difference. Under " +
            "'mpirun -np N' the points go to the processes as they free up, and the files are the same as from one process. " +
            "Exit code: 0 done, 1 error, 2 usage.");
        foreach (var o in TrainOptions.Config) command.Options.Add(o);
        foreach (Option o in new Option[] { Grid, Steps, Every, Jobs, Out }) command.Options.Add(o);
        command.Validators.Add(r =>
        {
            if (r.Valid(Steps) is < 1 || r.Valid(Every) is < 1) r.AddError("--steps and --every must be at least 1.");
        });
        command.EveryOrMonitorEvery(Every);
        command.NoFileFor(Out);
        command.SetAction(r => Run(r, r.Out(), r.Err()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout, TextWriter stderr)
    {
        var world = Communicators.FromEnvironment();
        if (world.Rank > 0) stdout = stderr = TextWriter.Null;
        var baseConfig = TrainOptions.BuildConfig(o, null);
        var grid = Axes(o);
        var points = Sweep.Points(grid, values => PointConfig(o, baseConfig, grid, values));
        // the monitor sampling: --every, or the config's option as diagnose takes it; a monitor-every axis gives each point its own
        // (its points were the same: the trials sampled at --every)
        if (grid.Any(a => a.Key == MonitorEveryKey)) points = [.. points.Select(p => p with { Every = p.Config.MonitorEvery })];
        int? every = o.GetValue(Every) ?? o.GetValue(TrainOptions.MonitorEvery);
        var sweep = new SweepDefinition(baseConfig, grid, points, o.GetValue(Steps), every ?? 10, ExactEvery: every is not null);
        string dir = o.GetValue(Out)!;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        stdout.WriteLine($"sweep: {points.Count} points ({string.Join(" × ", grid.Select(a => $"{a.Values.Count} {a.Key}"))}), " +
            (sweep.Steps is { } s ? $"trials of {s} steps" : "full training runs") + $", into {dir}" + (world.Size > 1 ? $", over {world.Size} processes" : ""));
        IReadOnlyList<SweepRecord> records;
        try
        {
            records = Sweep.Run(sweep, dir, world, o.GetValue(Jobs) ?? 1, r => stdout.WriteLine(Line(grid, r)));
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("sweep: ", StringComparison.Ordinal) && e.Message.Contains("holds another sweep", StringComparison.Ordinal))
        {
            throw new UsageException(e.Message);
        }
        if (world.Rank > 0) return 0;
        stdout.WriteLine();
        stdout.Write(Sweep.Markdown(sweep, records));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{records.Count} points in {dir} ({clock.Elapsed.TotalSeconds:F1} s this run); table: {Path.Combine(dir, Sweep.TableFile)}"));
        return 0;
    }

    private static string Line(IReadOnlyList<GridAxis> grid, SweepRecord r) => string.Create(CultureInfo.InvariantCulture,
        $"point {r.Point}: {string.Join(" ", grid.Select((a, i) => $"{a.Key}={r.Values[i]}"))}  loss {r.Loss:G4} test loss {r.TestLoss:G4}" +
        $"{(double.IsNaN(r.TestAccuracy) ? "" : $" test accuracy {r.TestAccuracy:P1}")}  {r.Verdict}");

    /// <summary>The --grid axes: each key resolved to a config option's name (exact, or a unique prefix) or kept as a spec key.</summary>
    private static List<GridAxis> Axes(ParseResult o)
    {
        var axes = new List<GridAxis>();
        foreach (string text in o.GetValue(Grid) ?? [])
        {
            int eq = text.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == text.Length - 1) throw new UsageException($"gradflow sweep: --grid '{text}' is not KEY=V,V,...");
            string key = text[..eq].Trim().TrimStart('-');
            var values = TopLevelValues(text[(eq + 1)..]);
            if (values.Any(v => v.Length == 0)) throw new UsageException($"gradflow sweep: --grid {key}: an empty value in '{text[(eq + 1)..]}'.");
            if (values.Distinct().Count() != values.Length) throw new UsageException($"gradflow sweep: --grid {key}: a value is repeated in '{text[(eq + 1)..]}'.");
            string name = key == "model-file" ? key : OptionName(key) ?? (IsSpecKey(key) ? key
                : throw new UsageException($"gradflow sweep: --grid {key}: '{key}' is neither an option of the config (lr, batch-size, optimizer, ...: see 'gradflow sweep --help') nor a model spec key (act, init, norm, ...)."));
            if (axes.Any(a => a.Key == name)) throw new UsageException($"gradflow sweep: --grid {name} is given twice.");
            var option = TrainOptions.Config.FirstOrDefault(x => x.Name == "--" + name);
            if (option is not null && o.Has(option)) throw new UsageException($"gradflow sweep: --grid {name} and --{name} are both given; keep one.");
            if (name == MonitorEveryKey && o.Has(Every)) throw new UsageException($"gradflow sweep: --grid {name} and --every both set the monitor sampling; keep one.");
            if (name == "model-file")
                foreach (var file in values.Where(v => !File.Exists(v)))
                    throw new UsageException($"gradflow sweep: --grid model-file: {file} does not exist.");
            axes.Add(new GridAxis(name, values));
        }
        return axes;
    }

    /// <summary>The config option named <paramref name="key"/> (without dashes), exactly or as the one option it begins, or null.</summary>
    private static string? OptionName(string key)
    {
        string[] names = [.. TrainOptions.Config.Where(x => x != TrainOptions.ConfigFile && x != TrainOptions.ModelFile).Select(x => x.Name[2..])];
        if (names.Contains(key, StringComparer.Ordinal)) return key;
        var prefixed = names.Where(n => n.StartsWith(key, StringComparison.Ordinal)).ToArray();
        if (prefixed.Length > 1) throw new UsageException($"gradflow sweep: --grid {key}: ambiguous, it begins {string.Join(", ", prefixed)}.");
        return prefixed.Length == 1 ? prefixed[0] : null;
    }

    private static bool IsSpecKey(string key) => SpecKey().IsMatch(key);

    /// <summary>The grid key of --monitor-every, an axis that sets each point's monitor sampling (<see cref="SweepPoint.Every"/>).</summary>
    private static readonly string MonitorEveryKey = TrainOptions.MonitorEvery.Name[2..];

    /// <summary>
    /// The config of one point: the command line with <c>--KEY VALUE</c> added for each option axis, parsed by the same command
    /// (so a value is read by its option's own parser), and each spec-key axis set in the model's text. Errors name the key and value.
    /// </summary>
    private static TrainingConfig PointConfig(ParseResult o, TrainingConfig baseConfig, IReadOnlyList<GridAxis> grid, IReadOnlyList<string> values)
    {
        var args = o.Tokens.Select(t => t.Value).ToList();
        string model = baseConfig.Model;
        // a model or model-file axis sets the model first (spec-key axes then apply to it); both trained the base model at every point
        for (int a = 0; a < grid.Count; a++)
            if (grid[a].Key is "model" or "model-file") model = grid[a].Key == "model" ? values[a] : File.ReadAllText(values[a]).Trim();
        for (int a = 0; a < grid.Count; a++)
        {
            string key = grid[a].Key, value = values[a];
            if (key is "model" or "model-file") continue;
            if (TrainOptions.Config.Any(x => x.Name == "--" + key))
            {
                var flag = TrainOptions.Config.First(x => x.Name == "--" + key);
                if (flag.Arity.MaximumNumberOfValues == 0)
                {
                    // a flag's values are true and false
                    if (value is not ("true" or "false")) throw new UsageException($"gradflow sweep: --grid {key}: '{value}' is not true or false (--{key} is a flag).");
                    if (value == "true") args.Add("--" + key);
                }
                else args.AddRange(["--" + key, value]);
            }
            else
            {
                if (!Regex.IsMatch(model, @"^(mlp|rnn|lstm|gru)\s", RegexOptions.CultureInvariant))
                    throw new UsageException($"gradflow sweep: --grid {key}={value}: a model spec key needs an mlp, rnn, lstm or gru spec as --model, not '{model}'.");
                var token = new Regex($@"(?<=\s){Regex.Escape(key)}=\S*", RegexOptions.CultureInvariant);
                model = token.IsMatch(model) ? token.Replace(model, $"{key}={value}", 1) : $"{model} {key}={value}";
            }
        }
        var parsed = o.RootCommandResult.Command.Parse(args);
        if (parsed.Errors.Count > 0)
            throw new UsageException($"gradflow sweep: --grid {Which(grid, values)}: {string.Join(" ", parsed.Errors.Select(e => e.Message).Distinct())}");
        try
        {
            var config = TrainOptions.BuildConfig(parsed, null) with { Model = model };
            config.Validate("gradflow sweep");
            _ = config.Description();
            return config;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or UsageException)
        {
            throw new UsageException($"gradflow sweep: --grid {Which(grid, values)}: {e.Message.Replace("gradflow sweep: ", "", StringComparison.Ordinal)}");
        }
    }

    private static string Which(IReadOnlyList<GridAxis> grid, IReadOnlyList<string> values) =>
        string.Join(" ", grid.Select((a, i) => $"{a.Key}={values[i]}"));

    [GeneratedRegex("^[a-z][a-z-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex SpecKey();

    /// <summary>
    /// The comma-separated values of a grid axis, split only at commas outside parentheses and brackets, so that a model
    /// description such as <c>net 2: linear(out=8,bias=false) ...</c> is one value (every comma used to split it).
    /// </summary>
    internal static string[] TopLevelValues(string text)
    {
        var values = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}') depth = Math.Max(0, depth - 1);
            else if (c == ',' && depth == 0)
            {
                values.Add(text[start..i].Trim());
                start = i + 1;
            }
        }
        values.Add(text[start..].Trim());
        return values.ToArray();
    }
}
