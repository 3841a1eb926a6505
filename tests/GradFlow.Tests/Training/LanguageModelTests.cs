using GradFlow.Data;
using GradFlow.Diagnostics;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Training;

/// <summary>Character-level language modelling through the one Trainer: the corpus, per-position cross-entropy, warm-up, sampling and the monitor's layers.</summary>
public class LanguageModelTests
{
    private static readonly TextCorpus Abc = new("abc", string.Concat(Enumerable.Repeat("abcd abcd. ", 40)));

    [Fact]
    public void Verses_DropHeadingsAndVerseNumbers()
    {
        const string raw = "\nGenesis 1\n\n  1 In the beginning.\n  2 And the earth, 3 times.\n\nExodus 1\n  1 Now these.\n";
        Assert.Equal("In the beginning.\nAnd the earth, 3 times.\nNow these.\n", TextCorpus.Verses(raw));
    }

    [Fact]
    public void Windows_LabelsAreTheNextCharactersAndTheSplitIsFixed()
    {
        var corpus = new TextCorpus("t", "abcdefghijklmnopqrstuvwxyz0123456789");
        Assert.Equal("0123456789abcdefghijklmnopqrstuvwxyz", corpus.Vocabulary);
        Assert.Equal(32, corpus.TrainLength);   // ⌊36 · 0.9⌋
        var train = corpus.Windows(train: true, 5);
        Assert.Equal(6, train.Count);          // (32 − 1) / 5
        Assert.Equal(corpus.Encode("abcde").Select(i => (double)i), train.Inputs.ToDoubleArray().Take(5));
        Assert.Equal(corpus.Encode("bcdef"), train.Labels!.ToArray().Take(5));
        Assert.Equal([6, 5], train.Labels.Shape.ToArray());
        var validation = corpus.Windows(train: false, 1);
        Assert.Equal(corpus.Encode("678"), validation.Inputs.ToDoubleArray().Select(v => (int)v));
        Assert.Equal(corpus.Encode("789"), validation.Labels!.ToArray());
        Assert.Throws<ArgumentException>(() => corpus.Windows(train: false, 4));
    }

    [Fact]
    public void FromFile_Utf8WithOrWithoutAMark_AndBadBytesNamedByOffsetAndLine()
    {
        var dir = Directory.CreateTempSubdirectory("gradflow-text-").FullName;
        try
        {
            string Write(string name, byte[] bytes)
            {
                string path = Path.Combine(dir, name);
                File.WriteAllBytes(path, bytes);
                return path;
            }
            const string text = "naïve café\nπ ≈ 3.14159\r\n中文 😀\n";
            var plain = TextCorpus.FromFile(Write("a.txt", System.Text.Encoding.UTF8.GetBytes(text)));
            Assert.Equal(text, plain.Text);
            Assert.Equal(new string(text.Distinct().Order().ToArray()), plain.Vocabulary);
            Assert.Equal(text, TextCorpus.FromFile(Write("b.txt", [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes(text)])).Text);
            // a Latin-1 'é' (0xE9) on the second line, at byte 3 + 9 of the file with the mark
            byte[] latin1 = [0xEF, 0xBB, 0xBF, .. "first\ncaf"u8, 0xE9, .. " au lait and more text\n"u8];
            var bad = Assert.Throws<InvalidDataException>(() => TextCorpus.FromFile(Write("c.txt", latin1)));
            Assert.Contains("c.txt: not UTF-8 text: byte 0xE9 at offset 12 (line 2)", bad.Message, StringComparison.Ordinal);
            var truncated = Assert.Throws<InvalidDataException>(() => TextCorpus.FromFile(Write("d.txt", [.. System.Text.Encoding.UTF8.GetBytes("long enough text, nearly " + "中")[..^1]])));
            Assert.Contains("byte 0xE4 at offset 25 (line 1)", truncated.Message, StringComparison.Ordinal);
            var empty = Assert.Throws<InvalidDataException>(() => TextCorpus.FromFile(Write("e.txt", [])));
            Assert.Contains("e.txt: text corpus", empty.Message, StringComparison.Ordinal);
            // through DataSources: windows of the model's context, the next character as each position's label
            string longer = string.Concat(Enumerable.Repeat(text, 4));
            var bundle = DataSources.Load(new TrainingConfig { Data = Write("long.txt", System.Text.Encoding.UTF8.GetBytes(longer)) },
                NetworkDescription.Parse($"transformer vocab={plain.Vocabulary.Length} d=8 heads=2 layers=1 ctx=4"));
            Assert.Equal(plain.Encode(longer[..8]).Select(i => (double)i), bundle.Train.Inputs.ToDoubleArray().Take(8));
            Assert.Equal(plain.Encode(longer[1..9]), bundle.Train.Labels!.ToArray().Take(8));
            Assert.Equal(plain.Encode(longer[(int)(longer.Length * 0.9)..][..4]).Select(i => (double)i), bundle.Test.Inputs.ToDoubleArray().Take(4));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Encode_UnknownCharacter_IsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => Abc.Encode("ab!"));
        Assert.Contains("'!' (U+0021) at position 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kjv_FromTheDebianPackage_IsTheWholeBibleByVerse()
    {
        var kjv = TextCorpus.Kjv();
        Assert.StartsWith("In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void;", kjv.Text, StringComparison.Ordinal);
        Assert.EndsWith("The grace of our Lord Jesus Christ be with you all. Amen.\n", kjv.Text, StringComparison.Ordinal);
        Assert.Equal(31_102, kjv.Text.Count(c => c == '\n'));   // the verses of the King James Bible
        Assert.Equal(63, kjv.Vocabulary.Length);
        Assert.Equal(4_137_850, kjv.Text.Length);
        // the split falls in Acts 21:40
        Assert.StartsWith("And when he had given him licence, Paul stood on the stairs", kjv.Text[(kjv.Text.LastIndexOf('\n', kjv.TrainLength - 1) + 1)..], StringComparison.Ordinal);
    }

    private static Trainer LanguageTrainer(TextCorpus corpus, string model, int steps, int warmup = 0, ScheduleKind schedule = ScheduleKind.Constant)
    {
        var description = NetworkDescription.Parse(model);
        int ctx = description.Input[0];
        var config = new TrainingConfig
        {
            Model = model, Optimizer = OptimizerKind.AdamW, LearningRate = 0.01, BatchSize = 8, Epochs = 100, MaxSteps = steps,
            WarmupSteps = warmup, Schedule = schedule, ClipNorm = 1, Seed = 3, Threads = 1,
        };
        return new Trainer(config, new DataBundle(corpus.Windows(true, ctx), corpus.Windows(false, ctx)));
    }

    [Fact]
    public void Loss_IsTheMeanCrossEntropyOverEveryPosition()
    {
        var trainer = LanguageTrainer(Abc, "transformer vocab=6 d=8 heads=2 layers=1 ctx=5", 1);
        var batch = trainer.Loader.Epoch(0).First();
        var logits = trainer.Model.Forward(batch.Inputs);
        double loss = trainer.Loss(logits, batch).Item();
        var l = logits.ToDoubleArray();
        var y = batch.Labels!.ToArray();
        double expected = 0;
        for (int p = 0; p < y.Length; p++)
        {
            var row = l.Skip(p * 6).Take(6).ToArray();
            double max = row.Max();
            expected += Math.Log(row.Sum(v => Math.Exp(v - max))) + max - row[y[p]];
        }
        Assert.Equal(expected / y.Length, loss, 5);
        Assert.Equal(8 * 5, y.Length);
    }

    [Fact]
    public void Training_OnARepeatingText_LearnsItAndIsDeterministic()
    {
        static (double First, double Last, double Test) Run()
        {
            var trainer = LanguageTrainer(Abc, "transformer vocab=6 d=16 heads=2 layers=1 ctx=8", 60, warmup: 5, schedule: ScheduleKind.Cosine);
            var losses = new List<double>();
            trainer.AddObserver(new LossRecorder(losses));
            var result = trainer.Run();
            return (losses[0], losses[^1], result.Epochs[^1].TestLoss);
        }
        var a = Run();
        Assert.True(a.First > 1.5, $"first loss {a.First}: near ln 6 = 1.79 at the start");
        Assert.True(a.Test < 0.5, $"validation loss {a.Test} nats per character: the text repeats, so it should be learnt");
        Assert.Equal(a, Run());
    }

    private sealed class LossRecorder(List<double> losses) : ITrainingObserver
    {
        public void OnStepEnd(StepInfo info) => losses.Add(info.Loss);
    }

    [Fact]
    public void Warmup_RisesLinearlyThenTheScheduleRunsOverTheRest()
    {
        var trainer = LanguageTrainer(Abc, "transformer vocab=6 d=8 heads=2 layers=1 ctx=5", 24, warmup: 4, schedule: ScheduleKind.Cosine);
        var s = trainer.Scheduler!;
        Assert.Equal(0.01 / 4, s.LearningRateAt(0), 12);
        Assert.Equal(0.01 * (0.25 + 0.75 * 2 / 4), s.LearningRateAt(2), 12);
        Assert.Equal(0.01, s.LearningRateAt(4), 12);
        Assert.Equal(0.01 * (1 + Math.Cos(Math.PI * 10 / 20)) / 2, s.LearningRateAt(14), 12);
        // the linear schedule after the same warm-up: 1 − t/20 of the rate over the 20 steps after it, 0 at the run's end
        var linear = LanguageTrainer(Abc, "transformer vocab=6 d=8 heads=2 layers=1 ctx=5", 24, warmup: 4, schedule: ScheduleKind.Linear).Scheduler!;
        Assert.Equal(0.01 / 4, linear.LearningRateAt(0), 12);
        Assert.Equal(0.01, linear.LearningRateAt(4), 12);
        Assert.Equal(0.01 * (1 - 10 / 20.0), linear.LearningRateAt(14), 12);
        Assert.Equal(0, linear.LearningRateAt(24), 12);
    }

    [Fact]
    public void Generate_SameSeedSameText_TemperatureZeroIgnoresTheSeed()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("transformer vocab=6 d=8 heads=2 layers=1 ctx=4"), new Generator(5));
        string a = TextGeneration.Generate(net, Abc, 4, "ab", 20, 1.0, seed: 1);
        Assert.StartsWith("ab", a, StringComparison.Ordinal);
        Assert.Equal(22, a.Length);
        Assert.All(a, c => Assert.Contains(c, Abc.Vocabulary));
        Assert.Equal(a, TextGeneration.Generate(net, Abc, 4, "ab", 20, 1.0, seed: 1));
        Assert.NotEqual(a, TextGeneration.Generate(net, Abc, 4, "ab", 20, 1.0, seed: 2));
        Assert.Equal(TextGeneration.Generate(net, Abc, 4, "ab", 20, 0, seed: 1), TextGeneration.Generate(net, Abc, 4, "ab", 20, 0, seed: 2));
        Assert.Throws<ArgumentException>(() => TextGeneration.Generate(net, Abc, 4, "", 5));
    }

    [Fact]
    public void Monitor_WatchesEachLayersAttentionAndFeedForwardAndTheTiedHead()
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse("transformer vocab=6 d=8 heads=2 layers=2 ctx=4"), new Generator(6));
        var layers = NetworkWatch.Layers(net);
        Assert.Equal(["layers.0.self_attn", "layers.0.linear2", "layers.1.self_attn", "layers.1.linear2", "head"], layers.Select(l => l.Name));
        Assert.Same(((Embedding)net.NamedModules().First(m => m.Name == "tok_emb").Module).Weight, layers[^1].Weight);
    }
}
