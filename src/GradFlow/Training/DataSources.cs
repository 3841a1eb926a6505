using GradFlow.Data;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>Training and test sets of a run.</summary>
public sealed record DataBundle(Dataset Train, Dataset Test)
{
    /// <summary>What was done to a data file's examples before the model saw them (recorded in the run directory), or null for a built-in set.</summary>
    public Preprocessing? Preprocessing { get; init; }
}

/// <summary>Resolves a config's <c>data</c> name to data sets.</summary>
public static class DataSources
{
    /// <summary>The valid names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["fashion-mnist", "spirals", "circles", "teacher", "adding", "fashion-mnist-rows", "kjv"];

    /// <summary>The fixed seed of the adding problem's test sequences: one test set for every run seed, never drawn in training.</summary>
    public const ulong AddingTestSeed = 0x7E575E70FADD5UL;

    /// <summary>Time steps of the adding problem's default training set: 128 000 sequences at T = 100.</summary>
    public const int AddingTrainSteps = 12_800_000;

    /// <summary>
    /// Loads or generates the data: Fashion-MNIST (flattened, standardised with the training set's
    /// mean and standard deviation), or a synthetic set of 4000 training and 1000 test examples
    /// generated from the seed (the teacher task takes its input size and class count from the model);
    /// for language models, <c>kjv</c> (<see cref="TextCorpus.Kjv"/>) or a <c>.txt</c> file (<see cref="TextCorpus.FromFile"/>): windows of
    /// the model's T characters, the last 10 % validating;
    /// for recurrent models, the adding problem (<see cref="SequenceTasks.Adding"/>, T =
    /// <see cref="TrainingConfig.SequenceLength"/> or 100: by default <see cref="AddingTrainSteps"/>/T training
    /// sequences, 128 000 at T = 100, so that 4000 steps of 32 see fresh ones; 2000 test sequences from <see cref="AddingTestSeed"/>) or Fashion-MNIST by rows
    /// ([N, 28, 28]). Any other name is a file or folder (<see cref="FileData"/>).
    /// </summary>
    /// <remarks>The layout follows the description's input shape: [N, F] for an input [F], [N, T, I] for a
    /// sequence input [T, I], and [N, C, H, W] for an image input [C, H, W] (Fashion-MNIST as [N, 1, 28, 28]).</remarks>
    /// <exception cref="ArgumentException">naming the data set and the model when their sizes do not fit.</exception>
    public static DataBundle Load(TrainingConfig config, NetworkDescription description)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(description);
        ulong s = config.Seed;
        var input = description.Input;
        var outputShape = description.OutputShape();
        bool text = IsCorpus(config.Data);
        if (text && (input.Count != 1 || outputShape.Length != 2 || outputShape[0] != input[0]))
            throw new ArgumentException($"data: '{config.Data}' is a character corpus; its model takes [T] characters and gives [T, vocabulary] logits (e.g. 'transformer vocab=65'), but {config.DescribeModel()} maps {Shapes.Format(input.ToArray())} to {Shapes.Format(outputShape)}.");
        int output = outputShape[^1];
        bool fromFile = false;
        var bundle = config.Data switch
        {
            "fashion-mnist" => FashionMnistBundle(config.DataDir),
            "spirals" => new DataBundle(Synthetic.TwoSpirals(4000, 0.05, seed: s * 2 + 1), Synthetic.TwoSpirals(1000, 0.05, seed: s * 2 + 2)),
            "circles" => new DataBundle(Synthetic.ConcentricCircles(4000, 0.05, seed: s * 2 + 1), Synthetic.ConcentricCircles(1000, 0.05, seed: s * 2 + 2)),
            "teacher" => TeacherBundle(input.Aggregate(1, (a, n) => a * n), output, s),
            "adding" => AddingBundle(config),
            "fashion-mnist-rows" => FashionMnistRowsBundle(config.DataDir),
            _ when text => TextBundle(Corpus(config.Data)!, input[0]),
            _ => FromFile(),
        };
        DataBundle FromFile()
        {
            fromFile = true;
            // a model that starts with an embedding reads token ids: a file's ids are not standardised (standardised ids were refused
            // deep inside the embedding, "input element 0 is -0.51"), and each must be an id of its vocabulary
            var tokens = TokenEmbedding(description);
            var loaded = FileData.Load(tokens is null ? config : config with { Standardize = false });
            if (tokens is not null)
                foreach (var (set, file) in new[] { (loaded.Train, config.Data), (loaded.Test, config.TestData ?? config.Data) })
                    if (!set.IsStreamed) CheckTokenIds(config, description, set.Inputs, file); // a streamed set's ids are read batch by batch
            return loaded;
        }
        if (ExampleShape(config, description, bundle.Train.InputShape, fromFile && bundle.Train.Count > 0, config.Data) is { } shape)
            bundle = bundle with { Train = Reshape(bundle.Train, shape), Test = Reshape(bundle.Test, shape) };
        // a class per position ([N, T] labels: a sequence tagger, a language model) needs logits per position ([T, classes]); anything
        // else, a vector of outputs per example
        int positions = bundle.Train.Labels is { } labels && labels.Shape.Length == 2 ? labels.Shape[1] : 0;
        if (positions > 0 && !text && (outputShape.Length != 2 || outputShape[0] != positions))
            throw new ArgumentException($"data: '{config.Data}' has a class for each of {positions} positions per example, but the model ({config.DescribeModel()}) gives " +
                $"{Shapes.Format(outputShape)} per example; a class per position needs [{positions}, classes] logits (a recurrent block with output=sequence and a linear, or a transformer).");
        if (positions == 0 && !text && outputShape.Length != 1)
            throw new ArgumentException($"data: the model ({config.DescribeModel()}) gives {Shapes.Format(outputShape)} per example; training needs a vector of outputs " +
                "(end the network with a flatten and a linear), or labels with a class per position ([N, T]).");
        if (text && bundle.Train.ClassCount != output)
            throw new ArgumentException($"data: '{config.Data}' is a character corpus of {bundle.Train.ClassCount} distinct characters, but the model gives {output} logits per position; " +
                $"its vocabulary must be the corpus's (vocab={bundle.Train.ClassCount}).");
        if (bundle.Train.IsClassification && bundle.Train.ClassCount != output)
            throw new ArgumentException($"data: '{config.Data}' has {bundle.Train.ClassCount} classes but the model has {output} outputs.");
        if (!bundle.Train.IsClassification && bundle.Train.Targets!.Count / Math.Max(1, bundle.Train.Count) is var targets && targets != output)
            throw new ArgumentException($"data: '{config.Data}' has {targets} regression target{(targets == 1 ? "" : "s")} per example but the model has {output} outputs." +
                (fromFile && config.TargetKind == TargetKind.Auto && targets == 1 && output > 1 && AllWhole(bundle.Train.Targets) && AllWhole(bundle.Test.Targets!)
                    ? " The targets are whole numbers written as floats (such as 1.0), which --task auto reads as regression values; " +
                      "if they are class labels, pass --task classes (the 'targetKind' field)."
                    : ""));
        if (bundle.Preprocessing is { Classes: null } p && bundle.Train.IsClassification)
            bundle = bundle with { Preprocessing = p with { Classes = [.. Enumerable.Range(0, output).Select(k => k.ToString(System.Globalization.CultureInfo.InvariantCulture))] } };
        var train = config.TrainLimit is { } tl && tl < bundle.Train.Count ? bundle.Train.Subset(0, tl) : bundle.Train;
        var test = config.TestLimit is { } el && el < bundle.Test.Count ? bundle.Test.Subset(0, el) : bundle.Test;
        return bundle with { Train = train, Test = test };
    }

    /// <summary>
    /// Checks that every value of <paramref name="inputs"/> is a token id of the embedding <paramref name="description"/>'s model starts
    /// with (nothing to check for another model).
    /// </summary>
    /// <exception cref="ArgumentException">naming the file and the first value that is not an id.</exception>
    internal static void CheckTokenIds(TrainingConfig config, NetworkDescription description, Tensor inputs, string file) =>
        CheckTokenIds(description, inputs, file, config.DescribeModel);

    /// <summary>
    /// <see cref="CheckTokenIds(TrainingConfig, NetworkDescription, Tensor, string)"/> for inputs read without a training config (the
    /// batch of <c>gradflow grads</c>); <paramref name="model"/> describes the model in the error.
    /// </summary>
    /// <exception cref="ArgumentException">naming the file and the first value that is not an id.</exception>
    public static void CheckTokenIds(NetworkDescription description, Tensor inputs, string file, Func<string> model)
    {
        ArgumentNullException.ThrowIfNull(description);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(model);
        if (TokenEmbedding(description) is not { } e) return;
        for (int i = 0; i < inputs.Count; i++)
            if (inputs.GetFlat(i) is var v && !(v >= 0 && v < e.Vocab && v == Math.Floor(v)))
                throw new ArgumentException($"data: '{file}' holds the input value {v}, not a token id in [0, {e.Vocab}): the model ({model()}) " +
                    "starts with an embedding, which reads token ids.");
    }

    /// <summary>
    /// The shape each example of <paramref name="file"/>'s inputs <paramref name="inputs"/> ([N, …] as read) takes for
    /// <paramref name="description"/>'s model, or null when they keep theirs: a file's sequences read flat ([N, T·I], when
    /// <paramref name="flatSequences"/>) cut into steps of the model's I features (<see cref="NetworkDescription.FlatSequenceSteps"/>,
    /// or <c>--seq-len</c>), a flat image laid out as the model's [C, H, W]. Used for training data and for files to predict.
    /// </summary>
    /// <exception cref="ArgumentException">naming the file and the model when the sizes do not fit.</exception>
    internal static int[]? ExampleShape(TrainingConfig config, NetworkDescription description, int[] inputs, bool flatSequences, string file)
    {
        var input = description.Input;
        int[]? reshaped = null;
        // a file's sequences read flat ([N, T·I]) are cut into steps of the description's I features, as images take [C, H, W]
        if (flatSequences && input.Count == 2 && inputs.Length == 2)
        {
            int steps = description.FlatSequenceSteps(inputs[1], config.SequenceLength) ?? throw new ArgumentException(
                $"data: '{file}' has {inputs[1]} values per example, read flat as time steps of the {input[1]} feature{(input[1] == 1 ? "" : "s")} the model " +
                $"({config.DescribeModel()}) takes per step; " + (config.SequenceLength is { } t
                    ? $"--seq-len {t} (the 'sequenceLength' field) needs {(long)t * input[1]} values per example."
                    : inputs[1] % input[1] != 0 ? $"{inputs[1]} is not a multiple of {input[1]}." : $"the network does not run at {inputs[1] / input[1]} steps."));
            reshaped = [steps, input[1]];
            inputs = [inputs[0], steps, input[1]];
        }
        if (input.Count == 2)
        {
            if (inputs.Length != 3)
                throw new ArgumentException($"data: '{file}' is not a sequence data set (inputs {Shapes.Format(inputs)}); a recurrent model ({config.DescribeModel()}) needs [N, T, features] (adding, fashion-mnist-rows).");
            if (inputs[2] != input[1])
                throw new ArgumentException($"data: '{file}' has {inputs[2]} features per time step but the model expects {input[1]}.");
            if (flatSequences && config.SequenceLength is { } t && inputs[1] != t)
                throw new ArgumentException($"data: '{file}' has sequences of {inputs[1]} steps, but --seq-len (the 'sequenceLength' field) says {t}.");
            return reshaped;
        }
        int perExample = inputs.Skip(1).Aggregate(1, (a, d) => a * d);
        int expected = input.Aggregate(1, (a, n) => a * n);
        if (perExample != expected)
            throw new ArgumentException($"data: '{file}' has {perExample} inputs per example but the model expects {expected}{(input.Count > 1 ? $" ({Shapes.Format(input.ToArray())})" : "")}.");
        return input.Count > 1 ? [.. input] : null;
    }

    /// <summary>Whether every value of <paramref name="targets"/> is a whole number (float targets that may be class labels).</summary>
    private static bool AllWhole(Tensor targets)
    {
        for (int i = 0; i < targets.Count; i++)
            if (targets.GetFlat(i) is var v && v != Math.Floor(v)) return false;
        return true;
    }

    /// <summary>The same examples with each input laid out as <paramref name="shape"/> (e.g. Fashion-MNIST's 784 pixels as [1, 28, 28]).</summary>
    private static Dataset Reshape(Dataset data, IReadOnlyList<int> shape) => data.WithExampleShape(shape);

    private static DataBundle AddingBundle(TrainingConfig config)
    {
        int length = config.SequenceLength ?? 100;
        // 12.8 million time steps (100 MB), whatever the run's budget: the same seed gives the same training set for
        // a short trial and a full run (128 000 sequences at T = 100: 4000 steps of 32 without repeating one)
        int train = config.TrainLimit ?? Math.Max(1000, AddingTrainSteps / length);
        int test = config.TestLimit ?? 2000;
        return new DataBundle(SequenceTasks.Adding(train, length, seed: config.Seed * 2 + 1), SequenceTasks.Adding(test, length, seed: AddingTestSeed));
    }

    /// <summary>
    /// Whether <paramref name="name"/> is a character corpus (its model's output is [T, vocabulary]): <c>kjv</c>, or a text file
    /// (<c>.txt</c>, <see cref="TextCorpus.FromFile"/>).
    /// </summary>
    public static bool IsCorpus(string name) => name is "kjv" || IsTextFile(name);

    /// <summary>The embedding the network's input goes into first (a model that reads token ids), or null.</summary>
    private static EmbeddingBlock? TokenEmbedding(NetworkDescription description) =>
        description.Shapes().FirstOrDefault(s => s.Block is not SequenceBlock)?.Block as EmbeddingBlock;

    /// <summary>Whether <paramref name="name"/> is the path of a text file read as a character corpus (its extension is <c>.txt</c>).</summary>
    public static bool IsTextFile(string name) => name.EndsWith(".txt", StringComparison.OrdinalIgnoreCase);

    /// <summary>The corpus named <paramref name="name"/> (<c>kjv</c> or a text file), or null for another data set.</summary>
    public static TextCorpus? Corpus(string name) => name switch
    {
        "kjv" => TextCorpus.Kjv(),
        _ when IsTextFile(name) => TextCorpus.FromFile(name),
        _ => null,
    };

    /// <summary>Windows of <paramref name="length"/> characters: the training part and the validation part (the last 10 %).</summary>
    private static DataBundle TextBundle(TextCorpus corpus, int length) => new(corpus.Windows(train: true, length), corpus.Windows(train: false, length));

    private static DataBundle FashionMnistRowsBundle(string? dir)
    {
        var resolved = DataResolver.ResolveFashionMnist(dir);
        return new DataBundle(SequenceTasks.FashionMnistRows(resolved, MnistSplit.Train), SequenceTasks.FashionMnistRows(resolved, MnistSplit.Test))
            { Preprocessing = FashionMnistPreprocessing };
    }

    /// <summary>Fashion-MNIST's fixed preprocessing (pixels / 255, then the training set's mean and deviation) and class names: what predicting an IDX file needs.</summary>
    private static Preprocessing FashionMnistPreprocessing { get; } = new([FashionMnist.TrainMean], [FashionMnist.TrainStd], FashionMnist.ClassNames, null);

    private static DataBundle FashionMnistBundle(string? dir)
    {
        var resolved = DataResolver.ResolveFashionMnist(dir);
        return new DataBundle(FashionMnist.Load(resolved, MnistSplit.Train, standardise: true), FashionMnist.Load(resolved, MnistSplit.Test, standardise: true))
            { Preprocessing = FashionMnistPreprocessing };
    }

    private static DataBundle TeacherBundle(int input, int classes, ulong seed)
    {
        // One teacher for both sets: generate them together and split, so test labels come from the same function.
        // 10 000 test examples: accuracy is then known to about ±0.5 point (1000 would give ±1.5), which
        // comparisons between configurations (repair within 2 points of a reference) need.
        var all = Synthetic.TeacherClassification(14000, input, classes, seed: seed);
        var (train, test) = all.Split(4000);
        return new DataBundle(train, test);
    }
}
