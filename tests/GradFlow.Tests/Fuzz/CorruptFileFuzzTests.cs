using System.IO.Compression;
using GradFlow.Data;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
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

    private void Fuzz(string name, byte[] valid, int variants, int seed, Action<string> read) =>
        new FileFuzzer(_dir).Run(name, valid, variants, seed, read);

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
