namespace GradFlow.Tensors;

public sealed partial class Tensor
{
    /// <summary>A tensor of zeros.</summary>
    public static Tensor Zeros(params int[] shape) => Zeros(DType.Float32, shape);

    /// <summary>A tensor of zeros of the given element type.</summary>
    public static Tensor Zeros(DType dtype, params int[] shape)
    {
        int n = Shapes.Numel("zeros", shape);
        return new Tensor(dtype == DType.Float64 ? new double[n] : new float[n], (int[])shape.Clone());
    }

    /// <summary>A tensor of ones.</summary>
    public static Tensor Ones(params int[] shape) => Full(1.0, shape);

    /// <summary>A tensor of ones of the given element type.</summary>
    public static Tensor Ones(DType dtype, params int[] shape) => Full(1.0, dtype, shape);

    /// <summary>A tensor filled with <paramref name="value"/>.</summary>
    public static Tensor Full(double value, params int[] shape) => Full(value, DType.Float32, shape);

    /// <summary>A tensor of the given element type filled with <paramref name="value"/>.</summary>
    public static Tensor Full(double value, DType dtype, params int[] shape)
    {
        var t = Uninitialized("full", dtype, (int[])shape.Clone());
        t.FillRaw(value);
        return t;
    }

    /// <summary>A scalar (rank-0) tensor.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32) => Full(value, dtype);

    /// <summary>Values <c>start, start+step, ...</c> below <paramref name="end"/> (as <c>torch.arange</c>).</summary>
    /// <exception cref="ArgumentException">when <paramref name="step"/> is zero or points away from <paramref name="end"/>.</exception>
    public static Tensor Arange(double start, double end, double step = 1.0, DType dtype = DType.Float32)
    {
        if (step == 0 || !double.IsFinite(step) || !double.IsFinite(start) || !double.IsFinite(end))
            throw new ArgumentException($"arange: start={start}, end={end}, step={step} must be finite with a non-zero step.");
        if ((end - start) / step < 0)
            throw new ArgumentException($"arange: step {step} moves away from end {end} (start {start}).");
        int n = (int)Math.Ceiling((end - start) / step);
        var t = Uninitialized("arange", dtype, [n]);
        for (int i = 0; i < n; i++) t.SetFlatRaw(i, start + i * step);
        return t;
    }

    /// <summary>A float32 tensor holding a copy of <paramref name="data"/> (shape defaults to 1-D).</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        shape = CheckFill("FromArray", data.Length, shape);
        return new Tensor((float[])data.Clone(), shape);
    }

    /// <summary>A float64 tensor holding a copy of <paramref name="data"/> (shape defaults to 1-D).</summary>
    public static Tensor FromArray(double[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        shape = CheckFill("FromArray", data.Length, shape);
        return new Tensor((double[])data.Clone(), shape);
    }

    /// <summary>A float32 tensor from a rectangular 2-D array.</summary>
    public static Tensor FromArray(float[,] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int r = data.GetLength(0), c = data.GetLength(1);
        var flat = new float[r * c];
        Buffer.BlockCopy(data, 0, flat, 0, flat.Length * sizeof(float));
        return new Tensor(flat, [r, c]);
    }

    /// <summary>Samples of N(0, 1) drawn in row-major order from <paramref name="generator"/>.</summary>
    public static Tensor RandN(Generator generator, params int[] shape) => Normal(generator, 0, 1, DType.Float32, shape);

    /// <summary>Samples of N(<paramref name="mean"/>, <paramref name="std"/>²).</summary>
    public static Tensor Normal(Generator generator, double mean, double std, params int[] shape) =>
        Normal(generator, mean, std, DType.Float32, shape);

    /// <summary>Samples of N(<paramref name="mean"/>, <paramref name="std"/>²) of the given element type.</summary>
    public static Tensor Normal(Generator generator, double mean, double std, DType dtype, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(generator);
        if (!(std >= 0) || !double.IsFinite(std) || !double.IsFinite(mean))
            throw new ArgumentException($"normal: mean={mean}, std={std}: std must be finite and non-negative.");
        var t = Uninitialized("normal", dtype, (int[])shape.Clone());
        for (int i = 0; i < t.Count; i++) t.SetFlatRaw(i, mean + std * generator.NextNormal());
        return t;
    }

    /// <summary>Samples of U[0, 1).</summary>
    public static Tensor Rand(Generator generator, params int[] shape) => Uniform(generator, 0, 1, DType.Float32, shape);

    /// <summary>Samples of U[<paramref name="low"/>, <paramref name="high"/>).</summary>
    public static Tensor Uniform(Generator generator, double low, double high, params int[] shape) =>
        Uniform(generator, low, high, DType.Float32, shape);

    /// <summary>Samples of U[<paramref name="low"/>, <paramref name="high"/>) of the given element type.</summary>
    public static Tensor Uniform(Generator generator, double low, double high, DType dtype, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(generator);
        if (!(high >= low) || !double.IsFinite(low) || !double.IsFinite(high))
            throw new ArgumentException($"uniform: low={low}, high={high}: need finite bounds with low <= high.");
        var t = Uninitialized("uniform", dtype, (int[])shape.Clone());
        if (t.Storage is float[] f)
        {
            // Rounding to float can reach high itself; keep the interval half-open.
            float top = high > low ? MathF.BitDecrement((float)high) : (float)high;
            for (int i = 0; i < f.Length; i++) f[i] = Math.Min((float)(low + (high - low) * generator.NextDouble()), top);
        }
        else
            for (int i = 0; i < t.Count; i++) t.SetFlatRaw(i, low + (high - low) * generator.NextDouble());
        return t;
    }

    /// <summary>A zero tensor with this tensor's shape and type.</summary>
    public Tensor ZerosLike() => Zeros(DType, _shape);

    /// <summary>A ones tensor with this tensor's shape and type.</summary>
    public Tensor OnesLike() => Ones(DType, _shape);

    // ---------------------------------------------------------------- internal helpers

    internal static Tensor Uninitialized(string op, DType dtype, int[] shape)
    {
        int n = Shapes.Numel(op, shape);
        Array storage = dtype == DType.Float64 ? TensorPool.Rent<double>(n) : TensorPool.Rent<float>(n);
        return new Tensor(storage, shape);
    }

    /// <summary>An uninitialised tensor with <paramref name="like"/>'s element type.</summary>
    internal static Tensor Uninitialized(string op, Tensor like, int[] shape) => Uninitialized(op, like.DType, shape);

    /// <summary>A zero tensor with <paramref name="like"/>'s element type, its storage rented from the tensor pool (so a backward temporary is recycled).</summary>
    internal static Tensor ZerosOf(Tensor like, int[] shape)
    {
        var t = Uninitialized("zeros", like.DType, shape);
        Array.Clear(t.Storage);
        return t;
    }

    internal void FillRaw(double value)
    {
        if (Storage is float[] f) f.AsSpan().Fill((float)value);
        else ((double[])Storage).AsSpan().Fill(value);
    }

    internal void SetFlatRaw(int i, double value)
    {
        if (Storage is float[] f) f[i] = (float)value;
        else ((double[])Storage)[i] = value;
    }

    private static int[] CheckFill(string op, int length, int[] shape)
    {
        if (shape.Length == 0) return [length];
        int n = Shapes.Numel(op, shape);
        if (n != length)
            throw new ArgumentException($"{op}: {length} values do not fill shape {Shapes.Format(shape)} ({n} elements).");
        return (int[])shape.Clone();
    }
}
