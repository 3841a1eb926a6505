using System.Text;

namespace GradFlow.Tensors;

/// <summary>Shape arithmetic shared by the ops: sizes, strides, broadcasting, axis checks.</summary>
internal static class Shapes
{
    /// <summary>Number of elements; throws when a dimension is negative or the product overflows.</summary>
    public static int Numel(string op, ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"{op}: negative dimension in shape {Format(shape)}.");
            n *= d;
            if (n > Array.MaxLength) throw new ArgumentException($"{op}: shape {Format(shape)} has more than {Array.MaxLength} elements.");
        }
        return (int)n;
    }

    /// <summary>Row-major strides (elements) of a contiguous tensor of <paramref name="shape"/>.</summary>
    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    /// <summary><c>[2, 3]</c>.</summary>
    public static string Format(ReadOnlySpan<int> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }

    /// <summary>Maps a possibly negative axis into [0, rank); throws naming the op otherwise.</summary>
    public static int Axis(string op, int axis, int rank)
    {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank)
            throw new ArgumentException($"{op}: axis {axis} is out of range for a tensor of rank {rank} (valid: {-rank}..{rank - 1}).");
        return a;
    }

    /// <summary>Normalises a set of axes (null or empty = all), sorted, without duplicates.</summary>
    public static int[] Axes(string op, ReadOnlySpan<int> axes, int rank)
    {
        if (axes.Length == 0)
        {
            var all = new int[rank];
            for (int i = 0; i < rank; i++) all[i] = i;
            return all;
        }
        var result = new int[axes.Length];
        for (int i = 0; i < axes.Length; i++)
        {
            result[i] = Axis(op, axes[i], rank);
            for (int j = 0; j < i; j++)
                if (result[j] == result[i]) throw new ArgumentException($"{op}: axis {axes[i]} is given twice.");
        }
        Array.Sort(result);
        return result;
    }

    /// <summary>NumPy broadcasting of two shapes; throws naming the op and both shapes.</summary>
    public static int[] Broadcast(string op, ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException(
                    $"{op}: shapes {Format(a)} and {Format(b)} cannot be broadcast together (dimension {i} of the result: {da} vs {db}).");
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    /// <summary>Strides of <paramref name="shape"/> viewed as <paramref name="target"/> (0 along broadcast dims).</summary>
    public static int[] BroadcastStrides(ReadOnlySpan<int> shape, ReadOnlySpan<int> target)
    {
        var strides = Strides(shape);
        var result = new int[target.Length];
        int offset = target.Length - shape.Length;
        for (int i = 0; i < shape.Length; i++)
            result[i + offset] = shape[i] == 1 && target[i + offset] != 1 ? 0 : strides[i];
        return result;
    }

    public static bool Equal(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);
}
