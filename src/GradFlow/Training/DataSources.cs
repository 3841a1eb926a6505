using GradFlow.Data;

namespace GradFlow.Training;

/// <summary>Training and test sets of a run.</summary>
public sealed record DataBundle(Dataset Train, Dataset Test);

/// <summary>Resolves a config's <c>data</c> name to data sets.</summary>
public static class DataSources
{
    /// <summary>The valid names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["fashion-mnist", "spirals", "circles", "teacher"];

    /// <summary>
    /// Loads or generates the data: Fashion-MNIST (flattened, standardised with the training set's
    /// mean and standard deviation), or a synthetic set of 4000 training and 1000 test examples
    /// generated from the seed (the teacher task takes its input size and class count from the model).
    /// </summary>
    public static DataBundle Load(TrainingConfig config, int modelInput, int modelOutput)
    {
        ArgumentNullException.ThrowIfNull(config);
        ulong s = config.Seed;
        var bundle = config.Data switch
        {
            "fashion-mnist" => FashionMnistBundle(config.DataDir),
            "spirals" => new DataBundle(Synthetic.TwoSpirals(4000, 0.05, seed: s * 2 + 1), Synthetic.TwoSpirals(1000, 0.05, seed: s * 2 + 2)),
            "circles" => new DataBundle(Synthetic.ConcentricCircles(4000, 0.05, seed: s * 2 + 1), Synthetic.ConcentricCircles(1000, 0.05, seed: s * 2 + 2)),
            "teacher" => TeacherBundle(modelInput, modelOutput, s),
            _ => throw new ArgumentException($"data: unknown data set '{config.Data}' (valid: {string.Join(", ", Names)})."),
        };
        int inputs = bundle.Train.Inputs.Count / Math.Max(1, bundle.Train.Count);
        if (inputs != modelInput)
            throw new ArgumentException($"data: '{config.Data}' has {inputs} inputs per example but the model expects {modelInput}.");
        if (bundle.Train.ClassCount != modelOutput)
            throw new ArgumentException($"data: '{config.Data}' has {bundle.Train.ClassCount} classes but the model has {modelOutput} outputs.");
        var train = config.TrainLimit is { } tl && tl < bundle.Train.Count ? bundle.Train.Subset(0, tl) : bundle.Train;
        var test = config.TestLimit is { } el && el < bundle.Test.Count ? bundle.Test.Subset(0, el) : bundle.Test;
        return new DataBundle(train, test);
    }

    private static DataBundle FashionMnistBundle(string? dir)
    {
        var resolved = DataResolver.ResolveFashionMnist(dir);
        return new DataBundle(FashionMnist.Load(resolved, MnistSplit.Train, standardise: true), FashionMnist.Load(resolved, MnistSplit.Test, standardise: true));
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
