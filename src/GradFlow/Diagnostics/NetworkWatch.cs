using GradFlow.Nn;
using GradFlow.Nn.Network;

namespace GradFlow.Diagnostics;

/// <summary>
/// The monitored layers of a network built from a description, read from the description: the
/// generic rule that replaces discovering <see cref="Linear"/>s.
/// </summary>
/// <remarks>
/// In order from the input, each of these is one monitored layer (layer index 1, 2, …):
/// <list type="bullet">
/// <item>a Linear or Conv block: its weight, and as its output h the activation that follows it in its
/// sequence (past norms, dropout and pooling), or the block itself when none does (an output layer);</item>
/// <item>a residual block as a unit: the last weight of its branch, the block's output as h, and its
/// post-activation (else the branch's last activation) for the activation statistics;</item>
/// <item>each stacked layer k of a recurrent block: <c>weight_hh_l{k}</c>, measured through time;</item>
/// <item>each transformer layer as two: its attention sub-layer (<c>self_attn</c>, weight <c>in_proj_weight</c>) and its
/// feed-forward sub-layer (output <c>linear2</c>, its weight), each with its output before the residual sum as h
/// (a tied read-out is a layer with the embedding's weight).</item>
/// </list>
/// Sequences are walked into. An MLP spec's description gives the layers <see cref="Mlp"/> gives
/// (the same weights, outputs and activations, by layer index).
/// </remarks>
public static class NetworkWatch
{
    /// <summary>The monitored layers of <paramref name="network"/>, from its description.</summary>
    public static IReadOnlyList<MonitoredLayer> Layers(Nn.Network.Network network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return Layers(network.Description, network);
    }

    /// <summary>The monitored layers of <paramref name="model"/>, built from <paramref name="description"/> (modules are found by their state-dict paths).</summary>
    /// <exception cref="ArgumentException">when the model does not have the description's modules.</exception>
    public static IReadOnlyList<MonitoredLayer> Layers(NetworkDescription description, Module model)
    {
        ArgumentNullException.ThrowIfNull(description);
        ArgumentNullException.ThrowIfNull(model);
        var modules = model.NamedModules().ToDictionary(t => t.Name, t => t.Module);
        // the average pools' shapes by path, and each pool as (monitored layers before it, positions each of its outputs averages)
        var poolShapes = description.Shapes().Where(t => IsAveragePool(t.Block)).ToDictionary(t => t.Path, t => t);
        var pools = new List<(int Before, double Positions)>();
        Module At(string path) => modules.TryGetValue(path, out var m) ? m
            : throw new ArgumentException($"NetworkWatch: the model has no module '{path}' that the description names; was it built from this description?");
        var layers = new List<MonitoredLayer>();
        void Sequence(SequenceBlock s, string prefix)
        {
            for (int i = 0; i < s.Blocks.Count; i++)
            {
                var b = s.Blocks[i];
                string path = Join(prefix, ChildName(b, i));
                switch (b)
                {
                    case LinearBlock or ConvBlock:
                    {
                        var weight = At(path);
                        var act = FollowingActivation(s, i, prefix) is { } actPath ? At(actPath) : null;
                        layers.Add(new MonitoredLayer(layers.Count + 1, path, WeightOf(weight), act ?? weight, act) { Norm = FollowingNorm(s, i, prefix) is { } n ? At(n) : null });
                        break;
                    }
                    case ResidualBlock r:
                    {
                        string branchPrefix = r.Branch.Name is { } n ? Join(path, n) : path;
                        var (weightPath, actPath) = LastWeightAndActivation(r.Branch, branchPrefix);
                        if (weightPath is null) break;
                        var act = r.Post is not null ? At(Join(path, "act")) : actPath is null ? null : At(actPath);
                        layers.Add(new MonitoredLayer(layers.Count + 1, path, WeightOf(At(weightPath)), At(path), act)
                        {
                            Norm = LastNorm(r.Branch, branchPrefix) is { } normPath ? At(normPath) : null,
                        });
                        break;
                    }
                    case RecurrentBlock rec:
                    {
                        var rnn = (RecurrentLayer)At(path);
                        Activation? kind = rec.Cell switch
                        {
                            RecurrentCellKind.RnnTanh => Activation.Tanh,
                            RecurrentCellKind.RnnRelu => Activation.Relu,
                            _ => null,
                        };
                        for (int k = 0; k < rnn.NumLayers; k++)
                            layers.Add(new MonitoredLayer(layers.Count + 1, Join(path, $"weight_hh_l{k}"), rnn.WeightHh(k), rnn, null) { Kind = kind, RecurrentLayer = k });
                        break;
                    }
                    case TransformerLayerBlock:
                    {
                        // two monitored layers: the attention sub-layer and the feed-forward sub-layer, each with its
                        // output (before the residual sum) as h, so their signals and weight gradients are reported apart
                        var layer = (TransformerEncoderLayer)At(path);
                        layers.Add(new MonitoredLayer(layers.Count + 1, Join(path, "self_attn"), layer.SelfAttn.InProjWeight, layer.SelfAttn, null) { Norm = layer.Norm1 });
                        layers.Add(new MonitoredLayer(layers.Count + 1, Join(path, "linear2"), layer.Linear2.Weight, layer.Linear2, null) { Norm = layer.Norm2 });
                        break;
                    }
                    case var pool when IsAveragePool(pool) && poolShapes.TryGetValue(path, out var shape):
                        pools.Add((layers.Count, Positions(shape.Input) / Math.Max(1.0, Positions(shape.Output))));
                        break;
                    case SequenceBlock inner:
                        Sequence(inner, path);
                        break;
                }
            }
        }
        var root = description.Root;
        Sequence(root, root.Name ?? "");
        // each layer's signal is measured as the gradient of what the pools after it average (MonitoredLayer.SignalScale)
        for (int k = 0; k < layers.Count; k++)
        {
            double scale = pools.Where(p => p.Before > k).Aggregate(1.0, (a, p) => a * p.Positions);
            if (scale != 1) layers[k] = layers[k] with { SignalScale = scale };
        }
        return layers;
    }

    private static string ChildName(Block b, int i) => ShapeInference.ChildName(b, i);

    private static bool IsAveragePool(Block b) => b is AdaptiveAvgPoolBlock or PoolBlock { Kind: PoolKind.Avg };

    /// <summary>The spatial positions of a [C, H, W] shape (H·W), 1 for any other rank.</summary>
    private static double Positions(int[] shape) => shape.Length == 3 ? (double)shape[1] * shape[2] : 1;

    private static string Join(string prefix, string name) => ShapeInference.Join(prefix, name);

    private static Parameter WeightOf(Module m) => m switch
    {
        Linear l => l.Weight,
        Conv2d c => c.Weight,
        TiedLinear t => t.Weight,
        _ => throw new ArgumentException($"NetworkWatch: expected a Linear or Conv2d, found {m.GetType().Name}."),
    };

    /// <summary>The path of the activation after block <paramref name="index"/> (past norms, dropout and pooling), or null.</summary>
    private static string? FollowingActivation(SequenceBlock s, int index, string prefix) =>
        ShapeInference.FollowingActivation(s.Blocks, index) is >= 0 and var j ? Join(prefix, ChildName(s.Blocks[j], j)) : null;

    /// <summary>The path of the last Linear or Conv anywhere in <paramref name="s"/>, and of its last top-level activation.</summary>
    /// <summary>The path of the norm directly after the weight block at <paramref name="index"/> (past other norms, dropout and pooling), or null.</summary>
    private static string? FollowingNorm(SequenceBlock s, int index, string prefix)
    {
        for (int j = index + 1; j < s.Blocks.Count && s.Blocks[j] is NormBlock or DropoutBlock or PoolBlock or AdaptiveAvgPoolBlock or FlattenBlock; j++)
            if (s.Blocks[j] is NormBlock) return Join(prefix, ChildName(s.Blocks[j], j));
        return null;
    }

    /// <summary>The path of the last norm of a residual branch (not inside nested residual blocks), or null.</summary>
    private static string? LastNorm(SequenceBlock s, string prefix)
    {
        string? norm = null;
        for (int i = 0; i < s.Blocks.Count; i++)
        {
            string path = Join(prefix, ChildName(s.Blocks[i], i));
            norm = s.Blocks[i] switch { NormBlock => path, SequenceBlock inner => LastNorm(inner, path) ?? norm, _ => norm };
        }
        return norm;
    }

    private static (string? Weight, string? Activation) LastWeightAndActivation(SequenceBlock s, string prefix)
    {
        string? weight = null, act = null;
        for (int i = 0; i < s.Blocks.Count; i++)
        {
            string path = Join(prefix, ChildName(s.Blocks[i], i));
            switch (s.Blocks[i])
            {
                case LinearBlock or ConvBlock: weight = path; break;
                case ActBlock: act = path; break;
                case SequenceBlock inner: weight = LastWeightAndActivation(inner, path).Weight ?? weight; break;
                case ResidualBlock r: weight = LastWeightAndActivation(r.Branch, r.Branch.Name is { } n ? Join(path, n) : path).Weight ?? weight; break;
            }
        }
        return (weight, act);
    }
}
