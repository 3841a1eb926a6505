namespace GradFlow.Training;

/// <summary>
/// The one spelling of a config's enum values, shared by config.json, the command line and remedy ids: the member's name in lower
/// case (<c>adamw</c>, <c>rmsprop</c>, <c>cosine</c>), read case-insensitively with hyphens ignored (the kebab case that configs
/// written before 2026-12-07 hold, <c>adam-w</c>, reads too). Only names: no numbers, no comma-joined members.
/// </summary>
public static class EnumNames
{
    /// <summary>The name of <paramref name="value"/> (<c>adamw</c>).</summary>
    public static string Of<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>Every member's name, in declaration order.</summary>
    public static string[] All<T>() where T : struct, Enum => [.. Enum.GetNames<T>().Select(n => n.ToLowerInvariant())];

    /// <summary>The member <paramref name="text"/> names, if any.</summary>
    public static bool TryParse<T>(string? text, out T value) where T : struct, Enum
    {
        if (text is not null)
        {
            string name = text.Replace("-", "", StringComparison.Ordinal);
            foreach (var member in Enum.GetValues<T>())
                if (string.Equals(member.ToString(), name, StringComparison.OrdinalIgnoreCase))
                {
                    value = member;
                    return true;
                }
        }
        value = default;
        return false;
    }
}
