using System.Text.RegularExpressions;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Architecture;

public class ArchitectureTests
{
    /// <summary>DESIGN.md's layers, bottom to top.</summary>
    private static readonly string[] Layers =
        ["Kernels", "Tensors", "Autograd", "Nn", "Optim", "Data", "Training", "Diagnostics", "Reports"];

    [Fact]
    public void LibraryLayers_ReferOnlyToLowerLayers()
    {
        var root = Path.Combine(RepoPaths.Root, "src", "GradFlow");
        var violations = new List<string>();
        for (int i = 0; i < Layers.Length; i++)
        {
            var dir = Path.Combine(root, Layers[i]);
            if (!Directory.Exists(dir)) continue;
            var higher = Layers.Skip(i + 1).ToArray();
            if (higher.Length == 0) continue; // the top layer may use every other
            var pattern = new Regex(@"\bGradFlow\.(" + string.Join("|", higher) + @")\b");
            foreach (var file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories))
            {
                var lines = File.ReadAllLines(file);
                for (int n = 0; n < lines.Length; n++)
                {
                    var m = pattern.Match(lines[n]);
                    if (m.Success)
                        violations.Add($"{Path.GetRelativePath(root, file)}:{n + 1} ({Layers[i]} refers to {m.Value})");
                }
            }
        }
        Assert.True(violations.Count == 0, "Lower layers refer to higher ones:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void LibraryFolders_AreAllKnownLayers()
    {
        var root = Path.Combine(RepoPaths.Root, "src", "GradFlow");
        var unknown = Directory.EnumerateDirectories(root)
            .Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj") && !Layers.Contains(d))
            .ToArray();
        Assert.Empty(unknown);
    }
}
