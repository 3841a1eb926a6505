using System.Text.Json;
using System.Text.Json.Nodes;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Interop;

/// <summary>
/// Conv2d, the pooling layers, BatchNorm2d and GroupNorm against PyTorch (Debian's python3-torch, which
/// the test command installs): each case is a GradFlow <see cref="Sequential"/> run in float32 in
/// training mode, forward and backward of <c>L = Σ v·y</c>. Its state dict before the forward pass (PyTorch's
/// names), the input, v and every result go into one safetensors file per case;
/// tests/python/conv_parity.py builds the same torch.nn.Sequential in float64, loads the state dict
/// with strict=True and compares the output, the input gradient, every parameter gradient and the
/// running statistics after the step: relative error max|a − b|/max|b| ≤ 1e-4 for each.
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchConvParityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-conv-parity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonObject Conv(int @in, int @out, (int, int) k, (int, int) stride, (int, int) padding, (int, int) dilation, int groups, bool bias) => new()
    {
        ["type"] = "conv2d", ["in"] = @in, ["out"] = @out, ["kernel"] = Pair(k), ["stride"] = Pair(stride), ["padding"] = Pair(padding),
        ["dilation"] = Pair(dilation), ["groups"] = groups, ["bias"] = bias,
    };

    private static JsonArray Pair((int A, int B) p) => [p.A, p.B];

    private static JsonObject Simple(string type, params (string Key, JsonNode Value)[] fields)
    {
        var o = new JsonObject { ["type"] = type };
        foreach (var (k, v) in fields) o[k] = v;
        return o;
    }

    /// <summary>(case name, input shape, layers).</summary>
    private static IEnumerable<(string Name, int[] Input, JsonObject[] Layers)> Cases()
    {
        yield return ("conv 3x3 pad 1", [3, 3, 9, 8], [Conv(3, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, true)]);
        // 3×3 stride 1: forward and input gradient by Winograd F(2×2, 3×3) from 4 input and 4 output channels, or from 32
        // where the FMA is 512 bits wide (ConvKernels.WinogradChannels), else by the flat implicit GEMM; the last case
        // takes Winograd on every machine.
        yield return ("conv 3x3 Winograd 5 to 6 pad 1", [3, 5, 9, 7], [Conv(5, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, true)]);
        yield return ("conv 3x3 Winograd 17 to 4 no padding", [2, 17, 8, 11], [Conv(17, 4, (3, 3), (1, 1), (0, 0), (1, 1), 1, false)]);
        yield return ("conv 3x3 Winograd 32 to 33 pad 1", [2, 32, 7, 6], [Conv(32, 33, (3, 3), (1, 1), (1, 1), (1, 1), 1, true)]);
        yield return ("conv 2x3 stride (3, 2) no bias", [1, 2, 11, 10], [Conv(2, 4, (2, 3), (3, 2), (0, 1), (1, 1), 1, false)]);
        yield return ("conv dilation 2 groups 2", [3, 4, 9, 9], [Conv(4, 6, (3, 3), (2, 2), (2, 1), (2, 2), 2, true)]);
        yield return ("conv depthwise", [3, 6, 7, 8], [Conv(6, 6, (3, 3), (1, 1), (1, 1), (1, 1), 6, true)]);
        yield return ("conv pointwise", [2, 8, 5, 5], [Conv(8, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1, true)]);
        yield return ("maxpool", [3, 2, 9, 8], [Simple("maxpool2d", ("kernel", Pair((3, 2))), ("stride", Pair((2, 2))), ("padding", Pair((1, 1))), ("dilation", Pair((1, 2))))]);
        yield return ("avgpool include pad", [3, 2, 9, 8], [Simple("avgpool2d", ("kernel", Pair((3, 3))), ("stride", Pair((2, 1))), ("padding", Pair((1, 1))), ("count_include_pad", true))]);
        yield return ("avgpool exclude pad", [1, 3, 7, 7], [Simple("avgpool2d", ("kernel", Pair((2, 3))), ("stride", Pair((2, 2))), ("padding", Pair((1, 1))), ("count_include_pad", false))]);
        yield return ("adaptive avgpool", [3, 2, 7, 9], [Simple("adaptiveavgpool2d", ("output", Pair((3, 4))))]);
        yield return ("batchnorm2d", [4, 3, 5, 6], [Simple("batchnorm2d", ("channels", 3))]);
        yield return ("groupnorm", [3, 6, 5, 4], [Simple("groupnorm", ("groups", 3), ("channels", 6))]);
        yield return ("conv net", [3, 3, 16, 15],
        [
            Conv(3, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1, false), Simple("batchnorm2d", ("channels", 8)), Simple("relu"),
            Simple("maxpool2d", ("kernel", Pair((2, 2))), ("stride", Pair((2, 2))), ("padding", Pair((0, 0))), ("dilation", Pair((1, 1)))),
            Conv(8, 16, (3, 3), (2, 2), (1, 1), (1, 1), 1, true), Simple("groupnorm", ("groups", 4), ("channels", 16)), Simple("relu"),
            // No bias before a training-mode batch norm: its gradient is 0 exactly (the norm removes a per-channel constant).
            Conv(16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 16, false), Simple("batchnorm2d", ("channels", 16)), Simple("relu"),
            Simple("avgpool2d", ("kernel", Pair((2, 2))), ("stride", Pair((1, 1))), ("padding", Pair((1, 1))), ("count_include_pad", true)),
            Simple("adaptiveavgpool2d", ("output", Pair((1, 1)))), Simple("flatten"), Simple("linear", ("in", 16), ("out", 5)),
        ]);
    }

    /// <summary>The GradFlow module of a layer description (the same descriptions the Python side builds from).</summary>
    private static Module Build(JsonObject d, Generator g)
    {
        (int, int) P(string key) => (d[key]![0]!.GetValue<int>(), d[key]![1]!.GetValue<int>());
        int I(string key) => d[key]!.GetValue<int>();
        return d["type"]!.GetValue<string>() switch
        {
            "conv2d" => new Conv2d(I("in"), I("out"), P("kernel"), g, P("stride"), P("padding"), P("dilation"), I("groups"), d["bias"]!.GetValue<bool>()),
            "batchnorm2d" => new BatchNorm2d(I("channels")),
            "groupnorm" => new GroupNorm(I("groups"), I("channels")),
            "relu" => new Relu(),
            "maxpool2d" => new MaxPool2d(P("kernel"), P("stride"), P("padding"), P("dilation")),
            "avgpool2d" => new AvgPool2d(P("kernel"), P("stride"), P("padding"), d["count_include_pad"]!.GetValue<bool>()),
            "adaptiveavgpool2d" => new AdaptiveAvgPool2d(P("output")),
            "flatten" => new Flatten(),
            "linear" => new Linear(I("in"), I("out"), g),
            var t => throw new ArgumentException("unknown layer " + t),
        };
    }

    [Fact]
    public void ConvLayersAndNet_SameWeightsAndInput_MatchPyTorch()
    {
        var paths = new List<string>();
        var expectedCounts = new Dictionary<string, int>();
        int index = 0;
        foreach (var (name, inputShape, layers) in Cases())
        {
            var g = new Generator(31 + (ulong)index);
            var model = new Sequential(layers.Select(l => Build(l, g)).ToArray());
            // Non-trivial affine parameters and running statistics, so that every term of the norms is exercised.
            using (GradMode.NoGrad())
                foreach (var (key, t) in model.StateDict())
                    if (key.EndsWith("running_mean", StringComparison.Ordinal) || key.EndsWith(".bias", StringComparison.Ordinal))
                        t.CopyFrom(Tensor.Uniform(g, -0.5, 0.5, t.Shape.ToArray()));
                    else if (key.EndsWith("running_var", StringComparison.Ordinal) || (key.EndsWith(".weight", StringComparison.Ordinal) && t.Rank == 1))
                        t.CopyFrom(Tensor.Uniform(g, 0.5, 1.5, t.Shape.ToArray()));
            var tensors = model.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value.Clone().Detach())).ToList();
            var x = Tensor.RandN(g, inputShape);
            x.RequiresGrad = true;
            var y = model.Forward(x);
            var v = Tensor.RandN(g, y.Shape.ToArray());
            (v * y).Sum().Backward();
            tensors.Add(new("input", x.Detach()));
            tensors.Add(new("v", v));
            tensors.Add(new("output", y.Detach()));
            tensors.Add(new("grad.input", x.Grad!));
            tensors.AddRange(model.NamedParameters().Select(p => new KeyValuePair<string, Tensor>("grad." + p.Name, p.Parameter.Grad!)));
            tensors.AddRange(model.NamedBuffers().Select(b => new KeyValuePair<string, Tensor>("after." + b.Name, b.Buffer)));
            expectedCounts[name] = 2 + model.NamedParameters().Count() + model.NamedBuffers().Count();
            var path = Path.Combine(_dir, $"case{index++}.safetensors");
            SafeTensors.Write(path, tensors, new Dictionary<string, string>
            {
                ["case"] = name,
                ["layers"] = new JsonArray(layers.Select(l => (JsonNode)l.DeepClone()).ToArray()).ToJsonString(),
            });
            paths.Add(path);
        }

        var (exit, stdout, stderr) = PyTorchScript.Run("conv_parity.py", [.. paths]);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == paths.Count, $"conv_parity.py answered {lines.Length} of {paths.Count} cases:\n{stdout}\n{stderr}");
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string name = doc.RootElement.GetProperty("case").GetString()!;
            var errors = doc.RootElement.GetProperty("errors").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
            Assert.True(errors.Count == expectedCounts[name], $"{name}: compared {errors.Count} tensors, expected {expectedCounts[name]}: {line}");
            Assert.All(errors, e => Assert.True(e.Value <= 1e-4, $"{name} {e.Key}: relative error {e.Value}"));
        }
        Assert.True(exit == 0, $"PyTorch parity failed:\n{stdout}\n{stderr}");
    }
}
