using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>A usage error found after parsing (a cross-option rule, an out-of-range value): the CLI prints it and exits with code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// A verb of the CLI: a one-line summary (the list of 'gradflow --help') and the details that
/// 'gradflow VERB --help' prints after the generated usage and options.
/// </summary>
internal sealed class Verb(string name, string summary, string details) : Command(name, summary)
{
    public string Details { get; } = details;
}

/// <summary>
/// Typed System.CommandLine options with GradFlow's value rules and messages: a value that is not of the
/// option's type is a parse error naming the option and the value ("--epochs 'ten' is not an integer").
/// Nullable types: an option not given reads as null, so that a config file's value stays.
/// </summary>
internal static class Opt
{
    public static Option<string?> String(string name, string help, string? valueName = null) =>
        new("--" + name) { Description = help, HelpName = valueName };

    public static Option<bool> Flag(string name, string help) => new("--" + name) { Description = help, Arity = ArgumentArity.Zero };

    public static Option<int?> Int(string name, string help, string valueName = "N") =>
        Parsed<int>(name, help, valueName, "an integer", (string t, out int v) => int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out v));

    /// <summary><c>--jobs N</c>: independent runs at once, 1 to 256 (another value is an error naming the option).</summary>
    public static Option<int?> Jobs(string help)
    {
        var option = Int("jobs", help);
        option.Validators.Add(r =>
        {
            if (r.Valid(option) is int jobs and (< 1 or > 256)) r.AddError($"--jobs must be in 1..256, got {jobs}.");
        });
        return option;
    }

    public static Option<ulong?> ULong(string name, string help, string valueName = "N") =>
        Parsed<ulong>(name, help, valueName, "a non-negative integer", (string t, out ulong v) => ulong.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out v));

    public static Option<double?> Double(string name, string help, string valueName = "X") =>
        Parsed<double>(name, help, valueName, "a finite number",
            (string t, out double v) => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out v) && double.IsFinite(v));

    /// <summary>An enum member by its name as <see cref="EnumNames"/> spells it (<c>adamw</c>; <c>adam-w</c> reads too); the members complete.</summary>
    public static Option<T?> Enum<T>(string name, string help) where T : struct, System.Enum
    {
        string[] names = EnumNames.All<T>();
        var option = Parsed<T>(name, help, string.Join("|", names), "one of " + string.Join(", ", names), EnumNames.TryParse);
        option.CompletionSources.Clear(); // System.CommandLine's own offers the members as declared (AdamW); the lower-case names are the documented ones
        option.CompletionSources.Add(names);
        return option;
    }

    /// <summary>A string option that takes one of <paramref name="choices"/> (which complete); another value is a parse error naming the option.</summary>
    public static Option<string?> Choice(string name, string help, params string[] choices)
    {
        var option = new Option<string?>("--" + name)
        {
            Description = help,
            HelpName = string.Join("|", choices),
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
                if (choices.Contains(text, StringComparer.Ordinal)) return text;
                r.AddError($"--{name} must be {string.Join(" or ", choices)}, got '{text}'.");
                return null;
            },
        };
        option.CompletionSources.Add(choices);
        return option;
    }

        private delegate bool TryParse<T>(string text, out T value);

    private static Option<T?> Parsed<T>(string name, string help, string valueName, string what, TryParse<T> parse) where T : struct =>
        new("--" + name)
        {
            Description = help,
            HelpName = valueName,
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
                if (parse(text, out T v)) return v;
                r.AddError($"--{name} '{text}' is not {what}.");
                return null;
            },
        };

    /// <summary>Whether the option was given on the command line.</summary>
    public static bool Has(this ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>Whether the option was given on the command line (in a command's validator).</summary>
    public static bool Has(this SymbolResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>The option's value in a command's validator, or the default when it was not given or did not parse (its own error says so).</summary>
    public static T? Valid<T>(this SymbolResult r, Option<T> option)
    {
        try
        {
            return r.GetValue(option);
        }
        catch (InvalidOperationException)
        {
            return default; // the value's parse error is reported already
        }
    }

    /// <summary>The standard output of the invocation (the writer given to <see cref="CliApp.Run"/>).</summary>
    public static TextWriter Out(this ParseResult r) => r.InvocationConfiguration.Output;

    /// <summary>The standard error of the invocation.</summary>
    public static TextWriter Err(this ParseResult r) => r.InvocationConfiguration.Error;

    /// <summary>
    /// A validator of a command whose <paramref name="dirs"/> each take a directory: an existing file given as one is a usage error
    /// (<c>train --out FILE</c> failed only after the model and data were set up, with "the file already exists").
    /// </summary>
    public static void NoFileFor(this Command command, params Option<string?>[] dirs) =>
        command.Validators.Add(r =>
        {
            foreach (var d in dirs)
                if (r.Has(d) && r.Valid(d) is { } path && File.Exists(path)) r.AddError($"{d.Name} {path} is a file; it takes a directory.");
        });

    /// <summary>
    /// A validator of a command whose <paramref name="trialSteps"/> sets the length of diagnosis trials: at least the samples the
    /// loss-trend rules need (<see cref="Diagnostics.DiagnosisSettings.TrendSamples"/>), since a shorter trial cannot tell a stalled or
    /// oscillating loss from a healthy one, and every trial would pass.
    /// </summary>
    public static void TrialStepsForTheTrendRules(this Command command, Option<int?> trialSteps) =>
        command.Validators.Add(r =>
        {
            int least = new Diagnostics.DiagnosisSettings().TrendSamples;
            if (r.Valid(trialSteps) is int steps && steps < least)
                r.AddError($"{trialSteps.Name} must be at least {least}, got {steps}: the loss-trend rules (stall, oscillation) need {least} monitor samples.");
        });

    /// <summary>
    /// A validator of a command whose <paramref name="every"/> sets the monitor sampling, as <c>--monitor-every</c> does too: given
    /// together, one of them would win silently, so they are a usage error.
    /// </summary>
    public static void EveryOrMonitorEvery(this Command command, Option<int?> every) =>
        command.Validators.Add(r =>
        {
            if (r.Has(every) && r.Has(TrainOptions.MonitorEvery))
                r.AddError($"{every.Name} and {TrainOptions.MonitorEvery.Name} both set the monitor sampling; keep one.");
        });

    /// <summary>The verb being run (<c>train</c>, <c>diagnose</c> ...), for messages.</summary>
    public static string Verb(this ParseResult r) => r.CommandResult.Command.Name;
}
