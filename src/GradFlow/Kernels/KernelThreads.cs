using System.Runtime.ExceptionServices;

namespace GradFlow.Kernels;

/// <summary>
/// A tiny fixed thread pool for kernels: <see cref="Count"/> threads (the caller plus
/// <c>Count - 1</c> workers) and a static partition, task <c>t</c> runs on thread <c>t % Count</c>.
/// </summary>
/// <remarks>
/// Determinism rule for every caller: split work into tasks by the problem's shape only, never by
/// the thread count, and let each task own its outputs. Then results are bitwise identical
/// whatever thread runs a task, for any <see cref="Count"/>. Calls made from inside a task, or
/// while another thread holds the pool, run inline on the calling thread (same numbers).
/// Workers spin briefly after a job and then sleep, so tiny back-to-back ops pay no wake-up.
/// </remarks>
public static class KernelThreads
{
    private static readonly object RunLock = new();
    private static readonly object WakeLock = new();
    private static Worker[] _workers = [];
    private static long _generation;
    private static int _pending;
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

    /// <summary>Runs <paramref name="body"/>(t) for t in [0, <paramref name="tasks"/>), task t on thread t % Count.</summary>
    public static void Run(int tasks, Action<int> body)
    {
        if (tasks <= 0) return;
        if (tasks == 1 || _count == 1 || _inTask || !Monitor.TryEnter(RunLock))
        {
            RunInline(tasks, body);
            return;
        }
        try
        {
            int count = Math.Min(_count, tasks);
            EnsureWorkers(_count - 1);
            _body = body;
            _tasks = tasks;
            _error = null;
            _activeThreads = count;
            Volatile.Write(ref _pending, count - 1);
            Interlocked.Increment(ref _generation);
            lock (WakeLock) Monitor.PulseAll(WakeLock);
            _inTask = true;
            try
            {
                for (int t = 0; t < tasks; t += count) body(t);
            }
            catch (Exception e)
            {
                _error ??= ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                _inTask = false;
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            _error?.Throw();
        }
        finally
        {
            Monitor.Exit(RunLock);
        }
    }

    private static int _activeThreads;

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

    private sealed class Worker
    {
        private readonly int _index;

        public Worker(int index)
        {
            _index = index;
            var thread = new Thread(Loop) { IsBackground = true, Name = $"gradflow-kernel-{index}" };
            thread.Start();
        }

        private void Loop()
        {
            long seen = Volatile.Read(ref _generation);
            _inTask = true;
            while (true)
            {
                long g;
                int spins = 0;
                while ((g = Volatile.Read(ref _generation)) == seen)
                {
                    if (spins++ < 4000)
                    {
                        Thread.SpinWait(20);
                        continue;
                    }
                    lock (WakeLock)
                    {
                        if (Volatile.Read(ref _generation) == seen) Monitor.Wait(WakeLock);
                    }
                }
                seen = g;
                int count = _activeThreads;
                if (_index >= count) continue;
                var body = _body!;
                int tasks = _tasks;
                try
                {
                    for (int t = _index; t < tasks; t += count) body(t);
                }
                catch (Exception e)
                {
                    lock (WakeLock) _error ??= ExceptionDispatchInfo.Capture(e);
                }
                Interlocked.Decrement(ref _pending);
            }
        }
    }
}
