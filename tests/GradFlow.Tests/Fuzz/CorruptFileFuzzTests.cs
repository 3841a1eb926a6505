using System.IO.Compression;
using GradFlow.Data;
using GradFlow.Tensors;
using GradFlow.Training;

namespace GradFlow.Tests.Fuzz;

/// <summary>
/// Thousands of corrupted safetensors and IDX files (seeded, so every failure is reproducible from
/// the seed and variant index) must either load consistently or throw the documented
/// <see cref="InvalidDataException"/> — never an index, overflow, out-of-memory or JSON exception.
/// </summary>
public sealed class CorruptFileFuzzTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Mutate(byte[] original, Random rng, out string how)
    {
        var b = (byte[])original.Clone();
        switch (rng.Next(6))
        {
            case 0:
            {
                int flips = 1 + rng.Next(4);
                for (int i = 0; i < flips; i++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                how = $"{flips} bit flips";
                return b;
            }
            case 1:
            {
                int len = rng.Next(b.Length);
                how = $"truncated to {len}";
                return b[..len];
            }
            case 2:
            {
                int at = rng.Next(b.Length), n = 1 + rng.Next(16);
                var ins = new byte[n];
                rng.NextBytes(ins);
                how = $"inserted {n} bytes at {at}";
                return [.. b[..at], .. ins, .. b[at..]];
            }
            case 3:
            {
                int at = rng.Next(b.Length), n = Math.Min(1 + rng.Next(16), b.Length - at);
                how = $"deleted {n} bytes at {at}";
                return [.. b[..at], .. b[(at + n)..]];
            }
            case 4:
            {
                // overwrite a 4- or 8-byte field near the start (length fields, dims) with an extreme value
                int at = rng.Next(Math.Min(b.Length, 48));
                var v = BitConverter.GetBytes(rng.Next(3) switch { 0 => ulong.MaxValue, 1 => (ulong)int.MaxValue + 1, _ => (ulong)rng.NextInt64() });
                for (int i = 0; i < 8 && at + i < b.Length; i++) b[at + i] = v[i];
                how = $"extreme value at {at}";
                return b;
            }
            default:
            {
                int at = rng.Next(b.Length);
                b[at] = (byte)"0123456789-,:{}[]\"eE.F"[rng.Next(22)];
                how = $"syntax byte at {at}";
                return b;
            }
        }
    }

    private void Fuzz(string name, byte[] valid, int variants, int seed, Action<string> read)
    {
        var rng = new Random(seed);
        var path = Path.Combine(_dir, name);
        for (int v = 0; v < variants; v++)
        {
            var bytes = Mutate(valid, rng, out string how);
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                read(path);
            }
            catch (InvalidDataException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"{name} variant {v} (seed {seed}, {how}): {e.GetType().Name}: {e.Message}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 64L * bytes.Length + (8 << 20), $"{name} variant {v} (seed {seed}, {how}) allocated {allocated} bytes for a {bytes.Length}-byte file");
        }
    }

    [Fact]
    public void SafeTensors_3000CorruptVariants_OnlyInvalidDataException()
    {
        var g = new Generator(1);
        var valid = Path.Combine(_dir, "valid.safetensors");
        SafeTensors.Write(valid, [new("layers.0.weight", Tensor.RandN(g, 4, 3)), new("layers.0.bias", Tensor.RandN(g, 4)),
            new("scale", Tensor.Scalar(2, DType.Float64))], new Dictionary<string, string> { ["epoch"] = "3" });
        Fuzz("st.safetensors", File.ReadAllBytes(valid), 3000, 7, path =>
        {
            var c = SafeTensors.Read(path);
            foreach (var (_, t) in c.Tensors)
            {
                long n = 1;
                foreach (int d in t.Shape) n *= d;
                Assert.Equal(n, t.Count);
            }
        });
    }

    [Fact]
    public void Idx_3000CorruptVariants_OnlyInvalidDataException()
    {
        var raw = Path.Combine(_dir, "valid-idx3-ubyte");
        var data = new byte[5 * 4 * 3];
        new Random(3).NextBytes(data);
        IdxWriter.Write(raw, new IdxArray(data, 5, 4, 3), gzip: false);
        var rawBytes = File.ReadAllBytes(raw);
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(rawBytes);
        void Check(string path)
        {
            var a = IdxReader.Read(path);
            long n = 1;
            foreach (int d in a.Shape) n *= d;
            Assert.Equal(n, a.Data.Length);
        }
        Fuzz("idx-raw", rawBytes, 2000, 11, Check);
        Fuzz("idx.gz", ms.ToArray(), 1000, 13, Check);
    }
}
