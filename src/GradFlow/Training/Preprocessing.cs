using System.Text.Json;
using System.Text.Json.Serialization;
using GradFlow.Data;

namespace GradFlow.Training;

/// <summary>
/// What a run did to its data file before the model saw it, kept in the run directory as <c>preprocessing.json</c> so that
/// new data can be read the same way without the training file (<c>gradflow predict</c>): the standardisation's statistics
/// (fitted on the training set), the class names in label order, and a table's feature columns.
/// </summary>
/// <param name="Mean">The standardisation's mean per group (per feature, per channel, or one), or null when the inputs were kept as read.</param>
/// <param name="Std">Its standard deviation per group, or null.</param>
/// <param name="Classes">The class names in label order (a table's target values, an image folder's subfolders, an array's labels 0..K−1), or null for regression.</param>
/// <param name="Features">A table's feature columns in file order, or null for other formats.</param>
/// <param name="ImageSize">An image folder's width and height (every image is resized to it), or null.</param>
public sealed record Preprocessing(
    IReadOnlyList<double>? Mean,
    IReadOnlyList<double>? Std,
    IReadOnlyList<string>? Classes,
    IReadOnlyList<string>? Features,
    IReadOnlyList<int>? ImageSize = null)
{
    /// <summary>The file's name in a run directory.</summary>
    public const string FileName = "preprocessing.json";

    /// <summary>The standardiser of <see cref="Mean"/> and <see cref="Std"/>, or null.</summary>
    public Standardizer? Standardizer() => Mean is null || Std is null ? null : Data.Standardizer.FromStatistics(Mean, Std);

    /// <summary>The JSON text (indented, camelCase; doubles written so that they read back exactly).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>Writes <see cref="FileName"/> into <paramref name="runDirectory"/>, atomically.</summary>
    public void Write(string runDirectory) => AtomicFile.WriteAllText(Path.Combine(runDirectory, FileName), ToJson() + "\n");

    /// <summary>Reads <paramref name="runDirectory"/>'s <see cref="FileName"/>, or null when the run has none (a run on a built-in data set, or one trained before 2026-12-07).</summary>
    /// <exception cref="InvalidDataException">naming the file when it is not a valid record.</exception>
    public static Preprocessing? Read(string runDirectory)
    {
        string path = Path.Combine(runDirectory, FileName);
        if (!File.Exists(path)) return null;
        Preprocessing? p;
        try
        {
            p = JsonSerializer.Deserialize<Preprocessing>(File.ReadAllText(path), Options);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a preprocessing record: {e.Message}", e);
        }
        if (p is null) throw new InvalidDataException($"{path}: not a preprocessing record (null).");
        if ((p.Mean is null) != (p.Std is null)) throw new InvalidDataException($"{path}: 'mean' and 'std' go together; one of them is missing.");
        try
        {
            p.Standardizer();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
        if (p.Classes?.Any(c => c is null) == true || p.Features?.Any(f => f is null) == true)
            throw new InvalidDataException($"{path}: a class or feature name is null.");
        if (p.Classes is { Count: 0 } || p.Features is { Count: 0 })
            throw new InvalidDataException($"{path}: 'classes' and 'features' must not be empty lists.");
        if (p.ImageSize is { } size && (size.Count != 2 || size[0] <= 0 || size[1] <= 0))
            throw new InvalidDataException($"{path}: 'imageSize' must be [width, height] of positive sizes, got [{string.Join(", ", size)}].");
        return p;
    }

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        RespectNullableAnnotations = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };
}
