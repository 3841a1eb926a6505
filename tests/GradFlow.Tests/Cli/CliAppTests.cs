using GradFlow.Cli;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Cli;

public class CliAppTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void Help_PrintsUsageAndExitsZero()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("Usage:\n  gradflow [command] [options]", output);
    }

    [Fact]
    public void NoArguments_PrintsUsageAndExitsTwo()
    {
        var (code, output, _) = Run();
        Assert.Equal(2, code);
        Assert.Contains("Usage:\n  gradflow [command] [options]", output);
    }

    [Fact]
    public void Version_NamesKernelPathAndThreads()
    {
        var (code, output, _) = Run("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^gradflow \d+\.\d+\.\d+ \(kernels: (avx512|avx2|portable), threads: \d+\)\s*$", output);
    }

    [Theory]
    [InlineData("--trial-steps", "0", "at least 1")]
    [InlineData("--trial-steps", "many", "an integer")]
    [InlineData("--jobs", "0", "1..256")]
    [InlineData("--jobs", "257", "1..256")]
    [InlineData("--jobs", "two", "an integer")]
    public void Evaluate_BadNumber_ExitsTwoNamingTheOption(string option, string value, string expected)
    {
        var (code, _, err) = Run("evaluate", "--catalogue", "tests/catalogue/generated.json", option, value);
        Assert.Equal(2, code);
        Assert.Contains(option, err);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void UnknownCommand_NamesItAndExitsTwo()
    {
        var (code, _, err) = Run("frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("'frobnicate'", err);
    }

    [Fact]
    public void Grads_BatchWithTensorLargerThanAnArray_ExitsOneNamingFileTensorAndSize()
    {
        var dir = Directory.CreateTempSubdirectory("gradflow-cli-big-").FullName;
        try
        {
            var batch = Path.Combine(dir, "batch.safetensors");
            SparseSafeTensors.Write(batch, huge: "x", small: "y");
            var (code, _, err) = Run("grads", "--model", "mlp 2-3-2", "--batch", batch, "--out", Path.Combine(dir, "g.safetensors"));
            Assert.Equal(1, code);
            Assert.Contains("batch.safetensors", err);
            Assert.Contains("'x'", err);
            Assert.Contains(SparseSafeTensors.HugeBytes + " bytes", err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
