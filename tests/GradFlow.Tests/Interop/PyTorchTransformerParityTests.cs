using System.Text.Json;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Interop;

/// <summary>
/// <see cref="MultiheadAttention"/> and <see cref="TransformerEncoderLayer"/> against
/// <c>torch.nn.MultiheadAttention</c> and <c>torch.nn.TransformerEncoderLayer</c> (batch_first, Post-LN
/// and Pre-LN, ReLU and GELU, causal and key-padding masks; QK normalisation against a reference written from
/// its definition, torch.nn having none; tests/python/transformer_parity.py, Debian's
/// python3-torch): the script loads our state dict with strict=True, so every name and shape must match,
/// and compares the output, the input gradient and every parameter gradient of <c>L = Σ v·y</c> at
/// relative error ≤ 1e-4 (ours float32, PyTorch's float64).
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchTransformerParityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-transformer-parity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AttentionAndEncoderLayers_SameWeightsAndInput_MatchPyTorch()
    {
        (string Case, string Module, bool NormFirst, FeedForwardKind Ff, bool Causal, bool Padding)[] cases =
        [
            ("mha", "mha", false, FeedForwardKind.Relu, false, false),
            ("mha causal padded", "mha", false, FeedForwardKind.Relu, true, true),
            ("mha qk-norm causal padded", "mha-qk-norm", false, FeedForwardKind.Relu, true, true),
            ("post-ln relu", "layer", false, FeedForwardKind.Relu, false, false),
            ("post-ln gelu padded", "layer", false, FeedForwardKind.Gelu, false, true),
            ("pre-ln gelu causal", "layer", true, FeedForwardKind.Gelu, true, false),
            ("pre-ln relu causal padded", "layer", true, FeedForwardKind.Relu, true, true),
        ];
        const int B = 3, T = 6, D = 16, H = 4, Ff = 24;
        var paths = new List<string>();
        var expected = new Dictionary<string, int>();
        for (int i = 0; i < cases.Length; i++)
        {
            var c = cases[i];
            var g = new Generator(91 + (ulong)i);
            Module module;
            MultiheadAttention attention;
            if (c.Module.StartsWith("mha", StringComparison.Ordinal)) module = attention = new MultiheadAttention(D, H, g, c.Causal, qkNorm: c.Module == "mha-qk-norm");
            else
            {
                var layer = new TransformerEncoderLayer(D, H, Ff, g, c.NormFirst, c.Ff, dropout: 0, causal: c.Causal);
                attention = layer.SelfAttn;
                module = layer;
            }
            // non-trivial biases and norms, so that every term is exercised
            using (GradMode.NoGrad())
                foreach (var (key, p) in module.NamedParameters())
                    if (p.Data.Rank == 1) p.Data.CopyFrom(Tensor.Uniform(g, key.Contains("norm", StringComparison.Ordinal) ? 0.5 : -0.3, key.Contains("norm", StringComparison.Ordinal) ? 1.5 : 0.3, p.Shape.ToArray()));
            var tensors = module.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value.Clone().Detach())).ToList();
            if (c.Padding)
            {
                var pad = new bool[B * T];
                pad[T - 1] = pad[T - 2] = pad[T + 3] = true;   // the end of the first sequence, a hole in the second
                attention.KeyPaddingMask = pad;
                tensors.Add(new("padding", Tensor.FromArray(pad.Select(p => p ? 1f : 0f).ToArray(), B, T)));
            }
            var x = Tensor.RandN(g, [B, T, D]);
            x.RequiresGrad = true;
            var y = module.Forward(x);
            var v = Tensor.RandN(g, y.Shape.ToArray());
            (v * y).Sum().Backward();
            tensors.Add(new("input", x.Detach()));
            tensors.Add(new("v", v));
            tensors.Add(new("output", y.Detach()));
            tensors.Add(new("grad.input", x.Grad!));
            tensors.AddRange(module.NamedParameters().Select(p => new KeyValuePair<string, Tensor>("grad." + p.Name, p.Parameter.Grad!)));
            expected[c.Case] = 2 + module.NamedParameters().Count();
            var path = Path.Combine(_dir, $"case{i}.safetensors");
            SafeTensors.Write(path, tensors, new Dictionary<string, string>
            {
                ["case"] = c.Case, ["module"] = c.Module, ["heads"] = H.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["ff"] = Ff.ToString(System.Globalization.CultureInfo.InvariantCulture), ["norm_first"] = c.NormFirst ? "true" : "false",
                ["activation"] = c.Ff.ToString().ToLowerInvariant(), ["causal"] = c.Causal ? "true" : "false",
            });
            paths.Add(path);
        }

        var (exit, stdout, stderr) = PyTorchScript.Run("transformer_parity.py", [.. paths]);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == paths.Count, $"transformer_parity.py answered {lines.Length} of {paths.Count} cases:\n{stdout}\n{stderr}");
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string name = doc.RootElement.GetProperty("case").GetString()!;
            var errors = doc.RootElement.GetProperty("errors").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
            Assert.True(errors.Count == expected[name], $"{name}: compared {errors.Count} tensors, expected {expected[name]}: {line}");
            Assert.All(errors, e => Assert.True(e.Value <= 1e-4, $"{name} {e.Key}: relative error {e.Value}"));
        }
        Assert.True(exit == 0, $"PyTorch parity failed:\n{stdout}\n{stderr}");
    }
}
