using System.Globalization;
using Google.Protobuf;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training.Onnx.Proto;

namespace GradFlow.Training.Onnx;

/// <summary>An imported ONNX model: its network description and the weights of the built network, by state-dict name.</summary>
/// <param name="Description">The network description (<see cref="NetworkText.Format"/> prints it).</param>
/// <param name="Weights">Every parameter and running statistic of <see cref="NetworkBuilder.Build"/>'s network, by its state-dict name.</param>
public sealed record OnnxModel(NetworkDescription Description, IReadOnlyDictionary<string, Tensor> Weights)
{
    /// <summary>Builds the network and loads the weights into it.</summary>
    public Network Build(Generator generator)
    {
        var net = NetworkBuilder.Build(Description, generator);
        OnnxImport.Load(net, Weights, "the ONNX model");
        return net;
    }
}

/// <summary>
/// Reads an ONNX model (as <c>torch.onnx.export</c> writes it, in training or evaluation mode) into a
/// <see cref="NetworkDescription"/> with its weights. The graph is walked once in its (topological) node
/// order: subgraphs of constants (the exporter's slicing and concatenation of recurrent weights, shape
/// arithmetic) are evaluated, and every node on the path from the input to the output becomes a block.
/// Supported operators and how they map: docs/onnx.md. Messages are read with the protobuf types
/// compiled from ONNX's own onnx.proto.
/// </summary>
public static partial class OnnxImport
{
    /// <summary>Largest file read (2 GiB, protobuf's own limit for one message).</summary>
    private const long MaxBytes = int.MaxValue;

    /// <summary>The ONNX operators the importer maps to blocks, or evaluates on constants (docs/onnx.md).</summary>
    public static IReadOnlyList<string> SupportedOperators { get; } =
    [
        "Gemm", "MatMul", "Add", "Conv", "BatchNormalization", "LayerNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
        "Flatten", "Reshape", "Dropout", "Identity", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu", "Softplus",
        "LSTM", "GRU", "RNN", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Slice", "Concat", "Shape", "Expand", "Constant",
        "ConstantOfShape", "Cast", "Gelu", "Erf", "Mul", "Div", "Sub", "Pow", "Sqrt", "ReduceMean", "Softmax", "InstanceNormalization",
    ];

    /// <summary>Whether a model text is the path of an ONNX file: one line ending in <c>.onnx</c>.</summary>
    public static bool IsOnnxPath(string model) =>
        model is not null && model.Trim() is var t && t.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase) && !t.Contains('\n') && !t.StartsWith('{');

    private static readonly Lock CacheLock = new();
    private static (string Path, DateTime Written, long Length, OnnxModel Model)? _cache;

    /// <summary>
    /// <see cref="Read"/>, remembering the last file read (by full path, write time and length): a
    /// configuration asks for its description many times.
    /// </summary>
    public static OnnxModel ReadCached(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FormatException($"ONNX model {path} does not exist.");
        lock (CacheLock)
        {
            if (_cache is { } c && c.Path == info.FullName && c.Written == info.LastWriteTimeUtc && c.Length == info.Length) return c.Model;
        }
        var model = Read(path);
        lock (CacheLock) _cache = (info.FullName, info.LastWriteTimeUtc, info.Length, model);
        return model;
    }

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="FormatException">naming the file and what is wrong: not an ONNX model, a node (name and op type) that has no block, a tensor that does not fit.</exception>
    public static OnnxModel Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"ONNX model {path} does not exist.", path);
        if (info.Length > MaxBytes) throw new FormatException($"{path}: {info.Length} bytes, more than the 2 GiB an ONNX file can hold.");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a model from its bytes; <paramref name="source"/> names it in messages.</summary>
    /// <exception cref="FormatException">as <see cref="Read"/>.</exception>
    public static OnnxModel Parse(byte[] bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new FormatException($"{source}: not a valid ONNX model ({e.Message}).", e);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new FormatException($"{source}: not an ONNX model (no graph, or a graph without nodes).");
        try
        {
            return new Importer(model.Graph, source, bytes.LongLength + (1 << 16)).Run();
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>Loads <paramref name="weights"/> into <paramref name="network"/>: every parameter must be given with its shape; <c>num_batches_tracked</c> may be missing.</summary>
    /// <exception cref="ArgumentException">naming the missing, unexpected or misshapen tensor.</exception>
    public static void Load(Module network, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        var state = new Dictionary<string, Tensor>(weights);
        foreach (var (name, t) in network.StateDict())
            if (!state.ContainsKey(name) && name.EndsWith("num_batches_tracked", StringComparison.Ordinal)) state[name] = t;
        try
        {
            network.LoadStateDict(state, strict: true);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{source} does not fit its description: {e.Message}", e);
        }
    }

    // ------------------------------------------------------------------ values

    /// <summary>The batch dimension inside a constant shape (Shape of a data value).</summary>
    private const long BatchDim = -(1L << 40);

    /// <summary>A constant: shape and values (integers held exactly in double up to 2^53).</summary>
    private sealed record Const(long[] Shape, double[] Values, bool IsInt)
    {
        public long Count => Values.Length;

        public long[] Longs() => Values.Select(v => (long)v).ToArray();
    }

    /// <summary>
    /// A value on the data path: the block that made it (null for the input and for layout changes) after
    /// its parent, and its full shape with the batch dimension as -1.
    /// </summary>
    private sealed class Data(Data? parent, Block? block, long[] shape)
    {
        public Data? Parent { get; } = parent;
        public Block? Block { get; set; } = block;
        public long[] Shape { get; } = shape;

        /// <summary>A recurrent node's raw output [T, directions, N, H] (only Squeeze of axis 1 may follow).</summary>
        public bool RecurrentRaw { get; init; }

        /// <summary>A recurrent node's final hidden state Y_h [directions, N, H] (only Squeeze of axis 0 may follow).</summary>
        public bool LastState { get; init; }

        /// <summary>The zero padding [top, left] (the same at the bottom and right) of a constant Pad that only an AveragePool may read (PyTorch writes one before every nn.AvgPool2d).</summary>
        public long[]? PendingPad { get; init; }

        /// <summary>The final states of a stack's layers, first to last, concatenated (PyTorch's h_n of a multi-layer LSTM or GRU; only Gather of the last may follow).</summary>
        public Data[]? States { get; init; }

        public int BatchAxis => Array.IndexOf(Shape, -1L);

        /// <summary>The shape of one example: the batch axis removed (a time-major [T, N, I] is [T, I]).</summary>
        public int[] Example => Shape.Where(d => d != -1).Select(d => (int)d).ToArray();

        /// <summary>The nearest node that made a block (itself, or an ancestor through layout changes).</summary>
        public Data? BlockNode
        {
            get
            {
                for (var d = this; d is not null; d = d.Parent)
                    if (d.Block is not null) return d;
                return null;
            }
        }
    }

    /// <param name="graph">The model's graph.</param>
    /// <param name="source">Names the file in messages.</param>
    /// <param name="budget">The most values one folded constant may hold (the file's size plus 64 Ki: no file makes the importer allocate far beyond its size).</param>
    private sealed partial class Importer(GraphProto graph, string source, long budget)
    {
        private readonly Dictionary<string, Const> _consts = [];
        private readonly Dictionary<string, Data> _data = [];
        private readonly Dictionary<string, int> _uses = [];
        private readonly Dictionary<Block, Dictionary<string, Tensor>> _weights = new(ReferenceEqualityComparer.Instance);
        private const string AttentionForm = "the self-attention of nn.TransformerEncoderLayer (batch_first=True), unmasked or with a constant causal mask";
        private Data? _input;
        private string _inputName = "";
        private bool _tokens;

        /// <summary>The table of the embedding read last: a MatMul by its transpose is a tied read-out.</summary>
        private Const? _embeddingWeight;
        private Dictionary<NodeProto, string> _refusals = [];

        public OnnxModel Run()
        {
            foreach (var init in graph.Initializer) _consts[init.Name] = Tensor(init, $"initializer '{init.Name}'");
            var inputs = graph.Input.Where(i => !_consts.ContainsKey(i.Name)).ToArray();
            if (inputs.Length != 1)
                throw new FormatException($"{source}: the graph has {inputs.Length} inputs ({string.Join(", ", inputs.Select(i => i.Name))}); GradFlow imports networks of one input.");
            if (graph.Output.Count != 1)
                throw new FormatException($"{source}: the graph has {graph.Output.Count} outputs ({string.Join(", ", graph.Output.Select(o => o.Name))}); GradFlow imports networks of one output (the logits or predictions).");
            _inputName = inputs[0].Name;
            _input = new Data(null, null, InputShape(inputs[0]));
            _data[_inputName] = _input;
            // who reads each value (Shape nodes only read its size, so they do not count)
            // the expressions of GELU, LayerNorm and attention become one node each (OnnxPatterns)
            var rewritten = OnnxPatterns.Rewrite(graph.Node, _inputName, graph.Output.Select(o => o.Name));
            _refusals = rewritten.Refusals;
            // attention in a form GradFlow has no block for: said before the walk stumbles on its reshapes
            if (graph.Node.FirstOrDefault(_refusals.ContainsKey) is { } refused)
                throw new FormatException($"{source}: " + Unsupported(refused, _refusals[refused], AttentionForm).Message);
            foreach (var n in rewritten.Nodes.Where(n => n.OpType != "Shape"))
                foreach (var i in n.Input)
                    if (i.Length > 0) _uses[i] = _uses.GetValueOrDefault(i) + 1;
            try
            {
                foreach (var node in rewritten.Nodes) Node(node);
            }
            catch (Exception e) when (_anyLengthAxis is not null && e is ArgumentException or FormatException)
            {
                // a symbolic time axis traced at a placeholder length that a layer cannot take (a linear over every step)
                throw new FormatException($"{_anyLengthAxis} (The network does not run at every length: a layer after the recurrent one depends on T. At T = {PlaceholderSteps}: {e.Message})", e);
            }

            string outName = graph.Output[0].Name;
            if (!_data.TryGetValue(outName, out var output))
                throw new FormatException($"{source}: the output '{outName}' does not depend on the input '{_inputName}'.");
            if (output.BatchAxis != 0 || output.RecurrentRaw)
                throw new FormatException($"{source}: the output '{outName}' has shape {Fmt(output.Shape)} (batch as -1); GradFlow's networks end with the batch first (transpose it back).");
            var blocks = new List<Block>();
            for (var d = output; d is not null && d != _input; d = d.Parent)
                if (d.Block is not null) blocks.Add(d.Block);
            blocks.Reverse();
            blocks = TransformerLayers(blocks);
            CheckRmsEpsilon(blocks);
            if (blocks.Count == 0) throw new FormatException($"{source}: the graph has no layer between its input and its output.");
            int[] inputExample = _input.Example;
            var description = new NetworkDescription(inputExample, new SequenceBlock(blocks));
            if (_anyLengthAxis is not null)
            {
                // a symbolic time axis: the network must run at every length as at the traced one (a recurrent network read at its
                // end); it is then described as the recurrent shorthands are, at the nominal length 1 ("any length T runs")
                int features = inputExample[1];
                if (!new[] { 1, 2, 3, 13 }.All(t => description.FlatSequenceSteps(t * features) == t))
                    throw new FormatException(_anyLengthAxis + " (The network does not run at every length: a layer after the recurrent one depends on T.)");
                description = description with { Input = [1, features] };
            }
            var model = new OnnxModel(description, StateDict(description));
            model.Build(new Generator(0)); // every weight present with its shape, or an ArgumentException naming it
            return model;
        }

        private Dictionary<string, Tensor> StateDict(NetworkDescription d)
        {
            var state = new Dictionary<string, Tensor>();
            foreach (var s in d.Shapes())
            {
                if (s.Block is ResidualBlock && !s.IsShortcut) continue;
                if (!_weights.TryGetValue(s.Block, out var w)) continue;
                foreach (var (local, t) in w)
                {
                    bool isShortcut = local.StartsWith("shortcut.", StringComparison.Ordinal) || local == "shortcut";
                    if (s.Block is ResidualBlock && !isShortcut) continue;
                    string name = s.Block is ResidualBlock ? s.Path + local["shortcut".Length..] : ShapeInference.Join(s.Path, local);
                    state[name] = t;
                }
            }
            return state;
        }

        private long[] InputShape(ValueInfoProto input)
        {
            var shape = input.Type?.TensorType?.Shape;
            if (shape is null || shape.Dim.Count < 2)
                throw new FormatException($"{source}: the input '{input.Name}' has no shape of at least two dimensions (batch first).");
            int type = input.Type!.TensorType.ElemType;
            _tokens = type is (int)TensorProto.Types.DataType.Int64 or (int)TensorProto.Types.DataType.Int32;
            if (type != (int)TensorProto.Types.DataType.Float && !_tokens)
                throw new FormatException($"{source}: the input '{input.Name}' is of ONNX type {type} ({(Enum.IsDefined((TensorProto.Types.DataType)type) ? ((TensorProto.Types.DataType)type).ToString().ToLowerInvariant() : "unknown")}); GradFlow reads float inputs, or integer token indices read by an nn.Embedding.");
            var dims = new long[shape.Dim.Count];
            dims[0] = -1;
            for (int i = 1; i < dims.Length; i++)
            {
                var dim = shape.Dim[i];
                bool fixedSize = dim.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && dim.DimValue >= 1 && dim.DimValue <= int.MaxValue;
                if (!fixedSize && i == 1 && dims.Length == 3 && !_tokens)
                {
                    // the time axis of a float sequence [N, T, I] (torch.onnx.export's dynamic_axes {1: 'T'}, and GradFlow's own export of
                    // a recurrent model): traced at a placeholder length, kept only if the network runs at any length (Run)
                    _anyLengthAxis = FixedSizeError(input, i, dim);
                    dims[i] = PlaceholderSteps;
                    continue;
                }
                if (!fixedSize) throw new FormatException(FixedSizeError(input, i, dim));
                dims[i] = dim.DimValue;
            }
            return dims;
        }

        private string FixedSizeError(ValueInfoProto input, int i, TensorShapeProto.Types.Dimension dim) =>
            $"{source}: the input '{input.Name}' has dimension {i} = '{(dim.HasDimParam ? dim.DimParam : dim.DimValue.ToString(CultureInfo.InvariantCulture))}'; every dimension but the batch must be a fixed size (export without dynamic_axes on them).";

        /// <summary>The length a symbolic time axis is traced at (any length would do for a network that runs at any length).</summary>
        private const int PlaceholderSteps = 7;

        /// <summary>The error for a symbolic time axis, kept until the network is known to run at any length; null when the input has none.</summary>
        private string? _anyLengthAxis;

        // ------------------------------------------------------------------ nodes

        private void Node(NodeProto node)
        {
            if (node.Domain is { Length: > 0 } domain && domain != "ai.onnx" && domain != OnnxPatterns.Domain)
                throw Unsupported(node, $"operators of domain '{domain}' are not ONNX standard operators");
            if (node.Input.FirstOrDefault(i => i.Length > 0 && !_consts.ContainsKey(i) && !_data.ContainsKey(i)) is { } unknown)
                throw Bad(node, $"input '{unknown}' is not produced by an earlier node or initializer");
            if (node.Output.Count == 0 || node.Output[0].Length == 0) throw Bad(node, "no output");
            bool anyData = node.Input.Any(i => i.Length > 0 && _data.ContainsKey(i));
            if (!anyData)
            {
                Fold(node);
                return;
            }
            if (_tokens && node.Input.Contains(_inputName) && !(node.OpType == "Gather" && node.Input.Count == 2 && node.Input[1] == _inputName))
                throw Unsupported(node, $"{node.OpType} of the integer input '{_inputName}'", "an nn.Embedding (Gather of its weight) reading the token indices");
            if (node.OpType == "Gather" && node.Input.Count == 2 && _consts.ContainsKey(node.Input[0]))
            {
                Embedding(node, _data[node.Input[1]]);
                return;
            }
            if (node.Domain == OnnxPatterns.Domain)
            {
                Fused(node, DataIn(node, 0));
                return;
            }
            var x = DataIn(node, 0);
            if (node.OpType == "Concat" && node.Input.All(i => i.Length == 0 || _data.TryGetValue(i, out var d) && d.LastState))
            {
                // h_n of a stack: its layers' final states; h_n[-1] reads the last layer's
                if (Int(node, "axis", 0) != 0) throw Unsupported(node, "Concat of recurrent final states along an axis other than 0", "h_n[-1]");
                var states = node.Input.Where(i => i.Length > 0).Select(i => _data[i]).ToArray();
                Output(node, new Data(states[^1], null, [states.Length, .. states[^1].Shape[1..]]) { States = states });
                return;
            }
            if (x.States is not null && node.OpType != "Gather")
                throw Unsupported(node, $"{node.OpType} of the final states of a stack of recurrent layers", "the last layer's final state (h_n[-1])");
            if (x.PendingPad is not null && node.OpType is not ("AveragePool" or "Pad"))
                throw Unsupported(node, $"{node.OpType} of a zero-padded image", "Pad before AveragePool (nn.AvgPool2d with padding), or Conv's own pads");
            switch (node.OpType)
            {
                case "Gemm": Gemm(node, x); break;
                case "MatMul":
                {
                    var w = ConstIn(node, 1, "weight");
                    if (w.Shape.Length != 2) throw Bad(node, $"MatMul's weight must be 2-D [in, out], got {Fmt(w.Shape)}");
                    var wT = Transpose(w, [1, 0]);
                    // weight tying: the read-out through the embedding's own table (x·Eᵀ), no weight of its own
                    if (_embeddingWeight is { } e && wT.Shape.SequenceEqual(e.Shape) && wT.Values.SequenceEqual(e.Values))
                    {
                        Emit(node, x, new LinearBlock((int)w.Shape[1]) { Bias = false, Tied = true }, [], LinearShape(node, x, w.Shape[0], w.Shape[1]));
                        break;
                    }
                    var block = new LinearBlock((int)w.Shape[1]) { Bias = false };
                    Emit(node, x, block, new() { ["weight"] = ToTensor(wT) }, LinearShape(node, x, w.Shape[0], w.Shape[1]));
                    break;
                }
                case "Add": AddNode(node); break;
                case "Conv": Conv(node, x); break;
                case "BatchNormalization": BatchNorm(node, x); break;
                case "LayerNormalization": LayerNorm(node, x); break;
                case "InstanceNormalization": InstanceNorm(node, x); break;
                case "MaxPool" or "AveragePool": Pool(node, x); break;
                case "Pad": Pad(node, x); break;
                case "GlobalAveragePool":
                    RequireImage(node, x);
                    Emit(node, x, new AdaptiveAvgPoolBlock(1), null, [-1, x.Shape[1], 1, 1]);
                    break;
                case "Flatten":
                {
                    long axis = Int(node, "axis", 1);
                    if (axis != 1 || x.BatchAxis != 0) throw Unsupported(node, $"Flatten with axis {axis} on shape {Fmt(x.Shape)}", "Flatten with axis 1 (torch.flatten(x, 1))");
                    FlattenTo(node, x);
                    break;
                }
                case "Reshape":
                {
                    var shape = ConstIn(node, 1, "shape").Longs();
                    long rest = x.Shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                    bool flatten = x.BatchAxis == 0 && shape.Length == 2 && (shape[0] == BatchDim || shape[0] == -1 || shape[0] == 0) && (shape[1] == -1 || shape[1] == rest);
                    if (!flatten) throw Unsupported(node, $"Reshape of {Fmt(x.Shape)} to {Fmt(shape)}", "Flatten (x.flatten(1) or x.view(x.size(0), -1))");
                    FlattenTo(node, x);
                    break;
                }
                case "Dropout":
                {
                    double ratio = node.Input.Count > 1 && node.Input[1].Length > 0 ? One(ConstIn(node, 1, "ratio"), "ratio", node) : Float(node, "ratio", 0.5);
                    bool training = node.Input.Count > 2 && node.Input[2].Length > 0 && One(ConstIn(node, 2, "training_mode"), "training_mode", node) != 0;
                    if (training) Emit(node, x, new DropoutBlock(ratio), null, x.Shape);
                    else Pass(node, x);
                    break;
                }
                case "Identity": Pass(node, x); break;
                case "Relu" or "Sigmoid" or "Tanh" or "LeakyRelu" or "PRelu" or "Elu" or "Selu" or "Softplus" or "Gelu": Act(node, x); break;
                case "LSTM" or "GRU" or "RNN": Recurrent(node, x); break;
                case "Transpose":
                {
                    var perm = Ints(node, "perm");
                    if (perm is not [1, 0, 2] || x.Shape.Length != 3) throw Unsupported(node, $"Transpose {Fmt(perm ?? [])} of {Fmt(x.Shape)}", "Transpose with perm [1, 0, 2] around a recurrent layer");
                    Output(node, new Data(x, null, [x.Shape[1], x.Shape[0], x.Shape[2]]));
                    break;
                }
                case "Squeeze":
                {
                    long[] axes = node.Input.Count > 1 ? ConstIn(node, 1, "axes").Longs() : Ints(node, "axes") ?? [];
                    if (x.LastState && axes is [0]) LastStep(node, x);
                    else if (x.RecurrentRaw && axes is [1]) Output(node, new Data(x, null, [x.Shape[0], x.Shape[2], x.Shape[3]]));
                    else throw Unsupported(node, $"Squeeze of axes {Fmt(axes)} on {Fmt(x.Shape)}", "Squeeze of axis 1 of a recurrent layer's output, or of axis 0 of its final state");
                    break;
                }
                case "Gather": Gather(node, x); break;
                case "Shape":
                {
                    if (node.Attribute.Any(a => a.Name is "start" or "end")) throw Unsupported(node, "Shape with start or end", "Shape");
                    var s = x.Shape.Select(d => d == -1 ? (double)BatchDim : d).ToArray();
                    _consts[node.Output[0]] = new Const([s.Length], s, true);
                    break;
                }
                default: throw Unsupported(node, $"operator {node.OpType} on the data path");
            }
        }

        private void Gemm(NodeProto node, Data x)
        {
            if (Int(node, "transA", 0) != 0 || Float(node, "alpha", 1) != 1 || Float(node, "beta", 1) != 1)
                throw Unsupported(node, "Gemm with transA, alpha or beta", "Gemm as nn.Linear exports it (transB = 1)");
            var w = ConstIn(node, 1, "weight");
            if (w.Shape.Length != 2) throw Bad(node, $"Gemm's weight must be 2-D, got {Fmt(w.Shape)}");
            if (Int(node, "transB", 0) == 0) w = Transpose(w, [1, 0]);
            var weights = new Dictionary<string, Tensor> { ["weight"] = ToTensor(w) };
            bool bias = node.Input.Count > 2 && node.Input[2].Length > 0;
            if (bias)
            {
                var b = ConstIn(node, 2, "bias");
                if (b.Count != w.Shape[0]) throw Unsupported(node, $"Gemm with a bias of shape {Fmt(b.Shape)} for {w.Shape[0]} outputs", "a bias of one value per output");
                weights["bias"] = ToTensor(b with { Shape = [w.Shape[0]] });
            }
            if (x.Shape.Length != 2 || x.BatchAxis != 0) throw Bad(node, $"Gemm needs [N, F], gets {Fmt(x.Shape)}");
            Emit(node, x, new LinearBlock((int)w.Shape[0]) { Bias = bias }, weights, LinearShape(node, x, w.Shape[1], w.Shape[0]));
        }

        private static long[] LinearShape(NodeProto node, Data x, long inFeatures, long outFeatures)
        {
            if (x.Shape[^1] != inFeatures) throw Bad(node, $"the weight takes {inFeatures} features but the input is {Fmt(x.Shape)}");
            if (x.BatchAxis != 0) throw Unsupported(node, $"a linear layer on {Fmt(x.Shape)} (batch not first)", "Transpose back to batch first before the layer");
            return [.. x.Shape[..^1], outFeatures];
        }

        private void AddNode(NodeProto node)
        {
            bool d0 = _data.TryGetValue(node.Input[0], out var a), d1 = _data.TryGetValue(node.Input[1], out var b);
            if (d0 && d1)
            {
                Residual(node, a!, b!);
                return;
            }
            var x = d0 ? a! : b!;
            var c = _consts[d0 ? node.Input[1] : node.Input[0]];
            // MatMul + Add: a linear layer's bias (nn.Linear on [N, T, F] exports this way)
            if (x.Block is LinearBlock { Bias: false, Tied: false } l && x.Parent is not null && Uses(x) == 1 && c.Count == l.Out)
            {
                var w = _weights[l];
                _weights.Remove(l);
                var withBias = l with { Bias = true };
                w["bias"] = ToTensor(c with { Shape = [l.Out] });
                _weights[withBias] = w;
                x.Block = withBias;
                _data[node.Output[0]] = x;
                return;
            }
            // a learnt position table added to a sequence [N, T, D]: nn.Parameter of [1, T, D] or [T, D];
            // Vaswani et al.'s sinusoids (within float32 rounding) are the fixed encoding, without parameters
            if (x.Shape.Length == 3 && x.BatchAxis == 0 && (c.Shape.SequenceEqual([1, x.Shape[1], x.Shape[2]]) || c.Shape.SequenceEqual(x.Shape[1..])))
            {
                var sinusoids = PositionalEncoding.Sinusoids((int)x.Shape[1], (int)x.Shape[2]).ToArray();
                if (c.Values.Zip(sinusoids).All(p => Math.Abs(p.First - p.Second) <= 1e-6))
                {
                    Emit(node, x, new PositionBlock(PositionalKind.Sinusoidal, (int)x.Shape[1]), [], x.Shape);
                    return;
                }
                Emit(node, x, new PositionBlock(PositionalKind.Learned, (int)x.Shape[1]), new() { ["weight"] = ToTensor(c with { Shape = x.Shape[1..] }) }, x.Shape);
                return;
            }
            throw Unsupported(node, $"Add of a constant of shape {Fmt(c.Shape)} to {Fmt(x.Shape)}", "the bias of a Linear (MatMul followed by Add), a learnt position table [1, T, D] added to a sequence, or a residual Add of two layers' outputs");
        }

        private int Uses(Data x) =>
            _data.Where(kv => ReferenceEquals(kv.Value, x)).Sum(kv => _uses.GetValueOrDefault(kv.Key));

        private void Residual(NodeProto node, Data a, Data b)
        {
            if (!a.Shape.SequenceEqual(b.Shape)) throw Bad(node, $"Add of shapes {Fmt(a.Shape)} and {Fmt(b.Shape)}");
            var ancestorsOfB = new HashSet<Data>(ReferenceEqualityComparer.Instance);
            for (var d = b; d is not null; d = d.Parent) ancestorsOfB.Add(d);
            var common = a;
            while (common is not null && !ancestorsOfB.Contains(common)) common = common.Parent;
            if (common is null) throw Bad(node, "the two inputs of the Add share no earlier value");
            var (branchNode, shortcutNode) = (a, b);
            var shortcut = Path(b, common);
            var branch = Path(a, common);
            // the shortcut is the empty path, or the projection (its Add may list it first or second)
            if (branch.Count == 0 || (shortcut.Count > 0 && IsProjection(branch, common) && !IsProjection(shortcut, common)))
                (branch, shortcut, branchNode, shortcutNode) = (shortcut, branch, b, a);
            if (branch.Count == 0) throw Unsupported(node, "Add of a value to itself", "x + f(x) with f at least one layer");
            var kind = ShortcutKind.Identity;
            var weights = new Dictionary<string, Tensor>();
            if (shortcut.Count > 0)
            {
                if (IsProjection(shortcut, common) && shortcut is [ConvBlock conv, NormBlock bn])
                {
                    foreach (var (k, t) in _weights[conv]) weights["shortcut.0." + k] = t;
                    foreach (var (k, t) in _weights[bn]) weights["shortcut.1." + k] = t;
                }
                else if (IsProjection(shortcut, common) && shortcut is [LinearBlock proj])
                    weights["shortcut.weight"] = _weights[proj]["weight"];
                else
                    throw Unsupported(node, "a residual shortcut of " + string.Join(", ", shortcut.Select(s => s.GetType().Name)),
                        "the identity, a 1×1 conv (no bias) then BatchNorm, or a bias-free Linear as the shortcut");
                kind = ShortcutKind.Projection;
                var exampleIn = common.Example;
                var exampleOut = branchNode.Example;
                if (exampleIn.SequenceEqual(exampleOut)) throw Unsupported(node, "a projection shortcut where the shape does not change", "the identity shortcut");
            }
            else if (!common.Shape.SequenceEqual(branchNode.Shape))
                throw Bad(node, $"an identity shortcut of {Fmt(common.Shape)} added to {Fmt(branchNode.Shape)}");
            var block = new ResidualBlock(new SequenceBlock(branch), kind);
            if (weights.Count > 0) _weights[block] = weights;
            Output(node, new Data(common, block, branchNode.Shape));
        }

        /// <summary>Whether <paramref name="path"/> is a projection shortcut: a 1×1 conv (no bias) then BatchNorm on images, a bias-free Linear on vectors.</summary>
        private static bool IsProjection(List<Block> path, Data from) => path switch
        {
            [ConvBlock { Kernel: { H: 1, W: 1 }, Bias: false, Groups: 1, Padding: { H: 0, W: 0 }, Dilation: { H: 1, W: 1 } } conv, NormBlock { Kind: NormalizationKind.Batch }] =>
                conv.Stride.H == conv.Stride.W,
            [LinearBlock { Bias: false }] => from.Shape.Length == 2,
            _ => false,
        };

        /// <summary>The blocks from <paramref name="from"/> (exclusive) down to <paramref name="to"/>, input side first; layout changes are not allowed inside.</summary>
        private static List<Block> Path(Data to, Data from)
        {
            var list = new List<Block>();
            for (var d = to; d != from; d = d!.Parent)
                if (d!.Block is { } b) list.Add(b);
            list.Reverse();
            return list;
        }

        private void Conv(NodeProto node, Data x)
        {
            RequireImage(node, x);
            var w = ConstIn(node, 1, "weight");
            if (w.Shape.Length != 4) throw Unsupported(node, $"a convolution with a weight of shape {Fmt(w.Shape)}", "a 2-D convolution (nn.Conv2d)");
            if (Str(node, "auto_pad", "NOTSET") != "NOTSET") throw Unsupported(node, "Conv with auto_pad", "Conv with explicit pads (nn.Conv2d's padding)");
            var pads = Sizes(node, "pads", [0, 0, 0, 0], 4, 0);
            if (pads[0] != pads[2] || pads[1] != pads[3]) throw Unsupported(node, $"Conv with pads {Fmt(pads)}", "the same padding on both sides");
            var strides = Sizes(node, "strides", [1, 1], 2, 1);
            var dil = Sizes(node, "dilations", [1, 1], 2, 1);
            long group = Int(node, "group", 1);
            if (group < 1 || group > int.MaxValue) throw Bad(node, $"group {group} must be a positive int");
            int groups = (int)group;
            bool bias = node.Input.Count > 2 && node.Input[2].Length > 0;
            if (groups < 1 || x.Shape[1] % groups != 0 || w.Shape[1] * groups != x.Shape[1]) throw Bad(node, $"weight {Fmt(w.Shape)} with {groups} groups does not fit input {Fmt(x.Shape)}");
            var block = new ConvBlock((int)w.Shape[0], new Size2d((int)w.Shape[2], (int)w.Shape[3]))
            {
                Stride = new Size2d((int)strides[0], (int)strides[1]),
                Padding = new Size2d((int)pads[0], (int)pads[1]),
                Dilation = new Size2d((int)dil[0], (int)dil[1]),
                Groups = groups,
                Bias = bias,
            };
            var weights = new Dictionary<string, Tensor> { ["weight"] = ToTensor(w) };
            if (bias) weights["bias"] = ToTensor(ConstIn(node, 2, "bias"));
            Emit(node, x, block, weights, null);
        }

        private void BatchNorm(NodeProto node, Data x)
        {
            double eps = Float(node, "epsilon", 1e-5), momentum = Float(node, "momentum", 0.9);
            if (Math.Abs(eps - 1e-5) > 1e-9) throw Unsupported(node, $"BatchNormalization with epsilon {eps}", "epsilon 1e-5 (PyTorch's default)");
            if (Math.Abs(momentum - 0.9) > 1e-6) throw Unsupported(node, $"BatchNormalization with momentum {momentum}", "momentum 0.9 (PyTorch's 0.1)");
            if (x.BatchAxis != 0 || x.Shape.Length is not (2 or 4)) throw Unsupported(node, $"BatchNormalization of {Fmt(x.Shape)}", "BatchNorm1d on [N, F] or BatchNorm2d on [N, C, H, W]");
            var weights = new Dictionary<string, Tensor>
            {
                ["weight"] = ToTensor(ConstIn(node, 1, "scale")),
                ["bias"] = ToTensor(ConstIn(node, 2, "B")),
                ["running_mean"] = ToTensor(ConstIn(node, 3, "input_mean")),
                ["running_var"] = ToTensor(ConstIn(node, 4, "input_var")),
            };
            Emit(node, x, new NormBlock(NormalizationKind.Batch), weights, x.Shape);
        }

        private void LayerNorm(NodeProto node, Data x)
        {
            long axis = Int(node, "axis", -1);
            if (axis < 0) axis += x.Shape.Length;
            // over every dimension but the batch, or over the last one of a sequence [N, T, D] (a transformer's)
            bool last = x.Shape.Length == 3 && axis == 2;
            if ((axis != 1 && !last) || x.BatchAxis != 0) throw Unsupported(node, $"LayerNormalization from axis {axis} of {Fmt(x.Shape)}", "LayerNorm over every dimension but the batch, or over the last of [N, T, D]");
            if (Math.Abs(Float(node, "epsilon", 1e-5) - 1e-5) > 1e-9) throw Unsupported(node, "LayerNormalization with epsilon other than 1e-5", "epsilon 1e-5 (PyTorch's default)");
            LayerNormBlock(node, x, last, ConstIn(node, 1, "scale"), ConstIn(node, 2, "B"));
        }

        private void LayerNormBlock(NodeProto node, Data x, bool last, Const scale, Const bias)
        {
            var shape = last ? x.Shape[2..] : x.Shape[1..];
            if (scale.Count != shape.Aggregate(1L, (a, b) => a * b) || bias.Count != scale.Count)
                throw Bad(node, $"a LayerNorm weight of shape {Fmt(scale.Shape)} and bias of {Fmt(bias.Shape)} for {Fmt(x.Shape)}");
            var weights = new Dictionary<string, Tensor>
            {
                ["weight"] = ToTensor(scale with { Shape = shape }),
                ["bias"] = ToTensor(bias with { Shape = shape }),
            };
            Emit(node, x, new NormBlock(NormalizationKind.Layer) { Last = last }, weights, x.Shape);
        }

        /// <summary>
        /// A constant zero Pad of an image's height and width: nothing when it pads nothing (PyTorch writes one before every
        /// nn.AvgPool2d), else the padding of the AveragePool that must read it (nn.AvgPool2d(padding=p), which counts the padded zeros).
        /// </summary>
        private void Pad(NodeProto node, Data x)
        {
            RequireImage(node, x);
            if (Str(node, "mode", "constant") != "constant") throw Unsupported(node, $"Pad in mode '{Str(node, "mode", "constant")}'", "a constant zero Pad before AveragePool");
            var pads = node.Input.Count > 1 && node.Input[1].Length > 0 ? ConstIn(node, 1, "pads").Longs() : Ints(node, "pads") ?? [];
            if (pads.Length != 8) throw Bad(node, $"Pad of a 4-D image needs 8 pads, got {Fmt(pads)}");
            if (node.Input.Count > 2 && node.Input[2].Length > 0 && One(ConstIn(node, 2, "constant_value"), "constant_value", node) != 0)
                throw Unsupported(node, "Pad with a value other than 0", "a constant zero Pad before AveragePool");
            if (node.Input.Count > 3 && node.Input[3].Length > 0) throw Unsupported(node, "Pad of chosen axes", "a Pad of every axis");
            if (pads.All(p => p == 0))
            {
                Pass(node, x);
                return;
            }
            if (pads.Any(p => p < 0) || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 || pads[2] != pads[6] || pads[3] != pads[7])
                throw Unsupported(node, $"Pad of {Fmt(pads)}", "the same zero padding of height and width on both sides, before AveragePool");
            // a second zero Pad (nn.ZeroPad2d, then the one PyTorch writes before nn.AvgPool2d) adds to the first
            long[] pending = x.PendingPad is { } first ? [first[0] + pads[2], first[1] + pads[3]] : [pads[2], pads[3]];
            Output(node, new Data(x.PendingPad is null ? x : x.Parent, null, [x.Shape[0], x.Shape[1], x.Shape[2] + 2 * pads[2], x.Shape[3] + 2 * pads[3]]) { PendingPad = pending });
        }

        private void Pool(NodeProto node, Data x)
        {
            RequireImage(node, x);
            var k = Sizes(node, "kernel_shape", null, 2, 1);
            var strides = Sizes(node, "strides", k, 2, 1);
            var pads = Sizes(node, "pads", [0, 0, 0, 0], 4, 0);
            bool zerosCounted = Int(node, "count_include_pad", 0) != 0;
            if (x.PendingPad is { } before)
            {
                // the Pad's zeros are values the pool averages: nn.AvgPool2d(padding=p) with count_include_pad=True
                if (pads.Any(p => p != 0)) throw Unsupported(node, $"{node.OpType} with pads {Fmt(pads)} after a Pad", "the padding in one of them");
                pads = [before[0], before[1], before[0], before[1]];
                x = x.Parent!;
                zerosCounted = true;
            }
            if (pads[0] != pads[2] || pads[1] != pads[3]) throw Unsupported(node, $"{node.OpType} with kernel {Fmt(k)} and pads {Fmt(pads)}", "2-D pooling with the same padding on both sides");
            if (Int(node, "ceil_mode", 0) != 0) throw Unsupported(node, $"{node.OpType} with ceil_mode", "ceil_mode=False");
            if (Str(node, "auto_pad", "NOTSET") != "NOTSET") throw Unsupported(node, $"{node.OpType} with auto_pad", "explicit pads");
            if (Ints(node, "dilations") is { } d && d.Any(v => v != 1)) throw Unsupported(node, "MaxPool with dilation", "MaxPool without dilation");
            var kind = node.OpType == "MaxPool" ? PoolKind.Max : PoolKind.Avg;
            if (kind == PoolKind.Avg && pads.Any(p => p != 0) && !zerosCounted)
                throw Unsupported(node, "AveragePool with padding not counted", "count_include_pad=True (PyTorch's default)");
            if (node.Output.Count > 1 && node.Output[1].Length > 0) throw Unsupported(node, "MaxPool with its indices output", "MaxPool's values only");
            var block = new PoolBlock(kind, new Size2d((int)k[0], (int)k[1]))
            {
                // the stride defaults to the kernel, as PyTorch's
                Stride = strides.SequenceEqual(k) ? null : new Size2d((int)strides[0], (int)strides[1]),
                Padding = new Size2d((int)pads[0], (int)pads[1]),
            };
            Emit(node, x, block, null, null);
        }

        private void FlattenTo(NodeProto node, Data x)
        {
            if (x.Shape.Length == 2) Pass(node, x);
            else Emit(node, x, new FlattenBlock(), null, [-1, x.Shape.Skip(1).Aggregate(1L, (a, b) => a * b)]);
        }

        private void Act(NodeProto node, Data x)
        {
            Activation kind = node.OpType switch
            {
                "Relu" => Activation.Relu,
                "Sigmoid" => Activation.Sigmoid,
                "Tanh" => Activation.Tanh,
                "LeakyRelu" => Math.Abs(Float(node, "alpha", 0.01) - 0.01) < 1e-7 ? Activation.LeakyRelu
                    : throw Unsupported(node, $"LeakyRelu with slope {Float(node, "alpha", 0.01)}", "LeakyRelu with slope 0.01 (PyTorch's default)"),
                "Elu" => Math.Abs(Float(node, "alpha", 1) - 1) < 1e-7 ? Activation.Elu : throw Unsupported(node, "Elu with alpha other than 1", "Elu with alpha 1"),
                "Selu" => Activation.Selu,
                "Softplus" => Activation.Softplus,
                "Gelu" => Str(node, "approximate", "none") switch
                {
                    "none" => Activation.Gelu,
                    "tanh" => Activation.GeluTanh,
                    var a => throw Unsupported(node, $"Gelu with approximate '{a}'", "Gelu with approximate 'none' or 'tanh'"),
                },
                _ => Activation.PRelu,
            };
            Dictionary<string, Tensor>? weights = null;
            if (kind == Activation.PRelu)
            {
                var slope = ConstIn(node, 1, "slope");
                if (slope.Count != 1) throw Unsupported(node, $"PRelu with {slope.Count} slopes", "PRelu with one slope (nn.PReLU())");
                weights = new() { ["weight"] = ToTensor(slope with { Shape = [1] }) };
            }
            // ReLU after a residual Add that nothing else reads: the block's post-activation (a ResNet's BasicBlock)
            if (x.Block is ResidualBlock { Post: null } r && Uses(x) == 1)
            {
                var post = r with { Post = kind };
                if (_weights.Remove(r, out var w)) _weights[post] = w;
                if (weights is not null) throw Unsupported(node, "PRelu after a residual Add", "ReLU after the Add");
                x.Block = post;
                _data[node.Output[0]] = x;
                return;
            }
            Emit(node, x, new ActBlock(kind), weights, x.Shape);
        }

        private void Recurrent(NodeProto node, Data x)
        {
            string op = node.OpType;
            RecurrentCellKind cell = op switch
            {
                "LSTM" => RecurrentCellKind.Lstm,
                "GRU" => RecurrentCellKind.Gru,
                _ => (Strs(node, "activations") ?? ["Tanh"]) switch
                {
                    ["Tanh"] => RecurrentCellKind.RnnTanh,
                    ["Relu"] => RecurrentCellKind.RnnRelu,
                    var a => throw Unsupported(node, $"RNN with activations {string.Join(", ", a)}", "RNN with Tanh or Relu"),
                },
            };
            if (Str(node, "direction", "forward") != "forward") throw Unsupported(node, $"a {Str(node, "direction", "forward")} {op}", $"a forward (unidirectional) {op}");
            if (op != "RNN" && Strs(node, "activations") is { } acts && !acts.SequenceEqual(op == "LSTM" ? ["Sigmoid", "Tanh", "Tanh"] : ["Sigmoid", "Tanh"]))
                throw Unsupported(node, $"{op} with activations {string.Join(", ", acts)}", $"{op} with its default activations");
            if (node.Attribute.Any(a => a.Name == "clip")) throw Unsupported(node, $"{op} with clip", $"{op} without clip (clip the gradients instead)");
            if (Int(node, "input_forget", 0) != 0) throw Unsupported(node, "LSTM with input_forget", "LSTM without coupled gates");
            if (op == "GRU" && Int(node, "linear_before_reset", 0) != 1) throw Unsupported(node, "GRU with linear_before_reset = 0", "GRU as PyTorch exports it (linear_before_reset = 1)");
            bool batchFirst = Int(node, "layout", 0) == 1;
            if (x.Shape.Length != 3 || x.BatchAxis != (batchFirst ? 0 : 1)) throw Bad(node, $"{op} needs [T, N, I] (or [N, T, I] with layout 1), gets {Fmt(x.Shape)}");
            for (int i = 4; i < node.Input.Count; i++)
            {
                if (node.Input[i].Length == 0) continue;
                if (i == 4) throw Unsupported(node, $"{op} with sequence_lens", $"{op} over sequences of one length");
                if (i == 7) throw Unsupported(node, "LSTM with peepholes", "LSTM without peepholes (nn.LSTM)");
                var s = ConstIn(node, i, "initial state");
                if (s.Values.Any(v => v != 0)) throw Unsupported(node, $"{op} with a non-zero initial state", $"{op} starting from zeros");
            }
            long hiddenSize = Int(node, "hidden_size", 0);
            if (hiddenSize < 1 || hiddenSize > 1 << 20) throw Bad(node, $"hidden_size {hiddenSize} must be in 1..{1 << 20}");
            int hidden = (int)hiddenSize;
            int gates = cell switch { RecurrentCellKind.Lstm => 4, RecurrentCellKind.Gru => 3, _ => 1 };
            var w = ConstIn(node, 1, "W");
            var r = ConstIn(node, 2, "R");
            long inFeatures = x.Shape[2];
            if (hidden < 1 || !w.Shape.SequenceEqual([1, gates * hidden, inFeatures]) || !r.Shape.SequenceEqual([1, gates * hidden, hidden]))
                throw Bad(node, $"W {Fmt(w.Shape)} and R {Fmt(r.Shape)} do not fit hidden_size {hidden} and {inFeatures} input features");
            double[] bias = node.Input.Count > 3 && node.Input[3].Length > 0 ? ConstIn(node, 3, "B").Values : new double[2 * gates * hidden];
            if (bias.Length != 2 * gates * hidden) throw Bad(node, $"B has {bias.Length} values, not {2 * gates * hidden}");
            // ONNX's gate order → PyTorch's: LSTM iofc → ifgo, GRU zrh → rzn
            int[] order = cell switch { RecurrentCellKind.Lstm => [0, 2, 3, 1], RecurrentCellKind.Gru => [1, 0, 2], _ => [0] };
            // a weight is [gates·H, cols] (cols may be 1: an nn.LSTM of one input feature), a bias [gates·H]
            Tensor Gates(double[] v, long offset, long cols, bool matrix = true)
            {
                var o = new float[gates * hidden * cols];
                for (int g = 0; g < gates; g++)
                    for (long j = 0; j < hidden * cols; j++)
                        o[g * hidden * cols + j] = (float)v[offset + order[g] * hidden * cols + j];
                return matrix ? Tensors.Tensor.FromArray(o, gates * hidden, (int)cols) : Tensors.Tensor.FromArray(o, gates * hidden);
            }
            // layer 2+ of a stack: the previous recurrent block read every step, nothing else reads it
            var prev = x.BlockNode;
            int layer = 0;
            Data parent = x;
            RecurrentBlock block;
            if (prev?.Block is RecurrentBlock { Output: RecurrentOutputKind.Sequence } p && p.Cell == cell && p.Hidden == hidden && SingleChain(x, prev))
            {
                layer = p.Layers;
                block = p with { Layers = p.Layers + 1 };
                _weights[block] = _weights[p];
                _weights.Remove(p);
                parent = prev.Parent!;
                // drop the intermediate layout nodes: the new node replaces the previous block
            }
            else block = new RecurrentBlock(cell, hidden) { Output = RecurrentOutputKind.Sequence };
            var weights = _weights.TryGetValue(block, out var existing) ? existing : _weights[block] = [];
            string l = layer.ToString(CultureInfo.InvariantCulture);
            weights["weight_ih_l" + l] = Gates(w.Values, 0, inFeatures);
            weights["weight_hh_l" + l] = Gates(r.Values, 0, hidden);
            weights["bias_ih_l" + l] = Gates(bias, 0, 1, matrix: false);
            weights["bias_hh_l" + l] = Gates(bias, gates * hidden, 1, matrix: false);
            long t = batchFirst ? x.Shape[1] : x.Shape[0];
            var y = new Data(parent, block, batchFirst ? [-1, t, 1, hidden] : [t, 1, -1, hidden]) { RecurrentRaw = !batchFirst };
            if (batchFirst) throw Unsupported(node, $"{op} with layout 1", $"{op} with layout 0 (as torch.onnx.export writes it)");
            if (node.Output.Count > 0 && node.Output[0].Length > 0) _data[node.Output[0]] = y;
            if (node.Output.Count > 1 && node.Output[1].Length > 0)
                _data[node.Output[1]] = new Data(y, null, [1, -1, hidden]) { LastState = true };
            if (node.Output.Count > 2 && node.Output[2].Length > 0 && _uses.GetValueOrDefault(node.Output[2]) > 0)
                throw Unsupported(node, "LSTM's final cell state read by the network", "the hidden states (output Y or Y_h)");
        }

        /// <summary>Whether <paramref name="x"/> comes from <paramref name="from"/> through layout changes read by nothing else.</summary>
        private bool SingleChain(Data x, Data from)
        {
            for (var d = x; d != from; d = d!.Parent)
                if (d is null || Uses(d) != 1) return false;
            return Uses(from) == 1;
        }

        private void Gather(NodeProto node, Data x)
        {
            var idx = ConstIn(node, 1, "indices");
            long axis = Int(node, "axis", 0);
            if (axis < 0) axis += x.Shape.Length;
            long index = idx.Shape.Length == 0 && idx.Count == 1 ? (long)idx.Values[0] : long.MinValue;
            if (x.States is { } states)
            {
                // the stack's output is its last layer's final state; an earlier layer's feeds the next layer only
                if (axis != 0 || index != -1 && index != states.Length - 1)
                    throw Unsupported(node, $"Gather of index {(index == long.MinValue ? Fmt(idx.Shape) : index)} on axis {axis} of the {states.Length} layers' final states",
                        "the last layer's final state (h_n[-1])");
                LastStep(node, states[^1]);
                return;
            }
            // the last step of a recurrent layer's sequence: [N, T, H] axis 1 or [T, N, H] axis 0, index -1 or T - 1
            bool timeAxis = x.Shape.Length == 3 && (x.BatchAxis == 0 ? axis == 1 : axis == 0 && x.BatchAxis == 1);
            long steps = timeAxis ? x.Shape[axis] : 0;
            bool last = timeAxis && (index == -1 || index == steps - 1);
            if (!last) throw Unsupported(node, $"Gather of index {(index == long.MinValue ? Fmt(idx.Shape) : index)} on axis {axis} of {Fmt(x.Shape)}",
                "the last step of a recurrent layer's output (output[:, -1])");
            LastStep(node, x);
        }

        /// <summary>The recurrent block that <paramref name="x"/> comes from reads out its last step only.</summary>
        private void LastStep(NodeProto node, Data x)
        {
            var rec = x.BlockNode;
            // the final state Y_h (h_n[-1], h_n.squeeze(0)) is the last step of a sequence Y that nothing else reads; the sequence's own
            // last step (output[:, -1]) is read through layout changes that nothing else reads
            bool once = rec is not null && (x.LastState ? Uses(x) == 1 && Uses(rec) == 0 : SingleChain(x, rec));
            if (rec?.Block is not RecurrentBlock { Output: RecurrentOutputKind.Sequence } r || !once)
                throw Unsupported(node, $"{node.OpType} of the last step of {Fmt(x.Shape)}, which is not a recurrent layer's output read by nothing else",
                    "the last step of a recurrent layer's output (output[:, -1]) or its final state (h_n[-1]), read once");
            var lastBlock = r with { Output = RecurrentOutputKind.Last };
            _weights[lastBlock] = _weights[r];
            _weights.Remove(r);
            Output(node, new Data(rec.Parent, lastBlock, [-1, r.Hidden]));
        }

        // ------------------------------------------------------------------ helpers

        private void Emit(NodeProto node, Data x, Block block, Dictionary<string, Tensor>? weights, long[]? shape)
        {
            if (x.RecurrentRaw) throw Unsupported(node, $"{node.OpType} on a recurrent layer's raw output {Fmt(x.Shape)}", "Squeeze of axis 1 first");
            if (shape is null)
            {
                int[] example;
                try
                {
                    example = ShapeInference.Block(block, x.Example, node.Name, null);
                }
                catch (ArgumentException e)
                {
                    throw Bad(node, e.Message);
                }
                shape = [-1, .. example.Select(v => (long)v)];
            }
            if (weights is not null) _weights[block] = weights;
            Output(node, new Data(x, block, shape));
        }

        private void Pass(NodeProto node, Data x) => _data[node.Output[0]] = x;

        private void Output(NodeProto node, Data d)
        {
            if (node.Output.Count == 0 || node.Output[0].Length == 0) throw Bad(node, "no output");
            _data[node.Output[0]] = d;
        }

        private static void RequireImage(NodeProto node, Data x)
        {
            if (x.Shape.Length != 4 || x.BatchAxis != 0) throw Unsupported(node, $"{node.OpType} on {Fmt(x.Shape)}", $"{node.OpType} on images [N, C, H, W]");
        }

        private Data DataIn(NodeProto node, int i)
        {
            if (i >= node.Input.Count || !_data.TryGetValue(node.Input[i], out var d))
            {
                if (node.OpType == "Add" && node.Input.Count == 2 && _data.ContainsKey(node.Input[1])) return _data[node.Input[1]];
                throw Unsupported(node, $"{node.OpType} whose input {i} is a constant and a later input is data", $"{node.OpType} on the data as its first input");
            }
            return d;
        }

        private Const ConstIn(NodeProto node, int i, string what)
        {
            if (i >= node.Input.Count || node.Input[i].Length == 0) throw Bad(node, $"missing input {i} ({what})");
            if (_consts.TryGetValue(node.Input[i], out var c)) return c;
            if (_data.ContainsKey(node.Input[i])) throw Unsupported(node, $"{node.OpType} whose {what} is computed from the input", $"a {what} that is an initializer (a layer's parameter)");
            throw Bad(node, $"input '{node.Input[i]}' ({what}) is not produced by an earlier node or initializer");
        }

        private Const Tensor(TensorProto t, string what)
        {
            if (t.DataLocation == TensorProto.Types.DataLocation.External) throw new FormatException($"{source}: {what} is stored in an external file; save the model with its weights inside.");
            var dims = t.Dims.ToArray();
            long count = 1;
            foreach (var d in dims)
            {
                if (d < 0) throw new FormatException($"{source}: {what} has a negative dimension in {Fmt(dims)}.");
                count = d == 0 ? 0 : count > int.MaxValue / Math.Max(1, d) ? long.MaxValue : count * d;
                if (count > int.MaxValue) throw new FormatException($"{source}: {what} has shape {Fmt(dims)}, too many values.");
            }
            var type = (TensorProto.Types.DataType)t.DataType;
            int width = type switch
            {
                TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Int32 => 4,
                TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Int64 => 8,
                TensorProto.Types.DataType.Bool => 1,
                _ => throw new FormatException($"{source}: {what} has ONNX data type {type}; GradFlow reads float, double, int32, int64 and bool tensors."),
            };
            var raw = t.RawData.Span;
            long given = raw.Length > 0 ? raw.Length / width : type switch
            {
                TensorProto.Types.DataType.Float => t.FloatData.Count,
                TensorProto.Types.DataType.Double => t.DoubleData.Count,
                TensorProto.Types.DataType.Int64 => t.Int64Data.Count,
                _ => t.Int32Data.Count,
            };
            if (given != count || (raw.Length > 0 && raw.Length != count * width))
                throw new FormatException($"{source}: {what} holds {(raw.Length > 0 ? $"{raw.Length} bytes of raw data" : $"{given} values")} for shape {Fmt(dims)} ({count} values of {width} bytes expected).");
            var values = new double[count];
            if (raw.Length > 0)
            {
                for (int i = 0; i < count; i++)
                {
                    var s = raw.Slice(i * width, width);
                    values[i] = type switch
                    {
                        TensorProto.Types.DataType.Float => BitConverter.ToSingle(s),
                        TensorProto.Types.DataType.Int32 => BitConverter.ToInt32(s),
                        TensorProto.Types.DataType.Double => BitConverter.ToDouble(s),
                        TensorProto.Types.DataType.Int64 => BitConverter.ToInt64(s),
                        _ => s[0],
                    };
                }
            }
            else
            {
                IReadOnlyList<double> list = type switch
                {
                    TensorProto.Types.DataType.Float => t.FloatData.Select(v => (double)v).ToArray(),
                    TensorProto.Types.DataType.Double => t.DoubleData.ToArray(),
                    TensorProto.Types.DataType.Int64 => t.Int64Data.Select(v => (double)v).ToArray(),
                    _ => t.Int32Data.Select(v => (double)v).ToArray(),
                };
                for (int i = 0; i < count; i++) values[i] = list[i];
            }
            bool isInt = type is not (TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Double);
            return new Const(dims, values, isInt);
        }

        private static Tensor ToTensor(Const c) =>
            Tensors.Tensor.FromArray(c.Values.Select(v => (float)v).ToArray(), c.Shape.Select(d => (int)d).ToArray());

        // ------------------------------------------------------------------ constant folding

        private void Fold(NodeProto node)
        {
            Const result = node.OpType switch
            {
                "Constant" => Tensor(node.Attribute.FirstOrDefault(a => a.Name == "value")?.T
                    ?? throw Unsupported(node, "Constant without a tensor value", "Constant with value"), $"node '{node.Name}' (Constant)"),
                "Identity" or "Cast" => ConstIn(node, 0, "input"),
                "Unsqueeze" => Unsqueeze(ConstIn(node, 0, "data"), node.Input.Count > 1 ? ConstIn(node, 1, "axes").Longs() : Ints(node, "axes") ?? [], node),
                "Squeeze" => Squeeze(ConstIn(node, 0, "data"), node.Input.Count > 1 ? ConstIn(node, 1, "axes").Longs() : Ints(node, "axes"), node),
                "Concat" => Concat(node.Input.Where(i => i.Length > 0).Select(i => _consts[i]).ToArray(), Int(node, "axis", 0), node),
                "Slice" => Slice(node),
                "Transpose" => Transpose(ConstIn(node, 0, "data"), Ints(node, "perm") ?? Enumerable.Range(0, ConstIn(node, 0, "data").Shape.Length).Reverse().Select(v => (long)v).ToArray(), node),
                "Gather" => GatherConst(ConstIn(node, 0, "data"), ConstIn(node, 1, "indices"), Int(node, "axis", 0), node),
                "Reshape" => ReshapeConst(ConstIn(node, 0, "data"), ConstIn(node, 1, "shape").Longs(), node),
                "Expand" => Expand(ConstIn(node, 0, "input"), ConstIn(node, 1, "shape").Longs(), node),
                "Add" or "Sub" or "Mul" or "Div" => Arithmetic(node, ConstIn(node, 0, "A"), ConstIn(node, 1, "B")),
                "ConstantOfShape" => ConstantOfShape(node),
                "Shape" => ShapeOf(ConstIn(node, 0, "data"), node),
                _ => throw Unsupported(node, $"{node.OpType} on constants"),
            };
            if (node.Output.Count == 0) throw Bad(node, "no output");
            _consts[node.Output[0]] = result;
        }

        private Const ConstantOfShape(NodeProto node)
        {
            var shape = ConstIn(node, 0, "shape").Longs().Select(d => d == BatchDim ? 1 : d).ToArray();
            double value = node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } t ? One(Tensor(t, "value"), "value", node) : 0;
            return new Const(shape, Filled(Count(shape, node), value), false);
        }

        private static double[] Filled(long n, double v)
        {
            var a = new double[n];
            Array.Fill(a, v);
            return a;
        }

        private long Count(long[] shape, NodeProto node)
        {
            long n = 1;
            foreach (var d in shape)
            {
                if (d < 0) throw Bad(node, $"shape {Fmt(shape)} has a negative dimension");
                if (d > 0 && n > budget / d) throw Bad(node, $"shape {Fmt(shape)} is too large for a constant computed from a {budget - (1 << 16)}-byte file");
                n *= d;
            }
            if (n > budget) throw Bad(node, $"shape {Fmt(shape)} is too large for a constant computed from a {budget - (1 << 16)}-byte file");
            return n;
        }

        /// <summary>Expand of a constant to a shape with the batch: only the (zero) initial states of recurrent layers do this, so the batch dimension stays 1.</summary>
        private Const Expand(Const c, long[] shape, NodeProto node)
        {
            var target = shape.Select(d => d == BatchDim ? 1 : d).ToArray();
            if (c.Values.All(v => v == c.Values.FirstOrDefault()) && c.Count > 0)
                return new Const(target, Filled(Count(target, node), c.Values[0]), c.IsInt);
            if (c.Shape.SequenceEqual(target)) return c;
            throw Unsupported(node, "Expand of a non-uniform constant", "Expand of a constant that is the same everywhere");
        }

        private static Const Unsqueeze(Const c, long[] axes, NodeProto node)
        {
            int rank = c.Shape.Length + axes.Length;
            var norm = axes.Select(a => a < 0 ? a + rank : a).OrderBy(a => a).ToArray();
            var shape = new List<long>(c.Shape);
            foreach (var a in norm)
            {
                if (a < 0 || a > shape.Count) throw Bad(node, $"axis {a} out of range for rank {rank}");
                shape.Insert((int)a, 1);
            }
            return c with { Shape = shape.ToArray() };
        }

        private static Const Squeeze(Const c, long[]? axes, NodeProto node)
        {
            var drop = (axes ?? Enumerable.Range(0, c.Shape.Length).Where(i => c.Shape[i] == 1).Select(i => (long)i).ToArray())
                .Select(a => a < 0 ? a + c.Shape.Length : a).ToHashSet();
            if (drop.Any(a => a < 0 || a >= c.Shape.Length || c.Shape[a] != 1)) throw Bad(node, $"cannot squeeze axes {Fmt(drop.ToArray())} of {Fmt(c.Shape)}");
            return c with { Shape = c.Shape.Where((_, i) => !drop.Contains(i)).ToArray() };
        }

        private static Const ReshapeConst(Const c, long[] shape, NodeProto node)
        {
            var s = shape.Select((d, i) => d == 0 && i < c.Shape.Length ? c.Shape[i] : d).ToArray();
            int infer = Array.IndexOf(s, -1L);
            long known = s.Where(d => d != -1).Aggregate(1L, (a, b) => b < 0 ? throw Bad(node, $"bad shape {Fmt(shape)}") : a * b);
            if (infer >= 0 && known > 0) s[infer] = c.Count / known;
            if (s.Aggregate(1L, (a, b) => a * b) != c.Count) throw Bad(node, $"cannot reshape {Fmt(c.Shape)} to {Fmt(shape)}");
            return c with { Shape = s };
        }

        private static long[] Strides(long[] shape)
        {
            var st = new long[shape.Length];
            long s = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                st[i] = s;
                s *= shape[i];
            }
            return st;
        }

        /// <summary>out[i] = c[start + i·step] per axis (an odometer over the output).</summary>
        private Const Strided(Const c, long[] start, long[] step, long[] outShape, NodeProto? node)
        {
            long n = node is null ? outShape.Aggregate(1L, (a, b) => a * b) : Count(outShape, node);
            var src = Strides(c.Shape);
            var values = new double[n];
            var idx = new long[outShape.Length];
            for (long k = 0; k < n; k++)
            {
                long off = 0;
                for (int a = 0; a < idx.Length; a++) off += (start[a] + idx[a] * step[a]) * src[a];
                values[k] = c.Values[off];
                for (int a = idx.Length - 1; a >= 0; a--)
                {
                    if (++idx[a] < outShape[a]) break;
                    idx[a] = 0;
                }
            }
            return new Const(outShape, values, c.IsInt);
        }

        private Const Slice(NodeProto node)
        {
            var c = ConstIn(node, 0, "data");
            var starts = ConstIn(node, 1, "starts").Longs();
            var ends = ConstIn(node, 2, "ends").Longs();
            var axes = node.Input.Count > 3 && node.Input[3].Length > 0 ? ConstIn(node, 3, "axes").Longs() : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            var steps = node.Input.Count > 4 && node.Input[4].Length > 0 ? ConstIn(node, 4, "steps").Longs() : Enumerable.Repeat(1L, starts.Length).ToArray();
            if (ends.Length != starts.Length || axes.Length != starts.Length || steps.Length != starts.Length) throw Bad(node, "starts, ends, axes and steps differ in length");
            int rank = c.Shape.Length;
            var start = new long[rank];
            var step = Enumerable.Repeat(1L, rank).ToArray();
            var shape = (long[])c.Shape.Clone();
            for (int i = 0; i < starts.Length; i++)
            {
                long a = axes[i] < 0 ? axes[i] + rank : axes[i];
                if (a < 0 || a >= rank) throw Bad(node, $"axis {axes[i]} out of range for rank {rank}");
                if (steps[i] == 0) throw Bad(node, "a Slice step of 0");
                long dim = c.Shape[a];
                // ONNX's clamping: [0, dim] for a positive step, [−1, dim − 1] for a negative one (torch writes step −1 to reverse F.pad's pads)
                long lo = steps[i] > 0 ? 0 : -1, hi = steps[i] > 0 ? dim : Math.Max(0, dim - 1);
                long s = Math.Clamp(starts[i] < 0 ? starts[i] + dim : starts[i], 0, hi);
                long e = Math.Clamp(ends[i] < 0 ? ends[i] + dim : ends[i], lo, hi);
                start[a] = s;
                step[a] = steps[i];
                shape[a] = dim == 0 ? 0 : steps[i] > 0 ? (e > s ? 1 + (e - s - 1) / steps[i] : 0) : (s > e ? 1 + (s - e - 1) / -steps[i] : 0);
            }
            return Strided(c, start, step, shape, node);
        }

        /// <summary>The shape of a constant (ONNX Shape, with its optional start and end attributes), as an integer vector.</summary>
        private static Const ShapeOf(Const c, NodeProto node)
        {
            int rank = c.Shape.Length;
            long Axis(long v) => Math.Clamp(v < 0 ? v + rank : v, 0, rank);
            long from = Axis(Int(node, "start", 0)), to = Axis(Int(node, "end", rank));
            var dims = c.Shape.Skip((int)from).Take((int)Math.Max(0, to - from)).Select(d => (double)d).ToArray();
            return new Const([dims.Length], dims, true);
        }

        private Const Concat(Const[] parts, long axis, NodeProto node)
        {
            if (parts.Length == 0) throw Bad(node, "Concat of nothing");
            int rank = parts[0].Shape.Length;
            if (axis < 0) axis += rank;
            if (axis < 0 || axis >= rank || parts.Any(p => p.Shape.Length != rank || Enumerable.Range(0, rank).Any(i => i != axis && p.Shape[i] != parts[0].Shape[i])))
                throw Bad(node, $"Concat of shapes {string.Join(", ", parts.Select(p => Fmt(p.Shape)))} on axis {axis}");
            var shape = (long[])parts[0].Shape.Clone();
            shape[axis] = parts.Sum(p => p.Shape[axis]);
            long outer = shape.Take((int)axis).Aggregate(1L, (a, b) => a * b);
            var values = new List<double>((int)Count(shape, node));
            for (long o = 0; o < outer; o++)
                foreach (var p in parts)
                {
                    long inner = p.Shape.Skip((int)axis).Aggregate(1L, (a, b) => a * b);
                    values.AddRange(p.Values.Skip((int)(o * inner)).Take((int)inner));
                }
            return new Const(shape, values.ToArray(), parts.All(p => p.IsInt));
        }

        private static Const Transpose(Const c, long[] perm, NodeProto? node = null)
        {
            int rank = c.Shape.Length;
            if (perm.Length != rank || perm.OrderBy(p => p).Select((p, i) => p == i).Any(ok => !ok))
                throw node is null ? new ArgumentException("bad permutation") : Bad(node, $"perm {Fmt(perm)} for rank {rank}");
            var src = Strides(c.Shape);
            var outShape = perm.Select(p => c.Shape[p]).ToArray();
            // read c at permuted strides: an odometer over the output with per-axis source strides
            var tmp = new Const(new[] { c.Count }, c.Values, c.IsInt);
            var stepPerAxis = perm.Select(p => src[p]).ToArray();
            long n = c.Count;
            var values = new double[n];
            var idx = new long[rank];
            for (long k = 0; k < n; k++)
            {
                long off = 0;
                for (int a = 0; a < rank; a++) off += idx[a] * stepPerAxis[a];
                values[k] = tmp.Values[off];
                for (int a = rank - 1; a >= 0; a--)
                {
                    if (++idx[a] < outShape[a]) break;
                    idx[a] = 0;
                }
            }
            return new Const(outShape, values, c.IsInt);
        }

        private Const GatherConst(Const c, Const indices, long axis, NodeProto node)
        {
            int rank = c.Shape.Length;
            if (axis < 0) axis += rank;
            if (axis < 0 || axis >= rank) throw Bad(node, $"axis {axis} out of range for {Fmt(c.Shape)}");
            long dim = c.Shape[axis];
            var parts = new List<Const>();
            foreach (var raw in indices.Longs())
            {
                long i = raw < 0 ? raw + dim : raw;
                if (i < 0 || i >= dim) throw Bad(node, $"index {raw} out of range for dimension {dim}");
                var start = new long[rank];
                start[axis] = i;
                var shape = (long[])c.Shape.Clone();
                shape[axis] = 1;
                parts.Add(Strided(c, start, Enumerable.Repeat(1L, rank).ToArray(), shape, node));
            }
            var joined = parts.Count == 1 ? parts[0] : Concat(parts.ToArray(), axis, node);
            var outShape = c.Shape.Take((int)axis).Concat(indices.Shape).Concat(c.Shape.Skip((int)axis + 1)).ToArray();
            return joined with { Shape = outShape };
        }

        // ------------------------------------------------------------------ attributes and errors

        private static AttributeProto? Attr(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name);

        private static long Int(NodeProto node, string name, long fallback) => Attr(node, name) is { } a ? a.I : fallback;

        private static double Float(NodeProto node, string name, double fallback) => Attr(node, name) is { } a ? a.F : fallback;

        private static long[]? Ints(NodeProto node, string name) => Attr(node, name) is { } a ? a.Ints.ToArray() : null;

        private static string Str(NodeProto node, string name, string fallback) => Attr(node, name) is { } a ? a.S.ToStringUtf8() : fallback;

        private static string[]? Strs(NodeProto node, string name) => Attr(node, name) is { } a ? a.Strings.Select(s => s.ToStringUtf8()).ToArray() : null;

        private static string Fmt(IEnumerable<long> shape) => "[" + string.Join(", ", shape.Select(d => d == -1 ? "N" : d == BatchDim ? "N" : d.ToString(CultureInfo.InvariantCulture))) + "]";

        /// <summary>An ints attribute of <paramref name="count"/> values, each in [<paramref name="min"/>, int.MaxValue]; <paramref name="fallback"/> when absent (null: required).</summary>
        private static long[] Sizes(NodeProto node, string name, long[]? fallback, int count, long min)
        {
            var v = Ints(node, name) ?? fallback ?? throw Bad(node, $"no {name}");
            if (v.Length != count) throw Unsupported(node, $"{node.OpType} with {name} {Fmt(v)}", $"2-D {node.OpType} ({count} values of {name})");
            if (v.Any(x => x < min || x > int.MaxValue)) throw Bad(node, $"{name} {Fmt(v)} must be in [{min}, {int.MaxValue}]");
            return v;
        }

        private static double One(Const c, string what, NodeProto node) =>
            c.Values.Length == 1 ? c.Values[0] : throw Bad(node, $"{what} must be one value, got shape {Fmt(c.Shape)}");

        private static ArgumentException Bad(NodeProto node, string what) =>
            new($"node '{node.Name}' ({(node.Domain == OnnxPatterns.Domain ? Str(node, "what", "") : node.OpType)}): {what}.");

        private static ArgumentException Unsupported(NodeProto node, string what, string? instead = null) =>
            new($"node '{node.Name}' ({(node.Domain == OnnxPatterns.Domain ? Str(node, "what", "") : "op type " + node.OpType)}): {what} is not supported; nearest supported: {instead ?? Nearest(node.OpType)} (docs/onnx.md lists the supported operators).");

        /// <summary>The supported operator closest to <paramref name="op"/>: a known substitute, else the least edit distance.</summary>
        private static string Nearest(string op) => op switch
        {
            "Softmax" or "LogSoftmax" => "none: end the network with its logits (GradFlow's loss applies the softmax)",
            "ConvTranspose" => "Conv",
            "GroupNormalization" => "InstanceNormalization, or nn.GroupNorm as PyTorch exports it (Reshape, InstanceNormalization, Reshape, Mul, Add)",
            "ReduceMean" => "GlobalAveragePool",
            "Erf" => "Gelu (x·½·(1 + erf(x/√2)) as torch.onnx.export writes nn.GELU())",
            "HardSigmoid" => "Sigmoid",
            "Clip" => "Relu",
            "Mul" or "Sub" or "Div" => "Add of two layers' outputs (a residual block)",
            _ => SupportedOperators.OrderBy(s => Distance(s.ToLowerInvariant(), op.ToLowerInvariant())).First(),
        };

        private static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (int j = 0; j <= b.Length; j++) d[0, j] = j;
            for (int i = 1; i <= a.Length; i++)
                for (int j = 1; j <= b.Length; j++)
                    d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }
    }
}
