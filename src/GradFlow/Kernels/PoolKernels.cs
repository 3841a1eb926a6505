using System.Numerics;

namespace GradFlow.Kernels;

/// <summary>
/// The sizes of a 2-D pooling over <c>Planes</c> = N·C planes of H×W: window KH×KW, stride, zero
/// padding and dilation; output <c>OH = ⌊(H + 2·PH − DH·(KH − 1) − 1)/SH⌋ + 1</c> (floor mode) and OW alike.
/// Validated by the caller (the tensor op).
/// </summary>
/// <remarks>OH and OW are divisions, computed once here (the loops read them per output pixel); the sizes they derive from are get-only, so that no <c>with</c> can leave them stale.</remarks>
internal readonly record struct PoolShape(int Planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH = 1, int DW = 1)
{
    public int Planes { get; } = Planes;
    public int H { get; } = H;
    public int W { get; } = W;
    public int KH { get; } = KH;
    public int KW { get; } = KW;
    public int SH { get; } = SH;
    public int SW { get; } = SW;
    public int PH { get; } = PH;
    public int PW { get; } = PW;
    public int DH { get; } = DH;
    public int DW { get; } = DW;

    /// <summary>Output height.</summary>
    public int OH { get; } = ConvShape.OutputSize(H, KH, SH, PH, DH);

    /// <summary>Output width.</summary>
    public int OW { get; } = ConvShape.OutputSize(W, KW, SW, PW, DW);
}

/// <summary>
/// 2-D pooling forward and backward (max, average, adaptive average) over contiguous planes, in the
/// loops of PyTorch's CPU kernels so that window bounds, tie-breaking and divisors agree.
/// </summary>
/// <remarks>
/// Threads and determinism: planes are split into consecutive chunks fixed by the shape, each chunk
/// owns its output planes (forward) or input-gradient planes (backward), and every plane is computed
/// in one fixed order; results are bitwise the same for any <see cref="KernelThreads.Count"/>.
/// </remarks>
internal static unsafe class PoolKernels
{
    /// <summary>Window reads below which a call stays on the calling thread.</summary>
    private const long ParallelWork = 1L << 15;

    /// <summary>
    /// <c>y = max</c> over each window (padding never wins: only input elements are compared), and
    /// <paramref name="argmax"/> = the flat index <c>ih·W + iw</c> within the plane of the element
    /// chosen. Scan order kh then kw; an element replaces the current maximum when it is greater or NaN,
    /// so at ties the first in scan order wins and a NaN propagates (PyTorch's rule).
    /// </summary>
    public static void MaxForward<T>(in PoolShape s, ReadOnlySpan<T> x, Span<T> y, Span<int> argmax) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, x.Length, y.Length, "max_pool2d");
        if (argmax.Length != y.Length) throw new ArgumentException($"max_pool2d kernel: argmax has {argmax.Length} elements, expected {y.Length}.");
        var shape = s;
        fixed (T* px = x, py = y)
        fixed (int* pi = argmax)
        {
            nint ax = (nint)px, ay = (nint)py, ai = (nint)pi;
            Planes(s, p =>
            {
                int hw = shape.H * shape.W, ohw = shape.OH * shape.OW;
                var xp = new ReadOnlySpan<T>((T*)ax + (long)p * hw, hw);
                var yp = new Span<T>((T*)ay + (long)p * ohw, ohw);
                var ip = new Span<int>((int*)ai + (long)p * ohw, ohw);
                MaxPlane(shape, xp, yp, ip);
            });
        }
    }

    private static void MaxPlane<T>(in PoolShape s, ReadOnlySpan<T> x, Span<T> y, Span<int> argmax) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int at = 0;
        for (int oh = 0; oh < s.OH; oh++)
        {
            int hStart = oh * s.SH - s.PH, hEnd = Math.Min(hStart + (s.KH - 1) * s.DH + 1, s.H);
            while (hStart < 0) hStart += s.DH;
            for (int ow = 0; ow < s.OW; ow++, at++)
            {
                int wStart = ow * s.SW - s.PW, wEnd = Math.Min(wStart + (s.KW - 1) * s.DW + 1, s.W);
                while (wStart < 0) wStart += s.DW;
                int best = hStart * s.W + wStart;
                T max = T.NegativeInfinity;
                for (int ih = hStart; ih < hEnd; ih += s.DH)
                    for (int iw = wStart; iw < wEnd; iw += s.DW)
                    {
                        T v = x[ih * s.W + iw];
                        if (v > max || T.IsNaN(v))
                        {
                            max = v;
                            best = ih * s.W + iw;
                        }
                    }
                y[at] = max;
                argmax[at] = best;
            }
        }
    }

    /// <summary><c>dx[argmax] += dy</c> per plane (dx written: cleared first); overlapping windows accumulate in output order.</summary>
    public static void MaxBackward<T>(in PoolShape s, ReadOnlySpan<T> dy, ReadOnlySpan<int> argmax, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, dx.Length, dy.Length, "max_pool2d backward");
        if (argmax.Length != dy.Length) throw new ArgumentException($"max_pool2d backward kernel: argmax has {argmax.Length} elements, expected {dy.Length}.");
        var shape = s;
        fixed (T* pdx = dx, pdy = dy)
        fixed (int* pi = argmax)
        {
            nint adx = (nint)pdx, ady = (nint)pdy, ai = (nint)pi;
            Planes(s, p =>
            {
                int hw = shape.H * shape.W, ohw = shape.OH * shape.OW;
                var dxp = new Span<T>((T*)adx + (long)p * hw, hw);
                var dyp = new ReadOnlySpan<T>((T*)ady + (long)p * ohw, ohw);
                var ip = new ReadOnlySpan<int>((int*)ai + (long)p * ohw, ohw);
                dxp.Clear();
                for (int o = 0; o < ohw; o++)
                {
                    int i = ip[o];
                    if ((uint)i >= (uint)hw) throw new ArgumentException($"max_pool2d backward kernel: index {i} outside a plane of {hw} elements.");
                    dxp[i] += dyp[o];
                }
            });
        }
    }

    /// <summary>
    /// Average over each window. Divisor (PyTorch's): with <paramref name="countIncludePad"/> the window
    /// clipped to the padded input, <c>(min(hs + KH, H + PH) − hs)·(…)</c>, which is KH·KW in floor mode;
    /// otherwise the number of input elements in the window.
    /// </summary>
    public static void AvgForward<T>(in PoolShape s, bool countIncludePad, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, x.Length, y.Length, "avg_pool2d");
        var shape = s;
        fixed (T* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            Planes(s, p =>
            {
                int hw = shape.H * shape.W, ohw = shape.OH * shape.OW;
                var xp = new ReadOnlySpan<T>((T*)ax + (long)p * hw, hw);
                var yp = new Span<T>((T*)ay + (long)p * ohw, ohw);
                int at = 0;
                for (int oh = 0; oh < shape.OH; oh++)
                    for (int ow = 0; ow < shape.OW; ow++, at++)
                    {
                        var (h0, h1, w0, w1, divisor) = AvgWindow(shape, countIncludePad, oh, ow);
                        T sum = T.Zero;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) sum += xp[ih * shape.W + iw];
                        yp[at] = divisor == 0 ? T.Zero : sum / T.CreateTruncating(divisor);
                    }
            });
        }
    }

    /// <summary>The backward of <see cref="AvgForward{T}"/>: each input element of a window gets <c>dy/divisor</c> (dx written).</summary>
    public static void AvgBackward<T>(in PoolShape s, bool countIncludePad, ReadOnlySpan<T> dy, Span<T> dx) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, dx.Length, dy.Length, "avg_pool2d backward");
        var shape = s;
        fixed (T* pdx = dx, pdy = dy)
        {
            nint adx = (nint)pdx, ady = (nint)pdy;
            Planes(s, p =>
            {
                int hw = shape.H * shape.W, ohw = shape.OH * shape.OW;
                var dxp = new Span<T>((T*)adx + (long)p * hw, hw);
                var dyp = new ReadOnlySpan<T>((T*)ady + (long)p * ohw, ohw);
                dxp.Clear();
                int at = 0;
                for (int oh = 0; oh < shape.OH; oh++)
                    for (int ow = 0; ow < shape.OW; ow++, at++)
                    {
                        var (h0, h1, w0, w1, divisor) = AvgWindow(shape, countIncludePad, oh, ow);
                        if (divisor == 0) continue;
                        T g = dyp[at] / T.CreateTruncating(divisor);
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) dxp[ih * shape.W + iw] += g;
                    }
            });
        }
    }

    /// <summary>The input rows [h0, h1), columns [w0, w1) of window (oh, ow) and its divisor.</summary>
    private static (int H0, int H1, int W0, int W1, int Divisor) AvgWindow(in PoolShape s, bool countIncludePad, int oh, int ow)
    {
        int h0 = oh * s.SH - s.PH, w0 = ow * s.SW - s.PW;
        int h1 = Math.Min(h0 + s.KH, s.H + s.PH), w1 = Math.Min(w0 + s.KW, s.W + s.PW);
        int padded = (h1 - h0) * (w1 - w0);
        h0 = Math.Max(h0, 0);
        w0 = Math.Max(w0, 0);
        h1 = Math.Min(h1, s.H);
        w1 = Math.Min(w1, s.W);
        if (h0 >= h1 || w0 >= w1) return (0, 0, 0, 0, 0);
        return (h0, h1, w0, w1, countIncludePad ? padded : (h1 - h0) * (w1 - w0));
    }

    /// <summary>
    /// Adaptive average pooling of <paramref name="planes"/> planes H×W to OH×OW: output row i averages
    /// input rows <c>[⌊i·H/OH⌋, ⌈(i + 1)·H/OH⌉)</c> (columns alike), PyTorch's bounds.
    /// </summary>
    public static void AdaptiveAvgForward<T>(int planes, int h, int w, int oh, int ow, ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckAdaptive(planes, h, w, oh, ow, x.Length, y.Length, "adaptive_avg_pool2d");
        fixed (T* px = x, py = y)
        {
            nint ax = (nint)px, ay = (nint)py;
            Planes(planes, (long)h * w, p =>
            {
                var xp = new ReadOnlySpan<T>((T*)ax + (long)p * h * w, h * w);
                var yp = new Span<T>((T*)ay + (long)p * oh * ow, oh * ow);
                for (int i = 0; i < oh; i++)
                {
                    int h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
                    for (int j = 0; j < ow; j++)
                    {
                        int w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                        T sum = T.Zero;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) sum += xp[ih * w + iw];
                        yp[i * ow + j] = sum / T.CreateTruncating((h1 - h0) * (w1 - w0));
                    }
                }
            });
        }
    }

    /// <summary>The backward of <see cref="AdaptiveAvgForward{T}"/>: each element of a window gets dy/size (dx written).</summary>
    public static void AdaptiveAvgBackward<T>(int planes, int h, int w, int oh, int ow, ReadOnlySpan<T> dy, Span<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckAdaptive(planes, h, w, oh, ow, dx.Length, dy.Length, "adaptive_avg_pool2d backward");
        fixed (T* pdx = dx, pdy = dy)
        {
            nint adx = (nint)pdx, ady = (nint)pdy;
            Planes(planes, (long)h * w, p =>
            {
                var dxp = new Span<T>((T*)adx + (long)p * h * w, h * w);
                var dyp = new ReadOnlySpan<T>((T*)ady + (long)p * oh * ow, oh * ow);
                dxp.Clear();
                for (int i = 0; i < oh; i++)
                {
                    int h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
                    for (int j = 0; j < ow; j++)
                    {
                        int w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
                        T g = dyp[i * ow + j] / T.CreateTruncating((h1 - h0) * (w1 - w0));
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) dxp[ih * w + iw] += g;
                    }
                }
            });
        }
    }

    private static void Planes(in PoolShape s, Action<int> plane) => Planes(s.Planes, (long)s.OH * s.OW * s.KH * s.KW, plane);

    /// <summary>Runs <paramref name="plane"/> for every plane, in up to 16 consecutive chunks (by shape) on the kernel threads.</summary>
    private static void Planes(int planes, long workPerPlane, Action<int> plane)
    {
        if (planes == 0) return;
        int chunks = (long)planes * workPerPlane < ParallelWork ? 1 : Math.Min(planes, 16);
        if (chunks == 1)
        {
            for (int p = 0; p < planes; p++) plane(p);
            return;
        }
        KernelThreads.Run(chunks, c =>
        {
            int begin = (int)((long)planes * c / chunks), end = (int)((long)planes * (c + 1) / chunks);
            for (int p = begin; p < end; p++) plane(p);
        });
    }

    private static void Check(in PoolShape s, int xLength, int yLength, string op)
    {
        if (s.Planes < 0 || s.H < 1 || s.W < 1 || s.KH < 1 || s.KW < 1 || s.SH < 1 || s.SW < 1 || s.PH < 0 || s.PW < 0
            || s.DH < 1 || s.DW < 1 || s.OH < 1 || s.OW < 1)
            throw new ArgumentException($"{op} kernel: invalid shape {s}.");
        if (xLength != (long)s.Planes * s.H * s.W || yLength != (long)s.Planes * s.OH * s.OW)
            throw new ArgumentException($"{op} kernel: spans of {xLength} and {yLength} elements; {s} needs {(long)s.Planes * s.H * s.W} and {(long)s.Planes * s.OH * s.OW}.");
    }

    private static void CheckAdaptive(int planes, int h, int w, int oh, int ow, int xLength, int yLength, string op)
    {
        if (planes < 0 || h < 1 || w < 1 || oh < 1 || ow < 1)
            throw new ArgumentException($"{op} kernel: invalid sizes planes={planes}, {h}×{w} → {oh}×{ow}.");
        if (xLength != (long)planes * h * w || yLength != (long)planes * oh * ow)
            throw new ArgumentException($"{op} kernel: spans of {xLength} and {yLength} elements; {planes} planes {h}×{w} → {oh}×{ow} need {(long)planes * h * w} and {(long)planes * oh * ow}.");
    }
}
