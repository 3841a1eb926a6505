using GradFlow.Data;
using GradFlow.Kernels;
using GradFlow.Nn.Network;
using GradFlow.Tensors;

namespace GradFlow.Training;

/// <summary>
/// A file's examples as read for prediction (<see cref="FileData.ReadToPredict"/>): inputs [N, …] as in the file, and its class
/// labels or regression targets when it has them.
/// </summary>
/// <param name="File">The file or folder read.</param>
/// <param name="Inputs">[N, …] as read.</param>
/// <param name="Labels">Class labels, or null.</param>
/// <param name="Targets">Regression targets, or null.</param>
/// <param name="Names">Each example's own name where it has one (an image's file, relative to the folder), or null.</param>
public sealed record PredictionData(string File, Tensor Inputs, IndexTensor? Labels, Tensor? Targets, IReadOnlyList<string>? Names = null);

/// <summary>
/// The outputs of a trained run's model on a file: per example (or per position of each example, for a model that gives a class per
/// position), the class probabilities (softmax of the logits) or the regression values, with the file's labels or targets when it has them.
/// </summary>
/// <param name="File">The file read.</param>
/// <param name="Outputs">[N·P, K]: a row per example and position, probabilities for classes, values for regression.</param>
/// <param name="Classes">The class names in label order, or null for regression.</param>
/// <param name="Labels">The file's class labels, one per row of <paramref name="Outputs"/> in the same order ([N] or [N, P]), or null.</param>
/// <param name="Targets">The file's regression targets [N, K], or null.</param>
/// <param name="Positions">P: 1, or the positions of a model that gives [P, K] per example.</param>
/// <param name="Names">Each example's name (an image's file), or null.</param>
public sealed record Prediction(string File, Tensor Outputs, IReadOnlyList<string>? Classes, IndexTensor? Labels, Tensor? Targets, int Positions = 1,
    IReadOnlyList<string>? Names = null)
{
    /// <summary>Number of examples.</summary>
    public int Count => Outputs.Size(0) / Positions;

    /// <summary>Number of rows of <see cref="Outputs"/>: examples × positions.</summary>
    public int Rows => Outputs.Size(0);

    /// <summary>The most probable class of row <paramref name="i"/> (the first of equal ones).</summary>
    public int PredictedClass(int i)
    {
        int k = Outputs.Size(1), best = 0;
        for (int j = 1; j < k; j++)
            if (Outputs[i, j] > Outputs[i, best]) best = j;
        return best;
    }

    /// <summary>
    /// The file's figures when it has labels or targets: accuracy and mean cross-entropy (−ln of each label's probability, its float
    /// rounding at most that of the probabilities), or NaN and the mean squared error over every target; null without them.
    /// </summary>
    public (double Accuracy, double Loss)? Score()
    {
        if (Labels is { } labels)
        {
            long correct = 0;
            double loss = 0;
            for (int i = 0; i < Rows; i++)
            {
                if (PredictedClass(i) == labels[i]) correct++;
                loss -= Math.Log(Math.Max(Outputs[i, labels[i]], double.Epsilon));
            }
            return ((double)correct / Rows, loss / Rows);
        }
        if (Targets is { } targets)
        {
            double sum = 0;
            for (int i = 0; i < targets.Count; i++)
                sum += Math.Pow(Outputs.GetFlat(i) - targets.GetFlat(i), 2);
            return (double.NaN, sum / targets.Count);
        }
        return null;
    }
}

/// <summary>
/// A trained run's model applied to new data files (<c>gradflow predict</c>): reads the run's config, the newest intact checkpoint and
/// its <c>preprocessing.json</c> (<see cref="Preprocessing"/>); a file is read as the run read its data, standardised with the training
/// set's statistics, laid out as the model's input (<see cref="DataSources.ExampleShape"/>) and run in evaluation mode.
/// </summary>
/// <example>
/// <code>
/// var predictor = Predictor.Load("runs/iris");
/// var p = predictor.Predict("new-flowers.csv");
/// string first = p.Classes![p.PredictedClass(0)];
/// </code>
/// </example>
public sealed class Predictor
{
    private Predictor(TrainingConfig config, Network model, Preprocessing preprocessing, string checkpoint) =>
        (Config, Model, Preprocessing, Checkpoint) = (config, model, preprocessing, checkpoint);

    /// <summary>The run's configuration.</summary>
    public TrainingConfig Config { get; }

    /// <summary>The model with the checkpoint's weights.</summary>
    public Network Model { get; }

    /// <summary>How the run read its data.</summary>
    public Preprocessing Preprocessing { get; }

    /// <summary>The checkpoint whose weights the model holds.</summary>
    public string Checkpoint { get; }

    /// <summary>
    /// Loads <paramref name="runDirectory"/>. A run without <c>preprocessing.json</c> (trained before it was written) takes it from its
    /// training data again, which gives the same statistics when that file is unchanged.
    /// </summary>
    /// <exception cref="InvalidDataException">when the directory holds no run or no intact checkpoint, or its model gives no vector per example.</exception>
    /// <exception cref="ArgumentException">when the run trained on a built-in data set, whose data are not files.</exception>
    public static Predictor Load(string runDirectory)
    {
        ArgumentNullException.ThrowIfNull(runDirectory);
        var model = Onnx.OnnxExport.LoadRun(runDirectory, out string checkpoint);
        string configPath = Path.Combine(runDirectory, "config.json");
        var config = TrainingConfig.FromJson(File.ReadAllText(configPath), configPath, requireData: false);
        // Fashion-MNIST's preprocessing is fixed: its runs predict IDX image files like its own
        if (config.Data is not ("fashion-mnist" or "fashion-mnist-rows") && (DataSources.Names.Contains(config.Data) || DataSources.IsTextFile(config.Data)))
            throw new ArgumentException($"predict: the run trained on '{config.Data}', {(DataSources.IsTextFile(config.Data) ? "a character corpus (use gradflow generate)" : "a built-in data set")}; " +
                "predict reads data files like a run's own (CSV/TSV, NPY/NPZ/safetensors/IDX arrays, image folders), or IDX images for a Fashion-MNIST run.");
        // the description the loaded network was built from (an imported model's ONNX file is not read again)
        var outputs = model.Description.OutputShape();
        var preprocessing = Preprocessing.Read(runDirectory)
            ?? DataSources.Load(config, model.Description).Preprocessing
            ?? throw new InvalidDataException($"predict: {runDirectory}: no {Preprocessing.FileName}, and '{config.Data}' gave none.");
        // a vector per example, or (a tagger's) class logits per position
        if (!(outputs.Length == 1 || (outputs.Length == 2 && preprocessing.Classes is not null)))
            throw new InvalidDataException($"predict: the run's model ({config.DescribeModel()}) gives {Shapes.Format(outputs)} per example; predict writes a vector of outputs " +
                "per example, or class probabilities per position.");
        if (preprocessing.Classes is { } classes && classes.Count != outputs[^1])
            throw new InvalidDataException($"predict: {runDirectory}: {Preprocessing.FileName} names {classes.Count} classes but the model has {outputs[^1]} outputs.");
        return new Predictor(config, model, preprocessing, checkpoint);
    }

    /// <summary>Reads <paramref name="path"/> as the run read its data and runs the model on every example, <paramref name="batchSize"/> at a time.</summary>
    /// <exception cref="InvalidDataException">or <see cref="ArgumentException"/>, naming the file, for data that do not fit the run.</exception>
    public Prediction Predict(string path, int batchSize = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var data = FileData.ReadToPredict(Config, path, Preprocessing);
        var description = Model.Description;
        var x = data.Inputs;
        DataSources.CheckTokenIds(Config, description, x, path);
        if (Preprocessing.Standardizer() is { } s) x = s.Apply(x);
        if (DataSources.ExampleShape(Config, description, x.Shape.ToArray(), flatSequences: true, path) is { } shape) x = x.Reshape([x.Size(0), .. shape]);
        int n = x.Size(0), k = description.OutputShape()[^1], positions = 1;
        float[]? outputs = null;
        Model.Eval();
        using (GradMode.NoGrad())
        using (BFloat16.OperandsScope(Config.Precision == PrecisionKind.Bf16))
        {
            for (int start = 0; start < n; start += batchSize)
            {
                int count = Math.Min(batchSize, n - start);
                var y = Model.Forward(x.Narrow(0, start, count));
                if (Preprocessing.Classes is not null) y = y.Softmax(-1);
                // a class per position: as many positions as the sequences read have (a recurrent model runs at any length)
                if (outputs is null)
                {
                    positions = y.Rank == 3 ? y.Size(1) : 1;
                    if (data.Labels is { } labels && labels.Count != (long)n * positions)
                        throw new InvalidDataException($"predict: {path} has {labels.Count / Math.Max(1, n)} class label(s) per example, but the model gives " +
                            (positions == 1 ? "one prediction per example." : $"a class for each of {positions} positions."));
                    outputs = new float[(long)n * positions * k];
                }
                for (int i = 0; i < count * positions * k; i++) outputs[(long)start * positions * k + i] = (float)y.GetFlat(i);
            }
        }
        return new Prediction(path, new Tensor(outputs ?? [], [n * positions, k]), Preprocessing.Classes, data.Labels, data.Targets, positions, data.Names);
    }
}
