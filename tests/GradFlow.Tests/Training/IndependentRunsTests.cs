using GradFlow.Training;

namespace GradFlow.Tests.Training;

/// <summary>
/// <see cref="IndependentRuns"/> on threads (the MPI path is tested by <see cref="MpiTrainingTests"/>): results reported in
/// index order whatever order the runs finish in, and the first failure rethrown.
/// </summary>
public class IndependentRunsTests
{
    [Fact]
    public void Run_RunsFinishingOutOfOrder_AreReportedInIndexOrder()
    {
        using var laterDone = new ManualResetEventSlim();
        var finished = new List<int>();
        var reported = new List<(int, string)>();
        // run 0 waits until run 1 (on the other thread) has finished, so they finish as 1, 0, then 2
        var results = IndependentRuns.Run(3, i =>
        {
            if (i == 0) Assert.True(laterDone.Wait(TimeSpan.FromMinutes(1)));
            lock (finished) finished.Add(i);
            if (i == 1) laterDone.Set();
            return $"r{i}";
        }, (i, r) => reported.Add((i, r)), jobs: 2, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(1, finished[0]);
        Assert.Equal([(0, "r0"), (1, "r1"), (2, "r2")], reported);
        Assert.Equal(["r0", "r1", "r2"], results);
    }

    [Fact]
    public void Run_AFailingRun_IsRethrownAndStopsTheHandingOut()
    {
        int started = 0;
        var e = Assert.Throws<InvalidDataException>(() => IndependentRuns.Run(100, i =>
        {
            Interlocked.Increment(ref started);
            return i == 3 ? throw new InvalidDataException("run 3 failed") : i;
        }, jobs: 1, cancellation: TestContext.Current.CancellationToken));
        Assert.Equal("run 3 failed", e.Message);
        Assert.Equal(4, started);
    }

    [Fact]
    public void Run_OneProcessCommunicator_IsTheThreadedRun()
    {
        var reported = new List<int>();
        var results = IndependentRuns.Run(SingleProcessCommunicator.Instance, 5, i => (i * i).ToString(System.Globalization.CultureInfo.InvariantCulture),
            (i, _) => reported.Add(i), jobs: 3, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(["0", "1", "4", "9", "16"], results);
        Assert.Equal([0, 1, 2, 3, 4], reported);
        Assert.Equal(results, IndependentRuns.RunEverywhere(SingleProcessCommunicator.Instance, 5, i => (i * i).ToString(System.Globalization.CultureInfo.InvariantCulture),
            cancellation: TestContext.Current.CancellationToken));
    }
}
