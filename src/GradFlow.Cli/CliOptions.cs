using System.Globalization;

namespace GradFlow.Cli;

/// <summary>A usage error: the CLI prints it and exits with code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Parses <c>--name value</c> and <c>--flag</c> options against a declared set, so that an unknown or
/// repeated option, a missing value, or a value of the wrong type is a usage error naming the option.
/// </summary>
public sealed class CliOptions
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly string _command;

    /// <summary>Parses <paramref name="args"/> for <paramref name="command"/>; <paramref name="valued"/> take a value, <paramref name="flags"/> do not.</summary>
    public CliOptions(string command, IReadOnlyList<string> args, IReadOnlyCollection<string> valued, IReadOnlyCollection<string> flags)
    {
        _command = command;
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal))
                throw new UsageException($"gradflow {command}: unexpected argument '{a}' (options start with --).");
            string name = a[2..];
            string? inline = null;
            int eq = name.IndexOf('=');
            if (eq > 0)
            {
                inline = name[(eq + 1)..];
                name = name[..eq];
            }
            if (_values.ContainsKey(name)) throw new UsageException($"gradflow {command}: option --{name} is given twice.");
            if (flags.Contains(name))
            {
                if (inline is not null) throw new UsageException($"gradflow {command}: option --{name} takes no value.");
                _values[name] = null;
            }
            else if (valued.Contains(name))
            {
                if (inline is null)
                {
                    if (i + 1 >= args.Count) throw new UsageException($"gradflow {command}: option --{name} needs a value.");
                    inline = args[++i];
                }
                _values[name] = inline;
            }
            else
                throw new UsageException($"gradflow {command}: unknown option --{name}. Run 'gradflow {command} --help'.");
        }
    }

    /// <summary>The verb these options belong to (<c>train</c>, <c>diagnose</c> ...), for messages.</summary>
    public string Command => _command;

    /// <summary>Whether the option or flag was given.</summary>
    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>The string value, or null.</summary>
    public string? String(string name) => _values.GetValueOrDefault(name);

    /// <summary>The value as an integer, or null; a usage error when it is not one.</summary>
    public int? Int(string name) => _values.TryGetValue(name, out var v) && v is not null
        ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int r) ? r : throw Bad(name, v, "an integer")
        : null;

    /// <summary>The value as an unsigned 64-bit integer, or null.</summary>
    public ulong? ULong(string name) => _values.TryGetValue(name, out var v) && v is not null
        ? ulong.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong r) ? r : throw Bad(name, v, "a non-negative integer")
        : null;

    /// <summary>The value as a number, or null.</summary>
    public double? Double(string name) => _values.TryGetValue(name, out var v) && v is not null
        ? double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double r) && double.IsFinite(r) ? r : throw Bad(name, v, "a finite number")
        : null;

    /// <summary>The value as an enum member named in kebab case (<c>adam-w</c> or <c>adamw</c>), or null.</summary>
    public T? Enum<T>(string name) where T : struct, System.Enum
    {
        if (!_values.TryGetValue(name, out var v) || v is null) return null;
        foreach (var value in System.Enum.GetValues<T>())
            if (string.Equals(value.ToString(), v.Replace("-", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase)) return value;
        throw Bad(name, v, "one of " + string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant())));
    }

    private UsageException Bad(string name, string value, string what) => new($"gradflow {_command}: --{name} '{value}' is not {what}.");
}
