using GradFlow.Training;

namespace GradFlow.Tests.TestSupport;

/// <summary>
/// Threads standing in for the processes of a job: <see cref="Create"/> gives one <see cref="ICommunicator"/> per thread.
/// Each communicator (and each <see cref="ICommunicator.Duplicate"/> of it) matches its collectives in the order they are
/// started, as MPI does, and throws when two processes start different operations or lengths at the same place in that
/// order (a mismatch that would hang or corrupt a real job). Non-blocking operations complete when every process has
/// started them; the values sent are taken when started. Only the collectives of the data-parallel step are implemented.
/// </summary>
public sealed class ThreadCommunicator : ICommunicator
{
    private readonly Job _job;
    private readonly int _channel;
    private long _next;

    private ThreadCommunicator(Job job, int rank, int channel)
    {
        _job = job;
        Rank = rank;
        _channel = channel;
    }

    /// <summary>The communicators of a job of <paramref name="size"/> processes, rank 0 first.</summary>
    public static ThreadCommunicator[] Create(int size)
    {
        var job = new Job(size);
        return Enumerable.Range(0, size).Select(r => new ThreadCommunicator(job, r, 0)).ToArray();
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size => _job.Size;

    /// <summary>The non-blocking all-to-alls this process has started, on any of its communicators.</summary>
    public int StartedAllToAlls => _job.StartedAllToAlls[Rank];

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        var request = Start("all-gather", send.ToArray(), receive.Length, (all, r) => Concat(all));
        request.Wait();
        request.Result.AsSpan().CopyTo(receive);
    }

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<double> send, Span<double> receive)
    {
        var request = Start("all-gather", send.ToArray(), receive.Length, (all, r) => Concat(all));
        request.Wait();
        request.Result.AsSpan().CopyTo(receive);
    }

    /// <inheritdoc />
    public void AllToAll(ReadOnlySpan<float> send, Span<float> receive)
    {
        var request = Start("all-to-all", send.ToArray(), receive.Length, AllToAllBlocks);
        request.Wait();
        request.Result.AsSpan().CopyTo(receive);
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllToAll(ReadOnlyMemory<float> send, Memory<float> receive)
    {
        lock (_job) _job.StartedAllToAlls[Rank]++;
        return new Writing<float>(Start("all-to-all", send.ToArray(), receive.Length, AllToAllBlocks), receive);
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllGather(ReadOnlyMemory<float> send, Memory<float> receive) =>
        new Writing<float>(Start("all-gather", send.ToArray(), receive.Length, (all, r) => Concat(all)), receive);

    /// <inheritdoc />
    public ICommunicator Duplicate()
    {
        // the k-th duplicate made by each process is the same channel on every process
        lock (_job) return new ThreadCommunicator(_job, Rank, ++_job.Duplicates[Rank]);
    }

    private static T[] Concat<T>(T[][] all) => all.SelectMany(a => a).ToArray();

    private static float[] AllToAllBlocks(float[][] all, int rank)
    {
        int block = all[0].Length / all.Length;
        return all.SelectMany(a => a.Skip(rank * block).Take(block)).ToArray();
    }

    private Round<T> Start<T>(string operation, T[] send, int receiveLength, Func<T[][], int, T[]> result)
    {
        lock (_job)
        {
            var key = (_channel, _next++);
            if (!_job.Rounds.TryGetValue(key, out var found))
                _job.Rounds[key] = found = new Round<T>(_job, operation, send.Length, receiveLength);
            var round = found as Round<T> ?? throw new InvalidOperationException($"rank {Rank}: {operation} of {typeof(T).Name} where another process started {((IRound)found).Operation} (channel {_channel}, operation {key.Item2}).");
            if (round.Operation != operation || round.SendLength != send.Length || round.ReceiveLength != receiveLength)
                throw new InvalidOperationException($"rank {Rank}: {operation} of {send.Length} → {receiveLength} values where another process started {round.Operation} of {round.SendLength} → {round.ReceiveLength} (channel {_channel}, operation {key.Item2}).");
            round.Sends[Rank] = send;
            if (++round.Arrived == _job.Size) Monitor.PulseAll(_job);
            return new Round<T>(round, Rank, result);
        }
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values) => throw new NotSupportedException();

    /// <inheritdoc />
    public void Broadcast(Span<double> values, int root) => throw new NotSupportedException();

    /// <inheritdoc />
    public void Barrier() => throw new NotSupportedException();

    /// <inheritdoc />
    public void Send(ReadOnlySpan<byte> message, int destination) => throw new NotSupportedException();

    /// <inheritdoc />
    public byte[] Receive(int source) => throw new NotSupportedException();

    /// <inheritdoc />
    public bool TryReceive(out int source, out byte[] message) => throw new NotSupportedException();

    /// <inheritdoc />
    public void Abort(int exitCode) => throw new InvalidOperationException($"rank {Rank} aborted with {exitCode}");

    private sealed class Job(int size)
    {
        public readonly int Size = size;
        public readonly Dictionary<(int Channel, long Index), object> Rounds = [];
        public readonly int[] Duplicates = new int[size];
        public readonly int[] StartedAllToAlls = new int[size];
    }

    private interface IRound
    {
        string Operation { get; }
    }

    /// <summary>One operation of a channel: what each process sent; this process's view of it once complete.</summary>
    private sealed class Round<T> : IRound, ICommunicationRequest
    {
        private readonly Job _job;
        private readonly Round<T>? _shared;
        private readonly Func<T[][], int, T[]>? _result;

        public Round(Job job, string operation, int sendLength, int receiveLength)
        {
            _job = job;
            Operation = operation;
            SendLength = sendLength;
            ReceiveLength = receiveLength;
            Sends = new T[job.Size][];
        }

        public Round(Round<T> shared, int rank, Func<T[][], int, T[]> result)
        {
            _job = shared._job;
            _shared = shared;
            Operation = shared.Operation;
            Sends = shared.Sends;
            Rank = rank;
            _result = result;
        }

        public string Operation { get; }

        public int SendLength { get; }

        public int ReceiveLength { get; }

        public T[][] Sends { get; }

        public int Rank { get; set; }

        public int Arrived { get; set; }

        public T[] Result { get; private set; } = [];

        public bool Test()
        {
            lock (_job)
            {
                if (_shared!.Arrived < _job.Size) return false;
                Result = _result!(Sends, Rank);
                return true;
            }
        }

        public void Wait()
        {
            lock (_job)
            {
                while (_shared!.Arrived < _job.Size)
                    if (!Monitor.Wait(_job, TimeSpan.FromSeconds(30)))
                        throw new TimeoutException($"rank {Rank}: {Operation} not started by every process within 30 s (a mismatched order of collectives)");
                Result = _result!(Sends, Rank);
            }
        }
    }

    /// <summary>A non-blocking operation that writes its result into the caller's receive buffer when complete.</summary>
    private sealed class Writing<T>(Round<T> round, Memory<T> receive) : ICommunicationRequest
    {
        private bool _done;

        public bool Test()
        {
            if (_done) return true;
            if (!round.Test()) return false;
            round.Result.AsSpan().CopyTo(receive.Span);
            return _done = true;
        }

        public void Wait()
        {
            if (_done) return;
            round.Wait();
            round.Result.AsSpan().CopyTo(receive.Span);
            _done = true;
        }
    }
}
