namespace GradFlow.Tests.Recurrent;

/// <summary>The recurrences a reference run computes.</summary>
public enum ReferenceKind
{
    RnnTanh,
    RnnRelu,
    Lstm,
    Gru,
}

/// <summary>
/// One recurrent layer written out from the textbook equations in double, element by element, for
/// comparison with the library (independent of its kernels, GEMM and graph). Time-major: x [T, B, I].
/// </summary>
public static class RecurrentReference
{
    public static int Gates(ReferenceKind kind) => kind switch { ReferenceKind.Lstm => 4, ReferenceKind.Gru => 3, _ => 1 };

    private static double Sig(double v) => 1 / (1 + Math.Exp(-v));

    /// <summary>Runs one layer; returns every h_t [T·B·H] and the final h and c [B·H] (c null except for the LSTM).</summary>
    public static (double[] Output, double[] H, double[]? C) Layer(ReferenceKind kind, double[] x, int steps, int batch, int input, int hidden,
        double[] h0, double[]? c0, double[] wIh, double[] wHh, double[]? bIh, double[]? bHh)
    {
        int g = Gates(kind) * hidden;
        var h = (double[])h0.Clone();
        var c = c0 is null ? null : (double[])c0.Clone();
        var output = new double[steps * batch * hidden];
        for (int t = 0; t < steps; t++)
        {
            var hNew = new double[batch * hidden];
            var cNew = c is null ? null : new double[batch * hidden];
            for (int b = 0; b < batch; b++)
            {
                var xa = new double[g];
                var ha = new double[g];
                for (int k = 0; k < g; k++)
                {
                    double sx = bIh?[k] ?? 0, sh = bHh?[k] ?? 0;
                    for (int i = 0; i < input; i++) sx += wIh[k * input + i] * x[(t * batch + b) * input + i];
                    for (int j = 0; j < hidden; j++) sh += wHh[k * hidden + j] * h[b * hidden + j];
                    (xa[k], ha[k]) = (sx, sh);
                }
                for (int j = 0; j < hidden; j++)
                {
                    int s = b * hidden + j;
                    switch (kind)
                    {
                        case ReferenceKind.RnnTanh:
                            hNew[s] = Math.Tanh(xa[j] + ha[j]);
                            break;
                        case ReferenceKind.RnnRelu:
                            hNew[s] = Math.Max(0, xa[j] + ha[j]);
                            break;
                        case ReferenceKind.Lstm:
                            double ig = Sig(xa[j] + ha[j]), fg = Sig(xa[hidden + j] + ha[hidden + j]);
                            double gg = Math.Tanh(xa[2 * hidden + j] + ha[2 * hidden + j]), og = Sig(xa[3 * hidden + j] + ha[3 * hidden + j]);
                            cNew![s] = fg * c![s] + ig * gg;
                            hNew[s] = og * Math.Tanh(cNew[s]);
                            break;
                        case ReferenceKind.Gru:
                            double r = Sig(xa[j] + ha[j]), z = Sig(xa[hidden + j] + ha[hidden + j]);
                            double n = Math.Tanh(xa[2 * hidden + j] + r * ha[2 * hidden + j]);
                            hNew[s] = (1 - z) * n + z * h[s];
                            break;
                    }
                }
            }
            h = hNew;
            c = cNew ?? c;
            h.CopyTo(output, t * batch * hidden);
        }
        return (output, h, c);
    }

    /// <summary>[B, T, ·] ↔ [T, B, ·] for a flat array (the transpose is its own inverse with the sizes swapped).</summary>
    public static double[] SwapLeading(double[] v, int d0, int d1, int inner)
    {
        var r = new double[v.Length];
        for (int a = 0; a < d0; a++)
            for (int b = 0; b < d1; b++)
                Array.Copy(v, (a * d1 + b) * inner, r, (b * d0 + a) * inner, inner);
        return r;
    }
}
