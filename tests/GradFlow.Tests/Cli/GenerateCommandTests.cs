using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Cli;

/// <summary><c>gradflow generate</c> after <c>gradflow train --data kjv</c>, in process.</summary>
public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-generate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TrainOnKjvThenGenerate_ContinuesThePromptTheSameWayForTheSameSeed()
    {
        string run = Path.Combine(_dir, "run");
        var (code, output, err) = CliRunner.Run("train", "--model", "transformer vocab=63 d=16 heads=2 layers=1 ctx=16", "--data", "kjv",
            "--optimizer", "adamw", "--lr", "0.01", "--warmup", "2", "--batch-size", "4", "--max-steps", "3", "--epochs", "1",
            "--test-limit", "8", "--threads", "1", "--out", run);
        Assert.True(code == 0, err);
        Assert.Matches(@"validation: \d+\.\d{4} nats per character = \d+\.\d{4} bits per character", output);
        var (g1, text1, e1) = CliRunner.Run("generate", "--model", run, "--prompt", "And God said", "--length", "40", "--seed", "7");
        Assert.True(g1 == 0, e1);
        Assert.StartsWith("And God said", text1, StringComparison.Ordinal);
        Assert.Equal("And God said".Length + 40, text1.TrimEnd('\r', '\n').Length);
        Assert.Equal(text1, CliRunner.Run("generate", "--model", run, "--prompt", "And God said", "--length", "40", "--seed", "7").Out);
        var (bad, _, badErr) = CliRunner.Run("generate", "--model", run, "--prompt", "§");
        Assert.Equal(1, bad);
        Assert.Contains("'§' (U+00A7) at position 0", badErr, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainOnATextFileThenGenerate_ItsOwnVocabularyAndOnlyItsOptions()
    {
        // a user's text (UTF-8 with a byte-order mark, non-ASCII letters): its vocabulary is its distinct characters, 16 here
        string text = Path.Combine(_dir, "poem.txt");
        string poem = string.Concat(Enumerable.Repeat("Ünder the linden, on the heath; é è\n", 30));
        File.WriteAllBytes(text, [.. "\uFEFF"u8, .. System.Text.Encoding.UTF8.GetBytes(poem)]);
        int vocabulary = poem.Distinct().Count();
        string run = Path.Combine(_dir, "text-run");
        string[] Train(int vocab, params string[] more) => ["train", "--model", $"transformer vocab={vocab} d=16 heads=2 layers=1 ctx=16", "--data", text,
            "--optimizer", "adamw", "--lr", "0.01", "--batch-size", "4", "--max-steps", "3", "--epochs", "1", "--threads", "1", "--out", run, "--force", .. more];
        var (wrong, _, wrongErr) = CliRunner.Run(Train(vocabulary + 1));
        Assert.Equal(1, wrong);
        Assert.Contains($"is a character corpus of {vocabulary} distinct characters, but the model gives {vocabulary + 1} logits per position", wrongErr, StringComparison.Ordinal);
        var (option, _, optionErr) = CliRunner.Run(Train(vocabulary, "--target", "y"));
        Assert.Equal(2, option);
        Assert.Contains("is a text file, read as a character corpus", optionErr, StringComparison.Ordinal);
        var (code, output, err) = CliRunner.Run(Train(vocabulary));
        Assert.True(code == 0, err);
        Assert.Matches(@"validation: \d+\.\d{4} nats per character", output);
        var (g, generated, gErr) = CliRunner.Run("generate", "--model", run, "--prompt", "Ünder", "--length", "20", "--seed", "3");
        Assert.True(g == 0, gErr);
        Assert.StartsWith("Ünder", generated, StringComparison.Ordinal);
        Assert.All(generated.TrimEnd('\n')[5..], c => Assert.Contains(c, poem));
        // the text edited since training: another vocabulary is named, not sampled through
        File.AppendAllText(text, "{}");
        var (edited, _, editedErr) = CliRunner.Run("generate", "--model", run, "--prompt", "Ünder", "--length", "20");
        Assert.Equal(1, edited);
        Assert.Contains($"gives {vocabulary} logits per position, but '{text}' now has {vocabulary + 2} distinct characters", editedErr, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainACharacterLstmOnATextFileThenGenerate()
    {
        // Karpathy's char-rnn as a network description: embedding, an LSTM over every position, a linear read-out per position
        string text = Path.Combine(_dir, "lines.txt");
        string lines = string.Concat(Enumerable.Repeat("the cat sat on the mat.\n", 40));
        File.WriteAllText(text, lines);
        int vocabulary = lines.Distinct().Count();
        string run = Path.Combine(_dir, "lstm-run");
        var (code, output, err) = CliRunner.Run("train", "--model", $"net 12 seq[embedding(vocab={vocabulary},dim=8) recurrent(cell=lstm,hidden=16,output=sequence) linear(out={vocabulary})]",
            "--data", text, "--lr", "0.01", "--batch-size", "4", "--max-steps", "3", "--epochs", "1", "--threads", "1", "--monitor", "--out", run);
        Assert.True(code == 0, err + output);
        Assert.Matches(@"validation: \d+\.\d{4} nats per character", output);
        var (g, generated, gErr) = CliRunner.Run("generate", "--model", run, "--prompt", "the ", "--length", "12", "--seed", "1");
        Assert.True(g == 0, gErr);
        Assert.StartsWith("the ", generated, StringComparison.Ordinal);
        Assert.Equal("the ".Length + 12 + Environment.NewLine.Length, generated.Length); // a sampled line end is one of the 12
    }

    [Fact]
    public void Generate_WithoutPromptOrRun_IsAUsageErrorOrNamesTheDirectory()
    {
        Assert.Equal(2, CliRunner.Run("generate", "--model", _dir).Code);
        var (code, _, err) = CliRunner.Run("generate", "--model", _dir, "--prompt", "a");
        Assert.Equal(1, code);
        Assert.Contains("has no config.json", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "checkpoints")), "generate made a checkpoints folder in a directory it only reads");
        // a run directory that does not exist is named, and not created
        var typo = Path.Combine(_dir, "typo");
        (code, _, err) = CliRunner.Run("generate", "--model", typo, "--prompt", "a");
        Assert.Equal(1, code);
        Assert.Contains("is not a run directory", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(typo));
    }
}
