using System.Numerics.Tensors;
using GradFlow.Kernels;

namespace GradFlow.Tensors;

/// <summary>A kernel from one span to another (the float and double instantiations of one op).</summary>
internal delegate void SpanMap<T>(ReadOnlySpan<T> x, Span<T> y);

/// <summary>A kernel from two equal-length spans to a third.</summary>
internal delegate void SpanZip<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y);

public sealed partial class Tensor
{
    /// <summary>Applies a same-shape kernel to <paramref name="x"/>, choosing the float or double instantiation.</summary>
    internal static Tensor Map(string op, Tensor x, SpanMap<float> f, SpanMap<double> d)
    {
        var y = Uninitialized(op, x, x._shape);
        if (IsLarge(y.Count)) MapInChunks(x, y, f, d);
        else if (x.Storage is float[]) f(x.Span<float>(), y.Span<float>());
        else d(x.Span<double>(), y.Span<double>());
        return y;
    }

    // the chunked paths live in methods of their own: a lambda's captured parameters are allocated at the entry of the method
    // that declares it, and the small element-wise ops of a step must not pay for that
    private static void MapInChunks(Tensor x, Tensor y, SpanMap<float> f, SpanMap<double> d)
    {
        if (x.Storage is float[]) InChunks(y.Count, (lo, len) => f(x.Span<float>().Slice(lo, len), y.Span<float>().Slice(lo, len)));
        else InChunks(y.Count, (lo, len) => d(x.Span<double>().Slice(lo, len), y.Span<double>().Slice(lo, len)));
    }

    /// <summary>
    /// Elements per task of a large element-wise kernel on the kernel threads: a multiple of every vector width, so
    /// each chunk but the last runs whole vectors and the last has the unchunked tail — the same bits as one pass,
    /// for any thread count.
    /// </summary>
    private const int ElementwiseChunk = 1 << 15;

    /// <summary>Whether an element-wise kernel over <paramref name="n"/> elements runs in chunks on the kernel threads.</summary>
    private static bool IsLarge(int n) => n >= KernelThreads.SerialBelow && KernelThreads.Count > 1;

    /// <summary>Runs <paramref name="body"/>(start, length) over [0, n) in <see cref="ElementwiseChunk"/>-element chunks on the kernel threads.</summary>
    private static void InChunks(int n, Action<int, int> body) =>
        KernelThreads.Run((n + ElementwiseChunk - 1) / ElementwiseChunk, t => body(t * ElementwiseChunk, Math.Min(ElementwiseChunk, n - t * ElementwiseChunk)));

    /// <summary>Applies a kernel to two tensors of the same shape and type.</summary>
    internal static Tensor Zip(string op, Tensor a, Tensor b, SpanZip<float> f, SpanZip<double> d)
    {
        CheckSameDType(op, a, b);
        if (!Shapes.Equal(a._shape, b._shape))
            throw new ArgumentException($"{op}: shapes {Shapes.Format(a._shape)} and {Shapes.Format(b._shape)} must be equal.");
        var y = Uninitialized(op, a, a._shape);
        if (IsLarge(y.Count)) ZipInChunks(a, b, y, f, d);
        else if (a.Storage is float[]) f(a.Span<float>(), b.Span<float>(), y.Span<float>());
        else d(a.Span<double>(), b.Span<double>(), y.Span<double>());
        return y;
    }

    private static void ZipInChunks(Tensor a, Tensor b, Tensor y, SpanZip<float> f, SpanZip<double> d)
    {
        if (a.Storage is float[])
            InChunks(y.Count, (lo, len) => f(a.Span<float>().Slice(lo, len), b.Span<float>().Slice(lo, len), y.Span<float>().Slice(lo, len)));
        else
            InChunks(y.Count, (lo, len) => d(a.Span<double>().Slice(lo, len), b.Span<double>().Slice(lo, len), y.Span<double>().Slice(lo, len)));
    }

    internal static void CheckSameDType(string op, Tensor a, Tensor b)
    {
        if (a.DType != b.DType)
            throw new ArgumentException($"{op}: element types differ ({a.DType} and {b.DType}); convert one with To().");
    }

    /// <summary>Broadcast binary op without graph recording.</summary>
    internal static Tensor BroadcastRaw(string op, BinaryOp kind, Tensor a, Tensor b)
    {
        CheckSameDType(op, a, b);
        // same shapes (a residual sum, a gate product): the element-wise kernels, in chunks on the kernel threads when large
        if (Shapes.Equal(a._shape, b._shape) && IsLarge(a.Count))
            switch (kind)
            {
                case BinaryOp.Add: return Zip(op, a, b, TensorPrimitives.Add, TensorPrimitives.Add);
                case BinaryOp.Subtract: return Zip(op, a, b, TensorPrimitives.Subtract, TensorPrimitives.Subtract);
                case BinaryOp.Multiply: return Zip(op, a, b, TensorPrimitives.Multiply, TensorPrimitives.Multiply);
                case BinaryOp.Divide: return Zip(op, a, b, TensorPrimitives.Divide, TensorPrimitives.Divide);
            }
        var shape = Shapes.Equal(a._shape, b._shape) ? a._shape : Shapes.Broadcast(op, a._shape, b._shape);
        var y = Uninitialized(op, a, (int[])shape.Clone());
        var sa = Shapes.BroadcastStrides(a._shape, shape);
        var sb = Shapes.BroadcastStrides(b._shape, shape);
        if (a.Storage is float[])
            BroadcastKernels.Binary(kind, a.Span<float>(), sa, b.Span<float>(), sb, y.Span<float>(), shape);
        else
            BroadcastKernels.Binary(kind, a.Span<double>(), sa, b.Span<double>(), sb, y.Span<double>(), shape);
        return y;
    }

    /// <summary>Sums a broadcast gradient back down to <paramref name="shape"/> (the backward of broadcasting).</summary>
    internal static Tensor SumTo(Tensor g, int[] shape)
    {
        if (Shapes.Equal(g._shape, shape)) return g;
        int lead = g.Rank - shape.Length;
        var axes = new List<int>();
        for (int i = 0; i < g.Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && g._shape[i] != 1)) axes.Add(i);
        var s = axes.Count == 0 ? g : SumRaw(g, axes.ToArray(), keepDim: true);
        return s.ReshapeRaw((int[])shape.Clone());
    }

    /// <summary>Materialises <paramref name="x"/> broadcast to <paramref name="shape"/> (no graph).</summary>
    internal static Tensor ExpandRaw(Tensor x, int[] shape)
    {
        if (Shapes.Equal(x._shape, shape)) return x;
        var strides = Shapes.BroadcastStrides(x._shape, shape);
        var y = Uninitialized("expand", x, (int[])shape.Clone());
        if (x.Storage is float[]) BroadcastKernels.Gather(x.Span<float>(), strides, y.Span<float>(), shape);
        else BroadcastKernels.Gather(x.Span<double>(), strides, y.Span<double>(), shape);
        return y;
    }

    /// <summary>Multiplies by a scalar without recording.</summary>
    internal static Tensor ScaleRaw(Tensor x, double s) => Map("mul", x,
        (a, y) => TensorPrimitives.Multiply(a, (float)s, y),
        (a, y) => TensorPrimitives.Multiply(a, s, y));
}
