using System.Globalization;

namespace GradFlow.Nn;

/// <summary>How a layer's weight is initialised (biases start at zero except under <see cref="InitKind.Default"/>).</summary>
public enum InitKind
{
    /// <summary>PyTorch's <c>nn.Linear</c> default: U(±1/√fan_in) for weight and bias; a scale multiplies the weight.</summary>
    Default,
    /// <summary>Xavier/Glorot uniform with the activation's gain.</summary>
    XavierUniform,
    /// <summary>Xavier/Glorot normal with the activation's gain.</summary>
    XavierNormal,
    /// <summary>He/Kaiming uniform (fan-in) with the activation's gain.</summary>
    KaimingUniform,
    /// <summary>He/Kaiming normal (fan-in) with the activation's gain.</summary>
    KaimingNormal,
    /// <summary>LeCun normal, N(0, 1/fan_in).</summary>
    LecunNormal,
    /// <summary>Orthogonal with the activation's gain (or <see cref="InitScheme.Scale"/>).</summary>
    Orthogonal,
    /// <summary>N(0, Scale²): a fixed standard deviation regardless of fan (the classic cause of vanishing or exploding signals).</summary>
    Normal,
    /// <summary>Orthogonal, then scaled layer by layer on a data batch until each output has unit variance (Mishkin and Matas 2016); a scale then multiplies the calibrated weights.</summary>
    Lsuv,
    /// <summary>He/Kaiming normal with fan_out, N(0, gain²/fan_out) (torchvision's ResNet convolutions); a scale replaces the gain.</summary>
    KaimingNormalFanOut,
}

/// <summary>
/// An initialisation scheme with its optional scale: the gain for Xavier/Kaiming/orthogonal (default:
/// the activation's recommended gain), the standard deviation for <see cref="InitKind.Normal"/>, a
/// factor on the std for LeCun, and a factor on the finished weights for <see cref="InitKind.Default"/>
/// (PyTorch's draw) and <see cref="InitKind.Lsuv"/> (after calibration).
/// Text form: <c>default</c>, <c>xavier-uniform</c>, <c>xavier-normal</c>, <c>he-uniform</c>
/// (= <c>kaiming-uniform</c>), <c>he-normal</c>, <c>he-normal-fan-out</c>, <c>lecun-normal</c>, <c>orthogonal</c>,
/// <c>normal:0.05</c>, <c>lsuv</c>; a scale may follow any of them after a colon (<c>orthogonal:1.0</c>).
/// </summary>
public readonly record struct InitScheme(InitKind Kind, double? Scale = null)
{
    private static readonly (string Name, InitKind Kind)[] Names =
    [
        ("default", InitKind.Default), ("xavier-uniform", InitKind.XavierUniform), ("xavier-normal", InitKind.XavierNormal),
        ("he-uniform", InitKind.KaimingUniform), ("kaiming-uniform", InitKind.KaimingUniform),
        ("he-normal", InitKind.KaimingNormal), ("kaiming-normal", InitKind.KaimingNormal),
        ("he-normal-fan-out", InitKind.KaimingNormalFanOut), ("kaiming-normal-fan-out", InitKind.KaimingNormalFanOut),
        ("lecun-normal", InitKind.LecunNormal), ("orthogonal", InitKind.Orthogonal), ("normal", InitKind.Normal), ("lsuv", InitKind.Lsuv),
    ];

    /// <summary>Parses the text form; throws naming the text and the valid names.</summary>
    public static InitScheme Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Trim().ToLowerInvariant().Split(':');
        int i = Array.FindIndex(Names, n => n.Name == parts[0]);
        if (i < 0 || parts.Length > 2)
            throw new FormatException($"init: unknown initialiser '{text}' (valid: {string.Join(", ", Names.Select(n => n.Name))}, optionally ':scale').");
        double? scale = null;
        if (parts.Length == 2)
        {
            if (!double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || !(s > 0) || !double.IsFinite(s))
                throw new FormatException($"init: scale '{parts[1]}' in '{text}' is not a positive number.");
            scale = s;
        }
        if (Names[i].Kind == InitKind.Normal && scale is null)
            throw new FormatException($"init: 'normal' needs a standard deviation, e.g. 'normal:0.05'.");
        return new InitScheme(Names[i].Kind, scale);
    }

    /// <summary>The text form (the first name of the kind, plus ':scale' when set).</summary>
    public override string ToString()
    {
        var kind = Kind;
        string name = Names.First(n => n.Kind == kind).Name;
        return Scale is { } s ? name + ":" + s.ToString("R", CultureInfo.InvariantCulture) : name;
    }
}
