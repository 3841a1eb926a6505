using System.Globalization;
using GradFlow.Optim;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Diagnostics;

/// <summary>
/// A task of the generated catalogue: a data set with its model input and output sizes and one
/// budget in optimiser steps, so that every configuration of the task is judged at the same budget.
/// </summary>
/// <param name="Name">Short name (<c>teacher-32-10</c>), the first part of a group key.</param>
/// <param name="Data">The data set.</param>
/// <param name="Input">Model inputs (features per time step for sequences).</param>
/// <param name="Output">Model outputs (classes, or regression targets).</param>
/// <param name="Steps">The budget in optimiser steps.</param>
/// <param name="Recurrent">Whether the task takes recurrent models.</param>
/// <param name="TrainLimit">Training examples kept (null: the data set's own size).</param>
/// <param name="TestLimit">Test examples kept.</param>
/// <param name="SequenceLength">Sequence length of a sequence task.</param>
/// <param name="Image">The shape of one image, for a task of conv nets (null: the models are MLP or recurrent specs).</param>
public sealed record CatalogueTask(string Name, string Data, int Input, int Output, int Steps, bool Recurrent,
    int? TrainLimit = null, int? TestLimit = null, int? SequenceLength = null, int[]? Image = null);

/// <summary>
/// The grammar the generated catalogue is drawn from, reproducibly by seed: architecture family
/// (MLP, recurrent, conv net), depth, width, activation, initialisation, normalisation, residual; optimiser,
/// learning rate, momentum, weight decay, batch size, clipping; task and its budget. The draws are
/// deliberately wide (learning rates over five decades, weight scales from 0.01 to 3, depths to 40),
/// so that a good share of them fail: the labels come from what training did, not from the draw.
/// </summary>
public static class CatalogueGrammar
{
    /// <summary>The tasks, with their budgets (docs/diagnosis.md).</summary>
    public static IReadOnlyList<CatalogueTask> Tasks { get; } =
    [
        new("teacher-32-10", "teacher", 32, 10, 1200, false),
        new("teacher-20-4", "teacher", 20, 4, 1200, false),
        new("spirals", "spirals", 2, 2, 1500, false),
        new("circles", "circles", 2, 2, 1200, false),
        new("fashion-mnist-6k", "fashion-mnist", 784, 10, 1200, false, TrainLimit: 6000, TestLimit: 2000),
        new("adding-30", "adding", 2, 1, 1200, true, TrainLimit: 38_400, TestLimit: 1000, SequenceLength: 30),
        new("fashion-mnist-6k-conv", "fashion-mnist", 784, 10, 1200, false, TrainLimit: 6000, TestLimit: 2000, Image: [1, 28, 28]),
    ];

    /// <summary>The conv-net task: its configurations are drawn by <see cref="DrawConv"/> and judged against each other only.</summary>
    public static CatalogueTask ConvTask => Tasks[6];

    /// <summary>The optimiser family a configuration is compared within: <c>sgd</c> or <c>adaptive</c> (Adam, AdamW, RMSprop, Adagrad).</summary>
    public static string OptimizerFamily(OptimizerKind kind) => kind == OptimizerKind.Sgd ? "sgd" : "adaptive";

    /// <summary>The task whose data and sizes <paramref name="config"/> has, or null: an MLP or recurrent spec's task by its sizes, a
    /// description's (a conv net's) by its input shape; null for another model or an unreadable one.</summary>
    public static CatalogueTask? TaskOf(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Spec() is { } spec)
            return Tasks.FirstOrDefault(t => t.Image is null && t.Data == config.Data && t.Input == spec.Input && t.Output == spec.Output
                && t.SequenceLength == config.SequenceLength && t.TrainLimit == config.TrainLimit);
        IReadOnlyList<int> input;
        try { input = config.Description().Input; }
        catch (Exception e) when (e is FormatException or ArgumentException) { return null; }
        return Tasks.FirstOrDefault(t => t.Image is not null && t.Data == config.Data && input.SequenceEqual(t.Image) && t.TrainLimit == config.TrainLimit);
    }

    /// <summary>The comparison group of <paramref name="config"/>: task, optimiser family and budget.</summary>
    public static string GroupOf(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        string task = TaskOf(config)?.Name ?? config.Data;
        return string.Create(CultureInfo.InvariantCulture, $"{task}/{OptimizerFamily(config.Optimizer)}/{config.MaxSteps}");
    }

    /// <summary>Draws <paramref name="count"/> named configurations from the grammar with <paramref name="seed"/>.</summary>
    public static IReadOnlyList<(string Name, TrainingConfig Config)> Draw(ulong seed, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var g = new Generator(seed);
        var result = new List<(string, TrainingConfig)>(count);
        for (int i = 0; i < count; i++)
        {
            // one task in six is recurrent; the others spread over the MLP tasks, Fashion-MNIST weighted up
            var task = Pick(g, (Tasks[0], 2), (Tasks[1], 2), (Tasks[2], 2), (Tasks[3], 1.5), (Tasks[4], 2.5), (Tasks[5], 2));
            var config = task.Recurrent ? DrawRecurrent(g, task) : DrawMlp(g, task);
            result.Add((string.Create(CultureInfo.InvariantCulture, $"g{seed}-{i:D3}-{task.Name}"), config));
        }
        return result;
    }

    /// <summary>
    /// Draws <paramref name="count"/> conv nets for <see cref="ConvTask"/> with <paramref name="seed"/>, named <c>g{seed}-c{i}-…</c>: plain
    /// conv stacks (<c>cnn</c>: a stride-2 stem, two stages of 1-6 convs with a pool between, global average pool; ten activations,
    /// eleven initialisations, batch, group or no norm) and CIFAR ResNets of depth 8-20 (option A or B, full, zero-γ or zero start, with
    /// or without BatchNorm), trained as the other tasks are. Their own stream of draws: <see cref="Draw"/> with the same seed is unchanged.
    /// </summary>
    public static IReadOnlyList<(string Name, TrainingConfig Config)> DrawConv(ulong seed, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var g = new Generator(seed ^ 0xC0_4E_E7_00_00_00_00_01UL);
        var task = ConvTask;
        var result = new List<(string, TrainingConfig)>(count);
        for (int i = 0; i < count; i++)
        {
            string model;
            if (g.NextDouble() < 0.7)
            {
                int w = Pick(g, (4, 1), (8, 1.5), (16, 1));
                int r1 = Pick(g, (1, 1), (2, 1.5), (3, 1), (4, 1), (6, 0.8)), r2 = Pick(g, (1, 1), (2, 1.5), (3, 1), (4, 1), (6, 0.8));
                string act = Pick(g, ("relu", 3), ("leaky-relu", 1), ("elu", 0.7), ("gelu", 0.6), ("silu", 0.6), ("selu", 0.4),
                    ("tanh", 2), ("sigmoid", 1.6), ("hard-tanh", 0.4), ("mish", 0.4));
                string init = Pick(g, ("default", 1.5), ("he-normal", 1.5), ("he-uniform", 0.5), ("xavier-normal", 1.2), ("xavier-uniform", 0.6),
                    ("lecun-normal", 0.5), ("orthogonal", 0.6), ("normal:0.01", 0.5), ("normal:0.05", 0.4), ("normal:0.3", 0.4), ("normal:1", 0.4));
                string norm = Pick(g, ("none", 5), ("batch", 3), ("group:2", 1));
                static string Stage(int width, int repeat) => repeat == 1 ? $"c{width}" : $"c{width}x{repeat}";
                model = $"cnn 1x28x28-c{w}s2-{Stage(w, r1)}-p-{Stage(2 * w, r2)}-gap-{task.Output} act={act} init={init} norm={norm}";
            }
            else
            {
                int depth = Pick(g, (8, 1.5), (14, 1), (20, 0.7));
                int width = Pick(g, (4, 1), (8, 1));
                string shortcut = Pick(g, ("a", 1), ("b", 1));
                string start = Pick(g, ("full", 2), ("zero-gamma", 1), ("zero", 1));
                string norm = Pick(g, ("batch", 3), ("none", 1));
                if (norm == "none" && start == "zero-gamma") start = "zero";
                model = $"resnet{depth} in=1x28x28 classes={task.Output} width={width} shortcut={shortcut} start={start} norm={norm}";
            }
            result.Add((string.Create(CultureInfo.InvariantCulture, $"g{seed}-c{i:D3}-{task.Name}"), Training(g, task, model, recurrent: false)));
        }
        return result;
    }

    private static TrainingConfig DrawMlp(Generator g, CatalogueTask task)
    {
        int depth = Pick(g, (2, 1), (3, 1), (4, 1.5), (6, 1.5), (8, 1.5), (12, 1.2), (16, 1), (20, 1), (30, 0.8), (40, 0.6));
        int width = task.Input > 100 ? Pick(g, (64, 1), (128, 1), (256, 0.6)) : Pick(g, (16, 0.6), (32, 1), (64, 1.2), (128, 0.6));
        string act = Pick(g, ("relu", 3), ("leaky-relu", 1), ("elu", 0.7), ("gelu", 0.8), ("silu", 0.7), ("selu", 0.5),
            ("tanh", 2.2), ("sigmoid", 1.6), ("hard-tanh", 0.4), ("mish", 0.4));
        string init = Pick(g, ("default", 1.5), ("he-normal", 1.5), ("he-uniform", 0.5), ("xavier-normal", 1.2), ("xavier-uniform", 0.6),
            ("lecun-normal", 0.5), ("orthogonal", 0.6), ("lsuv", 0.4),
            ("normal:0.01", 0.5), ("normal:0.05", 0.4), ("normal:0.1", 0.4), ("normal:0.3", 0.4), ("normal:1", 0.5), ("normal:2", 0.3));
        string norm = Pick(g, ("none", 6.5), ("batch", 2), ("layer", 1.5));
        string residual = depth < 3 ? "no" : Pick(g, ("no", 7), ("yes", 1.5), ("zero", 1.5));
        string model = $"mlp {task.Input}-{width}x{depth}-{task.Output} act={act} init={init}"
            + (norm == "none" ? "" : $" norm={norm}") + (residual == "no" ? "" : $" residual={residual}");
        return Training(g, task, model, recurrent: false);
    }

    private static TrainingConfig DrawRecurrent(Generator g, CatalogueTask task)
    {
        string cell = Pick(g, ("rnn", 2.5), ("lstm", 1.5), ("gru", 1.5));
        int hidden = Pick(g, (16, 1), (32, 1.5), (64, 1));
        int layers = Pick(g, (1, 3), (2, 1));
        string act = cell == "rnn" ? Pick(g, ("tanh", 3), ("relu", 1)) : "";
        string init = Pick(g, ("default", 3), ("orthogonal", 1.5), ("default:0.3", 0.6), ("default:3", 0.8), ("normal:0.01", 0.5))
            is var i && i == "orthogonal" && act == "relu" && g.NextDouble() < 0.5 ? "identity" : i;
        string model = $"{cell} {task.Input}-{hidden}{(layers > 1 ? $"x{layers}" : "")}-{task.Output}"
            + (act is "" or "tanh" ? "" : $" act={act}") + (init == "default" ? "" : $" init={init}");
        return Training(g, task, model, recurrent: true);
    }

    private static TrainingConfig Training(Generator g, CatalogueTask task, string model, bool recurrent)
    {
        var opt = Pick(g, (OptimizerKind.Adam, 3.5), (OptimizerKind.Sgd, 3), (OptimizerKind.AdamW, 1), (OptimizerKind.RmsProp, 1.2), (OptimizerKind.Adagrad, 1.3));
        // learning rates log-uniform over each optimiser's usable range and a decade or more either side of it
        var (lo, hi) = opt switch
        {
            OptimizerKind.Sgd => (1e-3, 1.0),
            OptimizerKind.Adagrad => (1e-3, 1.0),
            _ => (1e-5, 3e-2),
        };
        double lr = Round2(Math.Exp(Math.Log(lo) + g.NextDouble() * (Math.Log(hi) - Math.Log(lo))));
        double momentum = opt == OptimizerKind.Sgd ? Pick(g, (0.0, 1), (0.9, 1.5)) : 0;
        double decay = opt == OptimizerKind.AdamW ? 0.01 : 0;
        int batch = recurrent ? Pick(g, (16, 1), (32, 1.5), (64, 1)) : Pick(g, (16, 0.8), (32, 1.2), (64, 1.2), (128, 0.8));
        double? clip = Pick(g, (null, recurrent ? 2.5 : 4.0), ((double?)1.0, 1.0));
        int train = task.TrainLimit ?? 4000; // the synthetic sets hold 4000 training examples
        int epochs = (int)Math.Ceiling((double)task.Steps * batch / train);
        return new TrainingConfig
        {
            Model = model,
            Data = task.Data,
            TrainLimit = task.TrainLimit,
            TestLimit = task.TestLimit,
            SequenceLength = task.SequenceLength,
            Optimizer = opt,
            LearningRate = lr,
            Momentum = momentum,
            WeightDecay = decay,
            BatchSize = batch,
            Epochs = Math.Max(1, epochs),
            MaxSteps = task.Steps,
            ClipNorm = clip,
            CheckpointEvery = null,
        };
    }

    /// <summary>Two significant digits, so configurations read well and round-trip through JSON exactly.</summary>
    private static double Round2(double v) => double.Parse(v.ToString("G2", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static T Pick<T>(Generator g, params (T Value, double Weight)[] choices)
    {
        double total = choices.Sum(c => c.Weight);
        double u = g.NextDouble() * total;
        foreach (var (value, weight) in choices)
        {
            if (u < weight) return value;
            u -= weight;
        }
        return choices[^1].Value;
    }
}
