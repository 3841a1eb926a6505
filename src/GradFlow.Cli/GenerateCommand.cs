using System.Globalization;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary><c>gradflow generate</c>: samples text from a trained character-level language model.</summary>
internal static class GenerateCommand
{
    public const string Help = """
        Usage: gradflow generate --model RUN --prompt TEXT [--length N] [--temperature T] [--seed N]

        Continues TEXT with a language model trained by 'gradflow train --data kjv --out RUN': reads
        RUN/config.json (the model and its corpus, whose characters are the vocabulary) and the newest
        checkpoint in RUN/checkpoints, then draws N characters (default 300) one at a time from the
        model's softmax at temperature T (default 0.8; 0 takes the most likely character), with a
        generator seeded by --seed (default 0): same seed, same text.
        Exit code: 0 ok, 1 error, 2 usage.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("generate", args, ["model", "prompt", "length", "temperature", "seed"], []);
        string run = o.String("model") ?? throw new UsageException("gradflow generate: --model RUN (a run directory of 'gradflow train --data kjv') is required.");
        string prompt = o.String("prompt") ?? throw new UsageException("gradflow generate: --prompt TEXT is required.");
        int length = o.Int("length") ?? 300;
        if (length < 0) throw new UsageException($"gradflow generate: --length must be ≥ 0, got {length}.");
        double temperature = o.Double("temperature") ?? 0.8;
        if (temperature < 0) throw new UsageException($"gradflow generate: --temperature must be ≥ 0, got {temperature.ToString(CultureInfo.InvariantCulture)}.");
        var directory = new RunDirectory(run);
        string configPath = Path.Combine(directory.Path, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{run} is not a run directory: it has no config.json.", configPath);
        var config = TrainingConfig.FromJson(File.ReadAllText(configPath), configPath);
        var corpus = DataSources.Corpus(config.Data)
            ?? throw new ArgumentException($"{configPath}: the run trained on '{config.Data}', not a character corpus (kjv); generate samples language models.");
        var description = config.Description();
        var checkpoint = directory.CheckpointFiles().LastOrDefault()
            ?? throw new FileNotFoundException($"{run} has no checkpoint in {directory.Checkpoints}; train it to the end of an epoch first.");
        var model = NetworkBuilder.Build(description, new Generator(config.Seed));
        Checkpoint.LoadModel(checkpoint, model);
        stdout.WriteLine(TextGeneration.Generate(model, corpus, description.Input[0], prompt, length, temperature, o.ULong("seed") ?? 0));
        return 0;
    }
}
