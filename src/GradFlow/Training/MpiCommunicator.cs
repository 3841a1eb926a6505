using System.Runtime.InteropServices;

namespace GradFlow.Training;

/// <summary>
/// MPI's world communicator through P/Invoke on Open MPI's <c>libmpi.so.40</c> (docs/distributed.md says why not MPI.NET:
/// its 1.4.0 package binds MS-MPI's <c>msmpi.dll</c> with MS-MPI's integer handles, which Open MPI does not have).
/// </summary>
/// <remarks>
/// Open MPI's handles are addresses of global objects: <c>MPI_COMM_WORLD</c> is <c>&amp;ompi_mpi_comm_world</c>,
/// <c>MPI_FLOAT</c> is <c>&amp;ompi_mpi_float</c>, <c>MPI_SUM</c> is <c>&amp;ompi_mpi_op_sum</c>; they and the functions are
/// looked up once with <see cref="NativeLibrary.GetExport"/> and called through unmanaged function pointers. MPI's default
/// error handler (errors are fatal) stays: an error or a lost process ends the whole job, so no call can hang on a dead peer.
/// Every call comes from the thread that initialised MPI (the training loop's), as MPI_THREAD_SINGLE allows. A non-blocking
/// collective (<c>MPI_Ialltoall</c>, <c>MPI_Iallgather</c>) pins its buffers until <c>MPI_Test</c> or <c>MPI_Wait</c> sees it complete;
/// <see cref="Duplicate"/> is <c>MPI_Comm_dup</c>, a communicator whose collectives are matched apart from this one's.
/// </remarks>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private nint _comm;
    private readonly nint _float, _double, _byte, _sum;
    private readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> _allgather;
    private readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> _alltoall;
    private readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, nint*, int> _iallgather;
    private readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, nint*, int> _ialltoall;
    private readonly delegate* unmanaged<nint*, int*, void*, int> _test;
    private readonly delegate* unmanaged<nint*, void*, int> _wait;
    private readonly delegate* unmanaged<nint, nint*, int> _commDup;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<void*, int, nint, int, int, nint, int> _send;
    private readonly delegate* unmanaged<void*, int, nint, int, int, nint, Status*, int> _recv;
    private readonly delegate* unmanaged<int, int, nint, int*, Status*, int> _iprobe;
    private readonly delegate* unmanaged<int, int, nint, Status*, int> _probe;
    private readonly delegate* unmanaged<Status*, nint, int*, int> _getCount;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;
    private bool _finalized;

    private MpiCommunicator(nint library)
    {
        nint Export(string name)
        {
            if (NativeLibrary.TryGetExport(library, name, out nint address)) return address;
            throw new InvalidOperationException($"MPI: libmpi has no symbol '{name}'; GradFlow needs Open MPI 4 or later (openmpi-bin, libopenmpi-dev).");
        }

        _comm = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _double = Export("ompi_mpi_double");
        _byte = Export("ompi_mpi_byte");
        _sum = Export("ompi_mpi_op_sum");
        var init = (delegate* unmanaged<int*, byte***, int>)Export("MPI_Init");
        var rank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        var size = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        _allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Export("MPI_Allgather");
        _alltoall = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)Export("MPI_Alltoall");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
        _iallgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, nint*, int>)Export("MPI_Iallgather");
        _ialltoall = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, nint*, int>)Export("MPI_Ialltoall");
        _test = (delegate* unmanaged<nint*, int*, void*, int>)Export("MPI_Test");
        _wait = (delegate* unmanaged<nint*, void*, int>)Export("MPI_Wait");
        _commDup = (delegate* unmanaged<nint, nint*, int>)Export("MPI_Comm_dup");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _send = (delegate* unmanaged<void*, int, nint, int, int, nint, int>)Export("MPI_Send");
        _recv = (delegate* unmanaged<void*, int, nint, int, int, nint, Status*, int>)Export("MPI_Recv");
        _iprobe = (delegate* unmanaged<int, int, nint, int*, Status*, int>)Export("MPI_Iprobe");
        _probe = (delegate* unmanaged<int, int, nint, Status*, int>)Export("MPI_Probe");
        _getCount = (delegate* unmanaged<Status*, nint, int*, int>)Export("MPI_Get_count");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        Check(init(null, null), "MPI_Init");
        int r, s;
        Check(rank(_comm, &r), "MPI_Comm_rank");
        Check(size(_comm, &s), "MPI_Comm_size");
        Rank = r;
        Size = s;
    }

    /// <summary>Loads libmpi, initialises MPI and returns the world communicator; MPI is finalised when the process exits.</summary>
    /// <exception cref="InvalidOperationException">when libmpi cannot be loaded, saying which package to install.</exception>
    public static MpiCommunicator InitWorld()
    {
        nint library = 0;
        foreach (var name in (string[])["libmpi.so.40", "libmpi.so"])
            if (NativeLibrary.TryLoad(name, out library)) break;
        if (library == 0)
            throw new InvalidOperationException("MPI: this process runs under mpirun, but Open MPI's libmpi.so.40 cannot be loaded; install openmpi-bin and libopenmpi-dev (Debian) or set LD_LIBRARY_PATH to Open MPI's lib folder.");
        var world = new MpiCommunicator(library);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => world.FinalizeMpi();
        return world;
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive) => Gather(send, receive, _float);

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<double> send, Span<double> receive) => Gather(send, receive, _double);

    private void Gather<T>(ReadOnlySpan<T> send, Span<T> receive, nint type) where T : unmanaged
    {
        if ((long)receive.Length != (long)send.Length * Size)
            throw new ArgumentException($"AllGather: the receive buffer holds {receive.Length} values, but {Size} processes × {send.Length} values arrive.", nameof(receive));
        fixed (T* s = send)
        fixed (T* r = receive)
            Check(_allgather(s, send.Length, type, r, send.Length, type, _comm), "MPI_Allgather");
    }

    /// <inheritdoc />
    public void AllToAll(ReadOnlySpan<float> send, Span<float> receive)
    {
        if (send.Length != receive.Length || send.Length % Size != 0)
            throw new ArgumentException($"AllToAll: {send.Length} values to send and {receive.Length} to receive are not {Size} equal blocks each.", nameof(receive));
        int block = send.Length / Size;
        fixed (float* s = send)
        fixed (float* r = receive)
            Check(_alltoall(s, block, _float, r, block, _float, _comm), "MPI_Alltoall");
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllToAll(ReadOnlyMemory<float> send, Memory<float> receive)
    {
        if (send.Length != receive.Length || send.Length % Size != 0)
            throw new ArgumentException($"StartAllToAll: {send.Length} values to send and {receive.Length} to receive are not {Size} equal blocks each.", nameof(receive));
        var request = new Request(this, send.Pin(), receive.Pin());
        int block = send.Length / Size;
        nint handle;
        Check(_ialltoall(request.Send.Pointer, block, _float, request.Receive.Pointer, block, _float, _comm, &handle), "MPI_Ialltoall");
        request.Handle = handle;
        return request;
    }

    /// <inheritdoc />
    public ICommunicationRequest StartAllGather(ReadOnlyMemory<float> send, Memory<float> receive)
    {
        if ((long)receive.Length != (long)send.Length * Size)
            throw new ArgumentException($"StartAllGather: the receive buffer holds {receive.Length} values, but {Size} processes × {send.Length} values arrive.", nameof(receive));
        var request = new Request(this, send.Pin(), receive.Pin());
        nint handle;
        Check(_iallgather(request.Send.Pointer, send.Length, _float, request.Receive.Pointer, send.Length, _float, _comm, &handle), "MPI_Iallgather");
        request.Handle = handle;
        return request;
    }

    /// <inheritdoc />
    public ICommunicator Duplicate()
    {
        nint comm;
        Check(_commDup(_comm, &comm), "MPI_Comm_dup");
        var copy = (MpiCommunicator)MemberwiseClone();
        copy._comm = comm;
        return copy;
    }

    /// <summary>An <c>MPI_Request</c> (a pointer in Open MPI) and its pinned buffers, unpinned when it completes.</summary>
    private sealed class Request(MpiCommunicator owner, System.Buffers.MemoryHandle send, System.Buffers.MemoryHandle receive) : ICommunicationRequest
    {
        public System.Buffers.MemoryHandle Send = send, Receive = receive;
        public nint Handle;
        private bool _done;

        public bool Test()
        {
            if (_done) return true;
            nint handle = Handle;
            int flag;
            // MPI_STATUS_IGNORE is a null pointer in Open MPI's mpi.h
            owner.Check(owner._test(&handle, &flag, null), "MPI_Test");
            Handle = handle;
            if (flag != 0) Complete();
            return _done;
        }

        public void Wait()
        {
            if (_done) return;
            nint handle = Handle;
            owner.Check(owner._wait(&handle, null), "MPI_Wait");
            Handle = handle;
            Complete();
        }

        private void Complete()
        {
            _done = true;
            Send.Dispose();
            Receive.Dispose();
        }
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values)
    {
        // MPI_IN_PLACE is ((void*)1) in Open MPI's mpi.h
        fixed (double* v = values)
            Check(_allreduce((void*)1, v, values.Length, _double, _sum, _comm), "MPI_Allreduce");
    }

    /// <inheritdoc />
    public void Broadcast(Span<double> values, int root)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, Size);
        fixed (double* v = values)
            Check(_bcast(v, values.Length, _double, root, _comm), "MPI_Bcast");
    }

    /// <inheritdoc />
    public void Barrier() => Check(_barrier(_comm), "MPI_Barrier");

    /// <inheritdoc />
    public void Send(ReadOnlySpan<byte> message, int destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(destination);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(destination, Size);
        fixed (byte* m = message)
            Check(_send(m, message.Length, _byte, destination, Tag, _comm), "MPI_Send");
    }

    /// <inheritdoc />
    public byte[] Receive(int source)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(source);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(source, Size);
        Status status;
        Check(_probe(source, Tag, _comm, &status), "MPI_Probe");
        return ReceiveProbed(status);
    }

    /// <inheritdoc />
    public bool TryReceive(out int source, out byte[] message)
    {
        Status status;
        int flag;
        Check(_iprobe(AnySource, Tag, _comm, &flag, &status), "MPI_Iprobe");
        if (flag == 0)
        {
            (source, message) = (-1, []);
            return false;
        }
        source = status.Source;
        message = ReceiveProbed(status);
        return true;
    }

    /// <summary>Receives the message that <paramref name="status"/> describes (from MPI_Probe or MPI_Iprobe), sized by MPI_Get_count.</summary>
    private byte[] ReceiveProbed(Status status)
    {
        int count;
        Check(_getCount(&status, _byte, &count), "MPI_Get_count");
        var message = new byte[count];
        fixed (byte* m = message)
        {
            Status received;
            Check(_recv(m, count, _byte, status.Source, Tag, _comm, &received), "MPI_Recv");
        }
        return message;
    }

    /// <summary>The one tag of GradFlow's point-to-point messages; <c>MPI_ANY_SOURCE</c> is −1 in Open MPI's mpi.h.</summary>
    private const int Tag = 19, AnySource = -1;

    /// <summary>Open MPI's <c>MPI_Status</c> (mpi.h, <c>struct ompi_status_public_t</c>): source, tag, error, cancelled, a size_t count.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Status
    {
        public int Source;
        public int TagValue;
        public int Error;
        public int Cancelled;
        public nuint Count;
    }

    /// <inheritdoc />
    public void Abort(int exitCode)
    {
        _abort(_comm, exitCode);
        Environment.Exit(exitCode);
    }

    private void FinalizeMpi()
    {
        if (_finalized) return;
        _finalized = true;
        _finalize();
    }

    private void Check(int code, string call)
    {
        // errors are fatal under MPI's default handler; a non-zero code means a handler was changed elsewhere
        if (code != 0) throw new InvalidOperationException($"MPI: {call} failed with error code {code} on rank {Rank}.");
    }
}
