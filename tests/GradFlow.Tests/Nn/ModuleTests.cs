using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Tests.Nn;

public class ModuleTests
{
    /// <summary>y = x·scale + shift, with a registered buffer, for testing the base class alone.</summary>
    private sealed class Affine : Module
    {
        public Affine(int n)
        {
            Scale = RegisterParameter("weight", Tensor.Full(2, n));
            Shift = RegisterParameter("bias", Tensor.Zeros(n));
            Count = RegisterBuffer("running_count", Tensor.Zeros(1));
        }

        public Parameter Scale { get; }

        public Parameter Shift { get; }

        public Tensor Count { get; }

        protected override Tensor ForwardCore(Tensor input) => input * Scale + Shift;

        protected override string ExtraRepr() => $"n={Scale.Count}";
    }

    private sealed class Net : Module
    {
        public Net()
        {
            Layers = RegisterModule("layers", new Sequential(new Affine(3), new Identity(), new Affine(3)));
        }

        public Sequential Layers { get; }

        protected override Tensor ForwardCore(Tensor input) => Layers.Forward(input);
    }

    [Fact]
    public void NamedParameters_UsePyTorchStateDictNames()
    {
        var net = new Net();
        Assert.Equal(["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"], net.NamedParameters().Select(p => p.Name));
        Assert.Equal(["layers.0.weight", "layers.0.bias", "layers.0.running_count", "layers.2.weight", "layers.2.bias", "layers.2.running_count"],
            net.StateDict().Select(kv => kv.Key));
        Assert.Equal(["", "layers", "layers.0", "layers.1", "layers.2"], net.NamedModules().Select(m => m.Name));
        Assert.Equal(12, net.ParameterCount());
    }

    [Fact]
    public void TrainEval_PropagatesToDescendants()
    {
        var net = new Net();
        net.Eval();
        Assert.All(net.NamedModules(), m => Assert.False(m.Module.Training));
        net.Train();
        Assert.All(net.NamedModules(), m => Assert.True(m.Module.Training));
    }

    [Fact]
    public void ForwardHook_SeesInputAndOutput_UntilDisposed()
    {
        var net = new Net();
        var seen = new List<(Module, double[], double[])>();
        var handle = net.Layers[0].RegisterForwardHook((m, x, y) => seen.Add((m, x.ToDoubleArray(), y.ToDoubleArray())));
        net.Forward(Tensor.FromArray([1f, 2f, 3f]));
        handle.Dispose();
        net.Forward(Tensor.FromArray([1f, 2f, 3f]));
        var (module, input, output) = Assert.Single(seen);
        Assert.Same(net.Layers[0], module);
        Assert.Equal([1.0, 2, 3], input);
        Assert.Equal([2.0, 4, 6], output);
    }

    [Fact]
    public void BackwardHook_SeesGradientWithRespectToModuleOutput()
    {
        var net = new Net();
        double[]? first = null, identity = null;
        net.Layers[0].RegisterBackwardHook((_, g) => first = g.ToDoubleArray());
        net.Layers[1].RegisterBackwardHook((_, g) => identity = g.ToDoubleArray());
        var x = Tensor.FromArray([1f, -1f, 0.5f]);
        net.Forward(x).Sum().Backward();
        // L = Σ 2·h1 (second affine's weight 2), so dL/dh1 = 2 for the first module's output and the identity's.
        Assert.Equal([2.0, 2, 2], first!);
        Assert.Equal([2.0, 2, 2], identity!);
        Assert.Equal([2.0, -2, 1], ((Affine)net.Layers[2]).Scale.Grad!.ToDoubleArray());
    }

    [Fact]
    public void LoadStateDict_CopiesValues_AndRejectsMismatches()
    {
        var a = new Net();
        var b = new Net();
        using (GradMode.NoGrad()) ((Affine)a.Layers[0]).Scale.Data.FillInPlace(5);
        b.LoadStateDict(a.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value));
        Assert.Equal([5f, 5, 5], ((Affine)b.Layers[0]).Scale.Data.ToArray());

        var missing = a.StateDict().Skip(1).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Contains("layers.0.weight", Assert.Throws<ArgumentException>(() => b.LoadStateDict(missing)).Message);
        var wrongShape = a.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        wrongShape["layers.2.bias"] = Tensor.Zeros(4);
        var e = Assert.Throws<ArgumentException>(() => b.LoadStateDict(wrongShape));
        Assert.Contains("layers.2.bias", e.Message);
        Assert.Contains("[4]", e.Message);
    }

    [Fact]
    public void ZeroGrad_ClearsEveryGradient()
    {
        var net = new Net();
        net.Forward(Tensor.Ones(3)).Sum().Backward();
        Assert.All(net.Parameters(), p => Assert.NotNull(p.Grad));
        net.ZeroGrad();
        Assert.All(net.Parameters(), p => Assert.Null(p.Grad));
    }

    [Fact]
    public void ToString_IsPyTorchStyleRepr()
    {
        Assert.Equal("Net(\n  (layers): Sequential(\n    (0): Affine(n=3)\n    (1): Identity()\n    (2): Affine(n=3)\n  )\n)", new Net().ToString());
    }

    [Fact]
    public void ReplaceChild_SwapsLayerInSequential()
    {
        var net = new Net();
        net.Layers.ReplaceChild("1", new Affine(3));
        Assert.IsType<Affine>(net.Layers[1]);
        Assert.Equal([8f, 8, 8], net.Forward(Tensor.Ones(3)).ToArray());
        Assert.Throws<ArgumentException>(() => net.Layers.ReplaceChild("7", new Identity()));
    }

    [Fact]
    public void RegisterParameter_DuplicateName_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Duplicate());
    }

    private sealed class Duplicate : Module
    {
        public Duplicate()
        {
            RegisterParameter("w", Tensor.Zeros(1));
            RegisterParameter("w", Tensor.Zeros(1));
        }

        protected override Tensor ForwardCore(Tensor input) => input;
    }
}
