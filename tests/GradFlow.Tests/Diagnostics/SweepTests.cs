using System.Globalization;
using GradFlow.Diagnostics;
using GradFlow.Training;

namespace GradFlow.Tests.Diagnostics;

/// <summary>
/// <see cref="Sweep"/>: the grid's order, the results file the same for any number of threads and after an interrupted run
/// is run again, and a directory of another sweep refused naming the difference. Each point is a 20-step trial of a small MLP on spirals.
/// </summary>
public sealed class SweepTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-sweep-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly TrainingConfig Base = new()
    {
        Model = "mlp 2-16x2-2 act=tanh", Data = "spirals", TrainLimit = 240, TestLimit = 120, BatchSize = 24, Threads = 1, Epochs = 1,
    };

    /// <summary>A grid over the learning rate and the optimiser, each point's config made from its values.</summary>
    private static SweepDefinition Definition(params string[] lrs)
    {
        GridAxis[] grid = [new("lr", lrs), new("optimizer", ["sgd", "adam"])];
        var points = Sweep.Points(grid, v => Base with
        {
            LearningRate = double.Parse(v[0], CultureInfo.InvariantCulture),
            Optimizer = v[1] == "sgd" ? OptimizerKind.Sgd : OptimizerKind.Adam,
        });
        return new SweepDefinition(Base, grid, points, Steps: 20, Every: 5);
    }

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private string Dir(string name) => Path.Combine(_dir, name);

    private static string Results(string dir) => File.ReadAllText(Path.Combine(dir, Sweep.ResultsFile));

    [Fact]
    public void Points_FirstAxisVariesSlowest_EachPointHasItsValues()
    {
        var sweep = Definition("0.1", "0.01", "0.001");
        Assert.Equal(6, sweep.Points.Count);
        Assert.Equal(["0.01", "adam"], sweep.Points[3].Values);
        Assert.Equal(0.01, sweep.Points[3].Config.LearningRate);
        Assert.Equal(OptimizerKind.Adam, sweep.Points[3].Config.Optimizer);
        Assert.Equal(["0.001", "sgd"], sweep.Points[4].Values);
        Assert.Equal(Enumerable.Range(0, 6), sweep.Points.Select(p => p.Index));
    }

    [Fact]
    public void Run_InterruptedAfterTwoPointsThenRunAgain_EndsWithTheFilesOfAnUninterruptedRun()
    {
        var sweep = Definition("0.3", "0.03");
        var whole = Sweep.Run(sweep, Dir("whole"), cancellation: Token);
        Assert.Equal(4, whole.Count);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(Dir("whole"), Sweep.ResultsFile)).Length);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => Sweep.Run(sweep, Dir("cut"), progress: _ =>
        {
            if (++seen == 2) stop.Cancel();
        }, cancellation: stop.Token));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(Dir("cut"), Sweep.ResultsFile)).Length);
        Assert.False(File.Exists(Path.Combine(Dir("cut"), Sweep.TableFile)));

        var ran = new List<int>();
        var again = Sweep.Run(sweep, Dir("cut"), progress: r => ran.Add(r.Point), cancellation: Token);
        Assert.Equal([2, 3], ran); // only the points not recorded
        Assert.Equal(Results(Dir("whole")), Results(Dir("cut")));
        Assert.Equal(File.ReadAllText(Path.Combine(Dir("whole"), Sweep.TableFile)), File.ReadAllText(Path.Combine(Dir("cut"), Sweep.TableFile)));
        Assert.Equal(whole, again, (a, b) => a.ToJsonLine() == b.ToJsonLine());
    }

    [Fact]
    public void Run_OnThreeThreads_WritesTheResultsOfOneThread()
    {
        var sweep = Definition("0.3", "0.03", "0.003");
        Sweep.Run(sweep, Dir("one"), cancellation: Token);
        var order = new List<int>();
        Sweep.Run(sweep, Dir("three"), jobs: 3, progress: r => order.Add(r.Point), cancellation: Token);
        Assert.Equal(Enumerable.Range(0, 6), order);
        Assert.Equal(Results(Dir("one")), Results(Dir("three")));
        // the points differ (a sweep that ran one config six times would pass the comparison above)
        Assert.Equal(6, File.ReadAllLines(Path.Combine(Dir("one"), Sweep.ResultsFile)).Select(l => SweepRecord.Parse(l, "line").TestLoss).Distinct().Count());
    }

    [Fact]
    public void Run_InTheDirectoryOfAnotherSweep_IsRefusedNamingTheDifference()
    {
        var first = Definition("0.3") with { Steps = 2 };
        Sweep.Run(first, Dir("s"), cancellation: Token);
        var otherGrid = Definition("0.3", "0.1") with { Steps = 2 };
        var e = Assert.Throws<InvalidOperationException>(() => Sweep.Run(otherGrid, Dir("s"), cancellation: Token));
        Assert.Contains("grid: recorded lr=0.3 optimizer=sgd,adam, now lr=0.3,0.1 optimizer=sgd,adam", e.Message);
        var otherConfig = first with { Base = Base with { BatchSize = 12 } };
        e = Assert.Throws<InvalidOperationException>(() => Sweep.Run(otherConfig, Dir("s"), cancellation: Token));
        Assert.Contains("config.batchSize: recorded 24, now 12", e.Message);
        // the thread count changes no number: not a difference
        Assert.Equal(2, Sweep.Run(first with { Base = Base with { Threads = 2 } }, Dir("s"), cancellation: Token).Count);
    }

    /// <summary>
    /// A 20-step point samples every 2 steps at the default --every (5 would give fewer than 8 samples), but keeps an explicit
    /// one, as diagnose and train do; the choice is part of the definition (so of a restart's comparison) only when explicit.
    /// </summary>
    [Fact]
    public void RunPoint_ExplicitEvery_IsKept_AndRecordedInTheDefinition()
    {
        var adapted = Definition("0.3");
        var exact = adapted with { ExactEvery = true };
        var point = adapted.Points[0];
        double exactLoss = Trials.Run(point.Config, 20, 5, exactEvery: true, cancellation: Token).FinalLoss;
        double adaptedLoss = Trials.Run(point.Config, 20, 5, cancellation: Token).FinalLoss;
        Assert.NotEqual(exactLoss, adaptedLoss); // the last five samples span steps 5-20 against 12-20
        Assert.Equal(exactLoss, Sweep.RunPoint(exact, point, cancellation: Token).Loss);
        Assert.Equal(adaptedLoss, Sweep.RunPoint(adapted, point, cancellation: Token).Loss);
        Assert.DoesNotContain("exact_every", adapted.ToJson());
        Assert.Contains("\"exact_every\": true", exact.ToJson());
    }

    [Fact]
    public void Run_WithADamagedResultsLine_NamesTheFileAndLine()
    {
        var sweep = Definition("0.3") with { Steps = 2 };
        Sweep.Run(sweep, Dir("d"), cancellation: Token);
        string results = Path.Combine(Dir("d"), Sweep.ResultsFile);
        File.WriteAllText(results, File.ReadAllLines(results)[0] + "\n{\"point\":1,\n");
        var e = Assert.Throws<InvalidDataException>(() => Sweep.Run(sweep, Dir("d"), cancellation: Token));
        Assert.Contains("results.jsonl, line 2", e.Message);
    }

    [Fact]
    public void Best_IsTheHighestTestAccuracy_FirstOnATie_AndMarkedInTheTable()
    {
        SweepRecord R(int i, double accuracy) => new(i, [i.ToString(CultureInfo.InvariantCulture)], 1, "MaxSteps", 0.5, 0.5, accuracy, 1, "healthy");
        SweepRecord[] records = [R(0, 0.5), R(1, 0.75), R(2, 0.75), R(3, double.NaN)];
        Assert.Same(records[1], Sweep.Best(records));
        var sweep = new SweepDefinition(Base, [new GridAxis("k", ["0", "1", "2", "3"])], [], 1, 1);
        var rows = Sweep.Markdown(sweep, records).Split('\n');
        Assert.EndsWith("★ |", rows[3].TrimEnd());
        Assert.Equal(1, rows.Count(r => r.Contains('★', StringComparison.Ordinal)));
    }

    [Fact]
    public void Best_IsNeverADivergedPoint()
    {
        // a run stopped on a NaN loss still scores its NaN outputs (50 % on two classes), and was marked best over a slow healthy point
        SweepRecord[] records =
        [
            new(0, ["1e12"], 20, "NonFiniteLoss", 0.69, double.NaN, 0.5, double.NaN, "non-finite"),
            new(1, ["1e-7"], 20, "MaxSteps", 0.70, 0.70, 0.45, 1, "stalled"),
            new(2, ["1e3"], 20, "MaxSteps", 1e30, double.PositiveInfinity, 0.6, 1, "exploding"),
        ];
        Assert.Same(records[1], Sweep.Best(records));
        Assert.Null(Sweep.Best([records[0]]));
    }
}
