using GradFlow.Nn.Network;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;
using GradFlow.Training.Onnx;

namespace GradFlow.Tests.Fuzz;

/// <summary>
/// The ONNX importer on 10 000 mutated models (GradFlow's own exports of a small ResNet, a
/// two-layer LSTM and an MLP with GELU and tanh-GELU expressions: bit flips, truncation, inserted and deleted bytes, extreme values): each loads
/// into a network whose weights fit, or fails with the importer's documented
/// <see cref="FormatException"/> (counted as the fuzzer's documented error); no other exception,
/// and no allocation beyond the fuzzer's bound.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class OnnxFuzzTests : IDisposable
{
    /// <summary>Mutated models in all.</summary>
    public const int Variants = 10_000;

    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-fuzz-onnx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Export(string model)
    {
        var net = NetworkBuilder.Build(NetworkDescription.Parse(model), new Generator(3));
        return OnnxExport.ToBytes(net);
    }

    private static void Read(string path)
    {
        try
        {
            var m = OnnxImport.Read(path);
            m.Build(new Generator(0));
        }
        catch (FormatException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    [Fact]
    public void Onnx_10000Mutations_LoadOrFormatException()
    {
        var cnn = Export("net 1x6x6 seq[conv(out=3,k=3,p=1,bias=false) batchnorm relu residual(shortcut=projection,post=relu)[seq[conv(out=4,k=3,s=2,p=1) batchnorm]] adaptiveavgpool(size=1) flatten linear(out=2)]");
        var lstm = Export("net 4x2 seq[recurrent(cell=lstm,hidden=3,layers=2) tanh linear(out=2)]");
        // GELU and tanh-GELU as expressions of Erf / Tanh, Mul, Add, Div: the importer's pattern matching
        var gelu = Export("net 4 seq[linear(out=6) gelu linear(out=6) gelu-tanh linear(out=2)]");
        var fuzzer = new FileFuzzer(_dir);
        int loaded = fuzzer.Run("cnn.onnx", cnn, Variants * 2 / 5, 31, Read);
        loaded += fuzzer.Run("lstm.onnx", lstm, Variants * 2 / 5, 32, Read);
        loaded += fuzzer.Run("gelu.onnx", gelu, Variants / 5, 33, Read);
        Assert.InRange(loaded, 1, Variants - 1);
    }
}
