using System.Text.Json;
using GradFlow.Autograd;
using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Network;

/// <summary>
/// CIFAR ResNets built from their description against a PyTorch reference of the same architecture
/// with torchvision's names (tests/python/resnet_parity.py, Debian's python3-torch): the script loads
/// our state dict with strict=True, so every name and shape must match, counts the parameters, and
/// compares the evaluation-mode output, the training-mode output, the input gradient and every
/// parameter gradient of <c>L = Σ v·y</c> at relative error ≤ 1e-4 (float32, except the SkipInit case: see there).
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchResNetParityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-resnet-parity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void CifarResNets_SameWeightsAndInput_MatchPyTorchReference()
    {
        (string Text, int Depth, string Shortcut, string Start, int Classes, int[] Input, long Parameters)[] cases =
        [
            ("resnet20", 20, "a", "full", 10, [3, 32, 32], 269_722),
            ("resnet20 shortcut=b", 20, "b", "full", 10, [3, 32, 32], 272_474),
            // ResNet-32 (464,154) + option-B projections (2,752) + 15 α + a 7-class fc (−195) + a 1-channel stem (−288)
            ("resnet32 shortcut=b start=zero in=1x28x28 classes=7", 32, "b", "zero", 7, [1, 28, 28], 464_154 + 2_752 + 15 - 195 - 288),
        ];
        var paths = new List<string>();
        var expectedCounts = new Dictionary<string, (long Parameters, int Tensors)>();
        for (int i = 0; i < cases.Length; i++)
        {
            var (text, depth, shortcut, start, classes, input, parameters) = cases[i];
            var g = new Generator(71 + (ulong)i);
            var net = NetworkBuilder.Build(NetworkDescription.Parse(text), g);
            Assert.Equal(parameters, net.ParameterCount());
            // non-trivial norms, running statistics and α, so that every term is exercised
            using (GradMode.NoGrad())
                foreach (var (key, t) in net.StateDict())
                    if (key.EndsWith("running_mean", StringComparison.Ordinal) || (key.EndsWith(".bias", StringComparison.Ordinal) && key.Contains("bn", StringComparison.Ordinal)))
                        t.CopyFrom(Tensor.Uniform(g, -0.2, 0.2, t.Shape.ToArray()));
                    else if (key.EndsWith("running_var", StringComparison.Ordinal) || key.EndsWith("alpha", StringComparison.Ordinal)
                             || (key.EndsWith(".weight", StringComparison.Ordinal) && t.Rank == 1))
                        t.CopyFrom(Tensor.Uniform(g, 0.5, 1.5, t.Shape.ToArray()));
            var tensors = net.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value.Clone().Detach())).ToList();
            var x = Tensor.RandN(g, [2, .. input]);
            // α's gradient is one sum of f·dL/dy over every element of the block's output, which cancels
            // heavily: in float32 it misses PyTorch's float64 value by about 1e-4, so the α case runs in float64
            if (start == "zero") x = x.To(DType.Float64);
            net.Eval();
            Tensor evalOutput;
            using (GradMode.NoGrad()) evalOutput = net.Forward(x);
            net.Train();
            x.RequiresGrad = true;
            var y = net.Forward(x);
            var v = Tensor.RandN(g, y.Shape.ToArray()).To(y.DType);
            (v * y).Sum().Backward();
            tensors.Add(new("input", x.Detach()));
            tensors.Add(new("v", v));
            tensors.Add(new("eval.output", evalOutput));
            tensors.Add(new("output", y.Detach()));
            tensors.Add(new("grad.input", x.Grad!));
            tensors.AddRange(net.NamedParameters().Select(p => new KeyValuePair<string, Tensor>("grad." + p.Name, p.Parameter.Grad!)));
            expectedCounts[text] = (parameters, 3 + net.NamedParameters().Count());
            var path = Path.Combine(_dir, $"case{i}.safetensors");
            SafeTensors.Write(path, tensors, new Dictionary<string, string>
            {
                ["case"] = text, ["depth"] = depth.ToString(System.Globalization.CultureInfo.InvariantCulture), ["shortcut"] = shortcut,
                ["start"] = start, ["classes"] = classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["channels"] = input[0].ToString(System.Globalization.CultureInfo.InvariantCulture),
            });
            paths.Add(path);
        }

        var (exit, stdout, stderr) = PyTorchScript.Run("resnet_parity.py", [.. paths]);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == paths.Count, $"resnet_parity.py answered {lines.Length} of {paths.Count} cases:\n{stdout}\n{stderr}");
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string name = doc.RootElement.GetProperty("case").GetString()!;
            Assert.Equal(expectedCounts[name].Parameters, doc.RootElement.GetProperty("parameters").GetInt64());
            var errors = doc.RootElement.GetProperty("errors").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
            Assert.True(errors.Count == expectedCounts[name].Tensors, $"{name}: compared {errors.Count} tensors, expected {expectedCounts[name].Tensors}: {line}");
            Assert.All(errors, e => Assert.True(e.Value <= 1e-4, $"{name} {e.Key}: relative error {e.Value}"));
        }
        Assert.True(exit == 0, $"PyTorch parity failed:\n{stdout}\n{stderr}");
    }
}
