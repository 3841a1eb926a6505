using GradFlow.Autograd;
using GradFlow.Nn;
using GradFlow.Tensors;
using GradFlow.Tests.TestSupport;

namespace GradFlow.Tests.Nn;

public class ActivationModuleTests
{
    [Fact]
    public void Create_EveryKind_RoundTripsThroughKindOf()
    {
        foreach (var kind in Enum.GetValues<Activation>())
            Assert.Equal(kind, Activations.KindOf(Activations.Create(kind)));
    }

    [Fact]
    public void EveryActivationModule_GradientMatchesFiniteDifferences()
    {
        foreach (var kind in Enum.GetValues<Activation>())
        {
            var m = Activations.Create(kind);
            // away from the kinks at 0 and ±1, ±3
            var x = TestTensors.AwayFromZero((ulong)kind + 10, 0.1, 0.9, positive: false, 3, 5);
            GradCheck.Assert(t => m.Forward(t[0]), [x], name: kind.ToString());
        }
    }

    [Fact]
    public void PRelu_MatchesDefinition_AndSlopeGradientMatchesFiniteDifferences()
    {
        var m = new PRelu(numParameters: 3, init: 0.25);
        var x = Tensor.FromArray([-2f, 1f, -0.5f, 3f, -1f, 2f], 2, 3);
        Assert.Equal([-0.5f, 1f, -0.125f, 3f, -0.25f, 2f], m.Forward(x).ToArray());
        var slope = TestTensors.AwayFromZero(1, 0.1, 0.5, positive: true, 3);
        var input = TestTensors.AwayFromZero(2, 0.2, 2, positive: false, 4, 3);
        GradCheck.Assert(t => t[0].PRelu(t[1].Reshape(3)), [input, slope], name: "prelu");
        m.Forward(input.Detach().To(DType.Float32)).Sum().Backward();
        var iv = input.ToDoubleArray();
        for (int c = 0; c < 3; c++)
        {
            double expected = 0;
            for (int r = 0; r < 4; r++) expected += Math.Min(0, iv[r * 3 + c]);
            Assert.Equal(expected, m.Weight.Grad!.GetFlat(c), 1e-5);
        }
    }

    [Fact]
    public void PRelu_ChannelMismatch_ThrowsNamingShape()
    {
        Assert.Contains("[2, 4]", Assert.Throws<ArgumentException>(() => new PRelu(3).Forward(Tensor.Zeros(2, 4))).Message);
    }
}
