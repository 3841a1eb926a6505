using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>Element type of an IDX file: the third byte of its magic number.</summary>
public enum IdxType : byte
{
    /// <summary>0x08: unsigned byte (MNIST pixels and labels).</summary>
    UInt8 = 0x08,

    /// <summary>0x09: signed byte.</summary>
    Int8 = 0x09,

    /// <summary>0x0B: big-endian 16-bit integer.</summary>
    Int16 = 0x0B,

    /// <summary>0x0C: big-endian 32-bit integer.</summary>
    Int32 = 0x0C,

    /// <summary>0x0D: big-endian IEEE 754 single.</summary>
    Float32 = 0x0D,

    /// <summary>0x0E: big-endian IEEE 754 double.</summary>
    Float64 = 0x0E,
}

/// <summary>
/// The contents of an IDX file: element type, dimensions and the values in row-major order, held
/// in a .NET array of the matching type (<c>byte[]</c>, <c>sbyte[]</c>, <c>short[]</c>, <c>int[]</c>,
/// <c>float[]</c>, <c>double[]</c>) in native byte order.
/// </summary>
public sealed class IdxArray
{
    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="data"/> (not copied); the element type follows from the array type.</summary>
    /// <exception cref="ArgumentException">when the array type has no IDX code, a dimension is below 1, or the shape does not match the length.</exception>
    public IdxArray(Array data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        Type = TypeOf(data);
        if (shape.Length is 0 or > 255)
            throw new ArgumentException($"IdxArray: an IDX file has 1 to 255 dimensions, got {shape.Length}.", nameof(shape));
        foreach (int d in shape)
            if (d < 1)
                throw new ArgumentException($"IdxArray: dimension {d} in shape {Shapes.Format(shape)} is below 1.", nameof(shape));
        int n = Shapes.Numel("IdxArray", shape);
        if (n != data.Length)
            throw new ArgumentException($"IdxArray: {data.Length} values do not fill shape {Shapes.Format(shape)} ({n} elements).", nameof(data));
        Data = data;
        _shape = (int[])shape.Clone();
    }

    /// <summary>The element type.</summary>
    public IdxType Type { get; }

    /// <summary>The dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Number of elements.</summary>
    public int Count => Data.Length;

    /// <summary>The values, row-major, as an array of the element type.</summary>
    public Array Data { get; }

    /// <summary>Bytes per element of <paramref name="type"/>.</summary>
    public static int ElementSize(IdxType type) => type switch
    {
        IdxType.UInt8 or IdxType.Int8 => 1,
        IdxType.Int16 => 2,
        IdxType.Int32 or IdxType.Float32 => 4,
        IdxType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), $"0x{(byte)type:X2} is not an IDX type code."),
    };

    /// <summary>The values converted to double (exact for every IDX type).</summary>
    public double[] ToDoubleArray()
    {
        var r = new double[Count];
        switch (Type)
        {
            case IdxType.UInt8: { var a = (byte[])Data; for (int i = 0; i < a.Length; i++) r[i] = a[i]; break; }
            case IdxType.Int8: { var a = (sbyte[])Data; for (int i = 0; i < a.Length; i++) r[i] = a[i]; break; }
            case IdxType.Int16: { var a = (short[])Data; for (int i = 0; i < a.Length; i++) r[i] = a[i]; break; }
            case IdxType.Int32: { var a = (int[])Data; for (int i = 0; i < a.Length; i++) r[i] = a[i]; break; }
            case IdxType.Float32: { var a = (float[])Data; for (int i = 0; i < a.Length; i++) r[i] = a[i]; break; }
            default: ((double[])Data).CopyTo(r, 0); break;
        }
        return r;
    }

    /// <remarks>Exact type tests: the CLR lets <c>sbyte[]</c> pass as <c>byte[]</c> (and <c>uint[]</c> as <c>int[]</c>) in pattern matches.</remarks>
    internal static IdxType TypeOf(Array data)
    {
        var t = data.GetType();
        if (t == typeof(byte[])) return IdxType.UInt8;
        if (t == typeof(sbyte[])) return IdxType.Int8;
        if (t == typeof(short[])) return IdxType.Int16;
        if (t == typeof(int[])) return IdxType.Int32;
        if (t == typeof(float[])) return IdxType.Float32;
        if (t == typeof(double[])) return IdxType.Float64;
        throw new ArgumentException($"IdxArray: {t.Name} has no IDX type; use byte[], sbyte[], short[], int[], float[] or double[].");
    }

    internal static string TypeName(IdxType type) => type switch
    {
        IdxType.UInt8 => "ubyte",
        IdxType.Int8 => "sbyte",
        IdxType.Int16 => "short",
        IdxType.Int32 => "int",
        IdxType.Float32 => "float",
        IdxType.Float64 => "double",
        _ => $"0x{(byte)type:X2}",
    };

    /// <inheritdoc />
    public override string ToString() => $"IdxArray({TypeName(Type)}, shape={Shapes.Format(_shape)})";
}
