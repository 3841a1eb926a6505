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
        var (exit, stdout, stderr) = Python.RunToEnd(psi);
        Assert.False(stderr.Contains("No module named 'torch'", StringComparison.Ordinal),
            "PyTorch is missing: run 'apt-get install -y python3-torch' (scripts/test.sh does this)");
        return (exit, stdout, stderr);
    }
}
