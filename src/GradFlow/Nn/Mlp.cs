using GradFlow.Tensors;

namespace GradFlow.Nn;

/// <summary>The modules of one layer of an <see cref="Mlp"/>, numbered from the input (1) to the output (L).</summary>
/// <param name="Index">Layer index, 1..L.</param>
/// <param name="Linear">The layer's linear map.</param>
/// <param name="Norm">Its normalisation module, or null.</param>
/// <param name="Activation">Its activation module (null for the output layer).</param>
/// <param name="Output">The module whose output is the layer's output h_l (the activation, the residual block, or the output Linear).</param>
/// <param name="Spec">The hidden layer's spec (null for the output layer).</param>
public sealed record MlpLayer(int Index, Linear Linear, Module? Norm, Module? Activation, Module Output, LayerSpec? Spec);

/// <summary>
/// A multi-layer perceptron built from a <see cref="ModelSpec"/>: child <c>layers</c>, a
/// <see cref="Sequential"/>, so parameter names are <c>layers.0.weight</c> …; residual hidden layers
/// are <see cref="Residual"/> blocks (<c>layers.3.branch.0.weight</c>). <see cref="Layers"/> lists each
/// layer's modules by layer index, which the gradient monitor uses.
/// </summary>
public sealed class Mlp : Module
{
    internal Mlp(ModelSpec spec, Sequential layers, IReadOnlyList<MlpLayer> index)
    {
        Spec = spec;
        Body = RegisterModule("layers", layers);
        Layers = index;
    }

    /// <summary>The spec this model was built from.</summary>
    public ModelSpec Spec { get; }

    /// <summary>The sequential body.</summary>
    public Sequential Body { get; }

    /// <summary>Layers 1..L (hidden layers, then the output layer).</summary>
    public IReadOnlyList<MlpLayer> Layers { get; }

    /// <inheritdoc />
    protected override Tensor ForwardCore(Tensor input)
    {
        if (input.Rank < 1 || input.Shape[^1] != Spec.Input)
        {
            if (input.Rank >= 2 && input.Count / input.Shape[0] == Spec.Input) input = input.Reshape(input.Shape[0], Spec.Input);
            else throw new ArgumentException($"Mlp: expected input [N, {Spec.Input}], got {Shapes.Format(input.Shape)}.");
        }
        return Body.Forward(input);
    }
}

/// <summary>Builds models from specs, with each layer's initialiser (seeded).</summary>
public static class ModelBuilder
{
    /// <summary>
    /// Builds <paramref name="spec"/>, drawing every random number from <paramref name="generator"/> in
    /// layer order. Layers with <see cref="InitKind.Lsuv"/> need <paramref name="lsuvBatch"/>, a batch
    /// of inputs used to scale them (Mishkin and Matas 2016).
    /// </summary>
    public static Mlp Build(ModelSpec spec, Generator generator, Tensor? lsuvBatch = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(generator);
        var body = new Sequential();
        var index = new List<MlpLayer>();
        int prev = spec.Input;
        var lsuvLayers = new List<(Linear Layer, double Scale)>();
        for (int i = 0; i < spec.Hidden.Count; i++)
        {
            var h = spec.Hidden[i];
            var linear = new Linear(prev, h.Width, generator);
            Initialise(linear, h.Init, h.Activation, generator);
            if (h.Init.Kind == InitKind.Lsuv) lsuvLayers.Add((linear, h.Init.Scale ?? 1.0));
            Module? norm = h.Norm switch
            {
                NormKind.Batch => new BatchNorm1d(h.Width),
                NormKind.Layer => new LayerNorm(h.Width),
                _ => null,
            };
            var act = Activations.Create(h.Activation);
            Module output;
            if (h.Residual == ResidualKind.None)
            {
                body.Add(linear);
                if (norm is not null) body.Add(norm);
                body.Add(act);
                output = act;
            }
            else
            {
                var branch = new Sequential(linear);
                if (norm is not null) branch.Add(norm);
                branch.Add(act);
                Module? shortcut = prev == h.Width ? null : ProjectionOf(prev, h.Width, generator);
                output = new Residual(branch, shortcut, zeroInit: h.Residual == ResidualKind.ZeroInit);
                body.Add(output);
            }
            if (h.Dropout > 0) body.Add(new Dropout(h.Dropout, generator.NextUInt64()));
            index.Add(new MlpLayer(i + 1, linear, norm, act, output, h));
            prev = h.Width;
        }
        var last = new Linear(prev, spec.Output, generator);
        Initialise(last, spec.OutputInit, Activation.Identity, generator);
        if (spec.OutputInit.Kind == InitKind.Lsuv) lsuvLayers.Add((last, spec.OutputInit.Scale ?? 1.0));
        body.Add(last);
        index.Add(new MlpLayer(spec.Hidden.Count + 1, last, null, null, last, null));
        var model = new Mlp(spec, body, index);
        if (lsuvLayers.Count > 0)
        {
            if (lsuvBatch is null)
                throw new ArgumentException("ModelBuilder: the spec uses init=lsuv, which needs a batch of inputs (lsuvBatch).");
            Lsuv.Apply(model, lsuvLayers.Select(l => l.Layer).ToArray(), lsuvBatch);
            // lsuv:S is S times LSUV's weights, applied after every layer is calibrated (so the same
            // seed and batch give exactly S times the unscaled weights).
            using (GradMode.NoGrad())
                foreach (var (layer, scale) in lsuvLayers)
                    if (scale != 1.0) layer.Weight.Data.MulInPlace(scale);
        }
        return model;
    }

    private static Linear ProjectionOf(int from, int to, Generator generator)
    {
        var p = new Linear(from, to, generator, bias: false);
        Init.XavierUniform(p.Weight.Data, generator);
        return p;
    }

    /// <summary>
    /// Initialises a linear layer's weight with <paramref name="scheme"/> for <paramref name="activation"/>;
    /// the bias becomes 0 (except for the default scheme). The scale is the gain (Xavier, Kaiming,
    /// orthogonal), multiplies the std (LeCun), is the std (normal), or multiplies PyTorch's default
    /// weight, U(±1/√fan_in) (default: the bias keeps its U(±1/√fan_in)). LSUV's scale is applied by
    /// <see cref="Build"/> after calibration.
    /// </summary>
    public static void Initialise(Linear linear, InitScheme scheme, Activation activation, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(linear);
        Initialise(linear.Weight.Data, linear.Bias?.Data, linear.ResetParameters, scheme, activation, generator);
    }

    /// <summary>
    /// Initialises any weight (a Linear's [out, in], a convolution's [C_out, C_in/groups, KH, KW]) with
    /// <paramref name="scheme"/> for <paramref name="activation"/>, fans as <see cref="Init.Fans"/>: as the
    /// <see cref="Linear"/> overload, with <paramref name="resetParameters"/> the layer's PyTorch default
    /// (drawn again for <see cref="InitKind.Default"/>).
    /// </summary>
    public static void Initialise(Tensor weight, Tensor? bias, Action resetParameters, InitScheme scheme, Activation activation, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(resetParameters);
        var w = weight;
        var nl = Init.NonlinearityOf(activation);
        double gain = scheme.Scale ?? Init.CalculateGain(nl);
        var (fanIn, fanOut) = Init.Fans(w);
        switch (scheme.Kind)
        {
            case InitKind.Default:
                resetParameters();
                if (scheme.Scale is { } s)
                    using (GradMode.NoGrad())
                        w.MulInPlace(s);
                return;
            case InitKind.XavierUniform: Init.XavierUniform(w, generator, gain); break;
            case InitKind.XavierNormal: Init.XavierNormal(w, generator, gain); break;
            case InitKind.KaimingUniform:
                if (scheme.Scale is null) Init.KaimingUniform(w, generator, nonlinearity: nl);
                else Init.Uniform(w, generator, -Math.Sqrt(3) * gain / Math.Sqrt(fanIn), Math.Sqrt(3) * gain / Math.Sqrt(fanIn));
                break;
            case InitKind.KaimingNormal:
                if (scheme.Scale is null) Init.KaimingNormal(w, generator, nonlinearity: nl);
                else Init.Normal(w, generator, 0, gain / Math.Sqrt(fanIn));
                break;
            case InitKind.KaimingNormalFanOut:
                if (scheme.Scale is null) Init.KaimingNormal(w, generator, mode: FanMode.FanOut, nonlinearity: nl);
                else Init.Normal(w, generator, 0, gain / Math.Sqrt(fanOut));
                break;
            case InitKind.LecunNormal: Init.Normal(w, generator, 0, (scheme.Scale ?? 1.0) / Math.Sqrt(fanIn)); break;
            case InitKind.Orthogonal: Init.Orthogonal(w, generator, gain); break;
            case InitKind.Normal: Init.Normal(w, generator, 0, scheme.Scale ?? 1.0); break;
            case InitKind.Lsuv: Init.Orthogonal(w, generator, 1.0); break;
        }
        if (bias is not null) Init.Constant(bias, 0);
    }
}

/// <summary>
/// Layer-sequential unit-variance initialisation (Mishkin and Matas, "All you need is a good init",
/// 2016): starting from orthogonal weights, for each layer in order, run the batch through the model,
/// measure the variance of the layer's output (its linear map's output, before normalisation and
/// activation) and divide the weights by its square root, until |Var − 1| &lt; <c>tolerance</c> or
/// <c>maxIterations</c> passes.
/// </summary>
public static class Lsuv
{
    /// <summary>Scales each of <paramref name="layers"/> (in order) inside <paramref name="model"/> using <paramref name="batch"/>.</summary>
    public static void Apply(Module model, IReadOnlyList<Linear> layers, Tensor batch, double tolerance = 0.1, int maxIterations = 10)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            foreach (var layer in layers)
            {
                for (int it = 0; it < maxIterations; it++)
                {
                    double var = double.NaN;
                    using (layer.RegisterOutputHook((_, y) => var = Variance(y)))
                    using (GradMode.NoGrad())
                        model.Forward(batch);
                    if (!(var > 0) || !double.IsFinite(var) || Math.Abs(var - 1) < tolerance) break;
                    using (GradMode.NoGrad()) layer.Weight.Data.MulInPlace(1 / Math.Sqrt(var));
                }
            }
        }
        finally
        {
            model.Train(wasTraining);
        }
    }

    private static double Variance(Tensor y)
    {
        var v = y.ToDoubleArray();
        double mean = v.Average();
        return v.Sum(x => (x - mean) * (x - mean)) / v.Length;
    }
}
