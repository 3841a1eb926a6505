using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
using System.Text;

namespace GradFlow.Training;

/// <summary>
/// Runs many independent runs (a sweep's grid points, a catalogue's entry-and-seed runs) on threads or on the processes of an
/// MPI job, handing each out as a worker frees up, and reports the results in run order: the same results, in the same order,
/// for any number of threads or processes, because every run is a function of its index alone.
/// </summary>
public static class IndependentRuns
{
    /// <summary>
    /// Runs <c>run(i)</c> for i = 0 … <paramref name="count"/> − 1 on <paramref name="jobs"/> threads (the calling one and
    /// jobs − 1 more), each taking the next index as it frees up. <paramref name="done"/> sees run i's result as soon as it and
    /// every run before it are finished, in index order, one call at a time. The first exception of a run stops the handing
    /// out and is rethrown (runs already started finish first); so is a cancellation, checked before each run.
    /// </summary>
    public static T[] Run<T>(int count, Func<int, T> run, Action<int, T>? done = null, int jobs = 1, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(jobs, 1);
        ArgumentNullException.ThrowIfNull(run);
        var results = new T[count];
        var finished = new bool[count];
        int next = -1, reported = 0;
        var gate = new object();
        ExceptionDispatchInfo? error = null;
        void Worker()
        {
            try
            {
                int i;
                while (Volatile.Read(ref error) is null && (i = Interlocked.Increment(ref next)) < count)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var result = run(i);
                    lock (gate)
                    {
                        (results[i], finished[i]) = (result, true);
                        // in index order: every finished run that has no unfinished one before it
                        for (; reported < count && finished[reported]; reported++) done?.Invoke(reported, results[reported]);
                    }
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref error, ExceptionDispatchInfo.Capture(e), null);
            }
        }
        var threads = Enumerable.Range(1, Math.Max(0, Math.Min(jobs, count) - 1))
            .Select(j => new Thread(Worker) { IsBackground = true, Name = $"gradflow-run-{j}" }).ToArray();
        foreach (var t in threads) t.Start();
        Worker();
        foreach (var t in threads) t.Join();
        error?.Throw();
        return results;
    }

    /// <summary>
    /// As <see cref="Run{T}"/>, over the processes of <paramref name="world"/> (every process calls it with the same
    /// <paramref name="count"/> and the same <paramref name="run"/>): rank 0 keeps a work queue and hands the next index to each
    /// process as it asks, the worker ranks send each result back as text (their <paramref name="run"/> serialises it); every
    /// process, rank 0 included, keeps <paramref name="jobs"/> runs going on threads. On rank 0, <paramref name="done"/> sees every result in index
    /// order and the method returns them all; on the other ranks it returns an empty array when the queue is empty. With one
    /// process it is <see cref="Run{T}"/>.
    /// </summary>
    /// <remarks>
    /// Messages (point to point, MPI_Send/MPI_Recv): worker to rank 0 <c>[index: int32][result: UTF-8]</c>, index −1 for a
    /// request without a result (a worker's first <paramref name="jobs"/>); rank 0 answers each with <c>[index: int32]</c>, the
    /// next run, or −1 when none is left (the worker then only delivers the runs it has going). Rank 0 polls for requests every millisecond from the
    /// thread that initialised MPI (MPI_THREAD_SINGLE), so a waiting rank 0 does not spin a core that a run needs. A failed run
    /// throws on its process, and the CLI ends the job (MPI_Abort), so no process waits for it forever.
    /// </remarks>
    public static string[] Run(ICommunicator world, int count, Func<int, string> run, Action<int, string>? done = null, int jobs = 1,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(world);
        ArgumentNullException.ThrowIfNull(run);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(jobs, 1);
        if (world.Size == 1) return Run(count, run, done, jobs, cancellation);
        return world.Rank == 0 ? Coordinate(world, count, run, done, jobs, cancellation) : Serve(world, run, jobs);
    }

    /// <summary>
    /// As <see cref="Run(ICommunicator, int, Func{int, string}, Action{int, string}?, int, CancellationToken)"/>, and then rank 0
    /// sends every result to every other rank, so that all processes return the same results (for callers whose next runs depend
    /// on these, run in step on every process: the repair's candidate trials).
    /// </summary>
    public static string[] RunEverywhere(ICommunicator world, int count, Func<int, string> run, int jobs = 1, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(world);
        var results = Run(world, count, run, null, jobs, cancellation);
        if (world.Size == 1) return results;
        if (world.Rank == 0)
        {
            // [count × (length: int32, UTF-8)]
            var parts = results.Select(Encoding.UTF8.GetBytes).ToArray();
            var message = new byte[parts.Sum(p => sizeof(int) + p.Length)];
            int at = 0;
            foreach (var p in parts)
            {
                BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(at), p.Length);
                p.CopyTo(message, at + sizeof(int));
                at += sizeof(int) + p.Length;
            }
            for (int r = 1; r < world.Size; r++) world.Send(message, r);
            return results;
        }
        byte[] all = world.Receive(0);
        var received = new string[count];
        for (int i = 0, at = 0; i < count; i++)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(all.AsSpan(at));
            received[i] = Encoding.UTF8.GetString(all, at + sizeof(int), length);
            at += sizeof(int) + length;
        }
        return received;
    }

    /// <summary>A worker rank: asks for runs until told to stop, keeping <paramref name="jobs"/> of them going on threads.</summary>
    private static string[] Serve(ICommunicator world, Func<int, string> run, int jobs)
    {
        var running = new List<(int Index, Task<string> Run)>();
        bool stopped = false;
        // every message to rank 0 gets one reply: the next index, or −1
        void Ask(byte[] message)
        {
            world.Send(message, 0);
            int index = BinaryPrimitives.ReadInt32LittleEndian(world.Receive(0));
            if (index < 0) stopped = true;
            else running.Add((index, Task.Factory.StartNew(() => run(index), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)));
        }
        for (int j = 0; j < jobs && !stopped; j++) Ask(Message(-1, ""));
        while (running.Count > 0)
        {
            int finished = Task.WaitAny([.. running.Select(r => (Task)r.Run)]);
            var (index, task) = running[finished];
            running.RemoveAt(finished);
            string result = task.GetAwaiter().GetResult(); // a failed run throws here, and the CLI ends the job
            Ask(Message(index, result));
        }
        return [];
    }

    private static string[] Coordinate(ICommunicator world, int count, Func<int, string> run, Action<int, string>? done, int jobs,
        CancellationToken cancellation)
    {
        var results = new string?[count];
        int next = 0, reported = 0;
        var stopped = new HashSet<int>();
        var gate = new object();
        ExceptionDispatchInfo? error = null;
        int Take()
        {
            lock (gate) return error is null && next < count ? next++ : -1;
        }
        // rank 0's own runs, on threads, from the same queue
        void Local()
        {
            try
            {
                for (int i; (i = Take()) >= 0;)
                {
                    cancellation.ThrowIfCancellationRequested();
                    string result = run(i);
                    lock (gate) results[i] = result;
                }
            }
            catch (Exception e)
            {
                lock (gate) error ??= ExceptionDispatchInfo.Capture(e);
            }
        }
        var threads = Enumerable.Range(0, jobs).Select(j => new Thread(Local) { IsBackground = true, Name = $"gradflow-run-{j}" }).ToArray();
        foreach (var t in threads) t.Start();
        while (true)
        {
            bool busy = false;
            while (world.TryReceive(out int source, out byte[] message))
            {
                busy = true;
                int index = BinaryPrimitives.ReadInt32LittleEndian(message);
                if (index >= 0)
                    lock (gate) results[index] = Encoding.UTF8.GetString(message.AsSpan(sizeof(int)));
                int give = Take();
                world.Send(Message(give, ""), source);
                if (give < 0) stopped.Add(source);
            }
            for (; ; reported++)
            {
                string? result;
                lock (gate) result = reported < count ? results[reported] : null;
                if (result is null) break;
                done?.Invoke(reported, result);
            }
            ExceptionDispatchInfo? failed;
            lock (gate) failed = error;
            // on an error the other ranks are still running or waiting: the caller ends the job (the CLI aborts it)
            failed?.Throw();
            if (reported == count && stopped.Count == world.Size - 1) break;
            if (!busy) Thread.Sleep(1);
        }
        foreach (var t in threads) t.Join();
        return results!;
    }

    private static byte[] Message(int index, string text)
    {
        var bytes = new byte[sizeof(int) + Encoding.UTF8.GetByteCount(text)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, index);
        Encoding.UTF8.GetBytes(text, bytes.AsSpan(sizeof(int)));
        return bytes;
    }
}
