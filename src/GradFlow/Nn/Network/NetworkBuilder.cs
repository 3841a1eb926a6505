using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// Makes the <see cref="Network"/> of a <see cref="NetworkDescription"/>: one walk of the tree, in
/// order, each block becoming existing modules under its PyTorch name.
/// </summary>
/// <remarks>
/// <para>Modules: <see cref="LinearBlock"/> → <see cref="Linear"/>; <see cref="ConvBlock"/> →
/// <see cref="Conv2d"/>; <see cref="PoolBlock"/> → <see cref="MaxPool2d"/>/<see cref="AvgPool2d"/>;
/// <see cref="NormBlock"/> → <see cref="BatchNorm1d"/> ([F]), <see cref="BatchNorm2d"/> ([C, H, W]),
/// <see cref="LayerNorm"/> (every dimension but the batch), <see cref="GroupNorm"/>; a sequence →
/// <see cref="Sequential"/> when none of its blocks is named (so an MLP's Linear and activation fuse),
/// else a <see cref="Chain"/>; <see cref="ResidualBlock"/> → <see cref="ResidualUnit"/>;
/// <see cref="RecurrentBlock"/> → <see cref="Rnn"/>/<see cref="Lstm"/>/<see cref="Gru"/> (batch first).</para>
/// <para>Random numbers are drawn from the generator in the order of the walk, as
/// <see cref="ModelBuilder"/> and <see cref="RecurrentSpec.Build"/> draw them, so the description of a
/// spec builds the same weights for the same seed: a Linear or Conv draws PyTorch's default at
/// construction and then its <c>Init</c> when it has one (for the activation that follows it in its sequence, or after
/// its residual, else the identity; biases 0 except under <c>default</c>); a projection shortcut is
/// made after its branch; a dropout draws its mask seed; recurrent W_hh initialisations and forget
/// biases are applied once every module exists; LSUV (<see cref="InitKind.Lsuv"/>, Linear only) last,
/// on a batch of inputs.</para>
/// </remarks>
public static class NetworkBuilder
{
    /// <summary>Builds <paramref name="description"/>, drawing every random number from <paramref name="generator"/>.</summary>
    /// <param name="description">The network.</param>
    /// <param name="generator">The source of every initial weight and dropout seed.</param>
    /// <param name="lsuvBatch">A batch of inputs, needed when a Linear uses <see cref="InitKind.Lsuv"/>.</param>
    /// <exception cref="ArgumentException">when the blocks do not fit the input (naming the block path) or LSUV lacks its batch.</exception>
    public static Network Build(NetworkDescription description, Generator generator, Tensor? lsuvBatch = null)
    {
        ArgumentNullException.ThrowIfNull(description);
        ArgumentNullException.ThrowIfNull(generator);
        description.OutputShape();   // validates, naming the block path
        var walk = new Walk(generator);
        var network = new Network(description);
        var x = description.Input.ToArray();
        if (description.Root.Name is { } rootName)
        {
            var (module, readLast) = walk.Block(description.Root, ref x, Activation.Identity);
            network.Add(rootName, module, readLast);
        }
        else
        {
            foreach (var (name, module, readLast) in walk.Children(description.Root, ref x, Activation.Identity))
                network.Add(name, module, readLast);
        }
        foreach (var action in walk.Deferred) action();
        if (walk.Lsuv.Count > 0)
        {
            if (lsuvBatch is null)
                throw new ArgumentException("NetworkBuilder: the description uses init=lsuv, which needs a batch of inputs (lsuvBatch).");
            Nn.Lsuv.Apply(network, walk.Lsuv.Select(l => l.Layer).ToArray(), lsuvBatch);
            using (GradMode.NoGrad())
                foreach (var (layer, scale) in walk.Lsuv)
                    if (scale != 1.0) layer.Weight.Data.MulInPlace(scale);
        }
        return network;
    }

    /// <summary>The activation that follows block <paramref name="index"/> of <paramref name="blocks"/> (<see cref="ShapeInference.FollowingActivation"/>), else <paramref name="after"/> when the sequence ends first.</summary>
    private static Activation Following(IReadOnlyList<Block> blocks, int index, Activation after) =>
        ShapeInference.FollowingActivation(blocks, index) switch
        {
            >= 0 and var j => ((ActBlock)blocks[j]).Kind,
            -1 => after,
            _ => Activation.Identity,
        };

    private sealed class Walk(Generator generator)
    {
        public List<Action> Deferred { get; } = [];

        public List<(Linear Layer, double Scale)> Lsuv { get; } = [];

        /// <summary>The modules of the blocks of <paramref name="s"/>, named as the sequence names them.</summary>
        public List<(string Name, Module Module, bool ReadLast)> Children(SequenceBlock s, ref int[] x, Activation after)
        {
            var list = new List<(string, Module, bool)>();
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                var (module, readLast) = Block(s.Blocks[i], ref x, Following(s.Blocks, i, after));
                list.Add((ShapeInference.ChildName(s.Blocks[i], i), module, readLast));
            }
            return list;
        }

        public (Module Module, bool ReadLast) Block(Block b, ref int[] x, Activation following)
        {
            var input = x;
            x = ShapeInference.Block(b, x, "", null);
            switch (b)
            {
                case LinearBlock { Tied: true }:
                    return (new TiedLinear((LastEmbedding ?? throw new ArgumentException("NetworkBuilder: a tied linear needs an embedding before it.")).Weight), false);
                case LinearBlock l:
                {
                    var linear = new Linear(input[^1], l.Out, generator, l.Bias);
                    if (l.Init is { } init)
                    {
                        ModelBuilder.Initialise(linear, init, following, generator);
                        if (init.Kind == InitKind.Lsuv) Lsuv.Add((linear, init.Scale ?? 1.0));
                    }
                    return (linear, false);
                }
                case ConvBlock c:
                {
                    if (c.Init.Kind == InitKind.Lsuv) throw new ArgumentException("NetworkBuilder: init=lsuv applies to linear layers only, not to a conv.");
                    var conv = new Conv2d(input[0], c.Out, c.Kernel, generator, c.Stride, c.Padding, c.Dilation, c.Groups, c.Bias);
                    ModelBuilder.Initialise(conv.Weight.Data, conv.Bias?.Data, conv.ResetParameters, c.Init, following, generator);
                    return (conv, false);
                }
                case PoolBlock p:
                    return (p.Kind == PoolKind.Max ? new MaxPool2d(p.Kernel, p.Stride, p.Padding) : new AvgPool2d(p.Kernel, p.Stride, p.Padding), false);
                case AdaptiveAvgPoolBlock a:
                    return (new AdaptiveAvgPool2d(a.Size), false);
                case NormBlock n:
                    return (Norm(n, input), false);
                case EmbeddingBlock e:
                    LastEmbedding = new Embedding(e.Vocab, e.Dim, generator, e.Std);
                    return (LastEmbedding, false);
                case PositionBlock p:
                    return (new PositionalEncoding(p.Kind, p.MaxLength, input[1], generator), false);
                case TransformerLayerBlock t:
                    return (new TransformerEncoderLayer(input[1], t.Heads, t.Ff, generator, t.NormFirst, t.FeedForward, t.Dropout, t.RmsNorm,
                        t.Causal, t.Rotary, t.QkNorm), false);
                case ActBlock act:
                    return (Activations.Create(act.Kind), false);
                case DropoutBlock d:
                    return (new Dropout(d.P, generator.NextUInt64()), false);
                case FlattenBlock:
                    return (new Flatten(), false);
                case SequenceBlock s:
                {
                    var y = input;
                    var children = Children(s, ref y, following);
                    if (children.All(c => !c.ReadLast) && s.Blocks.All(c => c.Name is null))
                        return (new Sequential(children.Select(c => c.Module).ToArray()), false);
                    var chain = new Chain();
                    foreach (var (name, module, readLast) in children) chain.Add(name, module, readLast);
                    return (chain, false);
                }
                case ResidualBlock r:
                    return (Residual(r, input, x), false);
                case RecurrentBlock rec:
                    return (Recurrent(rec, input), rec.Output == RecurrentOutputKind.Last);
                default:
                    throw new ArgumentException($"NetworkBuilder: unknown block {b.GetType().Name}.");
            }
        }

        /// <summary>The embedding built last (a tied linear reads out through its weight).</summary>
        private Embedding? LastEmbedding { get; set; }

        private static Module Norm(NormBlock n, int[] x) => n.Kind switch
        {
            NormalizationKind.Batch => x.Length == 1 ? new BatchNorm1d(x[0]) : new BatchNorm2d(x[0]),
            NormalizationKind.Layer => n.Last ? new LayerNorm(x[^1]) : new LayerNorm(x),
            NormalizationKind.Rms => new RmsNorm(x[^1]),
            _ => new GroupNorm(n.Groups, x[0]),
        };

        private ResidualUnit Residual(ResidualBlock r, int[] x, int[] y)
        {
            var after = r.Post ?? Activation.Identity;
            var f = x;
            List<(string, Module, bool)> branch;
            if (r.Branch.Name is { } branchName)
            {
                var (module, readLast) = Block(r.Branch, ref f, after);
                branch = [(branchName, module, readLast)];
            }
            else branch = Children(r.Branch, ref f, after);
            if (r.Start == BranchStart.ZeroGamma)
            {
                // the branch's last norm starts at γ = 0 (Goyal et al. 2017)
                var norm = Flatten(branch.Select(c => c.Item2)).LastOrDefault(m => m is BatchNorm1d or BatchNorm2d or LayerNorm or GroupNorm);
                var gamma = norm switch
                {
                    BatchNorm1d b => b.Weight, BatchNorm2d b => b.Weight, LayerNorm l => l.Weight, GroupNorm g => g.Weight, _ => null,
                };
                if (gamma is not null)
                    using (GradMode.NoGrad())
                    {
                        gamma.Data.FillInPlace(0);
                        // a zero-pad shortcut carries x's channels into [before, before + C_in) and zeros elsewhere: a padded channel
                        // whose γ (and β) also start at 0 is exactly 0 before the post-activation, where ReLU passes no gradient, so γ
                        // never moves and the channel stays dead (16 of 32 and 48 of 64 channels of a zero-γ option-A ResNet, measured
                        // after 2 814 steps). The block starts as the identity on the carried channels; the padded ones keep γ = 1.
                        if (r.Shortcut == ShortcutKind.ZeroPad && !x.SequenceEqual(y) && gamma.Data.Shape[0] == y[0])
                        {
                            int before = (y[0] - x[0]) / 2, row = gamma.Data.Count / y[0];
                            var g = (float[])gamma.Data.Storage;
                            for (int c = 0; c < y[0]; c++)
                                if (c < before || c >= before + x[0]) g.AsSpan(c * row, row).Fill(1);
                        }
                    }
            }
            Module? shortcut = x.SequenceEqual(y) ? null : Shortcut(r.Shortcut, x, y);
            var post = r.Post is { } p ? Activations.Create(p) : null;
            return new ResidualUnit(branch, shortcut, r.Start == BranchStart.Zero, post);
        }

        private static IEnumerable<Module> Flatten(IEnumerable<Module> modules) =>
            modules.SelectMany(m => m.NamedModules().Select(t => t.Module));

        private Module Shortcut(ShortcutKind kind, int[] x, int[] y)
        {
            if (x.Length == 1)
            {
                // as ModelBuilder's residual MLP layers: a bias-free Linear, Xavier-uniform
                var p = new Linear(x[0], y[0], generator, bias: false);
                Init.XavierUniform(p.Weight.Data, generator);
                return p;
            }
            var stride = ShapeInference.SubsampleStride(x, y)!.Value;
            if (kind == ShortcutKind.ZeroPad)
            {
                int before = (y[0] - x[0]) / 2;
                return new ChannelPadShortcut(stride, before, y[0] - x[0] - before);
            }
            // torchvision's option B: 1×1 conv with the stride, then BatchNorm; the conv initialised as
            // torchvision initialises every conv of a ResNet (He normal, fan_out, ReLU's gain)
            var conv = new Conv2d(x[0], y[0], 1, generator, stride, bias: false);
            ModelBuilder.Initialise(conv.Weight.Data, null, conv.ResetParameters, new InitScheme(InitKind.KaimingNormalFanOut), Activation.Relu, generator);
            return new Sequential(conv, new BatchNorm2d(y[0]));
        }

        private RecurrentLayer Recurrent(RecurrentBlock r, int[] x)
        {
            RecurrentLayer rnn = r.Cell switch
            {
                RecurrentCellKind.RnnTanh => new Rnn(x[1], r.Hidden, generator, r.Layers, RnnNonlinearity.Tanh, batchFirst: true),
                RecurrentCellKind.RnnRelu => new Rnn(x[1], r.Hidden, generator, r.Layers, RnnNonlinearity.Relu, batchFirst: true),
                RecurrentCellKind.Lstm => new Lstm(x[1], r.Hidden, generator, r.Layers, batchFirst: true),
                _ => new Gru(x[1], r.Hidden, generator, r.Layers, batchFirst: true),
            };
            Deferred.Add(() => RecurrentSpec.Initialise(rnn, r.Init, r.ForgetBias, generator));
            return rnn;
        }
    }
}
