using System.Text;
using System.Text.Json;
using GradFlow.Tests.TestSupport;
using GradFlow.Training.TensorBoard;

namespace GradFlow.Tests.Training;

/// <summary>
/// TensorBoard event files read back by an independent reader (tests/python/tensorboard_reader.py:
/// its own CRC32C over the TFRecord framing, the Event protobuf decoded by python3-protobuf from
/// descriptors declared there).
/// </summary>
public sealed class TensorBoardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-tb-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Reader => Path.Combine(RepoPaths.Root, "tests", "python", "tensorboard_reader.py");

    private static List<JsonElement> Read(string eventFile)
    {
        var (exit, output, err) = Python.Run(null, Reader, eventFile);
        Assert.True(exit == 0, err);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }

    private static IEnumerable<(long Step, JsonElement Value)> Values(List<JsonElement> events) =>
        events.Where(e => e.TryGetProperty("values", out _)).SelectMany(e => e.GetProperty("values").EnumerateArray().Select(v => (e.GetProperty("step").GetInt64(), v)));

    [Fact]
    public void Crc32C_KnownVector()
    {
        Assert.Equal(0xE3069283u, EventWriter.Crc32C("123456789"u8));
        Assert.Equal(0u, EventWriter.Crc32C([]));
    }

    [Fact]
    public void EventWriter_ScalarsHistogramAndText_ReadBackByIndependentReader()
    {
        string path;
        using (var w = new EventWriter(Path.Combine(_dir, "tb"), () => 1_700_000_000.5))
        {
            path = w.Path;
            w.AddScalar("loss", 0.25, 3);
            w.AddHistogram("weights/w", [-1f, 0f, 0.5f, 1f, float.NaN], 4, buckets: 4);
            w.AddText("diagnosis/verdict", "vanishing gradient — layer 1 (λ)", 5);
        }
        Assert.StartsWith("events.out.tfevents.1700000000.", Path.GetFileName(path));
        var events = Read(path);
        Assert.Equal("brain.Event:2", events[0].GetProperty("file_version").GetString());
        Assert.Equal(1_700_000_000.5, events[0].GetProperty("wall_time").GetDouble());
        var values = Values(events).ToList();
        Assert.Equal((3L, "loss", 0.25), (values[0].Step, values[0].Value.GetProperty("tag").GetString(), values[0].Value.GetProperty("value").GetDouble()));
        var h = values[1].Value;
        Assert.Equal("histo", h.GetProperty("kind").GetString());
        Assert.Equal(-1, h.GetProperty("min").GetDouble());
        Assert.Equal(1, h.GetProperty("max").GetDouble());
        Assert.Equal(5, h.GetProperty("num").GetDouble());
        Assert.Equal([-0.5, 0, 0.5, 1], h.GetProperty("limits").EnumerateArray().Select(x => x.GetDouble()));
        // buckets (l[i-1], l[i]]: -1 (first bucket holds the minimum), 0, 0.5, 1; NaN left out
        Assert.Equal([1.0, 1, 1, 1], h.GetProperty("counts").EnumerateArray().Select(x => x.GetDouble()));
        var t = values[2].Value;
        Assert.Equal("text", t.GetProperty("plugin").GetString());
        Assert.Equal("vanishing gradient — layer 1 (λ)", t.GetProperty("text")[0].GetString());
        Assert.Equal(5, values[2].Step);
    }

    [Fact]
    public void EventFile_CorruptByte_IsRejectedByTheReader()
    {
        string path;
        using (var w = new EventWriter(Path.Combine(_dir, "tb")))
        {
            path = w.Path;
            w.AddScalar("loss", 1, 0);
        }
        var bytes = File.ReadAllBytes(path);
        bytes[^6] ^= 0x40; // inside the last record's data
        File.WriteAllBytes(path, bytes);
        var (exit, _, err) = Python.Run(null, Reader, path);
        Assert.NotEqual(0, exit);
        Assert.Contains("CRC mismatch", err);
    }

    [Fact]
    public void Train_WithTensorBoard_WritesEveryFigureOfEveryLayerAndTheVerdict()
    {
        var tb = Path.Combine(_dir, "tb");
        var (code, output, err) = CliRunner.Run("train", "--model", "mlp 2-8x2-2 act=tanh init=xavier-uniform", "--data", "circles",
            "--epochs", "2", "--max-steps", "40", "--batch-size", "100", "--threads", "1", "--tensorboard", tb, "--monitor-every", "5", "--clip-norm", "100");
        Assert.True(code == 0, err);
        var file = Assert.Single(Directory.GetFiles(tb));
        var events = Read(file);
        var values = Values(events).ToList();
        var tags = values.Select(v => v.Value.GetProperty("tag").GetString()!).ToHashSet();
        // a loss and a learning rate for each of the 40 steps
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), values.Where(v => v.Value.GetProperty("tag").GetString() == "train/loss").Select(v => v.Step));
        Assert.Contains("train/learning_rate", tags);
        Assert.Contains("train/gradient_norm", tags); // measured by --clip-norm
        Assert.Contains("epoch/test_accuracy", tags);
        Assert.Contains("epoch/train_loss", tags);
        Assert.Contains("gradient_ratio", tags);
        // three monitored layers (2-8, 8-8, 8-2); tanh layers have saturation, the output layer none
        foreach (var layer in new[] { "layer_01", "layer_02", "layer_03" })
            foreach (var figure in new[] { "signal_rms", "weight_gradient_norm", "update_ratio", "grad_below_fp16_subnormal", "update_bf16_swallowed" })
                Assert.Contains($"{figure}/{layer}", tags);
        Assert.Contains("saturation/layer_01", tags);
        Assert.DoesNotContain("dead_units/layer_01", tags); // not a ReLU layer
        // histograms of every parameter and its gradient, counts adding up to the parameter's size
        foreach (var (name, size) in new[] { ("0.weight", 16), ("0.bias", 8), ("2.weight", 64), ("2.bias", 8), ("4.weight", 16), ("4.bias", 2) })
            foreach (var kind in new[] { "weights", "gradients" })
            {
                var h = values.Where(v => v.Value.GetProperty("tag").GetString() == $"{kind}/layers.{name}").ToList();
                Assert.Equal([0L, 5, 10, 15, 20, 25, 30, 35], h.Select(v => v.Step));
                Assert.All(h, v => Assert.Equal(size, v.Value.GetProperty("counts").EnumerateArray().Sum(c => c.GetDouble())));
            }
        // the verdict the CLI printed, as text
        var verdict = values.Single(v => v.Value.GetProperty("tag").GetString() == "diagnosis/verdict").Value.GetProperty("text")[0].GetString()!;
        Assert.Contains(verdict.Split('\n')[0], output);
    }
}
