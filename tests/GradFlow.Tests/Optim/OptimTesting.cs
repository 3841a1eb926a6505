using GradFlow.Nn;
using GradFlow.Optim;
using GradFlow.Tensors;

namespace GradFlow.Tests.Optim;

/// <summary>Fixed inputs for the optimiser tests, and running an optimiser over a gradient sequence.</summary>
internal static class OptimTesting
{
    /// <summary>Initial weights (one zero, mixed signs).</summary>
    public static readonly double[] W0 = [0.5, -1.25, 2.0, 0.0, -0.3];

    /// <summary>The gradient given at steps 1, 2, 3 (mixed signs and scales; the last element shrinks, so v_t falls and AMSGrad differs from Adam).</summary>
    public static readonly double[][] Grads =
    [
        [0.1, -0.2, 0.3, 0.05, -1.0],
        [-0.4, 0.25, 0.2, -0.1, 0.6],
        [0.3, 0.1, -0.5, 0.2, 0.05],
    ];

    public static readonly DType[] DTypes = [DType.Float64, DType.Float32];

    /// <summary>The values as the dtype stores them, back in double (float32 rounds).</summary>
    public static double[] Stored(DType dtype, double[] values) =>
        dtype == DType.Float64 ? (double[])values.Clone() : values.Select(v => (double)(float)v).ToArray();

    public static Tensor MakeTensor(DType dtype, double[] values) =>
        dtype == DType.Float64 ? Tensor.FromArray((double[])values.Clone(), values.Length) : Tensor.FromArray(values.Select(v => (float)v).ToArray(), values.Length);

    public static Parameter MakeParameter(DType dtype, double[] values) => new(MakeTensor(dtype, values));

    /// <summary>Runs <paramref name="make"/>'s optimiser over <see cref="Grads"/>; returns the weights after each step.</summary>
    public static double[][] Run(Func<IEnumerable<Parameter>, Optimizer> make, DType dtype)
    {
        var p = MakeParameter(dtype, W0);
        var opt = make([p]);
        var trajectory = new double[Grads.Length][];
        for (int t = 0; t < Grads.Length; t++)
        {
            p.Grad = MakeTensor(dtype, Grads[t]);
            opt.Step();
            trajectory[t] = p.Data.ToDoubleArray();
        }
        return trajectory;
    }

    /// <summary>
    /// Asserts each step's weights against the reference (computed in double from the stored inputs):
    /// to 1e-12 relative for float64, and 1e-6 relative (a few float32 roundings) for float32.
    /// </summary>
    public static void AssertTrajectory(double[][] expected, double[][] actual, DType dtype)
    {
        double tol = dtype == DType.Float64 ? 1e-12 : 1e-6;
        for (int t = 0; t < expected.Length; t++)
            for (int i = 0; i < expected[t].Length; i++)
            {
                double e = expected[t][i], a = actual[t][i];
                Assert.True(Math.Abs(a - e) <= tol * Math.Max(1, Math.Abs(e)),
                    $"{dtype} step {t + 1}, element {i}: expected {e:R}, got {a:R} (difference {a - e:E3}).");
            }
    }

    /// <summary>Runs the optimiser and a double reference (given the stored W0 and grads) for both dtypes and compares.</summary>
    public static void Check(Func<IEnumerable<Parameter>, Optimizer> make, Func<double[], double[][], double[][]> reference)
    {
        foreach (var dtype in DTypes)
        {
            var expected = reference(Stored(dtype, W0), Grads.Select(g => Stored(dtype, g)).ToArray());
            AssertTrajectory(expected, Run(make, dtype), dtype);
        }
    }
}
