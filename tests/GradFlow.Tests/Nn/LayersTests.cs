using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

public class LayersTests
{
    /// <summary>A module computing x·w element-wise (a branch with a parameter, independent of Linear).</summary>
    private sealed class Scale : Module
    {
        public Scale(Tensor w) => W = RegisterParameter("w", w);

        public Parameter W { get; }

        protected override Tensor ForwardCore(Tensor input) => input * W;
    }

    [Fact]
    public void Dropout_Training_ZeroesAboutPAndScalesSurvivors()
    {
        var d = new Dropout(0.3, seed: 1);
        var y = d.Forward(Tensor.Ones(100_000)).ToArray();
        int zeros = y.Count(v => v == 0);
        Assert.All(y.Where(v => v != 0), v => Assert.Equal(1 / 0.7f, v, 1e-6f));
        // Binomial(1e5, 0.3): sd ≈ 145; allow 5 sd.
        Assert.InRange(zeros, 30_000 - 725, 30_000 + 725);
    }

    [Fact]
    public void Dropout_Eval_IsIdentity_AndGradientFollowsMask()
    {
        var d = new Dropout(0.5, seed: 2);
        var x = TestTensors.Leaf(1, 50);
        var y = d.Forward(x);
        y.Sum().Backward();
        var yv = y.ToDoubleArray();
        var xv = x.ToDoubleArray();
        var gv = x.Grad!.ToDoubleArray();
        for (int i = 0; i < 50; i++) Assert.Equal(yv[i] == 0 ? 0 : 2, gv[i]);
        d.Eval();
        Assert.Equal(xv, d.Forward(x).ToDoubleArray());
    }

    [Fact]
    public void Dropout_SameSeed_SameMask()
    {
        Assert.Equal(new Dropout(0.5, 7).Forward(Tensor.Ones(64)).ToArray(), new Dropout(0.5, 7).Forward(Tensor.Ones(64)).ToArray());
    }

    [Fact]
    public void Residual_AddsIdentityPath_AndGradientMatchesFiniteDifferences()
    {
        var w = TestTensors.Leaf(2, 5).Detach();
        var block = new Residual(new Scale(w));
        var x = TestTensors.Leaf(3, 4, 5);
        var expected = x.ToDoubleArray().Select((v, i) => v + v * w.GetFlat(i % 5)).ToArray();
        TestTensors.AllClose(expected, block.Forward(x).ToDoubleArray(), 1e-15, 0, "residual");
        GradCheck.Assert(t => block.Forward(t[0]), [x], name: "residual");
    }

    [Fact]
    public void Residual_ZeroInit_IsIdentityAtStart_AndAlphaLearns()
    {
        var block = new Residual(new Scale(Tensor.Full(3.0, DType.Float64, 4)), zeroInit: true);
        var x = TestTensors.Leaf(4, 2, 4);
        Assert.Equal(x.ToDoubleArray(), block.Forward(x).ToDoubleArray());
        block.Forward(x).Sum().Backward();
        // dL/dα = Σ f(x) = 3·Σx
        Assert.Equal(3 * x.ToDoubleArray().Sum(), block.Alpha!.Grad!.Item(), 1e-6);
        Assert.Equal(["alpha", "branch.w"], block.NamedParameters().Select(p => p.Name).Order());
    }

    [Fact]
    public void Residual_ShapeChangeWithoutProjection_ThrowsNamingShapes()
    {
        var block = new Residual(new Flatten(0));
        var e = Assert.Throws<ArgumentException>(() => block.Forward(Tensor.Zeros(2, 3)));
        Assert.Contains("[6]", e.Message);
        Assert.Contains("[2, 3]", e.Message);
    }

    [Fact]
    public void Embedding_LooksUpRows_AndAccumulatesRepeatedGradients()
    {
        var emb = new Embedding(5, 3, new Generator(1));
        var w = emb.Weight.Data.ToArray();
        var y = emb.Lookup(IndexTensor.FromArray([4, 1, 4], 3));
        Assert.Equal([3, 3], y.Shape.ToArray());
        Assert.Equal(w[12..15].Concat(w[3..6]).Concat(w[12..15]), y.ToArray());
        y.Sum().Backward();
        Assert.Equal([0f, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2], emb.Weight.Grad!.ToArray());
        Assert.Contains("not an index", Assert.Throws<ArgumentException>(() => emb.Forward(Tensor.FromArray([5f]))).Message);
    }

    [Fact]
    public void Embedding_Gradient_MatchesFiniteDifferences()
    {
        var idx = IndexTensor.FromArray([0, 2, 2, 1], 2, 2);
        GradCheck.Assert(t =>
        {
            var flat = IndexTensor.FromArray(idx.ToArray(), 4);
            return t[0].IndexSelect(0, flat).Reshape(2, 2, 3);
        }, [TestTensors.Leaf(5, 3, 3)], name: "embedding");
    }
}
