using System.Diagnostics;

namespace GradFlow.Tests.TestSupport;

/// <summary>Runs a script of tests/python with Debian's python3 and its PyTorch (python3-torch).</summary>
public static class PyTorchScript
{
    /// <summary>
    /// Runs tests/python/<paramref name="script"/> with <paramref name="args"/>; fails the test with
    /// the install command when PyTorch is missing. Returns the exit code and both outputs.
    /// </summary>
    public static (int Exit, string Stdout, string Stderr) Run(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(RepoPaths.Root, "tests", "python", script));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderrTask = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd(), stderr = stderrTask.Result;
        p.WaitForExit();
        Assert.False(stderr.Contains("No module named 'torch'", StringComparison.Ordinal),
            "PyTorch is missing: run 'apt-get install -y python3-torch' (scripts/test.sh does this)");
        return (p.ExitCode, stdout, stderr);
    }
}
