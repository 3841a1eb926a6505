using System.CommandLine;
using GradFlow.Training.Onnx;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Nn.Network;
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
    // the options of 'grads'; one line each
    public static readonly Option<string?> Model = Opt.String("model", "a spec, shorthand or 'net ...' description (docs/model-spec.md), or FILE.onnx with its weights (docs/onnx.md)", "MODEL");
    public static readonly Option<string?> ModelFile = Opt.String("model-file", "the model in a file", "FILE");
    public static readonly Option<string?> Batch = new("--batch") { Description = "a safetensors file holding 'x' and 'y': [N] class indices, or [N, T] for a model with logits per position", HelpName = "FILE", Required = true };
    public static readonly Option<string?> Out = new("--out") { Description = "the safetensors file to write", HelpName = "FILE", Required = true };
    public static readonly Option<ulong?> Seed = Opt.ULong("seed", "seed of the initialisation (default 0)");
    public static readonly Option<double?> LabelSmoothing = Opt.Double("label-smoothing", "cross-entropy label smoothing");

    public static Command Declare()
    {
        var command = new Verb("grads", "gradients of one batch, written to safetensors for comparison with other frameworks",
            "Builds any model (a spec such as \"mlp 20-32-5\", \"lstm 2-16-3\", a shorthand such as resnet20 or \"cnn 1x28x28-c8-p-10\", a 'net ...' " +
            "description or its JSON; docs/model-spec.md) with the seed (or imports FILE.onnx with its weights, docs/onnx.md), runs one forward and " +
            "backward pass of cross-entropy on the batch ('x' is [N, ...the model's input shape] or the same number of values per example, " +
            "[N, T, features] or [N, T·features] for a sequence model; 'y' is [N] class indices, or [N, T] for a model with logits per position " +
            "such as a language model, with the loss of 'train': the mean over every position), and writes a safetensors file with every parameter (PyTorch names, e.g. layers.0.weight), its " +
            "gradient (layers.0.weight.grad), 'output' (the logits) and 'loss'.")
        { Model, ModelFile, Batch, Out, Seed, LabelSmoothing };
        command.Validators.Add(r =>
        {
            if (r.Has(Model) && r.Has(ModelFile)) r.AddError("give either --model or --model-file, not both.");
            else if (!r.Has(Model) && !r.Has(ModelFile)) r.AddError("--model or --model-file is required.");
        });
        command.SetAction(r => Run(r, r.Out()));
        return command;
    }

    private static int Run(ParseResult o, TextWriter stdout)
    {
        string model = o.GetValue(Model) ?? File.ReadAllText(o.GetValue(ModelFile)!);
        string batchPath = o.GetValue(Batch)!;
        string outPath = o.GetValue(Out)!;
        var imported = OnnxImport.IsOnnxPath(model) ? OnnxImport.Read(model.Trim()) : null;
        var description = imported?.Description ?? NetworkDescription.Parse(model);
        var inShape = description.Input.ToArray();
        int perExample = inShape.Aggregate(1, (a, n) => a * n);
        var outShape = description.OutputShape();
        // cross-entropy as training computes it: a vector of class logits per example, or [T, classes] (a class per position, a language model)
        if (outShape.Length is not (1 or 2))
            throw new InvalidDataException($"gradflow grads: the model gives {Fmt(outShape)} per example; cross-entropy needs a vector of class logits, or [T, classes] for a class per position.");
        string file = Path.GetFileName(batchPath);
        // another format (an NPZ, say) read as safetensors gave "header length … exceeds" without saying what was wrong
        if (!batchPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"gradflow grads: --batch {file} is not a .safetensors file; it takes one holding 'x' and 'y' (safetensors.torch.save_file).");
        var batch = SafeTensors.Read(batchPath);
        var x = batch.Tensors.FirstOrDefault(kv => kv.Key == "x").Value
            ?? throw new InvalidDataException($"gradflow grads: {file} has no tensor 'x' (present: {string.Join(", ", batch.Tensors.Select(t => t.Key))}).");
        var yTensor = batch.Tensors.FirstOrDefault(kv => kv.Key == "y").Value
            ?? throw new InvalidDataException($"gradflow grads: {file} has no tensor 'y' (present: {string.Join(", ", batch.Tensors.Select(t => t.Key))}).");
        // as train reads data: a sequence model ([T, I]) takes [N, T, I] of any length T, or [N, T·I] read flat; any other model
        // [N, ...its input shape] or the same values per example
        bool sequence = inShape.Length == 2;
        int? flatSteps = sequence && x.Rank == 2 ? description.FlatSequenceSteps(x.Shape[1]) : null;
        bool fits = sequence ? x.Rank == 3 && x.Shape[2] == inShape[1] || flatSteps is not null : x.Rank >= 2 && x.Count / Math.Max(1, x.Shape[0]) == perExample;
        if (!fits)
            throw new InvalidDataException($"gradflow grads: {file}: 'x' has shape {Fmt(x.Shape)}, the model needs " +
                (sequence ? $"[N, T, {inShape[1]}] or [N, T·{inShape[1]}] (a flat row read as T steps of {inShape[1]})." : $"[N, {string.Join(", ", inShape)}]."));
        // as train reads a file: a model that starts with an embedding reads token ids
        DataSources.CheckTokenIds(description, x, file, description.Describe);
        var input = x.DType == DType.Float32 ? x : x.To(DType.Float32).Detach();
        if (!sequence) input = input.Reshape([x.Shape[0], .. inShape]);
        else if (flatSteps is { } steps) input = input.Reshape([x.Shape[0], steps, inShape[1]]);
        var net = NetworkBuilder.Build(description, new Generator(o.GetValue(Seed) ?? 0), input);
        if (imported is not null) OnnxImport.Load(net, imported.Weights, model.Trim());
        // dropout off, the rest in training mode (batch norm on the batch's statistics): a gradient another framework can reproduce
        // (a transformer's default dropout 0.1 drew masks no one could match, and grads matched PyTorch in neither mode)
        foreach (var (_, m) in net.NamedModules())
            if (m is GradFlow.Nn.Dropout) m.Eval();
        var output = net.Forward(input);
        // a label per example ([N]), or per position ([N, T]) when the model gives logits per position ([N, T, classes])
        int[] yShape = output.Shape[..^1].ToArray();
        if (!yTensor.Shape.SequenceEqual(yShape))
            throw new InvalidDataException($"gradflow grads: {file}: 'y' has shape {Fmt(yTensor.Shape)}, expected {Fmt(yShape)}" +
                (outShape.Length == 1 ? " (a class index per example)." : $" (a class index per position: the model gives {Fmt(output.Shape[1..])} logits per example)."));
        int classes = output.Shape[^1];
        var labels = new int[yTensor.Count];
        for (int i = 0; i < labels.Length; i++)
        {
            double v = yTensor.GetFlat(i);
            if (v != Math.Floor(v) || v < 0 || v >= classes)
                throw new InvalidDataException($"gradflow grads: {file}: 'y'[{Index(i, yShape)}] = {v} is not a class index in [0, {classes}).");
            labels[i] = (int)v;
        }
        var loss = Trainer.CrossEntropy(output, IndexTensor.FromArray(labels, yShape), o.GetValue(LabelSmoothing) ?? 0);
        loss.Backward();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, p) in net.NamedParameters()) tensors.Add(new(name, p.Data));
        foreach (var (name, p) in net.NamedParameters()) tensors.Add(new(name + ".grad", p.Grad ?? p.Data.ZerosLike()));
        tensors.Add(new("output", output.Detach()));
        tensors.Add(new("loss", loss.Detach()));
        SafeTensors.Write(outPath, tensors, new Dictionary<string, string> { ["model"] = imported is null ? NetworkSpecs.TryParse(model)?.ToString() ?? NetworkText.Format(description) : NetworkText.Format(description), ["seed"] = (o.GetValue(Seed) ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture) });
        stdout.WriteLine($"loss {loss.Item():R}; {net.NamedParameters().Count()} parameters and their gradients written to {outPath}");
        return 0;
    }

    private static string Fmt(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <summary>The flat index <paramref name="i"/> of a tensor of <paramref name="shape"/> as its indices ("3" or "1, 4").</summary>
    private static string Index(int i, int[] shape) => shape.Length == 1 ? $"{i}" : $"{i / shape[1]}, {i % shape[1]}";
}
