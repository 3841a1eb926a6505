using GradFlow.Nn;
using GradFlow.Nn.Network;

namespace GradFlow.Diagnostics;

/// <summary>
/// What the diagnosis knows of one monitored layer from the description alone (no weights): the layer
/// index and block path of <see cref="NetworkWatch"/>'s list, the activation that follows its weight,
/// whether a norm sits between them, the residual block it is (if any), its weight's initialiser and
/// its output width (features or channels).
/// </summary>
/// <param name="Index">The layer index (1 = input side), as <see cref="NetworkWatch.Layers(Nn.Network.Network)"/> numbers it.</param>
/// <param name="Path">The block path (a weight block, a residual block, or a recurrent block).</param>
/// <param name="Activation">The activation after the weight (a residual block: its post-activation, else its branch's last), or null.</param>
/// <param name="Norm">The norm between the weight and its activation (a residual block: any norm in its branch), or null.</param>
/// <param name="Residual">The residual block this layer is, or null.</param>
/// <param name="Init">The weight's initialiser (a residual block: its branch's last weight's), or null for a Linear left at its constructor's draw.</param>
/// <param name="Width">Output features or channels (a recurrent layer: hidden units).</param>
/// <param name="Cell">A recurrent layer's cell, or null.</param>
public sealed record LayerFacts(int Index, string Path, Activation? Activation, NormalizationKind? Norm, ResidualBlock? Residual,
    InitScheme? Init, int Width, RecurrentCellKind? Cell = null);

/// <summary>
/// The description's facts the diagnosis rules read, one <see cref="LayerFacts"/> per monitored layer
/// in <see cref="NetworkWatch"/>'s order (weight blocks with their activation, residual blocks as
/// units, stacked recurrent layers), so that the causes and remedies apply to every family.
/// </summary>
public static class NetworkFacts
{
    /// <summary>The monitored layers of <paramref name="description"/>, from the input.</summary>
    public static IReadOnlyList<LayerFacts> Layers(NetworkDescription description)
    {
        ArgumentNullException.ThrowIfNull(description);
        var shapes = new Dictionary<string, int[]>();
        foreach (var shape in description.Shapes())
            if (!shape.IsShortcut) shapes.TryAdd(shape.Path, shape.Output);
        var layers = new List<LayerFacts>();
        void Sequence(SequenceBlock s, string prefix)
        {
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                var b = s.Blocks[i];
                string path = ShapeInference.Join(prefix, ShapeInference.ChildName(b, i));
                switch (b)
                {
                    case LinearBlock or ConvBlock:
                    {
                        int a = ShapeInference.FollowingActivation(s.Blocks, i);
                        var act = a >= 0 ? ((ActBlock)s.Blocks[a]).Kind : (Activation?)null;
                        NormalizationKind? norm = null;
                        for (int j = i + 1; j < (a >= 0 ? a : i + 1); j++)
                            if (s.Blocks[j] is NormBlock n) norm = n.Kind;
                        layers.Add(new LayerFacts(layers.Count + 1, path, act, norm, null, InitOf(b), shapes[path][0]));
                        break;
                    }
                    case ResidualBlock r:
                    {
                        var inner = Flatten(r.Branch).ToArray();
                        var weight = inner.LastOrDefault(x => x is LinearBlock or ConvBlock);
                        if (weight is null) break;
                        var act = r.Post ?? inner.OfType<ActBlock>().LastOrDefault()?.Kind;
                        var norm = inner.OfType<NormBlock>().LastOrDefault()?.Kind;
                        layers.Add(new LayerFacts(layers.Count + 1, path, act, norm, r, InitOf(weight), shapes[path][0]));
                        break;
                    }
                    case RecurrentBlock rec:
                        for (int k = 0; k < rec.Layers; k++)
                            layers.Add(new LayerFacts(layers.Count + 1, path, rec.Cell switch
                            {
                                RecurrentCellKind.RnnTanh => Activation.Tanh,
                                RecurrentCellKind.RnnRelu => Activation.Relu,
                                _ => null,
                            }, null, null, null, rec.Hidden, rec.Cell));
                        break;
                    case SequenceBlock seq:
                        Sequence(seq, path);
                        break;
                }
            }
        }
        Sequence(description.Root, description.Root.Name ?? "");
        return layers;
    }

    /// <summary>
    /// The hidden layers as an MLP spec's per-layer record (every monitored layer but the output layer
    /// and the recurrent ones): width, activation (identity when none follows), initialiser, norm
    /// (group norm counts as a norm: as <see cref="NormKind.Layer"/>), residual form (a residual block
    /// starting at full gain is <see cref="ResidualKind.Full"/>, one starting at zero or at γ = 0
    /// <see cref="ResidualKind.ZeroInit"/>). For an MLP spec's description this is the spec's hidden layers
    /// (dropout aside).
    /// </summary>
    public static IReadOnlyList<LayerSpec> Hidden(NetworkDescription description)
    {
        var layers = Layers(description).Where(l => l.Cell is null).ToArray();
        return layers.Take(Math.Max(0, layers.Length - 1)).Select(l => new LayerSpec(l.Width, l.Activation ?? Activation.Identity,
            l.Init ?? new InitScheme(InitKind.Default),
            l.Norm switch { null => NormKind.None, NormalizationKind.Batch => NormKind.Batch, _ => NormKind.Layer },
            l.Residual switch { null => ResidualKind.None, { Start: BranchStart.Full } => ResidualKind.Full, _ => ResidualKind.ZeroInit })).ToArray();
    }

    /// <summary>Every block under <paramref name="s"/>, depth first (residual branches included).</summary>
    internal static IEnumerable<Block> Flatten(SequenceBlock s)
    {
        foreach (var b in s.Blocks)
        {
            yield return b;
            var inner = b switch { SequenceBlock q => q, ResidualBlock r => r.Branch, _ => null };
            if (inner is not null)
                foreach (var x in Flatten(inner)) yield return x;
        }
    }

    private static InitScheme? InitOf(Block b) => b switch
    {
        LinearBlock l => l.Init,
        ConvBlock c => c.Init,
        _ => null,
    };
}
