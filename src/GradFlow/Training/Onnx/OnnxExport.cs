using System.Text.Json;
using System.Globalization;
using Google.Protobuf;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training.Onnx.Proto;

namespace GradFlow.Training.Onnx;

/// <summary>
/// Writes a built <see cref="Network"/> as an ONNX model (opset 17, IR version 8) for inference: input
/// <c>input</c> [N, ...the description's input shape], output <c>output</c>; BatchNorm with its running
/// statistics, dropout left out. Every block of a description has an ONNX form (docs/onnx.md): the
/// activations without an ONNX operator of their own (GELU, SiLU, Mish) as the expression that defines
/// them, group norm as InstanceNormalization of the reshaped groups, recurrent layers as ONNX's
/// LSTM/GRU/RNN with the gates in ONNX's order. The weights are the network's, under its state-dict names.
/// </summary>
public static class OnnxExport
{
    /// <summary>The ONNX operator set written.</summary>
    public const int Opset = 17;

    /// <summary>Writes <paramref name="network"/> to <paramref name="path"/> atomically (a crash leaves no partial file).</summary>
    /// <exception cref="NotSupportedException">naming the block path when a block has no ONNX form (an adaptive pool to a size that does not divide the input).</exception>
    public static void Write(Network network, string path) => Write(network, path, null, standardize: false);

    /// <summary>
    /// <see cref="Write(Network, string)"/> with what a run did to its data (<paramref name="preprocessing"/>, the run directory's
    /// <c>preprocessing.json</c>): its class names and standardisation statistics as the model's metadata (<c>gradflow.classes</c>,
    /// <c>gradflow.input_mean</c>, <c>gradflow.input_std</c>, JSON arrays); with <paramref name="standardize"/>, the standardisation
    /// also as the graph's first nodes (<c>Sub</c> of the means, <c>Div</c> by the deviations, laid over the input's leading
    /// dimensions as the groups are), so that the model takes the values as the data file holds them.
    /// </summary>
    /// <exception cref="NotSupportedException">when the statistics cannot be laid over the input (per time step of a model that reads any length).</exception>
    public static void Write(Network network, string path, Preprocessing? preprocessing, bool standardize)
    {
        var model = Build(network, preprocessing, standardize);
        AtomicFile.Write(path, s => model.WriteTo(s));
    }

    /// <summary>
    /// The trained network of a run directory: its <c>config.json</c>'s model, built, with the weights
    /// of its newest checkpoint that reads back intact.
    /// </summary>
    /// <exception cref="InvalidDataException">naming the directory when it holds no run, or no checkpoint fits the model.</exception>
    public static Network LoadRun(string runDirectory) => LoadRun(runDirectory, out _);

    /// <inheritdoc cref="LoadRun(string)"/>
    /// <param name="runDirectory">The run directory.</param>
    /// <param name="checkpoint">The path of the checkpoint whose weights the network holds.</param>
    public static Network LoadRun(string runDirectory, out string checkpoint)
    {
        ArgumentNullException.ThrowIfNull(runDirectory);
        string configPath = Path.Combine(runDirectory, "config.json");
        if (!File.Exists(configPath)) throw new InvalidDataException($"{runDirectory} holds no run (no config.json).");
        var config = TrainingConfig.FromJson(File.ReadAllText(configPath), configPath, requireData: false); // the model and weights only
        string checkpoints = Path.Combine(runDirectory, "checkpoints");
        var files = Directory.Exists(checkpoints)
            ? Directory.EnumerateFiles(checkpoints, "epoch-*.safetensors").Order(StringComparer.Ordinal).ToArray()
            : [];
        if (files.Length == 0) throw new InvalidDataException($"{runDirectory} has no checkpoint (checkpoints/epoch-*.safetensors): train it to the end of an epoch first.");
        var errors = new List<string>();
        for (int i = files.Length - 1; i >= 0; i--)
        {
            var network = NetworkBuilder.Build(config.Description(), new Generator(config.Seed));
            try
            {
                var contents = SafeTensors.Read(files[i]);
                network.LoadStateDict(contents.Tensors.Where(kv => !kv.Key.StartsWith(Checkpoint.OptimizerPrefix, StringComparison.Ordinal))
                    .ToDictionary(kv => kv.Key, kv => kv.Value));
                checkpoint = files[i];
                return network;
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException or EndOfStreamException)
            {
                errors.Add($"{Path.GetFileName(files[i])}: {e.Message}");
            }
        }
        throw new InvalidDataException($"{runDirectory}: no intact checkpoint fits the model: {string.Join(" ", errors)}");
    }

    /// <summary>The model as bytes (<see cref="Write(Network, string)"/> without the file).</summary>
    public static byte[] ToBytes(Network network) => Build(network).ToByteArray();

    internal static ModelProto Build(Network network, Preprocessing? preprocessing = null, bool standardize = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        var d = network.Description;
        var e = new Emitter(network.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value), network);
        var graph = e.Graph;
        graph.Name = "gradflow";
        // a token model (an embedding first) reads integer token indices, as PyTorch's exports do
        // a recurrent model reads sequences of any length: its time dimension is named, not the description's nominal T (a GRU
        // trained on 30 steps was declared [N, 1, 2], which a runtime that checks the declared shape refuses for [N, 30, 2])
        graph.Input.Add(ValueInfo("input", d.Input, FirstLeaf(d.Root) is EmbeddingBlock ? TensorProto.Types.DataType.Int64 : TensorProto.Types.DataType.Float,
            firstDim: AnyLength(d) ? "T" : null));
        int[] x = [.. d.Input];
        string root = d.Root.Name is { } rootName ? rootName : "";
        var standardizer = preprocessing?.Standardizer();
        string first = standardize && standardizer is not null ? e.Standardize("input", d, standardizer, AnyLength(d)) : "input";
        string y = e.Sequence(d.Root, first, ref x, root);
        graph.Node.Add(Node("Identity", [y], ["output"], "output"));
        graph.Output.Add(ValueInfo("output", x));
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "GradFlow",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        if (preprocessing?.Classes is { } classes) model.MetadataProps.Add(Metadata("gradflow.classes", JsonSerializer.Serialize(classes)));
        if (standardizer is not null)
        {
            model.MetadataProps.Add(Metadata("gradflow.input_mean", JsonSerializer.Serialize(standardizer.Mean)));
            model.MetadataProps.Add(Metadata("gradflow.input_std", JsonSerializer.Serialize(standardizer.Std)));
            model.MetadataProps.Add(Metadata("gradflow.input", standardize
                ? "the values as the data file holds them: the graph standardises them with input_mean and input_std"
                : "standardised values: (x - input_mean) / input_std per group (feature, channel, or one), as training read them"));
        }
        return model;
    }

    /// <summary>
    /// Whether the model reads sequences of any length: a recurrent block first, at the nominal length 1 of the <c>lstm|gru|rnn</c>
    /// shorthands ("any length T runs"), and no flatten that would tie a later layer to T.
    /// </summary>
    private static bool AnyLength(NetworkDescription d) =>
        FirstLeaf(d.Root) is RecurrentBlock && d.Input.Count == 2 && d.Input[0] == 1 && !Diagnostics.NetworkFacts.Flatten(d.Root).Any(b => b is FlattenBlock);

    private static Block? FirstLeaf(Block b) => b switch
    {
        SequenceBlock s => s.Blocks.Count == 0 ? null : FirstLeaf(s.Blocks[0]),
        _ => b,
    };

    /// <summary>A tensor's name, type and shape: a batch dimension N, then <paramref name="example"/>'s (its first named <paramref name="firstDim"/> when given).</summary>
    private static ValueInfoProto ValueInfo(string name, IReadOnlyList<int> example, TensorProto.Types.DataType type = TensorProto.Types.DataType.Float,
        string? firstDim = null)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "N" });
        for (int i = 0; i < example.Count; i++)
            shape.Dim.Add(i == 0 && firstDim is not null ? new TensorShapeProto.Types.Dimension { DimParam = firstDim } : new TensorShapeProto.Types.Dimension { DimValue = example[i] });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private static StringStringEntryProto Metadata(string key, string value) => new() { Key = key, Value = value };

    private static NodeProto Node(string op, IEnumerable<string> inputs, IEnumerable<string> outputs, string name, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    private static AttributeProto Int(string name, long v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v };

    private static AttributeProto Float(string name, double v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = (float)v };

    private static AttributeProto Ints(string name, params long[] v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(v);
        return a;
    }

    private static AttributeProto Strings(string name, params string[] v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Strings };
        a.Strings.AddRange(v.Select(ByteString.CopyFromUtf8));
        return a;
    }

    private sealed class Emitter(Dictionary<string, Tensor> state, Network network)
    {
        public GraphProto Graph { get; } = new();
        private int _next;
        private readonly Dictionary<string, Module> _modules = network.NamedModules().ToDictionary(m => m.Name, m => m.Module);

        /// <summary>The weight of the embedding written last (a tied linear reads out through it).</summary>
        private string? _embedding;

        private string Fresh(string path, string op) => $"{(path.Length == 0 ? "net" : path)}/{op}_{_next++}";

        private string Emit(string op, string path, string[] inputs, params AttributeProto[] attributes)
        {
            string name = Fresh(path, op);
            Graph.Node.Add(Node(op, inputs, [name], name, attributes));
            return name;
        }

        private string Weight(string name)
        {
            if (!state.TryGetValue(name, out var t)) throw new NotSupportedException($"ONNX export: the network has no tensor '{name}'.");
            return Init(name, t.ToArray(), t.Shape.ToArray());
        }

        private string Init(string name, float[] values, int[] shape)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.AddRange(shape.Select(v => (long)v));
            var bytes = new byte[values.Length * 4];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX export: big-endian machines are not supported.");
            t.RawData = ByteString.CopyFrom(bytes);
            Graph.Initializer.Add(t);
            return name;
        }

        private string Longs(string path, params long[] values)
        {
            string name = Fresh(path, "const");
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            t.Dims.Add(values.Length);
            t.Int64Data.AddRange(values);
            Graph.Initializer.Add(t);
            return name;
        }

        private string Scalar(string path, float v)
        {
            string name = Fresh(path, "const");
            return Init(name, [v], []);
        }

        /// <summary>
        /// <c>(x − mean) / std</c> of the standardiser's groups: a constant over the leading dimensions of the input whose sizes
        /// multiply to the group count ([F] per feature, [C, 1, 1] per channel, [1] for one group), broadcast over the rest; groups
        /// that are runs inside a dimension (a flat image's channels, [C·H·W]) through a reshape to [N, G, −1] and back.
        /// </summary>
        public string Standardize(string x, NetworkDescription d, Data.Standardizer s, bool anyLength)
        {
            int groups = s.Mean.Count, lead = 0;
            long product = 1;
            while (product < groups && lead < d.Input.Count) product *= d.Input[lead++];
            if (anyLength && lead > 0)
                throw new NotSupportedException($"ONNX export: the run standardised each of its {groups} values per example (time steps read flat), but the model reads " +
                    "sequences of any length; export without the standardisation and apply preprocessing.json's statistics to the inputs.");
            // groups that are runs within a dimension (a flat image's channels) are standardised as [N, G, per/G], then reshaped back
            bool grouped = product != groups && !anyLength;
            int[] shape = grouped ? [groups, 1] : lead == 0 ? [1] : [.. d.Input.Select((n, i) => i < lead ? n : 1)];
            string mean = Init("preprocessing.mean", [.. s.Mean.Select(v => (float)v)], shape);
            string std = Init("preprocessing.std", [.. s.Std.Select(v => (float)v)], shape);
            if (grouped) x = Emit("Reshape", "preprocessing", [x, Longs("preprocessing", 0, groups, -1)]);
            string standardised = Emit("Div", "preprocessing", [Emit("Sub", "preprocessing", [x, mean]), std]);
            return grouped ? Emit("Reshape", "preprocessing", [standardised, Longs("preprocessing", [0, .. d.Input.Select(n => (long)n)])]) : standardised;
        }

        public string Sequence(SequenceBlock s, string x, ref int[] shape, string prefix)
        {
            for (int i = 0; i < s.Blocks.Count; i++)
                x = Block(s.Blocks[i], x, ref shape, ShapeInference.Join(prefix, ShapeInference.ChildName(s.Blocks[i], i)));
            return x;
        }

        private string Block(Block b, string x, ref int[] shape, string path)
        {
            var input = shape;
            shape = b is SequenceBlock ? shape : ShapeInference.Block(b, shape, path, null);
            switch (b)
            {
                case LinearBlock { Tied: true }:
                {
                    // logits = x·Eᵀ: a MatMul with the transposed embedding table (the one initializer, shared)
                    if (_embedding is null) throw new NotSupportedException($"ONNX export: {path}: a tied linear without an embedding before it.");
                    string et = Emit("Transpose", path, [_embedding], Ints("perm", 1, 0));
                    return Emit("MatMul", path, [x, et]);
                }
                case LinearBlock l:
                {
                    if (input.Length == 1)
                    {
                        var inputs = new List<string> { x, Weight(path + ".weight") };
                        if (l.Bias) inputs.Add(Weight(path + ".bias"));
                        return Emit("Gemm", path, [.. inputs], Int("transB", 1));
                    }
                    var w = state[path + ".weight"];
                    var wt = w.Transpose(0, 1);
                    string y = Emit("MatMul", path, [x, Init(path + ".weight.T", wt.ToArray(), wt.Shape.ToArray())]);
                    return l.Bias ? Emit("Add", path, [y, Weight(path + ".bias")]) : y;
                }
                case ConvBlock c:
                {
                    var inputs = new List<string> { x, Weight(path + ".weight") };
                    if (c.Bias) inputs.Add(Weight(path + ".bias"));
                    return Emit("Conv", path, [.. inputs], Ints("kernel_shape", c.Kernel.H, c.Kernel.W), Ints("strides", c.Stride.H, c.Stride.W),
                        Ints("pads", c.Padding.H, c.Padding.W, c.Padding.H, c.Padding.W), Ints("dilations", c.Dilation.H, c.Dilation.W), Int("group", c.Groups));
                }
                case PoolBlock p:
                {
                    var stride = p.Stride ?? p.Kernel;
                    var attrs = new List<AttributeProto>
                    {
                        Ints("kernel_shape", p.Kernel.H, p.Kernel.W), Ints("strides", stride.H, stride.W),
                        Ints("pads", p.Padding.H, p.Padding.W, p.Padding.H, p.Padding.W),
                    };
                    if (p.Kind == PoolKind.Avg) attrs.Add(Int("count_include_pad", 1));
                    return Emit(p.Kind == PoolKind.Max ? "MaxPool" : "AveragePool", path, [x], [.. attrs]);
                }
                case AdaptiveAvgPoolBlock a:
                {
                    if (shape[1] == 1 && shape[2] == 1) return Emit("GlobalAveragePool", path, [x]);
                    if (input[1] % shape[1] != 0 || input[2] % shape[2] != 0)
                        throw new NotSupportedException($"ONNX export: {path}: adaptive average pooling of {ShapeInference.Format(input)} to {a.Size.H}x{a.Size.W} has windows of different sizes, which no ONNX operator computes; pool to a size that divides the input.");
                    long kh = input[1] / shape[1], kw = input[2] / shape[2];
                    return Emit("AveragePool", path, [x], Ints("kernel_shape", kh, kw), Ints("strides", kh, kw));
                }
                case NormBlock n: return Norm(n, x, input, path);
                case ActBlock act: return Act(act.Kind, x, path);
                case DropoutBlock: return x; // inference: the identity
                case FlattenBlock: return Emit("Flatten", path, [x], Int("axis", 1));
                case SequenceBlock s:
                {
                    var y = Sequence(s, x, ref shape, path);
                    return y;
                }
                case ResidualBlock r: return Residual(r, x, input, shape, path);
                case RecurrentBlock rec: return Recurrent(rec, x, input, path);
                case EmbeddingBlock:
                    if (x != "input")
                        throw new NotSupportedException($"ONNX export: {path}: an embedding that does not read the model's input; ONNX's Gather needs integer indices, which only the input (int64 token indices) carries.");
                    _embedding = Weight(path + ".weight");
                    return Emit("Gather", path, [_embedding, x], Int("axis", 0));
                case PositionBlock p:
                {
                    // the table's first T rows added (learnt: the weight; sinusoidal: the constant table)
                    int t = input[0], dim = input[1];
                    string table = p.Kind == PositionalKind.Learned
                        ? Init(path + ".weight", state[path + ".weight"].Narrow(0, 0, t).ToArray(), [t, dim])
                        : Init(path + ".sinusoids", PositionalEncoding.Sinusoids(t, dim).ToArray(), [t, dim]);
                    return Emit("Add", path, [x, table]);
                }
                case TransformerLayerBlock tl: return TransformerLayer(tl, x, input, path);
                default: throw new NotSupportedException($"ONNX export: {path}: no ONNX form for {b.GetType().Name}.");
            }
        }

        private string Norm(NormBlock n, string x, int[] input, string path)
        {
            var module = _modules[path];
            switch (n.Kind)
            {
                case NormalizationKind.Batch:
                    return Emit("BatchNormalization", path,
                        [x, Weight(path + ".weight"), Weight(path + ".bias"), Weight(path + ".running_mean"), Weight(path + ".running_var")],
                        Float("epsilon", ((BatchNormBase)module).Eps));
                case NormalizationKind.Layer:
                    return Emit("LayerNormalization", path, [x, Weight(path + ".weight"), Weight(path + ".bias")], Int("axis", n.Last ? -1 : 1), Float("epsilon", ((LayerNorm)module).Eps));
                case NormalizationKind.Rms: return RmsNorm((RmsNorm)module, x, path);
                default:
                {
                    // (x reshaped to [N, G, rest]) normalised per group by InstanceNormalization, reshaped back, then γ and β per channel
                    var g = (GroupNorm)module;
                    int groups = n.Groups;
                    string grouped = Emit("Reshape", path, [x, Longs(path, 0, groups, -1)]);
                    string normed = Emit("InstanceNormalization", path,
                        [grouped, Init(path + ".ones", Enumerable.Repeat(1f, groups).ToArray(), [groups]), Init(path + ".zeros", new float[groups], [groups])],
                        Float("epsilon", g.Eps));
                    string back = Emit("Reshape", path, [normed, Longs(path, [0, .. input.Select(v => (long)v)])]);
                    int[] perChannel = [input[0], .. Enumerable.Repeat(1, input.Length - 1)];
                    var gamma = state[path + ".weight"];
                    var beta = state[path + ".bias"];
                    string scaled = Emit("Mul", path, [back, Init(path + ".weight", gamma.ToArray(), perChannel)]);
                    return Emit("Add", path, [scaled, Init(path + ".bias", beta.ToArray(), perChannel)]);
                }
            }
        }

        /// <summary>x / √(mean(x²) over the last dimension + ε) · γ (opset 17 has no RMSNormalization).</summary>
        private string RmsNorm(RmsNorm m, string x, string path)
        {
            string meanSquare = Emit("ReduceMean", path, [Emit("Mul", path, [x, x])], Ints("axes", -1), Int("keepdims", 1));
            string rms = Emit("Sqrt", path, [Emit("Add", path, [meanSquare, Scalar(path, (float)m.Eps)])]);
            return Emit("Mul", path, [Emit("Div", path, [x, rms]), Weight(path + ".weight")]);
        }

        /// <summary>
        /// A transformer layer as <c>nn.TransformerEncoderLayer</c> exports it (what <see cref="OnnxPatterns"/>
        /// reads back): Pre-LN <c>x + attn(norm1(x))</c> then <c>+ ff(norm2(·))</c>, or Post-LN
        /// <c>norm1(x + attn(x))</c> then <c>norm2(· + ff(·))</c>; dropout left out (inference).
        /// </summary>
        private string TransformerLayer(TransformerLayerBlock t, string x, int[] input, string path)
        {
            string? refused = t.Rotary ? "rotary positions (rope)" : t.QkNorm ? "QK normalisation (qk-norm)"
                : t.FeedForward == FeedForwardKind.SwiGlu ? "a SwiGLU feed-forward" : null;
            if (refused is not null)
                throw new NotSupportedException($"ONNX export: {path}: a transformer layer with {refused} has no ONNX form the exporter writes; supported: LayerNorm or RMSNorm, Pre- or Post-LN, a ReLU or GELU feed-forward, causal or not, learnt or sinusoidal positions added before the layers.");
            var layer = (TransformerEncoderLayer)_modules[path];
            string Norm(string v, string name) => t.RmsNorm
                ? RmsNorm((RmsNorm)_modules[path + "." + name], v, path + "." + name)
                : Emit("LayerNormalization", path + "." + name, [v, Weight(path + "." + name + ".weight"), Weight(path + "." + name + ".bias")],
                    Int("axis", -1), Float("epsilon", ((LayerNorm)_modules[path + "." + name]).Eps));
            string FeedForward(string v)
            {
                int[] s = input;
                string h = Block(new LinearBlock(t.Ff), v, ref s, path + ".linear1");
                h = Act(t.FeedForward == FeedForwardKind.Gelu ? Activation.Gelu : Activation.Relu, h, path + ".activation");
                return Block(new LinearBlock(input[1]), h, ref s, path + ".linear2");
            }
            string attn = path + ".self_attn";
            if (layer.NormFirst)
            {
                string x1 = Emit("Add", path, [x, Attention(Norm(x, "norm1"), t.Heads, t.Causal, input, attn)]);
                return Emit("Add", path, [x1, FeedForward(Norm(x1, "norm2"))]);
            }
            string y1 = Norm(Emit("Add", path, [x, Attention(x, t.Heads, t.Causal, input, attn)]), "norm1");
            return Norm(Emit("Add", path, [y1, FeedForward(y1)]), "norm2");
        }

        /// <summary>
        /// Self-attention of [N, T, D] in PyTorch 1.13's decomposition of <c>nn.MultiheadAttention</c>
        /// (sequence first inside): the packed projection, three Slices, Reshape [T, N·H, D/H], Transpose,
        /// q / √(D/H), q·kᵀ (+ the causal mask, 0 on and below the diagonal, −∞ above), Softmax, ·v,
        /// heads merged, out_proj as a Gemm, back to [N, T, D].
        /// </summary>
        private string Attention(string x, int heads, bool causal, int[] input, string path)
        {
            int t = input[0], d = input[1], dh = d / heads;
            string seq = Emit("Transpose", path, [x], Ints("perm", 1, 0, 2));
            var w = state[path + ".in_proj_weight"].Transpose(0, 1);
            string proj = Emit("Add", path, [Emit("MatMul", path, [seq, Init(path + ".in_proj_weight.T", w.ToArray(), w.Shape.ToArray())]), Weight(path + ".in_proj_bias")]);
            string Head(int k, long[] perm)
            {
                string slice = Emit("Slice", path, [proj, Longs(path, k * d), Longs(path, (k + 1) * d), Longs(path, 2)]);
                return Emit("Transpose", path, [Emit("Reshape", path, [slice, Longs(path, t, -1, dh)])], Ints("perm", perm));
            }
            string q = Head(0, [1, 0, 2]), kT = Head(1, [1, 2, 0]), v = Head(2, [1, 0, 2]);
            string scores = Emit("MatMul", path, [Emit("Div", path, [q, Scalar(path, MathF.Sqrt(dh))]), kT]);
            if (causal)
            {
                var mask = new float[t * t];
                for (int i = 0; i < t; i++)
                    for (int j = i + 1; j < t; j++) mask[i * t + j] = float.NegativeInfinity;
                scores = Emit("Add", path, [scores, Init(path + ".causal_mask", mask, [t, t])]);
            }
            string o = Emit("MatMul", path, [Emit("Softmax", path, [scores], Int("axis", -1)), v]);
            o = Emit("Reshape", path, [Emit("Transpose", path, [o], Ints("perm", 1, 0, 2)), Longs(path, -1, d)]);
            o = Emit("Gemm", path + ".out_proj", [o, Weight(path + ".out_proj.weight"), Weight(path + ".out_proj.bias")], Int("transB", 1));
            return Emit("Transpose", path, [Emit("Reshape", path, [o, Longs(path, t, -1, d)])], Ints("perm", 1, 0, 2));
        }

        private string Act(Activation kind, string x, string path)
        {
            switch (kind)
            {
                case Activation.Identity: return x;
                case Activation.Sigmoid: return Emit("Sigmoid", path, [x]);
                case Activation.Tanh: return Emit("Tanh", path, [x]);
                case Activation.Relu: return Emit("Relu", path, [x]);
                case Activation.LeakyRelu: return Emit("LeakyRelu", path, [x], Float("alpha", ((LeakyRelu)_modules[path]).NegativeSlope));
                case Activation.PRelu: return Emit("PRelu", path, [x, Weight(path + ".weight")]);
                case Activation.Elu: return Emit("Elu", path, [x], Float("alpha", ((Elu)_modules[path]).Alpha));
                case Activation.Selu: return Emit("Selu", path, [x]);
                case Activation.Softplus: return Emit("Softplus", path, [x]);
                case Activation.HardSigmoid: return Emit("HardSigmoid", path, [x], Float("alpha", 1.0 / 6), Float("beta", 0.5));
                case Activation.HardTanh: return Emit("Clip", path, [x, Scalar(path, -1), Scalar(path, 1)]);
                case Activation.Silu: return Emit("Mul", path, [x, Emit("Sigmoid", path, [x])]);
                case Activation.Mish: return Emit("Mul", path, [x, Emit("Tanh", path, [Emit("Softplus", path, [x])])]);
                case Activation.Gelu:
                {
                    // x · ½ (1 + erf(x / √2))
                    string erf = Emit("Erf", path, [Emit("Div", path, [x, Scalar(path, MathF.Sqrt(2))])]);
                    string half = Emit("Mul", path, [Emit("Add", path, [erf, Scalar(path, 1)]), Scalar(path, 0.5f)]);
                    return Emit("Mul", path, [x, half]);
                }
                case Activation.GeluTanh:
                {
                    // x · ½ (1 + tanh(√(2/π) (x + 0.044715 x³)))
                    string cube = Emit("Mul", path, [Emit("Mul", path, [x, x]), x]);
                    string inner = Emit("Add", path, [x, Emit("Mul", path, [cube, Scalar(path, 0.044715f)])]);
                    string t = Emit("Tanh", path, [Emit("Mul", path, [inner, Scalar(path, (float)Math.Sqrt(2 / Math.PI))])]);
                    return Emit("Mul", path, [x, Emit("Mul", path, [Emit("Add", path, [t, Scalar(path, 1)]), Scalar(path, 0.5f)])]);
                }
                default: throw new NotSupportedException($"ONNX export: {path}: no ONNX form for activation {kind}.");
            }
        }

        private string Residual(ResidualBlock r, string x, int[] input, int[] output, string path)
        {
            int[] f = input;
            string branch = r.Branch.Name is { } bn
                ? Sequence(r.Branch, x, ref f, ShapeInference.Join(path, bn))
                : Sequence(r.Branch, x, ref f, path);
            string shortcut = x;
            string sc = path + ".shortcut";
            if (!input.SequenceEqual(output))
            {
                if (input.Length == 1) shortcut = Emit("Gemm", sc, [x, Weight(sc + ".weight")], Int("transB", 1));
                else
                {
                    var stride = ShapeInference.SubsampleStride(input, output)!.Value;
                    if (r.Shortcut == ShortcutKind.ZeroPad)
                    {
                        string sub = Emit("Slice", sc, [x, Longs(sc, 0, 0), Longs(sc, long.MaxValue, long.MaxValue), Longs(sc, 2, 3), Longs(sc, stride.H, stride.W)]);
                        int before = (output[0] - input[0]) / 2, after = output[0] - input[0] - before;
                        shortcut = Emit("Pad", sc, [sub, Longs(sc, 0, before, 0, 0, 0, after, 0, 0)]);
                    }
                    else
                    {
                        string conv = Emit("Conv", sc, [x, Weight(sc + ".0.weight")], Ints("kernel_shape", 1, 1), Ints("strides", stride.H, stride.W));
                        shortcut = Emit("BatchNormalization", sc, [conv, Weight(sc + ".1.weight"), Weight(sc + ".1.bias"), Weight(sc + ".1.running_mean"), Weight(sc + ".1.running_var")],
                            Float("epsilon", ((BatchNormBase)_modules[sc + ".1"]).Eps));
                    }
                }
            }
            if (r.Start == BranchStart.Zero) branch = Emit("Mul", path, [branch, Weight(path + ".alpha")]);
            string sum = Emit("Add", path, [shortcut, branch]);
            return r.Post is { } post ? Act(post, sum, path + ".act") : sum;
        }

        private string Recurrent(RecurrentBlock r, string x, int[] input, string path)
        {
            string op = r.Cell switch { RecurrentCellKind.Lstm => "LSTM", RecurrentCellKind.Gru => "GRU", _ => "RNN" };
            int gates = r.Cell switch { RecurrentCellKind.Lstm => 4, RecurrentCellKind.Gru => 3, _ => 1 };
            // PyTorch's gate order → ONNX's: LSTM ifgo → iofc, GRU rzn → zrh
            int[] order = r.Cell switch { RecurrentCellKind.Lstm => [0, 3, 1, 2], RecurrentCellKind.Gru => [1, 0, 2], _ => [0] };
            int h = r.Hidden;
            float[] Gates(Tensor t)
            {
                var v = t.ToArray();
                int per = v.Length / gates;
                var o = new float[v.Length];
                for (int g = 0; g < gates; g++) Array.Copy(v, order[g] * per, o, g * per, per);
                return o;
            }
            string seq = Emit("Transpose", path, [x], Ints("perm", 1, 0, 2));
            int features = input[1];
            for (int l = 0; l < r.Layers; l++)
            {
                string s = l.ToString(CultureInfo.InvariantCulture);
                string w = Init($"{path}.W_l{s}", Gates(state[$"{path}.weight_ih_l{s}"]), [1, gates * h, features]);
                string rr = Init($"{path}.R_l{s}", Gates(state[$"{path}.weight_hh_l{s}"]), [1, gates * h, h]);
                string b = Init($"{path}.B_l{s}", [.. Gates(state[$"{path}.bias_ih_l{s}"]), .. Gates(state[$"{path}.bias_hh_l{s}"])], [1, 2 * gates * h]);
                var attrs = new List<AttributeProto> { Int("hidden_size", h) };
                if (r.Cell == RecurrentCellKind.Gru) attrs.Add(Int("linear_before_reset", 1));
                if (r.Cell == RecurrentCellKind.RnnRelu) attrs.Add(Strings("activations", "Relu"));
                string y = Emit(op, path, [seq, w, rr, b], [.. attrs]);
                seq = Emit("Squeeze", path, [y, Longs(path, 1)]);
                features = h;
            }
            if (r.Output == RecurrentOutputKind.Last)
            {
                string index = Fresh(path, "const");
                var t = new TensorProto { Name = index, DataType = (int)TensorProto.Types.DataType.Int64 };
                t.Int64Data.Add(-1);
                Graph.Initializer.Add(t);
                return Emit("Gather", path, [seq, index], Int("axis", 0));
            }
            return Emit("Transpose", path, [seq], Ints("perm", 1, 0, 2));
        }
    }
}
