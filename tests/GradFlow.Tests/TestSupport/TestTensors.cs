using GradFlow.Tensors;

namespace GradFlow.Tests.TestSupport;

/// <summary>Inputs for op tests: seeded float64 leaves, and a broadcasting reference evaluator.</summary>
public static class TestTensors
{
    /// <summary>A float64 leaf of N(0, 1) samples that requires grad.</summary>
    public static Tensor Leaf(ulong seed, params int[] shape)
    {
        var t = Tensor.Normal(new Generator(seed), 0, 1, DType.Float64, shape);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>A float64 leaf whose values lie in ±[low, high] (away from zero) or [low, high] when <paramref name="positive"/>.</summary>
    public static Tensor AwayFromZero(ulong seed, double low, double high, bool positive, params int[] shape)
    {
        var g = new Generator(seed);
        var u = Tensor.Uniform(g, low, high, DType.Float64, shape);
        var v = u.ToDoubleArray();
        if (!positive)
            for (int i = 0; i < v.Length; i++) if (g.NextDouble() < 0.5) v[i] = -v[i];
        var t = shape.Length == 0 ? Tensor.Scalar(v[0], DType.Float64) : Tensor.FromArray(v, shape);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>NumPy broadcast of two shapes, computed independently of the library.</summary>
    public static int[] BroadcastShape(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            r[i] = Math.Max(da, db);
        }
        return r;
    }

    /// <summary>Element <paramref name="flat"/> of the broadcast shape <paramref name="out"/>, read from a tensor of <paramref name="shape"/>.</summary>
    public static double BroadcastRead(double[] values, int[] shape, int[] @out, int flat)
    {
        int offset = 0, stride = 1;
        for (int d = @out.Length - 1; d >= 0; d--)
        {
            int i = flat % @out[d];
            flat /= @out[d];
            int sd = d - (@out.Length - shape.Length);
            if (sd < 0) continue;
            if (shape[sd] != 1) offset += i * stride;
            stride *= shape[sd];
        }
        return values[offset];
    }

    /// <summary><c>f(a, b)</c> evaluated element by element over the broadcast shape.</summary>
    public static double[] BroadcastReference(Tensor a, Tensor b, Func<double, double, double> f, out int[] shape)
    {
        var sa = a.Shape.ToArray();
        var sb = b.Shape.ToArray();
        shape = BroadcastShape(sa, sb);
        int n = 1;
        foreach (int d in shape) n *= d;
        var va = a.ToDoubleArray();
        var vb = b.ToDoubleArray();
        var r = new double[n];
        for (int i = 0; i < n; i++) r[i] = f(BroadcastRead(va, sa, shape, i), BroadcastRead(vb, sb, shape, i));
        return r;
    }

    public static void AllClose(double[] expected, double[] actual, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (double.IsInfinity(e) && e == a) continue;
            Assert.True(Math.Abs(e - a) <= atol + rtol * Math.Abs(e), $"{what}: element {i}: expected {e}, got {a}");
        }
    }
}
