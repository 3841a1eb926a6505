// Benchmark-only profiling (`GradFlow.Benchmarks --profile [--threads T]`): Stopwatch timings of the
// phases of an mlp-wide and an mlp-deep-narrow training step (forward, loss, backward, optimiser
// step) and of each GEMM shape those steps run, so tuning starts from measurements, not guesses.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

internal static class Profile
{
    /// <summary>Runs the sections named (<c>mlp</c>, <c>recurrent</c>), or all when none is named.</summary>
    public static void Run(int threads, IReadOnlyCollection<string> sections)
    {
        GradFlow.Kernels.KernelThreads.SetCount(threads);
        if (sections.Count == 0 || sections.Contains("recurrent")) Recurrent();
        if (sections.Count == 0 || sections.Contains("mlp")) Mlp();
        if (sections.Count == 0 || sections.Contains("fusion")) Fusion();
        if (sections.Contains("kernel")) MicroKernel();
        if (sections.Contains("subblock")) BlockingAb.SubBlocks();
        if (sections.Contains("blocking")) BlockingAb.Run();
        if (sections.Contains("blocking-dw")) BlockingAb.WeightGradients();
        if (sections.Contains("slabs")) BlockingAb.Slabs();
        if (sections.Contains("conv")) ConvLayer();
        else if (sections.Contains("winograd")) WinogradVersusFlat();
        if (sections.Contains("cnn")) CnnStep();
        if (sections.Contains("resnet20")) ResNet20Epoch();
        if (sections.Contains("colsum")) ColumnSums();
        if (sections.Contains("tfsteps")) TransformerSteps();
        if (sections.Contains("gelu")) GeluKernels();
        if (sections.Contains("conv-backward")) ConvBackwardOnePass();
    }

    /// <summary>
    /// A cnn-resnet layer's two gradients (64 × 16 × 28 × 28, 3 × 3, padding 1) in one pass over the images against the input
    /// gradient then the weight gradient, on the flat path: 15 alternating blocks of 20 calls each, fastest and median block
    /// (<c>--profile conv-backward</c>, named only).
    /// </summary>
    private static void ConvBackwardOnePass()
    {
        var gen = new Generator(0);
        var shape = new GradFlow.Kernels.ConvShape(64, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        var xs = Tensor.RandN(gen, 64, 16, 28, 28).ToArray();
        var ws = (Tensor.RandN(gen, 16, 16, 3, 3) * (1 / 12.0)).ToArray();
        var gs = Tensor.RandN(gen, 64, 16, 28, 28).ToArray();
        var (dx, dw) = (new float[xs.Length], new float[ws.Length]);
        var isa = GradFlow.Kernels.KernelIsa.Best;
        Action one = () => GradFlow.Kernels.ConvKernels.BackwardFlat(shape, xs, ws, gs, dx, dw, isa);
        Action two = () =>
        {
            GradFlow.Kernels.ConvKernels.BackwardInputFlat(shape, ws, gs, dx, isa);
            GradFlow.Kernels.ConvKernels.BackwardWeightFlat(shape, xs, gs, dw, isa);
        };
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 4) { one(); two(); }
        var times = new[] { new List<double>(), new List<double>() };
        for (int b = 0; b < 15; b++)
            for (int v = 0; v < 2; v++)
            {
                var a = v == 0 ? one : two;
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < 20; i++) a();
                times[v].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / 20);
            }
        foreach (var t in times) t.Sort();
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"conv backward 64x16x28x28 3x3, {GradFlow.Kernels.KernelThreads.Count} thread(s), ms per call, fastest / median block: one pass {times[0][0]:F3} / {times[0][7]:F3}; input then weight gradient {times[1][0]:F3} / {times[1][7]:F3}"));
    }

    /// <summary>
    /// The float32 GELU kernels on 4 Mi elements of N(0, 1) (a transformer layer's ff1 output), forward and backward,
    /// fastest and median of 60 calls each, on the process's kernel threads' caller only (<c>--profile gelu</c>, named only).
    /// </summary>
    private static void GeluKernels()
    {
        var x = Tensor.RandN(new Generator(7), 1 << 22).ToArray();
        var dy = Tensor.RandN(new Generator(8), 1 << 22).ToArray();
        var y = new float[x.Length];
        foreach (var (name, run) in new (string, Action)[]
        {
            ("forward", () => GradFlow.Kernels.ActivationKernels.Gelu<float>(x, y)),
            ("backward", () => GradFlow.Kernels.ActivationKernels.GeluBackward<float>(x, dy, y)),
        })
        {
            var times = new List<double>();
            for (int rep = 0; rep < 70; rep++)
            {
                long t0 = Stopwatch.GetTimestamp();
                run();
                if (rep >= 10) times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
            times.Sort();
            Console.WriteLine($"GELU {name}, 4 Mi floats, one thread: best {times[0]:F2} ms, median {times[times.Count / 2]:F2} ms");
        }
    }

    /// <summary>transformer-small's step times one by one (40 steps after 5), with the gen-0 collections each saw (named only).</summary>
    private static void TransformerSteps()
    {
        const int vocab = 96, batch = 32, t = 128;
        var description = GradFlow.Nn.Network.Rewrites.Map(GradFlow.Nn.Network.NetworkDescription.Parse($"transformer vocab={vocab} d=256 heads=4 layers=4 ctx={t} tie=no"),
            b => b is GradFlow.Nn.Network.LinearBlock l ? l with { Bias = true } : b);
        var gen = new Generator(0);
        var model = GradFlow.Nn.Network.NetworkBuilder.Build(description, gen);
        model.Train();
        var x = Tensor.FromArray(Enumerable.Range(0, batch * t).Select(_ => (double)gen.NextInt(vocab)).ToArray(), [batch, t]).To(DType.Float32);
        var y = IndexTensor.FromArray(Enumerable.Range(0, batch * t).Select(_ => gen.NextInt(vocab)).ToArray(), batch * t);
        var opt = new AdamW(model.Parameters(), learningRate: 3e-4, weightDecay: 0.01);
        var lines = new List<string>();
        for (int i = 0; i < 45; i++)
        {
            int g0 = GC.CollectionCount(0), g2 = GC.CollectionCount(2);
            long t0 = Stopwatch.GetTimestamp();
            opt.ZeroGrad();
            var loss = Losses.CrossEntropy(model.Forward(x).Reshape(batch * t, vocab), y);
            loss.Backward(releaseIntermediates: true);
            opt.Step();
            double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (i >= 5) lines.Add($"{ms:F0}{(GC.CollectionCount(0) > g0 ? " gc0" : "")}{(GC.CollectionCount(2) > g2 ? " gc2" : "")}");
        }
        Console.WriteLine("transformer-small step ms: " + string.Join(", ", lines));
    }

    /// <summary>
    /// The bias gradients of transformer-small's linear layers: column sums of dY [4 096, n] (ReduceKernels.Sum over the
    /// rows), fastest and median of 200 calls each, in GB/s of dY read (<c>--profile colsum</c>, named only).
    /// </summary>
    private static void ColumnSums()
    {
        foreach (int n in new[] { 96, 256, 768, 1024 })
        {
            var x = Tensor.RandN(new Generator((ulong)n), 4096, n).ToArray();
            var y = new float[n];
            var times = new List<double>();
            for (int rep = 0; rep < 220; rep++)
            {
                long t0 = Stopwatch.GetTimestamp();
                GradFlow.Kernels.ReduceKernels.Sum<float>(x, 1, 4096, n, y);
                if (rep >= 20) times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
            times.Sort();
            double gb = 4.0 * 4096 * n / 1e9;
            Console.WriteLine($"column sums of [4096, {n}], {GradFlow.Kernels.KernelThreads.Count} thread(s): best {gb / times[0]:F1} GB/s, median {gb / times[times.Count / 2]:F1} GB/s");
        }
    }

    /// <summary>
    /// A ResNet-20-like network on Fashion-MNIST-sized images (named only): stem 3×3 conv 1→16, BN, ReLU; three stages of
    /// three basic blocks (16, 32, 64 channels at 28×28, 14×14, 7×7; the first block of stages 2 and 3 with stride 2 and a
    /// 1×1 stride-2 projection + BN shortcut, option B), global average pool, Linear(64, 10). Batch 128 of randn images,
    /// CrossEntropy, SGD(0.1, momentum 0.9), releaseIntermediates. Times 30 steps after 5 warm-up steps and states the
    /// epoch of 60 000 images (469 steps) as mean step × 469: the compute of one epoch, without data loading.
    /// </summary>
    private static void ResNet20Epoch()
    {
        var gen = new Generator(0);
        var model = new ResNet20Like(gen);
        model.Train();
        var x = Tensor.RandN(gen, 128, 1, 28, 28);
        var y = IndexTensor.FromArray(Enumerable.Range(0, 128).Select(_ => gen.NextInt(10)).ToArray(), 128);
        var opt = new Sgd(model.Parameters(), learningRate: 0.1, momentum: 0.9);
        var times = new List<double>();
        for (int i = -5; i < 30; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            opt.ZeroGrad();
            Losses.CrossEntropy(model.Forward(x), y).Backward(releaseIntermediates: true);
            opt.Step();
            if (i >= 0) times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        double mean = times.Average();
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["section"] = "resnet20-like, batch 128", ["threads"] = GradFlow.Kernels.KernelThreads.Count,
            ["step_ms_mean"] = Math.Round(mean, 1), ["step_ms_median"] = Math.Round(times[times.Count / 2], 1), ["step_ms_best"] = Math.Round(times[0], 1),
            ["epoch_s_from_mean"] = Math.Round(mean * 469 / 1000, 1), ["epoch_s_from_median"] = Math.Round(times[times.Count / 2] * 469 / 1000, 1),
        }));
    }

    /// <summary>A basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut identity or 1×1 conv + BN (stride 2).</summary>
    private sealed class BasicBlock : Module
    {
        private readonly Conv2d _conv1, _conv2;
        private readonly BatchNorm2d _bn1, _bn2;
        private readonly Sequential? _shortcut;

        public BasicBlock(int cin, int cout, int stride, Generator gen)
        {
            _conv1 = RegisterModule("conv1", new Conv2d(cin, cout, 3, gen, stride: stride, padding: 1, bias: false));
            _bn1 = RegisterModule("bn1", new BatchNorm2d(cout));
            _conv2 = RegisterModule("conv2", new Conv2d(cout, cout, 3, gen, padding: 1, bias: false));
            _bn2 = RegisterModule("bn2", new BatchNorm2d(cout));
            if (stride != 1 || cin != cout)
                _shortcut = RegisterModule("shortcut", new Sequential(new Conv2d(cin, cout, 1, gen, stride: stride, bias: false), new BatchNorm2d(cout)));
        }

        protected override Tensor ForwardCore(Tensor input)
        {
            var y = _bn1.Forward(_conv1.Forward(input)).Relu();
            y = _bn2.Forward(_conv2.Forward(y));
            return (y + (_shortcut is null ? input : _shortcut.Forward(input))).Relu();
        }
    }

    private sealed class ResNet20Like : Module
    {
        private readonly Sequential _body;
        private readonly Linear _fc;

        public ResNet20Like(Generator gen)
        {
            var layers = new List<Module> { new Conv2d(1, 16, 3, gen, padding: 1, bias: false), new BatchNorm2d(16), new Relu() };
            int cin = 16;
            foreach (int c in new[] { 16, 32, 64 })
                for (int b = 0; b < 3; b++)
                {
                    layers.Add(new BasicBlock(cin, c, b == 0 && c != 16 ? 2 : 1, gen));
                    cin = c;
                }
            _body = RegisterModule("body", new Sequential(layers.ToArray()));
            _fc = RegisterModule("fc", new Linear(64, 10, gen));
        }

        protected override Tensor ForwardCore(Tensor input) => _fc.Forward(_body.Forward(input).Mean([2, 3]));
    }

    /// <summary>
    /// Where a cnn-resnet step goes (named only): mean and fastest ms of the step's phases (forward, loss
    /// and backward, SGD step; releaseIntermediates as the benchmark) over 20 steps after 5 warm-up steps,
    /// bytes allocated per step, and the ops of the step on its own shapes (fastest of 20 calls, each
    /// through autograd with its backward: conv 16→16, the stem conv, BatchNorm2d, BatchNorm2d fused with the ReLU after it, ReLU, the residual add,
    /// the global average pool), with the count of each op per step. One JSON line per section.
    /// </summary>
    private static void CnnStep()
    {
        var gen = new Generator(0);
        var model = new CnnResnetNet(gen);
        model.Train();
        var x = Tensor.RandN(gen, 64, 784);
        var y = IndexTensor.FromArray(Enumerable.Range(0, 64).Select(_ => gen.NextInt(10)).ToArray(), 64);
        var opt = new Sgd(model.Parameters(), learningRate: 0.01, momentum: 0.9);
        double fwd = 0, bwd = 0, sgd = 0, bestF = double.MaxValue, bestB = double.MaxValue, bestS = double.MaxValue;
        int steps = 20;
        long bytes = 0;
        for (int i = -5; i < steps; i++)
        {
            if (i == 0) bytes = GC.GetTotalAllocatedBytes(true);
            long t0 = Stopwatch.GetTimestamp();
            opt.ZeroGrad();
            var loss = Losses.CrossEntropy(model.Forward(x), y);
            long t1 = Stopwatch.GetTimestamp();
            loss.Backward(releaseIntermediates: true);
            long t2 = Stopwatch.GetTimestamp();
            opt.Step();
            long t3 = Stopwatch.GetTimestamp();
            if (i < 0) continue;
            double f = Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds, b = Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds,
                s = Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds;
            fwd += f; bwd += b; sgd += s;
            bestF = Math.Min(bestF, f); bestB = Math.Min(bestB, b); bestS = Math.Min(bestS, s);
        }
        bytes = GC.GetTotalAllocatedBytes(true) - bytes;
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["section"] = "cnn-resnet step", ["threads"] = GradFlow.Kernels.KernelThreads.Count,
            ["forward_ms_mean"] = Math.Round(fwd / steps, 2), ["backward_ms_mean"] = Math.Round(bwd / steps, 2), ["sgd_ms_mean"] = Math.Round(sgd / steps, 3),
            ["forward_ms_best"] = Math.Round(bestF, 2), ["backward_ms_best"] = Math.Round(bestB, 2), ["sgd_ms_best"] = Math.Round(bestS, 3),
            ["alloc_kib_per_step"] = Math.Round(bytes / 1024.0 / steps, 1),
        }));

        var a = Tensor.RandN(gen, 64, 16, 28, 28);
        var stemIn = Tensor.RandN(gen, 64, 1, 28, 28);
        var w16 = Tensor.RandN(gen, 16, 16, 3, 3) * (1 / 12.0);
        var w1 = Tensor.RandN(gen, 16, 1, 3, 3) * (1 / 3.0);
        var bn = new BatchNorm2d(16);
        bn.Train();
        var g = Tensor.RandN(gen, 64, 16, 28, 28);
        (double Fwd, double Both) Op(Func<Tensor, Tensor> op, Tensor input, Tensor? grad)
        {
            var leaf = input.Detach();
            leaf.RequiresGrad = true;
            double bf = double.MaxValue, bb = double.MaxValue;
            for (int i = 0; i < 25; i++)
            {
                leaf.Grad = null;
                long t0 = Stopwatch.GetTimestamp();
                var o = op(leaf);
                long t1 = Stopwatch.GetTimestamp();
                o.Backward(grad ?? o.OnesLike(), releaseIntermediates: true);
                long t2 = Stopwatch.GetTimestamp();
                if (i < 5) continue;
                bf = Math.Min(bf, Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                bb = Math.Min(bb, Stopwatch.GetElapsedTime(t0, t2).TotalMilliseconds);
            }
            return (Math.Round(bf, 3), Math.Round(bb, 3));
        }
        w16.RequiresGrad = true;
        w1.RequiresGrad = true;
        var row = new Dictionary<string, object> { ["section"] = "cnn-resnet ops, fastest ms forward / forward+backward" };
        void Add(string name, int count, (double Fwd, double Both) t) => row[$"{name} x{count}"] = $"{t.Fwd} / {t.Both}";
        Add("conv16", 6, Op(t => Tensor.Conv2d(t, w16, padding: 1), a, g));
        Add("stem conv", 1, Op(t => Tensor.Conv2d(t, w1, padding: 1), stemIn, g));
        Add("batchnorm2d", 3, Op(t => bn.Forward(t), a, g));
        Add("batchnorm2d+relu", 4, Op(t => bn.ForwardRelu(t), a, g));
        Add("relu", 3, Op(t => t.Relu(), a, g));
        Add("add", 3, Op(t => t + a, a, g));
        Add("mean(2,3)", 1, Op(t => t.Mean([2, 3]), a, null));
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
    }

    /// <summary>
    /// One conv layer of cnn-resnet (Conv2d(16, 16, 3, padding=1, bias=False) on x = randn(64, 16, 28, 28)):
    /// forward (no grad) and forward + backward (dx and dW, g = randn of y's shape) in GFLOP/s, counting
    /// 2·N·Cout·OH·OW·Cin·9 flop per product (forward 1, backward 2 products), median of 5 blocks of
    /// ~0.5 s after a 1 s warm-up; plus the fastest call of each kernel alone. One JSON line; its PyTorch
    /// twin is benchmarks/conv_layer.py, and benchmarks/conv_layer.sh interleaves the two.
    /// </summary>
    private static void ConvLayer()
    {
        var gen = new Generator(0);
        var x = Tensor.RandN(gen, 64, 16, 28, 28);
        var w = Tensor.RandN(gen, 16, 16, 3, 3) * (1 / 12.0);
        var g = Tensor.RandN(gen, 64, 16, 28, 28);
        double product = 2.0 * 64 * 16 * 28 * 28 * 16 * 9 / 1e9;
        double Rate(Action step)
        {
            var sw = Stopwatch.StartNew();
            int n = 0;
            while (sw.Elapsed.TotalSeconds < 1 || n < 3) { step(); n++; }
            int iters = Math.Max(1, (int)(n * 0.5 / sw.Elapsed.TotalSeconds));
            var rates = new double[5];
            for (int b = 0; b < rates.Length; b++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters; i++) step();
                rates[b] = iters / Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
            Array.Sort(rates);
            return rates[rates.Length / 2];
        }
        double forward;
        // Every output and gradient goes back to the tensor pool after its call (the counterpart of PyTorch's caching
        // allocator, which hands the freed output of one call to the next): a fresh 3.2 MB array per call is page faults.
        using (GradMode.NoGrad()) forward = Rate(() => Tensor.Conv2d(x, w, padding: 1).ReleaseStorage()) * product;
        var xl = x.Detach();
        var wl = w.Detach();
        xl.RequiresGrad = wl.RequiresGrad = true;
        double both = Rate(() =>
        {
            xl.Grad?.ReleaseStorage();
            wl.Grad?.ReleaseStorage();
            xl.Grad = null;
            wl.Grad = null;
            var y = Tensor.Conv2d(xl, wl, padding: 1);
            y.Backward(g, releaseIntermediates: true);
            y.ReleaseStorage();
        }) * 3 * product;
        var shape = new GradFlow.Kernels.ConvShape(64, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        var (xs, ws, gs) = (x.ToArray(), w.ToArray(), g.ToArray());
        var (ys, dxs, dws) = (new float[gs.Length], new float[xs.Length], new float[ws.Length]);
        double Best(Action a)
        {
            double best = double.MaxValue;
            for (int i = 0; i < 30; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                a();
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
            return product / best;
        }
        double kf = Best(() => GradFlow.Kernels.ConvKernels.Forward<float>(shape, xs, ws, default, ys));
        double kdx = Best(() => GradFlow.Kernels.ConvKernels.BackwardInput<float>(shape, ws, gs, dxs));
        double kdw = Best(() => GradFlow.Kernels.ConvKernels.BackwardWeight<float>(shape, xs, gs, dws));
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["engine"] = "gradflow", ["threads"] = GradFlow.Kernels.KernelThreads.Count,
            ["forward_gflops"] = Math.Round(forward, 2), ["forward_backward_gflops"] = Math.Round(both, 2),
            ["best_forward_kernel_gflops"] = Math.Round(kf, 2), ["best_input_grad_kernel_gflops"] = Math.Round(kdx, 2),
            ["best_weight_grad_kernel_gflops"] = Math.Round(kdw, 2),
        }));
        DirectVersusGemm();
        WinogradVersusFlat();
    }

    /// <summary>
    /// The 3×3 stride-1 shapes of cnn-resnet and a ResNet-20 on both stride-1 paths, flat implicit GEMM and Winograd
    /// F(2×2, 3×3): forward and input gradient (and the flat weight gradient), 30 calls each after 0.5 s of warm-up, fastest
    /// and median ms and the GFLOP/s-equivalent of the fastest (direct flop count 2·N·Cout·OH·OW·Cin·9 / time). One JSON
    /// line per shape.
    /// </summary>
    private static void WinogradVersusFlat()
    {
        var isa = GradFlow.Kernels.KernelIsa.Best;
        foreach (var (name, shape) in new (string, GradFlow.Kernels.ConvShape)[]
                 {
                     ("cnn-resnet layer 16->16 28x28", new(64, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("resnet20 stage 2 32->32 14x14 (batch 128)", new(128, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("resnet20 stage 3 64->64 7x7 (batch 128)", new(128, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("cnn-resnet stem 1->16 28x28", new(64, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("4->4 28x28", new(64, 4, 28, 28, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("8->8 28x28", new(64, 8, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("16->16 27x27 no padding", new(64, 16, 27, 27, 16, 3, 3, 1, 1, 0, 0, 1, 1, 1)),
                     ("128->128 14x14 (batch 32)", new(32, 128, 14, 14, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                 })
        {
            var gen = new Generator(2);
            var x = Tensor.RandN(gen, shape.N * shape.C * shape.H * shape.W).ToArray();
            var w = Tensor.RandN(gen, shape.Cout * shape.GroupRows).ToArray();
            var g = Tensor.RandN(gen, shape.N * shape.Cout * shape.OH * shape.OW).ToArray();
            var (y, dx, dw) = (new float[g.Length], new float[x.Length], new float[w.Length]);
            double gflop = 2.0 * shape.N * shape.Cout * shape.OH * shape.OW * shape.C * 9 / 1e9;
            var row = new Dictionary<string, object> { ["shape"] = name, ["threads"] = GradFlow.Kernels.KernelThreads.Count };
            void Time(string key, Action a)
            {
                // Warm-up of at least 0.5 s: the kernels' methods reach tier-1 code only after call counting, which starts
                // 100 ms after the last tier-0 compilation; three calls measured partly tier-0 code.
                var warm = Stopwatch.StartNew();
                for (int i = 0; i < 3 || warm.Elapsed.TotalSeconds < 0.5; i++) a();
                var ms = new double[30];
                for (int i = 0; i < ms.Length; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    a();
                    ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                }
                Array.Sort(ms);
                row[key + "_best_ms"] = Math.Round(ms[0], 3);
                row[key + "_median_ms"] = Math.Round(ms[ms.Length / 2], 3);
                row[key + "_best_gflops"] = Math.Round(gflop / ms[0] * 1e3, 1);
            }
            Time("flat_forward", () => GradFlow.Kernels.ConvKernels.ForwardFlat(shape, x, w, default, y, isa));
            Time("winograd_forward", () => GradFlow.Kernels.ConvKernels.ForwardWinograd(shape, x, w, default, y, isa));
            if (GradFlow.Kernels.ConvFlat.AppliesToInputGradient(shape))
                Time("flat_input_grad", () => GradFlow.Kernels.ConvKernels.BackwardInputFlat(shape, w, g, dx, isa));
            Time("winograd_input_grad", () => GradFlow.Kernels.ConvKernels.BackwardInputWinograd(shape, w, g, dx, isa));
            if (GradFlow.Kernels.ConvFlat.AppliesToWeightGradient(shape, isa))
                Time("flat_weight_grad", () => GradFlow.Kernels.ConvKernels.BackwardWeightFlat(shape, x, g, dw, isa));
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
        }
    }

    /// <summary>
    /// The shapes the direct conv path takes (one input channel per group), timed on both paths: fastest of
    /// 30 calls of forward, input gradient and weight gradient, ms each. One JSON line per shape.
    /// </summary>
    private static void DirectVersusGemm()
    {
        foreach (var (name, shape) in new (string, GradFlow.Kernels.ConvShape)[]
                 {
                     ("depthwise 32ch 28x28 3x3", new(64, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 32)),
                     ("depthwise 64ch 14x14 3x3 stride 2", new(64, 64, 28, 28, 64, 3, 3, 2, 2, 1, 1, 1, 1, 64)),
                     ("cnn-resnet stem 1->16 28x28 3x3", new(64, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                     ("cnn-resnet layer 16->16 28x28 3x3", new(64, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1)),
                 })
        {
            var gen = new Generator(1);
            var x = Tensor.RandN(gen, shape.N * shape.C * shape.H * shape.W).ToArray();
            var w = Tensor.RandN(gen, shape.Cout * shape.GroupRows).ToArray();
            var g = Tensor.RandN(gen, shape.N * shape.Cout * shape.OH * shape.OW).ToArray();
            var (y, dx, dw) = (new float[g.Length], new float[x.Length], new float[w.Length]);
            double Ms(Action a)
            {
                double best = double.MaxValue;
                for (int i = 0; i < 30; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    a();
                    best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
                return Math.Round(best, 3);
            }
            var row = new Dictionary<string, object> { ["shape"] = name };
            foreach (bool direct in shape.Cig == 1 ? new[] { true, false } : [false])
            {
                string path = direct ? "direct" : "gemm";
                row[path + "_forward_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.Forward<float>(shape, x, w, default, y, direct));
                row[path + "_input_grad_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.BackwardInput<float>(shape, w, g, dx, direct));
                row[path + "_weight_grad_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.BackwardWeight<float>(shape, x, g, dw, direct));
            }
            if (GradFlow.Kernels.ConvFlat.Applies(shape))
            {
                var isa = GradFlow.Kernels.KernelIsa.Best;
                row["flat_forward_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.ForwardFlat(shape, x, w, default, y, isa));
                if (GradFlow.Kernels.ConvFlat.AppliesToInputGradient(shape))
                    row["flat_input_grad_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.BackwardInputFlat(shape, w, g, dx, isa));
                row["flat_weight_grad_ms"] = Ms(() => GradFlow.Kernels.ConvKernels.BackwardWeightFlat(shape, x, g, dw, isa));
            }
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
        }
    }

    /// <summary>The AVX-512 float micro-kernel alone on L1-resident packed panels (kc = 128: A 6 KiB, B 16 KiB), one thread: its ceiling.</summary>
    private static unsafe void MicroKernel()
    {
        if (!GradFlow.Kernels.KernelIsa.IsAccelerated(GradFlow.Kernels.InstructionSet.Avx512)) return;
        foreach (int kc in new[] { 64, 128, 256 })
        {
            var a = GC.AllocateArray<float>(12 * kc, pinned: true);
            var b = GC.AllocateArray<float>(32 * kc, pinned: true);
            var c = GC.AllocateArray<float>(12 * 32, pinned: true);
            for (int i = 0; i < a.Length; i++) a[i] = 1e-3f * (i % 7);
            for (int i = 0; i < b.Length; i++) b[i] = 1e-3f * (i % 5);
            fixed (float* pa = a, pb = b, pc = c)
            {
                int calls = 200_000 * 128 / kc;
                double best = 0;
                for (int rep = 0; rep < 5; rep++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < calls; i++) GradFlow.Kernels.GemmKernelF32Avx512.Run(kc, pa, pb, pc, 32, 1f, 1f);
                    double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    best = Math.Max(best, 2.0 * 12 * 32 * kc * calls / s / 1e9);
                }
                Console.WriteLine($"AVX-512 12x32 micro-kernel, kc = {kc}, L1-resident panels: {best:F1} GFLOP/s (one thread)");
            }
        }
    }


    /// <summary>
    /// A/B in one process, alternating blocks of 50 steps: each MLP workload's Sequential as is (Linear +
    /// activation fused) and the same model with a no-op forward hook on every activation module (which
    /// turns the fusion off). Mean of each block; prints the fastest and the median block per mode.
    /// </summary>
    private static void Fusion()
    {
        foreach (var (name, dims, batch, act) in new (string, int[], int, Func<Module>)[]
                 {
                     ("mlp-deep-narrow", [784, .. Enumerable.Repeat(64, 33), 10], 64, () => new Tanh()),
                     ("mlp-wide", [784, 1024, 1024, 1024, 10], 128, () => new Relu()),
                 })
        {
            Action Make(bool fused)
            {
                var gen = new Generator(0);
                var model = new Sequential();
                for (int i = 0; i + 1 < dims.Length; i++)
                {
                    model.Add(new Linear(dims[i], dims[i + 1], gen));
                    if (i + 2 < dims.Length)
                    {
                        var a = act();
                        if (!fused) a.RegisterForwardHook((_, _, _) => { });
                        model.Add(a);
                    }
                }
                var x = Tensor.RandN(gen, batch, dims[0]);
                var y = IndexTensor.FromArray(Enumerable.Range(0, batch).Select(_ => gen.NextInt(10)).ToArray(), batch);
                var opt = new Sgd(model.Parameters(), learningRate: 0.01, momentum: 0.9);
                return () =>
                {
                    opt.ZeroGrad();
                    Losses.CrossEntropy(model.Forward(x), y).Backward(releaseIntermediates: true);
                    opt.Step();
                };
            }
            var modes = new[] { Make(true), Make(false) };
            var blocks = new[] { new List<double>(), new List<double>() };
            int per = name == "mlp-wide" ? 10 : 50;
            var sw = Stopwatch.StartNew();
            for (int round = 0; sw.Elapsed.TotalSeconds < 8; round++)
                for (int m = 0; m < 2; m++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < per; i++) modes[m]();
                    if (round > 0) blocks[m].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / per);
                }
            string Fmt(List<double> b) => $"fastest {b.Min():F3} median {b.Order().ElementAt(b.Count / 2):F3} ms/step";
            Console.WriteLine($"{name} fused: {Fmt(blocks[0])}; unfused: {Fmt(blocks[1])} ({blocks[0].Count} blocks of {per} steps each)");
        }
    }

    /// <summary>The lstm and gru workloads' steps by phase, and their per-time-step GEMMs.</summary>
    private static void Recurrent()
    {
        foreach (var cell in new[] { "lstm", "gru" })
        {
            var gen = new Generator(0);
            RecurrentLayer rnn = cell == "lstm" ? new Lstm(1, 128, gen, batchFirst: true) : new Gru(1, 128, gen, batchFirst: true);
            var head = new Linear(128, 1, gen);
            var x = Tensor.RandN(gen, 32, 100, 1);
            var target = Tensor.RandN(gen, 32, 1);
            var opt = new Adam(rnn.Parameters().Concat(head.Parameters()).ToArray(), learningRate: 1e-3);
            var best = new double[] { double.MaxValue, double.MaxValue, double.MaxValue };
            var sum = new double[3];
            int steps = 0;
            var sw = Stopwatch.StartNew();
            while (steps < 20 || sw.Elapsed.TotalSeconds < 3)
            {
                long t0 = Stopwatch.GetTimestamp(), a0 = GC.GetTotalAllocatedBytes(true);
                opt.ZeroGrad();
                var h = rnn.Forward(x, null).State.H;
                var loss = Losses.Mse(head.Forward(h.Narrow(0, h.Shape[0] - 1, 1).Reshape(32, 128)), target);
                long t1 = Stopwatch.GetTimestamp(), a1 = GC.GetTotalAllocatedBytes(true);
                loss.Backward(releaseIntermediates: true);
                long t2 = Stopwatch.GetTimestamp(), a2 = GC.GetTotalAllocatedBytes(true);
                opt.Step();
                long t3 = Stopwatch.GetTimestamp(), a3 = GC.GetTotalAllocatedBytes(true);
                if (steps == 20) Console.WriteLine($"{cell}: allocated forward {(a1 - a0) / 1024} KiB, backward {(a2 - a1) / 1024} KiB, step {(a3 - a2) / 1024} KiB");
                if (sw.Elapsed.TotalSeconds < 1) continue;
                long[] d = [t1 - t0, t2 - t1, t3 - t2];
                for (int i = 0; i < 3; i++) { sum[i] += d[i]; best[i] = Math.Min(best[i], d[i]); }
                steps++;
            }
            double ms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency;
            Console.WriteLine($"{cell}: {steps} steps, mean forward {ms(sum[0]) / steps:F3} backward {ms(sum[1]) / steps:F3} step {ms(sum[2]) / steps:F3} ms; " +
                $"fastest {ms(best[0]):F3} / {ms(best[1]):F3} / {ms(best[2]):F3} ms; GC gen0/gen2 so far {GC.CollectionCount(0)}/{GC.CollectionCount(2)}");
            int g = cell == "lstm" ? 512 : 384;
            var hp = Tensor.RandN(gen, 32, 128).ToArray();
            var w = Tensor.RandN(gen, g, 128).ToArray();
            var wt = Tensor.RandN(gen, 128, g).ToArray();
            var pre = new float[32 * g];
            var dpre = Tensor.RandN(gen, 32, g).ToArray();
            var dh = new float[32 * 128];
            Console.WriteLine($"{cell} per time step: h·W_hhᵀ {Time(() => GradFlow.Kernels.Gemm.Multiply(false, true, 32, g, 128, 1f, hp, 128, w, 128, 1f, pre, g)) * 1000:F1} µs, " +
                $"h·(W_hhᵀ stored) {Time(() => GradFlow.Kernels.Gemm.Multiply(false, false, 32, g, 128, 1f, hp, 128, wt, g, 1f, pre, g)) * 1000:F1} µs, " +
                $"dA·W_hh {Time(() => GradFlow.Kernels.Gemm.Multiply(false, false, 32, 128, g, 1f, dpre, g, w, 128, 1f, dh, 128)) * 1000:F1} µs, " +
                $"gates forward / backward {Time(() => GateForward(cell, pre, hp)) * 1000:F1} / {Time(() => GateBackward(cell, pre, hp, dpre)) * 1000:F1} µs");
        }
    }

    private static readonly float[] S1 = new float[32 * 128], S2 = new float[32 * 128], S3 = new float[32 * 128], S4 = new float[32 * 512];

    private static void GateForward(string cell, float[] pre, float[] hp)
    {
        if (cell == "lstm") GradFlow.Kernels.RecurrentKernels.LstmForward<float>(32, 128, pre, hp, S4, S1, S2, S3);
        else GradFlow.Kernels.RecurrentKernels.GruForward<float>(32, 128, pre, pre, hp, S4.AsSpan(0, 32 * 384), S1, S2);
    }

    private static void GateBackward(string cell, float[] gates, float[] hp, float[] d)
    {
        if (cell == "lstm") GradFlow.Kernels.RecurrentKernels.LstmBackward<float>(32, 128, gates, hp, hp, S1, S2, S4, S3);
        else GradFlow.Kernels.RecurrentKernels.GruBackward<float>(32, 128, gates, hp, hp, S1, d, S4.AsSpan(0, 32 * 384), S2);
    }

    private static void Mlp()
    {
        foreach (bool release in new[] { false, true })
        {
            Phases("mlp-wide", [784, 1024, 1024, 1024, 10], 128, () => new Relu(), release);
            Phases("mlp-deep-narrow", [784, .. Enumerable.Repeat(64, 33), 10], 64, () => new Tanh(), release);
        }
        // The GEMMs of one mlp-wide step: forward x·Wᵀ, backward dx = g·W, dW = gᵀ·x.
        Gemms("mlp-wide", [784, 1024, 1024, 1024, 10], 128);
        Gemms("mlp-deep-narrow", [784, 64, 64, 10], 64);
        // The forward op of a layer with its bias (the bias goes through the GEMM's epilogue).
        foreach (var (rows, inF, outF) in new[] { (128, 1024, 1024), (64, 64, 64) })
        {
            var gen = new Generator(2);
            var x = Tensor.RandN(gen, rows, inF);
            var w = Tensor.RandN(gen, outF, inF);
            var b = Tensor.RandN(gen, outF);
            double ms = Time(() => Tensor.Linear(x, w, b));
            Console.WriteLine($"linear {rows}x{inF}->{outF} with bias: {ms:F4} ms");
        }
        // The other pieces of an mlp-deep-narrow layer (64×64, float32): ops with a graph, and bare kernels.
        {
            var gen = new Generator(3);
            var x = Tensor.RandN(gen, 64, 64);
            var w = Tensor.RandN(gen, 64, 64);
            var b = Tensor.RandN(gen, 64);
            w.RequiresGrad = true;
            b.RequiresGrad = true;
            var xs = x.ToArray();
            var ys = new float[xs.Length];
            var gs = Tensor.RandN(gen, 64, 64).ToArray();
            var db = new float[64];
            Console.WriteLine($"deep-narrow pieces (64x64): linear op with grad {Time(() => Tensor.Linear(x, w, b)):F4} ms, " +
                $"tanh op with grad {Time(() => Tensor.Linear(x, w, b).Tanh()) - Time(() => Tensor.Linear(x, w, b)):F4} ms, " +
                $"tanh kernel {Time(() => GradFlow.Kernels.ActivationKernels.Tanh<float>(xs, ys)):F4} ms, " +
                $"tanh backward kernel {Time(() => GradFlow.Kernels.ActivationKernels.TanhBackward<float>(xs, gs, ys)):F4} ms, " +
                $"bias gradient sum {Time(() => GradFlow.Kernels.ReduceKernels.Sum<float>(gs, 1, 64, 64, db)):F4} ms");
            var xg = Tensor.RandN(gen, 64, 64);
            xg.RequiresGrad = true;
            var seed = Tensor.RandN(gen, 64, 64);
            double fwd = Time(() => Tensor.Linear(xg, w, b, GradFlow.Kernels.FusedActivation.Tanh));
            double both = Time(() =>
            {
                Tensor.Linear(xg, w, b, GradFlow.Kernels.FusedActivation.Tanh).Backward(seed);
                xg.Grad = null; w.Grad = null; b.Grad = null;
            });
            Console.WriteLine($"fused linear+tanh 64x64: forward {fwd:F4} ms, backward through the engine {both - fwd:F4} ms " +
                $"(its kernels: tanh backward, dx, dW GEMMs, bias sum)");
        }
    }

    private static void Phases(string name, int[] dims, int batch, Func<Module> act, bool release)
    {
        if (release) name += " (releaseIntermediates)";
        var gen = new Generator(0);
        var model = new Sequential();
        for (int i = 0; i + 1 < dims.Length; i++)
        {
            model.Add(new Linear(dims[i], dims[i + 1], gen));
            if (i + 2 < dims.Length) model.Add(act());
        }
        var x = Tensor.RandN(gen, batch, dims[0]);
        var y = IndexTensor.FromArray(Enumerable.Range(0, batch).Select(_ => gen.NextInt(10)).ToArray(), batch);
        var opt = new Sgd(model.Parameters(), learningRate: 0.01, momentum: 0.9);
        var t = new double[5];
        var best = new double[] { double.MaxValue, double.MaxValue, double.MaxValue, double.MaxValue, double.MaxValue };
        int steps = 0;
        var sw = Stopwatch.StartNew();
        while (steps < 20 || sw.Elapsed.TotalSeconds < 3)
        {
            long t0 = Stopwatch.GetTimestamp();
            opt.ZeroGrad();
            var logits = model.Forward(x);
            long t1 = Stopwatch.GetTimestamp();
            var loss = Losses.CrossEntropy(logits, y);
            long t2 = Stopwatch.GetTimestamp();
            loss.Backward(releaseIntermediates: release);
            long t3 = Stopwatch.GetTimestamp();
            opt.Step();
            long t4 = Stopwatch.GetTimestamp();
            if (sw.Elapsed.TotalSeconds > 1) // after warm-up
            {
                t[0] += t1 - t0; t[1] += t2 - t1; t[2] += t3 - t2; t[3] += t4 - t3;
                best[0] = Math.Min(best[0], t1 - t0); best[1] = Math.Min(best[1], t2 - t1);
                best[2] = Math.Min(best[2], t3 - t2); best[3] = Math.Min(best[3], t4 - t3); best[4] = Math.Min(best[4], t4 - t0);
                steps++;
            }
        }
        double ms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency / steps;
        Console.WriteLine($"{name}: {steps} steps, ms/step forward {ms(t[0]):F3} loss {ms(t[1]):F3} backward {ms(t[2]):F3} step {ms(t[3]):F3} total {ms(t[0] + t[1] + t[2] + t[3]):F3}");
        double bms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency;
        Console.WriteLine($"{name}: fastest forward {bms(best[0]):F3} loss {bms(best[1]):F3} backward {bms(best[2]):F3} step {bms(best[3]):F3} whole step {bms(best[4]):F3} ms");
    }

    private static void Gemms(string name, int[] dims, int batch)
    {
        var gen = new Generator(1);
        double total = 0;
        for (int l = 0; l + 1 < dims.Length; l++)
        {
            int inF = dims[l], outF = dims[l + 1];
            var x = Tensor.RandN(gen, batch, inF).ToArray();
            var w = Tensor.RandN(gen, outF, inF).ToArray();
            var g = Tensor.RandN(gen, batch, outF).ToArray();
            var yv = new float[batch * outF];
            var dx = new float[batch * inF];
            var dw = new float[outF * inF];
            double f = Time(() => GradFlow.Kernels.Gemm.Multiply(false, true, batch, outF, inF, 1f, x, inF, w, inF, 0f, yv, outF));
            double bx = l == 0 ? 0 : Time(() => GradFlow.Kernels.Gemm.Multiply(false, false, batch, inF, outF, 1f, g, outF, w, inF, 0f, dx, inF));
            double bw = Time(() => GradFlow.Kernels.Gemm.Multiply(true, false, outF, inF, batch, 1f, g, outF, x, inF, 0f, dw, inF));
            double gfl(double ms) => 2.0 * batch * inF * outF / (ms * 1e6);
            Console.WriteLine($"{name} layer {l + 1} ({inF}->{outF}): fwd {f:F3} ms ({gfl(f):F1} GFLOP/s), dx {bx:F3} ms ({(bx > 0 ? gfl(bx) : 0):F1}), dW {bw:F3} ms ({gfl(bw):F1})");
            total += f + bx + bw;
        }
        Console.WriteLine($"{name}: GEMM total {total:F3} ms per step");
    }

    /// <summary>Fastest of many calls, in ms: robust against other processes on a shared machine.</summary>
    private static double Time(Action a)
    {
        for (int i = 0; i < 5; i++) a();
        double best = double.MaxValue;
        var sw = Stopwatch.StartNew();
        int n = 0;
        while (sw.Elapsed.TotalSeconds < 0.4 || n < 10)
        {
            long t0 = Stopwatch.GetTimestamp();
            a();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            n++;
        }
        return best;
    }
}

/// <summary>The AVX-512 tile with other blocking parameters, for the blocking A/B of <c>--profile blocking</c>.</summary>
internal readonly unsafe struct Avx512Blocking<TK, TM> : GradFlow.Kernels.IMicroKernel<float>
    where TK : struct, IConst where TM : struct, IConst
{
    public static int MR => 12;
    public static int NR => 32;
    public static int KC => TK.Value;
    public static int MC => TM.Value;
    public static bool HasDirect => true;
    public static void Run(nint kc, float* a, float* b, float* c, nint ldc, float alpha, float beta) =>
        GradFlow.Kernels.GemmKernelF32Avx512.Run(kc, a, b, c, ldc, alpha, beta);
    public static void RunDirect(nint kc, float* a, nint rsA, nint csA, float* b, nint ldb, float* c, nint ldc, float alpha, float beta) =>
        GradFlow.Kernels.GemmKernelF32Avx512.RunDirect(kc, a, rsA, csA, b, ldb, c, ldc, alpha, beta);
}

internal interface IConst { static abstract int Value { get; } }
internal struct C144 : IConst { public static int Value => 144; }
internal struct C256 : IConst { public static int Value => 256; }
internal struct C512 : IConst { public static int Value => 512; }
internal struct C768 : IConst { public static int Value => 768; }
internal struct C384 : IConst { public static int Value => 384; }
internal struct C96 : IConst { public static int Value => 96; }
internal struct C240 : IConst { public static int Value => 240; }

internal static class BlockingAb
{
    /// <summary>Random operands of an m×n×k product (A and B as m×k and k×n elements, a bias of n) and its C, seed 0.</summary>
    internal static (float[] A, float[] B, float[] Bias, float[] C) Operands(int m, int n, int k)
    {
        var gen = new GradFlow.Tensors.Generator(0);
        return (GradFlow.Tensors.Tensor.RandN(gen, m, k).ToArray(), GradFlow.Tensors.Tensor.RandN(gen, k, n).ToArray(),
            GradFlow.Tensors.Tensor.RandN(gen, n).ToArray(), new float[m * n]);
    }

    /// <summary>
    /// Runs the variants one after another in rounds for <paramref name="seconds"/> (the first round a warm-up), each
    /// <paramref name="reps"/> times per round; returns each variant's "best X median Y" in GFLOP/s for
    /// <paramref name="gflop"/> per call.
    /// </summary>
    private static string[] Alternate(IReadOnlyList<Action> variants, double seconds, double gflop, int reps = 1)
    {
        var times = variants.Select(_ => new List<double>()).ToArray();
        var sw = Stopwatch.StartNew();
        for (int round = 0; sw.Elapsed.TotalSeconds < seconds; round++)
            for (int v = 0; v < variants.Count; v++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int r = 0; r < reps; r++) variants[v]();
                if (round > 0) times[v].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds / reps);
            }
        return times.Select(t => $"best {gflop / t.Min():F0} median {gflop / t.Order().ElementAt(t.Count / 2):F0}").ToArray();
    }

    /// <summary>
    /// The GEMM's task loops with the column panels outermost (sub-blocks of 1 panel, the order before 2026-12-06), the default
    /// rule (<c>SubBlocksFor</c>) and sub-blocks of <c>SubBlockPanels</c> panels (and half and twice that) forced, alternating in one process on the square gemm-N and the
    /// shapes of mlp-wide and transformer-small, on the best instruction set's tile (<c>--profile subblock</c>, named only).
    /// </summary>
    public static unsafe void SubBlocks()
    {
        var shapes = new (string Name, int M, int N, int K, bool TA, bool TB, bool Bias)[]
        {
            ("gemm-1024", 1024, 1024, 1024, false, false, false), ("gemm-2048", 2048, 2048, 2048, false, false, false),
            ("tf ff1 fwd", 4096, 1024, 256, false, true, true), ("tf ff2 dX", 4096, 1024, 256, false, false, false),
            ("tf ff2 fwd", 4096, 256, 1024, false, true, true), ("tf ff1 dX", 4096, 256, 1024, false, false, false),
            ("tf qkv dX", 4096, 256, 768, false, false, false),
            ("wide fwd", 128, 1024, 1024, false, true, true), ("wide dW", 1024, 1024, 128, true, false, false),
        };
        bool avx512 = GradFlow.Kernels.KernelIsa.Best == GradFlow.Kernels.InstructionSet.Avx512;
        int standard = avx512 ? GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx512>.SubBlockPanels
            : GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx2>.SubBlockPanels;
        int[] sizes = [1, 0, Math.Max(1, standard / 2), standard, 2 * standard];
        Console.WriteLine($"L2 {GradFlow.Kernels.CacheSizes.L2Bytes >> 10} KiB, {(avx512 ? "AVX-512" : "AVX2")} tile, {GradFlow.Kernels.KernelThreads.Count} thread(s); GFLOP/s with sub-blocks of "
            + string.Join(" / ", sizes.Select(s => s == 0 ? "the default rule" : $"{s}")) + " panels");
        foreach (var (name, m, n, k, ta, tb, bias) in shapes)
        {
            var (a, b, bv, c) = Operands(m, n, k);
            fixed (float* pa = a, pb = b, pc = c, pbias = bv)
            {
                var p = new GradFlow.Kernels.Problem<float>(1, ta, tb, m, n, k, 1f, pa, ta ? m : k, 0, pb, tb ? k : n, 0, 0f, pc, n, 0, bias ? pbias : null);
                var rates = Alternate(sizes.Select(size => (Action)(() =>
                {
                    GradFlow.Kernels.Gemm.SubBlockPanels = size;
                    if (avx512) GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx512>.Run(p, GradFlow.Kernels.GemmPath.Auto);
                    else GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx2>.Run(p, GradFlow.Kernels.GemmPath.Auto);
                })).ToArray(), 8, 2.0 * m * n * k / 1e9);
                GradFlow.Kernels.Gemm.SubBlockPanels = 0;
                Console.WriteLine($"  {name,-11} {string.Join(" | ", rates)}");
            }
        }
    }

    /// <summary>
    /// The AVX-512 GEMM's large products as per-thread slabs or spread over the tasks of shared k blocks, alternating in
    /// one process, fastest and median of each: the square gemm-N and the shapes of transformer-small's and mlp-wide's
    /// steps, and the slabs with a non-transposed A read in place (<c>--profile slabs</c>, named only).
    /// </summary>
    public static unsafe void Slabs()
    {
        var shapes = new (string Name, int M, int N, int K, bool TA, bool TB, bool Bias)[]
        {
            ("gemm-512", 512, 512, 512, false, false, false), ("gemm-1024", 1024, 1024, 1024, false, false, false),
            ("gemm-2048", 2048, 2048, 2048, false, false, false),
            ("tf qkv fwd", 4096, 768, 256, false, true, true), ("tf ff1 fwd", 4096, 1024, 256, false, true, true),
            ("tf ff2 fwd", 4096, 256, 1024, false, true, true), ("tf ff1 dX", 4096, 256, 1024, false, false, false),
            ("tf ff2 dX", 4096, 1024, 256, false, false, false), ("tf qkv dX", 4096, 256, 768, false, false, false),
            ("wide fwd", 128, 1024, 1024, false, true, true), ("wide dX", 128, 1024, 1024, false, false, false),
            ("wide dW", 1024, 1024, 128, true, false, false),
        };
        foreach (var (name, m, n, k, ta, tb, bias) in shapes)
        {
            var (a, b, bv, c) = BlockingAb.Operands(m, n, k);
            fixed (float* pa = a, pb = b, pc = c, pbias = bv)
            {
                var p = new GradFlow.Kernels.Problem<float>(1, ta, tb, m, n, k, 1f, pa, ta ? m : k, 0, pb, tb ? k : n, 0, 0f, pc, n, 0, bias ? pbias : null);
                int[] modes = [0, 1, 2];
                var rates = Alternate(modes.Select(mode => (Action)(() =>
                {
                    GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx512>.Slabbing = mode > 0;
                    GradFlow.Kernels.Gemm.InPlaceA = mode == 2;
                    GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx512>.Run(p, GradFlow.Kernels.GemmPath.Auto);
                })).ToArray(), 6, 2.0 * m * n * k / 1e9);
                GradFlow.Kernels.GemmDriver<float, GradFlow.Kernels.GemmKernelF32Avx512>.Slabbing = true;
                GradFlow.Kernels.Gemm.InPlaceA = true;
                Console.WriteLine($"{name} {m}×{n}×{k}, {GradFlow.Kernels.KernelThreads.Count} thread(s), GFLOP/s: " + string.Join("; ", modes.Select((v, i) =>
                    $"{(v == 2 ? "slabs, A in place" : v == 1 ? "slabs" : "shared k blocks")} {rates[i]}")));
            }
        }
    }

    /// <summary>
    /// The weight-gradient shapes of transformer-small (dW = dYᵀ·X over 4 096 tokens: A transposed, k = 4 096) with
    /// the AVX-512 tile at other KC and MC, alternating, fastest and median of each (<c>--profile blocking-dw</c>).
    /// </summary>
    public static unsafe void WeightGradients()
    {
        foreach (var (name, m, n, k) in new[] { ("qkv dW", 768, 256, 4096), ("ff1 dW", 1024, 256, 4096), ("ff2 dW", 256, 1024, 4096), ("out dW", 256, 256, 4096) })
        {
            var gen = new GradFlow.Tensors.Generator(0);
            var a = GradFlow.Tensors.Tensor.RandN(gen, k, m).ToArray(); // dY [k, m], read transposed
            var b = GradFlow.Tensors.Tensor.RandN(gen, k, n).ToArray();
            var c = new float[m * n];
            fixed (float* pa = a, pb = b, pc = c)
            {
                var p = new GradFlow.Kernels.Problem<float>(1, true, false, m, n, k, 1f, pa, m, 0, pb, n, 0, 0f, pc, n, 0);
                var at = new float[m * k];
                for (int i = 0; i < m; i++) for (int q = 0; q < k; q++) at[i * k + q] = a[q * m + i];
                var pat = GCHandle.Alloc(at, GCHandleType.Pinned);
                var pN = new GradFlow.Kernels.Problem<float>(1, false, false, m, n, k, 1f, (float*)pat.AddrOfPinnedObject(), k, 0, pb, n, 0, 0f, pc, n, 0);
                var variants = new (string Name, Action Run)[]
                {
                    ("A not transposed", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C144>>.Run(pN, GradFlow.Kernels.GemmPath.Packed)),
                    ("no prefetch", () => { GradFlow.Kernels.GemmPack.PrefetchPack = false; GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed); GradFlow.Kernels.GemmPack.PrefetchPack = true; }),
                    ("KC512 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC256 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C256, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC256 MC240", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C256, C240>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC768 MC96", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C768, C96>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                };
                var dstA = GC.AllocateArray<float>(144 * 512, pinned: true);
                var dstB = GC.AllocateArray<float>(32 * 512, pinned: true);
                double bestA = double.MaxValue, bestB = double.MaxValue;
                fixed (float* dstBig = dstA, db = dstB)
                    for (int rep = 0; rep < 20; rep++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        for (int d0 = 0; d0 < k; d0 += 512)
                            for (int ip = 0; ip < m / 12; ip += 12) GradFlow.Kernels.GemmPack.PackAPanels(pa, m, true, ip * 12, Math.Min(144, m - ip * 12), d0, 512, 12, dstBig);
                        bestA = Math.Min(bestA, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                        t0 = Stopwatch.GetTimestamp();
                        for (int d0 = 0; d0 < k; d0 += 512)
                            for (int jp = 0; jp < n / 32; jp++) GradFlow.Kernels.GemmPack.PackB(pb, n, false, d0, 512, jp * 32, 32, 32, db);
                        bestB = Math.Min(bestB, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    }
                Console.WriteLine($"  1 thread: packing all of A {bestA:F2} ms ({4.0 * m * k / bestA / 1e6:F1} GB/s read), all of B {bestB:F2} ms; the product at 210 GFLOP/s/core: {2.0 * m * n * k / 210e6:F2} ms");
                var rates = Alternate(variants.Select(v => v.Run).ToArray(), 8, 2.0 * m * n * k / 1e9);
                Console.WriteLine($"{name} {m}×{n}×{k}, {GradFlow.Kernels.KernelThreads.Count} thread(s): " + string.Join("; ", variants.Select((v, i) => $"{v.Name} {rates[i]}")));
            }
        }
    }

    public static unsafe void Run()
    {
        // transformer-small's forward and dX shapes (k 768-1024 runs two k blocks at KC 512, four at 256)
        foreach (var (name, m, n, k, tb, bias) in new[] { ("tf ff2 fwd", 4096, 256, 1024, true, true), ("tf ff1 dX", 4096, 256, 1024, false, false),
            ("tf qkv dX", 4096, 256, 768, false, false), ("tf qkv fwd", 4096, 768, 256, true, true) })
        {
            var (a, b, bv, c) = BlockingAb.Operands(m, n, k);
            fixed (float* pa = a, pb = b, pc = c, pbias = bv)
            {
                var p = new GradFlow.Kernels.Problem<float>(1, false, tb, m, n, k, 1f, pa, k, 0, pb, tb ? k : n, 0, 0f, pc, n, 0, bias ? pbias : null);
                var variants = new (string Name, Action Run)[]
                {
                    ("KC256 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C256, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC384 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C384, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC512 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                };
                var rates = Alternate(variants.Select(v => v.Run).ToArray(), 10, 2.0 * m * n * k / 1e9);
                Console.WriteLine($"{name} {m}×{n}×{k}, {GradFlow.Kernels.KernelThreads.Count} thread(s): " + string.Join("; ", variants.Select((v, i) => $"{v.Name} {rates[i]}")));
            }
        }
        foreach (int n in new[] { 512, 1024, 2048 })
        {
            var gen = new GradFlow.Tensors.Generator(0);
            var a = GradFlow.Tensors.Tensor.RandN(gen, n, n).ToArray();
            var b = GradFlow.Tensors.Tensor.RandN(gen, n, n).ToArray();
            var c = new float[n * n];
            fixed (float* pa = a, pb = b, pc = c)
            {
                var p = new GradFlow.Kernels.Problem<float>(1, false, false, n, n, n, 1f, pa, n, 0, pb, n, 0, 0f, pc, n, 0);
                var variants = new (string Name, Action Run)[]
                {
                    ("KC256 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C256, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC512 MC96", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C96>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC512 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC512 MC240", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C512, C240>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC768 MC96", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C768, C96>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                    ("KC768 MC144", () => GradFlow.Kernels.GemmDriver<float, Avx512Blocking<C768, C144>>.Run(p, GradFlow.Kernels.GemmPath.Packed)),
                };
                var rates = Alternate(variants.Select(v => v.Run).ToArray(), 12, 2.0 * n * n * n / 1e9, reps: Math.Max(1, (int)(4e8 / ((double)n * n * n))));
                if (n == 2048)
                {
                    var dst = GC.AllocateArray<float>(156 * 512, pinned: true);
                    nint src = (nint)pa, d = (nint)Unsafe.AsPointer(ref dst[0]);
                    int lda = n;
                    double best = double.MaxValue;
                    for (int rep = 0; rep < 2000; rep++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        for (int ip = 0; ip < 12; ip++) GradFlow.Kernels.GemmPack.PackA((float*)src, lda, false, ip * 12, 12, 0, 512, 12, (float*)d + ip * 12 * 512);
                        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                    }
                    Console.WriteLine($"PackA of one 144×512 block of A (row-major, lda {n}): {best:F1} µs; a {n}³ product packs {(double)n * n / (144 * 512):F0} such blocks");
                }
                Console.WriteLine($"gemm-{n}, {GradFlow.Kernels.KernelThreads.Count} thread(s): " + string.Join("; ", variants.Select((v, i) => $"{v.Name} {rates[i]}")));
            }
        }
    }
}
