using GradFlow.Autograd;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Autograd;

public class BackwardEngineTests
{
    [Fact]
    public void Backward_ProductOfLeaves_GivesTheOtherFactor()
    {
        var a = Tensor.FromArray([1f, 2f, 3f]);
        var b = Tensor.FromArray([4f, 5f, 6f]);
        a.RequiresGrad = b.RequiresGrad = true;
        (a * b).Sum().Backward();
        Assert.Equal([4f, 5f, 6f], a.Grad!.ToArray());
        Assert.Equal([1f, 2f, 3f], b.Grad!.ToArray());
    }

    [Fact]
    public void Backward_TensorUsedTwice_AccumulatesBothPaths()
    {
        // y = x*x + 3x  =>  dy/dx = 2x + 3
        var x = Tensor.FromArray([1f, -2f, 0.5f]);
        x.RequiresGrad = true;
        (x * x + x * 3).Sum().Backward();
        Assert.Equal([5f, -1f, 4f], x.Grad!.ToArray());
    }

    [Fact]
    public void Backward_CalledTwice_AccumulatesIntoLeafGrad()
    {
        var x = Tensor.FromArray([2f]);
        x.RequiresGrad = true;
        (x * x).Sum().Backward();
        (x * x).Sum().Backward();
        Assert.Equal([8f], x.Grad!.ToArray());
    }

    [Fact]
    public void Backward_WithSuppliedGradient_IsVectorJacobianProduct()
    {
        var x = Tensor.FromArray([1f, 2f]);
        x.RequiresGrad = true;
        var y = x * x; // diag Jacobian 2x
        y.Backward(Tensor.FromArray([10f, -1f]));
        Assert.Equal([20f, -4f], x.Grad!.ToArray());
    }

    [Fact]
    public void Backward_NonScalarWithoutGradient_ThrowsNamingShape()
    {
        var x = TestTensors.Leaf(1, 2, 3);
        var e = Assert.Throws<InvalidOperationException>(() => (x * 2).Backward());
        Assert.Contains("[2, 3]", e.Message);
    }

    [Fact]
    public void Backward_GradientOfWrongShape_Throws()
    {
        var x = TestTensors.Leaf(1, 3);
        var e = Assert.Throws<ArgumentException>(() => (x * 2).Backward(Tensor.Zeros(DType.Float64, 4)));
        Assert.Contains("[4]", e.Message);
        Assert.Contains("[3]", e.Message);
    }

    [Fact]
    public void Backward_TwiceThroughFreedGraph_ThrowsNamingOp()
    {
        var x = TestTensors.Leaf(1, 3);
        var y = x.Exp().Sum();
        y.Backward();
        var e = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.Contains("second time", e.Message);
    }

    [Fact]
    public void Backward_RetainGraph_AllowsSecondPass()
    {
        var x = Tensor.FromArray([1.0, 2.0]);
        x.RequiresGrad = true;
        var y = x.Exp().Sum();
        y.Backward(retainGraph: true);
        y.Backward();
        TestTensors.AllClose([2 * Math.E, 2 * Math.Exp(2)], x.Grad!.ToDoubleArray(), 1e-15, 0, "grad");
    }

    [Fact]
    public void Backward_OnTensorNotRequiringGrad_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => Tensor.Ones(1).Backward());
    }

    [Fact]
    public void NoGrad_Scope_RecordsNothingAndNests()
    {
        var x = TestTensors.Leaf(1, 3);
        using (GradMode.NoGrad())
        {
            using (GradMode.NoGrad()) Assert.False((x * 2).RequiresGrad);
            var y = x * 2;
            Assert.False(y.RequiresGrad);
            Assert.Null(y.GradFn);
        }
        Assert.True(GradMode.IsEnabled);
        Assert.True((x * 2).RequiresGrad);
    }

    [Fact]
    public void Detach_CutsTheGraphAndSharesValues()
    {
        var x = TestTensors.Leaf(1, 3);
        var y = x * 2;
        var d = y.Detach();
        Assert.False(d.RequiresGrad);
        Assert.True(d.IsLeaf);
        Assert.Equal(y.ToDoubleArray(), d.ToDoubleArray());
        // z depends on x only through the detached path plus x itself: dz/dx = 1
        (d + x).Sum().Backward();
        Assert.All(x.Grad!.ToDoubleArray(), g => Assert.Equal(1.0, g));
    }

    [Fact]
    public void RequiresGrad_SetOnNonLeaf_Throws()
    {
        var y = TestTensors.Leaf(1, 3) * 2;
        var e = Assert.Throws<InvalidOperationException>(() => y.RequiresGrad = false);
        Assert.Contains("mul", e.Message);
    }

    [Fact]
    public void LeafGradientReady_CalledOncePerLeafWithItsFinalGradient_BeforeTheNodesBelowRun()
    {
        // h = w1·x (used twice), y = Σ (w2·h + h·h); w2 is ready before the product that feeds w1 runs its backward;
        // w1 collects two contributions (through w2·h and h·h) and is reported once, with their sum
        var x = Tensor.FromArray([1f, 2f]);
        var w1 = Tensor.FromArray([3f, -1f]);
        var w2 = Tensor.FromArray([0.5f, 4f]);
        var unused = Tensor.FromArray([7f]);
        w1.RequiresGrad = w2.RequiresGrad = unused.RequiresGrad = true;
        var h = w1 * x;
        var events = new List<string>();
        h.RegisterHook(g =>
        {
            events.Add("h");
            return null;
        });
        var seen = new Dictionary<Tensor, float[]>(ReferenceEqualityComparer.Instance);
        (w2 * h + h * h).Sum().Backward(leafGradientReady: leaf =>
        {
            events.Add(ReferenceEquals(leaf, w1) ? "w1" : ReferenceEquals(leaf, w2) ? "w2" : "other");
            seen.Add(leaf, leaf.Grad!.ToArray());
        });
        // dy/dw2 = h = [3, -2]; dy/dh = w2 + 2h = [6.5, 0]; dy/dw1 = dy/dh·x = [6.5, 0]
        Assert.Equal(["w2", "h", "w1"], events);
        Assert.Equal([3f, -2f], seen[w2]);
        Assert.Equal([6.5f, 0f], seen[w1]);
        Assert.Equal(seen[w1], w1.Grad!.ToArray());
        Assert.False(seen.ContainsKey(unused));
    }

    [Fact]
    public void Hook_ObservesGradientFlowingThroughIntermediate()
    {
        var x = Tensor.FromArray([1.0, 2.0, 3.0]);
        x.RequiresGrad = true;
        var h = x * 2;
        double[]? seen = null;
        h.RegisterHook(g => { seen = g.ToDoubleArray(); return null; });
        (h * h).Sum().Backward(); // dL/dh = 2h
        Assert.Equal([4.0, 8.0, 12.0], seen!);
        Assert.Equal([8.0, 16.0, 24.0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Hook_ReplacingGradient_ChangesWhatFlowsUpstream()
    {
        var x = Tensor.FromArray([1.0, 2.0]);
        x.RequiresGrad = true;
        var h = x * 3;
        h.RegisterHook(g => g * 0.5);
        h.Sum().Backward();
        Assert.Equal([1.5, 1.5], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Hook_OnLeaf_SeesGradientBeforeAccumulation_AndRunsInOrder()
    {
        var x = Tensor.FromArray([1.0]);
        x.RequiresGrad = true;
        var order = new List<string>();
        x.RegisterHook(g => { order.Add("first"); return g * 10; });
        x.RegisterHook(g => { order.Add($"second:{g.Item()}"); return null; });
        (x * 2).Sum().Backward();
        Assert.Equal(["first", "second:20"], order);
        Assert.Equal([20.0], x.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Hook_Disposed_NoLongerRuns()
    {
        var x = TestTensors.Leaf(1, 2);
        int calls = 0;
        var handle = x.RegisterHook(_ => { calls++; return null; });
        x.Sum().Backward();
        handle.Dispose();
        handle.Dispose();
        x.Sum().Backward();
        Assert.Equal(1, calls);
    }

    [Fact]
    public void Hook_ReturningWrongShape_ThrowsNamingShapes()
    {
        var x = TestTensors.Leaf(1, 3);
        var h = x * 1;
        h.RegisterHook(_ => Tensor.Zeros(DType.Float64, 2));
        var e = Assert.Throws<InvalidOperationException>(() => h.Sum().Backward());
        Assert.Contains("[2]", e.Message);
        Assert.Contains("[3]", e.Message);
    }

    [Fact]
    public void RetainGrad_KeepsIntermediateGradient()
    {
        var x = Tensor.FromArray([1.0, -1.0]);
        x.RequiresGrad = true;
        var h = (x * 4).RetainGrad();
        (h * h).Sum().Backward();
        Assert.Equal([8.0, -8.0], h.Grad!.ToDoubleArray());
    }

    [Fact]
    public void Backward_DeepChainOf20000Ops_DoesNotOverflowTheStack()
    {
        var x = Tensor.FromArray([1.0]);
        x.RequiresGrad = true;
        var y = x;
        for (int i = 0; i < 20000; i++) y = y * 1.0001;
        y.Sum().Backward();
        Assert.Equal(Math.Pow(1.0001, 20000), x.Grad!.Item(), 1e-9);
    }

    [Fact]
    public void Backward_SameSeedTwice_IsBitwiseIdentical()
    {
        static float[] Run()
        {
            var g = new Generator(42);
            var w = Tensor.RandN(g, 33, 17);
            w.RequiresGrad = true;
            var x = Tensor.RandN(g, 9, 33);
            (x.Sum(0).Reshape(33, 1) * w * 0.1).Exp().Softmax(0).Square().Sum().Backward();
            ((x.Sum(0, keepDim: true) - w.Sum(1).Reshape(1, 33)).Square().Mean()).Backward();
            return w.Grad!.ToArray();
        }
        Assert.Equal(Run(), Run());
    }
}
