using System.Text.Json;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Cli;

/// <summary>
/// Every verb on an MLP, an LSTM and a ResNet, at tiny budgets (a few steps on small subsets, one
/// thread): the verbs work on any network description, not on one family.
/// </summary>
public sealed class VerbsOnEveryFamilyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-verbs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The three families; <see cref="Model"/> and <see cref="Data"/> give each one's model and data options.</summary>
    public static TheoryData<string> Families => ["mlp", "lstm", "resnet"];

    private static string Model(string family) => family switch
    {
        "mlp" => "mlp 16-16x3-4 act=relu init=he-normal",
        "lstm" => "lstm 2-8-1",
        _ => "resnet8 in=1x8x8 classes=4 width=4",
    };

    private static string[] Data(string family) => family switch
    {
        "mlp" => ["--data", "teacher", "--train-limit", "128", "--test-limit", "64"],
        "lstm" => ["--data", "adding", "--seq-len", "6", "--train-limit", "128", "--test-limit", "64"],
        _ => ["--data", "teacher", "--train-limit", "128", "--test-limit", "64"],
    };

    private static (int Code, string Out, string Err) Run(string family, params string[] args) =>
        CliRunner.Run([.. args, "--model", Model(family), .. Data(family), "--batch-size", "16", "--threads", "1"]);

    [Theory]
    [MemberData(nameof(Families))]
    public void TrainWithMonitor_ThenReport_WritesTheRunDirectoryAndItsReport(string family)
    {
        string run = Path.Combine(_dir, "run");
        var (code, output, err) = Run(family, "train", "--epochs", "1", "--max-steps", "4", "--monitor", "--monitor-every", "2", "--out", run);
        Assert.True(code == 0, err + output);
        Assert.Contains("stopped: MaxSteps; 4 steps", output);
        Assert.Single(new RunDirectory(run).CheckpointFiles());
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, lines.Count(l => l.GetProperty("type").GetString() == "step"));
        Assert.Single(lines, l => l.GetProperty("type").GetString() == "epoch");
        Assert.True(File.Exists(Path.Combine(run, "diagnosis.json")));
        Assert.Equal(Model(family), TrainingConfig.FromJson(File.ReadAllText(Path.Combine(run, "config.json"))).Model);

        var (reportCode, reportOut, reportErr) = CliRunner.Run("report", run);
        Assert.True(reportCode == 0, reportErr);
        Assert.Contains("report.html", reportOut);
        Assert.Contains("<svg", File.ReadAllText(Path.Combine(run, "report.html")));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void DiagnosePreflightAndTrial_PrintTheLayerTableAndAVerdict(string family)
    {
        var (code, output, err) = Run(family, "diagnose", "--preflight");
        Assert.True(code is 0 or 3, err + output);
        Assert.Contains("gradient ratio", output);
        Assert.Contains(family == "lstm" ? "lstm" : family == "mlp" ? "mlp" : "resnet8", output);

        var (trialCode, json, trialErr) = Run(family, "diagnose", "--steps", "4", "--every", "2", "--json");
        Assert.True(trialCode is 0 or 3, trialErr + json);
        var root = JsonDocument.Parse(json).RootElement;
        Assert.Equal(trialCode == 0, root.GetProperty("healthy").GetBoolean());
        Assert.Equal(2, root.GetProperty("samples").GetInt32());
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Repair_SavesAConfigThatTrainAccepts(string family)
    {
        string out_ = Path.Combine(_dir, "repair");
        var (code, output, err) = Run(family, "repair", "--trial-steps", "8", "--attempts", "1", "--out", out_);
        Assert.True(code is 0 or 3, err + output);
        Assert.Contains("final model:", output);
        var repaired = TrainingConfig.FromJson(File.ReadAllText(Path.Combine(out_, "config.json")));
        NetworkDescription.Parse(repaired.Model);
        var (trainCode, trainOut, trainErr) = CliRunner.Run("train", "--config", Path.Combine(out_, "config.json"), "--epochs", "1", "--max-steps", "2", "--threads", "1");
        Assert.True(trainCode == 0, trainErr + trainOut);
    }

    [Theory]
    [InlineData("mlp 16-8x2-3 act=tanh init=xavier-uniform", new[] { 5, 16 })]
    [InlineData("lstm 2-8-3", new[] { 5, 7, 2 })]
    [InlineData("resnet8 in=1x8x8 classes=3 width=4", new[] { 5, 1, 8, 8 })]
    [InlineData("resnet8 in=1x8x8 classes=3 width=4", new[] { 5, 64 })]
    [InlineData("net 6x2 seq[recurrent(cell=lstm,hidden=8) linear(out=3)]", new[] { 5, 12 })] // a sequence read flat, [N, T·I], as train reads it
    [InlineData("lstm 2-8-3", new[] { 5, 14 })] // read flat as 7 steps of 2 (the shorthand's description says T = 1)
    public void Grads_AnyModel_WritesEveryParameterAndItsGradient_AsABackwardPassGivesThem(string model, int[] xShape)
    {
        var g = new Generator(4);
        var x = Tensor.RandN(g, xShape);
        var y = Tensor.FromArray(new float[] { 0, 2, 1, 1, 0 }, 5);
        string batch = Path.Combine(_dir, "batch.safetensors"), outPath = Path.Combine(_dir, "grads.safetensors");
        SafeTensors.Write(batch, new Dictionary<string, Tensor> { ["x"] = x, ["y"] = y });
        var (code, output, err) = CliRunner.Run("grads", "--model", model, "--seed", "3", "--batch", batch, "--out", outPath);
        Assert.True(code == 0, err + output);
        var written = SafeTensors.Read(outPath).Tensors.ToDictionary(t => t.Key, t => t.Value);

        // the same pass in process: the description built with the seed, cross-entropy, backward
        var description = NetworkDescription.Parse(model);
        var input = xShape.Length == 2 && description.Input.Count >= 2
            ? x.Reshape(description.Input.Count == 2 ? [5, xShape[1] / description.Input[1], description.Input[1]] : [5, .. description.Input]) : x;
        var net = NetworkBuilder.Build(description, new Generator(3), input);
        var loss = Losses.CrossEntropy(net.Forward(input), IndexTensor.FromArray([0, 2, 1, 1, 0], 5));
        GradFlow.Autograd.BackwardEngine.Backward(loss);
        var parameters = net.NamedParameters().ToArray();
        Assert.NotEmpty(parameters);
        foreach (var (name, p) in parameters)
        {
            Assert.Equal(p.Data.ToArray(), written[name].ToArray());
            Assert.Equal(p.Grad!.ToArray(), written[name + ".grad"].ToArray());
        }
        Assert.Contains(parameters, t => t.Parameter.Grad!.ToArray().Any(v => v != 0));
        Assert.Equal(loss.Item(), written["loss"].Item());
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Demo_OnAModel_RunsPreflightTrialRepairAndWritesTheReport(string family)
    {
        string out_ = Path.Combine(_dir, "demo");
        var (code, output, err) = Run(family, "demo", "--steps", "4", "--out", out_);
        Assert.True(code == 0, err + output);
        foreach (var heading in new[] { "2. Preflight", "3. A monitored trial of 4 steps", "4. Automatic repair", "5. Files" })
            Assert.Contains(heading, output);
        Assert.True(File.Exists(Path.Combine(out_, "trial", "report.html")));
        TrainingConfig.FromJson(File.ReadAllText(Path.Combine(out_, "repaired-config.json")));
    }

    [Fact]
    public void Evaluate_ACatalogueOfTheThreeFamilies_RunsEveryEntry()
    {
        static object Entry(string name, string family, string data, int? seqLen) => new
        {
            name,
            expect = "healthy",
            why = "a verb test",
            config = new { model = Model(family), data, sequenceLength = seqLen, trainLimit = 128, testLimit = 64, batchSize = 16, epochs = 1, threads = 1 },
        };
        string path = Path.Combine(_dir, "catalogue.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new
        {
            seeds = new[] { 1 },
            trialSteps = 4,
            entries = new[] { Entry("verbs-mlp", "mlp", "teacher", null), Entry("verbs-lstm", "lstm", "adding", 6), Entry("verbs-resnet", "resnet", "teacher", null) },
        }, new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull }));
        var (code, output, err) = CliRunner.Run("evaluate", "--catalogue", path);
        Assert.True(code == 0, err + output);
        foreach (var name in new[] { "verbs-mlp", "verbs-lstm", "verbs-resnet" })
            Assert.Matches(@"(ok |MISS) " + name + @"\s+seed 1", output);
        Assert.Contains("(3 runs,", output);
    }

    [Fact]
    public void ModelFile_AJsonDescription_TrainsAndGivesGradients()
    {
        string file = Path.Combine(_dir, "net.json");
        File.WriteAllText(file, NetworkJson.ToJson(NetworkDescription.Parse(Model("resnet"))).ToJsonString());
        var (code, output, err) = CliRunner.Run(["train", "--model-file", file, .. Data("resnet"), "--batch-size", "16", "--epochs", "1", "--max-steps", "2", "--threads", "1"]);
        Assert.True(code == 0, err + output);
        Assert.Contains("network [1, 8, 8] -> [4]", output);

        string batch = Path.Combine(_dir, "batch.safetensors"), outPath = Path.Combine(_dir, "grads.safetensors");
        SafeTensors.Write(batch, new Dictionary<string, Tensor> { ["x"] = Tensor.RandN(new Generator(1), 2, 1, 8, 8), ["y"] = Tensor.FromArray(new float[] { 3, 0 }, 2) });
        var (gradsCode, gradsOut, gradsErr) = CliRunner.Run("grads", "--model-file", file, "--batch", batch, "--out", outPath);
        Assert.True(gradsCode == 0, gradsErr + gradsOut);
        Assert.Contains("conv1.weight.grad", SafeTensors.Read(outPath).Tensors.Select(t => t.Key));
    }
}
