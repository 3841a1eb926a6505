using GradFlow.Tensors;
using GradFlow.Training;
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
    [InlineData("--trial-steps", "0", "at least 8")]
    [InlineData("--trial-steps", "7", "need 8 monitor samples")]
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

    /// <summary>
    /// What only a data file is read with is refused on a built-in data set, naming the option: it was accepted, ignored, and written
    /// into config.json (--no-standardize on Fashion-MNIST gave the same losses bit for bit).
    /// </summary>
    [Theory]
    [InlineData("fashion-mnist", "mlp 784-8-10", "--no-standardize", null)]
    [InlineData("spirals", "mlp 2-8-2", "--test-fraction", "0.5")]
    [InlineData("spirals", "mlp 2-8-2", "--stream", null)]
    [InlineData("spirals", "mlp 2-8-2", "--task", "classes")]
    [InlineData("spirals", "mlp 2-8-2", "--target", "y")]
    [InlineData("circles", "mlp 2-8-2", "--seq-len", "7")]
    public void Train_FileOnlyOption_OnABuiltInDataSet_ExitsTwoNamingIt(string data, string model, string option, string? value)
    {
        string[] args = ["train", "--data", data, "--model", model, "--max-steps", "1", "--train-limit", "64", "--threads", "1", option];
        var (code, _, err) = Run(value is null ? args : [.. args, value]);
        Assert.Equal(2, code);
        Assert.Contains($"{option} applies to", err);
        Assert.Contains($"'{data}' is a built-in data set", err);
    }

    /// <summary>--every and --monitor-every both set a trial's sampling: given together, --every won silently; now a usage error.</summary>
    [Theory]
    [InlineData("diagnose")]
    [InlineData("sweep")]
    public void EveryAndMonitorEvery_Together_ExitTwo(string verb)
    {
        var (code, _, err) = Run(verb, "--data", "spirals", "--model", "mlp 2-8-2", "--steps", "8", "--every", "2", "--monitor-every", "4");
        Assert.Equal(2, code);
        Assert.Contains("--every and --monitor-every both set", err);
    }

    /// <summary>A name that matches no entry is a usage error (it evaluated nothing and printed rates of NaN, exit 0).</summary>
    [Fact]
    public void Evaluate_OnlyMatchingNothing_ExitsTwoNamingIt()
    {
        var (code, _, err) = Run("evaluate", "--catalogue", Path.Combine(RepoPaths.Root, "tests", "catalogue", "generated.json"), "--split", "held-out", "--only", "g1-003,NoSuchEntry");
        Assert.Equal(2, code);
        Assert.Contains("'NoSuchEntry'", err);
    }

    [Fact]
    public void UnknownCommand_NamesItAndExitsTwo()
    {
        var (code, _, err) = Run("frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("'frobnicate'", err);
    }

    [Fact]
    public void Grads_RunsWithDropoutOff()
    {
        // the output must be the written weights' own function of x: no dropout mask (a transformer's default dropout drew masks
        // no other framework could reproduce)
        var dir = Directory.CreateTempSubdirectory("gradflow-cli-dropout-").FullName;
        try
        {
            var rng = new Random(3);
            var x = new float[5 * 4];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var batch = Path.Combine(dir, "b.safetensors");
            SafeTensors.Write(batch, [new("x", Tensor.FromArray(x, 5, 4)), new("y", Tensor.FromArray(new float[] { 0, 1, 2, 0, 1 }, 5))]);
            var outPath = Path.Combine(dir, "g.safetensors");
            var (code, _, err) = Run("grads", "--model", "mlp 4-8-3 act=tanh dropout=0.5", "--batch", batch, "--out", outPath);
            Assert.True(code == 0, err);
            var g = SafeTensors.Read(outPath);
            string first = g.Tensors.Select(t => t.Key).First(k => k.EndsWith(".weight", StringComparison.Ordinal) && g[k].Shape[0] == 8);
            string last = g.Tensors.Select(t => t.Key).First(k => k.EndsWith(".weight", StringComparison.Ordinal) && g[k].Shape[0] == 3);
            var (w1, b1) = (g[first].ToDoubleArray(), g[first[..^"weight".Length] + "bias"].ToDoubleArray());
            var (w2, b2) = (g[last].ToDoubleArray(), g[last[..^"weight".Length] + "bias"].ToDoubleArray());
            var output = g["output"].ToDoubleArray();
            for (int n = 0; n < 5; n++)
                for (int k = 0; k < 3; k++)
                {
                    double o = b2[k];
                    for (int j = 0; j < 8; j++)
                    {
                        double h = b1[j];
                        for (int i = 0; i < 4; i++) h += w1[j * 4 + i] * x[n * 4 + i];
                        o += w2[k * 8 + j] * Math.Tanh(h);
                    }
                    Assert.Equal(o, output[n * 3 + k], 1e-5);
                }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Grads_LanguageModel_TakesATargetPerPosition_AndNamesTheShapeItNeeds()
    {
        var dir = Directory.CreateTempSubdirectory("gradflow-cli-lm-").FullName;
        try
        {
            const string model = "transformer vocab=7 d=8 heads=2 layers=1 ctx=4";
            var tokens = new float[] { 1, 2, 3, 4, 5, 6, 0, 1 };
            string batch = Path.Combine(dir, "b.safetensors"), outPath = Path.Combine(dir, "g.safetensors");
            SafeTensors.Write(batch, [new("x", Tensor.FromArray(tokens, 2, 4)), new("y", Tensor.FromArray(new float[] { 2, 3, 4, 5, 6, 0, 1, 2 }, 2, 4))]);
            var (code, _, err) = Run("grads", "--model", model, "--batch", batch, "--out", outPath);
            Assert.True(code == 0, err);
            var written = SafeTensors.Read(outPath);
            Assert.Equal([2, 4, 7], written["output"].Shape.ToArray());
            // the loss is train's: the mean cross-entropy over the 8 positions of the written logits
            var logits = written["output"].ToDoubleArray();
            double sum = 0;
            int[] y = [2, 3, 4, 5, 6, 0, 1, 2];
            for (int p = 0; p < 8; p++)
            {
                var row = logits.AsSpan(p * 7, 7);
                double max = row.ToArray().Max(), z = 0;
                foreach (double v in row) z += Math.Exp(v - max);
                sum += max + Math.Log(z) - row[y[p]];
            }
            Assert.Equal(sum / 8, written["loss"].Item(), 1e-6);

            SafeTensors.Write(batch, [new("x", Tensor.FromArray(tokens, 2, 4)), new("y", Tensor.FromArray(new float[] { 2, 3 }, 2))]);
            (code, _, err) = Run("grads", "--model", model, "--batch", batch, "--out", outPath);
            Assert.Equal(1, code);
            Assert.Contains("b.safetensors: 'y' has shape [2], expected [2, 4] (a class index per position: the model gives [4, 7] logits per example)", err);
            SafeTensors.Write(batch, [new("x", Tensor.FromArray(tokens, 2, 4)), new("y", Tensor.FromArray(new float[] { 2, 3, 4, 5, 6, 0, 7, 2 }, 2, 4))]);
            (code, _, err) = Run("grads", "--model", model, "--batch", batch, "--out", outPath);
            Assert.Equal(1, code);
            Assert.Contains("'y'[1, 2] = 7 is not a class index in [0, 7)", err);
            // an input that is not a token id is named with the file, as train names it (it was the embedding's "input element 6 is 7")
            foreach (float bad in new[] { 7f, 2.5f, -1f })
            {
                SafeTensors.Write(batch, [new("x", Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6, bad, 1 }, 2, 4)), new("y", Tensor.FromArray(new float[] { 2, 3, 4, 5, 6, 0, 1, 2 }, 2, 4))]);
                (code, _, err) = Run("grads", "--model", model, "--batch", batch, "--out", outPath);
                Assert.Equal(1, code);
                Assert.Contains(FormattableString.Invariant($"'b.safetensors' holds the input value {bad}, not a token id in [0, 7)"), err);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Grads_BatchInAnotherFormat_ExitsOneSayingItTakesSafetensors()
    {
        using var dir = new GradFlow.Tests.Data.TempDirectory();
        // an NPZ is a zip file: read as safetensors its first 8 bytes were a header length, and the error spoke of that
        var batch = dir.Write("d.npz", [0x50, 0x4B, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00]);
        var (code, _, err) = Run("grads", "--model", "mlp 2-3-2", "--batch", batch, "--out", Path.Combine(dir.Path, "g.safetensors"));
        Assert.Equal(1, code);
        Assert.Contains("d.npz is not a .safetensors file", err);
        Assert.DoesNotContain("header length", err);
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
