using System.Text.Json;
using System.Text.Json.Serialization;
using GradFlow.Nn;
using GradFlow.Nn.Network;

namespace GradFlow.Training;

/// <summary>The optimisers a training run can use.</summary>
public enum OptimizerKind
{
    /// <summary>SGD (with optional momentum).</summary>
    Sgd,
    /// <summary>Adam.</summary>
    Adam,
    /// <summary>AdamW (decoupled weight decay).</summary>
    AdamW,
    /// <summary>RMSprop.</summary>
    RmsProp,
    /// <summary>Adagrad.</summary>
    Adagrad,
}

/// <summary>Learning-rate schedule over the run's steps.</summary>
public enum ScheduleKind
{
    /// <summary>Constant rate.</summary>
    Constant,
    /// <summary>Cosine annealing to 0 over all steps.</summary>
    Cosine,
    /// <summary>×0.1 every third of the run.</summary>
    Step,
    /// <summary>Linear decay to 0 over all steps (after the warm-up: the transformer fine-tuning schedule).</summary>
    Linear,
}

/// <summary>The arithmetic of a training run's matrix products.</summary>
public enum PrecisionKind
{
    /// <summary>float32 throughout.</summary>
    Fp32,
    /// <summary>
    /// Mixed precision: the operands of every float32 GEMM (linear layers, attention, convolutions)
    /// rounded to bfloat16, products accumulated in float32; float32 master weights, gradients and optimiser state.
    /// </summary>
    Bf16,
}

/// <summary>
/// Everything needed to re-run a training run (written as <c>config.json</c> in the run directory and
/// accepted back by <c>gradflow train --config</c>). The model is any network description: a
/// shorthand (<c>mlp …</c>, <c>lstm …</c>, <c>resnet20</c>, <c>cnn …</c>), the <c>net …</c> text form, or
/// a JSON description or spec (docs/model-spec.md).
/// </summary>
public sealed record TrainingConfig
{
    /// <summary>Every field at its default, for checks against the defaults.</summary>
    private static readonly TrainingConfig Defaults = new();

    /// <summary>The model: a network description's text, shorthand or JSON (<see cref="NetworkDescription.Parse"/>).</summary>
    public string Model { get; init; } = "mlp 784-256x2-10 act=relu init=he-normal";

    /// <summary>Data set: <c>fashion-mnist</c>, <c>spirals</c>, <c>circles</c>, <c>teacher</c> (classification); <c>adding</c> (the adding problem, regression); <c>fashion-mnist-rows</c> (Fashion-MNIST read row by row, a sequence of 28 steps).</summary>
    public string Data { get; init; } = "fashion-mnist";

    /// <summary>For data from files (<see cref="FileData"/>): the target column of a CSV/TSV file, or the label file of IDX images or of an NPY array (default: see docs/data.md).</summary>
    public string? Target { get; init; }

    /// <summary>For data from files: what the target holds (class labels or regression values; by default decided from the values).</summary>
    public GradFlow.Data.TargetKind TargetKind { get; init; } = GradFlow.Data.TargetKind.Auto;

    /// <summary>For data from files: a test file (or image folder) in the training data's format; null = a seeded split of the training data.</summary>
    public string? TestData { get; init; }

    /// <summary>For data from files without <see cref="TestData"/>: the fraction of examples held out for testing (seeded by <see cref="Seed"/>).</summary>
    public double TestFraction { get; init; } = 0.2;

    /// <summary>For data from files: standardise the inputs with the training set's statistics (per feature; per channel for image folders; one mean for IDX images).</summary>
    public bool Standardize { get; init; } = true;

    /// <summary>
    /// For CSV/TSV files and image folders: read the inputs from disk batch by batch instead of into memory
    /// (data larger than memory; docs/data.md). The same seed gives the same numbers either way.
    /// </summary>
    public bool Stream { get; init; }

    /// <summary>For image folders: the width and height every image is resized to (null = the first image's size).</summary>
    public int? ImageWidth { get; init; }

    /// <summary>For image folders: see <see cref="ImageWidth"/>.</summary>
    public int? ImageHeight { get; init; }

    /// <summary>For image folders: 1 (grey) or 3 (RGB) channels.</summary>
    public int ImageChannels { get; init; } = 3;

    /// <summary>Directory of the Fashion-MNIST files (else <c>$GRADFLOW_DATA</c>, else the Debian package's).</summary>
    public string? DataDir { get; init; }

    /// <summary>
    /// Steps per sequence: the <c>adding</c> problem's (null = 100); for a data file, the steps T its flat rows of T·I values are cut
    /// into (null = the row's values over the model's I features per step), or the length its [N, T, I] sequences must have.
    /// </summary>
    public int? SequenceLength { get; init; }

    /// <summary>Use only the first N training examples (null = all).</summary>
    public int? TrainLimit { get; init; }

    /// <summary>Use only the first N test examples (null = all).</summary>
    public int? TestLimit { get; init; }

    /// <summary>Optimiser.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>Learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>SGD/RMSprop momentum.</summary>
    public double Momentum { get; init; }

    /// <summary>SGD with Nesterov momentum (PyTorch's <c>nesterov=True</c>; needs momentum &gt; 0). Written only when set.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Nesterov { get; init; }

    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Learning-rate schedule.</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;

    /// <summary>
    /// Linear learning-rate warm-up over this many first steps, from lr/W up to lr (0 = none), before the
    /// <see cref="Schedule"/>, which then runs over the remaining steps (Goyal et al. 2017; what a Post-LN
    /// transformer needs, Xiong et al. 2020).
    /// </summary>
    public int WarmupSteps { get; init; }

    /// <summary>Epochs.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Batch size.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Stop after this many steps (short trials), or null.</summary>
    public int? MaxSteps { get; init; }

    /// <summary>Clip the global gradient norm to this value, or null.</summary>
    public double? ClipNorm { get; init; }

    /// <summary>Clip each gradient element to ±this value, or null.</summary>
    public double? ClipValue { get; init; }

    /// <summary>Adaptive gradient clipping factor λ, or null.</summary>
    public double? ClipAgc { get; init; }

    /// <summary>Cross-entropy label smoothing.</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>The arithmetic of the matrix products (<see cref="PrecisionKind"/>; default float32).</summary>
    public PrecisionKind Precision { get; init; }

    /// <summary>Image augmentation of the training batches: random crop with this zero padding on every side (0 = none). Evaluation is never augmented.</summary>
    public int AugmentPadding { get; init; }

    /// <summary>Image augmentation of the training batches: horizontal flip with this probability (0 = none).</summary>
    public double AugmentFlip { get; init; }

    /// <summary>Seed of every random choice (initialisation, shuffling, dropout, synthetic data).</summary>
    public ulong Seed { get; init; }

    /// <summary>Kernel threads (null = all cores).</summary>
    public int? Threads { get; init; }

    /// <summary>
    /// Cut every batch into this many micro-batches whose gradients are combined in a fixed order (<see cref="DataParallel"/>):
    /// a run of N processes (<c>mpirun -np N</c>, N dividing it) then gives the same weights, bit for bit, as one process.
    /// Null: the whole batch at once (one process), or one micro-batch per process under mpirun.
    /// </summary>
    public int? MicroBatches { get; init; }

    /// <summary>
    /// With several processes, batch norms normalise with the statistics of the whole global batch (synchronised batch norm,
    /// as PyTorch's <c>SyncBatchNorm</c>; <see cref="Nn.BatchNormBase.Sync"/>) instead of each micro-batch's own; a process's
    /// micro-batches then run as one forward over its share. One process with one micro-batch is the same thing.
    /// </summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>Write a checkpoint every this many epochs (and at the end); null: only at the end (trials and catalogue runs).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] // null is written: omitted, it would read back as the default 1
    public int? CheckpointEvery { get; init; } = 1;

    /// <summary>
    /// Run the gradient monitor, sampling every this many steps (<c>gradflow train --monitor</c>,
    /// <c>--monitor-every</c>), or null for no monitor. Saved so that a resumed run keeps monitoring.
    /// </summary>
    public int? MonitorEvery { get; init; }

    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // a model "a+b" stays readable
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new EnumNameConverter() },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Enum values as <see cref="EnumNames"/> spells them (as the command line does); a number is refused.</summary>
    private sealed class EnumNameConverter : JsonConverterFactory
    {
        public override bool CanConvert(Type type) => type.IsEnum;

        public override JsonConverter CreateConverter(Type type, JsonSerializerOptions options) =>
            (JsonConverter)Activator.CreateInstance(typeof(Names<>).MakeGenericType(type))!;

        private sealed class Names<T> : JsonConverter<T> where T : struct, Enum
        {
            public override T Read(ref Utf8JsonReader reader, Type type, JsonSerializerOptions options)
            {
                string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                return EnumNames.TryParse<T>(text, out var value) ? value
                    : throw new JsonException($"{(text is null ? $"a {reader.TokenType.ToString().ToLowerInvariant()}" : $"'{text}'")} is not one of {string.Join(", ", EnumNames.All<T>())}.");
            }

            public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(EnumNames.Of(value));
        }
    }

    /// <summary>The JSON form (camelCase keys, enum values as the command line spells them).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>Reads the JSON form; errors name the source and the field. Without <paramref name="requireData"/> the data files need not
    /// exist (a run's config read for its model alone: <c>gradflow export</c>).</summary>
    /// <exception cref="FormatException">for invalid JSON, unknown fields, or values out of range.</exception>
    public static TrainingConfig FromJson(string json, string source = "config", bool requireData = true)
    {
        TrainingConfig? c;
        try
        {
            c = JsonSerializer.Deserialize<TrainingConfig>(json, Options);
        }
        catch (JsonException e)
        {
            // an enum value's error (EnumNameConverter) carries no path in its text: the field is named as the range errors name theirs
            throw new FormatException(e.Path is ['$', '.', .. var field] && !e.Message.Contains("Path:", StringComparison.Ordinal)
                ? $"{source}: field '{field}': {e.Message}" : $"{source}: {e.Message}");
        }
        if (c is null) throw new FormatException($"{source}: empty configuration.");
        c.Validate(source, requireData);
        return c;
    }

    /// <summary>
    /// The key in <see cref="Exception.Data"/> under which <see cref="Validate"/>'s <see cref="FormatException"/>
    /// names a field whose value is out of its range (or names no data); absent for a model that does not parse.
    /// The CLI reports the first as a usage error (exit 2), the second as an error (exit 1).
    /// </summary>
    public const string OutOfRangeField = "GradFlow.OutOfRangeField";

    /// <summary>Checks every field's range, and with <paramref name="requireData"/> that the data names a built-in set or existing files; throws naming the field.</summary>
    public void Validate(string source = "config", bool requireData = true)
    {
        void Require(bool ok, string field, string what)
        {
            if (!ok) throw new FormatException($"{source}: field '{field}' {what}.") { Data = { [OutOfRangeField] = field } };
        }
        Require(Epochs >= 1, "epochs", $"must be at least 1, got {Epochs}");
        Require(BatchSize >= 1, "batchSize", $"must be at least 1, got {BatchSize}");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), "learningRate", $"must be positive, got {LearningRate}");
        Require(Momentum >= 0 && Momentum < 1, "momentum", $"must be in [0, 1), got {Momentum}");
        Require(!Nesterov || Optimizer == OptimizerKind.Sgd && Momentum > 0, "nesterov",
            $"is Nesterov momentum for sgd with momentum > 0; got {EnumNames.Of(Optimizer)} with momentum {Momentum}");
        Require(WeightDecay >= 0, "weightDecay", $"must be non-negative, got {WeightDecay}");
        Require(WarmupSteps >= 0, "warmupSteps", $"must be non-negative, got {WarmupSteps}");
        Require(MaxSteps is null or >= 1, "maxSteps", $"must be at least 1, got {MaxSteps}");
        Require(ClipNorm is null or > 0, "clipNorm", $"must be positive, got {ClipNorm}");
        Require(ClipValue is null or > 0, "clipValue", $"must be positive, got {ClipValue}");
        Require(ClipAgc is null or > 0, "clipAgc", $"must be positive, got {ClipAgc}");
        Require(LabelSmoothing >= 0 && LabelSmoothing < 1, "labelSmoothing", $"must be in [0, 1), got {LabelSmoothing}");
        Require(AugmentPadding >= 0 && AugmentPadding <= 16, "augmentPadding", $"must be in [0, 16] pixels, got {AugmentPadding}");
        Require(AugmentFlip >= 0 && AugmentFlip <= 1, "augmentFlip", $"must be in [0, 1], got {AugmentFlip}");
        Require(Threads is null or (>= 1 and <= 256), "threads", $"must be in 1..256, got {Threads}");
        Require(MicroBatches is null or (>= 1 and <= 4096), "microBatches", $"must be in 1..4096, got {MicroBatches}");
        Require(MicroBatches is null || MicroBatches <= BatchSize, "microBatches", $"({MicroBatches}) must not exceed the batch size ({BatchSize}): each micro-batch needs an example");
        Require(CheckpointEvery is null or >= 1, "checkpointEvery", $"must be at least 1, got {CheckpointEvery}");
        Require(MonitorEvery is null or >= 1, "monitorEvery", $"must be at least 1, got {MonitorEvery}");
        Require(TrainLimit is null or >= 1, "trainLimit", $"must be at least 1, got {TrainLimit}");
        Require(TestLimit is null or >= 1, "testLimit", $"must be at least 1, got {TestLimit}");
        Require(SequenceLength is null or (>= 2 and <= 100_000), "sequenceLength", $"must be in 2..100000, got {SequenceLength}");
        Require(!requireData || DataSources.Names.Contains(Data) || FileData.Exists(Data), "data",
            $"is '{Data}': neither a built-in data set (valid: {string.Join(", ", DataSources.Names)}) nor an existing file or folder");
        Require(!requireData || TestData is null || FileData.Exists(TestData), "testData", $"is '{TestData}', which does not exist");
        Require(TestFraction > 0 && TestFraction < 1, "testFraction", $"must be in (0, 1), got {TestFraction}");
        Require(ImageChannels is 1 or 3, "imageChannels", $"must be 1 or 3, got {ImageChannels}");
        Require(ImageWidth.HasValue == ImageHeight.HasValue, "imageWidth", $"and imageHeight must both be given or neither, got {ImageWidth}x{ImageHeight}");
        Require(ImageWidth is null or (>= 1 and <= 4096), "imageWidth", $"must be in 1..4096, got {ImageWidth}");
        Require(ImageHeight is null or (>= 1 and <= 4096), "imageHeight", $"must be in 1..4096, got {ImageHeight}");
        // a built-in data set ignores what only a data file is read with: refused, not written into config.json as if it had
        // happened (--no-standardize on Fashion-MNIST gave the same losses bit for bit)
        bool builtIn = DataSources.Names.Contains(Data);
        if (builtIn || DataSources.IsTextFile(Data))
        {
            // a text file is a character corpus like kjv: its split (the last 10 % validates) and its windows (the model's context) are fixed
            string only = builtIn ? $"applies to data files only; '{Data}' is a built-in data set" : $"applies to tables, arrays and images only; '{Data}' is a text file, read as a character corpus";
            string split = builtIn ? " with its own test split" : " (its last 10 % validates)";
            Require(Target is null, "target", only);
            Require(TestData is null, "testData", only + (builtIn ? "" : split));
            Require(TestFraction == Defaults.TestFraction, "testFraction", only + split);
            Require(Standardize, "standardize", only + (builtIn ? " (its own preprocessing is fixed: docs/data.md)" : ""));
            Require(!Stream, "stream", only);
            Require(TargetKind == GradFlow.Data.TargetKind.Auto, "targetKind", only);
            Require(ImageWidth is null && ImageHeight is null, "imageWidth", only);
            Require(ImageChannels == Defaults.ImageChannels, "imageChannels", only);
            Require(SequenceLength is null || Data == "adding", "sequenceLength", builtIn
                ? $"applies to the adding problem and data files only; '{Data}' is a built-in data set of fixed shape"
                : $"does not apply to a text file: its windows are the model's context ('{Data}' is read as a character corpus)");
        }
        try
        {
            Description();
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new FormatException($"{source}: field 'model': {e.Message}");
        }
    }

    /// <summary>
    /// The model as a network description: any text <see cref="NetworkDescription.Parse"/> accepts, or the
    /// path of an ONNX file (ending in <c>.onnx</c>), imported by <see cref="Onnx.OnnxImport"/>; its weights
    /// are the network's starting weights (<see cref="ImportedModel"/>).
    /// </summary>
    /// <exception cref="FormatException">for a text that is not a model, or an ONNX file that cannot be imported.</exception>
    /// <exception cref="ArgumentException">for blocks that do not fit the input shape.</exception>
    public NetworkDescription Description() => ImportedModel() is { } m ? m.Description : NetworkDescription.Parse(Model);

    /// <summary>The imported model when <see cref="Model"/> is an ONNX file's path (<see cref="Onnx.OnnxImport.IsOnnxPath"/>), else null.</summary>
    /// <exception cref="FormatException">when the file cannot be imported.</exception>
    public Onnx.OnnxModel? ImportedModel() => Onnx.OnnxImport.IsOnnxPath(Model) ? Onnx.OnnxImport.ReadCached(Model.Trim()) : null;

    /// <summary>The spec the model is written as (an <c>mlp …</c> or <c>rnn|lstm|gru …</c> text or its JSON), or null for any other description.</summary>
    public INetworkSpec? Spec() => NetworkSpecs.TryParse(Model);

    /// <summary>One line naming the model: the spec's description, else the model text (when it is one short line) with the network's shapes and parameter count.</summary>
    public string DescribeModel()
    {
        if (Spec() is { } spec) return spec.Describe();
        string text = Model.Trim();
        string network = Description().Describe();
        return text.StartsWith('{') || text.Length > 80 || text.Contains('\n') ? network : $"{text}: {network}";
    }
}
