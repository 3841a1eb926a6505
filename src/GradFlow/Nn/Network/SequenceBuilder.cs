using GradFlow.Tensors;

namespace GradFlow.Nn.Network;

/// <summary>
/// The fluent C# form of a description: each call appends a block (optionally named) and returns the
/// builder; <see cref="Sequence"/> and <see cref="Residual"/> take a nested body.
/// </summary>
/// <example><code>
/// var d = NetworkDescription.Create([3, 32, 32], n => n
///     .Conv(16, 3, padding: 1, bias: false, name: "conv1").Norm(NormalizationKind.Batch, name: "bn1").Act(Activation.Relu)
///     .Residual(b => b.Conv(16, 3, padding: 1, bias: false).Norm(NormalizationKind.Batch), post: Activation.Relu)
///     .AdaptiveAvgPool(1).Flatten().Linear(10, name: "fc"));
/// </code></example>
public sealed class SequenceBuilder
{
    private readonly List<Block> _blocks = [];

    /// <summary>Appends <paramref name="block"/>, renamed to <paramref name="name"/> when given.</summary>
    public SequenceBuilder Add(Block block, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(block);
        _blocks.Add(name is null ? block : block with { Name = name });
        return this;
    }

    /// <summary>A <see cref="LinearBlock"/>.</summary>
    public SequenceBuilder Linear(int outFeatures, bool bias = true, InitScheme? init = null, string? name = null) =>
        Add(new LinearBlock(outFeatures) { Bias = bias, Init = init }, name);

    /// <summary>A <see cref="ConvBlock"/> (init: He normal, fan_out, unless given).</summary>
    public SequenceBuilder Conv(int outChannels, Size2d kernel, Size2d? stride = null, Size2d? padding = null, Size2d? dilation = null, int groups = 1,
        bool bias = true, InitScheme? init = null, string? name = null) =>
        Add(new ConvBlock(outChannels, kernel)
        {
            Stride = stride ?? 1, Padding = padding ?? 0, Dilation = dilation ?? 1, Groups = groups, Bias = bias,
            Init = init ?? new InitScheme(InitKind.KaimingNormalFanOut),
        }, name);

    /// <summary>A <see cref="PoolBlock"/>.</summary>
    public SequenceBuilder Pool(PoolKind kind, Size2d kernel, Size2d? stride = null, Size2d? padding = null, string? name = null) =>
        Add(new PoolBlock(kind, kernel) { Stride = stride, Padding = padding ?? 0 }, name);

    /// <summary>An <see cref="AdaptiveAvgPoolBlock"/>.</summary>
    public SequenceBuilder AdaptiveAvgPool(Size2d size, string? name = null) => Add(new AdaptiveAvgPoolBlock(size), name);

    /// <summary>A <see cref="NormBlock"/>.</summary>
    public SequenceBuilder Norm(NormalizationKind kind, int groups = 0, string? name = null) => Add(new NormBlock(kind, groups), name);

    /// <summary>An <see cref="ActBlock"/>.</summary>
    public SequenceBuilder Act(Activation kind, string? name = null) => Add(new ActBlock(kind), name);

    /// <summary>A <see cref="DropoutBlock"/>.</summary>
    public SequenceBuilder Dropout(double p, string? name = null) => Add(new DropoutBlock(p), name);

    /// <summary>A <see cref="FlattenBlock"/>.</summary>
    public SequenceBuilder Flatten(string? name = null) => Add(new FlattenBlock(), name);

    /// <summary>A nested <see cref="SequenceBlock"/> whose blocks <paramref name="body"/> adds.</summary>
    public SequenceBuilder Sequence(Action<SequenceBuilder> body, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var inner = new SequenceBuilder();
        body(inner);
        return Add(inner.ToSequence(null), name);
    }

    /// <summary>A <see cref="ResidualBlock"/> whose branch <paramref name="branch"/> adds (named <paramref name="branchName"/>, or inline when null).</summary>
    public SequenceBuilder Residual(Action<SequenceBuilder> branch, ShortcutKind shortcut = ShortcutKind.Identity, BranchStart start = BranchStart.Full,
        Activation? post = null, string? branchName = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(branch);
        var inner = new SequenceBuilder();
        branch(inner);
        return Add(new ResidualBlock(inner.ToSequence(branchName), shortcut, start, post), name);
    }

    /// <summary>A <see cref="RecurrentBlock"/>.</summary>
    public SequenceBuilder Recurrent(RecurrentCellKind cell, int hidden, int layers = 1, RecurrentInit? init = null, double? forgetBias = null,
        RecurrentOutputKind output = RecurrentOutputKind.Last, string? name = null) =>
        Add(new RecurrentBlock(cell, hidden)
        {
            Layers = layers, Init = init ?? new RecurrentInit(RecurrentInitKind.Default), ForgetBias = forgetBias, Output = output,
        }, name);

    /// <summary>The blocks so far as a sequence named <paramref name="name"/>.</summary>
    public SequenceBlock ToSequence(string? name) => new(_blocks.ToArray()) { Name = name };
}
