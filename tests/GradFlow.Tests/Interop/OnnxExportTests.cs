using GradFlow.Training;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training.Onnx;
using Microsoft.ML.OnnxRuntime;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace GradFlow.Tests.Interop;

/// <summary>
/// <see cref="OnnxExport"/> against ONNX Runtime (Microsoft.ML.OnnxRuntime) and ONNX's own checker
/// (python3-onnx): every family's network, its parameters and running statistics moved away from their
/// initial values as training would, is exported; ONNX Runtime's output on a random batch equals
/// GradFlow's evaluation-mode output within 1e-5 (relative to the largest output), the checker accepts
/// the file, and the models the importer reads come back as the same description and weights.
/// </summary>
[Trait("Category", "Interop")]
public sealed class OnnxExportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-onnx-export-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string, string, bool> Models => new()
    {
        { "mlp", "mlp 6-16x2-3 act=tanh", true },
        {
            "resnet",
            "net 1x8x8 seq[conv(out=4,k=3,p=1,bias=false) batchnorm relu maxpool(k=2) "
            + "residual(post=relu)[seq[conv(out=4,k=3,p=1,bias=false) batchnorm relu conv(out=4,k=3,p=1,bias=false) batchnorm]] "
            + "residual(shortcut=projection,post=relu)[seq[conv(out=8,k=3,s=2,p=1,bias=false) batchnorm relu conv(out=8,k=3,p=1,bias=false) batchnorm]] "
            + "adaptiveavgpool(size=1) flatten linear(out=3)]",
            true
        },
        { "lstm", "net 5x3 seq[recurrent(cell=lstm,hidden=8,layers=2) linear(out=4)]", true },
        { "gelu", "net 6 seq[linear(out=16) gelu linear(out=16) gelu-tanh linear(out=3)]", true },
        { "gru", "net 5x3 seq[recurrent(cell=gru,hidden=6,output=sequence) linear(out=2) flatten linear(out=3)]", true },
        { "rnn", "net 5x3 seq[recurrent(cell=rnn-relu,hidden=6,layers=2) sigmoid linear(out=3)]", true },
        {
            "everything-else",
            "net 2x8x8 seq[conv(out=4,k=3,p=1) groupnorm(groups=2) gelu avgpool(k=2,p=1) conv(out=4,k=1) silu "
            + "residual(start=zero)[seq[conv(out=4,k=3,p=1) mish]] residual(shortcut=zero-pad)[seq[conv(out=8,k=3,s=2,p=1) selu]] "
            + "adaptiveavgpool(size=1) flatten dropout(p=0.5) linear(out=8) layernorm elu linear(out=8) leaky-relu hard-tanh "
            + "linear(out=8) prelu softplus linear(out=8) hard-sigmoid gelu-tanh linear(out=3)]",
            false
        },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void Export_RunInOnnxRuntime_SameOutputsAsGradFlow(string name, string model, bool importable)
    {
        var d = NetworkDescription.Parse(model);
        var net = Trained(d, 5);
        var x = Tensor.RandN(new Generator(9), [3, .. d.Input]);
        net.Eval();
        var expected = net.Forward(x).ToArray();

        ExportRunCheckImport(name, d, net, x, expected, NamedOnnxValue.CreateFromTensor("input", new OrtTensors.DenseTensor<float>(x.ToArray(), x.Shape.ToArray())), importable);
    }

    /// <summary>
    /// A recurrent shorthand reads sequences of any length, and its export says so (a symbolic T): a GRU trained on 30 steps was
    /// declared [N, 1, 2], and ONNX Runtime refuses a 30-step input against that declaration. A fixed T stays fixed.
    /// </summary>
    [Fact]
    public void Export_RecurrentShorthand_DeclaresAnyLength_AndRunsA30StepSequence()
    {
        var d = NetworkDescription.Parse("gru 2-16-1");
        var net = NetworkBuilder.Build(d, new Generator(3));
        var x = Tensor.RandN(new Generator(9), [3, 30, 2]);
        net.Eval();
        var expected = net.Forward(x).ToArray();
        string path = Path.Combine(_dir, "gru.onnx");
        OnnxExport.Write(net, path);
        using (var session = new InferenceSession(path))
        {
            Assert.Equal([-1, -1, 2], session.InputMetadata["input"].Dimensions);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new OrtTensors.DenseTensor<float>(x.ToArray(), [3, 30, 2]))]);
            AssertClose(expected, results.Single().AsTensor<float>().ToArray(), 1e-5, "gru, 30 steps: ONNX Runtime vs GradFlow");
        }
        // and it reads back: imported at any length (the symbolic T was refused before 2026-12-07), the same outputs at 30 steps
        var back = OnnxImport.Read(path);
        Assert.Equal([1, 2], back.Description.Input);
        var imported = back.Build(new Generator(5));
        imported.Eval();
        AssertClose(expected, imported.Forward(x).ToArray(), 1e-6, "gru, 30 steps: imported back vs GradFlow");
        var fixedLength = NetworkBuilder.Build(NetworkDescription.Parse("net 5x3 seq[recurrent(cell=gru,hidden=6,output=sequence) linear(out=2) flatten linear(out=3)]"), new Generator(3));
        OnnxExport.Write(fixedLength, path);
        using var fixedSession = new InferenceSession(path);
        Assert.Equal([-1, 5, 3], fixedSession.InputMetadata["input"].Dimensions);
    }

    public static TheoryData<string, string, bool> Transformers => new()
    {
        // a character model: embedding, learnt positions, two Pre-LN GELU layers, the final norm, the head tied to the embedding
        {
            "tf-pre-gelu",
            "net 8 seq[embedding(vocab=12,dim=16) positions(kind=learned,max=8) transformer(heads=2,ff=32,norm=pre,act=gelu,dropout=0,causal=true) "
            + "transformer(heads=2,ff=32,norm=pre,act=gelu,dropout=0,causal=true) layernorm(last=true) linear(out=12,bias=false,tied=true)]",
            true
        },
        {
            "tf-post-relu-causal",
            "net 8 seq[embedding(vocab=12,dim=16) positions(kind=sin,max=8) transformer(heads=2,ff=32,dropout=0,causal=true) "
            + "transformer(heads=2,ff=32,dropout=0,causal=true) linear(out=12,bias=false)]",
            true
        },
        // RMSNorm as its expression (ε 1e-5 in the layers, 1e-6 in the final norm)
        {
            "tf-rms",
            "net 8 seq[embedding(vocab=12,dim=16) transformer(heads=2,ff=32,norm=pre,rms=true,dropout=0,causal=true) rmsnorm linear(out=12,bias=false,tied=true)]",
            true
        },
    };

    [Theory]
    [MemberData(nameof(Transformers))]
    public void Export_Transformer_RunInOnnxRuntime_SameOutputsAsGradFlow_ImportsBack(string name, string model, bool importable)
    {
        var d = NetworkDescription.Parse(model);
        var g = new Generator(5);
        var net = NetworkBuilder.Build(d, g);
        using (GradMode.NoGrad())
            foreach (var p in net.Parameters()) p.Data.AddInPlace(Tensor.RandN(g, p.Data.Shape.ToArray()) * 0.1);
        var tokens = Enumerable.Range(0, 3 * 8).Select(_ => (long)g.NextInt(12)).ToArray();
        var x = Tensor.FromArray(tokens.Select(v => (float)v).ToArray(), 3, 8);
        net.Eval();
        var expected = net.Forward(x).ToArray();

        ExportRunCheckImport(name, d, net, x, expected, NamedOnnxValue.CreateFromTensor("input", new OrtTensors.DenseTensor<long>(tokens, [3, 8])), importable);
    }

    /// <summary>Exports <paramref name="net"/>, runs the file in ONNX Runtime on <paramref name="input"/> (within 1e-5 of <paramref name="expected"/>), has onnx.checker accept it, and (importable) imports it back as the same description and weights.</summary>
    private void ExportRunCheckImport(string name, NetworkDescription d, GradFlow.Nn.Network.Network net, Tensor x, float[] expected, NamedOnnxValue input, bool importable)
    {
        string path = Path.Combine(_dir, name + ".onnx");
        OnnxExport.Write(net, path);
        using (var session = new InferenceSession(path))
        {
            using var results = session.Run([input]);
            var actual = results.Single().AsTensor<float>().ToArray();
            AssertClose(expected, actual, 1e-5, $"{name}: ONNX Runtime vs GradFlow");
        }

        var (exit, stdout, stderr) = PyTorchScript.Run("onnx_models.py", "check", path);
        Assert.True(exit == 0, $"{name}: onnx.checker rejects the export: {stdout}\n{stderr}");

        if (!importable) return;
        var back = OnnxImport.Read(path);
        Assert.Equal(NetworkText.Format(WithoutInit(d)), NetworkText.Format(back.Description));
        var rebuilt = back.Build(new Generator(1));
        AssertSameWeights(net, rebuilt.StateDict());
        rebuilt.Eval();
        Assert.Equal(expected, rebuilt.Forward(x).ToArray());
    }

    [Theory]
    [InlineData("rope=true", "rotary positions")]
    [InlineData("qk-norm=true", "QK normalisation")]
    [InlineData("act=swiglu", "a SwiGLU feed-forward")]
    public void Export_TransformerWithoutAnOnnxForm_RefusedNamingTheBlock(string option, string what)
    {
        var d = NetworkDescription.Parse($"net 8 seq[embedding(vocab=12,dim=16) transformer(heads=2,ff=32,dropout=0,{option}) linear(out=12)]");
        var net = NetworkBuilder.Build(d, new Generator(1));
        string path = Path.Combine(_dir, "refused.onnx");
        var e = Assert.Throws<NotSupportedException>(() => OnnxExport.Write(net, path));
        Assert.Contains($"ONNX export: 1: a transformer layer with {what}", e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Export_EmbeddingNotReadingTheInput_RefusedNamingIt()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("net 8 seq[relu embedding(vocab=12,dim=16) linear(out=3)]"), new Generator(1));
        var e = Assert.Throws<NotSupportedException>(() => OnnxExport.ToBytes(net));
        Assert.Contains("ONNX export: 1: an embedding that does not read the model's input", e.Message);
    }

    [Fact]
    public void Export_Cli_WritesTheRunsModel()
    {
        string data = Path.Combine(_dir, "data.csv");
        File.WriteAllLines(data, ["a,b,label", .. Enumerable.Range(0, 40).Select(i => $"{i % 7},{i % 5},{i % 2}")]);
        string run = Path.Combine(_dir, "run"), onnx = Path.Combine(_dir, "run.onnx");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 2-8-2", "--data", data, "--target", "label", "--epochs", "1", "--out", run, "--json");
        Assert.True(code == 0, err);
        (code, var output, err) = CliRunner.Run("export", run, "--onnx", onnx);
        Assert.True(code == 0, err);
        Assert.Contains("wrote", output);
        Assert.DoesNotContain("warning", err);
        AssertSameWeights(OnnxExport.LoadRun(run), OnnxImport.Read(onnx).Weights);
    }

    [Fact]
    public void Export_Cli_RunStoppedOnANonFiniteLoss_WarnsWithItsLastEpochsFigures()
    {
        // SGD at 50 diverges within the first epoch; the checkpoint written at the stop holds the weights before the NaN step
        string run = Path.Combine(_dir, "diverged"), onnx = Path.Combine(_dir, "diverged.onnx");
        var (code, _, err) = CliRunner.Run("train", "--model", "mlp 32-64x4-10", "--data", "teacher", "--optimizer", "sgd", "--lr", "50",
            "--epochs", "3", "--threads", "1", "--out", run, "--json");
        Assert.Equal(1, code);
        Assert.Equal("NonFiniteLoss", RunDirectory.EndStop(run));
        (code, var output, err) = CliRunner.Run("export", run, "--onnx", onnx);
        Assert.True(code == 0, err);
        Assert.Contains("wrote", output);
        Assert.Matches(@"warning: the run stopped on a non-finite loss; epoch-0001\.safetensors is its last checkpoint, whose epoch ended at a training loss of \S+ and a test loss of \S+, saved before that step", err);
        Assert.True(File.Exists(onnx));
    }

    [Fact]
    public void Export_Cli_RunWithoutCheckpoint_SaysSo()
    {
        var (code, _, err) = CliRunner.Run("export", _dir, "--onnx", Path.Combine(_dir, "x.onnx"));
        Assert.Equal(1, code);
        Assert.Contains("no run (no config.json)", err);
        Assert.False(File.Exists(Path.Combine(_dir, "x.onnx")));
    }

    /// <summary>The same tensors in the same order (the import names blocks by position: an MLP spec's <c>layers.0</c> comes back as <c>0</c>).</summary>
    private static void AssertSameWeights(GradFlow.Nn.Network.Network original, IEnumerable<KeyValuePair<string, Tensor>> imported)
    {
        static KeyValuePair<string, Tensor>[] Kept(IEnumerable<KeyValuePair<string, Tensor>> s) =>
            s.Where(kv => !kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToArray();
        var a = Kept(original.StateDict());
        var b = Kept(imported);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(a[i].Key.EndsWith(b[i].Key, StringComparison.Ordinal), $"{a[i].Key} came back as {b[i].Key}");
            Assert.Equal(a[i].Value.ToArray(), b[i].Value.ToArray());
        }
    }

    /// <summary>A network whose every parameter and running statistic moved from its start: a few training-mode passes and a seeded nudge of each parameter.</summary>
    private static GradFlow.Nn.Network.Network Trained(NetworkDescription d, ulong seed)
    {
        var g = new Generator(seed);
        var net = NetworkBuilder.Build(d, g);
        net.Train();
        using (GradMode.NoGrad())
        {
            for (int i = 0; i < 3; i++) net.Forward(Tensor.RandN(g, [4, .. d.Input]) * 1.5 + 0.3);
            foreach (var p in net.Parameters()) p.Data.AddInPlace(Tensor.RandN(g, p.Data.Shape.ToArray()) * 0.1);
        }
        return net;
    }

    /// <summary>The description as the importer reads it back: initialisation schemes are not in an ONNX file (the weights are).</summary>
    private static NetworkDescription WithoutInit(NetworkDescription d)
    {
        var mapped = Rewrites.Map(d, b => b switch
        {
            LinearBlock l => l with { Init = null },
            EmbeddingBlock e => e with { Std = new EmbeddingBlock(1, 1).Std },
            ConvBlock c => c with { Init = new ConvBlock(1, 1).Init },
            RecurrentBlock r => r with { Init = new RecurrentBlock(r.Cell, 1).Init, ForgetBias = null },
            _ => b,
        });
        return mapped with { Root = mapped.Root with { Name = null } };
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs((double)v)), worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs((double)actual[i] - expected[i]));
        Assert.True(worst <= tolerance * scale, $"{what}: max difference {worst:G3} for outputs up to {scale:G3}");
    }
}
