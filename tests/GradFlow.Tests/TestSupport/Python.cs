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
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.False(stderr.Result.Contains("No module named", StringComparison.Ordinal),
            "a Python module is missing: apt-get install -y python3-numpy python3-protobuf (scripts/test.sh does this): " + stderr.Result);
        return (p.ExitCode, stdout, stderr.Result);
    }
}
