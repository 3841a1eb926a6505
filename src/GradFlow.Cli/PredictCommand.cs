using System.CommandLine;
using System.Globalization;
using nietras.SeparatedValues;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow predict</c>: a trained run's model applied to a new data file, one CSV row per example.</summary>
internal static class PredictCommand
{
    // the arguments and options of 'predict'; one line each
    public static readonly Argument<string> RunDir = new("RUN") { Description = "the run directory (its config.json, preprocessing.json and newest intact checkpoint)" };
    public static readonly Option<string?> Data = new("--data") { Description = "the file or folder to predict, of the kind the run trained on", HelpName = "PATH", Required = true };
    public static readonly Option<string?> Out = Opt.String("out", "the CSV file to write (default: standard output)", "FILE.csv");
    public static readonly Option<int?> BatchSize = Opt.Int("batch-size", "examples per forward pass (default 1000)");

    public static Command Declare()
    {
        var command = new Verb("predict", "a trained run's model applied to a new data file",
            "Reads PATH as the run RUN read its data: a table with the run's feature columns (the target column may be left out), an array file " +
            "(NPY, NPZ or safetensors with x and optionally y, IDX images with or without their labels file) or an image folder, with the run's class " +
            "folders or only images; standardises it with the training set's statistics (RUN/preprocessing.json) and runs the model of the newest intact checkpoint " +
            "in evaluation mode. Writes one CSV row per example (per example and position, 'position', for a model that gives a class per position): 'row' (1-based), an image's 'file', 'target' when the file has one, 'prediction' (the most probable " +
            "class's name, or the regression value), and for classes the probability of each (a column 'p_NAME' per class). When the file has " +
            "targets, prints the accuracy and loss. The file is written atomically. Exit code: 0 written, 1 error, 2 usage.")
        { RunDir, Data, Out, BatchSize };
        command.Validators.Add(r =>
        {
            if (r.Valid(BatchSize) is int b and < 1) r.AddError($"--batch-size must be ≥ 1, got {b}.");
        });
        command.SetAction(r => Run(r, r.Out(), r.Err()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout, TextWriter stderr)
    {
        string run = o.GetValue(RunDir)!;
        var predictor = Predictor.Load(run);
        var prediction = predictor.Predict(o.GetValue(Data)!, o.GetValue(BatchSize) ?? 1000);
        string csv = Csv(prediction);
        string? summary = Summary(prediction);
        if (o.GetValue(Out) is { } path)
        {
            AtomicFile.WriteAllText(path, csv);
            stdout.WriteLine($"wrote {path}: {prediction.Count} prediction{(prediction.Count == 1 ? "" : "s")} of {prediction.File} by {Path.GetFileName(predictor.Checkpoint)}");
            if (summary is not null) stdout.WriteLine(summary);
        }
        else
        {
            stdout.Write(csv);
            if (summary is not null) stderr.WriteLine(summary);
        }
        return 0;
    }

    /// <summary>The accuracy and loss line of a file with targets, or null.</summary>
    internal static string? Summary(Prediction p) => p.Score() switch
    {
        null => null,
        var (accuracy, loss) when p.Classes is not null => string.Create(CultureInfo.InvariantCulture,
            $"accuracy {accuracy * 100:0.00} % ({Math.Round(accuracy * p.Rows)} of {p.Rows}{(p.Positions > 1 ? " positions" : "")}), cross-entropy {loss:0.0000}"),
        var (_, loss) => string.Create(CultureInfo.InvariantCulture, $"mean squared error {loss:G6} over {p.Count} examples"),
    };

    /// <summary>
    /// The CSV text, written with Sep (fields with a separator, quote or line break quoted): <c>row[,target],prediction</c> and, for classes,
    /// a probability column <c>p_NAME</c> per class; several regression outputs are <c>prediction_1..K</c> (and <c>target_1..K</c>).
    /// Numbers in invariant culture, float32 values round-trip ("R").
    /// </summary>
    internal static string Csv(Prediction p)
    {
        int k = p.Outputs.Size(1);
        bool several = p.Classes is null && k > 1;
        using var writer = Sep.New(',').Writer(o => o with { Escape = true, CultureInfo = CultureInfo.InvariantCulture }).ToText();
        for (int i = 0; i < p.Rows; i++)
        {
            using var row = writer.NewRow();
            row["row"].Format(i / p.Positions + 1);
            if (p.Positions > 1) row["position"].Format(i % p.Positions + 1);
            if (p.Names is { } files) row["file"].Set(files[i / p.Positions]);
            if (p.Labels is { } labels) row["target"].Set(p.Classes![labels[i]]);
            if (p.Targets is { } targets)
                for (int j = 0; j < targets.Size(1); j++) row[several ? $"target_{j + 1}" : "target"].Set(Number(targets[i, j]));
            if (p.Classes is { } names)
            {
                row["prediction"].Set(names[p.PredictedClass(i)]);
                for (int j = 0; j < k; j++) row["p_" + names[j]].Set(Number(p.Outputs[i, j]));
            }
            else
            {
                for (int j = 0; j < k; j++) row[several ? $"prediction_{j + 1}" : "prediction"].Set(Number(p.Outputs[i, j]));
            }
        }
        writer.Flush();
        return writer.ToString();
    }

    private static string Number(double v) => ((float)v).ToString("R", CultureInfo.InvariantCulture);
}
