using GradFlow.Kernels;

namespace GradFlow.Tests.TestSupport;

/// <summary>Runs a computation on one and then two kernel threads (then back to the suite's count), for bitwise-determinism tests.</summary>
public static class KernelThreadCounts
{
    public static (T One, T Two) OneAndTwo<T>(Func<T> run)
    {
        try
        {
            KernelThreads.SetCount(1);
            var one = run();
            KernelThreads.SetCount(2);
            return (one, run());
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }
}
