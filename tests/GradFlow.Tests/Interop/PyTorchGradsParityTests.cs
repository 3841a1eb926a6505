using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Interop;

/// <summary>
/// `gradflow grads` against PyTorch (Debian's python3-torch, which the test command installs): the same
/// weights, the same batch, cross-entropy; loss, output and every gradient within 1e-4 relative.
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchGradsParityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-parity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("tanh")]
    [InlineData("relu")]
    [InlineData("sigmoid")]
    [InlineData("gelu")]
    [InlineData("mish")]
    public void Grads_SameWeightsAndBatch_MatchPyTorch(string activation)
    {
        var g = new Generator(11);
        var batchPath = Path.Combine(_dir, "batch.safetensors");
        SafeTensors.Write(batchPath, [
            new("x", Tensor.RandN(g, 16, 20)),
            new("y", Tensor.FromArray(Enumerable.Range(0, 16).Select(i => (double)(i * 7 % 5)).ToArray())),
        ]);
        var gradsPath = Path.Combine(_dir, "grads.safetensors");
        var (code, _, err) = CliRunner.Run("grads", "--model", $"mlp 20-32-24-5 act={activation} init=he-normal", "--seed", "3",
            "--batch", batchPath, "--out", gradsPath);
        Assert.True(code == 0, err);

        var (exit, stdout, stderr) = RunParity(batchPath, gradsPath, activation);
        Assert.True(exit == 0, $"PyTorch parity failed for {activation}: {stdout}\n{stderr}");
        Assert.Contains("\"worst\"", stdout);
    }

    /// <summary>Runs tests/python/grads_parity.py on a batch and GradFlow's gradients: (exit code, stdout, stderr).</summary>
    private static (int Exit, string Stdout, string Stderr) RunParity(string batchPath, string gradsPath, string activation) =>
        PyTorchScript.Run("grads_parity.py", batchPath, gradsPath, activation);

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    public void Grads_TokenTransformerWithATargetPerPosition_MatchesPyTorch(double labelSmoothing)
    {
        // a language model (the `transformer vocab=V` shorthand: Pre-LN, causal, GELU, learned positions, tied head) with y [N, T],
        // the next token of every position: the loss train uses, cross-entropy over all N·T positions
        var g = new Generator(5);
        var tokens = new double[3 * 8];
        var next = new double[3 * 8];
        for (int i = 0; i < tokens.Length; i++) (tokens[i], next[i]) = (g.NextInt(11), g.NextInt(11));
        var batchPath = Path.Combine(_dir, "batch.safetensors");
        SafeTensors.Write(batchPath, [new("x", Tensor.FromArray(tokens, 3, 8)), new("y", Tensor.FromArray(next, 3, 8))]);
        var gradsPath = Path.Combine(_dir, "grads.safetensors");
        var (code, _, err) = CliRunner.Run("grads", "--model", "transformer vocab=11 d=16 heads=4 layers=2 ctx=8", "--seed", "3",
            "--batch", batchPath, "--out", gradsPath, "--label-smoothing", labelSmoothing.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(code == 0, err);

        var (exit, stdout, stderr) = PyTorchScript.Run("lm_grads_parity.py", batchPath, gradsPath, "4", labelSmoothing.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(exit == 0, $"PyTorch parity failed for the token transformer (label smoothing {labelSmoothing}): {stdout}\n{stderr}");
        Assert.Contains("\"positions\": 24", stdout);
        Assert.Contains("\"tok_emb.weight.grad\"", stdout);
    }

    [Fact]
    public void Grads_PReluAtExactlyZero_MatchPyTorch()
    {
        // he-normal zeroes the biases, so a zero input row puts exactly 0 into the PReLU, where
        // PyTorch's input gradient is a·g (and the slope's x·g = 0); a random row covers both branches.
        var batchPath = Path.Combine(_dir, "batch.safetensors");
        SafeTensors.Write(batchPath, [
            new("x", Tensor.FromArray([0f, 0f, 0.7f, -1.3f], 2, 2)),
            new("y", Tensor.FromArray([0.0, 1.0])),
        ]);
        var gradsPath = Path.Combine(_dir, "grads.safetensors");
        var (code, _, err) = CliRunner.Run("grads", "--model", "mlp 2-3-2 act=prelu init=he-normal", "--seed", "3",
            "--batch", batchPath, "--out", gradsPath);
        Assert.True(code == 0, err);
        var (exit, stdout, stderr) = RunParity(batchPath, gradsPath, "prelu");
        Assert.True(exit == 0, $"PyTorch parity failed for prelu at x = 0: {stdout}\n{stderr}");
    }
}
