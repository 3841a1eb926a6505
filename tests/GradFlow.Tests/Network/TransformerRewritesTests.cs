using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Tests.Network;

/// <summary>The transformer rewrites: Pre-LN and QK normalisation.</summary>
public class TransformerRewritesTests
{
    [Fact]
    public void PreLayerNorm_MovesEveryNormBeforeItsSubLayerAndEndsWithANorm()
    {
        var post = NetworkDescription.Parse("transformer vocab=7 d=8 heads=2 layers=3 ctx=4 norm=post");
        var pre = Rewrites.PreLayerNorm(post);
        var layers = pre.Shapes().Where(s => s.Block is TransformerLayerBlock).Select(s => (TransformerLayerBlock)s.Block).ToList();
        Assert.Equal(3, layers.Count);
        Assert.All(layers, l => Assert.True(l.NormFirst));
        Assert.Contains(pre.Shapes(), s => s.Path == "layers.3" && s.Block is NormBlock { Kind: NormalizationKind.Layer, Last: true });
        Assert.Equal(post.ParameterCount() + 16, pre.ParameterCount());
        Assert.Equal(pre, Rewrites.PreLayerNorm(pre));
        // built, the rewritten model has the same weights where the structure is the same, and runs
        var net = NetworkBuilder.Build(pre, new Generator(1));
        Assert.Equal([1, 4, 7], net.Forward(Tensor.FromArray(new float[] { 0, 1, 2, 3 }, 1, 4)).Shape.ToArray());
        // scope: only layer 1
        var one = Rewrites.PreLayerNorm(post, scope: "layers.1");
        Assert.Equal([false, true, false], one.Shapes().Where(s => s.Block is TransformerLayerBlock).Select(s => ((TransformerLayerBlock)s.Block).NormFirst));
    }

    [Fact]
    public void QkNorm_AddsTheNormsOfEveryHeadsQueriesAndKeys()
    {
        var d = NetworkDescription.Parse("transformer vocab=7 d=8 heads=2 layers=2 ctx=4");
        var q = Rewrites.QkNorm(d);
        Assert.All(q.Shapes().Where(s => s.Block is TransformerLayerBlock), s => Assert.True(((TransformerLayerBlock)s.Block).QkNorm));
        Assert.Equal(d.ParameterCount() + 2 * 2 * 2 * 4, q.ParameterCount());   // 2 layers × (q_norm, k_norm) × (γ, β) × head size 4
        var names = NetworkBuilder.Build(q, new Generator(2)).NamedParameters().Select(p => p.Name);
        Assert.Contains("layers.1.self_attn.k_norm.weight", names);
    }
}
