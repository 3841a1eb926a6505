// GradFlow's side of /work/shared/bench/pytorch_reference.py: the same workloads, the same timing
// rules and the same JSON lines, so the two can be compared line by line.
//
//   dotnet run -c Release --project benchmarks/GradFlow.Benchmarks -- [names or prefixes] [--threads T]
//
// Names select workloads by exact name or prefix (`gemm` = every gemm-N, `gemm-1024` = just that);
// none selects all. Timing (as the reference): warm up for >= 1 s and >= 3 iterations, calibrate
// the iterations of one block to ~0.75 s, time 5 blocks; value = median block rate, min/max too.
// Every workload runs in a fresh child process (so peak_rss_mb is its own), after waiting for a
// quiet machine, and is re-run (up to 3 more times) while other processes used more than 5% of
// the machine during its timed blocks; the least disturbed attempt is printed.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json;
using GradFlow.Autograd;
using GradFlow.Diagnostics;
using GradFlow.Kernels;
using GradFlow.Nn;
using GradFlow.Nn.Network;
using GradFlow.Optim;
using GradFlow.Tensors;

var options = Options.Parse(args);
if (options is null) return 2;
if (options.FmaPeak)
{
    Peak.Run(options.Threads);
    return 0;
}
if (options.AllGather)
{
    AllGatherBench.Run();
    return 0;
}
if (options.Profile)
{
    Profile.Run(options.Threads, options.Names);
    return 0;
}
if (options.Child is not null)
{
    Console.WriteLine(JsonSerializer.Serialize(Harness.RunWorkload(options.Child, options)));
    return 0;
}
var selected = Workloads.Select(options.Names);
if (selected.Count == 0)
{
    Console.Error.WriteLine($"no workload matches {string.Join(", ", options.Names)}; known: {string.Join(", ", Workloads.All.Select(w => w.Name))}");
    return 2;
}
Console.WriteLine(JsonSerializer.Serialize(Harness.Meta(options)));
foreach (var w in selected) Console.WriteLine(JsonSerializer.Serialize(Harness.RunIsolated(w.Name, options)));
return 0;

/// <summary>Command line: workload names/prefixes, --threads and the reference's timing knobs.</summary>
internal sealed record Options(List<string> Names, int Threads, int Blocks, double BlockSeconds, double WarmupSeconds,
    double MaxInterference, int Retries, double QuietPct, double MaxWait, string? Child, bool Profile = false, bool ReleaseIntermediates = true, bool FmaPeak = false, bool AllGather = false, bool Bf16 = false)
{
    public static Options? Parse(string[] args)
    {
        Options? o = new Options([], 2, 5, 0.75, 1.0, 5.0, 3, 5.0, 300.0, null);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) { o.Names.Add(a); continue; }
            if (a is "--help" or "-h")
            {
                Console.WriteLine("usage: GradFlow.Benchmarks [workload names or prefixes] [--threads T] [--blocks B] [--block-seconds S] " +
                    "[--warmup-seconds S] [--max-interference P] [--retries R] [--quiet-pct P] [--max-wait S] [--default-backward] [--bf16] | --profile [mlp|recurrent|fusion|kernel|blocking|blocking-dw|slabs|subblock|conv|conv-backward|winograd|cnn|resnet20|colsum|gelu|tfsteps] [--threads T] | --fma-peak [--threads T] | --allgather (under mpirun)");
                return null;
            }
            if (a == "--profile") { o = o with { Profile = true }; continue; }
            if (a == "--fma-peak") { o = o with { FmaPeak = true }; continue; }
            if (a == "--allgather") { o = o with { AllGather = true }; continue; }
            if (a == "--default-backward") { o = o with { ReleaseIntermediates = false }; continue; }
            if (a == "--bf16") { o = o with { Bf16 = true }; continue; }
            if (i + 1 >= args.Length) { Console.Error.WriteLine($"{a} needs a value"); return null; }
            string v = args[++i];
            if (a == "--child") { o = o with { Child = v }; continue; }
            if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
            {
                Console.Error.WriteLine($"{a}: '{v}' is not a number");
                return null;
            }
            o = a switch
            {
                "--threads" => o with { Threads = (int)d },
                "--blocks" => o with { Blocks = (int)d },
                "--block-seconds" => o with { BlockSeconds = d },
                "--warmup-seconds" => o with { WarmupSeconds = d },
                "--max-interference" => o with { MaxInterference = d },
                "--retries" => o with { Retries = (int)d },
                "--quiet-pct" => o with { QuietPct = d },
                "--max-wait" => o with { MaxWait = d },
                _ => null,
            };
            if (o is null)
            {
                Console.Error.WriteLine($"unknown option {a}; see --help");
                return null;
            }
        }
        return o;
    }
}

/// <summary>A workload: its name and a function that builds its data and returns its result fields.</summary>
internal sealed record Workload(string Name, Func<Options, Dictionary<string, object>> Run);

/// <summary>The table of workloads, in the reference's order.</summary>
internal static class Workloads
{
    public static readonly Workload[] All =
    [
        new("gemm-128", o => Gemm(128, o)),
        new("gemm-512", o => Gemm(512, o)),
        new("gemm-1024", o => Gemm(1024, o)),
        new("gemm-2048", o => Gemm(2048, o)),
        new("mlp-wide", MlpWide),
        new("mlp-deep-narrow", MlpDeepNarrow),
        new("lstm", o => Recurrent(gen => new Lstm(1, 128, gen, batchFirst: true), o)),
        new("gru", o => Recurrent(gen => new Gru(1, 128, gen, batchFirst: true), o)),
        new("cnn-resnet", CnnResnet),
        new("transformer-small", TransformerSmall),
        new("monitor-overhead", MonitorOverhead),
    ];

    /// <summary>Workloads named exactly or by prefix (`gemm` selects every gemm-N); none selects all.</summary>
    public static List<Workload> Select(List<string> names) =>
        names.Count == 0 ? [.. All] : All.Where(w => names.Any(n => w.Name == n || w.Name.StartsWith(n, StringComparison.Ordinal))).ToList();

    /// <summary>
    /// gemm-N: A, B = randn(N, N) (seed 0), C preallocated; one iteration = C = A·B
    /// (<see cref="GradFlow.Kernels.Gemm.Multiply(bool, bool, int, int, int, float, ReadOnlySpan{float}, int, ReadOnlySpan{float}, int, float, Span{float}, int)"/>,
    /// the counterpart of torch.mm(A, B, out=C)). gflops = 2·N³ / seconds per iteration / 1e9.
    /// </summary>
    private static Dictionary<string, object> Gemm(int n, Options o)
    {
        var gen = new Generator(0);
        var a = Tensor.RandN(gen, n, n).ToArray();
        var b = Tensor.RandN(gen, n, n).ToArray();
        var c = new float[n * n];
        var (med, lo, hi, iters) = Harness.Measure(() => GradFlow.Kernels.Gemm.Multiply(false, false, n, n, n, 1f, a, n, b, n, 0f, c, n), o);
        double g = 2.0 * n * n * n / 1e9;
        return new()
        {
            ["metric"] = "gflops", ["value"] = med * g, ["unit"] = "GFLOP/s",
            ["min"] = lo * g, ["max"] = hi * g, ["iters_per_block"] = iters,
        };
    }

    /// <summary>
    /// mlp-wide: Linear(784,1024)-ReLU-Linear(1024,1024)-ReLU-Linear(1024,1024)-ReLU-Linear(1024,10),
    /// PyTorch default init, x = randn(128, 784), target = 128 classes in [0, 10), CrossEntropy (mean),
    /// SGD(lr 0.01, momentum 0.9). Extras as the reference (approx_gflop_per_step, effective_gflops).
    /// </summary>
    private static Dictionary<string, object> MlpWide(Options o)
    {
        int[] dims = [784, 1024, 1024, 1024, 10];
        double gf = MlpFlops(dims, 128) / 1e9;
        var r = RunClassifier(Sequential(dims, () => new Relu()), 784, 128, o);
        r["approx_gflop_per_step"] = gf;
        r["effective_gflops"] = gf * (double)r["value"];
        return r;
    }

    /// <summary>mlp-deep-narrow: Linear(784,64)-Tanh, 32 × [Linear(64,64)-Tanh], Linear(64,10); batch 64; as mlp-wide otherwise.</summary>
    private static Dictionary<string, object> MlpDeepNarrow(Options o)
    {
        int[] dims = [784, .. Enumerable.Repeat(64, 33), 10];
        return RunClassifier(Sequential(dims, () => new Tanh()), 784, 64, o);
    }

    /// <summary>
    /// cnn-resnet: stem Conv2d(1, 16, 3, padding=1, bias=False)-BatchNorm2d(16)-ReLU, 3 residual blocks
    /// (conv-BN-ReLU-conv-BN + identity, then ReLU; convs 16→16, 3×3, padding 1, no bias), global
    /// average pool, Linear(16, 10); x = randn(64, 1, 28, 28) (drawn as 64×784 and viewed as images),
    /// targets in [0, 10); CrossEntropy, SGD(lr 0.01, momentum 0.9); BN in training mode.
    /// </summary>
    private static Dictionary<string, object> CnnResnet(Options o) => RunClassifier(gen => new CnnResnetNet(gen), 784, 64, o);

    /// <summary>
    /// transformer-small: a causal character-level language model, the reference's: token embedding (96, 256),
    /// learned positions (128 × 256), 4 Pre-LN transformer layers (d 256, 4 heads, feed-forward 1024, GELU,
    /// dropout 0, causal), a final LayerNorm and an untied Linear(256, 96) with bias — the description
    /// <c>transformer vocab=96 d=256 heads=4 layers=4 ctx=128 tie=no</c> with the head's bias on. x, targets =
    /// random tokens in [0, 96) of shape (32, 128); cross-entropy over all 32 × 128 positions; AdamW(lr 3e-4,
    /// weight decay 0.01).
    /// </summary>
    private static Dictionary<string, object> TransformerSmall(Options o)
    {
        const int vocab = 96, batch = 32, t = 128;
        var description = Rewrites.Map(NetworkDescription.Parse($"transformer vocab={vocab} d=256 heads=4 layers=4 ctx={t} tie=no"),
            b => b is LinearBlock l ? l with { Bias = true } : b);
        var gen = new Generator(0);
        var model = NetworkBuilder.Build(description, gen);
        model.Train();
        var x = Tensor.FromArray(Enumerable.Range(0, batch * t).Select(_ => (double)gen.NextInt(vocab)).ToArray(), [batch, t]).To(DType.Float32);
        var y = IndexTensor.FromArray(Enumerable.Range(0, batch * t).Select(_ => gen.NextInt(vocab)).ToArray(), batch * t);
        var opt = new AdamW(model.Parameters(), learningRate: 3e-4, weightDecay: 0.01);
        bool release = o.ReleaseIntermediates;
        void Step()
        {
            opt.ZeroGrad();
            var loss = Losses.CrossEntropy(model.Forward(x).Reshape(batch * t, vocab), y);
            loss.Backward(releaseIntermediates: release);
            opt.Step();
        }
        var (med, lo, hi, iters) = Harness.Measure(Step, o);
        var r = StepsResult(med, lo, hi, iters);
        r["backward"] = release ? "releaseIntermediates" : "default";
        foreach (var (k, v) in Harness.Allocations(Step, 5)) r[k] = v;
        return r;
    }

    /// <summary>
    /// monitor-overhead: the mlp-wide model, data and optimiser twice (same seed), one plain and one with
    /// GradFlow's <see cref="GradientMonitor"/> sampling every step (activation statistics incl. dead
    /// units by forward hooks, backpropagated-signal RMS by backward hooks, per-layer weight-gradient
    /// norm and max-abs, global gradient norm, the loss read back). Update ratios are not asked for
    /// (the reference does not measure them), so the optimiser does not track updates. Blocks are
    /// interleaved plain, monitored, plain, ...; value = monitored steps/s, baseline_steps_per_s and
    /// overhead_ratio = baseline / monitored.
    /// </summary>
    private static Dictionary<string, object> MonitorOverhead(Options o)
    {
        var spec = ModelSpec.Parse("mlp 784-1024x3-10 act=relu");
        var (plainModel, px, py) = Setup(gen => ModelBuilder.Build(spec, gen), 784, 128);
        var plainOpt = new Sgd(plainModel.Parameters(), learningRate: 0.01, momentum: 0.9);
        bool release = o.ReleaseIntermediates;
        Action plain = TrainStep(plainModel, px, py, plainOpt, release);

        var (model, x, y, mlp) = SetupMlp(spec, 784, 128);
        var opt = new Sgd(model.Parameters(), learningRate: 0.01, momentum: 0.9);
        using var monitor = new GradientMonitor(mlp, every: 1);
        long step = 0;
        void Monitored()
        {
            monitor.BeginSample(step++);
            opt.ZeroGrad();
            var loss = Losses.CrossEntropy(model.Forward(x), y);
            loss.Backward(releaseIntermediates: release);
            monitor.RecordGradients(loss.Item());
            opt.Step();
            monitor.EndSample(opt);
        }

        int itPlain = Harness.Calibrate(plain, o), itMon = Harness.Calibrate(Monitored, o);
        var rPlain = new double[o.Blocks];
        var rMon = new double[o.Blocks];
        for (int b = 0; b < o.Blocks; b++)
        {
            rPlain[b] = Harness.TimeBlock(plain, itPlain);
            rMon[b] = Harness.TimeBlock(Monitored, itMon);
        }
        double baseline = Harness.Median(rPlain), med = Harness.Median(rMon);
        var r = StepsResult(med, rMon.Min(), rMon.Max(), itMon);
        r["baseline_steps_per_s"] = baseline;
        r["overhead_ratio"] = baseline / med;
        r["backward"] = release ? "releaseIntermediates" : "default";
        return r;
    }

    private static (Module Model, Tensor X, IndexTensor Y, Mlp Mlp) SetupMlp(ModelSpec spec, int inFeatures, int batch)
    {
        Mlp? mlp = null;
        var (model, x, y) = Setup(gen => mlp = ModelBuilder.Build(spec, gen), inFeatures, batch);
        return (model, x, y, mlp!);
    }

    /// <summary>Linear layers through <paramref name="dims"/> with an activation after each but the last (PyTorch default init, seeded).</summary>
    private static Func<Generator, Module> Sequential(int[] dims, Func<Module> activation) => gen =>
    {
        var s = new Sequential();
        for (int i = 0; i + 1 < dims.Length; i++)
        {
            s.Add(new Linear(dims[i], dims[i + 1], gen));
            if (i + 2 < dims.Length) s.Add(activation());
        }
        return s;
    };

    /// <summary>Seed 0, then the model, then x = randn(batch, in) and targets in [0, 10) (the reference's order).</summary>
    private static (Module Model, Tensor X, IndexTensor Y) Setup(Func<Generator, Module> build, int inFeatures, int batch)
    {
        var gen = new Generator(0);
        var model = build(gen);
        model.Train();
        var x = Tensor.RandN(gen, batch, inFeatures);
        var y = IndexTensor.FromArray(Enumerable.Range(0, batch).Select(_ => gen.NextInt(10)).ToArray(), batch);
        return (model, x, y);
    }

    /// <summary>
    /// One training step: zero grad (to null), forward, cross-entropy (mean), backward, optimiser step.
    /// With <paramref name="releaseIntermediates"/> (the default; runner option <c>--default-backward</c>
    /// turns it off) backward hands the step's intermediate tensors back to the tensor pool
    /// (<see cref="BackwardEngine.Backward"/>'s opt-in), so a step allocates no tensor storage: the
    /// counterpart of PyTorch freeing a step's intermediates by reference counting. Nothing in these
    /// steps reads an intermediate after backward.
    /// </summary>
    private static Action TrainStep(Module model, Tensor x, IndexTensor y, Optimizer opt, bool releaseIntermediates = false) => () =>
    {
        opt.ZeroGrad();
        var loss = Losses.CrossEntropy(model.Forward(x), y);
        loss.Backward(releaseIntermediates: releaseIntermediates);
        opt.Step();
    };

    private static Dictionary<string, object> RunClassifier(Func<Generator, Module> build, int inFeatures, int batch, Options o)
    {
        var (model, x, y) = Setup(build, inFeatures, batch);
        var opt = new Sgd(model.Parameters(), learningRate: 0.01, momentum: 0.9);
        var step = TrainStep(model, x, y, opt, releaseIntermediates: o.ReleaseIntermediates);
        var (med, lo, hi, iters) = Harness.Measure(step, o);
        var r = StepsResult(med, lo, hi, iters);
        r["backward"] = o.ReleaseIntermediates ? "releaseIntermediates" : "default";
        foreach (var (k, v) in Harness.Allocations(step, 50)) r[k] = v;
        return r;
    }

    /// <summary>
    /// lstm / gru: the recurrent layer (input 1, hidden 128, one layer, batch first, PyTorch's default
    /// init) over x = randn(32, 100, 1) from a zero state; the last layer's final hidden state h_n[-1]
    /// (32 × 128) → Linear(128, 1); target randn(32, 1); MSE (mean); Adam(lr = 1e-3). Seed 0 before
    /// the model, then x, then the target (the reference's order).
    /// </summary>
    private static Dictionary<string, object> Recurrent(Func<Generator, RecurrentLayer> build, Options o)
    {
        var gen = new Generator(0);
        var rnn = build(gen);
        var head = new Linear(128, 1, gen);
        var x = Tensor.RandN(gen, 32, 100, 1);
        var target = Tensor.RandN(gen, 32, 1);
        var parameters = rnn.Parameters().Concat(head.Parameters()).ToArray();
        var opt = new Adam(parameters, learningRate: 1e-3);
        bool release = o.ReleaseIntermediates;
        void Step()
        {
            opt.ZeroGrad();
            var h = rnn.Forward(x, null).State.H;
            var last = h.Narrow(0, h.Shape[0] - 1, 1).Reshape(32, 128);
            var loss = Losses.Mse(head.Forward(last), target);
            loss.Backward(releaseIntermediates: release);
            opt.Step();
        }
        var (med, lo, hi, iters) = Harness.Measure(Step, o);
        var r = StepsResult(med, lo, hi, iters);
        r["backward"] = release ? "releaseIntermediates" : "default";
        foreach (var (k, v) in Harness.Allocations(Step, 20)) r[k] = v;
        return r;
    }

    private static Dictionary<string, object> StepsResult(double med, double lo, double hi, int iters) => new()
    {
        ["metric"] = "train_steps_per_s", ["value"] = med, ["unit"] = "steps/s",
        ["min"] = lo, ["max"] = hi, ["iters_per_block"] = iters, ["ms_per_step"] = 1000.0 / med,
    };

    /// <summary>The reference's mlp_flops: 2·batch·(2·Σ in·out + Σ_{l&gt;1} in·out) (forward, weight grad, input grad but the first layer's).</summary>
    private static double MlpFlops(int[] dims, int batch)
    {
        double sum = 0, rest = 0;
        for (int i = 0; i + 1 < dims.Length; i++)
        {
            double macs = (double)dims[i] * dims[i + 1];
            sum += macs;
            if (i > 0) rest += macs;
        }
        return 2.0 * batch * (2 * sum + rest);
    }
}

/// <summary>Timing, isolation and machine information, as in the reference script.</summary>
internal static class Harness
{
    private static readonly string[] EnvVars =
        ["DOTNET_EnableAVX512", "DOTNET_EnableAVX2", "DOTNET_TieredPGO", "DOTNET_TieredCompilation", "DOTNET_gcServer", "DOTNET_GCgen0size"];

    private static double _foreign, _wall;
    /// <summary>Methods the JIT compiled (tiered up, OSR included) while the timed blocks ran: 0 once the warm-up reached the steady state.</summary>
    private static long _jitInBlocks;

    public static Dictionary<string, object> RunWorkload(string name, Options o)
    {
        KernelThreads.SetCount(o.Threads);
        double baseRss = RssMb("VmRSS:");
        var w = Workloads.All.First(x => x.Name == name);
        var result = new Dictionary<string, object> { ["name"] = name };
        // --bf16: every float32 GEMM of the workload multiplies bf16-rounded operands (gradflow train --precision bf16)
        using (BFloat16.OperandsScope(o.Bf16))
            foreach (var (k, v) in w.Run(o)) result[k] = v;
        result["precision"] = o.Bf16 ? "bf16" : "fp32";
        result["blocks"] = o.Blocks;
        result["threads"] = KernelThreads.Count;
        result["base_rss_mb"] = baseRss;
        result["peak_rss_mb"] = RssMb("VmHWM:");
        result["jit_methods_in_blocks"] = _jitInBlocks;
        result["interference_pct"] = _wall > 0 ? 100.0 * Math.Max(0, _foreign) / (_wall * Environment.ProcessorCount) : 0.0;
        return result.ToDictionary(kv => kv.Key, kv => kv.Value is double d ? Math.Round(d, 4) : kv.Value);
    }

    /// <summary>Warm-up, calibration and timed blocks; returns (median, min, max) iterations/s and iterations per block.</summary>
    public static (double Median, double Min, double Max, int Iters) Measure(Action step, Options o)
    {
        int iters = Calibrate(step, o);
        var rates = new double[o.Blocks];
        for (int blk = 0; blk < o.Blocks; blk++) rates[blk] = TimeBlock(step, iters);
        return (Median(rates), rates.Min(), rates.Max(), iters);
    }

    /// <summary>Warms up for at least the warm-up time and 3 calls; returns the iterations of one ~block-seconds block.</summary>
    public static int Calibrate(Action step, Options o)
    {
        int n = 0;
        var sw = Stopwatch.StartNew();
        double el;
        while (true)
        {
            step();
            n++;
            el = sw.Elapsed.TotalSeconds;
            if (n >= 3 && el >= o.WarmupSeconds) break;
        }
        return Math.Max(1, (int)Math.Round(o.BlockSeconds / (el / n), MidpointRounding.ToEven));
    }

    /// <summary>Times <paramref name="iters"/> calls (adding to the interference tally); returns calls per second.</summary>
    public static double TimeBlock(Action step, int iters)
    {
        double busy0 = SystemBusySeconds(), own0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        long jit0 = System.Runtime.JitInfo.GetCompiledMethodCount();
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iters; i++) step();
        double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        _jitInBlocks += System.Runtime.JitInfo.GetCompiledMethodCount() - jit0;
        _foreign += SystemBusySeconds() - busy0 - (Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - own0);
        _wall += wall;
        return iters / wall;
    }

    public static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>
    /// Steady-state allocation of <paramref name="steps"/> further calls (after the timed blocks):
    /// bytes allocated per step by all threads, and gen-0/gen-2 collections per step (GradFlow-only extras).
    /// </summary>
    public static Dictionary<string, object> Allocations(Action step, int steps)
    {
        long bytes0 = GC.GetTotalAllocatedBytes(precise: true);
        int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
        for (int i = 0; i < steps; i++) step();
        return new()
        {
            ["alloc_bytes_per_step"] = (double)(GC.GetTotalAllocatedBytes(precise: true) - bytes0) / steps,
            ["gen0_gcs_per_step"] = (double)(GC.CollectionCount(0) - gen0) / steps,
            ["gen2_gcs_per_step"] = (double)(GC.CollectionCount(2) - gen2) / steps,
        };
    }

    /// <summary>Runs a workload in a fresh child process, retrying while other processes disturbed it.</summary>
    public static Dictionary<string, object> RunIsolated(string name, Options o)
    {
        Dictionary<string, object>? best = null;
        for (int attempt = 1; attempt <= o.Retries + 1; attempt++)
        {
            if (o.MaxInterference < 100) WaitQuiet(o.QuietPct, o.MaxWait);
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var arg in new[] { "--child", name, "--threads", o.Threads.ToString(CultureInfo.InvariantCulture),
                         "--blocks", o.Blocks.ToString(CultureInfo.InvariantCulture),
                         "--block-seconds", o.BlockSeconds.ToString(CultureInfo.InvariantCulture),
                         "--warmup-seconds", o.WarmupSeconds.ToString(CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(arg);
            if (!o.ReleaseIntermediates) psi.ArgumentList.Add("--default-backward");
            if (o.Bf16) psi.ArgumentList.Add("--bf16");
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync();
            // A child that outlives its time budget is killed and counts as a failed attempt
            // (guards against a stuck first KernelThreads.Run; see docs/benchmarks.md).
            bool exited = p.WaitForExit(TimeSpan.FromSeconds(60 + 4 * (o.WarmupSeconds + o.Blocks * o.BlockSeconds)));
            if (!exited) p.Kill(entireProcessTree: true);
            p.WaitForExit();
            Dictionary<string, object> res;
            if (!exited || p.ExitCode != 0)
                res = new() { ["name"] = name, ["error"] = exited ? $"exit code {p.ExitCode}" : "timed out", ["interference_pct"] = 1e9 };
            else
            {
                string last = output.Result.Trim().Split('\n')[^1];
                res = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(last)!.ToDictionary(kv => kv.Key, kv => (object)kv.Value);
            }
            res["attempts"] = attempt;
            if (best is null || Interference(res) < Interference(best)) best = res;
            if (Interference(best) <= o.MaxInterference) break;
        }
        return best!;
    }

    private static double Interference(Dictionary<string, object> r) =>
        r["interference_pct"] switch { JsonElement e => e.GetDouble(), double d => d, _ => double.NaN };

    public static Dictionary<string, object> Meta(Options o)
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            ?? RuntimeInformation.ProcessArchitecture.ToString();
        return new()
        {
            ["name"] = "meta",
            ["dotnet"] = Environment.Version.ToString(),
            ["runtime"] = RuntimeInformation.FrameworkDescription,
            ["gradflow"] = typeof(Tensor).Assembly.GetName().Version?.ToString() ?? "?",
            ["isa"] = KernelIsa.Name(KernelIsa.Best),
            ["full_width_512"] = KernelIsa.FullWidth512,
            ["vector512_accelerated"] = Vector512.IsHardwareAccelerated,
            ["vector256_accelerated"] = Vector256.IsHardwareAccelerated,
            ["kernel_threads"] = o.Threads,
            ["cpu"] = cpu,
            ["logical_cpus"] = Environment.ProcessorCount,
            ["os"] = RuntimeInformation.OSDescription,
            ["env"] = EnvVars.ToDictionary(v => v, v => Environment.GetEnvironmentVariable(v)),
            ["timing"] = new Dictionary<string, object> { ["warmup_s"] = o.WarmupSeconds, ["block_s"] = o.BlockSeconds, ["blocks"] = o.Blocks },
        };
    }

    /// <summary>Non-idle CPU seconds of the whole machine (user+nice+system+irq+softirq+steal of /proc/stat).</summary>
    private static double SystemBusySeconds()
    {
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100.0; // USER_HZ = 100 on Linux
    }

    private static void WaitQuiet(double maxBusyPct, double maxWaitS)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            double b0 = SystemBusySeconds();
            Thread.Sleep(1000);
            double busy = 100.0 * (SystemBusySeconds() - b0) / Environment.ProcessorCount;
            if (busy <= maxBusyPct || deadline.Elapsed.TotalSeconds > maxWaitS) return;
        }
    }

    private static double RssMb(string key)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? double.NaN : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }
}

/// <summary>The reference's cnn-resnet residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x), PyTorch's child names.</summary>
internal sealed class CnnResnetBlock : Module
{
    private readonly Conv2d _conv1, _conv2;
    private readonly BatchNorm2d _bn1, _bn2;

    public CnnResnetBlock(int c, Generator gen)
    {
        _conv1 = RegisterModule("conv1", new Conv2d(c, c, 3, gen, padding: 1, bias: false));
        _bn1 = RegisterModule("bn1", new BatchNorm2d(c));
        _conv2 = RegisterModule("conv2", new Conv2d(c, c, 3, gen, padding: 1, bias: false));
        _bn2 = RegisterModule("bn2", new BatchNorm2d(c));
    }

    protected override Tensor ForwardCore(Tensor input)
    {
        var y = _bn1.ForwardRelu(_conv1.Forward(input)); // relu(bn1(·)) as one op (BatchNormBase.ForwardRelu)
        return _bn2.ForwardAddRelu(_conv2.Forward(y), input); // relu(bn2(·) + x) as one op (BatchNormBase.ForwardAddRelu)
    }
}

/// <summary>The reference's cnn-resnet network (stem, three blocks, global average pool, fc); input [N, 784] viewed as [N, 1, 28, 28].</summary>
internal sealed class CnnResnetNet : Module
{
    private readonly Sequential _stem, _blocks;
    private readonly Linear _fc;

    public CnnResnetNet(Generator gen)
    {
        _stem = RegisterModule("stem", new Sequential(new Conv2d(1, 16, 3, gen, padding: 1, bias: false), new BatchNorm2d(16), new Relu()));
        _blocks = RegisterModule("blocks", new Sequential(new CnnResnetBlock(16, gen), new CnnResnetBlock(16, gen), new CnnResnetBlock(16, gen)));
        _fc = RegisterModule("fc", new Linear(16, 10, gen));
    }

    protected override Tensor ForwardCore(Tensor input)
    {
        var x = _blocks.Forward(_stem.Forward(input.Reshape(input.Shape[0], 1, 28, 28)));
        return _fc.Forward(x.Mean([2, 3]));
    }
}
