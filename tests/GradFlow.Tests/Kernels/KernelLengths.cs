namespace GradFlow.Tests.Kernels;

/// <summary>The lengths every kernel is tested at: 1..67 (all SIMD tails) and a few large ones.</summary>
public static class KernelLengths
{
    public static readonly int[] Large = [128, 1000, 4099];

    public static TheoryData<int> All
    {
        get
        {
            var data = new TheoryData<int>();
            for (int n = 1; n <= 67; n++) data.Add(n);
            foreach (int n in Large) data.Add(n);
            return data;
        }
    }

    /// <summary>Deterministic values in about [-3, 3].</summary>
    public static float[] Values(int count, int seed)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(rng.NextDouble() * 6 - 3);
        return v;
    }
}
