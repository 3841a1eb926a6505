using System.Numerics;
using System.Runtime.InteropServices;

namespace GradFlow.Kernels;

/// <summary>
/// The sizes of a 2-D convolution over NCHW data: input [N, C, H, W], weight
/// [Cout, C/groups, KH, KW], output [N, Cout, OH, OW] with
/// <c>OH = ⌊(H + 2·PH − DH·(KH − 1) − 1)/SH⌋ + 1</c> (and OW alike). Validated by the caller (the
/// tensor op): every size positive, C and Cout divisible by the groups, OH and OW ≥ 1.
/// </summary>
/// <remarks>
/// The derived sizes (OH, OW, Cig, Cog) are divisions, computed once here: kernels read them in their row loops (an
/// <c>idiv</c> per row of every stored vector cost a cnn-resnet conv forward about 5 %). So that no <c>with</c> can leave them
/// stale, the sizes they derive from are get-only.
/// </remarks>
internal readonly record struct ConvShape(int N, int C, int H, int W, int Cout, int KH, int KW,
    int SH, int SW, int PH, int PW, int DH, int DW, int Groups)
{
    public int N { get; } = N;
    public int C { get; } = C;
    public int H { get; } = H;
    public int W { get; } = W;
    public int Cout { get; } = Cout;
    public int KH { get; } = KH;
    public int KW { get; } = KW;
    public int SH { get; } = SH;
    public int SW { get; } = SW;
    public int PH { get; } = PH;
    public int PW { get; } = PW;
    public int DH { get; } = DH;
    public int DW { get; } = DW;
    public int Groups { get; } = Groups;

    /// <summary>Output height.</summary>
    public int OH { get; } = OutputSize(H, KH, SH, PH, DH);

    /// <summary>Output width.</summary>
    public int OW { get; } = OutputSize(W, KW, SW, PW, DW);

    /// <summary>Input channels per group.</summary>
    public int Cig { get; } = C / Groups;

    /// <summary>Output channels per group.</summary>
    public int Cog { get; } = Cout / Groups;

    /// <summary>Rows of one group's column matrix (and columns of its weight matrix): <c>Cig·KH·KW</c>.</summary>
    public int GroupRows => Cig * KH * KW;

    /// <summary>Outputs along one axis of a sliding window (floor mode, as PyTorch): <c>⌊(size + 2·pad − dilation·(kernel − 1) − 1)/stride⌋ + 1</c>; pooling shares it.</summary>
    internal static int OutputSize(int size, int kernel, int stride, int pad, int dilation) => (size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;

    /// <summary>Whether the column matrix of an image is the image itself (1×1 kernel, stride 1, no padding).</summary>
    public bool IsPointwise => KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0;
}

/// <summary>
/// 2-D convolution (cross-correlation, as PyTorch) by im2col and the packed <see cref="Gemm"/>, forward
/// and both backward products, float32 and float64; depthwise convolutions by direct loops.
/// </summary>
/// <remarks>
/// <para>
/// Per image n, the column matrix <c>col[(c·KH + kh)·KW + kw, oh·OW + ow] = x[n, c, oh·SH − PH + kh·DH,
/// ow·SW − PW + kw·DW]</c> (0 in the padding) turns the convolution into, per group g,
/// <c>Y_n,g = W_g · col_n,g</c> (W_g = [Cout/G, Cig·KH·KW], the weight rows of the group as stored),
/// <c>dcol_n,g = W_gᵀ · dY_n,g</c> followed by col2im (the adjoint of im2col: every column entry added back
/// to the pixel it was read from), and <c>dW_g = Σ_n dY_n,g · col_n,gᵀ</c>. The groups of one image are
/// one batched GEMM (strides by group). A 1×1 kernel with stride 1 and no padding uses the image as its
/// own column matrix.
/// </para>
/// <para>
/// Depthwise (one input and at most two output channels per group, <see cref="IsDirect"/>): direct
/// loops per plane, each tap a multiply-add over an output row segment (TensorPrimitives when the
/// stride is 1), the weight gradient per output channel as row-segment dot products summed over
/// images and rows in order.
/// </para>
/// <para>
/// Threads and determinism: forward and the input gradient run one task per image (each owns its
/// output image; its column matrix lives in a per-thread scratch buffer, about Cig·KH·KW·OH·OW·G
/// elements, L2-sized for small layers). The weight gradient splits the images into a fixed number
/// of consecutive chunks chosen from the shape (<see cref="WeightChunks"/>); each chunk accumulates
/// its images in order into its own partial sum, and the partial sums are added in chunk order. GEMM
/// results do not depend on the thread count, so every result is bitwise the same for any
/// <see cref="KernelThreads.Count"/>.
/// </para>
/// </remarks>
internal static unsafe class ConvKernels
{
    /// <summary>Elements of the weight-gradient partial sums allowed per call (all chunks together).</summary>
    private const long PartialBudget = 1L << 22;

    /// <summary>
    /// <c>y = conv(x, w) + bias</c>: x [N, C, H, W], w [Cout, C/G, KH, KW], bias [Cout] or empty, y
    /// [N, Cout, OH, OW] (written, not read).
    /// </summary>
    public static void Forward<T>(in ConvShape s, ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> bias, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && PrefersWinograd(s)) ForwardWinograd(s, Floats(x), Floats(w), Floats(bias), Floats(y), KernelIsa.Best);
        else if (typeof(T) == typeof(float) && ConvFlat.Applies(s)) ForwardFlat(s, Floats(x), Floats(w), Floats(bias), Floats(y), KernelIsa.Best);
        else Forward(s, x, w, bias, y, IsDirect(s));
    }

    /// <summary>
    /// Whether a float32 forward and input gradient take the Winograd path (<see cref="ConvWinograd"/>) rather than the flat
    /// implicit GEMM: a shape it takes (3×3, stride 1, dilation 1, one group, padding ≤ 2) with at least
    /// <see cref="WinogradChannels"/> input and output channels. By shape and a fixed property of the machine
    /// (<see cref="KernelIsa.FullWidth512"/>), never by timing, so a machine gives the same results on every run.
    /// </summary>
    internal static bool PrefersWinograd(in ConvShape s) => PrefersWinograd(s, KernelIsa.FullWidth512);

    /// <summary>The rule of <see cref="PrefersWinograd(in ConvShape)"/> for a machine with or without a full-width 512-bit datapath.</summary>
    internal static bool PrefersWinograd(in ConvShape s, bool fullWidth512) =>
        ConvWinograd.Applies(s) && Math.Min(s.C, s.Cout) >= WinogradChannels(fullWidth512);

    /// <summary>
    /// Channels (input and output) from which Winograd F(2×2, 3×3) beats the flat implicit GEMM. Its transforms are
    /// memory-bound and do not speed up with the FMA, so where the FMA is twice as wide it wins only on more channels.
    /// Measured (fastest of 30 calls, forward and input gradient, docs/benchmarks.md): with 256-bit-wide FMAs (Zen 4, one
    /// thread, <c>--profile winograd</c>) Winograd takes 0.78× the flat path's time on 16→16 at 28×28, 0.65× on 32→32,
    /// 0.57× on 128→128, 0.82× on 4→4, 1.03× on 8→8 and 1.37× on a one-channel stem: from 4. With full-width 512-bit FMAs
    /// (Zen 5, 2 threads, <c>--profile conv</c>) 1.5-1.7× on 16→16 at 28×28, 1.4-1.5× on 8→8, 1.2× on 4→4, 0.87-0.92× on 32→32 at 14×14,
    /// 0.85-0.92× on 64→64 at 7×7 and 0.68-0.81× on 128→128: from 32. Symmetric in C and C_out because the input gradient
    /// is the forward with the two swapped.
    /// </summary>
    internal static int WinogradChannels(bool fullWidth512) => fullWidth512 ? 32 : 4;

    /// <summary>The forward on the flat implicit-GEMM path (<see cref="ConvFlat"/>) with a chosen instruction set (tests compare the paths).</summary>
    internal static void ForwardFlat(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, InstructionSet isa)
    {
        CheckForward(s, x.Length, w.Length, bias.Length, y.Length);
        if (!ConvFlat.Applies(s)) throw new ArgumentException($"conv2d kernel: the flat path needs stride 1 and a kernel that is neither depthwise nor pointwise, got {s}.");
        ConvFlat.Forward(s, x, w, bias, y, isa);
    }

    /// <summary>The input gradient on the flat path (stride 1, padding at most D·(K − 1)).</summary>
    internal static void BackwardInputFlat(in ConvShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, InstructionSet isa)
    {
        Check(s, dx.Length, w.Length, dy.Length, "input gradient");
        if (!ConvFlat.AppliesToInputGradient(s)) throw new ArgumentException($"conv2d kernel: the flat input gradient needs stride 1 and padding at most dilation·(kernel − 1), got {s}.");
        ConvFlat.BackwardInput(s, w, dy, dx, isa);
    }

    /// <summary>The weight gradient on the flat path.</summary>
    internal static void BackwardWeightFlat(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, InstructionSet isa)
    {
        Check(s, x.Length, dw.Length, dy.Length, "weight gradient");
        if (!ConvFlat.AppliesToWeightGradient(s, isa)) throw new ArgumentException($"conv2d kernel: the flat weight gradient does not take {s}.");
        if (s.N == 0) dw.Clear();
        else ConvFlat.BackwardWeight(s, x, dy, dw, isa);
    }

    /// <summary>The forward on the Winograd F(2×2, 3×3) path (<see cref="ConvWinograd"/>) with a chosen instruction set.</summary>
    internal static void ForwardWinograd(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, InstructionSet isa)
    {
        CheckForward(s, x.Length, w.Length, bias.Length, y.Length);
        RequireWinograd(s);
        ConvWinograd.Forward(s, x, w, bias, y, isa);
    }

    /// <summary>The input gradient on the Winograd path (the forward of dy with the flipped, transposed weight).</summary>
    internal static void BackwardInputWinograd(in ConvShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, InstructionSet isa)
    {
        Check(s, dx.Length, w.Length, dy.Length, "input gradient");
        RequireWinograd(s);
        ConvWinograd.BackwardInput(s, w, dy, dx, isa);
    }

    private static void RequireWinograd(in ConvShape s)
    {
        if (!ConvWinograd.Applies(s)) throw new ArgumentException($"conv2d kernel: the Winograd path needs a 3×3 kernel, stride 1, dilation 1, one group and padding at most 2, got {s}.");
    }

    private static ReadOnlySpan<float> Floats<T>(ReadOnlySpan<T> s) where T : unmanaged => MemoryMarshal.Cast<T, float>(s);

    private static Span<float> Floats<T>(Span<T> s) where T : unmanaged => MemoryMarshal.Cast<T, float>(s);

    /// <summary><see cref="Forward{T}(in ConvShape, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/> on a chosen path (tests and benchmarks compare them).</summary>
    internal static void Forward<T>(in ConvShape s, ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> bias, Span<T> y, bool direct)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckForward(s, x.Length, w.Length, bias.Length, y.Length);
        CheckDirect(s, direct);
        fixed (T* px = x, pw = w, pb = bias, py = y)
        {
            var job = new Job<T>(s, px, pw, bias.IsEmpty ? null : pb, py);
            if (direct) Items(s.N * s.Cout, (long)s.OH * s.OW * s.KH * s.KW, job.DirectForwardPlane);
            else PerImage(s.N, job.ForwardImage);
        }
    }

    /// <summary><c>dx = convᵀ(dy, w)</c>: the gradient of the forward with respect to x (dx written, not read).</summary>
    public static void BackwardInput<T>(in ConvShape s, ReadOnlySpan<T> w, ReadOnlySpan<T> dy, Span<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && PrefersWinograd(s)) BackwardInputWinograd(s, Floats(w), Floats(dy), Floats(dx), KernelIsa.Best);
        else if (typeof(T) == typeof(float) && ConvFlat.AppliesToInputGradient(s)) BackwardInputFlat(s, Floats(w), Floats(dy), Floats(dx), KernelIsa.Best);
        else BackwardInput(s, w, dy, dx, IsDirect(s));
    }

    /// <summary><see cref="BackwardInput{T}(in ConvShape, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/> on a chosen path.</summary>
    internal static void BackwardInput<T>(in ConvShape s, ReadOnlySpan<T> w, ReadOnlySpan<T> dy, Span<T> dx, bool direct)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, dx.Length, w.Length, dy.Length, "input gradient");
        CheckDirect(s, direct);
        fixed (T* pdx = dx, pw = w, pdy = dy)
        {
            var job = new Job<T>(s, pdx, pw, null, pdy);
            if (direct) Items(s.N * s.C, (long)s.Cog * s.OH * s.OW * s.KH * s.KW, job.DirectInputGradientPlane);
            else PerImage(s.N, job.InputGradientImage);
        }
    }

    /// <summary>
    /// Both gradients, <c>dx = convᵀ(dy, w)</c> and <c>dw = Σ_n dY_n · col(x_n)ᵀ</c> (written, not read): in one pass over the
    /// images where the flat path takes both (<see cref="ConvFlat.Backward"/>, each image's dy padded once for both), else
    /// <see cref="BackwardInput{T}(in ConvShape, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/> then
    /// <see cref="BackwardWeight{T}(in ConvShape, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/>. The same bits either way.
    /// A gradient whose span is empty is not computed (the operand only it reads, x for dw and w for dx, may then be empty too):
    /// a gradient not asked for, or an empty one, which has nothing to write.
    /// </summary>
    public static void Backward<T>(in ConvShape s, ReadOnlySpan<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> dy, Span<T> dx, Span<T> dw)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (dx.IsEmpty || dw.IsEmpty)
        {
            if (!dx.IsEmpty) BackwardInput(s, w, dy, dx);
            if (!dw.IsEmpty) BackwardWeight(s, x, dy, dw);
        }
        else if (typeof(T) == typeof(float) && !PrefersWinograd(s) && ConvFlat.AppliesToBackward(s, KernelIsa.Best))
            BackwardFlat(s, Floats(x), Floats(w), Floats(dy), Floats(dx), Floats(dw), KernelIsa.Best);
        else
        {
            BackwardInput(s, w, dy, dx);
            BackwardWeight(s, x, dy, dw);
        }
    }

    /// <summary>Both gradients in one pass on the flat path (<see cref="ConvFlat.Backward"/>).</summary>
    internal static void BackwardFlat(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dw, InstructionSet isa)
    {
        Check(s, dx.Length, w.Length, dy.Length, "input gradient");
        Check(s, x.Length, dw.Length, dy.Length, "weight gradient");
        if (!ConvFlat.AppliesToBackward(s, isa)) throw new ArgumentException($"conv2d kernel: the one-pass flat backward does not take {s}.");
        if (s.N == 0) dw.Clear();
        else ConvFlat.Backward(s, x, w, dy, dx, dw, isa);
    }

    /// <summary><c>dw = Σ_n dY_n · col(x_n)ᵀ</c>: the gradient of the forward with respect to w (written, not read).</summary>
    public static void BackwardWeight<T>(in ConvShape s, ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dw)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && ConvFlat.AppliesToWeightGradient(s, KernelIsa.Best)) BackwardWeightFlat(s, Floats(x), Floats(dy), Floats(dw), KernelIsa.Best);
        else BackwardWeight(s, x, dy, dw, IsDirect(s));
    }

    /// <summary><see cref="BackwardWeight{T}(in ConvShape, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T})"/> on a chosen path.</summary>
    internal static void BackwardWeight<T>(in ConvShape s, ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dw, bool direct)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(s, x.Length, dw.Length, dy.Length, "weight gradient");
        CheckDirect(s, direct);
        if (s.N == 0)
        {
            dw.Clear();
            return;
        }
        if (direct)
        {
            fixed (T* px = x, pdw = dw, pdy = dy)
            {
                var job = new Job<T>(s, px, pdw, null, pdy);
                Items(s.Cout, (long)s.N * s.OH * s.OW * s.KH * s.KW, job.DirectWeightGradientChannel);
            }
            return;
        }
        int chunks = WeightChunks(s);
        long wSize = dw.Length;
        var partials = chunks > 1 ? GC.AllocateUninitializedArray<T>((int)((chunks - 1) * wSize), pinned: true) : [];
        fixed (T* px = x, pdw = dw, pdy = dy, pp = partials)
        {
            var job = new Job<T>(s, px, pdw, null, pdy) { Partials = pp, Chunks = chunks };
            PerImage(chunks, job.WeightGradientChunk);
            // Chunk partial sums in chunk order: fixed by the shape.
            var total = new Span<T>(pdw, (int)wSize);
            for (int c = 1; c < chunks; c++)
                System.Numerics.Tensors.TensorPrimitives.Add(total, new ReadOnlySpan<T>(pp + (c - 1) * wSize, (int)wSize), total);
        }
    }

    /// <summary>
    /// Chunks of images for the weight gradient: up to 8 (enough for balanced work on a few threads),
    /// fewer when the images are fewer or the partial sums would exceed <see cref="PartialBudget"/>.
    /// Depends on the shape only.
    /// </summary>
    internal static int WeightChunks(in ConvShape s)
    {
        long wSize = (long)s.Cout * s.GroupRows;
        long byBudget = 1 + PartialBudget / Math.Max(1, wSize);
        return (int)Math.Max(1, Math.Min(Math.Min(s.N, 8), byBudget));
    }

    /// <summary>
    /// The column matrix of one image: <paramref name="image"/> [C, H, W] to <paramref name="col"/>
    /// [C·KH·KW, OH·OW] (every element written; zeros where the window reads padding).
    /// </summary>
    public static void Im2Col<T>(in ConvShape s, ReadOnlySpan<T> image, Span<T> col) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int oh = s.OH, ow = s.OW, hw = s.H * s.W, cols = oh * ow;
        if (image.Length < s.C * hw || col.Length < s.C * s.KH * s.KW * cols)
            throw new ArgumentException($"im2col: image has {image.Length} elements (needs {s.C * hw}), col {col.Length} (needs {s.C * s.KH * s.KW * cols}).");
        int row = 0;
        for (int c = 0; c < s.C; c++)
        {
            var plane = image.Slice(c * hw, hw);
            for (int kh = 0; kh < s.KH; kh++)
                for (int kw = 0; kw < s.KW; kw++, row++)
                {
                    var dst = col.Slice(row * cols, cols);
                    var (first, end, offW) = Columns(s, kw);
                    for (int o = 0; o < oh; o++)
                    {
                        var seg = dst.Slice(o * ow, ow);
                        int ih = o * s.SH - s.PH + kh * s.DH;
                        if ((uint)ih >= (uint)s.H)
                        {
                            seg.Clear();
                            continue;
                        }
                        var src = plane.Slice(ih * s.W, s.W);
                        seg[..first].Clear();
                        if (s.SW == 1) src.Slice(first + offW, end - first).CopyTo(seg[first..end]);
                        else
                            for (int j = first; j < end; j++) seg[j] = src[j * s.SW + offW];
                        seg[end..].Clear();
                    }
                }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="Im2Col{T}"/>: <paramref name="image"/> [C, H, W] = Σ of the column
    /// entries read from each pixel (overwritten, not accumulated into). Fixed order: rows, then output
    /// positions, in increasing order.
    /// </summary>
    public static void Col2Im<T>(in ConvShape s, ReadOnlySpan<T> col, Span<T> image) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int oh = s.OH, ow = s.OW, hw = s.H * s.W, cols = oh * ow;
        if (image.Length < s.C * hw || col.Length < s.C * s.KH * s.KW * cols)
            throw new ArgumentException($"col2im: image has {image.Length} elements (needs {s.C * hw}), col {col.Length} (needs {s.C * s.KH * s.KW * cols}).");
        image[..(s.C * hw)].Clear();
        int row = 0;
        for (int c = 0; c < s.C; c++)
        {
            var plane = image.Slice(c * hw, hw);
            for (int kh = 0; kh < s.KH; kh++)
                for (int kw = 0; kw < s.KW; kw++, row++)
                {
                    var src = col.Slice(row * cols, cols);
                    var (first, end, offW) = Columns(s, kw);
                    for (int o = 0; o < oh; o++)
                    {
                        int ih = o * s.SH - s.PH + kh * s.DH;
                        if ((uint)ih >= (uint)s.H) continue;
                        var dst = plane.Slice(ih * s.W, s.W);
                        var seg = src.Slice(o * ow, ow);
                        if (s.SW == 1)
                        {
                            var d = dst.Slice(first + offW, end - first);
                            System.Numerics.Tensors.TensorPrimitives.Add(d, seg[first..end], d);
                        }
                        else
                            for (int j = first; j < end; j++) dst[j * s.SW + offW] += seg[j];
                    }
                }
        }
    }

    /// <summary>
    /// Whether the direct path computes this shape: one input channel and at most two output channels
    /// per group (depthwise convolution, channel multiplier 1 or 2). There each group's GEMM has one or
    /// two rows and k = KH·KW. Measured (docs/benchmarks.md): a group's GEMM costs about the same for 1
    /// to 16 rows, the direct loops grow with the output channels; the direct path is 1.5–3× faster
    /// (forward, input gradient) and 4–9× faster (weight gradient) on depthwise layers, and 4–6×
    /// slower on a one-channel stem with 16 outputs.
    /// </summary>
    internal static bool IsDirect(in ConvShape s) => s.Cig == 1 && s.Cog <= 2;

    private static void CheckDirect(in ConvShape s, bool direct)
    {
        if (direct && s.Cig != 1) throw new ArgumentException($"conv2d kernel: the direct path needs one input channel per group, got {s}.");
    }

    /// <summary>Input columns [first, end) of the output columns j whose tap kw reads inside [0, W): 0 ≤ j·SW + offW &lt; W.</summary>
    private static (int First, int End, int OffW) Columns(in ConvShape s, int kw)
    {
        int offW = kw * s.DW - s.PW, ow = s.OW;
        int first = Math.Clamp(CeilDiv(-offW, s.SW), 0, ow);
        return (first, Math.Clamp(CeilDiv(s.W - offW, s.SW), first, ow), offW);
    }

    /// <summary>⌈a/b⌉ for b &gt; 0 and any a.</summary>
    private static int CeilDiv(int a, int b) => a >= 0 ? (a + b - 1) / b : -(-a / b);

    /// <summary>Runs one task per item: on the kernel threads for two or more, else on the calling thread (whose GEMMs may then use the threads).</summary>
    private static void PerImage(int items, Action<int> body)
    {
        if (items >= 2) KernelThreads.Run(items, body);
        else if (items == 1) body(0);
    }

    /// <summary>Work (multiply-adds) from which <see cref="Items"/> runs its items in chunks on the kernel threads: 64³, a few µs of work.</summary>
    private const long ChunkedFrom = 64 * 64 * 64;

    /// <summary>Runs <paramref name="item"/> for every item, in up to 32 consecutive chunks (by shape) on the kernel threads when the work is large enough.</summary>
    private static void Items(int items, long workPerItem, Action<int> item)
    {
        int chunks = (long)items * workPerItem < ChunkedFrom ? 1 : Math.Min(items, 32);
        if (chunks <= 1)
        {
            for (int i = 0; i < items; i++) item(i);
            return;
        }
        KernelThreads.Run(chunks, c =>
        {
            int begin = (int)((long)items * c / chunks), end = (int)((long)items * (c + 1) / chunks);
            for (int i = begin; i < end; i++) item(i);
        });
    }

    /// <summary><see cref="Check"/> for a forward, and a bias of C_out elements or none.</summary>
    private static void CheckForward(in ConvShape s, int xLength, int wLength, int biasLength, int yLength)
    {
        Check(s, xLength, wLength, yLength, "forward");
        if (biasLength != 0 && biasLength != s.Cout)
            throw new ArgumentException($"conv2d kernel: bias has {biasLength} elements, expected {s.Cout}.", "bias");
    }

    private static void Check(in ConvShape s, int xLength, int wLength, int yLength, string what)
    {
        long x = (long)s.N * s.C * s.H * s.W, w = (long)s.Cout * s.GroupRows, y = (long)s.N * s.Cout * s.OH * s.OW;
        if (s.N < 0 || s.C < 1 || s.Cout < 1 || s.Groups < 1 || s.C % s.Groups != 0 || s.Cout % s.Groups != 0 || s.OH < 1 || s.OW < 1
            || s.SH < 1 || s.SW < 1 || s.DH < 1 || s.DW < 1 || s.PH < 0 || s.PW < 0)
            throw new ArgumentException($"conv2d kernel ({what}): invalid shape {s}.");
        if (xLength != x || wLength != w || yLength != y)
            throw new ArgumentException($"conv2d kernel ({what}): spans of {xLength}, {wLength}, {yLength} elements; the shape {s} needs input {x}, weight {w}, output {y}.");
    }

    /// <summary>Per-thread scratch: the column matrix of the image a task is working on.</summary>
    private static class Scratch<T> where T : unmanaged
    {
        [ThreadStatic] private static T[]? _col;

        public static T[] Col(int length)
        {
            if (_col is null || _col.Length < length) _col = GC.AllocateUninitializedArray<T>(length, pinned: true);
            return _col;
        }
    }

    /// <summary>One call's pointers and sizes, shared by its tasks (the spans are pinned for the call).</summary>
    private sealed class Job<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly ConvShape _s;
        private readonly T* _x, _w, _bias, _y;
        private readonly int _cols, _image, _output, _colLength;

        /// <summary>x, w, y: input, weight, output; or dx, w, dy (input gradient); or x, dw, dy (weight gradient). bias null: none.</summary>
        public Job(ConvShape s, T* x, T* w, T* bias, T* y)
        {
            _s = s;
            _x = x;
            _w = w;
            _bias = bias;
            _y = y;
            _cols = s.OH * s.OW;
            _image = s.C * s.H * s.W;
            _output = s.Cout * _cols;
            _colLength = s.C * s.KH * s.KW * _cols;
        }

        /// <summary>Weight-gradient partial sums of chunks 1.. (chunk 0 writes into the result).</summary>
        public T* Partials;

        /// <summary>Weight-gradient chunks.</summary>
        public int Chunks;

        /// <summary>The column matrix of image n: the image itself when pointwise, else im2col into the thread's scratch.</summary>
        private ReadOnlySpan<T> ColumnMatrix(int n)
        {
            var src = new ReadOnlySpan<T>(_x + (long)n * _image, _image);
            if (_s.IsPointwise) return src;
            var col = Scratch<T>.Col(_colLength).AsSpan(0, _colLength);
            Im2Col(_s, src, col);
            return col;
        }

        public void ForwardImage(int n)
        {
            var col = ColumnMatrix(n);
            var yn = new Span<T>(_y + (long)n * _output, _output);
            if (_bias != null)
                for (int c = 0; c < _s.Cout; c++) yn.Slice(c * _cols, _cols).Fill(_bias[c]);
            int k = _s.GroupRows;
            Multiply(_s.Groups, false, false, _s.Cog, _cols, k, new ReadOnlySpan<T>(_w, _s.Cout * k), k, (long)_s.Cog * k,
                col, _cols, (long)k * _cols, _bias != null, yn, _cols, (long)_s.Cog * _cols);
        }

        /// <summary>dx of image n (x holds dx, y holds dy): dcol = Wᵀ·dY, then col2im.</summary>
        public void InputGradientImage(int n)
        {
            var dxn = new Span<T>(_x + (long)n * _image, _image);
            var dcol = _s.IsPointwise ? dxn : Scratch<T>.Col(_colLength).AsSpan(0, _colLength);
            int k = _s.GroupRows;
            Multiply(_s.Groups, true, false, k, _cols, _s.Cog, new ReadOnlySpan<T>(_w, _s.Cout * k), k, (long)_s.Cog * k,
                new ReadOnlySpan<T>(_y + (long)n * _output, _output), _cols, (long)_s.Cog * _cols, false, dcol, _cols, (long)k * _cols);
            if (!_s.IsPointwise) Col2Im(_s, dcol, dxn);
        }

        /// <summary>
        /// Direct path: every (output row oh, tap) pair whose input row ih = oh·SH − PH + kh·DH lies inside the
        /// plane, in order (output rows, then kh, then kw), with the output columns [first, end) whose tap reads
        /// inside the row (input column j·SW + offW). The three direct passes differ only in <paramref name="op"/>.
        /// </summary>
        private void ForEachRowTap<TOp>(ref TOp op) where TOp : IRowTap, allows ref struct
        {
            for (int oh = 0; oh < _s.OH; oh++)
                for (int kh = 0; kh < _s.KH; kh++)
                {
                    int ih = oh * _s.SH - _s.PH + kh * _s.DH;
                    if ((uint)ih >= (uint)_s.H) continue;
                    for (int kw = 0; kw < _s.KW; kw++)
                    {
                        var (first, end, offW) = ConvKernels.Columns(_s, kw);
                        op.Tap(oh, ih, kh * _s.KW + kw, first, end, offW);
                    }
                }
        }

        /// <summary>One tap over one output row of <see cref="ForEachRowTap{TOp}"/>; tap = kh·KW + kw.</summary>
        private interface IRowTap
        {
            void Tap(int oh, int ih, int tap, int first, int end, int offW);
        }

        /// <summary>Forward: <c>y row += w[tap]·(x row segment)</c>.</summary>
        private readonly ref struct ForwardTap(in ConvShape s, ReadOnlySpan<T> xp, Span<T> yp, ReadOnlySpan<T> wo) : IRowTap
        {
            private readonly ConvShape _s = s;
            private readonly ReadOnlySpan<T> _xp = xp, _wo = wo;
            private readonly Span<T> _yp = yp;

            public void Tap(int oh, int ih, int tap, int first, int end, int offW)
            {
                var yrow = _yp.Slice(oh * _s.OW, _s.OW);
                var xrow = _xp.Slice(ih * _s.W, _s.W);
                T wv = _wo[tap];
                if (_s.SW == 1)
                {
                    var seg = yrow[first..end];
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(xrow.Slice(first + offW, end - first), wv, seg, seg);
                }
                else
                    for (int j = first; j < end; j++) yrow[j] += xrow[j * _s.SW + offW] * wv;
            }
        }

        /// <summary>Input gradient: <c>dx row segment += w[tap]·(dy row)</c>.</summary>
        private readonly ref struct InputGradientTap(in ConvShape s, Span<T> dxp, ReadOnlySpan<T> gp, ReadOnlySpan<T> wo) : IRowTap
        {
            private readonly ConvShape _s = s;
            private readonly ReadOnlySpan<T> _gp = gp, _wo = wo;
            private readonly Span<T> _dxp = dxp;

            public void Tap(int oh, int ih, int tap, int first, int end, int offW)
            {
                var grow = _gp.Slice(oh * _s.OW, _s.OW);
                var dxrow = _dxp.Slice(ih * _s.W, _s.W);
                T wv = _wo[tap];
                if (_s.SW == 1)
                {
                    var seg = dxrow.Slice(first + offW, end - first);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(grow[first..end], wv, seg, seg);
                }
                else
                    for (int j = first; j < end; j++) dxrow[j * _s.SW + offW] += grow[j] * wv;
            }
        }

        /// <summary>Weight gradient: <c>dw[tap] += (dy row)·(x row segment)</c>.</summary>
        private readonly ref struct WeightGradientTap(in ConvShape s, ReadOnlySpan<T> xp, ReadOnlySpan<T> gp, Span<T> dwo) : IRowTap
        {
            private readonly ConvShape _s = s;
            private readonly ReadOnlySpan<T> _xp = xp, _gp = gp;
            private readonly Span<T> _dwo = dwo;

            public void Tap(int oh, int ih, int tap, int first, int end, int offW)
            {
                var grow = _gp.Slice(oh * _s.OW, _s.OW);
                var xrow = _xp.Slice(ih * _s.W, _s.W);
                T sum;
                if (_s.SW == 1) sum = System.Numerics.Tensors.TensorPrimitives.Dot(grow[first..end], xrow.Slice(first + offW, end - first));
                else
                {
                    sum = T.Zero;
                    for (int j = first; j < end; j++) sum += grow[j] * xrow[j * _s.SW + offW];
                }
                _dwo[tap] += sum;
            }
        }

        /// <summary>
        /// Direct path, output plane p = (n, o): <c>y = b[o] + Σ_{kh, kw} w[o, kh, kw]·(row segment of input plane
        /// (n, group of o))</c>, taps in order, each a multiply-add over an output row (stride 1: one
        /// TensorPrimitives call per row segment).
        /// </summary>
        public void DirectForwardPlane(int p)
        {
            int n = p / _s.Cout, o = p % _s.Cout, hw = _s.H * _s.W, taps = _s.KH * _s.KW;
            var xp = new ReadOnlySpan<T>(_x + ((long)n * _s.C + o / _s.Cog) * hw, hw);
            var yp = new Span<T>(_y + (long)p * _cols, _cols);
            var wo = new ReadOnlySpan<T>(_w + (long)o * taps, taps);
            yp.Fill(_bias != null ? _bias[o] : T.Zero);
            var op = new ForwardTap(_s, xp, yp, wo);
            ForEachRowTap(ref op);
        }

        /// <summary>Direct path, input-gradient plane p = (n, c) (x holds dx, y holds dy): the taps of every output channel of c's group scattered back, in order.</summary>
        public void DirectInputGradientPlane(int p)
        {
            int n = p / _s.C, c = p % _s.C, hw = _s.H * _s.W, taps = _s.KH * _s.KW;
            var dxp = new Span<T>(_x + (long)p * hw, hw);
            dxp.Clear();
            for (int o = c * _s.Cog; o < (c + 1) * _s.Cog; o++)
            {
                var gp = new ReadOnlySpan<T>(_y + ((long)n * _s.Cout + o) * _cols, _cols);
                var wo = new ReadOnlySpan<T>(_w + (long)o * taps, taps);
                var op = new InputGradientTap(_s, dxp, gp, wo);
                ForEachRowTap(ref op);
            }
        }

        /// <summary>Direct path, dw of output channel o (w holds dw, y holds dy): per tap, Σ over images, then output rows, of row-segment dot products, in that order.</summary>
        public void DirectWeightGradientChannel(int o)
        {
            int hw = _s.H * _s.W, taps = _s.KH * _s.KW;
            var dwo = new Span<T>(_w + (long)o * taps, taps);
            dwo.Clear();
            for (int n = 0; n < _s.N; n++)
            {
                var xp = new ReadOnlySpan<T>(_x + ((long)n * _s.C + o / _s.Cog) * hw, hw);
                var gp = new ReadOnlySpan<T>(_y + ((long)n * _s.Cout + o) * _cols, _cols);
                var op = new WeightGradientTap(_s, xp, gp, dwo);
                ForEachRowTap(ref op);
            }
        }

        /// <summary>dw over chunk <paramref name="chunk"/> of <see cref="Chunks"/> consecutive images (w holds dw, y holds dy), images in order.</summary>
        public void WeightGradientChunk(int chunk)
        {
            int k = _s.GroupRows, wSize = _s.Cout * k;
            var dw = new Span<T>(chunk == 0 ? _w : Partials + (long)(chunk - 1) * wSize, wSize);
            int begin = (int)((long)_s.N * chunk / Chunks), end = (int)((long)_s.N * (chunk + 1) / Chunks);
            for (int n = begin; n < end; n++)
            {
                var col = ColumnMatrix(n);
                Multiply(_s.Groups, false, true, _s.Cog, k, _cols, new ReadOnlySpan<T>(_y + (long)n * _output, _output), _cols,
                    (long)_s.Cog * _cols, col, _cols, (long)k * _cols, n > begin, dw, k, (long)_s.Cog * k);
            }
        }
    }

    /// <summary>The batched GEMM in T (alpha 1; beta 1 when <paramref name="accumulate"/>, else 0).</summary>
    private static void Multiply<T>(int count, bool ta, bool tb, int m, int n, int k, ReadOnlySpan<T> a, int lda, long sa,
        ReadOnlySpan<T> b, int ldb, long sb, bool accumulate, Span<T> c, int ldc, long sc) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            Gemm.MultiplyBatched(count, ta, tb, m, n, k, 1f, MemoryMarshal.Cast<T, float>(a), lda, sa, MemoryMarshal.Cast<T, float>(b), ldb, sb,
                accumulate ? 1f : 0f, MemoryMarshal.Cast<T, float>(c), ldc, sc);
        else
            Gemm.MultiplyBatched(count, ta, tb, m, n, k, 1.0, MemoryMarshal.Cast<T, double>(a), lda, sa, MemoryMarshal.Cast<T, double>(b), ldb, sb,
                accumulate ? 1.0 : 0.0, MemoryMarshal.Cast<T, double>(c), ldc, sc);
    }
}
