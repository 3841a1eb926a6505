using System.Diagnostics;
using GradFlow.Diagnostics;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Training;

/// <summary>
/// <c>mpirun --oversubscribe -np N gradflow train</c> on localhost against one process: the same weights bit for bit for
/// N = 1, 2, 3, a resume with another N, and a rank killed with SIGKILL (docs/distributed.md). Each run is a few seconds of
/// spirals on a small MLP with batch norm and dropout, so the replayed running statistics and the per-micro-batch masks are covered.
/// </summary>
public class MpiTrainingTests
{
    private const string Model = "mlp 2-32x2-2 act=relu norm=batch dropout=0.1";

    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "GradFlow.Cli.dll");

    private static string[] Train(string dir, int epochs, params string[] extra) =>
    [
        "train", "--data", "spirals", "--model", Model, "--batch-size", "24", "--micro-batches", "6", "--train-limit", "480",
        "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture), "--threads", "1", "--json", .. extra, dir,
    ];

    [Fact]
    public async Task Train_OneTwoAndThreeProcesses_WriteTheSameWeightsAndMonitorSamplesBitForBit()
    {
        using var root = new TempDir();
        // monitored: every process takes its micro-batches' statistics, combined in micro-batch order (docs/distributed.md)
        string[] monitor = ["--monitor", "--monitor-every", "7"];
        var one = await Run(1, Train(root.Sub("n1"), 2, [.. monitor, "--out"]));
        Assert.True(one.Code == 0, one.Output);
        byte[] expected = File.ReadAllBytes(Path.Combine(root.Sub("n1"), "checkpoints", "epoch-0002.safetensors"));
        string[] expectedSamples = Samples(root.Sub("n1"));
        Assert.Equal(6, expectedSamples.Length); // 40 steps, sampled at 0, 7, …, 35
        string expectedDiagnosis = File.ReadAllText(Path.Combine(root.Sub("n1"), "diagnosis.json"));
        foreach (int n in new[] { 2, 3 })
        {
            var run = await Run(n, Train(root.Sub($"n{n}"), 2, [.. monitor, "--out"]));
            Assert.True(run.Code == 0, run.Output);
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(root.Sub($"n{n}"), "checkpoints", "epoch-0002.safetensors")));
            // rank 0 alone wrote the metrics (one line per epoch and per sample, not one per process), the same samples bit for bit
            Assert.Equal(expectedSamples, Samples(root.Sub($"n{n}")));
            // beside the samples: the two epochs, the watch line (the chance level and the first step's prediction) and the end line
            var lines = File.ReadAllLines(Path.Combine(root.Sub($"n{n}"), "metrics.jsonl"));
            Assert.Equal(4, lines.Length - expectedSamples.Length);
            Assert.Single(lines, MonitorLog.IsWatchLine);
            Assert.Equal(expectedDiagnosis, File.ReadAllText(Path.Combine(root.Sub($"n{n}"), "diagnosis.json")));
        }
    }

    [Fact]
    public async Task Train_ModelOfSeveralGradientBuckets_OneAndTwoProcessesWriteTheSameWeightsBitForBit()
    {
        // two 512×512 layers (1 MiB each): 3 buckets, whose all-to-alls start during backward and are in flight together
        using var root = new TempDir();
        string[] Args(string dir) =>
        [
            "train", "--data", "spirals", "--model", "mlp 2-512x3-2 act=relu norm=batch dropout=0.1", "--batch-size", "24", "--micro-batches", "6",
            "--train-limit", "240", "--epochs", "1", "--threads", "1", "--json", "--out", dir,
        ];
        var one = await Run(1, Args(root.Sub("n1")));
        Assert.True(one.Code == 0, one.Output);
        var two = await Run(2, Args(root.Sub("n2")));
        Assert.True(two.Code == 0, two.Output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(root.Sub("n1"), "checkpoints", "epoch-0001.safetensors")),
            File.ReadAllBytes(Path.Combine(root.Sub("n2"), "checkpoints", "epoch-0001.safetensors")));
    }

    [Fact]
    public async Task Sweep_OneAndTwoProcesses_WriteTheSameResultsFileAndTable()
    {
        // six 30-step points handed out to the processes as they free up; rank 0 writes them in grid order
        using var root = new TempDir();
        string[] Sweep(string dir) =>
        [
            "sweep", "--data", "spirals", "--model", "mlp 2-16x2-2 act=tanh", "--batch-size", "24", "--train-limit", "240", "--threads", "1",
            "--grid", "lr=0.3,0.03,0.003", "--grid", "optimizer=sgd,adam", "--steps", "30", "--out", dir,
        ];
        var one = await Run(1, Sweep(root.Sub("n1")));
        Assert.True(one.Code == 0, one.Output);
        var two = await Run(2, Sweep(root.Sub("n2")));
        Assert.True(two.Code == 0, two.Output);
        string expected = File.ReadAllText(Path.Combine(root.Sub("n1"), "results.jsonl"));
        Assert.Equal(6, expected.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(expected, File.ReadAllText(Path.Combine(root.Sub("n2"), "results.jsonl")));
        Assert.Equal(File.ReadAllText(Path.Combine(root.Sub("n1"), "results.md")), File.ReadAllText(Path.Combine(root.Sub("n2"), "results.md")));
        Assert.Contains("over 2 processes", two.Output);
    }

    [Fact]
    public async Task Evaluate_OneAndTwoProcesses_PrintTheSameVerdictsInCatalogueOrder()
    {
        // four entry-and-seed runs handed out to the processes, sent back to rank 0 as JSON (CatalogueRunWire), printed in order
        string catalogue = Path.Combine(GradFlow.Tests.TestSupport.RepoPaths.Root, "tests", "catalogue", "catalogue.json");
        string[] args = ["evaluate", "--catalogue", catalogue, "--only", "teacher-relu-he-d4,teacher-relu-nan-lr", "--seeds", "5,6", "--trial-steps", "20"];
        var one = await Run(1, args);
        Assert.True(one.Code == 0, one.Output);
        var two = await Run(2, args);
        Assert.True(two.Code == 0, two.Output);
        // each line without its wall time ("0.8s", "(4 runs, 11 s)")
        // (without the keypad-mode escape "ESC[?1h ESC=" that a process under mpirun may print first)
        static string[] Lines(string output) => [.. System.Text.RegularExpressions.Regex.Replace(output, @"\e\[[0-9;?]*[a-zA-Z]|\e=", "").Split('\n').Where(l => l.StartsWith("ok ", StringComparison.Ordinal) || l.StartsWith("MISS", StringComparison.Ordinal)
            || l.StartsWith("detected", StringComparison.Ordinal)).Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\s+[0-9.]+ ?s\b|, [0-9]+ s\)", ""))];
        string[] expected = Lines(one.Output);
        Assert.Equal(5, expected.Length);
        Assert.True(expected[3].Contains("teacher-relu-nan-lr              seed 6", StringComparison.Ordinal), string.Join("\n", expected));
        Assert.Equal(expected, Lines(two.Output));
    }

    [Fact]
    public async Task Repair_OneAndTwoProcesses_WriteTheSameRepair()
    {
        // five attempts, kept and rejected; with 2 processes the next 2 candidates run at once, one per process
        using var root = new TempDir();
        string[] Repair(string dir) =>
        [
            "repair", "--data", "spirals", "--model", "mlp 2-8x2-2 act=relu", "--lr", "3", "--optimizer", "adam", "--threads", "1",
            "--trial-steps", "60", "--attempts", "6", "--out", dir,
        ];
        var one = await Run(1, Repair(root.Sub("n1")));
        Assert.True(one.Code == 3, one.Output); // the last trial is not healthy yet
        var two = await Run(2, Repair(root.Sub("n2")));
        Assert.True(two.Code == 3, two.Output);
        string expected = File.ReadAllText(Path.Combine(root.Sub("n1"), "repair.json"));
        Assert.Contains("\"accepted\": false", expected);
        Assert.Equal(expected, File.ReadAllText(Path.Combine(root.Sub("n2"), "repair.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(root.Sub("n1"), "config.json")), File.ReadAllText(Path.Combine(root.Sub("n2"), "config.json")));
    }

    [Fact]
    public async Task Train_RecurrentModelMonitored_OneAndTwoProcessesWriteTheSameSignalThroughTime()
    {
        using var root = new TempDir();
        // 4 micro-batches of 6 sequences of 10 steps: the signal through time combined over micro-batches and processes
        static string[] Args(string dir) =>
        [
            "train", "--data", "adding", "--seq-len", "10", "--model", "rnn 2-16x2-1", "--batch-size", "24", "--micro-batches", "4",
            "--train-limit", "240", "--epochs", "1", "--threads", "1", "--json", "--monitor", "--monitor-every", "3", "--out", dir,
        ];
        var one = await Run(1, Args(root.Sub("n1")));
        Assert.True(one.Code == 0, one.Output);
        var two = await Run(2, Args(root.Sub("n2")));
        Assert.True(two.Code == 0, two.Output);
        string[] expected = Samples(root.Sub("n1"));
        Assert.Equal(4, expected.Length); // 10 steps, sampled at 0, 3, 6, 9
        Assert.All(expected, l => Assert.Contains("\"time_signal\":[[", l, StringComparison.Ordinal));
        Assert.Equal(expected, Samples(root.Sub("n2")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(root.Sub("n1"), "checkpoints", "epoch-0001.safetensors")),
            File.ReadAllBytes(Path.Combine(root.Sub("n2"), "checkpoints", "epoch-0001.safetensors")));
    }

    /// <summary>The monitor samples of a run's metrics.jsonl (its epoch lines carry their seconds, which differ run to run).</summary>
    private static string[] Samples(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Where(l => l.Contains("\"type\":\"step\"", StringComparison.Ordinal)).ToArray();

    [Theory]
    [InlineData(1)] // one micro-batch per process
    [InlineData(2)] // two per process: each process's share in one forward (docs/distributed.md)
    public async Task Train_SyncBatchNormOverTwoProcesses_GivesTheWeightsOfOneProcessWithTheWholeBatch(int microBatchesPerProcess)
    {
        // SGD (Adam would turn the rounding noise in the zero gradient of a bias before a batch norm into whole steps); no dropout
        // (its masks are drawn per micro-batch); against the whole batch in one process
        using var root = new TempDir();
        string[] Args(string dir, params string[] extra) =>
        [
            "train", "--data", "spirals", "--model", "mlp 2-32x2-2 act=relu norm=batch", "--batch-size", "24", "--train-limit", "480",
            "--epochs", "2", "--optimizer", "sgd", "--lr", "0.1", "--threads", "1", "--json", .. extra, "--out", dir,
        ];
        var one = await Run(1, Args(root.Sub("one")));
        Assert.True(one.Code == 0, one.Output);
        var two = await Run(2, Args(root.Sub("two"), "--sync-batch-norm", "--micro-batches", (2 * microBatchesPerProcess).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(two.Code == 0, two.Output);
        var expected = GradFlow.Training.SafeTensors.Read(Path.Combine(root.Sub("one"), "checkpoints", "epoch-0002.safetensors"));
        var actual = GradFlow.Training.SafeTensors.Read(Path.Combine(root.Sub("two"), "checkpoints", "epoch-0002.safetensors"));
        Assert.Contains(expected.Tensors, t => t.Key.Contains("running_mean", StringComparison.Ordinal));
        foreach (var (name, tensor) in expected.Tensors.Where(t => t.Key.StartsWith("layers.", StringComparison.Ordinal)))
        {
            var (e, a) = (tensor.ToDoubleArray(), actual[name].ToDoubleArray());
            Assert.Equal(e.Length, a.Length);
            // float32 rounding of sums taken in another order; local statistics differ by about 1e-2 here
            for (int i = 0; i < e.Length; i++)
                Assert.True(Math.Abs(e[i] - a[i]) <= 1e-5, $"{name}[{i}]: one process {e[i]}, two synchronised processes of {microBatchesPerProcess} micro-batches {a[i]}");
        }
    }

    [Fact]
    public async Task Train_ResumedWithAnotherProcessCount_EndsBitForBitAsTheUninterruptedRun()
    {
        using var root = new TempDir();
        var whole = await Run(2, Train(root.Sub("whole"), 3, "--out"));
        Assert.True(whole.Code == 0, whole.Output);
        var first = await Run(2, Train(root.Sub("split"), 1, "--out"));
        Assert.True(first.Code == 0, first.Output);
        var rest = await Run(3, ["train", "--epochs", "3", "--json", "--resume", root.Sub("split")]);
        Assert.True(rest.Code == 0, rest.Output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(root.Sub("whole"), "checkpoints", "epoch-0003.safetensors")),
            File.ReadAllBytes(Path.Combine(root.Sub("split"), "checkpoints", "epoch-0003.safetensors")));
    }

    [Fact]
    public async Task Train_StoppedByANonFiniteLossOnEveryProcess_EndsWithoutAnAbortAfterRankZeroWroteTheDiagnosis()
    {
        // every process sees the same loss and stops at the same step: no process aborts the job (which killed rank 0 before it
        // wrote diagnosis.json); the exit code is still 1
        using var root = new TempDir();
        var run = await Run(2, ["train", "--data", "spirals", "--model", "mlp 2-32x2-2 act=relu", "--batch-size", "24", "--train-limit", "480",
            "--epochs", "2", "--optimizer", "sgd", "--lr", "1e12", "--threads", "1", "--json", "--monitor", "--out", root.Sub("diverged")]);
        Assert.Equal(1, run.Code);
        Assert.DoesNotContain("MPI_ABORT", run.Output);
        Assert.Contains("NonFiniteLoss", run.Output);
        Assert.True(File.Exists(Path.Combine(root.Sub("diverged"), "diagnosis.json")), run.Output);
    }

    [Fact]
    public async Task Train_MicroBatchesNotDividedByTheProcesses_IsRefusedNamingBoth()
    {
        using var root = new TempDir();
        var run = await Run(2, ["train", "--data", "spirals", "--model", Model, "--micro-batches", "3", "--epochs", "1", "--threads", "1", "--out", root.Sub("x")]);
        Assert.NotEqual(0, run.Code);
        Assert.Contains("3 micro-batches", run.Output);
        Assert.Contains("2 processes", run.Output);
    }

    [Fact]
    public async Task Train_RankKilledWithSigkill_FailsNamingTheRankAndResumesBitForBit()
    {
        using var root = new TempDir();
        string killed = root.Sub("killed");
        // many epochs, so the job is still running when a checkpoint exists; the kill comes after the first checkpoint
        // each rank writes its process id, then becomes the CLI (exec keeps the id)
        string pids = root.Sub("pids");
        Directory.CreateDirectory(pids);
        var job = Start(2, Train(killed, 200, "--out"), wrapper: ["sh", "-c", $"echo $$ > {pids}/rank-$OMPI_COMM_WORLD_RANK; exec \"$0\" \"$@\"", "dotnet"]);
        var deadline = Stopwatch.StartNew();
        string firstCheckpoint = Path.Combine(killed, "checkpoints", "epoch-0001.safetensors");
        string pidFile = Path.Combine(pids, "rank-1");
        bool Started() => File.Exists(firstCheckpoint) && File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0;
        while (!Started() && !job.Process.HasExited && deadline.Elapsed < Patience)
            Thread.Sleep(20);
        if (!Started() || job.Process.HasExited)
            Assert.Fail("the job wrote no checkpoint or no process id, or ended, before the kill:\n" + await job.Stop());
        int rank1 = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Process.GetProcessById(rank1).Kill(); // SIGKILL on Linux
        var (code, output) = await job.Finish(Patience); // a hang fails there; prompt failure is not timed
        Assert.NotEqual(0, code);
        Assert.Contains("rank 1", output);

        // resume two epochs past the newest checkpoint with one process, against an uninterrupted one-process run of as many epochs
        int newest = Directory.GetFiles(Path.Combine(killed, "checkpoints"), "epoch-*.safetensors")
            .Max(f => int.Parse(Path.GetFileNameWithoutExtension(f)["epoch-".Length..], System.Globalization.CultureInfo.InvariantCulture));
        string end = (newest + 2).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var resumed = await Run(1, ["train", "--epochs", end, "--json", "--resume", killed]);
        Assert.True(resumed.Code == 0, resumed.Output);
        var whole = await Run(1, Train(root.Sub("whole"), newest + 2, "--out"));
        Assert.True(whole.Code == 0, whole.Output);
        string last = $"epoch-{newest + 2:D4}.safetensors";
        Assert.Equal(File.ReadAllBytes(Path.Combine(root.Sub("whole"), "checkpoints", last)), File.ReadAllBytes(Path.Combine(killed, "checkpoints", last)));
    }

    /// <summary>How long a job may take before the test kills it and fails (a guard against a hang, not a time limit).</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    /// <summary>A started job: mpirun (or the CLI alone), its output being read, and a variable every one of its processes has in its environment.</summary>
    private sealed record Job(Process Process, Task<string> Stdout, Task<string> Stderr, string Marker)
    {
        /// <summary>
        /// The job's exit code and output, once it has ended and every process holding its output has closed it (the ranks can
        /// outlive mpirun by a moment). A job not done within <paramref name="limit"/> is killed, every process whose environment
        /// holds <see cref="Marker"/> (a rank mpirun left behind is no longer its child), and fails the test.
        /// </summary>
        public async Task<(int Code, string Output)> Finish(TimeSpan limit)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(limit);
            try
            {
                await Process.WaitForExitAsync(timeout.Token);
                string output = await Stdout.WaitAsync(timeout.Token) + await Stderr.WaitAsync(timeout.Token);
                return (Process.ExitCode, output);
            }
            catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
            {
                string state = Process.HasExited ? $"mpirun ended (exit code {Process.ExitCode}) but a process still held its output" : "the job was still running";
                throw new TimeoutException($"{state} after {limit}: {await Stop()}");
            }
        }

        /// <summary>Kills what is left of the job (see <see cref="KillLeftovers"/>) and returns what it printed.</summary>
        public async Task<string> Stop()
        {
            int killed = KillLeftovers();
            var both = Task.WhenAll(Stdout, Stderr);
            string output = await Task.WhenAny(both, Task.Delay(TimeSpan.FromSeconds(30))) == both && both.IsCompletedSuccessfully
                ? string.Concat(both.Result) : "(its output could not be read)";
            return $"{killed} process(es) killed. Output:\n{output}";
        }

        /// <summary>Kills every process whose environment holds the job's marker (mpirun, its ranks and their wrappers); returns how many were alive.</summary>
        private int KillLeftovers()
        {
            int killed = 0;
            foreach (var p in System.Diagnostics.Process.GetProcesses())
            {
                try
                {
                    if (p.Id == Environment.ProcessId || !File.ReadAllText($"/proc/{p.Id}/environ").Contains(Marker, StringComparison.Ordinal)) continue;
                    p.Kill();
                    killed++;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // it ended meanwhile
                }
                finally
                {
                    p.Dispose();
                }
            }
            return killed;
        }
    }

    /// <summary>Starts the CLI under <c>mpirun --oversubscribe -np N</c> (N = 1: the CLI alone, as a user would run it).</summary>
    private static Job Start(int processes, string[] args, string[]? wrapper = null)
    {
        string? mpirun = Mpirun.Value;
        Assert.SkipUnless(mpirun is not null, "mpirun was not found: install openmpi-bin and libopenmpi-dev (scripts/test.sh does).");
        var psi = new ProcessStartInfo(processes == 1 ? "dotnet" : mpirun!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (processes > 1)
            foreach (var a in (string[])["--oversubscribe", "-np", processes.ToString(System.Globalization.CultureInfo.InvariantCulture), .. wrapper ?? ["dotnet"]])
                psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(Cli);
        foreach (var a in args) psi.ArgumentList.Add(a);
        // tests run as root in CI; Open MPI refuses root unless told
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        psi.Environment.Remove("OMPI_COMM_WORLD_SIZE");
        // a variable of the job's own marks its processes: mpirun's ranks inherit its environment
        string id = Guid.NewGuid().ToString("N");
        psi.Environment["GRADFLOW_TEST_JOB"] = id;
        string marker = "GRADFLOW_TEST_JOB=" + id;
        var process = Process.Start(psi)!;
        var token = TestContext.Current.CancellationToken;
        return new Job(process, process.StandardOutput.ReadToEndAsync(token), process.StandardError.ReadToEndAsync(token), marker);
    }

    private static async Task<(int Code, string Output)> Run(int processes, string[] args)
    {
        return await Start(processes, args).Finish(Patience);
    }

    private static readonly Lazy<string?> Mpirun = new(() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists));

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("gradflow-mpi-").FullName;

        public string Sub(string name) => System.IO.Path.Combine(Path, name);

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
