using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>
/// 3×3 stride-1 convolutions in float32 by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms
/// for Convolutional Neural Networks", 2016): each 2×2 output tile from a 4×4 input tile with 16 multiplications per
/// (input, output) channel pair instead of 36.
/// </summary>
/// <remarks>
/// <para>
/// Per output tile, <c>Y = Aᵀ [Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B)] A</c> with
/// <c>Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]</c>, <c>G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]</c>,
/// <c>Aᵀ = [1 1 1 0; 0 1 −1 −1]</c> (cross-correlation, as PyTorch). The weight transform <c>U[ξ][k][c]</c> (ξ = one of
/// the 16 positions of the 4×4 tile) is computed once per call, in double and rounded once. Per image, the zero-padded
/// input is split into four sub-planes by row and column parity, <c>P_ij[c][a·S + m] = xpad[c][2a + i][2m + j]</c> with
/// row stride S = TW + 1 (TW = ⌈OW/2⌉ tile columns): tile t = th·S + tw reads its 4×4 window
/// <c>d[a][b] = P_(a%2)(b%2)[t + (a/2)·S + b/2]</c>, four shifted copies of one flat vector, so the input transform
/// <c>V = Bᵀ d B</c> is vectorised over consecutive tiles with plain (unaligned) loads and no gathers. The tile column
/// tw = TW of every row is computed and dropped (1 of S tiles), as the dropped columns of <see cref="ConvFlat"/>.
/// The tiles run in blocks of <see cref="BlockTiles"/> (V and M of a block, 16·(C + K)·block floats, stay in L2):
/// input transform, then 16 GEMMs <c>M[ξ] = U[ξ]·V[ξ]</c> (K×C times C×block) through one micro-kernel of 4 output
/// channels × 2 vectors of tiles (AVX-512 4×32, AVX2 4×16, portable 4×2, every path with fused multiply-adds, so all
/// paths give the same bits), then the output transform <c>Aᵀ M A</c> into four output sub-planes by parity, which are
/// interleaved into y (plus the bias) at the end of the image.
/// </para>
/// <para>
/// Input gradient: the forward of dy with the flipped, transposed weight at padding 2 − P (<see cref="ConvFlat.Transposed"/>).
/// Accuracy: every product term passes through at most C + 8 roundings (two in V, one in U, C in the sum over input
/// channels, four in the output transform, one for the bias), against the absolute values of the transformed terms,
/// which exceed those of the direct sum: 64 against 9 for an output whose weights and inputs all have magnitude 1 (|G| has
/// row sums 1, 3/2, 3/2, 1 and |Bᵀ| row sums 2), so the error bound is about 7× the direct convolution's.
/// Determinism: one task per image (each owns its output image), and a tile's arithmetic does not depend on its block or
/// lane, so results are bitwise the same for any thread count.
/// </para>
/// </remarks>
internal static unsafe class ConvWinograd
{
    /// <summary>Whether this path computes the shape: 3×3 kernel, stride 1, dilation 1, one group, padding at most 2 (so the input gradient's padding 2 − P is too).</summary>
    public static bool Applies(in ConvShape s) =>
        s.KH == 3 && s.KW == 3 && s.SH == 1 && s.SW == 1 && s.DH == 1 && s.DW == 1 && s.Groups == 1 && s.PH <= 2 && s.PW <= 2;

    /// <summary>Floats a row's split may write, or its interleave read, past the end of its sub-plane (two 512-bit vectors; the split's in zeros or in data rewritten later).</summary>
    private const int RowSlack = 32;

    /// <summary>Output channels per micro-kernel call.</summary>
    private const int MR = 4;

    /// <summary>Tiles per micro-kernel call on a path: two vectors.</summary>
    private static int ColumnTile(InstructionSet isa) => 2 * Lanes(isa);

    private static int Lanes(InstructionSet isa) => isa switch
    {
        InstructionSet.Avx512 => Vector512<float>.Count,
        InstructionSet.Avx2 => Vector256<float>.Count,
        _ => 1,
    };

    /// <summary>
    /// Tiles per block: V and M of a block take 64·(C + K)·block bytes; about 128 KiB of them (an eighth of this
    /// machine's L2 per core) keeps them cached between the three passes. A multiple of the column tile.
    /// </summary>
    private static int BlockTiles(int c, int k, int nb) => Math.Max(nb, 2048 / (c + k) / nb * nb);

    /// <summary>
    /// Floats between the 16 planes of V or M of a block (<paramref name="rows"/> rows of <paramref name="block"/> tiles): one
    /// cache line more than the plane, so that the 16 planes a tile transform reads or writes do not all map to the same
    /// L1 set (a plane of 16 × 64 floats is 4 KiB, the L1's set period: the transforms ran 2× slower).
    /// </summary>
    private static int XiStride(int rows, int block) => rows * block + 16;

    /// <summary><c>y = conv(x, w) + bias</c> (shape checked by the caller).</summary>
    public static void Forward(in ConvShape s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, InstructionSet isa) =>
        Run(s, x, w, bias, y, flipped: false, isa);

    /// <summary><c>dx = convᵀ(dy, w)</c> as the forward of <see cref="ConvFlat.Transposed"/> with the flipped, transposed weight.</summary>
    public static void BackwardInput(in ConvShape s, ReadOnlySpan<float> w, ReadOnlySpan<float> dy, Span<float> dx, InstructionSet isa) =>
        Run(ConvFlat.Transposed(s), dy, w, default, dx, flipped: true, isa);

    private static void Run(ConvShape t, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, bool flipped, InstructionSet isa)
    {
        int nb = ColumnTile(isa), c = t.C, k = t.Cout, kBlocks = (k + MR - 1) / MR, kPad = kBlocks * MR;
        int th = (t.OH + 1) / 2, tw = (t.OW + 1) / 2, stride = tw + 1, tiles = th * stride, tPad = (tiles + nb - 1) / nb * nb;
        int block = BlockTiles(c, kPad, nb), subLength = tPad + stride + 1 + RowSlack, rowLength = (Math.Max(t.W, 2 * tw) + RowSlack - 1) / RowSlack * RowSlack;
        var u = ArrayPool<float>.Shared.Rent(16 * kPad * c);
        TransformWeights(t, w, flipped, u, kPad);
        var layout = new Layout(c, t.H, t.W, t.PH, t.PW, stride, subLength);
        fixed (float* px = x, pu = u, pb = bias, py = y)
        {
            float* xs = px, us = pu, bs = bias.IsEmpty ? null : pb, ys = py;
            var shape = t;
            void Image(int n)
            {
                var scratch = Scratch.Get(4 * c * subLength, 16 * XiStride(c, block), 16 * XiStride(kPad, block), 4 * k * tPad + RowSlack, rowLength, layout, out bool clear);
                fixed (float* sub = scratch.Sub, v = scratch.V, m = scratch.M, ysub = scratch.Y, row = scratch.Row)
                {
                    var work = new Work(shape, subLength, stride, tPad, block, kPad, rowLength, us, sub, v, m, ysub, row);
                    float* xn = xs + (long)n * c * shape.H * shape.W, yn = ys + (long)n * k * shape.OH * shape.OW;
                    if (isa == InstructionSet.Avx512) ImageOf<Lanes512>(work, xn, bs, yn, clear);
                    else if (isa == InstructionSet.Avx2) ImageOf<Lanes256>(work, xn, bs, yn, clear);
                    else ImageOf<Lanes1>(work, xn, bs, yn, clear);
                }
            }
            if (t.N >= 2) KernelThreads.Run(t.N, Image);
            else if (t.N == 1) Image(0);
        }
        ArrayPool<float>.Shared.Return(u);
    }

    /// <summary>One image's sizes and scratch pointers (input sub-planes, V and M of a block, output sub-planes, one row).</summary>
    private readonly struct Work(ConvShape shape, int subLength, int stride, int tPad, int block, int kPad, int rowLength,
        float* u, float* sub, float* v, float* m, float* ySub, float* row)
    {
        public readonly ConvShape Shape = shape;
        public readonly int SubLength = subLength, Stride = stride, TPad = tPad, Block = block, KPad = kPad, RowLength = rowLength;
        public readonly float* U = u, Sub = sub, V = v, M = m, YSub = ySub, Row = row;
    }

    /// <summary>One image: split into sub-planes, the blocks of tiles in order, interleaved into y (plus the bias).</summary>
    private static void ImageOf<TL>(in Work w, float* x, float* bias, float* y, bool clear) where TL : unmanaged, ILanes<TL>
    {
        var t = w.Shape;
        Split<TL>(t, x, w.Sub, w.SubLength, w.Stride, clear, w.Row, w.RowLength);
        for (int b0 = 0; b0 < w.TPad; b0 += w.Block)
            Block<TL>(w.Sub + b0, w.SubLength, w.Stride, t.C, t.Cout, w.KPad, w.U, w.V, w.M, w.Block, Math.Min(w.Block, w.TPad - b0), w.YSub + b0, w.TPad);
        Interleave<TL>(t, w.YSub, w.TPad, w.Stride, bias, y, w.Row);
    }

    /// <summary>
    /// <c>U[ξ = 4i + j][kb][c][r] = (G g Gᵀ)[i][j]</c> for output channel kb·MR + r (0 past K), in double, rounded once.
    /// Flipped (input gradient): <c>g[k][c][a][b] = W[c][k][2 − a][2 − b]</c>, W of the original convolution.
    /// </summary>
    private static void TransformWeights(in ConvShape t, ReadOnlySpan<float> w, bool flipped, Span<float> u, int kPad)
    {
        ReadOnlySpan<double> g = [1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1];
        int c = t.C, k = t.Cout;
        Span<double> gg = stackalloc double[9];
        Span<double> tmp = stackalloc double[12];
        for (int o = 0; o < kPad; o++)
            for (int ci = 0; ci < c; ci++)
            {
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++)
                        gg[a * 3 + b] = o >= k ? 0 : flipped ? w[((ci * k + o) * 3 + 2 - a) * 3 + 2 - b] : w[((o * c + ci) * 3 + a) * 3 + b];
                for (int i = 0; i < 4; i++)
                    for (int b = 0; b < 3; b++)
                        tmp[i * 3 + b] = g[i * 3] * gg[b] + g[i * 3 + 1] * gg[3 + b] + g[i * 3 + 2] * gg[6 + b];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                    {
                        double sum = tmp[i * 3] * g[j * 3] + tmp[i * 3 + 1] * g[j * 3 + 1] + tmp[i * 3 + 2] * g[j * 3 + 2];
                        u[((4 * i + j) * kPad + o / MR * MR) * c + ci * MR + o % MR] = (float)sum;
                    }
            }
    }

    /// <summary>
    /// Copies image [C, H, W] into its parity sub-planes: pixel (c, h, w) at padded position (r, s) = (h + PH, w + PW) goes to
    /// sub-plane (r % 2, s % 2) of channel c at <c>(r/2)·S + s/2</c>; every other element stays 0 (the buffer is cleared
    /// only when it last held another layout). Rows are split by whole vectors of 2·TL.Count floats straight from the image,
    /// reading up to that many floats past the row's end (the next row's pixels); the values this puts past the row's
    /// ⌈W/2⌉ or ⌊W/2⌋ entries are overwritten by one vector of zeros, which may reach into the next sub-plane row of the
    /// same parity: left padding, or pixels of the row two below, written after. The image's last row, whose reads would
    /// leave the image (the last, or the last few when rows are short), go through <paramref name="row"/> (zeros past W). (A row copied into a buffer and read back by
    /// other vector bounds stalls store-to-load forwarding: that cost a third of the transform's time.)
    /// </summary>
    private static void Split<TL>(in ConvShape t, float* image, float* sub, int subLength, int stride, bool clear, float* row, int rowLength)
        where TL : unmanaged, ILanes<TL>
    {
        if (clear) new Span<float>(sub, 4 * t.C * subLength).Clear();
        int step = 2 * TL.Count, evens = (t.W + 1) / 2, odds = t.W / 2, reach = (t.W + step - 1) / step * step;
        long end = (long)t.C * t.H * t.W;
        for (int c = 0; c < t.C; c++)
            for (int h = 0; h < t.H; h++)
            {
                int r = h + t.PH;
                long at = ((long)c * t.H + h) * t.W;
                float* src = image + at;
                if (at + reach > end)
                {
                    new Span<float>(src, t.W).CopyTo(new Span<float>(row, t.W));
                    new Span<float>(row + t.W, rowLength - t.W).Clear();
                    src = row;
                }
                // Source column w lands in parity (w + PW) % 2 at (w + PW)/2: even w at even + w/2, odd w at odd + w/2.
                float* even = sub + (long)(4 * c + 2 * (r & 1) + (t.PW & 1)) * subLength + (r >> 1) * stride + (t.PW >> 1);
                float* odd = sub + (long)(4 * c + 2 * (r & 1) + 1 - (t.PW & 1)) * subLength + (r >> 1) * stride + ((t.PW + 1) >> 1);
                for (int w = 0; w < t.W; w += step) TL.Deinterleave(src + w, even + w / 2, odd + w / 2);
                TL.Zero.Store(even + evens);
                TL.Zero.Store(odd + odds);
            }
    }

    /// <summary>
    /// One block of <paramref name="cols"/> tiles (a multiple of the column tile): input transform into V [16][C][ldv]
    /// (planes <see cref="XiStride"/> apart), the 16 products M[ξ] = U[ξ]·V[ξ] into M [16][kPad][ldv] (alike), output transform into the sub-planes of y (four per output
    /// channel, ldy apart per parity, K·4 of them).
    /// </summary>
    private static void Block<TL>(float* sub, int subLength, int stride, int c, int k, int kPad, float* u, float* v, float* m, int ldv, int cols,
        float* ysub, int ldy) where TL : unmanaged, ILanes<TL>
    {
        int lanes = TL.Count, nb = 2 * lanes;
        long vXi = XiStride(c, ldv), mXi = XiStride(kPad, ldv);
        for (int ci = 0; ci < c; ci++)
        {
            float* p00 = sub + (long)(4 * ci) * subLength, p01 = p00 + subLength, p10 = p01 + subLength, p11 = p10 + subLength;
            for (int j = 0; j < cols; j += lanes)
                InputTile<TL>(p00 + j, p01 + j, p10 + j, p11 + j, stride, v + (long)ci * ldv + j, vXi);
        }
        for (int xi = 0; xi < 16; xi++)
            for (int kb = 0; kb < kPad; kb += MR)
            {
                float* panel = u + ((long)xi * kPad + kb) * c, vx = v + xi * vXi, mx = m + xi * mXi + (long)kb * ldv;
                for (int j = 0; j < cols; j += nb) Gemm4x2<TL>(panel, vx + j, ldv, c, mx + j, ldv);
            }
        for (int o = 0; o < k; o++)
            for (int j = 0; j < cols; j += lanes)
                OutputTile<TL>(m + (long)o * ldv + j, mXi, ysub + (long)4 * o * ldy + j, ldy);
    }

    /// <summary>
    /// <c>V = Bᵀ d B</c> for TL.Count consecutive tiles of one channel: d[a][b] read from sub-plane (a % 2, b % 2) at offset
    /// (a/2)·S + b/2; V[4i + j] stored <paramref name="xiStride"/> apart.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTile<TL>(float* p00, float* p01, float* p10, float* p11, int s, float* vOut, long xiStride) where TL : unmanaged, ILanes<TL>
    {
        // Rows a = 0..3 of the window: a even from p0*, odd from p1*; a ≥ 2 one sub-plane row (S) further.
        // Vertical pass (Bᵀ on the rows), column by column: r0 = d0 − d2, r1 = d1 + d2, r2 = d2 − d1, r3 = d1 − d3.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        TL Col(float* pe, float* po, int off, out TL r1, out TL r2, out TL r3)
        {
            var d0 = TL.Load(pe + off); var d1 = TL.Load(po + off); var d2 = TL.Load(pe + s + off); var d3 = TL.Load(po + s + off);
            r1 = d1 + d2;
            r2 = d2 - d1;
            r3 = d1 - d3;
            return d0 - d2;
        }
        // Columns b = 0..3: b even from p*0, odd from p*1; b ≥ 2 one element further.
        var a0 = Col(p00, p10, 0, out var a1, out var a2, out var a3);
        var b0 = Col(p01, p11, 0, out var b1, out var b2, out var b3);
        var c0 = Col(p00, p10, 1, out var c1, out var c2, out var c3);
        var e0 = Col(p01, p11, 1, out var e1, out var e2, out var e3);
        // Horizontal pass (B on the columns a, b, c, e of each row i): v_i0 = a − c, v_i1 = b + c, v_i2 = c − b, v_i3 = b − e.
        (a0 - c0).Store(vOut); (b0 + c0).Store(vOut + xiStride); (c0 - b0).Store(vOut + 2 * xiStride); (b0 - e0).Store(vOut + 3 * xiStride);
        vOut += 4 * xiStride;
        (a1 - c1).Store(vOut); (b1 + c1).Store(vOut + xiStride); (c1 - b1).Store(vOut + 2 * xiStride); (b1 - e1).Store(vOut + 3 * xiStride);
        vOut += 4 * xiStride;
        (a2 - c2).Store(vOut); (b2 + c2).Store(vOut + xiStride); (c2 - b2).Store(vOut + 2 * xiStride); (b2 - e2).Store(vOut + 3 * xiStride);
        vOut += 4 * xiStride;
        (a3 - c3).Store(vOut); (b3 + c3).Store(vOut + xiStride); (c3 - b3).Store(vOut + 2 * xiStride); (b3 - e3).Store(vOut + 3 * xiStride);
    }

    /// <summary>
    /// <c>Y = Aᵀ M A</c> for TL.Count consecutive tiles of one output channel: M[4i + j] read <paramref name="xiStride"/>
    /// apart; Y[i][j] stored into output sub-plane 2i + j (<paramref name="ldy"/> apart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputTile<TL>(float* mIn, long xiStride, float* yOut, int ldy) where TL : unmanaged, ILanes<TL>
    {
        // Vertical pass (Aᵀ on the rows), column j: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static TL Col(float* p, long st, out TL s1)
        {
            var m0 = TL.Load(p); var m1 = TL.Load(p + 4 * st); var m2 = TL.Load(p + 8 * st); var m3 = TL.Load(p + 12 * st);
            s1 = m1 - m2 - m3;
            return m0 + m1 + m2;
        }
        var a0 = Col(mIn, xiStride, out var a1);
        var b0 = Col(mIn + xiStride, xiStride, out var b1);
        var c0 = Col(mIn + 2 * xiStride, xiStride, out var c1);
        var e0 = Col(mIn + 3 * xiStride, xiStride, out var e1);
        // Horizontal pass: y_i0 = a + b + c, y_i1 = b − c − e.
        (a0 + b0 + c0).Store(yOut);
        (b0 - c0 - e0).Store(yOut + ldy);
        (a1 + b1 + c1).Store(yOut + 2 * ldy);
        (b1 - c1 - e1).Store(yOut + 3 * ldy);
    }

    /// <summary>
    /// 4 output channels × 2 vectors of tiles: <c>m[r][j] = Σ_c panel[c][r]·v[c][j]</c> (row r of m at m + r·ldm), fused
    /// multiply-adds in input-channel order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Gemm4x2<TL>(float* panel, float* v, int ldv, int c, float* m, int ldm) where TL : unmanaged, ILanes<TL>
    {
        int l = TL.Count;
        TL c00 = TL.Zero, c01 = TL.Zero, c10 = TL.Zero, c11 = TL.Zero, c20 = TL.Zero, c21 = TL.Zero, c30 = TL.Zero, c31 = TL.Zero;
        for (int ci = 0; ci < c; ci++, panel += MR, v += ldv)
        {
            var x0 = TL.Load(v);
            var x1 = TL.Load(v + l);
            var w0 = TL.Broadcast(panel[0]);
            c00 = TL.Fma(w0, x0, c00); c01 = TL.Fma(w0, x1, c01);
            var w1 = TL.Broadcast(panel[1]);
            c10 = TL.Fma(w1, x0, c10); c11 = TL.Fma(w1, x1, c11);
            var w2 = TL.Broadcast(panel[2]);
            c20 = TL.Fma(w2, x0, c20); c21 = TL.Fma(w2, x1, c21);
            var w3 = TL.Broadcast(panel[3]);
            c30 = TL.Fma(w3, x0, c30); c31 = TL.Fma(w3, x1, c31);
        }
        c00.Store(m); c01.Store(m + l);
        c10.Store(m + ldm); c11.Store(m + ldm + l);
        c20.Store(m + 2 * ldm); c21.Store(m + 2 * ldm + l);
        c30.Store(m + 3 * ldm); c31.Store(m + 3 * ldm + l);
    }

    /// <summary>
    /// y[k][oh][ow] = Y_(oh%2)(ow%2)[k][(oh/2)·S + ow/2] (+ bias[k]): the output sub-planes interleaved by whole vectors of
    /// 2·TL.Count floats straight into y, writing up to that many floats past the row's end into the next row of the
    /// image, written after; the rows whose writes would leave the image (the last, or the last few when rows are short) go
    /// through <paramref name="row"/>. The dropped tiles are left out.
    /// </summary>
    private static void Interleave<TL>(in ConvShape t, float* ysub, int ldy, int stride, float* bias, float* y, float* row) where TL : unmanaged, ILanes<TL>
    {
        int oh = t.OH, ow = t.OW, step = 2 * TL.Count, reach = (ow + step - 1) / step * step;
        long end = (long)t.Cout * oh * ow;
        for (int o = 0; o < t.Cout; o++)
        {
            bool hasBias = bias != null;
            var add = TL.Broadcast(hasBias ? bias[o] : 0f);
            for (int r = 0; r < oh; r++)
            {
                float* even = ysub + (long)(4 * o + 2 * (r & 1)) * ldy + (r >> 1) * stride, odd = even + ldy;
                long at = ((long)o * oh + r) * ow;
                bool last = at + reach > end;
                float* dst = last ? row : y + at;
                for (int w = 0; w < ow; w += step) TL.Interleave(even + w / 2, odd + w / 2, hasBias, add, dst + w);
                if (last) new Span<float>(row, ow).CopyTo(new Span<float>(y + at, ow));
            }
        }
    }

    /// <summary>The layout of the input sub-planes a scratch buffer last held, so that its zeros can be trusted.</summary>
    private readonly record struct Layout(int C, int H, int W, int PH, int PW, int Stride, int SubLength);

    /// <summary>Per-thread scratch: input sub-planes, V and M of a block, output sub-planes, one image or output row.</summary>
    private sealed class Scratch
    {
        [ThreadStatic] private static Scratch? _current;

        public float[] Sub = [], V = [], M = [], Y = [], Row = [];
        private Layout _held;

        public static Scratch Get(int sub, int v, int m, int y, int row, Layout layout, out bool clear)
        {
            var s = _current ??= new Scratch();
            clear = s._held != layout;
            if (s.Sub.Length < sub)
            {
                s.Sub = GC.AllocateUninitializedArray<float>(sub, pinned: true);
                clear = true;
            }
            if (s.V.Length < v) s.V = GC.AllocateUninitializedArray<float>(v, pinned: true);
            if (s.M.Length < m) s.M = GC.AllocateUninitializedArray<float>(m, pinned: true);
            if (s.Y.Length < y) s.Y = GC.AllocateUninitializedArray<float>(y, pinned: true);
            if (s.Row.Length < row) s.Row = GC.AllocateUninitializedArray<float>(row, pinned: true);
            s._held = layout;
            return s;
        }
    }

    /// <summary>The few vector operations the transforms and the micro-kernel use, over a path's vector width (one float on the portable path).</summary>
    private interface ILanes<TSelf> where TSelf : unmanaged, ILanes<TSelf>
    {
        static abstract int Count { get; }
        static abstract TSelf Zero { get; }
        static abstract TSelf Load(float* p);
        static abstract TSelf Broadcast(float value);
        static abstract TSelf Fma(TSelf a, TSelf b, TSelf c);
        static abstract TSelf operator +(TSelf a, TSelf b);
        static abstract TSelf operator -(TSelf a, TSelf b);
        void Store(float* p);

        /// <summary><c>even[i] = src[2i]</c>, <c>odd[i] = src[2i + 1]</c> for i &lt; Count.</summary>
        static abstract void Deinterleave(float* src, float* even, float* odd);

        /// <summary><c>dst[2i] = even[i] (+ add)</c>, <c>dst[2i + 1] = odd[i] (+ add)</c> for i &lt; Count.</summary>
        static abstract void Interleave(float* even, float* odd, bool hasAdd, TSelf add, float* dst);
    }

    private readonly struct Lanes512(Vector512<float> v) : ILanes<Lanes512>
    {
        private readonly Vector512<float> _v = v;
        public static int Count => Vector512<float>.Count;
        public static Lanes512 Zero => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Load(float* p) => new(Vector512.Load(p));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Broadcast(float value) => new(Vector512.Create(value));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Fma(Lanes512 a, Lanes512 b, Lanes512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 operator +(Lanes512 a, Lanes512 b) => new(a._v + b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 operator -(Lanes512 a, Lanes512 b) => new(a._v - b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(float* p) => _v.Store(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Deinterleave(float* src, float* even, float* odd)
        {
            Vector512<float> a = Vector512.Load(src), b = Vector512.Load(src + 16);
            var low = Vector512.Create(-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0).AsSingle();
            var e = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
            var o = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
            Vector512.ConditionalSelect(low, Vector512.Shuffle(a, e), Vector512.Shuffle(b, e)).Store(even);
            Vector512.ConditionalSelect(low, Vector512.Shuffle(a, o), Vector512.Shuffle(b, o)).Store(odd);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave(float* even, float* odd, bool hasAdd, Lanes512 add, float* dst)
        {
            Vector512<float> e = Vector512.Load(even), o = Vector512.Load(odd);
            if (hasAdd)
            {
                e += add._v;
                o += add._v;
            }
            var evens = Vector512.Create(-1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0).AsSingle();
            var lo = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var hi = Vector512.Create(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            Vector512.ConditionalSelect(evens, Vector512.Shuffle(e, lo), Vector512.Shuffle(o, lo)).Store(dst);
            Vector512.ConditionalSelect(evens, Vector512.Shuffle(e, hi), Vector512.Shuffle(o, hi)).Store(dst + 16);
        }
    }

    private readonly struct Lanes256(Vector256<float> v) : ILanes<Lanes256>
    {
        private readonly Vector256<float> _v = v;
        public static int Count => Vector256<float>.Count;
        public static Lanes256 Zero => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Load(float* p) => new(Vector256.Load(p));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Broadcast(float value) => new(Vector256.Create(value));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Fma(Lanes256 a, Lanes256 b, Lanes256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 operator +(Lanes256 a, Lanes256 b) => new(a._v + b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 operator -(Lanes256 a, Lanes256 b) => new(a._v - b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(float* p) => _v.Store(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Deinterleave(float* src, float* even, float* odd)
        {
            Vector256<float> a = Vector256.Load(src), b = Vector256.Load(src + 8);
            var low = Vector256.Create(-1, -1, -1, -1, 0, 0, 0, 0).AsSingle();
            var e = Vector256.Create(0, 2, 4, 6, 0, 2, 4, 6);
            var o = Vector256.Create(1, 3, 5, 7, 1, 3, 5, 7);
            Vector256.ConditionalSelect(low, Vector256.Shuffle(a, e), Vector256.Shuffle(b, e)).Store(even);
            Vector256.ConditionalSelect(low, Vector256.Shuffle(a, o), Vector256.Shuffle(b, o)).Store(odd);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave(float* even, float* odd, bool hasAdd, Lanes256 add, float* dst)
        {
            Vector256<float> e = Vector256.Load(even), o = Vector256.Load(odd);
            if (hasAdd)
            {
                e += add._v;
                o += add._v;
            }
            var evens = Vector256.Create(-1, 0, -1, 0, -1, 0, -1, 0).AsSingle();
            var lo = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
            var hi = Vector256.Create(4, 4, 5, 5, 6, 6, 7, 7);
            Vector256.ConditionalSelect(evens, Vector256.Shuffle(e, lo), Vector256.Shuffle(o, lo)).Store(dst);
            Vector256.ConditionalSelect(evens, Vector256.Shuffle(e, hi), Vector256.Shuffle(o, hi)).Store(dst + 8);
        }
    }

    private readonly struct Lanes1(float v) : ILanes<Lanes1>
    {
        private readonly float _v = v;
        public static int Count => 1;
        public static Lanes1 Zero => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes1 Load(float* p) => new(*p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes1 Broadcast(float value) => new(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes1 Fma(Lanes1 a, Lanes1 b, Lanes1 c) => new(MathF.FusedMultiplyAdd(a._v, b._v, c._v));
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes1 operator +(Lanes1 a, Lanes1 b) => new(a._v + b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes1 operator -(Lanes1 a, Lanes1 b) => new(a._v - b._v);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(float* p) => *p = _v;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Deinterleave(float* src, float* even, float* odd)
        {
            *even = src[0];
            *odd = src[1];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave(float* even, float* odd, bool hasAdd, Lanes1 add, float* dst)
        {
            dst[0] = hasAdd ? *even + add._v : *even;
            dst[1] = hasAdd ? *odd + add._v : *odd;
        }
    }
}
