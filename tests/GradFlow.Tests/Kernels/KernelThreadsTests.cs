using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Kernels;

public class KernelThreadsTests
{
    [Fact]
    public async Task Run_EveryTaskRunsOnce_WhileWorkersAreBeingCreated()
    {
        try
        {
            // Growing the pool creates a worker right before a job is published: the start-up race
            // (a new worker skipping the job it was created for) would hang here; the timeout turns that into a failure.
            for (int count = 2; count <= 12; count++)
            {
                KernelThreads.SetCount(count);
                var hits = new int[4 * count];
                var job = Task.Run(() => KernelThreads.Run(hits.Length, t => Interlocked.Increment(ref hits[t])), TestContext.Current.CancellationToken);
                var finished = await Task.WhenAny(job, Task.Delay(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken));
                Assert.True(finished == job, $"KernelThreads.Run hung with {count} threads");
                Assert.All(hits, h => Assert.Equal(1, h));
            }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Fact]
    public void Run_TasksClaimedInRuns_EveryTaskOnceForEveryJobSize()
    {
        // Workers claim a share of what is left per claim: every size from 1 to 300 tasks, two jobs of each back to back,
        // each task of each job exactly once (a run that overlapped the next claim or stopped short would show here)
        try
        {
            foreach (int count in new[] { 2, 3 })
            {
                KernelThreads.SetCount(count);
                for (int tasks = 1; tasks <= 300; tasks++)
                    for (int job = 0; job < 2; job++)
                    {
                        var hits = new int[tasks];
                        KernelThreads.Run(tasks, t => Interlocked.Increment(ref hits[t]));
                        Assert.True(hits.All(h => h == 1), $"{count} threads, {tasks} tasks: {string.Join(",", hits)}");
                    }
            }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Fact]
    public void Run_ExceptionInTask_PropagatesToCaller()
    {
        var e = Assert.Throws<InvalidOperationException>(() => KernelThreads.Run(8, t =>
        {
            if (t == 5) throw new InvalidOperationException("task 5 failed");
        }));
        Assert.Equal("task 5 failed", e.Message);
    }
}
