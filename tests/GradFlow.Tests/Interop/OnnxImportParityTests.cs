using GradFlow.Autograd;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;
using GradFlow.Training.Onnx;

namespace GradFlow.Tests.Interop;

/// <summary>
/// Models exported from PyTorch (python3-torch, python3-onnx) by tests/python/onnx_models.py with
/// <c>torch.onnx.export</c> in training mode: an MLP, a small ResNet (conv, BatchNorm, max pooling, an
/// identity and a projection BasicBlock, global average pooling), a two-layer LSTM read at its last
/// step, an MLP with exact and tanh GELU, and two-layer transformer encoders (d = 16, 2 heads, T = 8:
/// Pre-LN GELU behind an nn.Embedding and learnt positions, Post-LN ReLU, Post-LN GELU with a causal mask). Each imports into a description, runs forward in training mode on the script's input and
/// backward on the loss Σ v·output: the output, the input's gradient and every parameter's gradient
/// (in PyTorch's parameter order) equal PyTorch's float64 ones within 1e-4 relative.
/// </summary>
[Trait("Category", "Interop")]
public sealed class OnnxImportParityTests : IClassFixture<OnnxImportParityTests.Exported>
{
    private readonly Exported _exported;

    public OnnxImportParityTests(Exported exported) => _exported = exported;

    /// <summary>The script's files, written once for the class.</summary>
    public sealed class Exported : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("gradflow-onnx-import-").FullName;

        public Exported()
        {
            var (exit, stdout, stderr) = PyTorchScript.Run("onnx_models.py", "export", Dir);
            Assert.True(exit == 0, $"onnx_models.py export failed: {stdout}\n{stderr}");
        }

        public void Dispose() => Directory.Delete(Dir, recursive: true);
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("cnn")]
    [InlineData("lstm")]
    [InlineData("lstm_hn")]
    [InlineData("gru_hn")]
    [InlineData("lstm_any")]
    [InlineData("avgpool")]
    [InlineData("zeropad")]
    [InlineData("gelu")]
    [InlineData("norms")]
    [InlineData("tf_pre")]
    [InlineData("tf_post")]
    [InlineData("tf_causal")]
    [InlineData("tf_pre_any_n")]
    [InlineData("tf_causal_any_n")]
    public void PyTorchExport_Imported_SameOutputAndGradientsAsPyTorch(string name)
    {
        var model = OnnxImport.Read(Path.Combine(_exported.Dir, name + ".onnx"));
        var reference = SafeTensors.Read(Path.Combine(_exported.Dir, name + ".safetensors"));
        var net = model.Build(new Generator(1));
        net.Train();
        var x = reference["x"].To(DType.Float32).Detach();
        bool tokens = !reference.Tensors.Any(t => t.Key == "grad.x"); // token indices: no gradient
        x.RequiresGrad = !tokens;
        var output = net.Forward(x);
        var v = reference["v"].To(DType.Float32).Detach();
        (v * output).Sum().Backward();

        AssertClose(reference["output"], output.Detach(), $"{name} output");
        if (!tokens) AssertClose(reference["grad.x"], x.Grad!, $"{name} input gradient");
        var parameters = net.NamedParameters().ToArray();
        var torchNames = reference.Metadata["parameters"].Split(',');
        Assert.Equal(torchNames.Length, parameters.Length);
        for (int i = 0; i < parameters.Length; i++)
            AssertClose(reference[$"grad.{i}"], parameters[i].Parameter.Grad!, $"{name} gradient of {parameters[i].Name} (PyTorch's {torchNames[i]})");
    }

    [Fact]
    public void PyTorchExport_SymbolicTimeAxis_ImportsAtAnyLength_UnlessALayerDependsOnT()
    {
        // an LSTM of one input feature read at its last step, exported with dynamic_axes {1: 'T'}: described at the nominal length
        // 1 of the recurrent shorthands, it runs at any length (the parity theory checks it against PyTorch at T = 5)
        var d = OnnxImport.Read(Path.Combine(_exported.Dir, "lstm_any.onnx")).Description;
        Assert.Equal([1, 1], d.Input);
        Assert.Equal(13, d.FlatSequenceSteps(13));
        // every step flattened into a linear layer: tied to T = 5, so the symbolic axis is refused as before
        var e = Assert.Throws<FormatException>(() => OnnxImport.Read(Path.Combine(_exported.Dir, "lstm_flat_any.onnx")));
        Assert.Contains("has dimension 1 = 'T'; every dimension but the batch must be a fixed size", e.Message);
        Assert.Contains("a layer after the recurrent one depends on T", e.Message);
    }

    [Fact]
    public void PyTorchExport_PadThatIsNotZeros_IsRefusedNamingThePad()
    {
        // the pads are computed from constants (a Shape, a Slice of step -1) as for nn.ZeroPad2d; the refusal is the Pad's own
        var e = Assert.Throws<FormatException>(() => OnnxImport.Read(Path.Combine(_exported.Dir, "reflectpad.onnx")));
        Assert.Contains("(op type Pad): Pad in mode 'reflect' is not supported", e.Message);
    }

    [Fact]
    public void PyTorchExport_Cnn_ImportsAsResidualBlocks()
    {
        var d = OnnxImport.Read(Path.Combine(_exported.Dir, "cnn.onnx")).Description;
        var residuals = d.Root.Blocks.OfType<ResidualBlock>().ToArray();
        Assert.Equal(2, residuals.Length);
        Assert.Equal(ShortcutKind.Identity, residuals[0].Shortcut);
        Assert.Equal(ShortcutKind.Projection, residuals[1].Shortcut);
        Assert.All(residuals, r => Assert.Equal(GradFlow.Nn.Activation.Relu, r.Post));
        Assert.Equal([1, 8, 8], d.Input);
    }

    [Fact]
    public void PyTorchExport_Lstm_ImportsAsOneTwoLayerBlockReadAtTheEnd()
    {
        var d = OnnxImport.Read(Path.Combine(_exported.Dir, "lstm.onnx")).Description;
        var rec = Assert.IsType<RecurrentBlock>(d.Root.Blocks[0]);
        Assert.Equal((GradFlow.Nn.RecurrentCellKind.Lstm, 8, 2, RecurrentOutputKind.Last), (rec.Cell, rec.Hidden, rec.Layers, rec.Output));
        Assert.Equal([5, 3], d.Input);
    }

    [Theory]
    [InlineData("tf_pre", "embedding(vocab=11,dim=16) positions(kind=learned,max=8) transformer(heads=2,ff=32,norm=pre,act=gelu,dropout=0) transformer(heads=2,ff=32,norm=pre,act=gelu,dropout=0) linear(out=5)")]
    [InlineData("tf_post", "transformer(heads=2,ff=32,dropout=0) transformer(heads=2,ff=32,dropout=0) linear(out=5)")]
    [InlineData("tf_causal", "transformer(heads=2,ff=32,act=gelu,dropout=0,causal=true) transformer(heads=2,ff=32,act=gelu,dropout=0,causal=true) linear(out=5)")]
    [InlineData("tf_causal_any_n", "transformer(heads=2,ff=32,act=gelu,dropout=0,causal=true) transformer(heads=2,ff=32,act=gelu,dropout=0,causal=true) linear(out=5)")]
    public void PyTorchExport_Transformer_ImportsAsTheNativeDescription(string name, string native)
    {
        var imported = OnnxImport.Read(Path.Combine(_exported.Dir, name + ".onnx")).Description;
        var expected = NetworkText.Parse($"net {string.Join('x', imported.Input)} seq[{native}]");
        Assert.Equal(NetworkText.Format(expected), NetworkText.Format(imported));
    }

    [Fact]
    public void PyTorchExport_DecoderLayer_RefusedNamingTheCrossAttention()
    {
        var e = Assert.Throws<FormatException>(() => OnnxImport.Read(Path.Combine(_exported.Dir, "tf_decoder.onnx")));
        Assert.Contains("node '/dec/multihead_attn/Softmax' (op type Softmax)", e.Message);
        Assert.Contains("cross-attention", e.Message);
        Assert.Contains("nearest supported: the self-attention of nn.TransformerEncoderLayer", e.Message);
    }

    [Fact]
    public void PyTorchExport_AttentionOutsideALayer_RefusedNamingIt()
    {
        var e = Assert.Throws<FormatException>(() => OnnxImport.Read(Path.Combine(_exported.Dir, "mha_alone.onnx")));
        Assert.Contains("node '/attn/Softmax' (self-attention): attention outside the form of nn.TransformerEncoderLayer is not supported; nearest supported: nn.TransformerEncoderLayer(batch_first=True)", e.Message);
    }

    [Fact]
    public void PyTorchExport_MaskNotCausal_RefusedNamingTheAttention()
    {
        var e = Assert.Throws<FormatException>(() => OnnxImport.Read(Path.Combine(_exported.Dir, "tf_mask.onnx")));
        Assert.Contains("node '/enc/layers.0/self_attn/Softmax' (the self-attention around it): an attention mask that is not causal (row 0, column 1 is 0)", e.Message);
        Assert.Contains("nearest supported: a causal mask", e.Message);
    }

    [Fact]
    public void Diagnose_OnnxDeepSigmoid_SameVerdictAsTheNativeDescription()
    {
        string data = Path.Combine(_exported.Dir, "data.npz");
        string[] Kinds(string model)
        {
            var (code, stdout, stderr) = CliRunner.Run("diagnose", "--model", model, "--data", data, "--json");
            Assert.True(code is 0 or 3, $"diagnose {model}: exit {code}\n{stderr}");
            using var doc = System.Text.Json.JsonDocument.Parse(stdout);
            return doc.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()!).ToArray();
        }
        var imported = Kinds(Path.Combine(_exported.Dir, "deep_sigmoid.onnx"));
        Assert.Contains("vanishing-gradient", imported);
        Assert.Equal(Kinds("mlp 6-16x10-3 act=sigmoid"), imported);
    }

    [Fact]
    public void Diagnose_OnnxPostLnTransformer_SameVerdictAsTheNativeDescription()
    {
        // learning rate 1 without warm-up: a Post-LN encoder that does not learn
        string data = Path.Combine(_exported.Dir, "data_seq.npz");
        string[] Kinds(string model)
        {
            var (code, stdout, stderr) = CliRunner.Run("diagnose", "--model", model, "--data", data, "--lr", "1", "--json");
            Assert.True(code is 0 or 3, $"diagnose {model}: exit {code}\n{stderr}");
            using var doc = System.Text.Json.JsonDocument.Parse(stdout);
            return doc.RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()!).ToArray();
        }
        // the same problems (their order is by severity, which the two starting points may rank differently)
        var imported = Kinds(Path.Combine(_exported.Dir, "tf_cls.onnx")).Order().ToArray();
        Assert.Contains("post-ln-without-warmup", imported);
        Assert.Equal(Kinds("net 8x16 seq[transformer(heads=2,ff=32,dropout=0) transformer(heads=2,ff=32,dropout=0) flatten linear(out=3)]").Order(), imported);
    }

    [Fact]
    public void Repair_OnnxDeepSigmoid_GivesTheChangesAndTrainsTheImport()
    {
        string data = Path.Combine(_exported.Dir, "data.npz"), model = Path.Combine(_exported.Dir, "deep_sigmoid.onnx");
        var (code, stdout, stderr) = CliRunner.Run("repair", "--model", model, "--data", data);
        Assert.True(code == 0, $"repair: exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("changes kept:", stdout);
        (code, stdout, stderr) = CliRunner.Run("train", "--model", model, "--data", data, "--epochs", "1", "--json");
        Assert.True(code == 0, $"train: exit {code}\n{stdout}\n{stderr}");
    }

    [Fact]
    public void Trainer_OnnxModel_StartsFromTheImportedWeights()
    {
        string model = Path.Combine(_exported.Dir, "mlp.onnx");
        var config = new TrainingConfig { Model = model, Data = Path.Combine(_exported.Dir, "data.npz"), Epochs = 1 };
        var trainer = new Trainer(config);
        var imported = OnnxImport.Read(model);
        foreach (var (name, p) in trainer.Model.NamedParameters())
            Assert.Equal(imported.Weights[name].ToArray(), p.Data.ToArray());
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        var e = expected.ToDoubleArray();
        var a = actual.ToDoubleArray();
        double scale = e.Max(Math.Abs) + 1e-30, worst = 0;
        for (int i = 0; i < e.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - e[i]));
        Assert.True(worst / scale <= 1e-4, $"{what}: relative error {worst / scale:G3}");
    }
}
