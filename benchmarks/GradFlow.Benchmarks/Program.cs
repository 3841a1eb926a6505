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
using GradFlow.Kernels;
using GradFlow.Tensors;

var options = Options.Parse(args);
if (options is null) return 2;
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
    double MaxInterference, int Retries, double QuietPct, double MaxWait, string? Child)
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
                    "[--warmup-seconds S] [--max-interference P] [--retries R] [--quiet-pct P] [--max-wait S]");
                return null;
            }
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

/// <summary>The table of workloads (add mlp-wide, lstm, ... here as they become available).</summary>
internal static class Workloads
{
    public static readonly Workload[] All =
    [
        new("gemm-128", o => Gemm(128, o)),
        new("gemm-512", o => Gemm(512, o)),
        new("gemm-1024", o => Gemm(1024, o)),
        new("gemm-2048", o => Gemm(2048, o)),
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
}

/// <summary>Timing, isolation and machine information, as in the reference script.</summary>
internal static class Harness
{
    private static readonly string[] EnvVars =
        ["DOTNET_EnableAVX512", "DOTNET_EnableAVX2", "DOTNET_TieredPGO", "DOTNET_TieredCompilation", "DOTNET_gcServer", "DOTNET_GCgen0size"];

    private static double _foreign, _wall;

    public static Dictionary<string, object> RunWorkload(string name, Options o)
    {
        KernelThreads.SetCount(o.Threads);
        double baseRss = RssMb("VmRSS:");
        var w = Workloads.All.First(x => x.Name == name);
        var result = new Dictionary<string, object> { ["name"] = name };
        foreach (var (k, v) in w.Run(o)) result[k] = v;
        result["blocks"] = o.Blocks;
        result["threads"] = KernelThreads.Count;
        result["base_rss_mb"] = baseRss;
        result["peak_rss_mb"] = RssMb("VmHWM:");
        result["interference_pct"] = _wall > 0 ? 100.0 * Math.Max(0, _foreign) / (_wall * Environment.ProcessorCount) : 0.0;
        return result.ToDictionary(kv => kv.Key, kv => kv.Value is double d ? Math.Round(d, 4) : kv.Value);
    }

    /// <summary>Warm-up, calibration and timed blocks; returns (median, min, max) iterations/s and iterations per block.</summary>
    public static (double Median, double Min, double Max, int Iters) Measure(Action step, Options o)
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
        int iters = Math.Max(1, (int)Math.Round(o.BlockSeconds / (el / n), MidpointRounding.ToEven));
        var rates = new double[o.Blocks];
        for (int blk = 0; blk < o.Blocks; blk++)
        {
            double busy0 = SystemBusySeconds(), own0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < iters; i++) step();
            double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            _foreign += SystemBusySeconds() - busy0 - (Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - own0);
            _wall += wall;
            rates[blk] = iters / wall;
        }
        var sorted = rates.Order().ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return (median, sorted[0], sorted[^1], iters);
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
