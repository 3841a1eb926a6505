using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Runtime.CompilerServices;

namespace GradFlow.Kernels;

/// <summary>
/// Stride-1 convolutions in float32 as an implicit GEMM over the flat padded image: no column matrix.
/// </summary>
/// <remarks>
/// <para>
/// Each image's channels (of one group) are copied into zero-padded scratch planes of Hp rows of Wp, Hp = H + 2·PH,
/// Wp = max(W + PW, OW) (one run of PW zeros between rows pads both sides, <see cref="RowStride"/>), stored flat.
/// With stride 1, output (oh, ow) at the flat position q = oh·Wp + ow reads tap
/// (c, kh, kw) at <c>q + offset(c, kh, kw)</c>, <c>offset = c·Hp·Wp + kh·DH·Wp + kw·DW</c>: every tap is the
/// same flat vector shifted by a constant. So <c>Yf[o, q] = Σ_k W[o, k]·P[offset(k) + q]</c> over
/// q &lt; OH·Wp is a GEMM whose right-hand rows are read in place at their offsets; the columns
/// ow ≥ OW of each row (Wp − OW of every Wp) are computed and dropped when Yf is copied into y
/// (plus the bias). The micro-kernel keeps an MR × (NV·lanes) tile of Yf in registers (AVX-512 8×48,
/// AVX2 4×24; portable scalar 4×16), broadcasting the weights from a packed [k][MR] panel (rows past
/// C_out/G are zero).
/// </para>
/// <para>
/// Input gradient: for stride 1, <c>dx = conv(dy, W')</c> with <c>W'[c, o, kh, kw] = W[o, c, KH−1−kh, KW−1−kw]</c>
/// (per group), padding <c>D·(K − 1) − P</c> and the same dilation: the forward kernel on dy, taken when that
/// padding is not negative (<see cref="AppliesToInputGradient"/>). Weight gradient:
/// <c>dW[o, k] = Σ_n Σ_q DYf_n[o, q]·P_n[offset(k) + q]</c>, DYf being dy laid out on the Wp-wide grid with zeros
/// in the dropped columns; the kernel keeps MR × NK (AVX-512 4×6, AVX2 2×6, portable 1×1) entries as
/// vectors of lane partial sums across the images of a chunk, and the lanes are added once at the end.
/// </para>
/// <para>
/// Determinism: forward and input gradient run one task per image (each owns its output image); the
/// weight gradient runs <see cref="ConvKernels.WeightChunks"/> chunks of consecutive images, each into its
/// own lane partial sums; the chunks are added lane-wise in chunk order, then each entry's lanes in order. Results are bitwise the same for any thread count.
/// A NaN or infinity in x also reaches the weight-gradient entries of the taps that read it only from a
/// dropped column (0·∞).
/// </para>
/// </remarks>
internal static unsafe class ConvFlat
{
    /// <summary>Whether the forward and the weight gradient run here: float32, stride 1, not depthwise (direct loops) and not pointwise (the image is its own column matrix).</summary>
    public static bool Applies(in ConvShape s) => s.SH == 1 && s.SW == 1 && !ConvKernels.IsDirect(s) && !s.IsPointwise;

    /// <summary>Floats of the weight gradient's lane partial sums allowed per call (all chunks together).</summary>
    private const long PartialBudget = 1L << 22;

    /// <summary>Whether the weight gradient runs here: <see cref="Applies"/> and lane partial sums within <see cref="PartialBudget"/> (else im2col + GEMM).</summary>
    public static bool AppliesToWeightGradient(in ConvShape s, InstructionSet isa)
    {
        var (mr, nk, v) = WeightTile(isa);
        long partial = (long)ConvKernels.WeightChunks(s) * s.Groups * ((s.Cog + mr - 1) / mr * mr) * ((s.GroupRows + nk - 1) / nk * nk) * v;
        return Applies(s) && partial <= PartialBudget;
    }

    /// <summary>
    /// Whether the input gradient runs here: <see cref="Applies"/> and a padding of at most D·(K − 1), so the transposed convolution's padding is not negative.
    /// Also at least 4 input channels per group: the input gradient's tile rows are the input channels, and with fewer most of
    /// the tile is zero rows (measured on cnn-resnet's one-channel stem: 1.2 ms flat against 0.7 ms by im2col + GEMM).
    /// </summary>
    public static bool AppliesToInputGradient(in ConvShape s) => Applies(s) && s.Cig >= 4 && s.PH <= s.DH * (s.KH - 1) && s.PW <= s.DW * (s.KW - 1);

    /// <summary>The input gradient of <paramref name="s"/> as a forward convolution of dy ([N, Cout, OH, OW] to [N, C, H, W]).</summary>
    public static ConvShape Transposed(in ConvShape s) =>
        new(s.N, s.Cout, s.OH, s.OW, s.C, s.KH, s.KW, 1, 1, s.DH * (s.KH - 1) - s.PH, s.DW * (s.KW - 1) - s.PW, s.DH, s.DW, s.Groups);

    /// <summary>Forward tile: output channels MR, flat columns NB per micro-kernel call.</summary>
    private static (int MR, int NB) ForwardTile(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => (8, 48),
        InstructionSet.Avx2 => (4, 24),
        _ => (4, 16),
    };

    /// <summary>Weight-gradient tile: output channels MR, taps NK, lanes V.</summary>
    private static (int MR, int NK, int V) WeightTile(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => (4, 6, 16),
        InstructionSet.Avx2 => (2, 6, 8),
        _ => (1, 1, 1),
    };

    /// <summary><c>y = conv(x, w) + bias</c> (shape checked by the caller).</summary>
    public static void Forward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, InstructionSet isa) =>
        Run(s, x, w, bias, y, flipped: false, isa);

    /// <summary><c>dx = convᵀ(dy, w)</c> as the forward of <see cref="Transposed"/> with the flipped, transposed weight.</summary>
    public static void BackwardInput(in ConvShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, InstructionSet isa) =>
        Run(Transposed(s), dy, w, default, dx, flipped: true, isa);

    /// <summary>
    /// The row stride Wp of the padded planes: <c>max(W + PW, OW)</c>. One run of PW zeros after each row serves as
    /// that row's right padding and the next row's left padding (a tap reading column −j of row h reads column
    /// Wp − j of row h − 1), so each output row computes Wp − OW dropped columns (1 for a 3×3 kernel with padding 1).
    /// </summary>
    private static int RowStride(in ConvShape t) => Math.Max(t.W + t.PW, t.OW);

    /// <summary>Floats of one padded plane: H + 2·PH rows of Wp.</summary>
    private static int Plane(in ConvShape t) => (t.H + 2 * t.PH) * RowStride(t);

    /// <summary>Scratch floats of the padded planes of one group of an image, with room for the last tile's reads past the flat output.</summary>
    private static int PaddedLength(in ConvShape t, int flatColumns)
    {
        int wp = RowStride(t), plane = Plane(t);
        return Math.Max(t.Cig * plane + t.PW, (t.Cig - 1) * plane + (t.KH - 1) * t.DH * wp + (t.KW - 1) * t.DW + flatColumns);
    }

    /// <summary>Tap offsets in the padded planes, k = (c·KH + kh)·KW + kw; entries past the taps (padding to a tile) are 0.</summary>
    private static int[] Offsets(in ConvShape t, int length)
    {
        int wp = RowStride(t), plane = Plane(t);
        var offsets = new int[length];
        int k = 0;
        for (int c = 0; c < t.Cig; c++)
            for (int kh = 0; kh < t.KH; kh++)
                for (int kw = 0; kw < t.KW; kw++) offsets[k++] = c * plane + kh * t.DH * wp + kw * t.DW;
        return offsets;
    }

    /// <summary>
    /// Copies channels [c0, c0 + Cig) of one image [C, H, W] into the zero-padded flat planes <paramref name="p"/>: pixel
    /// (c, h, w) at <c>c·plane + PW + (h + PH)·Wp + w</c>, every other element 0 (cleared only when the buffer held another layout:
    /// the pixels are the only elements ever written).
    /// </summary>
    private static void Pad(in ConvShape t, float* image, int c0, float* p, int length, bool clear)
    {
        int wp = RowStride(t), plane = Plane(t);
        if (clear) new Span<float>(p, length).Clear();
        for (int c = 0; c < t.Cig; c++)
            for (int h = 0; h < t.H; h++)
                CopyRow(image + ((long)(c0 + c) * t.H + h) * t.W, p + (long)c * plane + t.PW + (h + t.PH) * wp, t.W);
    }

    /// <summary>
    /// Copies one image row (<paramref name="n"/> floats, no overlap): whole vectors and one last vector ending at the row's
    /// end, inline (the rows are short, 28 floats in cnn-resnet, and a call to memmove per row cost 8 % of a step).
    /// A copy, so the same bits on every instruction-set path.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void CopyRow(float* src, float* dst, int n)
    {
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            int i = 0;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count) Vector512.Load(src + i).Store(dst + i);
            if (i < n) Vector512.Load(src + n - Vector512<float>.Count).Store(dst + n - Vector512<float>.Count);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            int i = 0;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count) Vector256.Load(src + i).Store(dst + i);
            if (i < n) Vector256.Load(src + n - Vector256<float>.Count).Store(dst + n - Vector256<float>.Count);
        }
        else
            for (int i = 0; i < n; i++) dst[i] = src[i];
    }

    /// <summary>What a scratch buffer last held, so that its zeros can be trusted: the layout of padded planes (kind 1: of x; kind 3: of dy), 0 for anything else.</summary>
    private static Layout LayoutKey(in ConvShape t, int length, int kind) => new(kind, t.Cig, t.H, t.W, t.PH, t.PW, RowStride(t), length);

    /// <summary>The key of the weight gradient's flat dy (kind 2): C_out/G planes of OH rows of OW on the Wp grid (dy's own layout).</summary>
    private static Layout FlatDyKey(in ConvShape s, int length) => new(2, s.Cog, s.OH, s.OW, 0, 0, RowStride(s), length);

    /// <summary>A scratch buffer's layout; <c>default</c> (kind 0) for contents that are not zeros plus pixels.</summary>
    private readonly record struct Layout(int Kind, int Cig, int H, int W, int PH, int PW, int RowStride, int Length);

    private static void Run(ConvShape t, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, bool flipped, InstructionSet isa)
    {
        var tiles = new ForwardPlan(t, isa);
        int pLength = tiles.PaddedLength;
        var wt = PackWeights(t, w, flipped, tiles.MR);
        var offsets = Offsets(t, tiles.K);
        int image = t.C * t.H * t.W, output = t.Cout * t.OH * t.OW;
        fixed (float* px = x, pwt = wt, pb = bias, py = y)
        fixed (int* po = offsets)
        {
            float* xs = px, ws = pwt, bs = bias.IsEmpty ? null : pb, ys = py;
            int* offs = po;
            var shape = t;
            void Image(int n)
            {
                var p = Scratch.Padded(pLength, LayoutKey(shape, pLength, 1), out bool clear);
                var yf = tiles.Scatters ? null : Scratch.Output(tiles.OutputLength, default, out _);
                fixed (float* pp = p, pyf = yf)
                    for (int g = 0; g < shape.Groups; g++)
                    {
                        Pad(shape, xs + (long)n * image, g * shape.Cig, pp, pLength, clear);
                        clear = false;
                        tiles.Group(pp, g, ws, offs, pyf, bs, ys + (long)n * output);
                    }
            }
            if (t.N >= 2) KernelThreads.Run(t.N, Image);
            else if (t.N == 1) Image(0);
        }
        ArrayPool<float>.Shared.Return(wt);
    }

    /// <summary>
    /// Packed weights [g][block][k][r] of the forward tiles of <paramref name="t"/> (rows past C_out/G zero), rented; flipped: the
    /// input gradient's W'[c, o, kh, kw] = W[o, c, KH−1−kh, KW−1−kw] of the original convolution, whose input channels per group
    /// are t.Cog and output channels per group t.Cig.
    /// </summary>
    private static float[] PackWeights(in ConvShape t, ReadOnlySpan<float> w, bool flipped, int mr)
    {
        int k = t.Cig * t.KH * t.KW, blocks = (t.Cog + mr - 1) / mr, taps = t.KH * t.KW, panel = k * mr;
        var wt = ArrayPool<float>.Shared.Rent(t.Groups * blocks * panel);
        // nested loops, no division per element: the input gradient packs its flipped weights on every backward
        for (int g = 0; g < t.Groups; g++)
            for (int b = 0; b < blocks; b++)
            {
                var dst = wt.AsSpan((g * blocks + b) * panel, panel);
                for (int r = 0; r < mr; r++)
                {
                    int o = b * mr + r;
                    if (o >= t.Cog)
                    {
                        for (int kk = 0; kk < k; kk++) dst[kk * mr + r] = 0;
                        continue;
                    }
                    if (!flipped)
                    {
                        var src = w.Slice((g * t.Cog + o) * k, k);
                        for (int kk = 0; kk < k; kk++) dst[kk * mr + r] = src[kk];
                        continue;
                    }
                    for (int c = 0, kk = 0; c < t.Cig; c++)
                    {
                        var src = w.Slice(((g * t.Cig + c) * t.Cog + o) * taps, taps);
                        for (int tap = taps - 1; tap >= 0; tap--, kk++) dst[kk * mr + r] = src[tap]; // (KH−1−kh)·KW + (KW−1−kw) = taps − 1 − tap
                    }
                }
            }
        return wt;
    }

    /// <summary>The forward tiles of shape <c>T</c> on one machine: tile sizes, the flat output's extent and the scratch it needs.</summary>
    private readonly struct ForwardPlan
    {
        public readonly ConvShape T;
        public readonly InstructionSet Isa;
        public readonly int MR, NB, K, Blocks, Panel, RowStride, QPad, PaddedLength;

        public ForwardPlan(in ConvShape t, InstructionSet isa)
        {
            (T, Isa) = (t, isa);
            (MR, NB) = ForwardTile(isa);
            K = t.Cig * t.KH * t.KW;
            Blocks = (t.Cog + MR - 1) / MR;
            Panel = K * MR;
            RowStride = ConvFlat.RowStride(t);
            QPad = (t.OH * RowStride + NB - 1) / NB * NB;
            PaddedLength = ConvFlat.PaddedLength(t, QPad);
        }

        /// <summary>Floats of the flat output Yf of one group of an image.</summary>
        public int OutputLength => Blocks * MR * QPad;

        /// <summary>Whether <see cref="Group"/> stores its tiles straight into y (<see cref="GroupScattered"/>), so needs no flat output Yf.</summary>
        public bool Scatters => Isa == InstructionSet.Avx512 && RowStride >= Vector512<float>.Count && Avx512F.IsSupported;

        /// <summary>
        /// Group <paramref name="g"/> of one image: the tiles over its padded planes <paramref name="pp"/> into the flat output
        /// <paramref name="yf"/>, whose kept columns (plus the bias) are then copied into the image's output <paramref name="yImage"/> [C_out, OH, OW];
        /// when <see cref="Scatters"/>, straight into y (<paramref name="yf"/> unused, may be null).
        /// </summary>
        public void Group(float* pp, int g, float* wt, int* offsets, float* yf, float* bias, float* yImage)
        {
            if (Scatters)
            {
                GroupScattered(pp, g, wt, offsets, bias, yImage);
                return;
            }
            for (int b = 0; b < Blocks; b++)
            {
                float* wpanel = wt + (long)(g * Blocks + b) * Panel, rows = yf + (long)b * MR * QPad;
                for (int c0 = 0; c0 < QPad; c0 += NB)
                {
                    if (Isa == InstructionSet.Avx512)
                    {
                        var flatSink = new FlatSink { Yf = rows + c0, Ldy = QPad };
                        ForwardTile512(pp + c0, offsets, wpanel, K, ref flatSink);
                    }
                    else if (Isa == InstructionSet.Avx2) ForwardTile256(pp + c0, offsets, wpanel, K, rows + c0, QPad);
                    else ForwardTileScalar(pp + c0, offsets, wpanel, K, rows + c0, QPad, MR, NB);
                }
            }
            for (int o = 0; o < T.Cog; o++)
            {
                int oc = g * T.Cog + o;
                float* dst = yImage + (long)oc * T.OH * T.OW;
                for (int oh = 0; oh < T.OH; oh++)
                {
                    float* src = yf + (long)o * QPad + oh * RowStride;
                    if (bias == null) CopyRow(src, dst + oh * T.OW, T.OW);
                    else System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(src, T.OW), bias[oc], new Span<float>(dst + oh * T.OW, T.OW));
                }
            }
        }

        /// <summary>
        /// <see cref="Group"/> on the AVX-512 tiles with rows of at least one vector (Wp ≥ 16): each 8×48 tile goes from the
        /// micro-kernel's registers straight to the output (<see cref="ScatterSink"/>), with the bias added on the way: no flat
        /// output, no tile in memory and no second pass. The same values as the copy-out.
        /// </summary>
        private void GroupScattered(float* pp, int g, float* wt, int* offsets, float* bias, float* yImage)
        {
            const int V = 16;
            // the plan's sizes in locals, and the block's first output plane and bias as pointers
            int wp = RowStride, ow = T.OW, flat = T.OH * wp, plane = T.OH * T.OW, cog = T.Cog, mr = MR, nb = NB, k = K, qPad = QPad;
            var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            ScatterSink sink = default;
            for (int b = 0; b < Blocks; b++)
            {
                float* wpanel = wt + (long)(g * Blocks + b) * Panel;
                sink.Rows = Math.Min(mr, cog - b * mr);
                int oc0 = g * cog + b * mr;
                sink.Out = yImage + (long)oc0 * plane;
                sink.Bias = bias == null ? null : bias + oc0;
                sink.Plane = plane;
                for (int c0 = 0, oh = 0, col = 0; c0 < qPad; c0 += nb)
                {
                    for (int v = 0; v < nb / V; v++)
                    {
                        int q0 = c0 + v * V;
                        ref var s = ref sink.Vectors[v];
                        if (q0 >= flat)
                        {
                            s.Mode = ScatterMode.None;
                            continue;
                        }
                        // q0 = oh·Wp + col, carried from vector to vector instead of divided
                        while (col >= wp) { col -= wp; oh++; }
                        // lanes [0, first): row oh's columns col.. (none when col falls on a dropped column);
                        // lanes [next, last): row oh + 1's columns 0..
                        int first = Math.Max(0, Math.Min(V, ow - col));
                        int next = wp - col, last = Math.Min(Math.Min(V, flat - q0), next + ow);
                        int kept = first + Math.Max(0, last - next);
                        // the kept lanes go, in order, to consecutive outputs from row oh's column min(col, OW)
                        s.Offset = (long)oh * ow + Math.Min(col, ow);
                        s.Keep = (Vector512.LessThan(lane, Vector512.Create(first))
                            | (Vector512.GreaterThanOrEqual(lane, Vector512.Create(next)) & Vector512.LessThan(lane, Vector512.Create(last)))).AsSingle();
                        s.Stored = Vector512.LessThan(lane, Vector512.Create(kept)).AsSingle();
                        // a whole vector may be stored when it stays inside the plane: its lanes past `kept` land on outputs
                        // that later vectors of this plane overwrite (rows are stored in flat order)
                        s.Mode = kept == 0 ? ScatterMode.None
                            : kept == V ? ScatterMode.Whole
                            : s.Offset + V <= plane ? ScatterMode.Compressed
                            : ScatterMode.CompressedMasked;
                        col += V;
                    }
                    ForwardTile512(pp + c0, offsets, wpanel, k, ref sink);
                }
            }
        }
    }

    /// <summary>How one vector of 16 flat columns of a forward tile reaches the output.</summary>
    private enum ScatterMode : byte
    {
        /// <summary>Every lane is a dropped column or past the flat output: nothing stored.</summary>
        None,
        /// <summary>16 kept lanes, one store.</summary>
        Whole,
        /// <summary>The kept lanes compressed to the front, then one whole store (the lanes past them are overwritten later).</summary>
        Compressed,
        /// <summary>The kept lanes compressed to the front, then stored under a mask (the plane ends within the vector).</summary>
        CompressedMasked,
    }

    /// <summary>Where one vector of a forward tile goes: its first output, the kept lanes and the lanes stored.</summary>
    private struct ScatterVector
    {
        public Vector512<float> Keep, Stored;
        public long Offset;
        public ScatterMode Mode;
    }

    /// <summary>The three vectors of a tile's rows.</summary>
    [InlineArray(3)]
    private struct ScatterVectors
    {
        private ScatterVector _element;
    }

    /// <summary>A forward tile's destination: the flat output Yf (row r at <c>Yf + r·ldy</c>), or the output planes themselves.</summary>
    private interface ITileSink
    {
        void Put(int r, int j, Vector512<float> v);
    }

    /// <summary>The flat output: tile entry (r, vector j) at <c>Yf + r·Ldy + 16·j</c>.</summary>
    private struct FlatSink : ITileSink
    {
        public float* Yf;
        public long Ldy;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Put(int r, int j, Vector512<float> v) => v.Store(Yf + r * Ldy + 16 * j);
    }

    /// <summary>
    /// The output planes [rows][OH·OW] at <see cref="Out"/>: vector j of row r, plus bias[r], its kept lanes compressed to the
    /// front (vcompressps, register form) and stored from output <c>Vectors[j].Offset</c> of plane r. Rows past <see cref="Rows"/>
    /// (a block past C_out/G) are not stored.
    /// </summary>
    private struct ScatterSink : ITileSink
    {
        public float* Out, Bias;
        public long Plane;
        public int Rows;
        public ScatterVectors Vectors;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Put(int r, int j, Vector512<float> v)
        {
            ref readonly var s = ref Vectors[j];
            if (r >= Rows || s.Mode == ScatterMode.None) return;
            if (Bias != null) v += Vector512.Create(Bias[r]);
            float* dst = Out + r * Plane + s.Offset;
            if (s.Mode == ScatterMode.Whole)
            {
                v.Store(dst);
                return;
            }
            v = Avx512F.Compress(Vector512<float>.Zero, s.Keep, v);
            if (s.Mode == ScatterMode.Compressed) v.Store(dst);
            else Avx512F.MaskStore(dst, s.Stored, v);
        }
    }

    /// <summary>The weight-gradient tiles of shape <c>S</c>: tile sizes, the padded k, the chunks and their lane partial sums.</summary>
    private readonly struct WeightPlan
    {
        public readonly ConvShape S;
        public readonly InstructionSet Isa;
        public readonly int MR, NK, V, K, KPad, Blocks, Rows, RowStride, QW, PaddedLength, Chunks;
        public readonly long PerChunk;

        public WeightPlan(in ConvShape s, InstructionSet isa)
        {
            (S, Isa) = (s, isa);
            (MR, NK, V) = WeightTile(isa);
            K = s.GroupRows;
            KPad = (K + NK - 1) / NK * NK;
            Blocks = (s.Cog + MR - 1) / MR;
            Rows = Blocks * MR;
            RowStride = ConvFlat.RowStride(s);
            QW = (s.OH * RowStride + V - 1) / V * V;
            PaddedLength = ConvFlat.PaddedLength(s, QW);
            Chunks = ConvKernels.WeightChunks(s);
            PerChunk = (long)s.Groups * Rows * KPad * V;
        }

        /// <summary>Chunk <paramref name="chunk"/>'s lane partial sums in <paramref name="parts"/>, zeroed.</summary>
        public float* ClearedPart(float* parts, int chunk)
        {
            float* part = parts + chunk * PerChunk;
            new Span<float>(part, (int)PerChunk).Clear();
            return part;
        }

        /// <summary>First image of chunk <paramref name="chunk"/> (the chunks are consecutive images, fixed by the shape).</summary>
        public int First(int chunk) => (int)((long)S.N * chunk / Chunks);

        /// <summary>
        /// Adds image group <paramref name="g"/>'s products into its chunk's lane partial sums <paramref name="part"/>: dy on the
        /// Wp grid at <paramref name="dyf"/> (row o at dyf + o·<paramref name="ldd"/>, QW floats, zeros in the dropped columns,
        /// past the flat output and in the rows past C_out/G), x's padded planes at <paramref name="pp"/>.
        /// </summary>
        public void Group(float* dyf, int ldd, float* pp, int g, int* offsets, float* part)
        {
            for (int b = 0; b < Blocks; b++)
                for (int t0 = 0; t0 < KPad; t0 += NK)
                {
                    float* e = part + ((long)(g * Rows + b * MR) * KPad + t0) * V;
                    if (Isa == InstructionSet.Avx512) WeightTile512(dyf + (long)b * MR * ldd, ldd, pp, offsets + t0, QW, e, KPad);
                    else if (Isa == InstructionSet.Avx2) WeightTile256(dyf + (long)b * MR * ldd, ldd, pp, offsets + t0, QW, e, KPad);
                    else e[0] += WeightDotScalar(dyf + (long)b * ldd, pp + offsets[t0], QW);
                }
        }

        /// <summary>
        /// dw from the chunks' lane partial sums: per output channel (g, o), the chunks added into chunk 0's in chunk order
        /// (lane-wise), then each entry's lanes in lane order: fixed by the shape. The channels in up to 16 tasks (this pass read
        /// 1.2 MB on one thread after the job, 3 % of a cnn-resnet step).
        /// </summary>
        public void Sum(float* parts, float* dw)
        {
            int outputs = S.Groups * S.Cog, sums = Math.Min(outputs, 16), span = KPad * V, cog = S.Cog, rows = Rows, k = K, v = V, chunks = Chunks;
            long perChunk = PerChunk;
            void Task(int t)
            {
                for (int p = outputs * t / sums, end = outputs * (t + 1) / sums; p < end; p++)
                {
                    int g = p / cog, o = p % cog;
                    float* first = parts + (long)(g * rows + o) * span;
                    for (int c = 1; c < chunks; c++)
                        System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(first, span), new ReadOnlySpan<float>(first + c * perChunk, span),
                            new Span<float>(first, span));
                    for (int kk = 0; kk < k; kk++)
                    {
                        float* e = first + (long)kk * v;
                        float total = 0;
                        for (int l = 0; l < v; l++) total += e[l];
                        dw[p * k + kk] = total;
                    }
                }
            }
            KernelThreads.Run(sums, Task, (long)chunks * outputs * span);
        }
    }

    /// <summary><c>dw = Σ_n dY_n · col(x_n)ᵀ</c> (written, not read).</summary>
    public static void BackwardWeight(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dw, InstructionSet isa)
    {
        var plan = new WeightPlan(s, isa);
        int pLength = plan.PaddedLength, qw = plan.QW, wp = plan.RowStride, dyLength = plan.Rows * qw;
        var partial = ArrayPool<float>.Shared.Rent((int)(plan.Chunks * plan.PerChunk));
        var offsets = Offsets(s, plan.KPad);
        int image = s.C * s.H * s.W, output = s.Cout * s.OH * s.OW, plane = s.OH * s.OW;
        fixed (float* px = x, pdy = dy, ppart = partial, pdw = dw)
        fixed (int* po = offsets)
        {
            float* xs = px, gs = pdy, parts = ppart;
            int* offs = po;
            var shape = s;
            void Chunk(int chunk)
            {
                float* part = plan.ClearedPart(parts, chunk);
                var p = Scratch.Padded(pLength, LayoutKey(shape, pLength, 1), out bool clear);
                // dy's layout on the Wp grid is its own (C_out/G rows of OH rows of OW): keyed by the input's, two convolutions of one
                // input shape (k 3 and k 2, padding 1, on 2×2 images) shared a key, and the second kept the first's values where it
                // needed zeros (a wrong weight gradient, and with several threads a different one run to run)
                var dyf = Scratch.Output(dyLength, FlatDyKey(shape, dyLength), out bool clearDy);
                fixed (float* pp = p, pd = dyf)
                    for (int n = plan.First(chunk), end = plan.First(chunk + 1); n < end; n++)
                        for (int g = 0; g < shape.Groups; g++)
                        {
                            Pad(shape, xs + (long)n * image, g * shape.Cig, pp, pLength, clear);
                            clear = false;
                            // dy on the Wp grid: the dropped columns and the rows past C_out/G stay 0.
                            if (clearDy) new Span<float>(pd, dyLength).Clear();
                            clearDy = false;
                            for (int o = 0; o < shape.Cog; o++)
                                for (int oh = 0; oh < shape.OH; oh++)
                                    CopyRow(gs + (long)n * output + (long)(g * shape.Cog + o) * plane + oh * shape.OW, pd + (long)o * qw + oh * wp, shape.OW);
                            plan.Group(pd, qw, pp, g, offs, part);
                        }
            }
            if (plan.Chunks >= 2) KernelThreads.Run(plan.Chunks, Chunk);
            else Chunk(0);
            plan.Sum(parts, pdw);
        }
        ArrayPool<float>.Shared.Return(partial);
    }

    /// <summary>
    /// Whether <see cref="Backward"/> takes <paramref name="s"/>: the flat input gradient and the flat weight gradient both apply, and dy's
    /// padded planes for the input gradient can serve as the weight gradient's dy on the Wp grid (the same row stride, and zeros
    /// below the last row for the weight tiles' reads past the flat output).
    /// </summary>
    public static bool AppliesToBackward(in ConvShape s, InstructionSet isa)
    {
        if (!AppliesToInputGradient(s) || !AppliesToWeightGradient(s, isa)) return false;
        var t = Transposed(s);
        int wp = RowStride(s), q = s.OH * wp;
        return RowStride(t) == wp && (long)t.PH * wp >= new WeightPlan(s, isa).QW - q;
    }

    /// <summary>
    /// dx and dw in one pass over the images: each image's dy is padded once, into the planes the input gradient's tiles read
    /// (<see cref="BackwardInput"/>), and the weight gradient's tiles read the same planes as dy on the Wp grid: pixel (o, oh, ow)
    /// at <c>o·plane + PW' + (oh + PH')·Wp + ow</c>, so row o of the grid starts at <c>o·plane + PW' + PH'·Wp</c>, its dropped
    /// columns fall on the runs of PW' = Wp − OW zeros between rows and its tail on the bottom padding rows; the rows past C_out/G
    /// are zero planes after the last. The images run in the weight gradient's chunks. Every value is bitwise that of
    /// <see cref="BackwardInput"/> and <see cref="BackwardWeight"/> (the same tiles on the same numbers in the same order); what is
    /// saved is the second copy of dy and a second pass over the images.
    /// </summary>
    public static void Backward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dw, InstructionSet isa)
    {
        var t = Transposed(s);
        var input = new ForwardPlan(t, isa);
        var weight = new WeightPlan(s, isa);
        int planeT = Plane(t), start = t.PW + t.PH * input.RowStride;
        int dyLength = Math.Max(input.PaddedLength, (weight.Rows - 1) * planeT + start + weight.QW);
        int xLength = weight.PaddedLength;
        var wt = PackWeights(t, w, flipped: true, input.MR);
        var offsetsT = Offsets(t, input.K);
        var offsetsS = Offsets(s, weight.KPad);
        var partial = ArrayPool<float>.Shared.Rent((int)(weight.Chunks * weight.PerChunk));
        int image = s.C * s.H * s.W, output = s.Cout * s.OH * s.OW;
        fixed (float* px = x, pwt = wt, pdy = dy, pdx = dx, pdw = dw, ppart = partial)
        fixed (int* pot = offsetsT, pos = offsetsS)
        {
            float* xs = px, ws = pwt, gs = pdy, dxs = pdx, parts = ppart;
            int* offT = pot, offS = pos;
            var shape = s;
            var shapeT = t;
            void Chunk(int chunk)
            {
                float* part = weight.ClearedPart(parts, chunk);
                var pd = Scratch.PaddedDy(dyLength, LayoutKey(shapeT, dyLength, 3), out bool clearDy);
                var pxs = Scratch.Padded(xLength, LayoutKey(shape, xLength, 1), out bool clearX);
                var yf = input.Scatters ? null : Scratch.Output(input.OutputLength, default, out _);
                fixed (float* ppd = pd, ppx = pxs, pyf = yf)
                    for (int n = weight.First(chunk), end = weight.First(chunk + 1); n < end; n++)
                        for (int g = 0; g < shape.Groups; g++)
                        {
                            Pad(shapeT, gs + (long)n * output, g * shapeT.Cig, ppd, dyLength, clearDy);
                            clearDy = false;
                            input.Group(ppd, g, ws, offT, pyf, null, dxs + (long)n * image);
                            Pad(shape, xs + (long)n * image, g * shape.Cig, ppx, xLength, clearX);
                            clearX = false;
                            weight.Group(ppd + start, planeT, ppx, g, offS, part);
                        }
            }
            if (weight.Chunks >= 2) KernelThreads.Run(weight.Chunks, Chunk);
            else Chunk(0);
            weight.Sum(parts, pdw);
        }
        ArrayPool<float>.Shared.Return(partial);
        ArrayPool<float>.Shared.Return(wt);
    }

    /// <summary>Portable forward tile: MR rows × <paramref name="cols"/> flat columns, scalar.</summary>
    private static void ForwardTileScalar(float* p, int* offsets, float* wt, int k, float* yf, int ldy, int mr, int cols)
    {
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < cols; j++)
            {
                float sum = 0;
                for (int kk = 0; kk < k; kk++) sum = MathF.FusedMultiplyAdd(wt[kk * mr + r], p[offsets[kk] + j], sum);
                yf[(long)r * ldy + j] = sum;
            }
    }

    /// <summary>Portable weight-gradient entry: <c>Σ_q dy[q]·p[q]</c>, scalar.</summary>
    private static float WeightDotScalar(float* dy, float* p, int length)
    {
        float sum = 0;
        for (int q = 0; q < length; q++) sum = MathF.FusedMultiplyAdd(dy[q], p[q], sum);
        return sum;
    }

    /// <summary>Per-thread scratch: the padded planes (of x, and of dy in the one-pass backward) and the flat output (or flat dy) of the image a task is working on.</summary>
    private static class Scratch
    {
        [ThreadStatic] private static float[]? _padded;
        [ThreadStatic] private static float[]? _paddedDy;
        [ThreadStatic] private static float[]? _output;
        [ThreadStatic] private static Layout _paddedKey, _paddedDyKey, _outputKey;

        /// <summary>The padded-planes buffer; <paramref name="clear"/> when it must be zeroed first (it last held another layout <paramref name="key"/>).</summary>
        public static float[] Padded(int length, Layout key, out bool clear) => Get(ref _padded, ref _paddedKey, length, key, out clear);

        /// <summary>The padded planes of dy when one pass computes both gradients (<see cref="ConvFlat.Backward"/>).</summary>
        public static float[] PaddedDy(int length, Layout key, out bool clear) => Get(ref _paddedDy, ref _paddedDyKey, length, key, out clear);

        /// <summary>The flat output (forward, key 0: every element overwritten) or flat dy (weight gradient) buffer.</summary>
        public static float[] Output(int length, Layout key, out bool clear) => Get(ref _output, ref _outputKey, length, key, out clear);

        private static float[] Get(ref float[]? buffer, ref Layout held, int length, Layout key, out bool clear)
        {
            if (buffer is null || buffer.Length < length)
            {
                buffer = GC.AllocateUninitializedArray<float>(length, pinned: true);
                held = default;
            }
            clear = key.Kind == 0 || held != key;
            held = key;
            return buffer;
        }
    }

    /// <summary>8 output channels × 3 vectors of 16 flat columns: <c>tile[r, j] = Σ_k wt[k, r]·p[offsets[k] + j]</c>, handed to <paramref name="sink"/> row by row, vectors in order.</summary>
    private static void ForwardTile512<TSink>(float* p, int* offsets, float* wt, int k, ref TSink sink) where TSink : struct, ITileSink
    {
        var c00 = Vector512<float>.Zero; var c01 = Vector512<float>.Zero; var c02 = Vector512<float>.Zero;
        var c10 = Vector512<float>.Zero; var c11 = Vector512<float>.Zero; var c12 = Vector512<float>.Zero;
        var c20 = Vector512<float>.Zero; var c21 = Vector512<float>.Zero; var c22 = Vector512<float>.Zero;
        var c30 = Vector512<float>.Zero; var c31 = Vector512<float>.Zero; var c32 = Vector512<float>.Zero;
        var c40 = Vector512<float>.Zero; var c41 = Vector512<float>.Zero; var c42 = Vector512<float>.Zero;
        var c50 = Vector512<float>.Zero; var c51 = Vector512<float>.Zero; var c52 = Vector512<float>.Zero;
        var c60 = Vector512<float>.Zero; var c61 = Vector512<float>.Zero; var c62 = Vector512<float>.Zero;
        var c70 = Vector512<float>.Zero; var c71 = Vector512<float>.Zero; var c72 = Vector512<float>.Zero;
        for (int kk = 0; kk < k; kk++, wt += 8)
        {
            float* src = p + offsets[kk];
            var x0 = Vector512.Load(src + 0);
            var x1 = Vector512.Load(src + 16);
            var x2 = Vector512.Load(src + 32);
            var w0 = Vector512.Create(wt[0]);
            c00 = Vector512.FusedMultiplyAdd(w0, x0, c00); c01 = Vector512.FusedMultiplyAdd(w0, x1, c01); c02 = Vector512.FusedMultiplyAdd(w0, x2, c02);
            var w1 = Vector512.Create(wt[1]);
            c10 = Vector512.FusedMultiplyAdd(w1, x0, c10); c11 = Vector512.FusedMultiplyAdd(w1, x1, c11); c12 = Vector512.FusedMultiplyAdd(w1, x2, c12);
            var w2 = Vector512.Create(wt[2]);
            c20 = Vector512.FusedMultiplyAdd(w2, x0, c20); c21 = Vector512.FusedMultiplyAdd(w2, x1, c21); c22 = Vector512.FusedMultiplyAdd(w2, x2, c22);
            var w3 = Vector512.Create(wt[3]);
            c30 = Vector512.FusedMultiplyAdd(w3, x0, c30); c31 = Vector512.FusedMultiplyAdd(w3, x1, c31); c32 = Vector512.FusedMultiplyAdd(w3, x2, c32);
            var w4 = Vector512.Create(wt[4]);
            c40 = Vector512.FusedMultiplyAdd(w4, x0, c40); c41 = Vector512.FusedMultiplyAdd(w4, x1, c41); c42 = Vector512.FusedMultiplyAdd(w4, x2, c42);
            var w5 = Vector512.Create(wt[5]);
            c50 = Vector512.FusedMultiplyAdd(w5, x0, c50); c51 = Vector512.FusedMultiplyAdd(w5, x1, c51); c52 = Vector512.FusedMultiplyAdd(w5, x2, c52);
            var w6 = Vector512.Create(wt[6]);
            c60 = Vector512.FusedMultiplyAdd(w6, x0, c60); c61 = Vector512.FusedMultiplyAdd(w6, x1, c61); c62 = Vector512.FusedMultiplyAdd(w6, x2, c62);
            var w7 = Vector512.Create(wt[7]);
            c70 = Vector512.FusedMultiplyAdd(w7, x0, c70); c71 = Vector512.FusedMultiplyAdd(w7, x1, c71); c72 = Vector512.FusedMultiplyAdd(w7, x2, c72);
        }
        sink.Put(0, 0, c00); sink.Put(0, 1, c01); sink.Put(0, 2, c02);
        sink.Put(1, 0, c10); sink.Put(1, 1, c11); sink.Put(1, 2, c12);
        sink.Put(2, 0, c20); sink.Put(2, 1, c21); sink.Put(2, 2, c22);
        sink.Put(3, 0, c30); sink.Put(3, 1, c31); sink.Put(3, 2, c32);
        sink.Put(4, 0, c40); sink.Put(4, 1, c41); sink.Put(4, 2, c42);
        sink.Put(5, 0, c50); sink.Put(5, 1, c51); sink.Put(5, 2, c52);
        sink.Put(6, 0, c60); sink.Put(6, 1, c61); sink.Put(6, 2, c62);
        sink.Put(7, 0, c70); sink.Put(7, 1, c71); sink.Put(7, 2, c72);
    }

    /// <summary>4 output channels × 3 vectors of 8 flat columns: <c>yf[r, j] = Σ_k wt[k, r]·p[offsets[k] + j]</c> (row r at yf + r·ldy).</summary>
    private static void ForwardTile256(float* p, int* offsets, float* wt, int k, float* yf, int ldy)
    {
        var c00 = Vector256<float>.Zero; var c01 = Vector256<float>.Zero; var c02 = Vector256<float>.Zero;
        var c10 = Vector256<float>.Zero; var c11 = Vector256<float>.Zero; var c12 = Vector256<float>.Zero;
        var c20 = Vector256<float>.Zero; var c21 = Vector256<float>.Zero; var c22 = Vector256<float>.Zero;
        var c30 = Vector256<float>.Zero; var c31 = Vector256<float>.Zero; var c32 = Vector256<float>.Zero;
        for (int kk = 0; kk < k; kk++, wt += 4)
        {
            float* src = p + offsets[kk];
            var x0 = Vector256.Load(src + 0);
            var x1 = Vector256.Load(src + 8);
            var x2 = Vector256.Load(src + 16);
            var w0 = Vector256.Create(wt[0]);
            c00 = Vector256.FusedMultiplyAdd(w0, x0, c00); c01 = Vector256.FusedMultiplyAdd(w0, x1, c01); c02 = Vector256.FusedMultiplyAdd(w0, x2, c02);
            var w1 = Vector256.Create(wt[1]);
            c10 = Vector256.FusedMultiplyAdd(w1, x0, c10); c11 = Vector256.FusedMultiplyAdd(w1, x1, c11); c12 = Vector256.FusedMultiplyAdd(w1, x2, c12);
            var w2 = Vector256.Create(wt[2]);
            c20 = Vector256.FusedMultiplyAdd(w2, x0, c20); c21 = Vector256.FusedMultiplyAdd(w2, x1, c21); c22 = Vector256.FusedMultiplyAdd(w2, x2, c22);
            var w3 = Vector256.Create(wt[3]);
            c30 = Vector256.FusedMultiplyAdd(w3, x0, c30); c31 = Vector256.FusedMultiplyAdd(w3, x1, c31); c32 = Vector256.FusedMultiplyAdd(w3, x2, c32);
        }
        c00.Store(yf + 0 * (long)ldy + 0); c01.Store(yf + 0 * (long)ldy + 8); c02.Store(yf + 0 * (long)ldy + 16);
        c10.Store(yf + 1 * (long)ldy + 0); c11.Store(yf + 1 * (long)ldy + 8); c12.Store(yf + 1 * (long)ldy + 16);
        c20.Store(yf + 2 * (long)ldy + 0); c21.Store(yf + 2 * (long)ldy + 8); c22.Store(yf + 2 * (long)ldy + 16);
        c30.Store(yf + 3 * (long)ldy + 0); c31.Store(yf + 3 * (long)ldy + 8); c32.Store(yf + 3 * (long)ldy + 16);
    }

    /// <summary>
    /// 4 output channels × 6 taps: <c>partial[r, t] += Σ_q dy[r·ldd + q]·p[offsets[t] + q]</c> over q &lt; qLength (a multiple
    /// of 16), lane by lane (16 lanes per entry; entry (r, t) at partial + (r·ldp + t)·16).
    /// </summary>
    private static void WeightTile512(float* dy, int ldd, float* p, int* offsets, int qLength, float* partial, int ldp)
    {
        var a00 = Vector512<float>.Zero; var a01 = Vector512<float>.Zero; var a02 = Vector512<float>.Zero; var a03 = Vector512<float>.Zero; var a04 = Vector512<float>.Zero; var a05 = Vector512<float>.Zero;
        var a10 = Vector512<float>.Zero; var a11 = Vector512<float>.Zero; var a12 = Vector512<float>.Zero; var a13 = Vector512<float>.Zero; var a14 = Vector512<float>.Zero; var a15 = Vector512<float>.Zero;
        var a20 = Vector512<float>.Zero; var a21 = Vector512<float>.Zero; var a22 = Vector512<float>.Zero; var a23 = Vector512<float>.Zero; var a24 = Vector512<float>.Zero; var a25 = Vector512<float>.Zero;
        var a30 = Vector512<float>.Zero; var a31 = Vector512<float>.Zero; var a32 = Vector512<float>.Zero; var a33 = Vector512<float>.Zero; var a34 = Vector512<float>.Zero; var a35 = Vector512<float>.Zero;
        float* x0 = p + offsets[0]; float* x1 = p + offsets[1]; float* x2 = p + offsets[2]; float* x3 = p + offsets[3]; float* x4 = p + offsets[4]; float* x5 = p + offsets[5];
        float* d0 = dy + 0 * (long)ldd; float* d1 = dy + 1 * (long)ldd; float* d2 = dy + 2 * (long)ldd; float* d3 = dy + 3 * (long)ldd;
        for (int q = 0; q < qLength; q += 16)
        {
            var g0 = Vector512.Load(d0 + q);
            var g1 = Vector512.Load(d1 + q);
            var g2 = Vector512.Load(d2 + q);
            var g3 = Vector512.Load(d3 + q);
            var v0 = Vector512.Load(x0 + q);
            a00 = Vector512.FusedMultiplyAdd(g0, v0, a00); a10 = Vector512.FusedMultiplyAdd(g1, v0, a10); a20 = Vector512.FusedMultiplyAdd(g2, v0, a20); a30 = Vector512.FusedMultiplyAdd(g3, v0, a30);
            var v1 = Vector512.Load(x1 + q);
            a01 = Vector512.FusedMultiplyAdd(g0, v1, a01); a11 = Vector512.FusedMultiplyAdd(g1, v1, a11); a21 = Vector512.FusedMultiplyAdd(g2, v1, a21); a31 = Vector512.FusedMultiplyAdd(g3, v1, a31);
            var v2 = Vector512.Load(x2 + q);
            a02 = Vector512.FusedMultiplyAdd(g0, v2, a02); a12 = Vector512.FusedMultiplyAdd(g1, v2, a12); a22 = Vector512.FusedMultiplyAdd(g2, v2, a22); a32 = Vector512.FusedMultiplyAdd(g3, v2, a32);
            var v3 = Vector512.Load(x3 + q);
            a03 = Vector512.FusedMultiplyAdd(g0, v3, a03); a13 = Vector512.FusedMultiplyAdd(g1, v3, a13); a23 = Vector512.FusedMultiplyAdd(g2, v3, a23); a33 = Vector512.FusedMultiplyAdd(g3, v3, a33);
            var v4 = Vector512.Load(x4 + q);
            a04 = Vector512.FusedMultiplyAdd(g0, v4, a04); a14 = Vector512.FusedMultiplyAdd(g1, v4, a14); a24 = Vector512.FusedMultiplyAdd(g2, v4, a24); a34 = Vector512.FusedMultiplyAdd(g3, v4, a34);
            var v5 = Vector512.Load(x5 + q);
            a05 = Vector512.FusedMultiplyAdd(g0, v5, a05); a15 = Vector512.FusedMultiplyAdd(g1, v5, a15); a25 = Vector512.FusedMultiplyAdd(g2, v5, a25); a35 = Vector512.FusedMultiplyAdd(g3, v5, a35);
        }
        { float* e = partial + ((long)(0 * ldp + 0)) * 16; (Vector512.Load(e) + a00).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 1)) * 16; (Vector512.Load(e) + a01).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 2)) * 16; (Vector512.Load(e) + a02).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 3)) * 16; (Vector512.Load(e) + a03).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 4)) * 16; (Vector512.Load(e) + a04).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 5)) * 16; (Vector512.Load(e) + a05).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 0)) * 16; (Vector512.Load(e) + a10).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 1)) * 16; (Vector512.Load(e) + a11).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 2)) * 16; (Vector512.Load(e) + a12).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 3)) * 16; (Vector512.Load(e) + a13).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 4)) * 16; (Vector512.Load(e) + a14).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 5)) * 16; (Vector512.Load(e) + a15).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 0)) * 16; (Vector512.Load(e) + a20).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 1)) * 16; (Vector512.Load(e) + a21).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 2)) * 16; (Vector512.Load(e) + a22).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 3)) * 16; (Vector512.Load(e) + a23).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 4)) * 16; (Vector512.Load(e) + a24).Store(e); }
        { float* e = partial + ((long)(2 * ldp + 5)) * 16; (Vector512.Load(e) + a25).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 0)) * 16; (Vector512.Load(e) + a30).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 1)) * 16; (Vector512.Load(e) + a31).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 2)) * 16; (Vector512.Load(e) + a32).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 3)) * 16; (Vector512.Load(e) + a33).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 4)) * 16; (Vector512.Load(e) + a34).Store(e); }
        { float* e = partial + ((long)(3 * ldp + 5)) * 16; (Vector512.Load(e) + a35).Store(e); }
    }

    /// <summary>
    /// 2 output channels × 6 taps: <c>partial[r, t] += Σ_q dy[r·ldd + q]·p[offsets[t] + q]</c> over q &lt; qLength (a multiple
    /// of 8), lane by lane (8 lanes per entry; entry (r, t) at partial + (r·ldp + t)·8).
    /// </summary>
    private static void WeightTile256(float* dy, int ldd, float* p, int* offsets, int qLength, float* partial, int ldp)
    {
        var a00 = Vector256<float>.Zero; var a01 = Vector256<float>.Zero; var a02 = Vector256<float>.Zero; var a03 = Vector256<float>.Zero; var a04 = Vector256<float>.Zero; var a05 = Vector256<float>.Zero;
        var a10 = Vector256<float>.Zero; var a11 = Vector256<float>.Zero; var a12 = Vector256<float>.Zero; var a13 = Vector256<float>.Zero; var a14 = Vector256<float>.Zero; var a15 = Vector256<float>.Zero;
        float* x0 = p + offsets[0]; float* x1 = p + offsets[1]; float* x2 = p + offsets[2]; float* x3 = p + offsets[3]; float* x4 = p + offsets[4]; float* x5 = p + offsets[5];
        float* d0 = dy + 0 * (long)ldd; float* d1 = dy + 1 * (long)ldd;
        for (int q = 0; q < qLength; q += 8)
        {
            var g0 = Vector256.Load(d0 + q);
            var g1 = Vector256.Load(d1 + q);
            var v0 = Vector256.Load(x0 + q);
            a00 = Vector256.FusedMultiplyAdd(g0, v0, a00); a10 = Vector256.FusedMultiplyAdd(g1, v0, a10);
            var v1 = Vector256.Load(x1 + q);
            a01 = Vector256.FusedMultiplyAdd(g0, v1, a01); a11 = Vector256.FusedMultiplyAdd(g1, v1, a11);
            var v2 = Vector256.Load(x2 + q);
            a02 = Vector256.FusedMultiplyAdd(g0, v2, a02); a12 = Vector256.FusedMultiplyAdd(g1, v2, a12);
            var v3 = Vector256.Load(x3 + q);
            a03 = Vector256.FusedMultiplyAdd(g0, v3, a03); a13 = Vector256.FusedMultiplyAdd(g1, v3, a13);
            var v4 = Vector256.Load(x4 + q);
            a04 = Vector256.FusedMultiplyAdd(g0, v4, a04); a14 = Vector256.FusedMultiplyAdd(g1, v4, a14);
            var v5 = Vector256.Load(x5 + q);
            a05 = Vector256.FusedMultiplyAdd(g0, v5, a05); a15 = Vector256.FusedMultiplyAdd(g1, v5, a15);
        }
        { float* e = partial + ((long)(0 * ldp + 0)) * 8; (Vector256.Load(e) + a00).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 1)) * 8; (Vector256.Load(e) + a01).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 2)) * 8; (Vector256.Load(e) + a02).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 3)) * 8; (Vector256.Load(e) + a03).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 4)) * 8; (Vector256.Load(e) + a04).Store(e); }
        { float* e = partial + ((long)(0 * ldp + 5)) * 8; (Vector256.Load(e) + a05).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 0)) * 8; (Vector256.Load(e) + a10).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 1)) * 8; (Vector256.Load(e) + a11).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 2)) * 8; (Vector256.Load(e) + a12).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 3)) * 8; (Vector256.Load(e) + a13).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 4)) * 8; (Vector256.Load(e) + a14).Store(e); }
        { float* e = partial + ((long)(1 * ldp + 5)) * 8; (Vector256.Load(e) + a15).Store(e); }
    }
}
