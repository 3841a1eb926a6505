using GradFlow.Nn;
using GradFlow.Tensors;

namespace GradFlow.Tests.Recurrent;

/// <summary>The recurrent initialisers: per-gate orthogonal and identity blocks, the LSTM forget-gate bias.</summary>
public class RecurrentInitTests
{
    /// <summary>Block k ([H, H], rows k·H..) of a [gates·H, H] matrix, as double[H, H].</summary>
    private static double[,] Block(double[] w, int h, int k)
    {
        var b = new double[h, h];
        for (int i = 0; i < h; i++)
            for (int j = 0; j < h; j++) b[i, j] = w[(k * h + i) * h + j];
        return b;
    }

    [Theory]
    [InlineData(4, 16, 1.0)]
    [InlineData(3, 7, 1.0)]
    [InlineData(1, 5, 1.3)]
    public void OrthogonalRecurrent_EachGateBlock_IsGainTimesOrthogonal(int gates, int h, double gain)
    {
        var w = Tensor.Zeros(gates * h, h);
        Init.OrthogonalRecurrent(w, new Generator(4), gain);
        var v = w.ToDoubleArray();
        for (int k = 0; k < gates; k++)
        {
            var b = Block(v, h, k);
            for (int i = 0; i < h; i++)
                for (int j = 0; j < h; j++)
                {
                    double dot = 0;
                    for (int r = 0; r < h; r++) dot += b[r, i] * b[r, j];
                    Assert.True(Math.Abs(dot - (i == j ? gain * gain : 0)) < 1e-5, $"block {k}: (BᵀB)[{i},{j}] = {dot}");
                }
        }
        if (gates > 1) Assert.NotEqual(Block(v, h, 0)[0, 0], Block(v, h, 1)[0, 0]); // independent draws per gate
        var again = Tensor.Zeros(gates * h, h);
        Init.OrthogonalRecurrent(again, new Generator(4), gain);
        Assert.Equal(v, again.ToDoubleArray());
    }

    [Fact]
    public void IdentityRecurrent_EachGateBlock_IsGainTimesIdentity()
    {
        var w = Tensor.Full(7, 12, 4);
        Init.IdentityRecurrent(w, 0.5);
        var v = w.ToDoubleArray();
        for (int r = 0; r < 12; r++)
            for (int c = 0; c < 4; c++) Assert.Equal(r % 4 == c ? 0.5 : 0.0, v[r * 4 + c]);
    }

    [Fact]
    public void ForgetGateBias_SetsOnlyTheSecondQuarter()
    {
        var b = Tensor.Arange(0, 12);
        Init.ForgetGateBias(b, 2.5);
        Assert.Equal([0, 1, 2, 2.5, 2.5, 2.5, 6, 7, 8, 9, 10, 11], b.ToDoubleArray());

        var lstm = new Lstm(3, 5, new Generator(1), numLayers: 2);
        var before = lstm.BiasIh(1)!.Data.ToDoubleArray();
        lstm.InitForgetGateBias();
        for (int l = 0; l < 2; l++)
        {
            var ih = lstm.BiasIh(l)!.Data.ToDoubleArray();
            var hh = lstm.BiasHh(l)!.Data.ToDoubleArray();
            for (int j = 5; j < 10; j++) Assert.Equal(1.0, ih[j] + hh[j], 6);
            Assert.All(hh[5..10], v => Assert.Equal(0.0, v));
        }
        Assert.Equal(before[..5], lstm.BiasIh(1)!.Data.ToDoubleArray()[..5]);
        Assert.Equal(before[10..], lstm.BiasIh(1)!.Data.ToDoubleArray()[10..]);
    }

    [Fact]
    public void RecurrentInits_BadShapes_ThrowNamingShapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Init.OrthogonalRecurrent(Tensor.Zeros(10, 3), new Generator(1)));
        Assert.Contains("[10, 3]", e.Message);
        e = Assert.Throws<ArgumentException>(() => Init.ForgetGateBias(Tensor.Zeros(6)));
        Assert.Contains("[6]", e.Message);
        Assert.Throws<InvalidOperationException>(() => new Lstm(2, 3, new Generator(1), bias: false).InitForgetGateBias());
    }
}
