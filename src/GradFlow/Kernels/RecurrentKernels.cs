using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GradFlow.Kernels;

/// <summary>
/// The fused element-wise gate kernels of the gated recurrent cells, forward and backward: everything
/// an LSTM or GRU time step does after its matrix products, in one pass over a batch of rows.
/// Span in / span out, destination last, float and double. Each public kernel has an internal twin
/// taking an explicit <see cref="InstructionSet"/> so tests can run every path.
/// </summary>
/// <remarks>
/// <para>Layout: row b of a gate tensor holds the gates side by side, each <c>hidden</c> wide, in
/// PyTorch's order (LSTM <c>i, f, g, o</c>; GRU <c>r, z, n</c>); state tensors are [batch, hidden].
/// Every span must have exactly the length its layout gives (the message names the kernel, the span
/// and both lengths). Within a row, lanes run in 512-bit vectors (AVX-512), then 256-bit vectors, then
/// a scalar tail (<see cref="RowLoop"/>).</para>
/// <para>In place: every lane reads all its inputs before it writes, so <c>gates</c> may be the same
/// span as <c>preGates</c> (LSTM forward), <c>dcPrev</c> as <c>dc</c> (LSTM backward) and
/// <c>dhPrev</c> as <c>dh</c> (GRU backward).</para>
/// <para>σ is <c>1/(1 + e^−x)</c>. tanh is <c>T.Tanh</c> on the scalar path and, in vectors,
/// <c>sign(x)·(−m)/(2 + m)</c> with <c>m = e^(−2|x|) − 1</c>, TensorPrimitives' form: one exponential,
/// no overflow, ±1 exactly for large |x|, and an absolute error of about one ulp of 1 (so for
/// |x| ≪ 1 the relative error grows; a gate's value is only ever added to or multiplied with O(1)
/// terms, where that is below the rounding of the result). Derivatives are taken from the saved
/// outputs: <c>σ′ = y(1 − y)</c>, <c>tanh′ = (1 − y)(1 + y)</c>.</para>
/// </remarks>
public static class RecurrentKernels
{
    // ---------------------------------------------------------------- LSTM

    /// <summary>
    /// LSTM step forward (Hochreiter and Schmidhuber 1997, with the forget gate of Gers et al. 2000):
    /// from pre-activations <c>[a_i, a_f, a_g, a_o]</c> (= x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh),
    /// <c>i = σ(a_i)</c>, <c>f = σ(a_f)</c>, <c>g = tanh(a_g)</c>, <c>o = σ(a_o)</c>,
    /// <c>c = f·c_prev + i·g</c>, <c>h = o·tanh(c)</c>.
    /// </summary>
    /// <param name="batch">Rows B.</param>
    /// <param name="hidden">Hidden size H.</param>
    /// <param name="preGates">[B, 4H] pre-activations.</param>
    /// <param name="cPrev">[B, H] previous cell state.</param>
    /// <param name="gates">[B, 4H] the activated gates i, f, g, o (saved for backward; may be <paramref name="preGates"/>).</param>
    /// <param name="c">[B, H] new cell state.</param>
    /// <param name="tanhC">[B, H] tanh(c) (saved for backward).</param>
    /// <param name="h">[B, H] new hidden state.</param>
    public static void LstmForward<T>(int batch, int hidden, ReadOnlySpan<T> preGates, ReadOnlySpan<T> cPrev,
        Span<T> gates, Span<T> c, Span<T> tanhC, Span<T> h) where T : unmanaged, IFloatingPointIeee754<T> =>
        LstmForward(batch, hidden, preGates, cPrev, gates, c, tanhC, h, KernelIsa.Best);

    internal static void LstmForward<T>(int batch, int hidden, ReadOnlySpan<T> preGates, ReadOnlySpan<T> cPrev,
        Span<T> gates, Span<T> c, Span<T> tanhC, Span<T> h, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const string op = "lstm forward";
        CheckSizes(op, batch, hidden);
        CheckLength(op, "preGates", preGates.Length, batch, 4, hidden);
        CheckLength(op, "cPrev", cPrev.Length, batch, 1, hidden);
        CheckLength(op, "gates", gates.Length, batch, 4, hidden);
        CheckLength(op, "c", c.Length, batch, 1, hidden);
        CheckLength(op, "tanhC", tanhC.Length, batch, 1, hidden);
        CheckLength(op, "h", h.Length, batch, 1, hidden);
        int g4 = 4 * hidden;
        for (int b = 0; b < batch; b++)
        {
            var row = new LstmForwardRow<T>(hidden, preGates.Slice(b * g4, g4), cPrev.Slice(b * hidden, hidden),
                gates.Slice(b * g4, g4), c.Slice(b * hidden, hidden), tanhC.Slice(b * hidden, hidden), h.Slice(b * hidden, hidden));
            RowLoop.Run<T, LstmForwardRow<T>>(ref row, hidden, isa);
        }
    }

    /// <summary>
    /// LSTM step backward, from the saved gates, c_prev and tanh(c), given <c>dh</c> (all of dL/dh_t:
    /// from the output and from the next step) and <c>dc</c> (dL/dc_t from the next step):
    /// <c>dc_t = dc + dh·o·tanh′</c>, <c>da_o = dh·tanh(c)·σ′(o)</c>, <c>da_i = dc_t·g·σ′(i)</c>,
    /// <c>da_f = dc_t·c_prev·σ′(f)</c>, <c>da_g = dc_t·i·tanh′(g)</c>, <c>dc_prev = dc_t·f</c>.
    /// </summary>
    /// <param name="batch">Rows B.</param>
    /// <param name="hidden">Hidden size H.</param>
    /// <param name="gates">[B, 4H] activated gates from the forward.</param>
    /// <param name="cPrev">[B, H] c_prev.</param>
    /// <param name="tanhC">[B, H] tanh(c_t).</param>
    /// <param name="dh">[B, H] dL/dh_t.</param>
    /// <param name="dc">[B, H] dL/dc_t from later steps.</param>
    /// <param name="dPreGates">[B, 4H] dL/d(pre-activations) (assigned).</param>
    /// <param name="dcPrev">[B, H] dL/dc_prev (assigned; may be <paramref name="dc"/>).</param>
    public static void LstmBackward<T>(int batch, int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> cPrev, ReadOnlySpan<T> tanhC,
        ReadOnlySpan<T> dh, ReadOnlySpan<T> dc, Span<T> dPreGates, Span<T> dcPrev) where T : unmanaged, IFloatingPointIeee754<T> =>
        LstmBackward(batch, hidden, gates, cPrev, tanhC, dh, dc, dPreGates, dcPrev, KernelIsa.Best);

    internal static void LstmBackward<T>(int batch, int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> cPrev, ReadOnlySpan<T> tanhC,
        ReadOnlySpan<T> dh, ReadOnlySpan<T> dc, Span<T> dPreGates, Span<T> dcPrev, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const string op = "lstm backward";
        CheckSizes(op, batch, hidden);
        CheckLength(op, "gates", gates.Length, batch, 4, hidden);
        CheckLength(op, "cPrev", cPrev.Length, batch, 1, hidden);
        CheckLength(op, "tanhC", tanhC.Length, batch, 1, hidden);
        CheckLength(op, "dh", dh.Length, batch, 1, hidden);
        CheckLength(op, "dc", dc.Length, batch, 1, hidden);
        CheckLength(op, "dPreGates", dPreGates.Length, batch, 4, hidden);
        CheckLength(op, "dcPrev", dcPrev.Length, batch, 1, hidden);
        int g4 = 4 * hidden;
        for (int b = 0; b < batch; b++)
        {
            int s = b * hidden;
            var row = new LstmBackwardRow<T>(hidden, gates.Slice(b * g4, g4), cPrev.Slice(s, hidden), tanhC.Slice(s, hidden),
                dh.Slice(s, hidden), dc.Slice(s, hidden), dPreGates.Slice(b * g4, g4), dcPrev.Slice(s, hidden));
            RowLoop.Run<T, LstmBackwardRow<T>>(ref row, hidden, isa);
        }
    }

    // ---------------------------------------------------------------- GRU

    /// <summary>
    /// GRU step forward (Cho et al. 2014, in PyTorch's form): with <c>x·W_ihᵀ + b_ih = [x_r, x_z, x_n]</c>
    /// and <c>h·W_hhᵀ + b_hh = [h_r, h_z, h_n]</c>: <c>r = σ(x_r + h_r)</c>, <c>z = σ(x_z + h_z)</c>,
    /// <c>n = tanh(x_n + r·h_n)</c>, <c>h′ = n + z·(h − n)</c> (= (1 − z)·n + z·h).
    /// </summary>
    /// <param name="batch">Rows B.</param>
    /// <param name="hidden">Hidden size H.</param>
    /// <param name="xGates">[B, 3H] input projections.</param>
    /// <param name="hGates">[B, 3H] hidden projections.</param>
    /// <param name="hPrev">[B, H] previous hidden state h.</param>
    /// <param name="gates">[B, 3H] r, z, n (saved for backward).</param>
    /// <param name="hn">[B, H] a copy of h_n (saved for backward: r's gradient needs it).</param>
    /// <param name="h">[B, H] new hidden state h′.</param>
    public static void GruForward<T>(int batch, int hidden, ReadOnlySpan<T> xGates, ReadOnlySpan<T> hGates, ReadOnlySpan<T> hPrev,
        Span<T> gates, Span<T> hn, Span<T> h) where T : unmanaged, IFloatingPointIeee754<T> =>
        GruForward(batch, hidden, xGates, hGates, hPrev, gates, hn, h, KernelIsa.Best);

    internal static void GruForward<T>(int batch, int hidden, ReadOnlySpan<T> xGates, ReadOnlySpan<T> hGates, ReadOnlySpan<T> hPrev,
        Span<T> gates, Span<T> hn, Span<T> h, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const string op = "gru forward";
        CheckSizes(op, batch, hidden);
        CheckLength(op, "xGates", xGates.Length, batch, 3, hidden);
        CheckLength(op, "hGates", hGates.Length, batch, 3, hidden);
        CheckLength(op, "hPrev", hPrev.Length, batch, 1, hidden);
        CheckLength(op, "gates", gates.Length, batch, 3, hidden);
        CheckLength(op, "hn", hn.Length, batch, 1, hidden);
        CheckLength(op, "h", h.Length, batch, 1, hidden);
        int g3 = 3 * hidden;
        for (int b = 0; b < batch; b++)
        {
            int s = b * hidden;
            var row = new GruForwardRow<T>(hidden, xGates.Slice(b * g3, g3), hGates.Slice(b * g3, g3), hPrev.Slice(s, hidden),
                gates.Slice(b * g3, g3), hn.Slice(s, hidden), h.Slice(s, hidden));
            RowLoop.Run<T, GruForwardRow<T>>(ref row, hidden, isa);
        }
    }

    /// <summary>
    /// GRU step backward from the saved r, z, n, h_n and h, given <c>dh</c> = dL/dh′ (output and next
    /// step together): <c>da_z = dh·(h − n)·σ′(z)</c>, <c>da_n = dh·(1 − z)·tanh′(n)</c>,
    /// <c>da_r = da_n·h_n·σ′(r)</c>; the input side gets <c>[da_r, da_z, da_n]</c>, the hidden side
    /// <c>[da_r, da_z, da_n·r]</c>, and the direct path <c>dh_prev = dh·z</c> (the caller adds the
    /// hidden side times W_hh).
    /// </summary>
    /// <param name="batch">Rows B.</param>
    /// <param name="hidden">Hidden size H.</param>
    /// <param name="gates">[B, 3H] r, z, n from the forward.</param>
    /// <param name="hn">[B, H] h_n from the forward.</param>
    /// <param name="hPrev">[B, H] the step's input hidden state h.</param>
    /// <param name="dh">[B, H] dL/dh′.</param>
    /// <param name="dxGates">[B, 3H] dL/d(x·W_ihᵀ + b_ih) (assigned).</param>
    /// <param name="dhGates">[B, 3H] dL/d(h·W_hhᵀ + b_hh) (assigned).</param>
    /// <param name="dhPrev">[B, H] the direct part of dL/dh, <c>dh·z</c> (assigned; may be <paramref name="dh"/>).</param>
    public static void GruBackward<T>(int batch, int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> hn, ReadOnlySpan<T> hPrev,
        ReadOnlySpan<T> dh, Span<T> dxGates, Span<T> dhGates, Span<T> dhPrev) where T : unmanaged, IFloatingPointIeee754<T> =>
        GruBackward(batch, hidden, gates, hn, hPrev, dh, dxGates, dhGates, dhPrev, KernelIsa.Best);

    internal static void GruBackward<T>(int batch, int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> hn, ReadOnlySpan<T> hPrev,
        ReadOnlySpan<T> dh, Span<T> dxGates, Span<T> dhGates, Span<T> dhPrev, InstructionSet isa) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const string op = "gru backward";
        CheckSizes(op, batch, hidden);
        CheckLength(op, "gates", gates.Length, batch, 3, hidden);
        CheckLength(op, "hn", hn.Length, batch, 1, hidden);
        CheckLength(op, "hPrev", hPrev.Length, batch, 1, hidden);
        CheckLength(op, "dh", dh.Length, batch, 1, hidden);
        CheckLength(op, "dxGates", dxGates.Length, batch, 3, hidden);
        CheckLength(op, "dhGates", dhGates.Length, batch, 3, hidden);
        CheckLength(op, "dhPrev", dhPrev.Length, batch, 1, hidden);
        int g3 = 3 * hidden;
        for (int b = 0; b < batch; b++)
        {
            int s = b * hidden;
            var row = new GruBackwardRow<T>(hidden, gates.Slice(b * g3, g3), hn.Slice(s, hidden), hPrev.Slice(s, hidden),
                dh.Slice(s, hidden), dxGates.Slice(b * g3, g3), dhGates.Slice(b * g3, g3), dhPrev.Slice(s, hidden));
            RowLoop.Run<T, GruBackwardRow<T>>(ref row, hidden, isa);
        }
    }

    // ---------------------------------------------------------------- validation

    private static void CheckSizes(string op, int batch, int hidden)
    {
        if (batch < 0 || hidden < 0)
            throw new ArgumentException($"{op}: batch {batch} and hidden {hidden} must not be negative.");
    }

    private static void CheckLength(string op, string name, int length, int batch, int gates, int hidden)
    {
        long need = (long)batch * gates * hidden;
        if (length != need)
            throw new ArgumentException(
                $"{op}: {name} has {length} elements, expected batch·{(gates == 1 ? "" : gates + "·")}hidden = {need} (batch {batch}, hidden {hidden}).");
    }

    // ---------------------------------------------------------------- rows (one operator per kernel: scalar, 256-bit, 512-bit)

    private readonly ref struct LstmForwardRow<T> : IRowOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly int _h;
        private readonly ReadOnlySpan<T> _pre, _cPrev;
        private readonly Span<T> _gates, _c, _tanhC, _hOut;

        public LstmForwardRow(int hidden, ReadOnlySpan<T> pre, ReadOnlySpan<T> cPrev, Span<T> gates, Span<T> c, Span<T> tanhC, Span<T> h)
        {
            _h = hidden;
            _pre = pre;
            _cPrev = cPrev;
            _gates = gates;
            _c = c;
            _tanhC = tanhC;
            _hOut = h;
        }

        public void Invoke(int j)
        {
            T i = GateMath.Sigmoid(_pre[j]), f = GateMath.Sigmoid(_pre[_h + j]);
            T g = T.Tanh(_pre[2 * _h + j]), o = GateMath.Sigmoid(_pre[3 * _h + j]);
            T c = f * _cPrev[j] + i * g;
            T tc = T.Tanh(c);
            (_gates[j], _gates[_h + j], _gates[2 * _h + j], _gates[3 * _h + j]) = (i, f, g, o);
            (_c[j], _tanhC[j], _hOut[j]) = (c, tc, o * tc);
        }

        public void Invoke<TV, TW>(int j) where TV : struct where TW : IWidth<TV, T>
        {
            var i = GateMath.Sigmoid(V<TV, TW, T>.Load(_pre, j));
            var f = GateMath.Sigmoid(V<TV, TW, T>.Load(_pre, _h + j));
            var g = GateMath.Tanh(V<TV, TW, T>.Load(_pre, 2 * _h + j));
            var o = GateMath.Sigmoid(V<TV, TW, T>.Load(_pre, 3 * _h + j));
            var c = f * V<TV, TW, T>.Load(_cPrev, j) + i * g;
            var tc = GateMath.Tanh(c);
            i.Store(_gates, j);
            f.Store(_gates, _h + j);
            g.Store(_gates, 2 * _h + j);
            o.Store(_gates, 3 * _h + j);
            c.Store(_c, j);
            tc.Store(_tanhC, j);
            (o * tc).Store(_hOut, j);
        }
    }

    private readonly ref struct LstmBackwardRow<T> : IRowOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly int _h;
        private readonly ReadOnlySpan<T> _gates, _cPrev, _tanhC, _dh, _dc;
        private readonly Span<T> _dPre, _dcPrev;

        public LstmBackwardRow(int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> cPrev, ReadOnlySpan<T> tanhC,
            ReadOnlySpan<T> dh, ReadOnlySpan<T> dc, Span<T> dPre, Span<T> dcPrev)
        {
            _h = hidden;
            _gates = gates;
            _cPrev = cPrev;
            _tanhC = tanhC;
            _dh = dh;
            _dc = dc;
            _dPre = dPre;
            _dcPrev = dcPrev;
        }

        public void Invoke(int j)
        {
            T i = _gates[j], f = _gates[_h + j], g = _gates[2 * _h + j], o = _gates[3 * _h + j];
            T tc = _tanhC[j], dh = _dh[j];
            T dc = _dc[j] + dh * o * (T.One - tc) * (T.One + tc);
            _dPre[j] = dc * g * i * (T.One - i);
            _dPre[_h + j] = dc * _cPrev[j] * f * (T.One - f);
            _dPre[2 * _h + j] = dc * i * (T.One - g) * (T.One + g);
            _dPre[3 * _h + j] = dh * tc * o * (T.One - o);
            _dcPrev[j] = dc * f;
        }

        public void Invoke<TV, TW>(int j) where TV : struct where TW : IWidth<TV, T>
        {
            var one = V<TV, TW, T>.One;
            var i = V<TV, TW, T>.Load(_gates, j);
            var f = V<TV, TW, T>.Load(_gates, _h + j);
            var g = V<TV, TW, T>.Load(_gates, 2 * _h + j);
            var o = V<TV, TW, T>.Load(_gates, 3 * _h + j);
            var tc = V<TV, TW, T>.Load(_tanhC, j);
            var dh = V<TV, TW, T>.Load(_dh, j);
            var cPrev = V<TV, TW, T>.Load(_cPrev, j);
            var dc = V<TV, TW, T>.Load(_dc, j) + dh * o * (one - tc) * (one + tc);
            (dc * g * i * (one - i)).Store(_dPre, j);
            (dc * cPrev * f * (one - f)).Store(_dPre, _h + j);
            (dc * i * (one - g) * (one + g)).Store(_dPre, 2 * _h + j);
            (dh * tc * o * (one - o)).Store(_dPre, 3 * _h + j);
            (dc * f).Store(_dcPrev, j);
        }
    }

    private readonly ref struct GruForwardRow<T> : IRowOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly int _h;
        private readonly ReadOnlySpan<T> _x, _hg, _hPrev;
        private readonly Span<T> _gates, _hn, _hOut;

        public GruForwardRow(int hidden, ReadOnlySpan<T> x, ReadOnlySpan<T> hg, ReadOnlySpan<T> hPrev, Span<T> gates, Span<T> hn, Span<T> h)
        {
            _h = hidden;
            _x = x;
            _hg = hg;
            _hPrev = hPrev;
            _gates = gates;
            _hn = hn;
            _hOut = h;
        }

        public void Invoke(int j)
        {
            T r = GateMath.Sigmoid(_x[j] + _hg[j]);
            T z = GateMath.Sigmoid(_x[_h + j] + _hg[_h + j]);
            T hn = _hg[2 * _h + j];
            T n = T.Tanh(_x[2 * _h + j] + r * hn);
            T h = n + z * (_hPrev[j] - n);
            (_gates[j], _gates[_h + j], _gates[2 * _h + j]) = (r, z, n);
            (_hn[j], _hOut[j]) = (hn, h);
        }

        public void Invoke<TV, TW>(int j) where TV : struct where TW : IWidth<TV, T>
        {
            var r = GateMath.Sigmoid(V<TV, TW, T>.Load(_x, j) + V<TV, TW, T>.Load(_hg, j));
            var z = GateMath.Sigmoid(V<TV, TW, T>.Load(_x, _h + j) + V<TV, TW, T>.Load(_hg, _h + j));
            var hn = V<TV, TW, T>.Load(_hg, 2 * _h + j);
            var n = GateMath.Tanh(V<TV, TW, T>.Load(_x, 2 * _h + j) + r * hn);
            var h = n + z * (V<TV, TW, T>.Load(_hPrev, j) - n);
            r.Store(_gates, j);
            z.Store(_gates, _h + j);
            n.Store(_gates, 2 * _h + j);
            hn.Store(_hn, j);
            h.Store(_hOut, j);
        }
    }

    private readonly ref struct GruBackwardRow<T> : IRowOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly int _h;
        private readonly ReadOnlySpan<T> _gates, _hn, _hPrev, _dh;
        private readonly Span<T> _dx, _dhg, _dhPrev;

        public GruBackwardRow(int hidden, ReadOnlySpan<T> gates, ReadOnlySpan<T> hn, ReadOnlySpan<T> hPrev, ReadOnlySpan<T> dh,
            Span<T> dx, Span<T> dhg, Span<T> dhPrev)
        {
            _h = hidden;
            _gates = gates;
            _hn = hn;
            _hPrev = hPrev;
            _dh = dh;
            _dx = dx;
            _dhg = dhg;
            _dhPrev = dhPrev;
        }

        public void Invoke(int j)
        {
            T r = _gates[j], z = _gates[_h + j], n = _gates[2 * _h + j], dh = _dh[j];
            T dz = dh * (_hPrev[j] - n) * z * (T.One - z);
            T dn = dh * (T.One - z) * (T.One - n) * (T.One + n);
            T dr = dn * _hn[j] * r * (T.One - r);
            (_dx[j], _dx[_h + j], _dx[2 * _h + j]) = (dr, dz, dn);
            (_dhg[j], _dhg[_h + j], _dhg[2 * _h + j]) = (dr, dz, dn * r);
            _dhPrev[j] = dh * z;
        }

        public void Invoke<TV, TW>(int j) where TV : struct where TW : IWidth<TV, T>
        {
            var one = V<TV, TW, T>.One;
            var r = V<TV, TW, T>.Load(_gates, j);
            var z = V<TV, TW, T>.Load(_gates, _h + j);
            var n = V<TV, TW, T>.Load(_gates, 2 * _h + j);
            var dh = V<TV, TW, T>.Load(_dh, j);
            var dz = dh * (V<TV, TW, T>.Load(_hPrev, j) - n) * z * (one - z);
            var dn = dh * (one - z) * (one - n) * (one + n);
            var dr = dn * V<TV, TW, T>.Load(_hn, j) * r * (one - r);
            dr.Store(_dx, j);
            dz.Store(_dx, _h + j);
            dn.Store(_dx, 2 * _h + j);
            dr.Store(_dhg, j);
            dz.Store(_dhg, _h + j);
            (dn * r).Store(_dhg, 2 * _h + j);
            (dh * z).Store(_dhPrev, j);
        }
    }
}

/// <summary>One lane position of a row kernel: the scalar definition and its vector form, written once for both widths, each reading and writing at lane j.</summary>
internal interface IRowOperator<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    void Invoke(int j);
    void Invoke<TV, TW>(int j) where TV : struct where TW : IWidth<TV, T>;
}

/// <summary>
/// The loop every row kernel runs through, as <see cref="ElementwiseLoops"/>: whole 512-bit vectors
/// (on <see cref="InstructionSet.Avx512"/>), then whole 256-bit vectors (Avx2 and above), then a
/// scalar tail; each lane is computed once.
/// </summary>
internal static class RowLoop
{
    public static void Run<T, TOp>(ref TOp op, int n, InstructionSet isa)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IRowOperator<T>, allows ref struct
    {
        int j = 0;
        if (isa == InstructionSet.Avx512)
            for (; j <= n - Vector512<T>.Count; j += Vector512<T>.Count) op.Invoke<Vector512<T>, W512<T>>(j);
        if (isa >= InstructionSet.Avx2)
            for (; j <= n - Vector256<T>.Count; j += Vector256<T>.Count) op.Invoke<Vector256<T>, W256<T>>(j);
        for (; j < n; j++) op.Invoke(j);
    }
}

/// <summary>σ and tanh for the gate kernels, scalar and vector (see <see cref="RecurrentKernels"/> for the tanh form).</summary>
internal static class GateMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Sigmoid<T>(T x) where T : IFloatingPointIeee754<T> => VMath.Sigmoid(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V<TV, TW, T> Sigmoid<TV, TW, T>(V<TV, TW, T> x) where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T> =>
        VMath.Sigmoid(x);

    public static V<TV, TW, T> Tanh<TV, TW, T>(V<TV, TW, T> x) where TV : struct where TW : IWidth<TV, T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = V.Exp(V.Abs(x) * T.CreateTruncating(-2.0)) - V<TV, TW, T>.One;
        return V.CopySign(-m / (m + V<TV, TW, T>.Of(T.CreateTruncating(2.0))), x);
    }
}
