using GradFlow.Optim;

namespace GradFlow.Tests.Optim;

/// <summary>
/// Each optimiser against its published update rule, written here independently as plain double
/// loops, for three steps on float64 and float32 parameters.
/// </summary>
public class OptimizerReferenceTests
{
    // ---------------------------------------------------------------- references

    private static double[][] SgdReference(double[] w0, double[][] grads, double lr, double momentum, double dampening, double wd, bool nesterov)
    {
        var w = (double[])w0.Clone();
        var buf = new double[w.Length];
        var result = new List<double[]>();
        for (int t = 1; t <= grads.Length; t++)
        {
            for (int i = 0; i < w.Length; i++)
            {
                double g = grads[t - 1][i] + wd * w[i];
                if (momentum != 0)
                {
                    buf[i] = t == 1 ? g : momentum * buf[i] + (1 - dampening) * g;
                    g = nesterov ? g + momentum * buf[i] : buf[i];
                }
                w[i] -= lr * g;
            }
            result.Add((double[])w.Clone());
        }
        return result.ToArray();
    }

    private static double[][] AdamReference(double[] w0, double[][] grads, double lr, double b1, double b2, double eps, double wd, bool amsgrad, bool decoupled)
    {
        var w = (double[])w0.Clone();
        var m = new double[w.Length];
        var v = new double[w.Length];
        var vMax = new double[w.Length];
        var result = new List<double[]>();
        for (int t = 1; t <= grads.Length; t++)
        {
            for (int i = 0; i < w.Length; i++)
            {
                double g = grads[t - 1][i];
                if (decoupled) w[i] -= lr * wd * w[i];
                else g += wd * w[i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                vMax[i] = Math.Max(vMax[i], v[i]);
                double mHat = m[i] / (1 - Math.Pow(b1, t));
                double vHat = (amsgrad ? vMax[i] : v[i]) / (1 - Math.Pow(b2, t));
                w[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
            }
            result.Add((double[])w.Clone());
        }
        return result.ToArray();
    }

    private static double[][] RmsPropReference(double[] w0, double[][] grads, double lr, double alpha, double eps, double wd, double momentum, bool centered)
    {
        var w = (double[])w0.Clone();
        var sq = new double[w.Length];
        var gAvg = new double[w.Length];
        var buf = new double[w.Length];
        var result = new List<double[]>();
        foreach (var grad in grads)
        {
            for (int i = 0; i < w.Length; i++)
            {
                double g = grad[i] + wd * w[i];
                sq[i] = alpha * sq[i] + (1 - alpha) * g * g;
                double var = sq[i];
                if (centered)
                {
                    gAvg[i] = alpha * gAvg[i] + (1 - alpha) * g;
                    var -= gAvg[i] * gAvg[i];
                }
                double step = g / (Math.Sqrt(var) + eps);
                if (momentum > 0)
                {
                    buf[i] = momentum * buf[i] + step;
                    step = buf[i];
                }
                w[i] -= lr * step;
            }
            result.Add((double[])w.Clone());
        }
        return result.ToArray();
    }

    private static double[][] AdagradReference(double[] w0, double[][] grads, double lr, double lrDecay, double wd, double initial, double eps)
    {
        var w = (double[])w0.Clone();
        var sum = Enumerable.Repeat(initial, w.Length).ToArray();
        var result = new List<double[]>();
        for (int t = 1; t <= grads.Length; t++)
        {
            double clr = lr / (1 + (t - 1) * lrDecay);
            for (int i = 0; i < w.Length; i++)
            {
                double g = grads[t - 1][i] + wd * w[i];
                sum[i] += g * g;
                w[i] -= clr * g / (Math.Sqrt(sum[i]) + eps);
            }
            result.Add((double[])w.Clone());
        }
        return result.ToArray();
    }

    // ---------------------------------------------------------------- SGD

    [Fact]
    public void Sgd_Plain_MatchesReference() =>
        OptimTesting.Check(p => new Sgd(p, learningRate: 0.1), (w, g) => SgdReference(w, g, 0.1, 0, 0, 0, false));

    [Fact]
    public void Sgd_DefaultLearningRate_IsPyTorchs() =>
        OptimTesting.Check(p => new Sgd(p), (w, g) => SgdReference(w, g, 1e-3, 0, 0, 0, false));

    [Fact]
    public void Sgd_Momentum_MatchesReference() =>
        OptimTesting.Check(p => new Sgd(p, learningRate: 0.1, momentum: 0.9), (w, g) => SgdReference(w, g, 0.1, 0.9, 0, 0, false));

    /// <summary>With dampening the first buffer (= g, undampened) differs from a zero-initialised one, so this pins PyTorch's first step.</summary>
    [Fact]
    public void Sgd_MomentumDampeningWeightDecay_FirstBufferIsUndampenedGradient() =>
        OptimTesting.Check(p => new Sgd(p, learningRate: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.2),
            (w, g) => SgdReference(w, g, 0.05, 0.8, 0.3, 0.2, false));

    [Fact]
    public void Sgd_Nesterov_MatchesReference() =>
        OptimTesting.Check(p => new Sgd(p, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true),
            (w, g) => SgdReference(w, g, 0.1, 0.9, 0, 0.01, true));

    // ---------------------------------------------------------------- Adam, AdamW

    [Fact]
    public void Adam_Defaults_MatchReference() =>
        OptimTesting.Check(p => new Adam(p), (w, g) => AdamReference(w, g, 1e-3, 0.9, 0.999, 1e-8, 0, false, false));

    [Fact]
    public void Adam_WeightDecayAsL2_MatchesReference() =>
        OptimTesting.Check(p => new Adam(p, learningRate: 0.1, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1),
            (w, g) => AdamReference(w, g, 0.1, 0.8, 0.95, 1e-6, 0.1, false, false));

    [Fact]
    public void Adam_Amsgrad_MatchesReference() =>
        OptimTesting.Check(p => new Adam(p, learningRate: 0.1, beta2: 0.9, amsgrad: true),
            (w, g) => AdamReference(w, g, 0.1, 0.9, 0.9, 1e-8, 0, true, false));

    [Fact]
    public void Adam_AmsgradWithDecreasingSecondMoment_DiffersFromAdam()
    {
        // The reference cases must tell AMSGrad from Adam, or the amsgrad test could pass with the flag ignored.
        var w = OptimTesting.W0;
        var g = OptimTesting.Grads;
        var plain = AdamReference(w, g, 0.1, 0.9, 0.9, 1e-8, 0, false, false);
        var ams = AdamReference(w, g, 0.1, 0.9, 0.9, 1e-8, 0, true, false);
        Assert.NotEqual(plain[2], ams[2]);
    }

    [Fact]
    public void AdamW_DefaultWeightDecay_IsDecoupledAndMatchesReference() =>
        OptimTesting.Check(p => new AdamW(p, learningRate: 0.1), (w, g) => AdamReference(w, g, 0.1, 0.9, 0.999, 1e-8, 0.01, false, true));

    [Fact]
    public void AdamW_AmsgradLargeDecay_MatchesReference() =>
        OptimTesting.Check(p => new AdamW(p, learningRate: 0.05, beta2: 0.9, weightDecay: 0.5, amsgrad: true),
            (w, g) => AdamReference(w, g, 0.05, 0.9, 0.9, 1e-8, 0.5, true, true));

    // ---------------------------------------------------------------- RMSprop

    [Fact]
    public void RmsProp_Defaults_MatchReference() =>
        OptimTesting.Check(p => new RmsProp(p), (w, g) => RmsPropReference(w, g, 1e-2, 0.99, 1e-8, 0, 0, false));

    [Fact]
    public void RmsProp_MomentumWeightDecay_MatchesReference() =>
        OptimTesting.Check(p => new RmsProp(p, learningRate: 0.01, alpha: 0.9, weightDecay: 0.1, momentum: 0.9),
            (w, g) => RmsPropReference(w, g, 0.01, 0.9, 1e-8, 0.1, 0.9, false));

    [Fact]
    public void RmsProp_CenteredWithMomentum_MatchesReference() =>
        OptimTesting.Check(p => new RmsProp(p, learningRate: 0.01, alpha: 0.9, eps: 1e-4, momentum: 0.5, centered: true),
            (w, g) => RmsPropReference(w, g, 0.01, 0.9, 1e-4, 0, 0.5, true));

    // ---------------------------------------------------------------- Adagrad

    [Fact]
    public void Adagrad_Defaults_MatchReference() =>
        OptimTesting.Check(p => new Adagrad(p), (w, g) => AdagradReference(w, g, 1e-2, 0, 0, 0, 1e-10));

    [Fact]
    public void Adagrad_LrDecayWeightDecayInitialAccumulator_MatchesReference() =>
        OptimTesting.Check(p => new Adagrad(p, learningRate: 0.5, lrDecay: 0.3, weightDecay: 0.1, initialAccumulatorValue: 0.2, eps: 1e-6),
            (w, g) => AdagradReference(w, g, 0.5, 0.3, 0.1, 0.2, 1e-6));
}
