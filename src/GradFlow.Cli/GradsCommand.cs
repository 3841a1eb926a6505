using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Cli;

/// <summary>
/// <c>gradflow grads</c>: the gradients of one batch for a model initialised with a seed, written to a
/// safetensors file (parameters, their gradients as <c>NAME.grad</c>, the output and the loss), to
/// compare GradFlow with another framework number by number.
/// </summary>
internal static class GradsCommand
{
    public const string Help = """
        Usage: gradflow grads --model SPEC --batch FILE --out FILE [--seed N] [--label-smoothing X]

        Builds the model with the seed, runs one forward and backward pass of cross-entropy on the
        batch (a safetensors file holding 'x' [N, in] and 'y' [N] class indices, any numeric dtype),
        and writes a safetensors file with every parameter (PyTorch names, e.g. layers.0.weight), its
        gradient (layers.0.weight.grad), 'output' (the logits) and 'loss'.
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["--help"] or ["-h"])
        {
            stdout.Write(Help);
            return 0;
        }
        var o = new CliOptions("grads", args, ["model", "batch", "out", "seed", "label-smoothing"], []);
        string model = o.String("model") ?? throw new UsageException("gradflow grads: --model is required.");
        string batchPath = o.String("batch") ?? throw new UsageException("gradflow grads: --batch is required.");
        string outPath = o.String("out") ?? throw new UsageException("gradflow grads: --out is required.");
        var spec = ModelSpec.ParseAny(model);
        var batch = SafeTensors.Read(batchPath);
        string file = Path.GetFileName(batchPath);
        var x = batch.Tensors.FirstOrDefault(kv => kv.Key == "x").Value
            ?? throw new InvalidDataException($"gradflow grads: {file} has no tensor 'x' (present: {string.Join(", ", batch.Tensors.Select(t => t.Key))}).");
        var yTensor = batch.Tensors.FirstOrDefault(kv => kv.Key == "y").Value
            ?? throw new InvalidDataException($"gradflow grads: {file} has no tensor 'y' (present: {string.Join(", ", batch.Tensors.Select(t => t.Key))}).");
        if (x.Rank != 2 || x.Shape[1] != spec.Input)
            throw new InvalidDataException($"gradflow grads: {file}: 'x' has shape {Fmt(x.Shape)}, the model needs [N, {spec.Input}].");
        if (yTensor.Rank != 1 || yTensor.Shape[0] != x.Shape[0])
            throw new InvalidDataException($"gradflow grads: {file}: 'y' has shape {Fmt(yTensor.Shape)}, expected [{x.Shape[0]}].");
        var labels = new int[yTensor.Count];
        for (int i = 0; i < labels.Length; i++)
        {
            double v = yTensor.GetFlat(i);
            if (v != Math.Floor(v) || v < 0 || v >= spec.Output)
                throw new InvalidDataException($"gradflow grads: {file}: 'y'[{i}] = {v} is not a class index in [0, {spec.Output}).");
            labels[i] = (int)v;
        }
        var input = x.DType == DType.Float32 ? x : x.To(DType.Float32).Detach();
        var net = ModelBuilder.Build(spec, new Generator(o.ULong("seed") ?? 0), input);
        var output = net.Forward(input);
        var loss = Losses.CrossEntropy(output, IndexTensor.FromArray(labels, labels.Length), o.Double("label-smoothing") ?? 0);
        loss.Backward();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, p) in net.NamedParameters()) tensors.Add(new(name, p.Data));
        foreach (var (name, p) in net.NamedParameters()) tensors.Add(new(name + ".grad", p.Grad ?? p.Data.ZerosLike()));
        tensors.Add(new("output", output.Detach()));
        tensors.Add(new("loss", loss.Detach()));
        SafeTensors.Write(outPath, tensors, new Dictionary<string, string> { ["model"] = spec.ToString(), ["seed"] = (o.ULong("seed") ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture) });
        stdout.WriteLine($"loss {loss.Item():R}; {net.NamedParameters().Count()} parameters and their gradients written to {outPath}");
        return 0;
    }

    private static string Fmt(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
