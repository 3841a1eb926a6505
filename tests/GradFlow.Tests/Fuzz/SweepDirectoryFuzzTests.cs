using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Fuzz;

/// <summary>
/// A sweep directory damaged on disk (seeded mutations of <c>results.jsonl</c> and <c>sweep.json</c>): reading what it recorded
/// (<see cref="Sweep.Finished"/>, what a restart does first) either succeeds, refuses another sweep naming the difference, or
/// throws <see cref="InvalidDataException"/> naming the file — never a JSON, null-reference or index exception.
/// </summary>
public sealed class SweepDirectoryFuzzTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-sweepfuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SweepDirectory_1000CorruptVariantsOfEachFile_OnlyInvalidDataExceptionOrTheRefusal()
    {
        var config = new TrainingConfig { Model = "mlp 2-4-2", Data = "spirals", TrainLimit = 48, TestLimit = 24, BatchSize = 8, Threads = 1 };
        GridAxis[] grid = [new("lr", ["0.1", "0.01"]), new("seed", ["1", "2"])];
        var sweep = new SweepDefinition(config, grid, Sweep.Points(grid, v => config with { Seed = ulong.Parse(v[1], System.Globalization.CultureInfo.InvariantCulture) }), 2, 1);
        string valid = Path.Combine(_dir, "valid");
        Assert.Equal(4, Sweep.Run(sweep, valid, cancellation: TestContext.Current.CancellationToken).Count);
        string fuzzed = Path.Combine(_dir, "fuzzed");
        Directory.CreateDirectory(fuzzed);
        void Read(string _)
        {
            try
            {
                Assert.InRange(Sweep.Finished(sweep, fuzzed).Count, 0, 4);
            }
            catch (InvalidOperationException e) when (e.Message.Contains("holds another sweep", StringComparison.Ordinal))
            {
                // the documented refusal of a definition that parses but differs
            }
        }
        foreach (var (file, other) in new[] { (Sweep.ResultsFile, Sweep.DefinitionFile), (Sweep.DefinitionFile, Sweep.ResultsFile) })
        {
            File.Copy(Path.Combine(valid, other), Path.Combine(fuzzed, other), overwrite: true);
            int loaded = new FileFuzzer(fuzzed).Run(file, File.ReadAllBytes(Path.Combine(valid, file)), 1000, 19, Read);
            Assert.InRange(loaded, 1, 999);
        }
    }
}
