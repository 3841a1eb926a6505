using Google.Protobuf;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training.Onnx;
using GradFlow.Training.Onnx.Proto;

namespace GradFlow.Tests.Training;

/// <summary>The importer's errors on models it cannot read: each names the file, the node, its op type and the nearest supported form.</summary>
public sealed class OnnxImportTests
{
    private static ModelProto Mlp() =>
        ModelProto.Parser.ParseFrom(OnnxExport.ToBytes(NetworkBuilder.Build(NetworkDescription.Parse("mlp 4-8-3 act=relu"), new Generator(1))));

    /// <summary>The model with <paramref name="op"/> applied to its output (the new node's output becomes the graph's).</summary>
    private static byte[] WithLastNode(string op, string name)
    {
        var m = Mlp();
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.Add("output");
        node.Output.Add("after");
        m.Graph.Node.Add(node);
        m.Graph.Output[0].Name = "after";
        return m.ToByteArray();
    }

    [Theory]
    [InlineData("Softmax", "end the network with its logits")]
    [InlineData("ConvTranspose", "nearest supported: Conv")]
    [InlineData("Erf", "nearest supported: Gelu")]
    [InlineData("Reluu", "nearest supported: Relu")]
    public void Import_UnsupportedNode_NamesTheNodeOpTypeAndNearestSupported(string op, string nearest)
    {
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(WithLastNode(op, "/head/" + op), "model.onnx"));
        Assert.Contains("model.onnx", e.Message);
        Assert.Contains($"node '/head/{op}' (op type {op})", e.Message);
        Assert.Contains(nearest, e.Message);
    }

    [Theory]
    [InlineData(null, GradFlow.Nn.Activation.Gelu)]
    [InlineData("none", GradFlow.Nn.Activation.Gelu)]
    [InlineData("tanh", GradFlow.Nn.Activation.GeluTanh)]
    public void Import_GeluOperator_IsTheGeluActivation(string? approximate, GradFlow.Nn.Activation expected)
    {
        var m = ModelProto.Parser.ParseFrom(WithLastNode("Gelu", "/head/Gelu"));
        if (approximate is not null)
            m.Graph.Node[^1].Attribute.Add(new AttributeProto { Name = "approximate", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(approximate) });
        var blocks = OnnxImport.Parse(m.ToByteArray(), "model.onnx").Description.Root.Blocks;
        Assert.Equal(new ActBlock(expected), blocks[^1]);
    }

    [Fact]
    public void Import_GeluOperator_UnknownApproximation_NamesIt()
    {
        var m = ModelProto.Parser.ParseFrom(WithLastNode("Gelu", "/head/Gelu"));
        m.Graph.Node[^1].Attribute.Add(new AttributeProto { Name = "approximate", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8("sigmoid") });
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "model.onnx"));
        Assert.Contains("node '/head/Gelu' (op type Gelu): Gelu with approximate 'sigmoid' is not supported", e.Message);
    }

    [Fact]
    public void Import_GeluExpressionWithAnotherConstant_NamesTheExpression()
    {
        // GradFlow's own export writes GELU as x·½·(1 + erf(x/√2)); √2 replaced by 1.5 is some other function
        var m = ModelProto.Parser.ParseFrom(OnnxExport.ToBytes(NetworkBuilder.Build(NetworkDescription.Parse("net 4 seq[linear(out=8) gelu linear(out=3)]"), new Generator(1))));
        var sqrt2 = m.Graph.Initializer.Single(t => t.RawData.Length == 4 && BitConverter.ToSingle(t.RawData.Span) == MathF.Sqrt(2));
        sqrt2.RawData = ByteString.CopyFrom(BitConverter.GetBytes(1.5f));
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "model.onnx"));
        Assert.Contains("(the GELU expression around it): the GELU's scale 1.5 (the definition's is 1.414", e.Message);
    }

    [Fact]
    public void Import_RmsNormWithALayersEpsilonOutsideALayer_NamesTheExpression()
    {
        // the exporter writes an rmsnorm block with ε 1e-6; 1e-5 is a transformer layer's, which a lone norm cannot build
        var m = ModelProto.Parser.ParseFrom(OnnxExport.ToBytes(NetworkBuilder.Build(NetworkDescription.Parse("net 4x8 seq[rmsnorm linear(out=3)]"), new Generator(1))));
        var eps = m.Graph.Initializer.Single(t => t.RawData.Length == 4 && BitConverter.ToSingle(t.RawData.Span) == 1e-6f);
        Assert.Equal(NormalizationKind.Rms, Assert.IsType<NormBlock>(OnnxImport.Parse(m.ToByteArray(), "rms.onnx").Description.Root.Blocks[0]).Kind);
        eps.RawData = ByteString.CopyFrom(BitConverter.GetBytes(1e-5f));
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "rms.onnx"));
        Assert.Contains("(the RMS norm expression around it): an RMS norm with epsilon 1e-5 outside a transformer layer is not supported", e.Message);
    }

    [Fact]
    public void Import_MatMulByAnotherTableThanTheEmbeddings_IsAnUntiedLinear()
    {
        var m = ModelProto.Parser.ParseFrom(OnnxExport.ToBytes(NetworkBuilder.Build(NetworkDescription.Parse("net 8 seq[embedding(vocab=12,dim=16) linear(out=12,bias=false,tied=true)]"), new Generator(1))));
        Assert.True(OnnxImport.Parse(m.ToByteArray(), "tied.onnx").Description.Root.Blocks[1] is LinearBlock { Tied: true });
        // the head reads a copy of the table with one entry changed: no longer the embedding's own weight
        var table = m.Graph.Initializer.Single(t => t.Name == "0.weight");
        var copy = new TensorProto(table) { Name = "copy" };
        var bytes = copy.RawData.ToByteArray();
        bytes[0] ^= 1;
        copy.RawData = ByteString.CopyFrom(bytes);
        m.Graph.Initializer.Add(copy);
        m.Graph.Node.Single(n => n.OpType == "Transpose").Input[0] = "copy";
        var head = OnnxImport.Parse(m.ToByteArray(), "untied.onnx").Description.Root.Blocks[1];
        Assert.Equal(new LinearBlock(12) { Bias = false }, head);
    }

    [Fact]
    public void Import_NotOnnx_SaysSo()
    {
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse("hello, world"u8.ToArray(), "x.onnx"));
        Assert.Contains("x.onnx: not", e.Message);
    }

    [Fact]
    public void Import_Truncated_SaysItIsNotAValidModel()
    {
        var bytes = Mlp().ToByteArray();
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(bytes[..(bytes.Length - 7)], "t.onnx"));
        Assert.StartsWith("t.onnx: ", e.Message);
    }

    [Fact]
    public void Import_WeightOfTheWrongSize_NamesTheInitializer()
    {
        var m = Mlp();
        var w = m.Graph.Initializer.First(t => t.Name.EndsWith(".weight", StringComparison.Ordinal));
        w.Dims[0] += 1;
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "w.onnx"));
        Assert.Contains($"initializer '{w.Name}'", e.Message);
    }

    [Fact]
    public void Import_TwoInputs_SaysGradFlowReadsOne()
    {
        var m = Mlp();
        m.Graph.Input.Add(m.Graph.Input[0].Clone());
        m.Graph.Input[1].Name = "second";
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "i.onnx"));
        Assert.Contains("2 inputs (input, second)", e.Message);
    }

    [Fact]
    public void Import_DoubleInput_NamesItsType()
    {
        // a model exported from float64 PyTorch: the message gave the type's number alone ("ONNX type 11")
        var m = Mlp();
        m.Graph.Input[0].Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Double;
        var e = Assert.Throws<FormatException>(() => OnnxImport.Parse(m.ToByteArray(), "d.onnx"));
        Assert.Contains("ONNX type 11 (double)", e.Message);
    }
}
