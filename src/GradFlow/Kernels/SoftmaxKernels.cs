using System.Numerics;
using System.Numerics.Tensors;

namespace GradFlow.Kernels;

/// <summary>
/// Numerically stable softmax and log-softmax over contiguous rows, forward and backward.
/// The row maximum is subtracted before exponentiating, so no finite input overflows.
/// </summary>
public static class SoftmaxKernels
{
    /// <summary><c>y_i = exp(x_i − max x) / Σ_j exp(x_j − max x)</c> for each row of <paramref name="n"/> elements.</summary>
    public static void Softmax<T>(ReadOnlySpan<T> x, Span<T> y, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = CheckRows("softmax", x.Length, y.Length, n);
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * n, n);
            var yr = y.Slice(r * n, n);
            T max = TensorPrimitives.Max(xr);
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Exp(yr, yr);
            TensorPrimitives.Divide(yr, TensorPrimitives.Sum<T>(yr), yr);
        }
    }

    /// <summary>Softmax backward: <c>dx = y ⊙ (dy − Σ_j dy_j y_j)</c> per row.</summary>
    public static void SoftmaxBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = CheckRows("softmax backward", y.Length, dx.Length, n);
        if (dy.Length != y.Length) throw new ArgumentException($"softmax backward: dy has {dy.Length} elements, y has {y.Length}.");
        for (int r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * n, n);
            var dyr = dy.Slice(r * n, n);
            var dxr = dx.Slice(r * n, n);
            T dot = TensorPrimitives.Dot(dyr, yr);
            TensorPrimitives.Subtract(dyr, dot, dxr);
            TensorPrimitives.Multiply(dxr, yr, dxr);
        }
    }

    /// <summary><c>y_i = x_i − max x − log Σ_j exp(x_j − max x)</c> for each row.</summary>
    public static void LogSoftmax<T>(ReadOnlySpan<T> x, Span<T> y, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = CheckRows("log_softmax", x.Length, y.Length, n);
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * n, n);
            var yr = y.Slice(r * n, n);
            T max = TensorPrimitives.Max(xr);
            TensorPrimitives.Subtract(xr, max, yr);
            TensorPrimitives.Exp(yr, yr);
            T lse = max + T.Log(TensorPrimitives.Sum<T>(yr));
            TensorPrimitives.Subtract(xr, lse, yr);
        }
    }

    /// <summary>Log-softmax backward: <c>dx = dy − exp(y) · Σ_j dy_j</c> per row.</summary>
    public static void LogSoftmaxBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = CheckRows("log_softmax backward", y.Length, dx.Length, n);
        if (dy.Length != y.Length) throw new ArgumentException($"log_softmax backward: dy has {dy.Length} elements, y has {y.Length}.");
        for (int r = 0; r < rows; r++)
        {
            var yr = y.Slice(r * n, n);
            var dyr = dy.Slice(r * n, n);
            var dxr = dx.Slice(r * n, n);
            T s = TensorPrimitives.Sum(dyr);
            TensorPrimitives.Exp(yr, dxr);
            TensorPrimitives.MultiplyAdd(dxr, -s, dyr, dxr);
        }
    }

    private static int CheckRows(string op, int xLength, int yLength, int n)
    {
        if (n <= 0) throw new ArgumentException($"{op}: row length must be positive, got {n}.");
        if (xLength % n != 0) throw new ArgumentException($"{op}: {xLength} elements are not whole rows of {n}.");
        if (yLength < xLength) throw new ArgumentException($"{op}: destination has {yLength} elements, needs {xLength}.");
        return xLength / n;
    }
}
