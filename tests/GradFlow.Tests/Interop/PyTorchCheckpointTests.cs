using System.Text.Json;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Interop;

/// <summary>A checkpoint written by GradFlow is read by PyTorch: names, shapes and values match, and it loads into a torch model.</summary>
[Trait("Category", "Interop")]
public sealed class PyTorchCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Checkpoint_ReadByPyTorch_NamesShapesValuesMatch()
    {
        var trainer = new Trainer(new TrainingConfig { Model = "mlp 2-16x2-2 act=tanh init=xavier-uniform", Data = "circles", Epochs = 1, Threads = 1 });
        trainer.Run(_dir, cancellation: TestContext.Current.CancellationToken);
        var path = Path.Combine(_dir, "checkpoints", "epoch-0001.safetensors");

        var (exit, stdout, stderr) = PyTorchScript.Run("read_checkpoint.py", path);
        Assert.True(exit == 0, stderr);

        using var doc = JsonDocument.Parse(stdout);
        var tensors = doc.RootElement.GetProperty("tensors");
        foreach (var (name, t) in trainer.Model.StateDict())
        {
            var e = tensors.GetProperty(name);
            Assert.Equal(t.Shape.ToArray(), e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()));
            var v = t.ToDoubleArray();
            Assert.Equal(v.Sum(), e.GetProperty("sum").GetDouble(), Math.Max(1e-9, Math.Abs(v.Sum()) * 1e-12));
            Assert.Equal(v.Take(3), e.GetProperty("first").EnumerateArray().Select(x => x.GetDouble()));
        }
        Assert.Equal(["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"], doc.RootElement.GetProperty("loaded").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("1", doc.RootElement.GetProperty("metadata").GetProperty("epoch").GetString());
    }
}
