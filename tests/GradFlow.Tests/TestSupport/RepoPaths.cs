namespace GradFlow.Tests.TestSupport;

/// <summary>Locates the repository (the folder holding GradFlow.sln) from the test binaries.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "GradFlow.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"GradFlow.sln not found above {AppContext.BaseDirectory}.");
    });

    /// <summary>The repository root.</summary>
    public static string Root => RootPath.Value;
}
