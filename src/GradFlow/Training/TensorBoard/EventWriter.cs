using System.Buffers.Binary;
using System.Numerics;
using Google.Protobuf;

namespace GradFlow.Training.TensorBoard;

/// <summary>
/// Writes a TensorBoard event file (<c>events.out.tfevents.SECONDS.HOST.PID.gradflow</c>) in a log
/// directory: scalars, histograms and text, each an <see cref="Event"/> protobuf (event.proto,
/// TensorFlow's field numbers) in TFRecord framing.
/// </summary>
/// <remarks>
/// A record is <c>uint64 length</c>, <c>uint32 masked CRC32C of the length bytes</c>, the data,
/// <c>uint32 masked CRC32C of the data</c>, all little-endian; the mask is
/// <c>((crc &gt;&gt; 15) | (crc &lt;&lt; 17)) + 0xa282ead8</c>. The first record is the file version
/// <c>brain.Event:2</c>. Every record is flushed as written, so a crash leaves every complete record
/// readable (TensorBoard stops at a torn last record).
/// </remarks>
/// <example>
/// <code>
/// using var tb = new EventWriter("runs/tb");
/// tb.AddScalar("loss", 0.7, step: 10);
/// tb.AddHistogram("weights/layers.0.weight", w.Storage as float[], step: 10);
/// </code>
/// </example>
public sealed class EventWriter : IDisposable
{
    private readonly FileStream _file;
    private readonly Func<double> _clock;

    /// <summary>Creates <paramref name="directory"/> if needed and a new event file in it.</summary>
    /// <param name="directory">The log directory (what <c>tensorboard --logdir</c> is pointed at).</param>
    /// <param name="clock">Wall time in seconds since the Unix epoch (default: the system clock).</param>
    public EventWriter(string directory, Func<double>? clock = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        _clock = clock ?? (() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        long seconds = (long)_clock();
        string host = Environment.MachineName;
        Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{seconds}.{host}.{Environment.ProcessId}.gradflow");
        for (int n = 1; File.Exists(Path); n++)
            Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{seconds}.{host}.{Environment.ProcessId}.{n}.gradflow");
        _file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        Write(new Event { WallTime = _clock(), FileVersion = "brain.Event:2" });
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <summary>A scalar (TensorBoard's Scalars tab). Non-finite values are written as they are (TensorBoard shows them as gaps).</summary>
    public void AddScalar(string tag, double value, long step) =>
        Write(Summary(step, new Summary.Types.Value { Tag = tag, SimpleValue = (float)value }));

    /// <summary>Several scalars of one step in one event.</summary>
    public void AddScalars(IEnumerable<(string Tag, double Value)> values, long step)
    {
        var summary = new Summary();
        foreach (var (tag, value) in values) summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = (float)value });
        if (summary.Value.Count > 0) Write(new Event { WallTime = _clock(), Step = step, Summary = summary });
    }

    /// <summary>
    /// A histogram of <paramref name="values"/> (TensorBoard's Histograms and Distributions tabs):
    /// <paramref name="buckets"/> equal-width buckets from the smallest to the largest finite value;
    /// non-finite values are left out of the buckets (their count is the difference between
    /// <c>num</c> and the buckets' sum).
    /// </summary>
    public void AddHistogram(string tag, ReadOnlySpan<float> values, long step, int buckets = 30)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, squares = 0;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            min = Math.Min(min, v);
            max = Math.Max(max, v);
            sum += v;
            squares += (double)v * v;
        }
        var h = new HistogramProto { Num = values.Length, Sum = sum, SumSquares = squares };
        if (min > max)
        {
            h.Min = h.Max = 0;
            Write(Summary(step, new Summary.Types.Value { Tag = tag, Histo = h }));
            return;
        }
        h.Min = min;
        h.Max = max;
        if (max == min) buckets = 1;
        double width = (max - min) / buckets;
        var counts = new double[buckets];
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            // bucket i holds (limit[i-1], limit[i]]; the first bucket also holds the minimum
            int i = width > 0 ? (int)Math.Ceiling((v - min) / width) - 1 : 0;
            counts[Math.Clamp(i, 0, buckets - 1)]++;
        }
        for (int i = 0; i < buckets; i++) h.BucketLimit.Add(i == buckets - 1 ? max : min + (i + 1) * width);
        h.Bucket.Add(counts);
        Write(Summary(step, new Summary.Types.Value { Tag = tag, Histo = h }));
    }

    /// <summary>Text (TensorBoard's Text tab, markdown): a scalar string tensor with the <c>text</c> plugin's metadata.</summary>
    public void AddText(string tag, string text, long step)
    {
        var tensor = new TensorProto { Dtype = DataType.DtString, TensorShape = new TensorShapeProto() };
        tensor.StringVal.Add(ByteString.CopyFromUtf8(text));
        var metadata = new SummaryMetadata { PluginData = new SummaryMetadata.Types.PluginData { PluginName = "text" }, DataClass = DataClass.Tensor };
        Write(Summary(step, new Summary.Types.Value { Tag = tag, Metadata = metadata, Tensor = tensor }));
    }

    private Event Summary(long step, Summary.Types.Value value)
    {
        var summary = new Summary();
        summary.Value.Add(value);
        return new Event { WallTime = _clock(), Step = step, Summary = summary };
    }

    private void Write(Event e)
    {
        var data = e.ToByteArray();
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        _file.Write(header);
        _file.Write(data);
        _file.Write(footer);
        _file.Flush();
    }

    /// <summary>CRC32C (Castagnoli) of <paramref name="data"/>, masked as TFRecord does.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    /// <summary>CRC32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF).</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();
}
