using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// The model remedies of <see cref="Remedies"/> on a network description that is not an MLP or
/// recurrent spec (conv nets, ResNets, <c>net …</c> texts): each a <see cref="Rewrites"/> call limited
/// to the hidden layers of the id's range (<see cref="NetworkFacts.Layers"/> numbers them as the
/// monitor does; the output layer is never changed). The result's model is the rewritten
/// description's <c>net …</c> text.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>activation:A</c>: the activation after each weight (a residual block: inside its branch and
/// its post-activation) becomes A, its weight the matched init (He normal; SELU: LeCun normal; tanh:
/// Xavier uniform), convs He normal fan-out as torchvision's.</item>
/// <item><c>init:xavier|he|orthogonal|lsuv</c>: re-initialise the weights (<c>lsuv</c>: Linear layers only).</item>
/// <item><c>norm:batch|layer</c>: a norm between each weight and the activation that directly follows it;
/// <c>norm:pre-ln</c>: every transformer layer Pre-LN (with a final norm); <c>norm:qk</c>: QK normalisation in every transformer layer.</item>
/// <item><c>residual:zero|full</c>: a plain layer (weight, norms, activation) becomes a residual block
/// (projection shortcut where the shape changes) starting at zero (SkipInit α) or at full gain; a
/// residual block's start becomes zero (zero-γ when its branch has a norm, Goyal et al. 2017) or full.</item>
/// <item><c>recipe:standard</c>: ReLU with He init, BatchNorm after each conv that has none, every
/// hidden layer a zero-started residual block (the ResNet recipe; norms of Linear layers, widths and depth
/// kept; a conv net of fewer hidden layers than <see cref="DiagnosisSettings.PlainDepth"/> keeps its layers plain and its
/// residual blocks' start); with recurrent blocks, their cell a GRU; with transformer layers, Pre-LN with QK normalisation and a warm-up
/// (<see cref="Remedies.DefaultWarmup"/>); the gradient norm clipped at 1.</item>
/// <item><c>cell:lstm|gru|rnn</c>, <c>init:orthogonal|identity|default</c>, <c>forget-bias:V</c>: on a
/// description with recurrent blocks, as on a recurrent spec.</item>
/// </list>
/// Layers are rewritten from the last to the first, so that an inserted or wrapped block never moves
/// the path of one still to come.
/// </remarks>
internal static class DescriptionRemedies
{
    /// <summary>The hidden layers: every monitored layer but the output layer and the recurrent ones.</summary>
    private static LayerFacts[] Hidden(NetworkDescription d)
    {
        var layers = NetworkFacts.Layers(d).Where(l => l.Cell is null).ToArray();
        return layers.Take(Math.Max(0, layers.Length - 1)).ToArray();
    }

    public static bool IsRecurrent(NetworkDescription d) => NetworkFacts.Flatten(d.Root).Any(b => b is RecurrentBlock);

    /// <summary>Whether the standard recipe keeps <paramref name="d"/>'s layers plain and its residual blocks' start: a conv net of fewer hidden layers than <see cref="DiagnosisSettings.PlainDepth"/>.</summary>
    public static bool RecipeKeepsConvLayers(NetworkDescription d) => HasConv(d) && Hidden(d).Length < new DiagnosisSettings().PlainDepth;

    public static bool HasConv(NetworkDescription d) => NetworkFacts.Flatten(d.Root).Any(b => b is ConvBlock);

    public static TrainingConfig Apply(string id, string kind, string arg, (int First, int Last)? range, TrainingConfig config)
    {
        var d = config.Description();
        if (kind == "norm" && arg is "pre-ln" or "qk")
        {
            // transformer rewrites: every transformer layer, no range
            if (range is not null) throw new FormatException($"remedy '{id}': applies to every transformer layer (no @range).");
            if (!NetworkFacts.Flatten(d.Root).Any(b => b is TransformerLayerBlock)) throw new FormatException($"remedy '{id}': the network has no transformer layer.");
            return config with { Model = NetworkText.Format(arg == "qk" ? Rewrites.QkNorm(d) : Rewrites.PreLayerNorm(d)) };
        }
        if (kind == "norm" && arg is not ("batch" or "layer"))
            throw new FormatException($"remedy '{id}': unknown norm '{arg}' (batch, layer, pre-ln, qk).");
        bool recurrent = IsRecurrent(d);
        var hidden = Hidden(d);
        int first = range?.First ?? 1, last = Math.Min(range?.Last ?? hidden.Length, hidden.Length);
        if (range is not null && (first < 1 || first > last))
            throw new FormatException($"remedy '{id}': layer range {first}-{last} is outside the hidden layers 1-{hidden.Length}.");
        TrainingConfig With(NetworkDescription n) => config with { Model = NetworkText.Format(n) };
        // one pass: the chosen layers of the description as it is now (an earlier pass may have moved paths), last first
        NetworkDescription Each(NetworkDescription n, Func<NetworkDescription, LayerFacts, NetworkDescription> change) =>
            Hidden(n).Where(l => l.Index >= first && l.Index <= last).Reverse().Aggregate(n, change);

        if (kind == "recipe")
        {
            if (range is not null) throw new FormatException($"remedy '{id}': a recipe applies to the whole network (no @range).");
            var n = d;
            if (recurrent) n = Rewrites.Map(Rewrites.SwitchCell(n, RecurrentCellKind.Gru), b => b is RecurrentBlock r ? r with { Init = Remedies.KeepInit(r.Init) } : b);
            n = Each(n, (x, l) => Swap(x, l, Activation.Relu));
            n = Each(n, (x, l) => l.Norm is null && HasConvAt(x, l) ? Rewrites.InsertNorm(x, NormalizationKind.Batch, scope: l.Path) : x);
            // a conv net shallower than a deep plain stack keeps its layers and blocks as they are, with BatchNorm after every conv:
            // that trains (He et al. 2016, Fig. 6: a plain-20 with BatchNorm), and on the generated catalogue's calibration half the
            // zero-started residual wrapping cost its narrow conv nets 0-25 points of test accuracy (6 of 16 broken conv runs
            // repaired without it, 5 with it)
            if (last - first + 1 >= 2 && !RecipeKeepsConvLayers(d)) n = Each(n, (x, l) => Residual(x, l, BranchStart.Zero));
            // transformers: Pre-LN and a warm-up (Xiong et al. 2020), and QK normalisation (Dehghani et al. 2023; Wortsman et al.
            // 2023): a transformer on Adam keeps its learning rate, at which the attention logits grow until the heads collapse
            // (docs/transformers.md: 3.40-3.55 → 2.88-3.09 bits per character at AdamW 0.03, within ±0.04 at 1e-3 and 3e-3)
            bool transformer = NetworkFacts.Flatten(n.Root).Any(b => b is TransformerLayerBlock);
            if (transformer) n = Rewrites.QkNorm(Rewrites.PreLayerNorm(n));
            return With(n) with
            {
                ClipNorm = Math.Min(config.ClipNorm ?? 1, 1),
                WarmupSteps = transformer && !Remedies.HasWarmup(config) ? Remedies.DefaultWarmup(config) : config.WarmupSteps,
            };
        }
        if (recurrent && kind is "cell" or "init" or "forget-bias")
        {
            if (range is not null) throw new FormatException($"remedy '{id}': a recurrent network's remedies apply to every layer (no @range).");
            return With(RecurrentRemedy(id, kind, arg, d));
        }
        return kind switch
        {
            "activation" => With(Each(d, (x, l) => Swap(x, l, arg switch
            {
                "relu" => Activation.Relu,
                "leaky-relu" => Activation.LeakyRelu,
                "gelu" => Activation.Gelu,
                "selu" => Activation.Selu,
                "tanh" => Activation.Tanh,
                _ => throw new FormatException($"remedy '{id}': unknown activation '{arg}' (relu, leaky-relu, gelu, selu, tanh)."),
            }))),
            "init" => With(Each(d, (x, l) => Rewrites.Map(x, b => b switch
            {
                LinearBlock lin => lin with { Init = InitFor(id, arg, conv: false) },
                ConvBlock c => c with { Init = InitFor(id, arg, conv: true) },
                _ => b,
            }, l.Path))),
            "norm" => With(Each(d, (x, l) => l.Norm is not null ? x : Rewrites.InsertNorm(x, arg switch
            {
                "batch" => NormalizationKind.Batch,
                "layer" => NormalizationKind.Layer,
                _ => throw new FormatException($"remedy '{id}': unknown norm '{arg}' (batch, layer, pre-ln, qk)."),
            }, scope: l.Path))),
            "residual" => With(Each(d, (x, l) => Residual(x, l, arg switch
            {
                "zero" => BranchStart.Zero,
                "full" => BranchStart.Full,
                _ => throw new FormatException($"remedy '{id}': unknown residual '{arg}' (zero, full)."),
            }))),
            _ => throw new FormatException($"remedy '{id}': unknown remedy kind '{kind}' (activation, init, norm, residual, clip, lr, optimizer, recipe{(recurrent ? ", cell, forget-bias" : "")})."),
        };
    }

    /// <summary>Swaps the activation of layer <paramref name="l"/> to <paramref name="to"/> and gives its weights the matched init.</summary>
    private static NetworkDescription Swap(NetworkDescription d, LayerFacts l, Activation to)
    {
        var init = to switch
        {
            Activation.Selu => new InitScheme(InitKind.LecunNormal),
            Activation.Tanh => new InitScheme(InitKind.XavierUniform),
            _ => new InitScheme(InitKind.KaimingNormal),
        };
        var convInit = to is Activation.Selu or Activation.Tanh ? init : new InitScheme(InitKind.KaimingNormalFanOut);
        if (l.Residual is not null)
        {
            d = Rewrites.SwapActivation(d, to, scope: l.Path);
            return Rewrites.Map(d, b => b switch { LinearBlock lin => lin with { Init = init }, ConvBlock c => c with { Init = convInit }, _ => b }, l.Path);
        }
        // a plain layer: its activation is a sibling of the weight; rewrite that sequence's blocks
        return MapSequenceOf(d, l.Path, (blocks, i) =>
        {
            blocks[i] = blocks[i] switch { LinearBlock lin => lin with { Init = init }, ConvBlock c => c with { Init = convInit }, var b => b };
            if (ShapeInference.FollowingActivation(blocks, i) is >= 0 and var a) blocks[a] = ((ActBlock)blocks[a]) with { Kind = to };
        });
    }

    private static NetworkDescription Residual(NetworkDescription d, LayerFacts l, BranchStart start)
    {
        if (l.Residual is null) return Rewrites.WrapResidual(d, start, scope: l.Path);
        return Rewrites.Map(d, b => b is ResidualBlock r
            ? r with { Start = start == BranchStart.Full ? BranchStart.Full : NetworkFacts.Flatten(r.Branch).Any(x => x is NormBlock) ? BranchStart.ZeroGamma : BranchStart.Zero }
            : b, l.Path);
    }

    /// <summary>Whether layer <paramref name="l"/> is a conv, or a residual block with a conv in its branch.</summary>
    private static bool HasConvAt(NetworkDescription d, LayerFacts l)
    {
        if (l.Residual is { } r) return NetworkFacts.Flatten(r.Branch).Any(b => b is ConvBlock);
        bool conv = false;
        MapSequenceOf(d, l.Path, (blocks, i) => conv = blocks[i] is ConvBlock);
        return conv;
    }

    /// <summary>Rewrites the sequence holding the block at <paramref name="path"/> (its index in it given); a path that is not a plain child changes nothing.</summary>
    private static NetworkDescription MapSequenceOf(NetworkDescription d, string path, Action<Block[], int> change)
    {
        int dot = path.LastIndexOf('.');
        string parent = dot < 0 ? "" : path[..dot], name = path[(dot + 1)..];
        SequenceBlock Seq(SequenceBlock s, string prefix)
        {
            var blocks = s.Blocks.Select((b, i) =>
            {
                string p = ShapeInference.Join(prefix, ShapeInference.ChildName(b, i));
                return b switch
                {
                    SequenceBlock q => Seq(q, p),
                    ResidualBlock r => r with { Branch = Seq(r.Branch, r.Branch.Name is { } n ? ShapeInference.Join(p, n) : p) },
                    _ => b,
                };
            }).ToArray();
            if (prefix == parent)
                for (int i = 0; i < blocks.Length; i++)
                    if (ShapeInference.ChildName(blocks[i], i) == name && blocks[i] is LinearBlock or ConvBlock)
                        change(blocks, i);
            return s with { Blocks = blocks };
        }
        return d with { Root = Seq(d.Root, d.Root.Name ?? "") };
    }

    private static InitScheme InitFor(string id, string arg, bool conv) => arg switch
    {
        "xavier" => new InitScheme(InitKind.XavierUniform),
        "he" => new InitScheme(conv ? InitKind.KaimingNormalFanOut : InitKind.KaimingNormal),
        "orthogonal" => new InitScheme(InitKind.Orthogonal),
        "lsuv" when !conv => new InitScheme(InitKind.Lsuv),
        "lsuv" => throw new FormatException($"remedy '{id}': LSUV applies to Linear layers only, not to a conv."),
        _ => throw new FormatException($"remedy '{id}': unknown initialiser '{arg}' (xavier, he, orthogonal, lsuv)."),
    };

    private static NetworkDescription RecurrentRemedy(string id, string kind, string arg, NetworkDescription d)
    {
        var blocks = NetworkFacts.Flatten(d.Root).OfType<RecurrentBlock>().ToArray();
        bool vanilla = blocks.All(b => b.Cell is RecurrentCellKind.RnnTanh or RecurrentCellKind.RnnRelu);
        Block Each(Block b, Func<RecurrentBlock, RecurrentBlock> f) => b is RecurrentBlock r ? f(r) : b;
        return kind switch
        {
            "cell" => arg switch
            {
                "lstm" => Rewrites.Map(d, b => Each(b, r => r with { Cell = RecurrentCellKind.Lstm, ForgetBias = 1, Init = Remedies.KeepInit(r.Init) })),
                "gru" => Rewrites.Map(d, b => Each(b, r => r with { Cell = RecurrentCellKind.Gru, ForgetBias = null, Init = Remedies.KeepInit(r.Init) })),
                "rnn" or "rnn-tanh" => Rewrites.Map(d, b => Each(b, r => r with { Cell = RecurrentCellKind.RnnTanh, ForgetBias = null })),
                _ => throw new FormatException($"remedy '{id}': unknown cell '{arg}' (lstm, gru, rnn)."),
            },
            "init" => arg switch
            {
                "orthogonal" => Rewrites.ChangeRecurrentInit(d, new RecurrentInit(RecurrentInitKind.Orthogonal)),
                "identity" => vanilla
                    ? Rewrites.Map(d, b => Each(b, r => r with { Cell = RecurrentCellKind.RnnRelu, Init = new RecurrentInit(RecurrentInitKind.Identity) }))
                    : throw new FormatException($"remedy '{id}': the identity initialisation (IRNN) is for a vanilla RNN."),
                "default" => Rewrites.ChangeRecurrentInit(d, new RecurrentInit(RecurrentInitKind.Default)),
                _ => throw new FormatException($"remedy '{id}': unknown recurrent initialiser '{arg}' (orthogonal, identity, default)."),
            },
            _ => blocks.All(b => b.Cell == RecurrentCellKind.Lstm)
                ? Rewrites.Map(d, b => Each(b, r => r with
                {
                    ForgetBias = double.TryParse(arg, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
                        ? v
                        : throw new FormatException($"remedy '{id}': '{arg}' is not a number."),
                }))
                : throw new FormatException($"remedy '{id}': forget-bias applies to an LSTM."),
        };
    }
}
