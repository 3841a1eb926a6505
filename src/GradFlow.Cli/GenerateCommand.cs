using System.CommandLine;
using System.Globalization;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow generate</c>: samples text from a trained character-level language model.</summary>
internal static class GenerateCommand
{
    // the options of 'generate'; one line each
    public static readonly Option<string?> Model = new("--model") { Description = "a run directory of 'gradflow train --data kjv'", HelpName = "RUN", Required = true };
    public static readonly Option<string?> Prompt = new("--prompt") { Description = "the text to continue", HelpName = "TEXT", Required = true };
    public static readonly Option<int?> Length = Opt.Int("length", "characters to draw (default 300)");
    public static readonly Option<double?> Temperature = Opt.Double("temperature", "softmax temperature (default 0.8; 0 takes the most likely character)", "T");
    public static readonly Option<ulong?> Seed = Opt.ULong("seed", "seed of the sampling generator (default 0): same seed, same text");

    public static Command Declare()
    {
        var command = new Verb("generate", "sample text from a trained character-level language model",
            "Continues TEXT with a language model trained by 'gradflow train --data kjv --out RUN': reads RUN/config.json (the model and its corpus, " +
            "whose characters are the vocabulary) and the newest checkpoint in RUN/checkpoints, then draws N characters one at a time from the " +
            "model's softmax at temperature T, with a generator seeded by --seed. Exit code: 0 ok, 1 error, 2 usage.")
        { Model, Prompt, Length, Temperature, Seed };
        command.Validators.Add(r =>
        {
            if (r.Valid(Length) is int length and < 0) r.AddError($"--length must be ≥ 0, got {length}.");
            else if (r.Valid(Temperature) is double t and < 0) r.AddError($"--temperature must be ≥ 0, got {t.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
        });
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        stdout.WriteLine(FromRun(o.GetValue(Model)!, o.GetValue(Prompt)!, o.GetValue(Length) ?? 300, o.GetValue(Temperature) ?? 0.8, o.GetValue(Seed) ?? 0));
        return 0;
    }

    /// <summary>
    /// The text that <paramref name="run"/>'s model (its config.json and newest checkpoint) writes after
    /// <paramref name="prompt"/>: <see cref="TextGeneration.Generate"/> with the run's corpus and context.
    /// </summary>
    internal static string FromRun(string run, string prompt, int length, double temperature, ulong seed)
    {
        // a run is read, never made: checked before RunDirectory, which creates the folders (generate --model runs/typo left runs/typo/checkpoints)
        string configPath = Path.Combine(run, "config.json");
        if (!Directory.Exists(run) || !File.Exists(configPath)) throw new FileNotFoundException($"{run} is not a run directory: it has no config.json.", configPath);
        var directory = new RunDirectory(run);
        var config = TrainingConfig.FromJson(File.ReadAllText(configPath), configPath);
        var corpus = DataSources.Corpus(config.Data)
            ?? throw new ArgumentException($"{configPath}: the run trained on '{config.Data}', not a character corpus (kjv); generate samples language models.");
        var description = config.Description();
        // a text file is read again for its vocabulary: edited since training, it may hold other characters
        if (description.OutputShape()[^1] is var logits && logits != corpus.Vocabulary.Length)
            throw new InvalidDataException($"{configPath}: the run's model gives {logits} logits per position, but '{config.Data}' now has {corpus.Vocabulary.Length} " +
                "distinct characters: the text changed since the run trained on it.");
        var checkpoint = directory.CheckpointFiles().LastOrDefault()
            ?? throw new FileNotFoundException($"{run} has no checkpoint in {directory.Checkpoints}; train it to the end of an epoch first.");
        var model = NetworkBuilder.Build(description, new Generator(config.Seed));
        Checkpoint.LoadModel(checkpoint, model);
        return TextGeneration.Generate(model, corpus, description.Input[0], prompt, length, temperature, seed);
    }
}
