using GradFlow.Autograd;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

/// <summary>Transformer blocks in the network description: the shorthand, shapes and their errors, parameter counts, the built names and weight tying.</summary>
public class TransformerDescriptionTests
{
    [Fact]
    public void Shorthand_ExpandsIntoEmbeddingPositionsLayersNormAndTiedHead()
    {
        var d = NetworkDescription.Parse("transformer vocab=65 d=32 heads=4 layers=2 ctx=16");
        Assert.Equal(
            "net 16 seq[tok_emb:embedding(vocab=65,dim=32,std=0.02) pos_emb:positions(kind=learned,max=16) layers:seq[transformer(heads=4,ff=128,norm=pre,act=gelu,dropout=0,causal=true) "
            + "transformer(heads=4,ff=128,norm=pre,act=gelu,dropout=0,causal=true)] norm:layernorm(last=true) head:linear(out=65,bias=false,tied=true)]",
            d.ToString());
        Assert.Equal([16, 65], d.OutputShape());
        var post = NetworkDescription.Parse("transformer vocab=5 d=8 heads=2 layers=1 ctx=4 norm=post pos=rope tie=no");
        Assert.DoesNotContain("norm:", post.ToString(), StringComparison.Ordinal);
        Assert.Contains("rope=true", post.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("positions", post.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("transformer vocab=65 d=32 heads=4 layers=2 ctx=16")]
    [InlineData("transformer vocab=10 d=16 heads=2 layers=3 ctx=8 norm=post pos=sin tie=no act=swiglu rms=yes qk-norm=yes")]
    [InlineData("transformer vocab=12 d=8 heads=2 layers=1 ctx=4 pos=rope rms=yes act=relu")]
    public void ParameterCount_FromShapes_EqualsTheBuiltNetworks(string model)
    {
        var d = NetworkDescription.Parse(model);
        var net = NetworkBuilder.Build(d, new Generator(1));
        Assert.Equal(net.ParameterCount(), d.ParameterCount());
        var x = Tensor.FromArray(Enumerable.Range(0, 2 * d.Input[0]).Select(i => (float)(i % 5)).ToArray(), 2, d.Input[0]);
        var y = net.Forward(x);
        Assert.Equal([2, .. d.OutputShape()], y.Shape.ToArray());
    }

    [Fact]
    public void Build_GivesPyTorchNamesAndTiesTheHeadToTheEmbedding()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("transformer vocab=7 d=8 heads=2 layers=2 ctx=4"), new Generator(2));
        var names = net.NamedParameters().Select(p => p.Name).ToList();
        Assert.Equal("tok_emb.weight", names[0]);
        Assert.Equal("pos_emb.weight", names[1]);
        Assert.Contains("layers.1.self_attn.in_proj_weight", names);
        Assert.Contains("layers.0.linear2.bias", names);
        Assert.Equal("norm.bias", names[^1]);
        Assert.DoesNotContain(names, n => n.StartsWith("head", StringComparison.Ordinal));
        // 7·8 + 4·8 + 2 layers + final norm: the head adds nothing
        long layer = 3 * 64 + 24 + 64 + 8 + 8 * 32 + 32 + 32 * 8 + 8 + 4 * 8;
        Assert.Equal(56 + 32 + 2 * layer + 16, net.ParameterCount());
        // the head's gradient goes into the embedding: the embedding's gradient has rows for tokens not in the input
        var x = Tensor.FromArray(new float[] { 0, 1, 0, 1 }, 1, 4);
        net.Forward(x).Sum().Backward();
        var g = net.NamedParameters().First().Parameter.Grad!.ToDoubleArray();
        Assert.Contains(g.Skip(2 * 8), v => v != 0);
    }

    [Theory]
    [InlineData("net 5 seq[embedding(vocab=4,dim=6) transformer(heads=4,ff=8)]", "1: transformer heads 4 must divide the width 6")]
    [InlineData("net 5 seq[embedding(vocab=4,dim=6) layers:seq[transformer(heads=6,ff=8,rope=true)]]", "layers.0: rotary positions need an even head size")]
    [InlineData("net 5 seq[embedding(vocab=4,dim=6) positions(kind=learned,max=4)]", "1: positions max 4 is shorter than the sequence of 5")]
    [InlineData("net 5x2 seq[embedding(vocab=4,dim=6)]", "0: embedding expects token indices [T], gets [5, 2]")]
    [InlineData("net 5 seq[embedding(vocab=4,dim=6) head:linear(out=5,bias=false,tied=true)]", "head: a tied linear maps 6 to 5 features but the embedding 0 is 4x6")]
    [InlineData("net 5 seq[linear(out=5,bias=false,tied=true)]", "0: a tied linear needs an embedding before it")]
    [InlineData("net 5 seq[embedding(vocab=4,dim=6) linear(out=4,tied=true)]", "1: a tied linear has no bias")]
    [InlineData("net 5 seq[linear(out=4) transformer(heads=2,ff=8)]", "1: transformer expects a sequence [T, D], gets [4]")]
    public void Shapes_BlocksThatDoNotFit_AreErrorsNamingThePath(string model, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => NetworkDescription.Parse(model));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("transformer d=8", "needs vocab")]
    [InlineData("transformer vocab=5 norm=middle", "norm 'middle'")]
    [InlineData("transformer vocab=5 pos=abs", "positions 'abs'")]
    [InlineData("transformer vocab=5 width=3", "unknown option 'width'")]
    [InlineData("transformer vocab=5 dropout=1", "dropout '1'")]
    public void Shorthand_BadOptions_AreNamed(string model, string message)
    {
        var e = Assert.Throws<FormatException>(() => NetworkDescription.Parse(model));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }
}

