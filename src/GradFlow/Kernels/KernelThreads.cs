using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace GradFlow.Kernels;

/// <summary>
/// A tiny fixed thread pool for kernels: the caller plus <c>Count - 1</c> workers execute the tasks
/// of one job, each task claimed once from a shared counter.
/// </summary>
/// <remarks>
/// Determinism rule for every caller: split work into tasks by the problem's shape only, never by
/// the thread count, and let each task own its outputs. Then results are bitwise identical
/// whichever thread runs a task, for any <see cref="Count"/>. Because tasks are claimed, not
/// assigned, the caller never waits for a worker that the OS has not scheduled: if no worker wakes
/// up, the caller runs every task itself (this matters on a busy 2-core machine). The claim counter
/// carries the job's generation in its high half, so a worker that wakes late can never claim a task
/// of a newer job. Calls made from inside a task, or while another thread holds the pool, run inline
/// on the calling thread (same numbers). Workers (as many as there are other cores) spin for 0.5 ms after a job, yielding to other runnable threads, so they notice a new job within a microsecond; then they sleep.
/// </remarks>
public static class KernelThreads
{
    // System.Threading.Lock: its TryEnter is one compare-exchange; Monitor.TryEnter on an object took its slow path on every call
    // here (7 % of an mlp-deep-narrow step's CPU samples, about 100 jobs per step)
    private static readonly Lock RunLock = new();
    private static readonly object WakeLock = new();
    private static Worker[] _workers = [];
    private static int _generation;
    private static int _sleepers; // workers blocked (or about to block) in Monitor.Wait
    private static long _claim; // (generation << 32) | next task index
    private static int _done;
    private static Action<int>? _body;
    private static int _tasks;
    private static int _count = Math.Max(1, Environment.ProcessorCount);
    private static ExceptionDispatchInfo? _error;

    [ThreadStatic] private static bool _inTask;

    /// <summary>Threads used by kernels (default: the number of logical processors).</summary>
    public static int Count => _count;

    /// <summary>Sets the number of kernel threads (1 = everything on the calling thread).</summary>
    /// <exception cref="ArgumentOutOfRangeException">when <paramref name="count"/> is below 1 or above 256.</exception>
    public static void SetCount(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 256);
        lock (RunLock) _count = count;
    }

    /// <summary>
    /// Element-wise work below which a job runs on the calling thread: 64 Ki elements take a few
    /// microseconds, about what waking a worker costs, and every job keeps the worker spinning for
    /// 0.5 ms after it. Without this floor the small jobs of a small model (an optimiser step over 40
    /// 64×64 matrices, the monitor's statistics) kept the second core busy spinning: the hand catalogue
    /// took 7.2 CPU-minutes on 2 threads for 4.7 on 1, in the same wall time.
    /// </summary>
    public const long SerialBelow = 1 << 16;

    /// <summary>
    /// <see cref="Run(int, Action{int})"/> for a job that streams <paramref name="elements"/> elements in
    /// all: below <see cref="SerialBelow"/> it runs inline (the same tasks in order, so the same numbers).
    /// </summary>
    public static void Run(int tasks, Action<int> body, long elements)
    {
        if (elements < SerialBelow) RunInline(tasks, body);
        else Run(tasks, body);
    }

    /// <summary>Runs <paramref name="body"/>(t) once for every t in [0, <paramref name="tasks"/>), on up to <see cref="Count"/> threads.</summary>
    public static void Run(int tasks, Action<int> body)
    {
        if (tasks <= 0) return;
        if (tasks == 1 || _count == 1 || _inTask || !RunLock.TryEnter())
        {
            RunInline(tasks, body);
            return;
        }
        try
        {
            EnsureWorkers(_count - 1);
            int generation = _generation + 1;
            // Order matters: first retire every claim of the previous job, then reset the counters and
            // set the new job, then publish it. A late worker holding the old generation can then only
            // fail its claim, whatever it read.
            Volatile.Write(ref _claim, (long)generation << 32);
            Volatile.Write(ref _done, 0);
            _error = null;
            Volatile.Write(ref _body, body);
            Volatile.Write(ref _tasks, tasks);
            Interlocked.Exchange(ref _generation, generation); // publishes the job (full fence: then read _sleepers)
            if (Volatile.Read(ref _sleepers) > 0)
                lock (WakeLock) Monitor.PulseAll(WakeLock);
            _inTask = true;
            try
            {
                Work(generation, body, tasks);
            }
            finally
            {
                _inTask = false;
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) != tasks) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            _error?.Throw();
        }
        finally
        {
            RunLock.Exit();
        }
    }

    /// <summary>
    /// Claims and runs tasks of job <paramref name="generation"/> until none is left: a run of tasks per claim, a share of what is
    /// left (1/(2·Count) of it, at least one task), so a job of 64 tasks costs a handful of claims on the shared counter rather than 64,
    /// while the last tasks still go one by one to whichever thread is free.
    /// </summary>
    private static void Work(int generation, Action<int> body, int tasks)
    {
        int share = 2 * _count; // SetCount keeps it ≥ 1
        while (true)
        {
            long claim = Volatile.Read(ref _claim);
            if ((int)(claim >> 32) != generation) return;
            int t = (int)claim;
            if (t >= tasks) return;
            int run = Math.Max(1, (tasks - t) / share);
            if (Interlocked.CompareExchange(ref _claim, claim + run, claim) != claim) continue;
            for (int k = t; k < t + run; k++)
            {
                try
                {
                    body(k);
                }
                catch (Exception e)
                {
                    lock (WakeLock) _error ??= ExceptionDispatchInfo.Capture(e);
                }
            }
            Interlocked.Add(ref _done, run);
        }
    }

    private static void RunInline(int tasks, Action<int> body)
    {
        bool was = _inTask;
        _inTask = true;
        try
        {
            for (int t = 0; t < tasks; t++) body(t);
        }
        finally
        {
            _inTask = was;
        }
    }

    private static void EnsureWorkers(int n)
    {
        if (_workers.Length >= n) return;
        var grown = new Worker[n];
        Array.Copy(_workers, grown, _workers.Length);
        for (int i = _workers.Length; i < n; i++) grown[i] = new Worker(i + 1);
        _workers = grown;
    }

    /// <summary>How long an idle worker spins before it sleeps: 0.5 ms (the gaps between the jobs of a training step are microseconds).</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 2000;

    private sealed class Worker
    {
        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"gradflow-kernel-{index}" };
            thread.Start(index);
        }

        private static void Loop(object? state)
        {
            _inTask = true;
            int seen = 0;
            // Only as many threads spin as there are other cores: surplus workers sleep at once.
            bool spins = (int)state! < Environment.ProcessorCount;
            while (true)
            {
                int g;
                long spinUntil = 0;
                while ((g = Volatile.Read(ref _generation)) == seen)
                {
                    // Spin (256 pauses, then a yield) for SpinTicks after the last job, then sleep. The spin
                    // covers the gaps between the many short jobs of a step.
                    long now = Stopwatch.GetTimestamp();
                    if (spinUntil == 0) spinUntil = spins ? now + SpinTicks : now;
                    if (now < spinUntil)
                    {
                        for (int i = 0; i < 256 && Volatile.Read(ref _generation) == seen; i++) Thread.SpinWait(1);
                        if (Volatile.Read(ref _generation) == seen) Thread.Yield(); // lets another runnable thread of this core go first
                        continue;
                    }
                    lock (WakeLock)
                    {
                        // Announce the sleep with a full fence before the last check; Run publishes the
                        // generation with a full fence before reading _sleepers: no lost wake-up.
                        Interlocked.Increment(ref _sleepers);
                        if (Volatile.Read(ref _generation) == seen) Monitor.Wait(WakeLock);
                        Interlocked.Decrement(ref _sleepers);
                    }
                    spinUntil = 0;
                }
                seen = g;
                var body = Volatile.Read(ref _body);
                int tasks = Volatile.Read(ref _tasks);
                // The claim check inside Work rejects a job that ended (and maybe was replaced) meanwhile.
                if (body is not null) Work(g, body, tasks);
            }
        }
    }
}
