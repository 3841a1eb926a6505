using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training.Onnx.Proto;

namespace GradFlow.Training.Onnx;

public static partial class OnnxImport
{
    /// <summary>
    /// The importer's side of <see cref="OnnxPatterns"/>: the fused GELU, LayerNorm and self-attention
    /// nodes, token embeddings and learnt positions, constant arithmetic, and the folding of a transformer
    /// layer's two residual sub-layers into one <see cref="TransformerLayerBlock"/>.
    /// </summary>
    private sealed partial class Importer
    {
        /// <summary>
        /// Self-attention as <c>nn.MultiheadAttention</c> computes it, found by <see cref="OnnxPatterns"/>: a
        /// block only while the graph is walked; <see cref="TransformerLayers"/> folds it into its layer.
        /// </summary>
        private sealed record AttentionPart(int Heads, bool Causal, string Node) : Block;

        /// <summary>Relative tolerance of an exported float32 constant against its definition (√2, 0.044715, ε).</summary>
        private const double ConstTolerance = 1e-6;

        private void Embedding(NodeProto node, Data x)
        {
            var w = ConstIn(node, 0, "weight");
            if (!_tokens || x != _input) throw Unsupported(node, $"Gather of rows of a constant by {Fmt(x.Shape)}", "an nn.Embedding reading the model's integer input");
            if (Int(node, "axis", 0) != 0 || w.Shape.Length != 2) throw Unsupported(node, $"Gather on axis {Int(node, "axis", 0)} of a constant of shape {Fmt(w.Shape)}", "an nn.Embedding (Gather of rows of its [vocab, dim] weight)");
            if (x.Shape.Length != 2) throw Unsupported(node, $"an embedding of token indices of shape {Fmt(x.Shape)}", "token indices [N, T]");
            Emit(node, x, new EmbeddingBlock((int)w.Shape[0], (int)w.Shape[1]), new() { ["weight"] = ToTensor(w) }, [-1, x.Shape[1], w.Shape[1]]);
            _embeddingWeight = w;
        }

        private void Fused(NodeProto node, Data x)
        {
            switch (node.OpType)
            {
                case "Gelu":
                {
                    bool tanh = Str(node, "approximate", "none") == "tanh";
                    // erf: x / √2 (or x · 1/√2); tanh: √(2/π) and 0.044715
                    double c = One(ConstIn(node, 1, "scale"), "scale", node);
                    double expected = tanh ? Math.Sqrt(2 / Math.PI) : Str(node, "scale_op", "Div") == "Div" ? Math.Sqrt(2) : 1 / Math.Sqrt(2);
                    ExpectConst(node, "the GELU's scale", c, expected);
                    ExpectConst(node, "the GELU's 1", One(ConstIn(node, 2, "one"), "one", node), 1);
                    ExpectConst(node, "the GELU's ½", One(ConstIn(node, 3, "half"), "half", node), 0.5);
                    if (tanh) ExpectConst(node, "the GELU's cubic coefficient", One(ConstIn(node, 4, "cubic"), "cubic", node), 0.044715);
                    Act(node, x);
                    break;
                }
                case "LayerNorm":
                {
                    ExpectConst(node, "LayerNorm's exponent", One(ConstIn(node, 4, "exponent"), "exponent", node), 2);
                    double eps = One(ConstIn(node, 3, "epsilon"), "epsilon", node);
                    if (Math.Abs(eps - 1e-5) > 1e-9) throw Unsupported(node, $"LayerNorm with epsilon {eps}", "epsilon 1e-5 (PyTorch's default)");
                    if (x.BatchAxis != 0 || x.Shape.Length is not (2 or 3)) throw Unsupported(node, $"LayerNorm over the last dimension of {Fmt(x.Shape)}", "LayerNorm on [N, F] or on each position of [N, T, D]");
                    LayerNormBlock(node, x, x.Shape.Length == 3, ConstIn(node, 1, "weight"), ConstIn(node, 2, "bias"));
                    break;
                }
                case "RmsNorm":
                {
                    if (x.BatchAxis != 0 || x.Shape.Length is not (2 or 3)) throw Unsupported(node, $"an RMS norm over the last dimension of {Fmt(x.Shape)}", "an RMS norm on [N, F] or on each position of [N, T, D]");
                    var weight = ConstIn(node, 1, "weight");
                    if (weight.Count != x.Shape[^1]) throw Bad(node, $"an RMS norm weight of shape {Fmt(weight.Shape)} for {Fmt(x.Shape)}");
                    // ε: a norm block's (1e-6) or a transformer layer's (1e-5), checked once the layers are folded
                    double eps = One(ConstIn(node, 2, "epsilon"), "epsilon", node);
                    bool layer = Math.Abs(eps - 1e-5) <= ConstTolerance * 1e-5;
                    if (!layer && !(Math.Abs(eps - 1e-6) <= ConstTolerance * 1e-6))
                        throw Unsupported(node, $"an RMS norm with epsilon {eps}", "epsilon 1e-6 (an rmsnorm block) or 1e-5 (in a transformer layer)");
                    var block = new NormBlock(NormalizationKind.Rms);
                    if (layer) _layerRms[block] = node.Name;
                    Emit(node, x, block, new() { ["weight"] = ToTensor(weight with { Shape = [x.Shape[^1]] }) }, x.Shape);
                    break;
                }
                case "SelfAttention": SelfAttention(node, x); break;
                case "GroupNorm":
                {
                    RequireImage(node, x);
                    long c = x.Shape[1];
                    var shape = ConstIn(node, 1, "shape").Longs();
                    long g = shape.Length == 3 && shape[2] == -1 ? shape[1] : -1;
                    if (g < 1 || c % g != 0) throw Unsupported(node, $"a group norm reshaping {Fmt(x.Shape)} to {Fmt(shape)}", "nn.GroupNorm (a Reshape to [N, groups, -1])");
                    var scale = ConstIn(node, 2, "scale");
                    var bias = ConstIn(node, 3, "B");
                    if (scale.Count != g || bias.Count != g || scale.Values.Any(v => v != 1) || bias.Values.Any(v => v != 0))
                        throw Unsupported(node, "a group norm whose InstanceNormalization has a scale other than 1 or a bias other than 0", "nn.GroupNorm as PyTorch exports it");
                    GroupNormBlock(node, x, (int)g, ConstIn(node, 4, "weight"), ConstIn(node, 5, "bias"));
                    break;
                }
                default: throw Bad(node, "unknown fused node");
            }
        }

        /// <summary>A group norm of <paramref name="groups"/> groups with γ and β (one per channel) on [N, C, H, W]; ε 1e-5.</summary>
        private void GroupNormBlock(NodeProto node, Data x, int groups, Const gamma, Const beta)
        {
            long c = x.Shape[1];
            double eps = Float(node, "epsilon", 1e-5);
            if (Math.Abs(eps - 1e-5) > 1e-9) throw Unsupported(node, $"a group or instance norm with epsilon {eps}", "epsilon 1e-5 (PyTorch's default)");
            if (gamma.Count != c || beta.Count != c) throw Bad(node, $"a norm weight of shape {Fmt(gamma.Shape)} and bias of {Fmt(beta.Shape)} for {c} channels");
            var weights = new Dictionary<string, Tensor> { ["weight"] = ToTensor(gamma with { Shape = [c] }), ["bias"] = ToTensor(beta with { Shape = [c] }) };
            Emit(node, x, new NormBlock(NormalizationKind.Group, groups), weights, x.Shape);
        }

        /// <summary>nn.InstanceNorm2d(affine=True) without running statistics: a group norm of one channel per group.</summary>
        private void InstanceNorm(NodeProto node, Data x)
        {
            RequireImage(node, x);
            GroupNormBlock(node, x, (int)x.Shape[1], ConstIn(node, 1, "scale"), ConstIn(node, 2, "B"));
        }

        private static void ExpectConst(NodeProto node, string what, double actual, double expected)
        {
            if (!(Math.Abs(actual - expected) <= ConstTolerance * Math.Abs(expected)))
                throw Unsupported(node, $"{what} {actual} (the definition's is {expected})", "the expression as PyTorch exports it");
        }

        private void SelfAttention(NodeProto node, Data x)
        {
            if (x.Shape.Length != 3 || x.BatchAxis != 0) throw Unsupported(node, $"self-attention on {Fmt(x.Shape)}", "nn.MultiheadAttention with batch_first=True on [N, T, D]");
            long t = x.Shape[1], d = x.Shape[2];
            var wT = ConstIn(node, 1, "in_proj_weight");
            var inBias = ConstIn(node, 2, "in_proj_bias");
            var outW = ConstIn(node, 3, "out_proj.weight");
            var outB = ConstIn(node, 4, "out_proj.bias");
            if (!wT.Shape.SequenceEqual([d, 3 * d]) || inBias.Count != 3 * d || !outW.Shape.SequenceEqual([d, d]) || outB.Count != d)
                throw Bad(node, $"attention weights in_proj {Fmt(wT.Shape)}, in_proj_bias {Fmt(inBias.Shape)}, out_proj {Fmt(outW.Shape)}, out_proj.bias {Fmt(outB.Shape)} for width {d}");
            if (Int(node, "gemm_transA", 0) != 0 || Int(node, "gemm_transB", 0) != 1 || Float(node, "gemm_alpha", 1) != 1 || Float(node, "gemm_beta", 1) != 1)
                throw Unsupported(node, "an attention output projection Gemm with transA, alpha or beta, or without transB", "out_proj as nn.Linear exports it");
            long axis = Int(node, "axis", -1);
            if (axis != -1 && axis != 2) throw Unsupported(node, $"attention with its softmax over axis {axis}", "the softmax over the keys (axis -1)");
            // the scale 1/√(head size) gives the heads
            double scale = One(ConstIn(node, 5, "scale"), "scale", node);
            long dh = (long)Math.Round(scale * scale);
            if (dh < 1 || d % dh != 0 || Math.Abs(scale - Math.Sqrt(dh)) > ConstTolerance * scale)
                throw Unsupported(node, $"attention scores divided by {scale}, which is not √(head size) of a head size dividing {d}", "nn.MultiheadAttention's scaling by 1/√(head size)");
            bool causal = false;
            if (node.Input[6].Length > 0)
            {
                if (node.Input[7].Length > 0) ExpectConst(node, "the attention scores' factor", One(ConstIn(node, 7, "score factor"), "score factor", node), 1);
                causal = CausalMask(node, ConstIn(node, 6, "mask"), t);
            }
            if (node.Input[8].Length > 0)
            {
                double p = One(ConstIn(node, 8, "ratio"), "ratio", node);
                bool training = node.Input[9].Length > 0 && One(ConstIn(node, 9, "training_mode"), "training_mode", node) != 0;
                if (training && p > 0)
                    throw Unsupported(node, $"dropout {p} on the attention weights (nn.MultiheadAttention's dropout)",
                        "dropout=0.0 in the layer (GradFlow's transformer layer drops its sub-layers' outputs and the feed-forward, not the attention weights), or an evaluation-mode export");
            }
            var weights = new Dictionary<string, Tensor>
            {
                ["in_proj_weight"] = ToTensor(Transpose(wT, [1, 0])),
                ["in_proj_bias"] = ToTensor(inBias with { Shape = [3 * d] }),
                ["out_proj.weight"] = ToTensor(outW),
                ["out_proj.bias"] = ToTensor(outB with { Shape = [d] }),
            };
            Emit(node, x, new AttentionPart((int)(d / dh), causal, node.Name), weights, x.Shape);
        }

        /// <summary>Whether an additive attention mask [T, T] (leading 1s allowed) is causal: 0 on and below the diagonal, −∞ (or ≤ −1e9) above; anything else is refused.</summary>
        private static bool CausalMask(NodeProto node, Const mask, long t)
        {
            if (mask.Shape.Length < 2 || mask.Shape[^1] != t || mask.Shape[^2] != t || mask.Count != t * t)
                throw Unsupported(node, $"an attention mask of shape {Fmt(mask.Shape)} for {t} positions", "a causal mask [T, T] (nn.Transformer.generate_square_subsequent_mask)");
            for (long i = 0; i < t; i++)
                for (long j = 0; j < t; j++)
                {
                    double m = mask.Values[i * t + j];
                    bool ok = j <= i ? m == 0 : m <= -1e9;
                    if (!ok)
                        throw Unsupported(node, $"an attention mask that is not causal (row {i}, column {j} is {m})",
                            "a causal mask: 0 on and below the diagonal, −∞ above (nn.Transformer.generate_square_subsequent_mask), or no mask");
                }
            return true;
        }

        /// <summary>Element-wise Add, Sub, Mul, Div of two constants with broadcasting (integer division truncates, as ONNX's).</summary>
        private Const Arithmetic(NodeProto node, Const a, Const b)
        {
            int rank = Math.Max(a.Shape.Length, b.Shape.Length);
            long[] Pad(long[] s) => [.. Enumerable.Repeat(1L, rank - s.Length), .. s];
            long[] sa = Pad(a.Shape), sb = Pad(b.Shape), shape = new long[rank];
            for (int i = 0; i < rank; i++)
                shape[i] = sa[i] == sb[i] || sb[i] == 1 ? sa[i] : sa[i] == 1 ? sb[i] : throw Bad(node, $"shapes {Fmt(a.Shape)} and {Fmt(b.Shape)} do not broadcast");
            long n = Count(shape, node);
            bool isInt = a.IsInt && b.IsInt;
            var values = new double[n];
            var index = new long[rank];
            for (long k = 0; k < n; k++)
            {
                long ia = 0, ib = 0;
                for (int i = 0; i < rank; i++)
                {
                    ia = ia * sa[i] + (sa[i] == 1 ? 0 : index[i]);
                    ib = ib * sb[i] + (sb[i] == 1 ? 0 : index[i]);
                }
                double x = a.Values[ia], y = b.Values[ib];
                values[k] = node.OpType switch
                {
                    "Add" => x + y,
                    "Sub" => x - y,
                    "Mul" => x * y,
                    _ when isInt => y == 0 ? throw Bad(node, "integer division by zero") : Math.Truncate(x / y),
                    _ => x / y,
                };
                for (int i = rank - 1; i >= 0 && ++index[i] == shape[i]; i--) index[i] = 0;
            }
            return new Const(shape, values, isInt);
        }

        // ------------------------------------------------------------------ transformer layers

        /// <summary>
        /// Folds each transformer layer's sub-layers into a <see cref="TransformerLayerBlock"/> with PyTorch's
        /// state-dict names: Pre-LN <c>x + drop1(attn(norm1(x)))</c> then <c>x + drop2(linear2(drop(act(linear1(norm2(x))))))</c>
        /// (two residual blocks), or Post-LN the residuals without their norms, each followed by its norm.
        /// Self-attention found in any other form is refused, naming its node.
        /// </summary>
        private List<Block> TransformerLayers(List<Block> blocks)
        {
            if (!blocks.Any(ContainsAttention)) return blocks;
            var result = new List<Block>();
            for (int i = 0; i < blocks.Count;)
            {
                if (Layer(blocks, i, normFirst: true) is { } pre)
                {
                    result.Add(pre);
                    i += 2;
                }
                else if (Layer(blocks, i, normFirst: false) is { } post)
                {
                    result.Add(post);
                    i += 4;
                }
                else
                {
                    if (FindAttention(blocks[i]) is { } a)
                        throw new FormatException($"{source}: node '{a.Node}' (self-attention): attention outside the form of nn.TransformerEncoderLayer is not supported; nearest supported: " +
                            "nn.TransformerEncoderLayer(batch_first=True), norm_first True or False, activation relu or gelu, its three dropouts of one probability, layer_norm_eps 1e-5 (docs/onnx.md).");
                    result.Add(blocks[i]);
                    i++;
                }
            }
            return result;
        }

        /// <summary>RMS norms with a transformer layer's ε (1e-5), by the node they were read from: each must fold into a layer.</summary>
        private readonly Dictionary<Block, string> _layerRms = new(ReferenceEqualityComparer.Instance);

        /// <summary>Refuses an RMS norm with a layer's ε left outside a transformer layer (an rmsnorm block's ε is 1e-6).</summary>
        private void CheckRmsEpsilon(IEnumerable<Block> blocks)
        {
            foreach (var b in blocks)
            {
                if (_layerRms.TryGetValue(b, out var node))
                    throw new FormatException($"{source}: node '{node}' (the RMS norm expression around it): an RMS norm with epsilon 1e-5 outside a transformer layer is not supported; nearest supported: epsilon 1e-6 (an rmsnorm block) or the norms of a transformer layer.");
                if (b is ResidualBlock r) CheckRmsEpsilon(r.Branch.Blocks);
                if (b is SequenceBlock s) CheckRmsEpsilon(s.Blocks);
            }
        }

        private static bool ContainsAttention(Block b) => FindAttention(b) is not null;

        private static AttentionPart? FindAttention(Block b) => b switch
        {
            AttentionPart a => a,
            ResidualBlock r => r.Branch.Blocks.Select(FindAttention).FirstOrDefault(a => a is not null),
            SequenceBlock s => s.Blocks.Select(FindAttention).FirstOrDefault(a => a is not null),
            _ => null,
        };

        private TransformerLayerBlock? Layer(List<Block> blocks, int i, bool normFirst)
        {
            int count = normFirst ? 2 : 4;
            if (i + count > blocks.Count) return null;
            if (blocks[i] is not ResidualBlock { Shortcut: ShortcutKind.Identity, Post: null, Start: BranchStart.Full } first) return null;
            int ffAt = normFirst ? i + 1 : i + 2;
            if (blocks[ffAt] is not ResidualBlock { Shortcut: ShortcutKind.Identity, Post: null, Start: BranchStart.Full } second) return null;
            var a = first.Branch.Blocks.ToList();
            var f = second.Branch.Blocks.ToList();
            NormBlock? norm1, norm2;
            if (normFirst)
            {
                norm1 = a.FirstOrDefault() as NormBlock;
                norm2 = f.FirstOrDefault() as NormBlock;
                if (norm1 is null || norm2 is null) return null;
                a.RemoveAt(0);
                f.RemoveAt(0);
            }
            else
            {
                norm1 = blocks[i + 1] as NormBlock;
                norm2 = blocks[i + 3] as NormBlock;
                if (norm1 is null || norm2 is null) return null;
            }
            bool rms = _layerRms.ContainsKey(norm1) && _layerRms.ContainsKey(norm2);
            if (!rms && (norm1 is not { Kind: NormalizationKind.Layer, Last: true } || norm2 is not { Kind: NormalizationKind.Layer, Last: true })) return null;
            // attention (dropout1); linear1, activation, (dropout), linear2, (dropout2)
            var drops = new List<double>();
            AttentionPart attn;
            if (a is [AttentionPart p1, DropoutBlock d1])
            {
                attn = p1;
                drops.Add(d1.P);
            }
            else if (a is [AttentionPart p0]) attn = p0;
            else return null;
            LinearBlock l1, l2;
            ActBlock act;
            if (f is [LinearBlock x1, ActBlock x2, DropoutBlock d, LinearBlock x3, DropoutBlock d2])
            {
                (l1, act, l2) = (x1, x2, x3);
                drops.AddRange([d.P, d2.P]);
            }
            else if (f is [LinearBlock y1, ActBlock y2, LinearBlock y3]) (l1, act, l2) = (y1, y2, y3);
            else return null;
            if (drops.Count is not (0 or 3) || drops.Distinct().Count() > 1) return null;
            if (!l1.Bias || !l2.Bias) return null;
            FeedForwardKind? ff = act.Kind switch { Activation.Relu => FeedForwardKind.Relu, Activation.Gelu => FeedForwardKind.Gelu, _ => null };
            if (ff is null) return null;
            var layer = new TransformerLayerBlock(attn.Heads, l1.Out)
            {
                NormFirst = normFirst,
                FeedForward = ff.Value,
                Dropout = drops.Count == 0 ? 0 : drops[0],
                Causal = attn.Causal,
                RmsNorm = rms,
            };
            var w = new Dictionary<string, Tensor>();
            foreach (var (prefix, part) in new (string, Block)[] { ("self_attn.", attn), ("linear1.", l1), ("linear2.", l2), ("norm1.", norm1), ("norm2.", norm2) })
                foreach (var (k, t) in _weights[part]) w[prefix + k] = t;
            _weights[layer] = w;
            return layer;
        }
    }
}
