using System.Diagnostics;
using GradFlow.Kernels;

namespace GradFlow.Tests.Tensors;

/// <summary>
/// The same numbers in a process's first calls as later: the first calls run the JIT's first tier (and on-stack
/// replacement), later ones the fully optimised code, and a kernel whose rounding depended on which (the runtime's
/// vector exp, whose multiply-adds the JIT may or may not fuse) gave other bits early in a run. Checked in a child
/// process, where nothing has warmed the code up.
/// </summary>
public class ColdStartDeterminismTests
{
    [Fact]
    public async Task Float64GeluBackward_FirstCallsOfAFreshProcess_SameBitsAsLaterCalls()
    {
        var assembly = typeof(ColdStartDeterminismTests).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { assembly, "-method", $"{typeof(ColdStartDeterminismTests).FullName}.{nameof(InThisProcess_Float64GeluBackward_FirstCallSameBitsAsLaterCalls)}", "-noColor" })
            psi.ArgumentList.Add(arg);
        using var process = Process.Start(psi)!;
        var token = TestContext.Current.CancellationToken;
        var stdout = process.StandardOutput.ReadToEndAsync(token);
        var stderr = process.StandardError.ReadToEndAsync(token);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(TimeSpan.FromMinutes(10)); // a guard against a hung child, not a time limit
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("Total: 1, Errors: 0, Failed: 0", output);
    }

    /// <summary>The check itself; run alone in a child process by the test above (in the suite's own process it is warm and passes trivially).</summary>
    [Fact]
    public void InThisProcess_Float64GeluBackward_FirstCallSameBitsAsLaterCalls()
    {
        // a float64 GELU backward of 2²⁰ elements: the first call runs long enough to move from tier-0 code to OSR code
        var rng = new Random(7);
        int n = 1 << 20;
        var x = new double[n];
        var dy = new double[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (rng.NextDouble() * 2 - 1) * (i % 4 == 0 ? 40 : i % 4 == 1 ? 6 : i % 4 == 2 ? 1 : 16);
            dy[i] = ((i % 7) - 3) * 0.37;
        }
        foreach (var isa in new[] { InstructionSet.Avx512, InstructionSet.Avx2 })
        {
            var first = new double[n];
            var later = new double[n];
            ActivationKernels.GeluBackward<double>(x, dy, first, isa);
            for (int rep = 0; rep < 40; rep++) ActivationKernels.GeluBackward<double>(x, dy, later, isa);
            Thread.Sleep(300); // the background compiler's tier-1 code is installed by now
            ActivationKernels.GeluBackward<double>(x, dy, later, isa);
            int differ = 0;
            for (int i = 0; i < n; i++)
                if (BitConverter.DoubleToInt64Bits(first[i]) != BitConverter.DoubleToInt64Bits(later[i])) differ++;
            Assert.True(differ == 0, $"{isa}: {differ} of {n} gradients differ between the first call and later calls");
        }
    }
}
