using System.Text.Json;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training;

namespace GradFlow.Tests.Interop;

/// <summary>
/// The recurrent layers against PyTorch (Debian's python3-torch, which the test command installs): a
/// 2-layer GradFlow layer runs forward and backward in float32; its parameters (under PyTorch's
/// names), input, initial state, loss weights and every result and gradient go into one safetensors
/// file; tests/python/rnn_parity.py loads the parameters into the torch.nn layer with strict=True,
/// repeats the computation in float64 and compares: outputs, final states and the gradients of every
/// parameter, the input and the initial state within 1e-4 relative.
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchRnnParityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-rnn-parity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("lstm", true, true)]
    [InlineData("lstm", false, false)]
    [InlineData("gru", false, true)]
    [InlineData("gru", true, false)]
    [InlineData("rnn_tanh", true, true)]
    [InlineData("rnn_relu", false, true)]
    public void RecurrentLayer_SameWeightsAndInput_MatchesPyTorch(string mode, bool batchFirst, bool withState)
    {
        const int steps = 6, batch = 3, input = 5, hidden = 7, layers = 2;
        var g = new Generator(21);
        RecurrentLayer layer = mode switch
        {
            "lstm" => new Lstm(input, hidden, g, layers, batchFirst: batchFirst),
            "gru" => new Gru(input, hidden, g, layers, batchFirst: batchFirst),
            _ => new Rnn(input, hidden, g, layers, mode == "rnn_relu" ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh, batchFirst: batchFirst),
        };
        bool lstm = mode == "lstm";
        var x = Tensor.RandN(g, batchFirst ? [batch, steps, input] : [steps, batch, input]);
        x.RequiresGrad = true;
        Tensor? h0 = null, c0 = null;
        if (withState)
        {
            h0 = (Tensor.RandN(g, layers, batch, hidden) * 0.5).Detach();
            h0.RequiresGrad = true;
            if (lstm)
            {
                c0 = (Tensor.RandN(g, layers, batch, hidden) * 0.5).Detach();
                c0.RequiresGrad = true;
            }
        }
        var (output, state) = layer.Forward(x, h0 is null ? null : new RecurrentState(h0, c0));
        var vOut = Tensor.RandN(g, output.Shape.ToArray());
        var vH = Tensor.RandN(g, layers, batch, hidden);
        var vC = Tensor.RandN(g, layers, batch, hidden);
        var loss = (vOut * output).Sum() + (vH * state.H).Sum();
        if (lstm) loss = loss + (vC * state.C!).Sum();
        loss.Backward();

        var tensors = new List<KeyValuePair<string, Tensor>>();
        tensors.AddRange(layer.StateDict());
        tensors.Add(new("input", x.Detach()));
        tensors.Add(new("grad.input", x.Grad!));
        if (h0 is not null)
        {
            tensors.Add(new("h0", h0.Detach()));
            tensors.Add(new("grad.h0", h0.Grad!));
        }
        if (c0 is not null)
        {
            tensors.Add(new("c0", c0.Detach()));
            tensors.Add(new("grad.c0", c0.Grad!));
        }
        tensors.Add(new("v_output", vOut));
        tensors.Add(new("v_h", vH));
        tensors.Add(new("v_c", vC));
        tensors.Add(new("output", output.Detach()));
        tensors.Add(new("h_n", state.H.Detach()));
        if (lstm) tensors.Add(new("c_n", state.C!.Detach()));
        tensors.AddRange(layer.NamedParameters().Select(p => new KeyValuePair<string, Tensor>("grad." + p.Name, p.Parameter.Grad!)));
        var path = Path.Combine(_dir, $"{mode}.safetensors");
        SafeTensors.Write(path, tensors, new Dictionary<string, string>
        {
            ["mode"] = mode,
            ["num_layers"] = layers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["batch_first"] = batchFirst ? "true" : "false",
        });

        var (exit, stdout, stderr) = PyTorchScript.Run("rnn_parity.py", path);
        Assert.True(exit == 0, $"PyTorch parity failed for {mode}: {stdout}\n{stderr}");

        using var doc = JsonDocument.Parse(stdout);
        var errors = doc.RootElement.GetProperty("errors").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
        // Everything was compared: outputs, final states, every parameter's gradient, the input's and the state's.
        int expected = 2 + (lstm ? 1 : 0) + layer.NamedParameters().Count() + 1 + (withState ? (lstm ? 2 : 1) : 0);
        Assert.Equal(expected, errors.Count);
        Assert.All(errors, e => Assert.True(e.Value < 1e-4, $"{mode} {e.Key}: relative error {e.Value}"));
    }
}
