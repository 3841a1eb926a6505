using GradFlow.Cli;

namespace GradFlow.Tests.TestSupport;

/// <summary>Runs the <c>gradflow</c> command in-process with its output captured.</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
