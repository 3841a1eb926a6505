using System.Runtime.CompilerServices;
using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

[assembly: AssemblyFixture(typeof(CrashDumpSettings))]

namespace GradFlow.Tests.TestSupport;

/// <summary>Process-wide settings of the test run, applied before any test.</summary>
internal static class SuiteSetup
{
    /// <summary>
    /// Kernels run on the calling thread unless a test sets another count (the thread-count tests set 1
    /// and 2 themselves, see <see cref="KernelThreadCounts"/>). xunit already runs as many tests at once
    /// as there are cores, so a kernel worker only adds a spinning thread that takes a core from the
    /// other test: on 2 cores the hand catalogue took 7.2 CPU-minutes with a worker and 4.7 without, in
    /// the same wall time. Results are bitwise the same for any count (the kernels' determinism rule).
    /// </summary>
    [ModuleInitializer]
    internal static void Initialise()
    {
        KernelThreads.SetCount(KernelThreadCount);
    }

    /// <summary>The suite's kernel thread count.</summary>
    internal const int KernelThreadCount = 1;

    /// <summary>
    /// Sets the kernel thread count back to the suite's. A test that changes the count restores this, not the count it found
    /// when it began: that snapshot may be another test's count of the moment (the classes run two at a time), and restoring
    /// it left the rest of the run on two kernel threads.
    /// </summary>
    internal static void RestoreKernelThreads() => KernelThreads.SetCount(KernelThreadCount);
}

/// <summary>
/// The runtime's crash-dump settings that the test command (scripts/test.sh) sets, so that a crash of the test process
/// (a signal, a stack overflow) leaves a report of every thread's stack, are read once when a process starts: removed from
/// the test process's environment before its first test, they still apply to it but are not inherited by the processes the
/// tests start (a CLI run expected to fail, a child test process, an MPI rank), whose crashes are the tests' business and
/// whose stderr the tests read. Not in the module initializer: with the hang dump on, the test platform runs the tests in a
/// child of the process it starts first, which loads this assembly too and would strip the settings from the child's
/// environment before starting it (the last CI run's stack overflow left no crash report for that reason).
/// </summary>
public sealed class CrashDumpSettings
{
    /// <summary>The variables scripts/test.sh sets for the crash report.</summary>
    private static readonly string[] Variables =
        ["DOTNET_DbgEnableMiniDump", "DOTNET_DbgMiniDumpType", "DOTNET_DbgMiniDumpName", "DOTNET_EnableCrashReport"];

    public CrashDumpSettings()
    {
        foreach (var name in Variables) Environment.SetEnvironmentVariable(name, null);
    }
}
