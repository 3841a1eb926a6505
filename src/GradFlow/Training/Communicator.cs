namespace GradFlow.Training;

/// <summary>
/// The processes of one job and the collective operations GradFlow needs from them (docs/distributed.md):
/// the data-parallel step gathers every process's micro-batch gradients, and sweeps hand out trials.
/// Every process calls each collective in the same order with the same lengths.
/// </summary>
/// <remarks>
/// Two implementations: <see cref="SingleProcessCommunicator"/> (one process: every collective is a copy or nothing), and
/// <see cref="MpiCommunicator"/> (Open MPI through P/Invoke on libmpi), chosen by <see cref="Communicators.FromEnvironment"/>.
/// </remarks>
public interface ICommunicator
{
    /// <summary>This process's index, 0 to <see cref="Size"/> − 1.</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int Size { get; }

    /// <summary>
    /// Gathers <paramref name="send"/> from every process into <paramref name="receive"/>, rank 0's values first:
    /// <c>receive[r·n .. (r+1)·n) = send of rank r</c>, <c>n = send.Length</c>; <paramref name="receive"/> holds <see cref="Size"/>·n values.
    /// </summary>
    void AllGather(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>As <see cref="AllGather(ReadOnlySpan{float}, Span{float})"/>, for doubles.</summary>
    void AllGather(ReadOnlySpan<double> send, Span<double> receive);

    /// <summary>
    /// Sends block d of <paramref name="send"/> (<see cref="Size"/> equal blocks of n values) to rank d, and receives rank r's block
    /// for this process into block r of <paramref name="receive"/> (also <see cref="Size"/>·n values).
    /// </summary>
    void AllToAll(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>
    /// Starts <see cref="AllToAll(ReadOnlySpan{float}, Span{float})"/> without waiting for it. Non-blocking collectives are
    /// matched in the order they are started on a communicator: every process starts them in the same order (use
    /// <see cref="Duplicate"/> for collectives whose order relative to others may differ between processes). Neither buffer
    /// may be touched until the request has completed.
    /// </summary>
    ICommunicationRequest StartAllToAll(ReadOnlyMemory<float> send, Memory<float> receive);

    /// <summary>Starts <see cref="AllGather(ReadOnlySpan{float}, Span{float})"/> without waiting for it (as <see cref="StartAllToAll"/>).</summary>
    ICommunicationRequest StartAllGather(ReadOnlyMemory<float> send, Memory<float> receive);

    /// <summary>
    /// The same processes as a new communicator whose collectives are matched apart from this one's (<c>MPI_Comm_dup</c>).
    /// Every process calls it at the same point (it is a collective).
    /// </summary>
    ICommunicator Duplicate();

    /// <summary>
    /// Replaces <paramref name="values"/> on every process by the element-wise sum over the processes. The order
    /// of the additions is MPI's, so the bits may depend on <see cref="Size"/>: the data-parallel step does not use it for gradients.
    /// </summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Copies <paramref name="values"/> of process <paramref name="root"/> to every process.</summary>
    void Broadcast(Span<double> values, int root);

    /// <summary>Returns when every process has called it.</summary>
    void Barrier();

    /// <summary>Sends <paramref name="message"/> to rank <paramref name="destination"/> (point to point; the sweeps' work queue, <see cref="IndependentRuns"/>).</summary>
    void Send(ReadOnlySpan<byte> message, int destination);

    /// <summary>Waits for the next message from rank <paramref name="source"/> and returns it.</summary>
    byte[] Receive(int source);

    /// <summary>Takes a message from any rank if one has arrived (without waiting): its sender and bytes, or false.</summary>
    bool TryReceive(out int source, out byte[] message);

    /// <summary>Ends every process of the job with <paramref name="exitCode"/> (after an error on this one, so the others do not wait for it forever).</summary>
    void Abort(int exitCode);
}

/// <summary>A non-blocking collective in flight (<see cref="ICommunicator.StartAllToAll"/>).</summary>
public interface ICommunicationRequest
{
    /// <summary>Lets the transfers progress without waiting, and returns whether the operation has completed (then its receive buffer holds the result).</summary>
    bool Test();

    /// <summary>Returns when the operation has completed.</summary>
    void Wait();
}

/// <summary>The job of one process: rank 0 of 1; gathering copies, reducing and broadcasting leave the values as they are.</summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    /// <summary>The one instance.</summary>
    public static readonly SingleProcessCommunicator Instance = new();

    private SingleProcessCommunicator()
    {
    }

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int Size => 1;

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive) => Gather(send, receive);

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<double> send, Span<double> receive) => Gather(send, receive);

    private static void Gather<T>(ReadOnlySpan<T> send, Span<T> receive)
    {
        if (receive.Length != send.Length)
            throw new ArgumentException($"AllGather: the receive buffer holds {receive.Length} values, but 1 process × {send.Length} values arrive.", nameof(receive));
        send.CopyTo(receive);
    }

    /// <inheritdoc />
    public void AllToAll(ReadOnlySpan<float> send, Span<float> receive) => Gather(send, receive);

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values)
    {
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllToAll(ReadOnlyMemory<float> send, Memory<float> receive)
    {
        Gather(send.Span, receive.Span);
        return Completed.Instance;
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllGather(ReadOnlyMemory<float> send, Memory<float> receive)
    {
        Gather(send.Span, receive.Span);
        return Completed.Instance;
    }

    /// <inheritdoc />
    public ICommunicator Duplicate() => this;

    /// <summary>A request completed when it was started.</summary>
    private sealed class Completed : ICommunicationRequest
    {
        public static readonly Completed Instance = new();

        public bool Test() => true;

        public void Wait()
        {
        }
    }

    /// <inheritdoc />
    public void Broadcast(Span<double> values, int root)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), $"Broadcast: root {root} is not a rank of a 1-process job.");
    }

    /// <inheritdoc />
    public void Barrier()
    {
    }

    /// <inheritdoc />
    public void Send(ReadOnlySpan<byte> message, int destination) =>
        throw new InvalidOperationException($"Send: a 1-process job has no rank {destination} to send to.");

    /// <inheritdoc />
    public byte[] Receive(int source) =>
        throw new InvalidOperationException($"Receive: a 1-process job has no rank {source} to receive from.");

    /// <inheritdoc />
    public bool TryReceive(out int source, out byte[] message)
    {
        (source, message) = (-1, []);
        return false;
    }

    /// <inheritdoc />
    public void Abort(int exitCode) => Environment.Exit(exitCode);
}

/// <summary>Chooses the communicator of this process.</summary>
public static class Communicators
{
    private static ICommunicator? _current;

    /// <summary>
    /// Under <c>mpirun</c> (Open MPI sets <c>OMPI_COMM_WORLD_SIZE</c>), MPI's world communicator, initialised on first use;
    /// otherwise <see cref="SingleProcessCommunicator.Instance"/>. The same instance on every call.
    /// </summary>
    public static ICommunicator FromEnvironment()
    {
        if (_current is not null) return _current;
        string? size = Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE");
        _current = size is null ? SingleProcessCommunicator.Instance : MpiCommunicator.InitWorld();
        return _current;
    }

    /// <summary>The communicator <see cref="FromEnvironment"/> made, or null before its first call (MPI not initialised).</summary>
    public static ICommunicator? Initialised => _current;

    /// <summary>"rank R: " under mpirun (for error messages, so a failure names its process), else "".</summary>
    public static string RankPrefix => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK") is { } rank ? $"rank {rank}: " : "";

    /// <summary>Whether this process was started by <c>mpirun</c> (without initialising MPI).</summary>
    public static bool UnderMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null;
}
