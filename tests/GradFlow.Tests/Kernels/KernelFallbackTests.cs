using System.Diagnostics;
using GradFlow.Kernels;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// Re-runs every kernel test in a child process with the wider instruction sets switched off
/// (<c>DOTNET_EnableAVX512=0</c>, then also <c>DOTNET_EnableAVX2=0</c>), so the kernels built on
/// TensorPrimitives and the run-time dispatchers are checked on each narrower path too. A test that forces every path
/// itself (trait <see cref="KernelPaths.Forced"/>: most GEMM tests) has run each of them in this process and is left out
/// (on a 2-core Zen 1 the portable path's GEMM tests alone took 3½ of its 4 minutes).
/// </summary>
public class KernelFallbackTests
{
    public static TheoryData<string, string> Paths => new()
    {
        { "DOTNET_EnableAVX512", "avx2" },
        { "DOTNET_EnableAVX2", "portable" },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task KernelTests_WithWiderPathsDisabled_AllPass(string variable, string expectedPath)
    {
        if (KernelIsa.Best == InstructionSet.Portable) return; // nothing narrower to force
        if (expectedPath == "avx2" && KernelIsa.Best < InstructionSet.Avx512) return;
        var assembly = typeof(KernelFallbackTests).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { assembly, "-namespace", "GradFlow.Tests.Kernels", "-class-", typeof(KernelFallbackTests).FullName!,
                     "-trait-", $"{KernelPaths.Trait}={KernelPaths.Forced}", "-noColor" })
            psi.ArgumentList.Add(arg);
        psi.Environment[variable] = "0";
        if (variable == "DOTNET_EnableAVX2") psi.Environment["DOTNET_EnableAVX512"] = "0";
        using var process = Process.Start(psi)!;
        var token = TestContext.Current.CancellationToken;
        var stdout = process.StandardOutput.ReadToEndAsync(token);
        var stderr = process.StandardError.ReadToEndAsync(token);
        // a guard against a hung child only, not a time limit: on a loaded 2-core machine the portable path's run took
        // over 4 minutes (a 4-minute guard failed a suite run with three builds beside it)
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(TimeSpan.FromMinutes(30));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, $"kernel tests failed with {variable}=0 (path {expectedPath}):\n{Tail(output)}");
        Assert.Contains("Failed: 0", output);
        Assert.DoesNotContain("Total: 0,", output);
    }

    private static string Tail(string s) => s.Length <= 6000 ? s : s[^6000..];
}
