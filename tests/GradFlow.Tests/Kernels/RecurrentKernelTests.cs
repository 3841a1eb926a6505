using GradFlow.Kernels;

namespace GradFlow.Tests.Kernels;

/// <summary>
/// The fused LSTM and GRU gate kernels against the cell equations written out here in double, for
/// hidden sizes 1..67 (every SIMD tail) and the large ones, with two rows, on every instruction-set
/// path; the backward kernels also against central differences of the forward kernels.
/// </summary>
public class RecurrentKernelTests
{
    public static TheoryData<int> Hidden => KernelLengths.All;

    private const int Batch = 2;

    private static double Sig(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>Values in about [−3, 3] with a few saturating ones (±12, ±40) mixed in.</summary>
    private static double[] Values(int count, int seed)
    {
        var v = KernelLengths.Values(count, seed).Select(x => (double)x).ToArray();
        double[] extremes = [12, -12, 40, -40];
        for (int i = 0; i < count; i += 7) v[i] = extremes[(i / 7) % extremes.Length];
        return v;
    }

    private static float[] F(double[] v) => v.Select(x => (float)x).ToArray();

    private static bool Close(double got, double want, double tol) => Math.Abs(got - want) <= tol * (1 + Math.Abs(want));

    // ------------------------------------------------------------------ references

    private static (double[] Gates, double[] C, double[] TanhC, double[] H) LstmRef(int h, double[] pre, double[] cPrev)
    {
        int rows = cPrev.Length / h;
        var gates = new double[pre.Length];
        var c = new double[cPrev.Length];
        var tc = new double[cPrev.Length];
        var hy = new double[cPrev.Length];
        for (int b = 0; b < rows; b++)
            for (int j = 0; j < h; j++)
            {
                int g = b * 4 * h;
                double i = Sig(pre[g + j]), f = Sig(pre[g + h + j]), gg = Math.Tanh(pre[g + 2 * h + j]), o = Sig(pre[g + 3 * h + j]);
                (gates[g + j], gates[g + h + j], gates[g + 2 * h + j], gates[g + 3 * h + j]) = (i, f, gg, o);
                c[b * h + j] = f * cPrev[b * h + j] + i * gg;
                tc[b * h + j] = Math.Tanh(c[b * h + j]);
                hy[b * h + j] = o * tc[b * h + j];
            }
        return (gates, c, tc, hy);
    }

    private static (double[] Gates, double[] Hn, double[] H) GruRef(int h, double[] xg, double[] hg, double[] hPrev)
    {
        int rows = hPrev.Length / h;
        var gates = new double[xg.Length];
        var hn = new double[hPrev.Length];
        var hy = new double[hPrev.Length];
        for (int b = 0; b < rows; b++)
            for (int j = 0; j < h; j++)
            {
                int g = b * 3 * h;
                double r = Sig(xg[g + j] + hg[g + j]), z = Sig(xg[g + h + j] + hg[g + h + j]);
                double n = Math.Tanh(xg[g + 2 * h + j] + r * hg[g + 2 * h + j]);
                (gates[g + j], gates[g + h + j], gates[g + 2 * h + j]) = (r, z, n);
                hn[b * h + j] = hg[g + 2 * h + j];
                hy[b * h + j] = (1 - z) * n + z * hPrev[b * h + j];
            }
        return (gates, hn, hy);
    }

    private static void AllClose(string what, double[] want, double[] got, double tol)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Close(got[i], want[i], tol), $"{what}[{i}]: {got[i]:R}, expected {want[i]:R}");
    }

    private static double[] D(float[] v) => v.Select(x => (double)x).ToArray();

    // ------------------------------------------------------------------ LSTM

    [Theory]
    [MemberData(nameof(Hidden))]
    public void LstmForward_MatchesCellEquations_OnEveryPath(int h)
    {
        var pre = Values(Batch * 4 * h, h + 1);
        var cPrev = Values(Batch * h, h + 2);
        var want = LstmRef(h, pre, cPrev);
        foreach (var isa in KernelIsa.All)
        {
            var (gates, c, tc, hy) = (new double[pre.Length], new double[cPrev.Length], new double[cPrev.Length], new double[cPrev.Length]);
            RecurrentKernels.LstmForward<double>(Batch, h, pre, cPrev, gates, c, tc, hy, isa);
            string p = $"lstm double {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " gates", want.Gates, gates, 1e-14);
            AllClose(p + " c", want.C, c, 1e-14);
            AllClose(p + " tanh c", want.TanhC, tc, 1e-14);
            AllClose(p + " h", want.H, hy, 1e-14);

            var (gf, cf, tcf, hf) = (new float[pre.Length], new float[cPrev.Length], new float[cPrev.Length], new float[cPrev.Length]);
            RecurrentKernels.LstmForward<float>(Batch, h, F(pre), F(cPrev), gf, cf, tcf, hf, isa);
            var wantF = LstmRef(h, D(F(pre)), D(F(cPrev)));
            p = $"lstm float {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " gates", wantF.Gates, D(gf), 1e-6);
            AllClose(p + " c", wantF.C, D(cf), 1e-6);
            AllClose(p + " h", wantF.H, D(hf), 1e-6);
        }
    }

    [Theory]
    [MemberData(nameof(Hidden))]
    public void LstmBackward_MatchesDerivedFormulas_OnEveryPath(int h)
    {
        var pre = Values(Batch * 4 * h, h + 3);
        var cPrev = Values(Batch * h, h + 4);
        var dh = Values(Batch * h, h + 5);
        var dc = Values(Batch * h, h + 6);
        var fwd = LstmRef(h, pre, cPrev);
        var wantPre = new double[pre.Length];
        var wantCPrev = new double[cPrev.Length];
        for (int b = 0; b < Batch; b++)
            for (int j = 0; j < h; j++)
            {
                int g = b * 4 * h, s = b * h + j;
                double i = fwd.Gates[g + j], f = fwd.Gates[g + h + j], gg = fwd.Gates[g + 2 * h + j], o = fwd.Gates[g + 3 * h + j];
                double tc = fwd.TanhC[s];
                double dct = dc[s] + dh[s] * o * (1 - tc * tc);
                wantPre[g + j] = dct * gg * i * (1 - i);
                wantPre[g + h + j] = dct * cPrev[s] * f * (1 - f);
                wantPre[g + 2 * h + j] = dct * i * (1 - gg * gg);
                wantPre[g + 3 * h + j] = dh[s] * tc * o * (1 - o);
                wantCPrev[s] = dct * f;
            }
        foreach (var isa in KernelIsa.All)
        {
            var dPre = new double[pre.Length];
            var dcPrev = (double[])dc.Clone(); // in place: dcPrev is dc
            RecurrentKernels.LstmBackward<double>(Batch, h, fwd.Gates, cPrev, fwd.TanhC, dh, dcPrev, dPre, dcPrev, isa);
            AllClose($"lstm backward double {KernelIsa.Name(isa)} H={h} dPre", wantPre, dPre, 1e-13);
            AllClose($"lstm backward double {KernelIsa.Name(isa)} H={h} dcPrev", wantCPrev, dcPrev, 1e-13);

            var dPreF = new float[pre.Length];
            var dcPrevF = new float[cPrev.Length];
            RecurrentKernels.LstmBackward<float>(Batch, h, F(fwd.Gates), F(cPrev), F(fwd.TanhC), F(dh), F(dc), dPreF, dcPrevF, isa);
            AllClose($"lstm backward float {KernelIsa.Name(isa)} H={h} dPre", wantPre, D(dPreF), 2e-5);
            AllClose($"lstm backward float {KernelIsa.Name(isa)} H={h} dcPrev", wantCPrev, D(dcPrevF), 2e-5);
        }
    }

    [Fact]
    public void LstmBackward_MatchesCentralDifferencesOfForward()
    {
        const int h = 13;
        const double step = 1e-6;
        var pre = KernelLengths.Values(Batch * 4 * h, 91).Select(x => (double)x).ToArray();
        var cPrev = KernelLengths.Values(Batch * h, 92).Select(x => (double)x).ToArray();
        var dh = KernelLengths.Values(Batch * h, 93).Select(x => (double)x).ToArray();
        var dc = KernelLengths.Values(Batch * h, 94).Select(x => (double)x).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            // L = Σ dh·h + Σ dc·c as a function of the pre-activations and c_prev.
            double Loss(double[] p, double[] cp)
            {
                var (g, c, tc, hy) = (new double[p.Length], new double[cp.Length], new double[cp.Length], new double[cp.Length]);
                RecurrentKernels.LstmForward<double>(Batch, h, p, cp, g, c, tc, hy, isa);
                return Enumerable.Range(0, cp.Length).Sum(i => dh[i] * hy[i] + dc[i] * c[i]);
            }
            var (gates, _, tanhC, _) = LstmRef(h, pre, cPrev);
            var dPre = new double[pre.Length];
            var dcPrev = new double[cPrev.Length];
            RecurrentKernels.LstmBackward<double>(Batch, h, gates, cPrev, tanhC, dh, dc, dPre, dcPrev, isa);
            for (int k = 0; k < pre.Length; k++)
            {
                var (plus, minus) = ((double[])pre.Clone(), (double[])pre.Clone());
                plus[k] += step;
                minus[k] -= step;
                double fd = (Loss(plus, cPrev) - Loss(minus, cPrev)) / (2 * step);
                Assert.True(Math.Abs(dPre[k] - fd) <= 1e-7 * (1 + Math.Abs(fd)), $"lstm {KernelIsa.Name(isa)} dPre[{k}] {dPre[k]:R} vs {fd:R}");
            }
            for (int k = 0; k < cPrev.Length; k++)
            {
                var (plus, minus) = ((double[])cPrev.Clone(), (double[])cPrev.Clone());
                plus[k] += step;
                minus[k] -= step;
                double fd = (Loss(pre, plus) - Loss(pre, minus)) / (2 * step);
                Assert.True(Math.Abs(dcPrev[k] - fd) <= 1e-7 * (1 + Math.Abs(fd)), $"lstm {KernelIsa.Name(isa)} dcPrev[{k}] {dcPrev[k]:R} vs {fd:R}");
            }
        }
    }

    // ------------------------------------------------------------------ GRU

    [Theory]
    [MemberData(nameof(Hidden))]
    public void GruForward_MatchesCellEquations_OnEveryPath(int h)
    {
        var xg = Values(Batch * 3 * h, h + 11);
        var hg = Values(Batch * 3 * h, h + 12);
        var hPrev = Values(Batch * h, h + 13);
        var want = GruRef(h, xg, hg, hPrev);
        var wantF = GruRef(h, D(F(xg)), D(F(hg)), D(F(hPrev)));
        foreach (var isa in KernelIsa.All)
        {
            var (gates, hn, hy) = (new double[xg.Length], new double[hPrev.Length], new double[hPrev.Length]);
            RecurrentKernels.GruForward<double>(Batch, h, xg, hg, hPrev, gates, hn, hy, isa);
            string p = $"gru double {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " gates", want.Gates, gates, 1e-14);
            AllClose(p + " hn", want.Hn, hn, 0);
            AllClose(p + " h", want.H, hy, 1e-14);

            var (gf, hnf, hf) = (new float[xg.Length], new float[hPrev.Length], new float[hPrev.Length]);
            RecurrentKernels.GruForward<float>(Batch, h, F(xg), F(hg), F(hPrev), gf, hnf, hf, isa);
            p = $"gru float {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " gates", wantF.Gates, D(gf), 1e-6);
            AllClose(p + " h", wantF.H, D(hf), 1e-6);
        }
    }

    [Theory]
    [MemberData(nameof(Hidden))]
    public void GruBackward_MatchesDerivedFormulas_OnEveryPath(int h)
    {
        var xg = Values(Batch * 3 * h, h + 21);
        var hg = Values(Batch * 3 * h, h + 22);
        var hPrev = Values(Batch * h, h + 23);
        var dh = Values(Batch * h, h + 24);
        var fwd = GruRef(h, xg, hg, hPrev);
        var (wantX, wantH, wantPrev) = (new double[xg.Length], new double[xg.Length], new double[hPrev.Length]);
        for (int b = 0; b < Batch; b++)
            for (int j = 0; j < h; j++)
            {
                int g = b * 3 * h, s = b * h + j;
                double r = fwd.Gates[g + j], z = fwd.Gates[g + h + j], n = fwd.Gates[g + 2 * h + j];
                double dz = dh[s] * (hPrev[s] - n) * z * (1 - z);
                double dn = dh[s] * (1 - z) * (1 - n * n);
                double dr = dn * fwd.Hn[s] * r * (1 - r);
                (wantX[g + j], wantX[g + h + j], wantX[g + 2 * h + j]) = (dr, dz, dn);
                (wantH[g + j], wantH[g + h + j], wantH[g + 2 * h + j]) = (dr, dz, dn * r);
                wantPrev[s] = dh[s] * z;
            }
        foreach (var isa in KernelIsa.All)
        {
            var (dx, dhg) = (new double[xg.Length], new double[xg.Length]);
            var dhPrev = (double[])dh.Clone(); // in place: dhPrev is dh
            RecurrentKernels.GruBackward<double>(Batch, h, fwd.Gates, fwd.Hn, hPrev, dhPrev, dx, dhg, dhPrev, isa);
            string p = $"gru backward double {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " dx", wantX, dx, 1e-13);
            AllClose(p + " dh gates", wantH, dhg, 1e-13);
            AllClose(p + " dh prev", wantPrev, dhPrev, 1e-13);

            var (dxf, dhgf, dpf) = (new float[xg.Length], new float[xg.Length], new float[hPrev.Length]);
            RecurrentKernels.GruBackward<float>(Batch, h, F(fwd.Gates), F(fwd.Hn), F(hPrev), F(dh), dxf, dhgf, dpf, isa);
            p = $"gru backward float {KernelIsa.Name(isa)} H={h}";
            AllClose(p + " dx", wantX, D(dxf), 2e-5);
            AllClose(p + " dh gates", wantH, D(dhgf), 2e-5);
            AllClose(p + " dh prev", wantPrev, D(dpf), 2e-5);
        }
    }

    [Fact]
    public void GruBackward_MatchesCentralDifferencesOfForward()
    {
        const int h = 11;
        const double step = 1e-6;
        var xg = KernelLengths.Values(Batch * 3 * h, 81).Select(x => (double)x).ToArray();
        var hg = KernelLengths.Values(Batch * 3 * h, 82).Select(x => (double)x).ToArray();
        var hPrev = KernelLengths.Values(Batch * h, 83).Select(x => (double)x).ToArray();
        var dh = KernelLengths.Values(Batch * h, 84).Select(x => (double)x).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            double Loss(double[] x, double[] hgv, double[] hp)
            {
                var (g, hn, hy) = (new double[x.Length], new double[hp.Length], new double[hp.Length]);
                RecurrentKernels.GruForward<double>(Batch, h, x, hgv, hp, g, hn, hy, isa);
                return Enumerable.Range(0, hp.Length).Sum(i => dh[i] * hy[i]);
            }
            var fwd = GruRef(h, xg, hg, hPrev);
            var (dx, dhg, dhPrev) = (new double[xg.Length], new double[xg.Length], new double[hPrev.Length]);
            RecurrentKernels.GruBackward<double>(Batch, h, fwd.Gates, fwd.Hn, hPrev, dh, dx, dhg, dhPrev, isa);
            double Fd(double[] v, int k, Func<double[], double> loss)
            {
                var (plus, minus) = ((double[])v.Clone(), (double[])v.Clone());
                plus[k] += step;
                minus[k] -= step;
                return (loss(plus) - loss(minus)) / (2 * step);
            }
            for (int k = 0; k < xg.Length; k++)
            {
                double fx = Fd(xg, k, v => Loss(v, hg, hPrev)), fh = Fd(hg, k, v => Loss(xg, v, hPrev));
                Assert.True(Math.Abs(dx[k] - fx) <= 1e-7 * (1 + Math.Abs(fx)), $"gru {KernelIsa.Name(isa)} dx[{k}] {dx[k]:R} vs {fx:R}");
                Assert.True(Math.Abs(dhg[k] - fh) <= 1e-7 * (1 + Math.Abs(fh)), $"gru {KernelIsa.Name(isa)} dhGates[{k}] {dhg[k]:R} vs {fh:R}");
            }
            for (int k = 0; k < hPrev.Length; k++)
            {
                double fp = Fd(hPrev, k, v => Loss(xg, hg, v)); // h_prev only through z·h_prev here (h_gates held fixed)
                Assert.True(Math.Abs(dhPrev[k] - fp) <= 1e-7 * (1 + Math.Abs(fp)), $"gru {KernelIsa.Name(isa)} dhPrev[{k}] {dhPrev[k]:R} vs {fp:R}");
            }
        }
    }

    // ------------------------------------------------------------------ limits and errors

    [Fact]
    public void GateKernels_SaturatedInputs_GiveExactLimitsAndNoNaN()
    {
        // Large pre-activations: σ → 0/1 and tanh → ±1 exactly; the backward gives zeros, not NaN.
        const int h = 19;
        double[] pattern = [1000, -1000, 200, -200]; // e^200 overflows float: σ is exactly 0 or 1
        var pre = Enumerable.Range(0, 4 * h).Select(i => pattern[i % 4]).ToArray();
        var cPrev = Enumerable.Range(0, h).Select(i => (double)(i % 3 - 1)).ToArray();
        foreach (var isa in KernelIsa.All)
        {
            var (g, c, tc, hy) = (new float[4 * h], new float[h], new float[h], new float[h]);
            RecurrentKernels.LstmForward<float>(1, h, F(pre), F(cPrev), g, c, tc, hy, isa);
            for (int k = 0; k < 4 * h; k++)
            {
                double want = k / h == 2 ? Math.Sign(pre[k]) : pre[k] > 0 ? 1 : 0;
                Assert.True(g[k] == want, $"{KernelIsa.Name(isa)} gate {k} of {pre[k]}: {g[k]}");
            }
            var dPre = new float[4 * h];
            var dcPrev = new float[h];
            var ones = Enumerable.Repeat(1f, h).ToArray();
            RecurrentKernels.LstmBackward<float>(1, h, g, F(cPrev), tc, ones, ones, dPre, dcPrev, isa);
            Assert.All(dPre, v => Assert.True(float.IsFinite(v)));
            Assert.All(dPre, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void GateKernels_WrongSpanLength_ThrowNamingKernelAndSpan()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            RecurrentKernels.LstmForward<float>(2, 3, new float[23], new float[6], new float[24], new float[6], new float[6], new float[6]));
        Assert.Contains("lstm forward", e.Message);
        Assert.Contains("preGates has 23", e.Message);
        Assert.Contains("24", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            RecurrentKernels.GruBackward<double>(1, 4, new double[12], new double[4], new double[4], new double[4], new double[12], new double[11], new double[4]));
        Assert.Contains("gru backward", e.Message);
        Assert.Contains("dhGates has 11", e.Message);
    }
}
