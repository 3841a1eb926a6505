using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Optim;

/// <summary>What every optimiser shares: skipping, state dicts, convergence, no allocation, validation, update tracking.</summary>
public class OptimizerBehaviourTests
{
    /// <summary>Each optimiser in a non-default configuration, and the same type with defaults (to check that loading restores hyper-parameters).</summary>
    private static readonly Dictionary<string, (Func<IEnumerable<Parameter>, Optimizer> Configured, Func<IEnumerable<Parameter>, Optimizer> Defaults)> Optimizers = new()
    {
        ["SGD"] = (p => new Sgd(p, learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01), p => new Sgd(p)),
        ["SGD-Nesterov"] = (p => new Sgd(p, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true), p => new Sgd(p)),
        ["Adam"] = (p => new Adam(p, learningRate: 0.1, beta1: 0.8, beta2: 0.9, weightDecay: 0.1), p => new Adam(p)),
        ["Adam-AMSGrad"] = (p => new Adam(p, learningRate: 0.1, beta2: 0.9, amsgrad: true), p => new Adam(p)),
        ["AdamW"] = (p => new AdamW(p, learningRate: 0.1, weightDecay: 0.1, amsgrad: true), p => new AdamW(p)),
        ["RMSprop"] = (p => new RmsProp(p, learningRate: 0.01, alpha: 0.9, weightDecay: 0.1, momentum: 0.9, centered: true), p => new RmsProp(p)),
        ["Adagrad"] = (p => new Adagrad(p, learningRate: 0.1, lrDecay: 0.1, weightDecay: 0.1, initialAccumulatorValue: 0.1), p => new Adagrad(p)),
    };

    public static TheoryData<string> OptimizerNames => new(Optimizers.Keys);

    public static TheoryData<string, DType> OptimizerNamesAndDTypes()
    {
        var data = new TheoryData<string, DType>();
        foreach (var name in Optimizers.Keys)
            foreach (var dtype in OptimTesting.DTypes) data.Add(name, dtype);
        return data;
    }

    private static Tensor Random(DType dtype, ulong seed, params int[] shape) => Tensor.Normal(new Generator(seed), 0, 1, dtype, shape);

    private static Parameter[] TwoParameters(DType dtype, ulong seed) =>
        [new Parameter(Random(dtype, seed, 5)), new Parameter(Random(dtype, seed + 1, 2, 3))];

    private static void SetGradients(Parameter[] ps, ulong seed)
    {
        for (int i = 0; i < ps.Length; i++) ps[i].Grad = Random(ps[i].Data.DType, seed * 100 + (ulong)i, ps[i].Shape.ToArray());
    }

    [Theory]
    [MemberData(nameof(OptimizerNames))]
    public void Step_ParameterWithoutGradient_IsUntouchedAndHasNoState(string name)
    {
        var ps = TwoParameters(DType.Float64, 1);
        var before = ps[1].Data.ToDoubleArray();
        var opt = Optimizers[name].Configured(ps);
        for (int t = 0; t < 3; t++)
        {
            ps[0].Grad = Random(DType.Float64, (ulong)(10 + t), 5);
            ps[1].Grad = null;
            opt.Step();
        }
        Assert.Equal(before, ps[1].Data.ToDoubleArray());
        Assert.Equal(0, opt.StepCount(1));
        Assert.DoesNotContain(opt.StateDict(), kv => kv.Key.StartsWith("state.1.", StringComparison.Ordinal));
        Assert.NotEqual(0, opt.StepCount(0));
    }

    [Theory]
    [MemberData(nameof(OptimizerNamesAndDTypes))]
    public void LoadStateDict_RoundTrip_ContinuesBitForBit(string name, DType dtype)
    {
        var a = TwoParameters(dtype, 7);
        var optA = Optimizers[name].Configured(a);
        for (ulong t = 1; t <= 2; t++)
        {
            SetGradients(a, t);
            optA.Step();
        }
        var saved = optA.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);

        var b = TwoParameters(dtype, 99);
        using (GradMode.NoGrad())
            for (int i = 0; i < b.Length; i++) b[i].Data.CopyFrom(a[i].Data);
        var optB = Optimizers[name].Defaults(b);
        optB.LearningRate = 123;
        optB.LoadStateDict(saved);

        for (ulong t = 3; t <= 5; t++)
        {
            SetGradients(a, t);
            SetGradients(b, t);
            optA.Step();
            optB.Step();
        }
        for (int i = 0; i < a.Length; i++)
            Assert.Equal(a[i].Data.ToDoubleArray(), b[i].Data.ToDoubleArray());
        var stateA = optA.StateDict();
        var stateB = optB.StateDict();
        Assert.Equal(stateA.Select(kv => kv.Key), stateB.Select(kv => kv.Key));
        for (int i = 0; i < stateA.Count; i++)
            Assert.Equal(stateA[i].Value.ToDoubleArray(), stateB[i].Value.ToDoubleArray());
    }

    [Theory]
    [MemberData(nameof(OptimizerNamesAndDTypes))]
    public void Step_SameInputsTwice_SameBits(string name, DType dtype)
    {
        double[] RunOnce()
        {
            var ps = TwoParameters(dtype, 21);
            var opt = Optimizers[name].Configured(ps);
            for (ulong t = 1; t <= 4; t++)
            {
                SetGradients(ps, t);
                opt.Step();
            }
            return ps.SelectMany(p => p.Data.ToDoubleArray()).ToArray();
        }

        Assert.Equal(RunOnce(), RunOnce());
    }

    [Fact]
    public void StateDict_Adam_UsesPyTorchNames()
    {
        var ps = TwoParameters(DType.Float32, 3);
        var opt = new Adam(ps, amsgrad: true);
        SetGradients(ps, 1);
        ps[1].Grad = null;
        opt.Step();
        opt.Step();
        var state = opt.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(
            ["state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq", "state.0.step",
             "param_groups.0.lr", "param_groups.0.beta1", "param_groups.0.beta2", "param_groups.0.eps", "param_groups.0.weight_decay", "param_groups.0.amsgrad"],
            opt.StateDict().Select(kv => kv.Key));
        Assert.Equal(2.0, state["state.0.step"].Item());
        Assert.Equal(1.0, state["param_groups.0.amsgrad"].Item());
        Assert.Equal(DType.Float32, state["state.0.exp_avg"].DType);
    }

    [Fact]
    public void StateDict_IsASnapshot_NotChangedByLaterSteps()
    {
        var ps = TwoParameters(DType.Float64, 3);
        var opt = new Sgd(ps, learningRate: 0.1, momentum: 0.9);
        SetGradients(ps, 1);
        opt.Step();
        var buffer = opt.StateDict().Single(kv => kv.Key == "state.0.momentum_buffer").Value;
        var copy = buffer.ToDoubleArray();
        SetGradients(ps, 2);
        opt.Step();
        Assert.Equal(copy, buffer.ToDoubleArray());
    }

    [Fact]
    public void LoadStateDict_UnknownKeyOrWrongShape_ThrowsNamingTheKey()
    {
        var ps = TwoParameters(DType.Float64, 3);
        var opt = new Adam(ps);
        var good = opt.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);

        var unknown = new Dictionary<string, Tensor>(good) { ["state.0.momentum_buffer"] = Tensor.Zeros(DType.Float64, 5) };
        Assert.Contains("state.0.momentum_buffer", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(unknown)).Message);

        var wrongShape = new Dictionary<string, Tensor>(good) { ["state.1.exp_avg"] = Tensor.Zeros(DType.Float64, 5) };
        Assert.Contains("state.1.exp_avg", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(wrongShape)).Message);

        var missing = new Dictionary<string, Tensor>(good);
        missing.Remove("param_groups.0.beta2");
        Assert.Contains("beta2", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(missing)).Message);
    }

    /// <summary>
    /// f(w) = ½ Σ aᵢ (wᵢ − cᵢ)², curvatures 0.5..5, from w = 0. Each optimiser must bring f below 1e-6
    /// of its start. Adam, AdamW and RMSprop normalise the step, so they anneal the rate with a cosine schedule.
    /// </summary>
    [Theory]
    [MemberData(nameof(OptimizerNamesAndDTypes))]
    public void Step_QuadraticBowl_LossFallsBelowMillionthOfStart(string name, DType dtype)
    {
        const int n = 10, steps = 3000;
        var a = Enumerable.Range(0, n).Select(i => 0.5 + 4.5 * i / (n - 1)).ToArray();
        var c = Enumerable.Range(0, n).Select(i => Math.Sin(i + 1)).ToArray();
        var p = new Parameter(Tensor.Zeros(dtype, n));
        Optimizer opt = name switch
        {
            "SGD" => new Sgd([p], learningRate: 0.1, momentum: 0.9),
            "SGD-Nesterov" => new Sgd([p], learningRate: 0.1, momentum: 0.9, nesterov: true),
            "Adam" => new Adam([p], learningRate: 0.05),
            "Adam-AMSGrad" => new Adam([p], learningRate: 0.05, amsgrad: true),
            "AdamW" => new AdamW([p], learningRate: 0.05, weightDecay: 0),
            "RMSprop" => new RmsProp([p], learningRate: 0.01, momentum: 0.5, centered: true),
            "Adagrad" => new Adagrad([p], learningRate: 0.5),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        LrScheduler? schedule = opt is Sgd or Adagrad ? null : new CosineAnnealingLr(opt, tMax: steps);

        double Loss()
        {
            double f = 0;
            for (int i = 0; i < n; i++) f += 0.5 * a[i] * Math.Pow(p.Data.GetFlat(i) - c[i], 2);
            return f;
        }

        double start = Loss();
        for (int t = 0; t < steps; t++)
        {
            var g = new double[n];
            for (int i = 0; i < n; i++) g[i] = a[i] * (p.Data.GetFlat(i) - c[i]);
            p.Grad = OptimTesting.MakeTensor(dtype, g);
            opt.Step();
            schedule?.Step();
        }
        double end = Loss();
        Assert.True(end < 1e-6 * start, $"{name} {dtype}: loss {start:E3} -> {end:E3}.");
    }

    [Theory]
    [InlineData("SGD", false)]
    [InlineData("SGD-Nesterov", true)]
    [InlineData("Adam", false)]
    [InlineData("Adam-AMSGrad", true)]
    [InlineData("AdamW", false)]
    [InlineData("RMSprop", false)]
    [InlineData("Adagrad", false)]
    public void Step_SteadyState_AllocatesNothing(string name, bool trackUpdates)
    {
        Parameter[] ps = [.. TwoParameters(DType.Float32, 5), .. TwoParameters(DType.Float64, 6)];
        SetGradients(ps, 1);
        var opt = Optimizers[name].Configured(ps);
        opt.TrackUpdates = trackUpdates;
        for (int t = 0; t < 5; t++) opt.Step();

        const int steps = 200;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int t = 0; t < steps; t++) opt.Step();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // no object per step: one would cost at least 24 bytes a step (MonitorAllocation.PerStepMargin)
        Assert.True(allocated <= steps * MonitorAllocation.PerStepMargin, $"{allocated} bytes over {steps} steps");
    }

    [Fact]
    public void Sgd_MomentumOnManyTensors_MatchesTheFormulaBitwiseOnOneOrTwoThreads()
    {
        // The fused momentum path: small tensors are updated together at the end of the step (one
        // task each), large ones split in chunks. Every element must be b = μ·b + g, w = w + (−lr)·b,
        // each operation rounded to float, whatever thread ran it.
        int[][] shapes = [[5], [64, 64], [3, 7], [300, 500], [1], [64]];
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                GradFlow.Kernels.KernelThreads.SetCount(threads);
                var ps = shapes.Select((sh, i) => new Parameter(Random(DType.Float32, 40 + (ulong)i, sh))).ToArray();
                var w = ps.Select(p => p.Data.ToArray()).ToArray();
                var b = ps.Select(p => new float[p.Data.Count]).ToArray();
                var opt = new Sgd(ps, learningRate: 0.05, momentum: 0.9);
                for (int step = 0; step < 3; step++)
                {
                    SetGradients(ps, 7 + (ulong)step);
                    var g = ps.Select(p => p.Grad!.ToArray()).ToArray();
                    opt.Step();
                    for (int t = 0; t < ps.Length; t++)
                    {
                        for (int i = 0; i < w[t].Length; i++)
                        {
                            // PyTorch: the first step copies g into the buffer.
                            b[t][i] = step == 0 ? g[t][i] : g[t][i] * 1f + b[t][i] * 0.9f;
                            w[t][i] = b[t][i] * -0.05f + w[t][i];
                        }
                        var got = ps[t].Data.ToArray();
                        for (int i = 0; i < got.Length; i++)
                            Assert.True(BitConverter.SingleToInt32Bits(w[t][i]) == BitConverter.SingleToInt32Bits(got[i]),
                                $"{threads} thread(s), step {step}, tensor {t} element {i}: {got[i]:R}, expected {w[t][i]:R}");
                    }
                }
            }
        }
        finally
        {
            SuiteSetup.RestoreKernelThreads();
        }
    }

    [Theory]
    [InlineData(false, 0.0)]
    [InlineData(false, 0.1)]
    [InlineData(true, 0.01)]
    public void Adam_OnManyTensors_MatchesTheFormulaBitwiseOnOneOrTwoThreads(bool decoupled, double weightDecay)
    {
        // The fused Adam path: small tensors updated together at the end of the step, large ones in chunks, each element
        // by the unfused kernels' sequence of float operations (no FMA), whatever thread ran it.
        int[][] shapes = [[5], [64, 64], [3, 7], [300, 500], [1], [67]];
        const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6;
        int Run()
        {
            int threads = GradFlow.Kernels.KernelThreads.Count;
            var ps = shapes.Select((sh, i) => new Parameter(Random(DType.Float32, 50 + (ulong)i, sh))).ToArray();
            var w = ps.Select(p => p.Data.ToArray()).ToArray();
            var m = ps.Select(p => new float[p.Data.Count]).ToArray();
            var v = ps.Select(p => new float[p.Data.Count]).ToArray();
            Optimizer opt = decoupled
                ? new AdamW(ps, learningRate: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: weightDecay)
                : new Adam(ps, learningRate: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: weightDecay);
            for (int step = 1; step <= 3; step++)
            {
                SetGradients(ps, 17 + (ulong)step);
                var g = ps.Select(p => p.Grad!.ToArray()).ToArray();
                opt.Step();
                float c2 = (float)Math.Sqrt(1 - Math.Pow(b2, step)), stepSize = (float)(-lr / (1 - Math.Pow(b1, step)));
                for (int t = 0; t < ps.Length; t++)
                {
                    for (int i = 0; i < w[t].Length; i++)
                    {
                        float gi = g[t][i];
                        if (weightDecay != 0)
                        {
                            if (decoupled) w[t][i] *= (float)(1 - lr * weightDecay);
                            else gi = w[t][i] * (float)weightDecay + gi;
                        }
                        m[t][i] = gi * (float)(1 - b1) + m[t][i] * (float)b1;
                        v[t][i] = gi * gi * (float)(1 - b2) + v[t][i] * (float)b2;
                        w[t][i] = m[t][i] / (MathF.Sqrt(v[t][i]) / c2 + (float)eps) * stepSize + w[t][i];
                    }
                    var got = ps[t].Data.ToArray();
                    for (int i = 0; i < got.Length; i++)
                        Assert.True(BitConverter.SingleToInt32Bits(w[t][i]) == BitConverter.SingleToInt32Bits(got[i]),
                            $"{threads} thread(s), step {step}, tensor {t} element {i}: {got[i]:R}, expected {w[t][i]:R}");
                }
            }
            return threads;
        }
        Assert.Equal((1, 2), KernelThreadCounts.OneAndTwo(Run));
    }

    [Fact]
    public void TrackUpdates_Sgd_ReportsUpdateAndWeightNorms()
    {
        var ps = TwoParameters(DType.Float64, 8);
        var g = Random(DType.Float64, 80, 5);
        ps[0].Grad = g;
        var opt = new Sgd(ps, learningRate: 0.1) { TrackUpdates = true };
        opt.Step();

        double gNorm = Math.Sqrt(g.ToDoubleArray().Sum(v => v * v));
        double w0Norm = Math.Sqrt(ps[0].Data.ToDoubleArray().Sum(v => v * v));
        double w1Norm = Math.Sqrt(ps[1].Data.ToDoubleArray().Sum(v => v * v));
        Assert.Equal(0.1 * gNorm, opt.UpdateNorms[0], 1e-12);
        Assert.Equal(w0Norm, opt.WeightNorms[0], 1e-12);
        Assert.Equal(0.1 * gNorm / w0Norm, opt.UpdateRatio(0), 1e-12);
        Assert.Equal(0, opt.UpdateNorms[1]);
        Assert.Equal(w1Norm, opt.WeightNorms[1], 1e-12);
    }

    [Fact]
    public void TrackUpdates_Off_LeavesNormsUnset()
    {
        var ps = TwoParameters(DType.Float64, 8);
        SetGradients(ps, 1);
        var opt = new Sgd(ps, learningRate: 0.1);
        opt.Step();
        Assert.Equal([0.0, 0.0], opt.UpdateNorms.ToArray());
    }

    [Fact]
    public void ZeroGrad_SetsGradientsToNull()
    {
        var ps = TwoParameters(DType.Float32, 2);
        SetGradients(ps, 1);
        new Adam(ps).ZeroGrad();
        Assert.All(ps, p => Assert.Null(p.Grad));
    }

    [Fact]
    public void Step_GradientOfOtherShape_ThrowsNamingBothShapes()
    {
        var ps = TwoParameters(DType.Float32, 2);
        ps[0].Grad = Tensor.Zeros(DType.Float32, 4);
        var ex = Assert.Throws<ArgumentException>(() => new Sgd(ps).Step());
        Assert.Contains("SGD", ex.Message);
        Assert.Contains("[5]", ex.Message);
        Assert.Contains("[4]", ex.Message);
    }

    private static readonly Dictionary<string, (Action Make, string Optimizer, string Argument)> BadInputs = new()
    {
        ["negative lr"] = (() => new Sgd(TwoParameters(DType.Float32, 1), learningRate: -0.1), "SGD", "lr"),
        ["NaN lr"] = (() => new Adam(TwoParameters(DType.Float32, 1), learningRate: double.NaN), "Adam", "lr"),
        ["negative momentum"] = (() => new Sgd(TwoParameters(DType.Float32, 1), momentum: -0.5), "SGD", "momentum"),
        ["nesterov without momentum"] = (() => new Sgd(TwoParameters(DType.Float32, 1), nesterov: true), "SGD", "nesterov"),
        ["nesterov with dampening"] = (() => new Sgd(TwoParameters(DType.Float32, 1), momentum: 0.9, dampening: 0.1, nesterov: true), "SGD", "nesterov"),
        ["beta1 = 1"] = (() => new Adam(TwoParameters(DType.Float32, 1), beta1: 1.0), "Adam", "beta1"),
        ["beta2 < 0"] = (() => new AdamW(TwoParameters(DType.Float32, 1), beta2: -0.1), "AdamW", "beta2"),
        ["negative eps"] = (() => new AdamW(TwoParameters(DType.Float32, 1), eps: -1e-8), "AdamW", "eps"),
        ["negative weight decay"] = (() => new Adam(TwoParameters(DType.Float32, 1), weightDecay: -1), "Adam", "weight_decay"),
        ["alpha = 1"] = (() => new RmsProp(TwoParameters(DType.Float32, 1), alpha: 1.0), "RMSprop", "alpha"),
        ["negative lr decay"] = (() => new Adagrad(TwoParameters(DType.Float32, 1), lrDecay: -0.1), "Adagrad", "lr_decay"),
        ["negative initial accumulator"] = (() => new Adagrad(TwoParameters(DType.Float32, 1), initialAccumulatorValue: -1), "Adagrad", "initial_accumulator_value"),
        ["empty parameter list"] = (() => new RmsProp([]), "RMSprop", "parameters"),
        ["duplicate parameter"] = (() => { var p = new Parameter(Tensor.Zeros(3)); _ = new Adam([p, p]); }, "Adam", "parameters"),
        ["negative lr set later"] = (() => new Adagrad(TwoParameters(DType.Float32, 1)).LearningRate = -1, "Adagrad", "lr"),
    };

    public static TheoryData<string> BadInputNames => new(BadInputs.Keys);

    [Theory]
    [MemberData(nameof(BadInputNames))]
    public void Constructor_BadArgument_ThrowsNamingOptimizerAndArgument(string caseName)
    {
        var (make, optimizer, argument) = BadInputs[caseName];
        var ex = Assert.Throws<ArgumentException>(make);
        Assert.StartsWith(optimizer + ":", ex.Message);
        Assert.Equal(argument, ex.ParamName);
    }
}
