using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Cli;

/// <summary>
/// <c>gradflow sweep</c>: grid values read by their options' own parsers, bad keys and values named, a restart in a directory of
/// another sweep refused naming the difference. Points are 2-step trials of a small MLP on spirals.
/// </summary>
public sealed class SweepCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-sweepcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] Args(params string[] extra) =>
        ["sweep", "--data", "spirals", "--model", "mlp 2-8-2 act=tanh", "--train-limit", "96", "--test-limit", "48", "--threads", "1", "--steps", "2",
         "--out", Path.Combine(_dir, "s"), .. extra];

    [Fact]
    public void Sweep_PrefixAndSpecKeys_RunEveryPointAndWriteTheTable()
    {
        var (code, output, err) = CliRunner.Run(Args("--grid", "batch=8,16", "--grid", "init=xavier-uniform,normal:2"));
        Assert.True(code == 0, err + output);
        Assert.Contains("sweep: 4 points (2 batch-size × 2 init)", output);
        string definition = File.ReadAllText(Path.Combine(_dir, "s", "sweep.json"));
        Assert.Contains("\"key\": \"batch-size\"", definition);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(_dir, "s", "results.jsonl")).Length);
        string table = File.ReadAllText(Path.Combine(_dir, "s", "results.md"));
        Assert.Contains("| 3 | 16 | normal:2 |", table);
        Assert.Contains("★", table);
        // run again: every point is recorded, nothing runs
        (code, output, err) = CliRunner.Run(Args("--grid", "batch=8,16", "--grid", "init=xavier-uniform,normal:2"));
        Assert.True(code == 0, err + output);
        Assert.DoesNotContain("point 0:", output);
    }

    [Fact]
    public void Sweep_ModelFileAxis_TrainsEachFilesModel()
    {
        // every point trained the base --model
        string a = Path.Combine(_dir, "a.txt"), b = Path.Combine(_dir, "b.txt");
        File.WriteAllText(a, "mlp 2-4-2\n");
        File.WriteAllText(b, "mlp 2-12-2 act=relu\n");
        double[] Losses(params string[] args)
        {
            Directory.Delete(Path.Combine(_dir, "s"), recursive: true);
            var (code, output, err) = CliRunner.Run(args);
            Assert.True(code == 0, err + output);
            return File.ReadAllLines(Path.Combine(_dir, "s", "results.jsonl")).Select(l => GradFlow.Diagnostics.SweepRecord.Parse(l, "results.jsonl").Loss).ToArray();
        }
        Directory.CreateDirectory(Path.Combine(_dir, "s"));
        var byFile = Losses(Args("--grid", $"model-file={a},{b}", "--grid", "lr=0.05"));
        string[] WithModel(string model) { var args = Args("--grid", "lr=0.05"); args[4] = model; return args; }
        Assert.Equal([.. Losses(WithModel("mlp 2-4-2")), .. Losses(WithModel("mlp 2-12-2 act=relu"))], byFile);
        Assert.NotEqual(byFile[0], byFile[1]);
        // and a model axis of texts (without --model) the same: it trained the default model, and on two-feature data failed
        Assert.Equal(byFile, Losses([.. Args("--grid", "model=mlp 2-4-2,mlp 2-12-2 act=relu", "--grid", "lr=0.05").Where((_, i) => i is not (3 or 4))]));
    }

    /// <summary>A model axis splits at the commas between values, not inside a description's parentheses (every comma split it).</summary>
    [Fact]
    public void Sweep_ModelAxis_KeepsTheCommasOfADescription()
    {
        Assert.Equal(["net 2 seq[linear(out=8,bias=false) relu linear(out=2)]", "mlp 2-4-2", "[a,b]"],
            GradFlow.Cli.SweepCommand.TopLevelValues(" net 2 seq[linear(out=8,bias=false) relu linear(out=2)] ,mlp 2-4-2,[a,b]"));
        var (code, output, err) = CliRunner.Run([.. Args("--grid", "model=net 2 seq[linear(out=8,bias=false) relu linear(out=2)],mlp 2-4-2", "--grid", "lr=0.05")
            .Where((_, i) => i is not (3 or 4))]);
        Assert.True(code == 0, err + output);
        var models = File.ReadAllLines(Path.Combine(_dir, "s", "results.jsonl")).Select(l => GradFlow.Diagnostics.SweepRecord.Parse(l, "results.jsonl").Values[0]).ToArray();
        Assert.Equal(["net 2 seq[linear(out=8,bias=false) relu linear(out=2)]", "mlp 2-4-2"], models);
    }

    [Fact]
    public void Sweep_MonitorEveryAxis_SamplesEachPointAtItsOwnInterval()
    {
        // --grid monitor-every=1,2 gave identical points: every trial sampled at --every
        SweepRecord[] Records(params string[] args)
        {
            if (Directory.Exists(Path.Combine(_dir, "s"))) Directory.Delete(Path.Combine(_dir, "s"), recursive: true);
            var command = Args(args);
            command[Array.IndexOf(command, "--steps") + 1] = "40"; // trials long enough for the intervals to differ
            var (code, output, err) = CliRunner.Run(command);
            Assert.True(code == 0, err + output);
            return [.. File.ReadAllLines(Path.Combine(_dir, "s", "results.jsonl")).Select(l => SweepRecord.Parse(l, "results.jsonl"))];
        }
        var axis = Records("--grid", "monitor-every=1,5");
        Assert.NotEqual(axis[0].Loss, axis[1].Loss); // the mean loss of each point's last samples
        // each the point of a sweep sampled at that interval throughout
        Assert.Equal(Records("--grid", "seed=0", "--every", "1")[0] with { Values = axis[0].Values }, axis[0]);
        Assert.Equal(Records("--grid", "seed=0", "--monitor-every", "5")[0] with { Point = 1, Values = axis[1].Values }, axis[1]);
        var (code, _, err) = CliRunner.Run(Args("--grid", "monitor-every=1,5", "--every", "3"));
        Assert.Equal(2, code);
        Assert.Contains("--grid monitor-every and --every both set the monitor sampling", err);
    }

    [Theory]
    [InlineData("lr=0.1,abc", "--grid lr=abc: --lr 'abc' is not a finite number.")]
    [InlineData("optimizer=sgd,adamx", "--grid optimizer=adamx: --optimizer 'adamx' is not one of")]
    [InlineData("act=relu,bogus", "--grid act=bogus:")]
    [InlineData("frob=1", "--grid frob=1:")]
    [InlineData("lr", "--grid 'lr' is not KEY=V,V,...")]
    [InlineData("lr=0.1,0.1", "--grid lr: a value is repeated")]
    [InlineData("m=1", "--grid m: ambiguous, it begins")]
    public void Sweep_BadGrid_ExitsTwoNamingTheKeyAndValue(string grid, string expected)
    {
        var (code, _, err) = CliRunner.Run(Args("--grid", grid));
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.False(File.Exists(Path.Combine(_dir, "s", "results.jsonl")));
    }

    [Fact]
    public void Sweep_GridKeyAlsoGivenAsOption_IsRefused()
    {
        var (code, _, err) = CliRunner.Run(Args("--lr", "0.1", "--grid", "lr=0.1,0.2"));
        Assert.Equal(2, code);
        Assert.Contains("--grid lr and --lr are both given", err);
    }

    [Fact]
    public void Sweep_AgainWithAnotherConfig_IsRefusedNamingTheField()
    {
        Assert.Equal(0, CliRunner.Run(Args("--grid", "lr=0.1")).Code);
        var (code, _, err) = CliRunner.Run(Args("--grid", "lr=0.1", "--seed", "3"));
        Assert.Equal(2, code);
        Assert.Contains("holds another sweep: config.seed: recorded 0, now 3", err);
    }

    [Fact]
    public void Sweep_ExplicitEvery_IsRecordedAsKept_AndTheDefaultIsNot()
    {
        string definition = Path.Combine(_dir, "s", "sweep.json");
        Assert.Equal(0, CliRunner.Run(Args("--grid", "lr=0.1")).Code);
        Assert.DoesNotContain("exact_every", File.ReadAllText(definition));
        Directory.Delete(Path.Combine(_dir, "s"), recursive: true);
        var (code, output, err) = CliRunner.Run(Args("--grid", "lr=0.1", "--every", "10"));
        Assert.True(code == 0, err + output);
        Assert.Contains("\"exact_every\": true", File.ReadAllText(definition));
        // the same command without it (the default is also 10, but adapted) is another sweep
        (code, _, err) = CliRunner.Run(Args("--grid", "lr=0.1"));
        Assert.Equal(2, code);
        Assert.Contains("holds another sweep: exact_every: recorded true", err);
    }

    [Fact]
    public void Sweep_RecordedWithTheOlderKebabCaseOptimizer_RestartsAsTheSameSweep()
    {
        string definition = Path.Combine(_dir, "s", "sweep.json");
        Assert.Equal(0, CliRunner.Run(Args("--grid", "lr=0.1", "--optimizer", "adamw")).Code);
        string recorded = File.ReadAllText(definition);
        Assert.Contains("\"optimizer\": \"adamw\"", recorded);
        // as written before 2026-12-07
        File.WriteAllText(definition, recorded.Replace("\"adamw\"", "\"adam-w\""));
        var (code, output, err) = CliRunner.Run(Args("--grid", "lr=0.1", "--optimizer", "adamw"));
        Assert.True(code == 0, err + output);
        (code, _, err) = CliRunner.Run(Args("--grid", "lr=0.1", "--optimizer", "adam"));
        Assert.Equal(2, code);
        Assert.Contains("holds another sweep: config.optimizer: recorded", err);
    }
}
