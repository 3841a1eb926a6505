namespace GradFlow.Optim;

/// <summary>Whether a lower or a higher metric is better.</summary>
public enum PlateauMode
{
    /// <summary>Lower is better (a loss).</summary>
    Min,

    /// <summary>Higher is better (an accuracy).</summary>
    Max,
}

/// <summary>How <see cref="ReduceLrOnPlateau.Threshold"/> measures a significant improvement.</summary>
public enum ThresholdMode
{
    /// <summary>Relative: better than best·(1 ∓ threshold).</summary>
    Rel,

    /// <summary>Absolute: better than best ∓ threshold.</summary>
    Abs,
}

/// <summary>
/// Reduces the learning rate by a factor when a metric has stopped improving (PyTorch's
/// <c>ReduceLROnPlateau</c>).
/// </summary>
/// <remarks>
/// Call <see cref="Step(double)"/> once per evaluation with the metric. In mode min with relative
/// threshold, a metric m improves on the best so far when m &lt; best·(1 − threshold) (max:
/// m &gt; best·(1 + threshold); absolute: best ∓ threshold). Per call:
/// <code>
/// if improves(m):  best ← m;  bad ← 0   else  bad ← bad + 1
/// if cooldown_counter &gt; 0:  cooldown_counter ← cooldown_counter − 1;  bad ← 0
/// if bad &gt; patience:  lr ← max(lr·factor, min_lr) (only if that lowers lr by more than 1e-8);
///                      cooldown_counter ← cooldown;  bad ← 0
/// </code>
/// A NaN metric never improves. Defaults as PyTorch: min, factor 0.1, patience 10, threshold 1e-4
/// relative, cooldown 0, min_lr 0.
/// </remarks>
public sealed class ReduceLrOnPlateau
{
    private const double MinChange = 1e-8;

    /// <exception cref="ArgumentException">for factor outside [0, 1), negative patience, threshold, cooldown or min_lr.</exception>
    public ReduceLrOnPlateau(Optimizer optimizer, PlateauMode mode = PlateauMode.Min, double factor = 0.1, int patience = 10,
        double threshold = 1e-4, ThresholdMode thresholdMode = ThresholdMode.Rel, int cooldown = 0, double minLr = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!(factor >= 0 && factor < 1)) throw new ArgumentException($"ReduceLrOnPlateau: factor must be in [0, 1); got {factor}.", nameof(factor));
        if (patience < 0) throw new ArgumentException($"ReduceLrOnPlateau: patience must be ≥ 0; got {patience}.", nameof(patience));
        if (!(threshold >= 0)) throw new ArgumentException($"ReduceLrOnPlateau: threshold must be ≥ 0; got {threshold}.", nameof(threshold));
        if (cooldown < 0) throw new ArgumentException($"ReduceLrOnPlateau: cooldown must be ≥ 0; got {cooldown}.", nameof(cooldown));
        if (!(minLr >= 0)) throw new ArgumentException($"ReduceLrOnPlateau: minLr must be ≥ 0; got {minLr}.", nameof(minLr));
        Optimizer = optimizer;
        Mode = mode;
        Factor = factor;
        Patience = patience;
        Threshold = threshold;
        ThresholdMode = thresholdMode;
        Cooldown = cooldown;
        MinLr = minLr;
        Best = mode == PlateauMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
    }

    /// <summary>The optimiser whose learning rate is reduced.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>Whether lower or higher metrics are better.</summary>
    public PlateauMode Mode { get; }

    /// <summary>Multiplier applied to the learning rate at a reduction.</summary>
    public double Factor { get; }

    /// <summary>Calls without improvement tolerated before reducing.</summary>
    public int Patience { get; }

    /// <summary>Minimum significant improvement (see <see cref="ThresholdMode"/>).</summary>
    public double Threshold { get; }

    /// <summary>Relative or absolute threshold.</summary>
    public ThresholdMode ThresholdMode { get; }

    /// <summary>Calls after a reduction during which bad calls are not counted.</summary>
    public int Cooldown { get; }

    /// <summary>Lower bound of the learning rate.</summary>
    public double MinLr { get; }

    /// <summary>The best metric seen so far.</summary>
    public double Best { get; private set; }

    /// <summary>Consecutive calls without significant improvement.</summary>
    public int BadSteps { get; private set; }

    /// <summary>Remaining cooldown calls.</summary>
    public int CooldownCounter { get; private set; }

    /// <summary>The optimiser's current learning rate.</summary>
    public double LastLearningRate => Optimizer.LearningRate;

    /// <summary>Records <paramref name="metric"/> and reduces the learning rate if it has plateaued.</summary>
    public void Step(double metric)
    {
        if (IsBetter(metric))
        {
            Best = metric;
            BadSteps = 0;
        }
        else BadSteps++;
        if (CooldownCounter > 0)
        {
            CooldownCounter--;
            BadSteps = 0;
        }
        if (BadSteps > Patience)
        {
            double old = Optimizer.LearningRate;
            double reduced = Math.Max(old * Factor, MinLr);
            if (old - reduced > MinChange) Optimizer.LearningRate = reduced;
            CooldownCounter = Cooldown;
            BadSteps = 0;
        }
    }

    private bool IsBetter(double m) => (Mode, ThresholdMode) switch
    {
        (PlateauMode.Min, ThresholdMode.Rel) => m < Best * (1 - Threshold),
        (PlateauMode.Min, ThresholdMode.Abs) => m < Best - Threshold,
        (PlateauMode.Max, ThresholdMode.Rel) => m > Best * (1 + Threshold),
        _ => m > Best + Threshold,
    };
}
