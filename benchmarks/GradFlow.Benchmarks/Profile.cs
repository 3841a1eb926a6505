// Benchmark-only profiling (`GradFlow.Benchmarks --profile [--threads T]`): Stopwatch timings of the
// phases of an mlp-wide and an mlp-deep-narrow training step (forward, loss, backward, optimiser
// step) and of each GEMM shape those steps run, so tuning starts from measurements, not guesses.
using System.Diagnostics;
using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

internal static class Profile
{
    public static void Run(int threads)
    {
        GradFlow.Kernels.KernelThreads.SetCount(threads);
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
