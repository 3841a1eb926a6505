namespace GradFlow.Optim;

/// <summary>
/// A learning-rate schedule with a closed form: the learning rate at step t is
/// <see cref="LearningRateAt"/>(t), a function of the optimiser's learning rate when the schedule
/// was created (<see cref="BaseLearningRate"/>).
/// </summary>
/// <remarks>
/// Construction sets the optimiser's learning rate to the value at t = 0; each <see cref="Step"/>
/// advances t by one and sets the value at the new t. Whether t counts epochs or optimiser steps is
/// the caller's choice: call <see cref="Step"/> once per epoch (after the epoch's optimiser steps,
/// as in PyTorch) or once after each <see cref="Optimizer.Step"/>, and give the step-based arguments
/// (step size, T_max, warm-up length) in the same unit. Schedules are pure functions of t, so a
/// resumed run only needs <see cref="LastStep"/>.
/// </remarks>
public abstract class LrScheduler
{
    /// <summary>Attaches to <paramref name="optimizer"/>, taking its current learning rate as the base.</summary>
    protected LrScheduler(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Optimizer = optimizer;
        BaseLearningRate = optimizer.LearningRate;
    }

    /// <summary>The optimiser whose learning rate this schedule sets.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The optimiser's learning rate when the schedule was created.</summary>
    public double BaseLearningRate { get; }

    /// <summary>t: the number of <see cref="Step"/> calls so far (settable to resume a run).</summary>
    public int LastStep
    {
        get;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            field = value;
            Optimizer.LearningRate = LastLearningRate;
        }
    }

    /// <summary>The learning rate at <see cref="LastStep"/> (the one the next optimiser step uses).</summary>
    public double LastLearningRate => LearningRateAt(LastStep);

    /// <summary>Advances t by one and sets the optimiser's learning rate to the value at the new t.</summary>
    public void Step() => LastStep++;

    /// <summary>The learning rate at step <paramref name="t"/> ≥ 0 (the closed form).</summary>
    public abstract double LearningRateAt(int t);

    /// <summary>Sets the optimiser's learning rate to the value at t = 0; call at the end of a subclass constructor.</summary>
    protected void Start() => LastStep = 0;
}

/// <summary>
/// Multiplies the learning rate by γ every <c>stepSize</c> steps (PyTorch's <c>StepLR</c>):
/// <c>lr_t = lr₀ · γ^⌊t / stepSize⌋</c>.
/// </summary>
public sealed class StepLr : LrScheduler
{
    /// <exception cref="ArgumentException">when <paramref name="stepSize"/> &lt; 1 or γ is negative or not finite.</exception>
    public StepLr(Optimizer optimizer, int stepSize, double gamma = 0.1) : base(optimizer)
    {
        if (stepSize < 1) throw new ArgumentException($"StepLr: stepSize must be ≥ 1; got {stepSize}.", nameof(stepSize));
        if (!(gamma >= 0) || double.IsInfinity(gamma)) throw new ArgumentException($"StepLr: gamma must be a finite number ≥ 0; got {gamma}.", nameof(gamma));
        StepSize = stepSize;
        Gamma = gamma;
        Start();
    }

    /// <summary>Steps between decays.</summary>
    public int StepSize { get; }

    /// <summary>Multiplicative decay γ.</summary>
    public double Gamma { get; }

    /// <inheritdoc />
    public override double LearningRateAt(int t) => BaseLearningRate * Math.Pow(Gamma, t / StepSize);
}

/// <summary>
/// Cosine annealing without restarts (Loshchilov &amp; Hutter, 2017), in PyTorch's closed form
/// (<c>CosineAnnealingLR</c>):
/// <c>lr_t = η_min + (lr₀ − η_min) · (1 + cos(π·t / T_max)) / 2</c>.
/// </summary>
/// <remarks>
/// Reaches η_min at t = T_max; beyond it the closed form rises again along the cosine (period
/// 2·T_max), as PyTorch's closed form does. Stop stepping at T_max to stay at η_min.
/// </remarks>
public sealed class CosineAnnealingLr : LrScheduler
{
    /// <exception cref="ArgumentException">when <paramref name="tMax"/> &lt; 1 or η_min is negative or not finite.</exception>
    public CosineAnnealingLr(Optimizer optimizer, int tMax, double etaMin = 0) : base(optimizer)
    {
        if (tMax < 1) throw new ArgumentException($"CosineAnnealingLr: tMax must be ≥ 1; got {tMax}.", nameof(tMax));
        if (!(etaMin >= 0) || double.IsInfinity(etaMin)) throw new ArgumentException($"CosineAnnealingLr: etaMin must be a finite number ≥ 0; got {etaMin}.", nameof(etaMin));
        TMax = tMax;
        EtaMin = etaMin;
        Start();
    }

    /// <summary>Half-period T_max, in steps.</summary>
    public int TMax { get; }

    /// <summary>Minimum learning rate η_min.</summary>
    public double EtaMin { get; }

    /// <inheritdoc />
    public override double LearningRateAt(int t) => EtaMin + (BaseLearningRate - EtaMin) * (1 + Math.Cos(Math.PI * t / TMax)) / 2;
}

/// <summary>
/// Linear decay to 0 over <c>T</c> steps, then 0 (PyTorch's <c>LinearLR</c> with start factor 1, end factor 0 and
/// <c>total_iters</c> T; after a warm-up, Hugging Face's <c>get_linear_schedule_with_warmup</c>):
/// <c>lr_t = lr₀ · max(0, 1 − t / T)</c>.
/// </summary>
public sealed class LinearDecayLr : LrScheduler
{
    /// <exception cref="ArgumentException">when <paramref name="steps"/> &lt; 1.</exception>
    public LinearDecayLr(Optimizer optimizer, int steps) : base(optimizer)
    {
        if (steps < 1) throw new ArgumentException($"LinearDecayLr: steps must be ≥ 1; got {steps}.", nameof(steps));
        Steps = steps;
        Start();
    }

    /// <summary>T: the step at which the rate reaches 0.</summary>
    public int Steps { get; }

    /// <inheritdoc />
    public override double LearningRateAt(int t) => BaseLearningRate * Math.Max(0, 1 - (double)t / Steps);
}

/// <summary>
/// Linear warm-up, optionally followed by another schedule: for t &lt; W,
/// <c>lr_t = lr₀ · (f₀ + (1 − f₀) · t / W)</c> (PyTorch's <c>LinearLR</c> with end factor 1); from
/// t = W on, <c>lr_t = then.LearningRateAt(t − W)</c>, or lr₀ when there is no <c>then</c> schedule
/// (PyTorch's <c>SequentialLR</c> of the two).
/// </summary>
/// <example>
/// Warm-up for 500 steps, then cosine over the remaining 9,500; only the outer schedule is stepped:
/// <code>
/// var cosine = new CosineAnnealingLr(opt, tMax: 9500);
/// var schedule = new LinearWarmup(opt, warmupSteps: 500, startFactor: 0.01, then: cosine);
/// </code>
/// </example>
public sealed class LinearWarmup : LrScheduler
{
    /// <param name="optimizer">The optimiser; its learning rate (or <paramref name="then"/>'s base) is lr₀.</param>
    /// <param name="warmupSteps">W ≥ 1.</param>
    /// <param name="startFactor">f₀ in (0, 1]: the fraction of lr₀ at t = 0 (PyTorch's default 1/3).</param>
    /// <param name="then">The schedule that takes over at t = W (attached to the same optimiser and not stepped itself), or null.</param>
    /// <exception cref="ArgumentException">for W &lt; 1, f₀ outside (0, 1], or a <paramref name="then"/> on another optimiser.</exception>
    public LinearWarmup(Optimizer optimizer, int warmupSteps, double startFactor = 1.0 / 3, LrScheduler? then = null) : base(optimizer)
    {
        if (warmupSteps < 1) throw new ArgumentException($"LinearWarmup: warmupSteps must be ≥ 1; got {warmupSteps}.", nameof(warmupSteps));
        if (!(startFactor > 0 && startFactor <= 1)) throw new ArgumentException($"LinearWarmup: startFactor must be in (0, 1]; got {startFactor}.", nameof(startFactor));
        if (then is not null && !ReferenceEquals(then.Optimizer, optimizer))
            throw new ArgumentException("LinearWarmup: the 'then' schedule is attached to another optimiser.", nameof(then));
        WarmupSteps = warmupSteps;
        StartFactor = startFactor;
        Then = then;
        Start();
    }

    /// <summary>Warm-up length W.</summary>
    public int WarmupSteps { get; }

    /// <summary>Starting fraction f₀ of the base learning rate.</summary>
    public double StartFactor { get; }

    /// <summary>The schedule after the warm-up, or null (constant).</summary>
    public LrScheduler? Then { get; }

    /// <summary>lr₀: the following schedule's base, or the optimiser's rate at construction.</summary>
    private double Target => Then?.BaseLearningRate ?? BaseLearningRate;

    /// <inheritdoc />
    public override double LearningRateAt(int t) =>
        t < WarmupSteps ? Target * (StartFactor + (1 - StartFactor) * t / WarmupSteps)
        : Then?.LearningRateAt(t - WarmupSteps) ?? Target;
}
