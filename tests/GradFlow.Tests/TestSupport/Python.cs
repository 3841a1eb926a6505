using System.Diagnostics;

namespace GradFlow.Tests.TestSupport;

/// <summary>Runs Debian's python3 (not a pyenv shim) for tests that check files with numpy or protobuf.</summary>
public static class Python
{
    /// <summary>Runs <c>/usr/bin/python3 ARGS</c> in <paramref name="workDir"/>; fails naming the Debian package when a module is missing.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(string? workDir, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workDir is not null) psi.WorkingDirectory = workDir;
        foreach (var a in args) psi.ArgumentList.Add(a);
        var (exit, stdout, stderr) = RunToEnd(psi);
        Assert.False(stderr.Contains("No module named", StringComparison.Ordinal),
            "a Python module is missing: apt-get install -y python3-numpy python3-protobuf (scripts/test.sh does this): " + stderr);
        return (exit, stdout, stderr);
    }

    /// <summary>How long a script may run before it is killed and the test fails: a guard against a hang, not a time limit.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    /// <summary>Runs <paramref name="psi"/> (both outputs redirected) to its end, or kills it after <see cref="Patience"/> and fails the test with what it printed.</summary>
    internal static (int Exit, string Stdout, string Stderr) RunToEnd(ProcessStartInfo psi)
    {
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(Patience))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            Assert.Fail($"{psi.FileName} {string.Join(' ', psi.ArgumentList)} did not end within {Patience}; killed. Its output:\n{stdout.Result}\n{stderr.Result}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result); // the reads end with the outputs
    }
}
