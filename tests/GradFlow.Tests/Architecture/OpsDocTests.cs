using System.Reflection;
using System.Text.RegularExpressions;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Architecture;

/// <summary>
/// Keeps docs/ops.md complete: every public method of the op types is documented (in a table row or
/// in the "not differentiable" list), every documented name exists, and every gradient test named
/// in the tables is a test of this assembly.
/// </summary>
public class OpsDocTests
{
    /// <summary>The types whose public methods docs/ops.md must cover, by the name the document uses.</summary>
    private static readonly Type[] OpTypes = [typeof(Tensor), typeof(Losses), typeof(NormOps)];

    /// <summary>
    /// C# operators are documented under their named forms (see the note at the top of docs/ops.md):
    /// the compiler's method name maps to the named op it calls.
    /// </summary>
    private static readonly Dictionary<string, string> OperatorNames = new()
    {
        ["op_Addition"] = "Add",
        ["op_Subtraction"] = "Sub",
        ["op_Multiply"] = "Mul",
        ["op_Division"] = "Div",
        ["op_UnaryNegation"] = "Neg",
    };

    private const string NotInGraphHeading = "## Not differentiable / not in the graph";

    private static readonly Regex QualifiedName = new(@"`(\w+)\.(\w+)`");

    private sealed record Row(int Line, string[] Ops, string[] Tests);

    private sealed record OpsDoc(List<Row> Rows, HashSet<string> NotInGraph);

    private static OpsDoc ReadDoc()
    {
        var lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, "docs", "ops.md"));
        var rows = new List<Row>();
        var notInGraph = new HashSet<string>(StringComparer.Ordinal);
        bool inList = false;
        for (int n = 0; n < lines.Length; n++)
        {
            var line = lines[n].Trim();
            if (line.StartsWith("## ", StringComparison.Ordinal)) inList = line == NotInGraphHeading;
            if (inList)
            {
                foreach (Match m in QualifiedName.Matches(line)) notInGraph.Add(m.Value.Trim('`'));
                continue;
            }
            if (!line.StartsWith('|') || line.StartsWith("|---", StringComparison.Ordinal)) continue;
            // Cells split on pipes not escaped as \| (formulas such as |x| escape theirs).
            var cells = Regex.Split(line.Trim('|'), @"(?<!\\)\|").Select(c => c.Trim()).ToArray();
            if (cells[0] == "Op") continue; // header
            rows.Add(new Row(n + 1, Names(cells[0]), Names(cells[^1])));
        }
        Assert.True(rows.Count > 0, "docs/ops.md has no op table rows.");
        Assert.True(notInGraph.Count > 0, $"docs/ops.md has no section '{NotInGraphHeading}' with `Tensor.X` entries.");
        return new OpsDoc(rows, notInGraph);
    }

    private static string[] Names(string cell) => QualifiedName.Matches(cell).Select(m => m.Value.Trim('`')).ToArray();

    /// <summary>"Type.Method" for every public method declared on the op types, operators under their named forms.</summary>
    private static SortedSet<string> PublicOpNames(List<string> unmappedOperators)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in OpTypes)
            foreach (var m in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (m.IsSpecialName && !m.Name.StartsWith("op_", StringComparison.Ordinal)) continue; // property and event accessors
                if (!m.IsSpecialName)
                {
                    names.Add($"{type.Name}.{m.Name}");
                    continue;
                }
                if (OperatorNames.TryGetValue(m.Name, out var named)) names.Add($"{type.Name}.{named}");
                else unmappedOperators.Add($"{type.Name}.{m.Name}");
            }
        return names;
    }

    [Fact]
    public void OpsDoc_EveryPublicOpMethod_IsDocumented()
    {
        var doc = ReadDoc();
        var unmapped = new List<string>();
        var documented = new HashSet<string>(doc.Rows.SelectMany(r => r.Ops).Concat(doc.NotInGraph), StringComparer.Ordinal);
        var missing = PublicOpNames(unmapped).Where(name => !documented.Contains(name)).ToList();
        Assert.True(unmapped.Count == 0,
            "Operators without a named form in OpsDocTests.OperatorNames (map each to the op it calls, and name it in docs/ops.md):\n"
            + string.Join("\n", unmapped));
        Assert.True(missing.Count == 0,
            "Public methods missing from docs/ops.md (add a table row with forward, backward and gradient test, or list them under '"
            + NotInGraphHeading + "'):\n" + string.Join("\n", missing));
    }

    [Fact]
    public void OpsDoc_EveryDocumentedName_ExistsAndAppearsOnce()
    {
        var doc = ReadDoc();
        var existing = PublicOpNames([]);
        var named = doc.Rows.SelectMany(r => r.Ops.Select(op => (Name: op, Where: $"table row at line {r.Line}")))
            .Concat(doc.NotInGraph.Select(op => (Name: op, Where: "not-differentiable list")))
            .ToList();
        var stale = named.Where(x => !existing.Contains(x.Name)).Select(x => $"{x.Name} ({x.Where})").ToList();
        Assert.True(stale.Count == 0, "docs/ops.md names methods that do not exist (renamed or removed?):\n" + string.Join("\n", stale));
        var both = doc.Rows.SelectMany(r => r.Ops).Where(doc.NotInGraph.Contains).Distinct().ToList();
        Assert.True(both.Count == 0, "docs/ops.md lists these both as differentiable ops and as not in the graph:\n" + string.Join("\n", both));
        var noOp = doc.Rows.Where(r => r.Ops.Length == 0).Select(r => $"line {r.Line}").ToList();
        Assert.True(noOp.Count == 0, "Table rows of docs/ops.md without a `Type.Method` in the first column:\n" + string.Join("\n", noOp));
    }

    [Fact]
    public void OpsDoc_EveryGradientTest_IsATestOfThisAssembly()
    {
        var doc = ReadDoc();
        var tests = typeof(OpsDocTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static)
                .Where(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any()) // [Theory] derives from [Fact]
                .Select(m => $"{t.Name}.{m.Name}"))
            .ToHashSet(StringComparer.Ordinal);
        var untested = doc.Rows.Where(r => r.Tests.Length == 0).Select(r => $"{string.Join(", ", r.Ops)} (line {r.Line})").ToList();
        var unresolved = doc.Rows
            .SelectMany(r => r.Tests.Where(t => !tests.Contains(t)).Select(t => $"{t} (row of {string.Join(", ", r.Ops)}, line {r.Line})"))
            .ToList();
        Assert.True(untested.Count == 0, "Ops in docs/ops.md without a gradient test:\n" + string.Join("\n", untested));
        Assert.True(unresolved.Count == 0,
            "Gradient tests named in docs/ops.md that are not public [Fact]/[Theory] methods of the test assembly (renamed?):\n"
            + string.Join("\n", unresolved));
    }
}
