using GradFlow.Training.Onnx.Proto;

namespace GradFlow.Training.Onnx;

/// <summary>
/// Finds the expressions <c>torch.onnx.export</c> writes for layers that have no ONNX operator at the
/// exported opset, and replaces each by one node of the <see cref="Domain"/> domain that
/// <see cref="OnnxImport"/> reads as a block: GELU (<c>x·½·(1 + erf(x/√2))</c>) and its tanh
/// approximation, LayerNorm over the last dimension (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div,
/// Mul, Add before opset 17), RMS norm as GradFlow's exporter writes it, and <c>nn.MultiheadAttention</c>'s self-attention (the packed input
/// projection, the slicing into queries, keys and values, the per-head reshapes, the scaled scores, an
/// optional additive mask, the softmax, the output projection). The constants an expression reads
/// (the √2, ε, the weights, the mask) become inputs of the new node, so the importer checks their values
/// once they are folded; the shape arithmetic that only the replaced nodes read is dropped. Where a
/// Softmax looks like attention but the expression around it is not self-attention of that form,
/// <see cref="Rewritten.Refusals"/> says why, for the importer's message about that node.
/// </summary>
internal static class OnnxPatterns
{
    /// <summary>The domain of the nodes written here; never in a file.</summary>
    public const string Domain = "gradflow.import";

    /// <summary>The rewritten node list, and for Softmax nodes left alone that look like attention, why they were.</summary>
    public sealed record Rewritten(List<NodeProto> Nodes, Dictionary<NodeProto, string> Refusals);

    /// <summary>Rewrites <paramref name="nodes"/> (topological order) of a graph whose one data input is <paramref name="input"/>.</summary>
    public static Rewritten Rewrite(IList<NodeProto> nodes, string input, IEnumerable<string> outputs)
    {
        var g = new Graph(nodes, input);
        g.Run();
        return new Rewritten(g.Result(outputs.ToHashSet()), g.Refusals);
    }

    private sealed class Graph
    {
        private readonly IList<NodeProto> _nodes;
        private readonly Dictionary<string, NodeProto> _producer = [];
        private readonly Dictionary<string, List<NodeProto>> _consumers = [];
        private readonly HashSet<string> _data = [];
        private readonly HashSet<NodeProto> _removed = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<NodeProto, NodeProto> _placed = new(ReferenceEqualityComparer.Instance);

        public Dictionary<NodeProto, string> Refusals { get; } = new(ReferenceEqualityComparer.Instance);

        /// <summary>A node without inputs or outputs: no pattern is looked for, and the importer names the node.</summary>
        private readonly bool _malformed;

        public Graph(IList<NodeProto> nodes, string input)
        {
            _nodes = nodes;
            _malformed = nodes.Any(n => n.Input.Count == 0 && n.OpType != "Constant" || n.Output.Count == 0 || n.Output[0].Length == 0);
            _data.Add(input);
            foreach (var n in nodes)
            {
                foreach (var o in n.Output)
                    if (o.Length > 0) _producer.TryAdd(o, n);
                foreach (var i in n.Input.Where(i => i.Length > 0))
                {
                    if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                    list.Add(n);
                }
                // a Shape's output is a constant to the importer (the batch a marker): not data
                if (n.OpType != "Shape" && n.Input.Any(_data.Contains))
                    foreach (var o in n.Output) _data.Add(o);
            }
        }

        public void Run()
        {
            if (_malformed) return;
            foreach (var n in _nodes.ToArray())
            {
                if (_removed.Contains(n)) continue;
                switch (n.OpType)
                {
                    case "Erf": Gelu(n); break;
                    case "Tanh": GeluTanh(n); break;
                    case "ReduceMean":
                        LayerNorm(n);
                        if (!_removed.Contains(n)) RmsNorm(n);
                        break;
                    case "Softmax": Attention(n); break;
                    case "InstanceNormalization": GroupNorm(n); break;
                }
            }
        }

        /// <summary>The nodes in order with the replacements in place, less the constant nodes only the replaced ones read.</summary>
        public List<NodeProto> Result(HashSet<string> outputs)
        {
            var list = new List<NodeProto>();
            foreach (var n in _nodes)
            {
                if (_placed.TryGetValue(n, out var fused)) list.Add(fused);
                if (!_removed.Contains(n)) list.Add(n);
            }
            if (_placed.Count == 0) return list;
            // drop what nothing reads any more (the shape arithmetic of the replaced reshapes and slices)
            var read = new Dictionary<string, int>();
            foreach (var n in list)
                foreach (var i in n.Input.Where(i => i.Length > 0)) read[i] = read.GetValueOrDefault(i) + 1;
            var dead = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
            for (bool changed = true; changed;)
            {
                changed = false;
                for (int k = list.Count - 1; k >= 0; k--)
                {
                    var n = list[k];
                    if (dead.Contains(n) || n.Domain == Domain) continue;
                    if (n.Output.Any(o => o.Length > 0 && (read.GetValueOrDefault(o) > 0 || outputs.Contains(o)))) continue;
                    if (!n.Input.Any(i => _data.Contains(i)) || n.OpType == "Shape")
                    {
                        dead.Add(n);
                        foreach (var i in n.Input.Where(i => i.Length > 0)) read[i]--;
                        changed = true;
                    }
                }
            }
            return list.Where(n => !dead.Contains(n)).ToList();
        }

        // ------------------------------------------------------------------ matching helpers

        private NodeProto? Prod(string value) => _producer.GetValueOrDefault(value) is { } n && !_removed.Contains(n) ? n : null;

        private bool IsData(string value) => _data.Contains(value);

        private List<NodeProto> Readers(string value) => _consumers.GetValueOrDefault(value) ?? [];

        /// <summary>
        /// The one node reading <paramref name="value"/>, if it is of <paramref name="op"/>; with <paramref name="besideShapes"/>, the one
        /// besides Shape nodes (with a symbolic batch, dynamic_axes, the exporter reads intermediate values' shapes for its reshapes:
        /// arithmetic that goes with the pattern it serves).
        /// </summary>
        private NodeProto? Only(string value, string op, bool besideShapes = false) =>
            Readers(value).Where(r => !besideShapes || r.OpType != "Shape").ToList() is [var n] && n.OpType == op && !_removed.Contains(n) ? n : null;

        /// <summary>A two-input node's other input than <paramref name="value"/>.</summary>
        private static string? Other(NodeProto? n, string value) =>
            n is null || n.Input.Count != 2 ? null : n.Input[0] == value ? n.Input[1] : n.Input[1] == value ? n.Input[0] : null;

        /// <summary>A two-input node of <paramref name="op"/> with one data and one constant input: (data, constant).</summary>
        private (string Data, string Const)? DataConst(NodeProto? n, params string[] op)
        {
            if (n is null || !op.Contains(n.OpType) || n.Input.Count != 2) return null;
            bool d0 = IsData(n.Input[0]), d1 = IsData(n.Input[1]);
            return d0 && !d1 ? (n.Input[0], n.Input[1]) : d1 && !d0 ? (n.Input[1], n.Input[0]) : null;
        }

        private static bool Perm(NodeProto? n, params long[] perm) =>
            n is { OpType: "Transpose" } && n.Attribute.FirstOrDefault(a => a.Name == "perm") is { } a && a.Ints.SequenceEqual(perm);

        private void Replace(IEnumerable<NodeProto> interior, NodeProto last, NodeProto fused)
        {
            foreach (var n in interior) _removed.Add(n);
            _removed.Add(last);
            _placed[last] = fused;
        }

        /// <summary>A node of <see cref="Domain"/>, named as the file's node it was found around (<paramref name="anchor"/>); <paramref name="what"/> describes it in messages.</summary>
        private static NodeProto Fused(string op, NodeProto anchor, string what, string output, params string[] inputs)
        {
            var n = new NodeProto { OpType = op, Domain = Domain, Name = anchor.Name };
            n.Attribute.Add(new AttributeProto { Name = "what", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8(what) });
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            return n;
        }

        /// <summary>x·½·(1 + …) around <paramref name="inner"/>: the Add of 1 reading it and the two Muls (by x and by ½, either order).</summary>
        private (NodeProto Add, NodeProto M1, NodeProto M2, string One, string Half)? HalfXTimesOnePlus(string inner, string x)
        {
            var add = Only(inner, "Add");
            var one = Other(add, inner);
            if (add is null || one is null || IsData(one)) return null;
            var m1 = Only(add.Output[0], "Mul");
            var o1 = Other(m1, add.Output[0]);
            if (m1 is null || o1 is null) return null;
            var m2 = Only(m1.Output[0], "Mul");
            var o2 = Other(m2, m1.Output[0]);
            if (m2 is null || o2 is null) return null;
            if (o1 == x && !IsData(o2)) return (add, m1, m2, one, o2);
            if (o2 == x && !IsData(o1)) return (add, m1, m2, one, o1);
            return null;
        }

        // ------------------------------------------------------------------ patterns

        /// <summary>GELU: Div(x, √2) (or Mul by 1/√2), Erf, Add 1, Mul by x, Mul by ½.</summary>
        private void Gelu(NodeProto erf)
        {
            var div = Prod(erf.Input[0]);
            if (DataConst(div, "Div", "Mul") is not var (x, c) || Readers(div!.Output[0]).Count != 1) return;
            if (HalfXTimesOnePlus(erf.Output[0], x) is not var (add, m1, m2, one, half)) return;
            var fused = Fused("Gelu", erf, "the GELU expression around it", m2.Output[0], x, c, one, half);
            fused.Attribute.Add(new AttributeProto { Name = "scale_op", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8(div.OpType) });
            Replace([div, erf, add, m1], m2, fused);
        }

        /// <summary>GELU, tanh approximation: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), x³ as x·(x·x).</summary>
        private void GeluTanh(NodeProto tanh)
        {
            var scaled = Prod(tanh.Input[0]);
            if (DataConst(scaled, "Mul") is not var (inner, c1) || Readers(scaled!.Output[0]).Count != 1) return;
            var sum = Prod(inner);
            if (sum is not { OpType: "Add" } || sum.Input.Count != 2 || Readers(inner).Count != 1) return;
            foreach (var (x, cubeTerm) in new[] { (sum.Input[0], sum.Input[1]), (sum.Input[1], sum.Input[0]) })
            {
                var m = Prod(cubeTerm);
                if (DataConst(m, "Mul") is not var (cube, c2) || Readers(cubeTerm).Count != 1) continue;
                var cubeNode = Prod(cube);
                var sqName = Other(cubeNode, x);
                if (cubeNode is not { OpType: "Mul" } || sqName is null || Readers(cube).Count != 1) continue;
                var sq = Prod(sqName);
                if (sq is not { OpType: "Mul" } || sq.Input[0] != x || sq.Input[1] != x || Readers(sqName).Count != 1) continue;
                if (HalfXTimesOnePlus(tanh.Output[0], x) is not var (add, m1, m2, one, half)) return;
                var fused = Fused("Gelu", tanh, "the tanh-GELU expression around it", m2.Output[0], x, c1, one, half, c2);
                fused.Attribute.Add(new AttributeProto { Name = "approximate", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("tanh") });
                Replace([sq, cubeNode, m!, sum, scaled, tanh, add, m1], m2, fused);
                return;
            }
        }

        /// <summary>LayerNorm over the last dimension as opsets before 17 write it.</summary>
        private void LayerNorm(NodeProto mean)
        {
            static bool LastAxis(NodeProto n) => n.Attribute.FirstOrDefault(a => a.Name == "axes") is { } a && a.Ints.SequenceEqual([-1L]);
            if (!LastAxis(mean) || mean.Input.Count != 1 || !IsData(mean.Input[0])) return;
            string x = mean.Input[0];
            var sub = Only(mean.Output[0], "Sub");
            if (sub is null || sub.Input[0] != x || sub.Input[1] != mean.Output[0]) return;
            var readers = Readers(sub.Output[0]);
            var pow = readers.FirstOrDefault(n => n.OpType == "Pow");
            var div = readers.FirstOrDefault(n => n.OpType == "Div");
            if (readers.Count != 2 || pow is null || div is null || pow.Input[0] != sub.Output[0] || div.Input[0] != sub.Output[0]) return;
            var var_ = Only(pow.Output[0], "ReduceMean");
            if (var_ is null || !LastAxis(var_)) return;
            var addEps = Only(var_.Output[0], "Add");
            var eps = Other(addEps, var_.Output[0]);
            if (addEps is null || eps is null || IsData(eps)) return;
            var sqrt = Only(addEps.Output[0], "Sqrt");
            if (sqrt is null || div.Input[1] != sqrt.Output[0] || Readers(sqrt.Output[0]).Count != 1) return;
            var mul = Only(div.Output[0], "Mul");
            var weight = Other(mul, div.Output[0]);
            if (mul is null || weight is null || IsData(weight)) return;
            var addB = Only(mul.Output[0], "Add");
            var bias = Other(addB, mul.Output[0]);
            if (addB is null || bias is null || IsData(bias)) return;
            var fused = Fused("LayerNorm", mean, "the LayerNorm expression it starts", addB.Output[0], x, weight, bias, eps, pow.Input[1]);
            Replace([mean, sub, pow, var_, addEps, sqrt, div, mul], addB, fused);
        }

        /// <summary>RMS norm over the last dimension as GradFlow's exporter writes it: Mul x·x, ReduceMean (last axis), Add ε, Sqrt, Div x by it, Mul γ.</summary>
        private void RmsNorm(NodeProto mean)
        {
            if (mean.Attribute.FirstOrDefault(a => a.Name == "axes") is not { } axes || !axes.Ints.SequenceEqual([-1L]) || mean.Input.Count != 1) return;
            if (mean.Attribute.FirstOrDefault(a => a.Name == "keepdims") is { I: 0 }) return;
            var sq = Prod(mean.Input[0]);
            if (sq is not { OpType: "Mul" } || sq.Input.Count != 2 || sq.Input[0] != sq.Input[1] || !IsData(sq.Input[0]) || Readers(sq.Output[0]).Count != 1) return;
            string x = sq.Input[0];
            var addEps = Only(mean.Output[0], "Add");
            var eps = Other(addEps, mean.Output[0]);
            if (addEps is null || eps is null || IsData(eps)) return;
            var sqrt = Only(addEps.Output[0], "Sqrt");
            var div = sqrt is null ? null : Only(sqrt.Output[0], "Div");
            if (div is null || div.Input[0] != x || div.Input[1] != sqrt!.Output[0]) return;
            var mul = Only(div.Output[0], "Mul");
            var weight = Other(mul, div.Output[0]);
            if (mul is null || weight is null || IsData(weight)) return;
            var fused = Fused("RmsNorm", mean, "the RMS norm expression around it", mul.Output[0], x, weight, eps);
            Replace([sq, mean, addEps, sqrt, div], mul, fused);
        }

        /// <summary>nn.GroupNorm as PyTorch exports it: Reshape [N, G, −1], InstanceNormalization (scale 1, bias 0), Reshape back, Mul γ, Add β.</summary>
        private void GroupNorm(NodeProto inorm)
        {
            var r1 = Prod(inorm.Input[0]);
            if (DataConst(r1, "Reshape") is not var (x, groupShape) || r1!.Input[0] != x || Readers(r1.Output[0]).Count != 1 || inorm.Input.Count != 3) return;
            var r2 = Only(inorm.Output[0], "Reshape");
            if (r2 is null || r2.Input[0] != inorm.Output[0] || IsData(r2.Input[1])) return;
            var mul = Only(r2.Output[0], "Mul");
            var gamma = Other(mul, r2.Output[0]);
            if (mul is null || gamma is null || IsData(gamma)) return;
            var add = Only(mul.Output[0], "Add");
            var beta = Other(add, mul.Output[0]);
            if (add is null || beta is null || IsData(beta)) return;
            var fused = Fused("GroupNorm", inorm, "the GroupNorm expression around it", add.Output[0], x, groupShape, inorm.Input[1], inorm.Input[2], gamma, beta);
            fused.Attribute.AddRange(inorm.Attribute.Where(a => a.Name == "epsilon"));
            Replace([r1, inorm, r2, mul], add, fused);
        }

        /// <summary>
        /// nn.MultiheadAttention's self-attention around <paramref name="softmax"/> (PyTorch 1.13's
        /// <c>multi_head_attention_forward</c>, sequence first inside): x [N, T, D] → Transpose → MatMul by
        /// in_proj_weightᵀ → Add in_proj_bias → three Slices → Reshape [T, N·H, D/H] → Transpose (q, v:
        /// [1, 0, 2]; k: [1, 2, 0]) → q / √(D/H) → MatMul q·kᵀ (→ Mul 1 + mask·1) → Softmax (→ Dropout) →
        /// MatMul by v → Transpose → Reshape → Gemm (out_proj) → Reshape → Transpose [N, T, D].
        /// </summary>
        private void Attention(NodeProto softmax)
        {
            void Refuse(string why) => Refusals[softmax] = why;
            var interior = new List<NodeProto> { softmax };
            string scores = softmax.Input[0];
            var p = Prod(scores);
            string mask = "", scoreScale = "";
            if (p is { OpType: "Add" } && p.Input.Count == 2)
            {
                bool d0 = IsData(p.Input[0]), d1 = IsData(p.Input[1]);
                bool Scores(string v) => Prod(v) is { OpType: "MatMul" } || DataConst(Prod(v), "Mul") is var (raw, _) && Prod(raw) is { OpType: "MatMul" };
                if (d0 && d1)
                {
                    if (Scores(p.Input[0]) || Scores(p.Input[1]))
                        Refuse("attention with a mask computed from the input (a key-padding mask or a mask argument that is not a constant)");
                    return;
                }
                if (!d0 && !d1) return;
                interior.Add(p);
                mask = d0 ? p.Input[1] : p.Input[0];
                p = Prod(d0 ? p.Input[0] : p.Input[1]);
                if (DataConst(p, "Mul") is var (raw, s))
                {
                    interior.Add(p!);
                    scoreScale = s;
                    p = Prod(raw);
                }
            }
            if (p is not { OpType: "MatMul" } mm1) return; // not attention scores: the importer's own message

            interior.Add(mm1);
            var qScaled = Prod(mm1.Input[0]);
            if (DataConst(qScaled, "Div") is not var (q, scale))
            {
                Refuse("attention scores whose queries are not divided by a constant √(head size)");
                return;
            }
            interior.Add(qScaled!);
            // the output side: Softmax (→ Dropout) → MatMul by v → Transpose → Reshape → Gemm → Reshape → Transpose
            string probs = softmax.Output[0];
            string dropRatio = "", dropTraining = "";
            if (Only(probs, "Dropout", besideShapes: true) is { } drop)
            {
                interior.Add(drop);
                dropRatio = drop.Input.Count > 1 ? drop.Input[1] : "";
                dropTraining = drop.Input.Count > 2 ? drop.Input[2] : "";
                probs = drop.Output[0];
            }
            var mm2 = Only(probs, "MatMul", besideShapes: true);
            if (mm2 is null || mm2.Input[0] != probs)
            {
                Refuse("attention weights read by more than the MatMul with the values (need_weights=True, or not attention)");
                return;
            }
            interior.Add(mm2);
            var t5 = Only(mm2.Output[0], "Transpose", besideShapes: true);
            var r3 = t5 is null ? null : Only(t5.Output[0], "Reshape", besideShapes: true);
            var gemm = r3 is null ? null : Only(r3.Output[0], "Gemm", besideShapes: true);
            var r4 = gemm is null ? null : Only(gemm.Output[0], "Reshape", besideShapes: true);
            var t6 = r4 is null ? null : Only(r4.Output[0], "Transpose", besideShapes: true);
            if (!Perm(t5, 1, 0, 2) || r3 is null || gemm is null || gemm.Input.Count != 3 || IsData(gemm.Input[1]) || IsData(gemm.Input[2]) || r4 is null || !Perm(t6, 1, 0, 2))
            {
                Refuse("an attention output that is not nn.MultiheadAttention's (heads merged, out_proj as a Gemm, batch first)");
                return;
            }
            interior.AddRange([t5!, r3, gemm, r4]);
            // the input side: q, k and v are slices of one projection of one value
            string? Source(string value, long[] perm)
            {
                var t = Prod(value);
                if (!Perm(t, perm)) return null;
                var r = Prod(t!.Input[0]);
                if (r is not { OpType: "Reshape" }) return null;
                var sl = Prod(r.Input[0]);
                if (sl is not { OpType: "Slice" }) return null;
                interior.AddRange([t, r, sl]);
                return sl.Input[0];
            }
            string? pq = Source(q, [1, 0, 2]), pk = Source(mm1.Input[1], [1, 2, 0]), pv = Source(mm2.Input[1], [1, 0, 2]);
            if (pq is null || pk is null || pv is null || pq != pk || pk != pv)
            {
                Refuse("attention whose queries, keys and values are not slices of one packed projection of one value (cross-attention, as in nn.TransformerDecoderLayer, or separate q/k/v projections)");
                return;
            }
            var projAdd = Prod(pq);
            if (DataConst(projAdd, "Add") is not var (projMm, inBias) || Prod(projMm) is not { OpType: "MatMul" } mmIn
                || IsData(mmIn.Input[1]) || Prod(mmIn.Input[0]) is not { } tIn || !Perm(tIn, 1, 0, 2))
            {
                Refuse("an attention input projection that is not x·in_proj_weightᵀ + in_proj_bias");
                return;
            }
            interior.AddRange([projAdd!, mmIn, tIn]);
            // nothing outside reads an intermediate value (Shape nodes aside: their arithmetic is dropped with it)
            var set = new HashSet<NodeProto>(interior, ReferenceEqualityComparer.Instance) { t6! };
            foreach (var n in interior)
                foreach (var o in n.Output.Where(o => o.Length > 0))
                    if (Readers(o).FirstOrDefault(r => !set.Contains(r) && r.OpType != "Shape") is { } outside)
                    {
                        Refuse($"an intermediate value of the attention ('{o}') is also read by node '{outside.Name}'");
                        return;
                    }
            var fused = Fused("SelfAttention", softmax, "the self-attention around it", t6!.Output[0],
                tIn.Input[0], mmIn.Input[1], inBias, gemm.Input[1], gemm.Input[2], scale, mask, scoreScale, dropRatio, dropTraining);
            fused.Attribute.AddRange(softmax.Attribute.Where(a => a.Name == "axis"));
            foreach (var a in gemm.Attribute) fused.Attribute.Add(new AttributeProto(a) { Name = "gemm_" + a.Name });
            Replace(interior, t6, fused);
        }
    }
}
