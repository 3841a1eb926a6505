using GradFlow.Autograd;
using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

// Reductions of Tensor: Sum, Mean, Var and Max against references computed here in double by
// grouping elements by explicit index arithmetic; float64 finite-difference checks over several
// shapes; the arg-max subgradient; the documented tie and NaN rules; errors.
public class ReductionTests
{
    // ------------------------------------------------------------------ reference

    private static int Numel(int[] shape)
    {
        int n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        return idx;
    }

    private static int Ravel(int[] idx, int[] shape)
    {
        int flat = 0;
        for (int d = 0; d < shape.Length; d++) flat = flat * shape[d] + idx[d];
        return flat;
    }

    /// <summary>
    /// Groups x's elements by output position (reduced axes set to 0) in input order and applies
    /// <paramref name="f"/> to each group; returns the values and the output shape.
    /// </summary>
    private static (double[] Values, int[] Shape) Reference(double[] x, int[] shape, int[] axes, bool keepDim, Func<List<double>, double> f)
    {
        var ax = axes.Length == 0 ? Enumerable.Range(0, shape.Length).ToArray() : axes.Select(a => a < 0 ? a + shape.Length : a).ToArray();
        var kept = shape.Select((s, i) => ax.Contains(i) ? 1 : s).ToArray();
        var groups = Enumerable.Range(0, Numel(kept)).Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            var k = Unravel(i, shape);
            foreach (int a in ax) k[a] = 0;
            groups[Ravel(k, kept)].Add(x[i]);
        }
        var outShape = keepDim ? kept : shape.Where((_, i) => !ax.Contains(i)).ToArray();
        return (groups.Select(f).ToArray(), outShape);
    }

    private static double RefSum(List<double> g) => g.Sum();

    private static double RefMean(List<double> g) => g.Sum() / g.Count;

    private static double RefVar(List<double> g, int correction)
    {
        double mean = g.Sum() / g.Count;
        double ss = 0;
        foreach (double v in g) ss += (v - mean) * (v - mean);
        return ss / (g.Count - correction);
    }

    /// <summary>First maximum; a NaN is the maximum (the first NaN wins).</summary>
    private static (double Value, int Index) RefMax(List<double> g)
    {
        int best = 0;
        for (int j = 1; j < g.Count && !double.IsNaN(g[best]); j++)
            if (double.IsNaN(g[j]) || g[j] > g[best]) best = j;
        return (g[best], best);
    }

    /// <summary>Values in [-1, 1) as float32 (exact in either dtype).</summary>
    private static Tensor Input(int[] shape, bool float64, ulong seed = 7)
    {
        var t = Tensor.Uniform(new Generator(seed), -1, 1, DType.Float32, shape);
        return float64 ? t.To(DType.Float64) : t;
    }

    /// <summary>Distinct values spaced 1/n apart in a scrambled order (no ties, far from kinks at h = 1e-6).</summary>
    private static Tensor Distinct(int[] shape, bool requiresGrad = true)
    {
        int n = Numel(shape);
        var data = Enumerable.Range(0, n).Select(i => (double)(i * 37 % n) / n - 0.5).ToArray();
        var t = shape.Length == 0 ? Tensor.Scalar(0.25, DType.Float64) : Tensor.FromArray(data, shape);
        t.RequiresGrad = requiresGrad;
        return t;
    }

    private static Tensor Leaf(int[] shape, ulong seed = 3)
    {
        var t = Tensor.Uniform(new Generator(seed), -1, 1, DType.Float64, shape);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>|got - want| ≤ bound for every element, with a readable message.</summary>
    private static void AssertClose(double[] want, Tensor got, Func<int, double> bound)
    {
        Assert.Equal(want.Length, got.Count);
        for (int i = 0; i < want.Length; i++)
        {
            double g = got.GetFlat(i);
            Assert.True(Math.Abs(g - want[i]) <= bound(i), $"element {i}: got {g:R}, reference {want[i]:R}, bound {bound(i):R}");
        }
    }

    // ------------------------------------------------------------------ cases

    private static readonly (int[] Shape, int[] Axes)[] AxisCases =
    [
        ([], []),
        ([7], []),
        ([7], [0]),
        ([7], [-1]),
        ([3, 5], [0]),
        ([3, 5], [1]),
        ([3, 5], [-1]),
        ([3, 5], [0, 1]),
        ([3, 5], [1, -2]),
        ([2, 1, 33], [2]),
        ([2, 1, 33], [1]),
        ([2, 1, 33], [0, 2]),
        ([2, 1, 33], [-1, -3]),
        ([2, 3, 4, 5], [1, 3]),
        ([2, 3, 4, 5], [2, 0]),
        ([2, 3, 4, 5], [-1]),
        ([2, 3, 4, 5], [0, 1, 2, 3]),
        ([2, 3, 4, 5], []),
        ([4, 67], [1]),
        ([67, 3], [0]),
        // runs of adjacent axes are reduced as one flattened axis
        ([2, 3, 4, 5], [1, 2]),
        ([2, 3, 4, 5], [0, 2, 3]),
        ([3, 4, 5, 6], [0, 1, 3]),
        ([2, 2, 3, 2], [1, 2, 3]),
        ([16, 8, 28, 28], [2, 3]), // a global average pool, above the kernel threads' serial floor
    ];

    public static TheoryData<int[], int[], bool, bool> SumCases
    {
        get
        {
            var data = new TheoryData<int[], int[], bool, bool>();
            foreach (var (shape, axes) in AxisCases)
                foreach (bool keepDim in new[] { false, true })
                    foreach (bool f64 in new[] { false, true })
                        data.Add(shape, axes, keepDim, f64);
            return data;
        }
    }

    public static TheoryData<int[], int[], bool> GradCases
    {
        get
        {
            var data = new TheoryData<int[], int[], bool>();
            foreach (var (shape, axes) in AxisCases.Where(c => Numel(c.Shape) <= 120))
                foreach (bool keepDim in new[] { false, true })
                    data.Add(shape, axes, keepDim);
            return data;
        }
    }

    /// <summary>Bound for a float32 (u = 2^-24) or float64 (u = 2^-53) sum of n terms: n·u·Σ|x|, the worst case of recursive summation.</summary>
    private static double SumBound(List<double> g, bool f64) => g.Count * (f64 ? Math.Pow(2, -53) : Math.Pow(2, -24)) * g.Sum(Math.Abs) + 1e-300;

    // ------------------------------------------------------------------ sum, mean

    [Theory]
    [MemberData(nameof(SumCases))]
    public void Sum_Axes_MatchesDoubleReference(int[] shape, int[] axes, bool keepDim, bool f64)
    {
        var x = Input(shape, f64);
        var y = x.Sum(axes, keepDim);
        var (want, outShape) = Reference(x.ToDoubleArray(), shape, axes, keepDim, RefSum);
        var (bounds, _) = Reference(x.ToDoubleArray(), shape, axes, keepDim, g => SumBound(g, f64));
        Assert.Equal(outShape, y.Shape.ToArray());
        Assert.Equal(x.DType, y.DType);
        AssertClose(want, y, i => bounds[i]);
    }

    [Theory]
    [MemberData(nameof(SumCases))]
    public void Mean_Axes_MatchesDoubleReference(int[] shape, int[] axes, bool keepDim, bool f64)
    {
        var x = Input(shape, f64);
        var y = x.Mean(axes, keepDim);
        var (want, outShape) = Reference(x.ToDoubleArray(), shape, axes, keepDim, RefMean);
        // The sum's bound divided by the count, plus the rounding of the final scaling (and of 1/n in float32).
        var (bounds, _) = Reference(x.ToDoubleArray(), shape, axes, keepDim,
            g => SumBound(g, f64) / g.Count + 3 * (f64 ? Math.Pow(2, -53) : Math.Pow(2, -24)) * Math.Abs(RefMean(g)));
        Assert.Equal(outShape, y.Shape.ToArray());
        AssertClose(want, y, i => bounds[i]);
    }

    [Fact]
    public void Sum_SingleAxisOverloads_AgreeWithReference()
    {
        var x = Tensor.FromArray([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        Assert.Equal([6.0, 15.0], x.Sum(1).ToDoubleArray());
        Assert.Equal([2, 1], x.Sum(-1, keepDim: true).Shape.ToArray());
        Assert.Equal([2.5, 3.5, 4.5], x.Mean(0).ToDoubleArray());
        Assert.Equal([1, 3], x.Mean(-2, keepDim: true).Shape.ToArray());
        Assert.Equal(21.0, x.Sum().Item());
        Assert.Equal(3.5, x.Mean().Item());
        Assert.Equal(0, x.Sum().Rank);
    }

    [Theory]
    [InlineData(new[] { 2, 0 }, 1, new[] { 2 })]
    [InlineData(new[] { 2, 0, 3 }, 1, new[] { 2, 3 })]
    [InlineData(new[] { 0, 3 }, 1, new[] { 0 })]
    public void Sum_EmptyAxis_GivesZeros(int[] shape, int axis, int[] expected)
    {
        var y = Tensor.Zeros(shape).Sum(axis);
        Assert.Equal(expected, y.Shape.ToArray());
        Assert.All(y.ToArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [MemberData(nameof(GradCases))]
    public void Sum_Backward_MatchesFiniteDifferences(int[] shape, int[] axes, bool keepDim)
    {
        GradCheck.Assert(t => t[0].Sum(axes, keepDim), [Leaf(shape)]);
    }

    [Theory]
    [MemberData(nameof(GradCases))]
    public void Mean_Backward_MatchesFiniteDifferences(int[] shape, int[] axes, bool keepDim)
    {
        GradCheck.Assert(t => t[0].Mean(axes, keepDim), [Leaf(shape)]);
    }

    // ------------------------------------------------------------------ var

    public static TheoryData<int[], int[], bool, bool, int> VarCases
    {
        get
        {
            var data = new TheoryData<int[], int[], bool, bool, int>();
            foreach (var (shape, axes) in AxisCases)
            {
                var ax = axes.Length == 0 ? Enumerable.Range(0, shape.Length) : axes.Select(a => a < 0 ? a + shape.Length : a);
                int n = ax.Aggregate(1, (p, a) => p * shape[a]);
                foreach (int correction in new[] { 0, 1 })
                {
                    if (n - correction <= 0) continue;
                    data.Add(shape, axes, false, false, correction);
                    data.Add(shape, axes, true, true, correction);
                }
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(VarCases))]
    public void Var_Correction_MatchesTwoPassReference(int[] shape, int[] axes, bool keepDim, bool f64, int correction)
    {
        var x = Input(shape, f64);
        var y = x.Var(axes, correction, keepDim);
        var (want, outShape) = Reference(x.ToDoubleArray(), shape, axes, keepDim, g => RefVar(g, correction));
        Assert.Equal(outShape, y.Shape.ToArray());
        // Inputs lie in [-1, 1), so the variance is O(1); float32 carries ~7 digits through two passes of ≤ 120 terms.
        double tol = f64 ? 1e-13 : 2e-5;
        AssertClose(want, y, i => tol * Math.Max(1, want[i]));
    }

    [Fact]
    public void Var_HandComputed_PopulationAndUnbiased()
    {
        var x = Tensor.FromArray([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        Assert.Equal(4.0, x.Var(0, correction: 0).Item(), 15);
        Assert.Equal(32.0 / 7, x.Var(0).Item(), 15);
    }

    public static TheoryData<int[], int[], bool, int> VarGradCases
    {
        get
        {
            var data = new TheoryData<int[], int[], bool, int>();
            foreach (var (shape, axes) in AxisCases.Where(c => Numel(c.Shape) <= 120))
            foreach (bool keepDim in new[] { false, true })
            {
                var ax = axes.Length == 0 ? Enumerable.Range(0, shape.Length) : axes.Select(a => a < 0 ? a + shape.Length : a);
                int n = ax.Aggregate(1, (p, a) => p * shape[a]);
                foreach (int correction in new[] { 0, 1 })
                    if (n - correction > 0) data.Add(shape, axes, keepDim, correction);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(VarGradCases))]
    public void Var_Backward_MatchesFiniteDifferences(int[] shape, int[] axes, bool keepDim, int correction)
    {
        GradCheck.Assert(t => t[0].Var(axes, correction, keepDim), [Leaf(shape)]);
    }

    // ------------------------------------------------------------------ max

    public static TheoryData<int[], int, bool, bool> MaxCases
    {
        get
        {
            var data = new TheoryData<int[], int, bool, bool>();
            int[][] shapes = [[7], [3, 5], [2, 1, 33], [2, 3, 4, 5], [2, 67], [67, 2]];
            foreach (var shape in shapes)
                for (int a = -shape.Length; a < shape.Length; a++)
                    foreach (bool f64 in new[] { false, true })
                        data.Add(shape, a, a % 2 == 0, f64);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(MaxCases))]
    public void Max_Axis_ValuesAndFirstIndexAtTies(int[] shape, int axis, bool keepDim, bool f64)
    {
        // Few distinct values, so ties are everywhere.
        var data = Enumerable.Range(0, Numel(shape)).Select(i => (double)(i * 7 % 5)).ToArray();
        var x = Tensor.FromArray(data, shape);
        if (!f64) x = x.To(DType.Float32);
        var (values, indices) = x.Max(axis, keepDim);
        var (want, outShape) = Reference(data, shape, [axis], keepDim, g => RefMax(g).Value);
        var (wantIdx, _) = Reference(data, shape, [axis], keepDim, g => RefMax(g).Index);
        Assert.Equal(outShape, values.Shape.ToArray());
        Assert.Equal(outShape, indices.Shape.ToArray());
        Assert.Equal(want, values.ToDoubleArray());
        Assert.Equal(wantIdx.Select(v => (int)v).ToArray(), indices.ToArray());
    }

    public static TheoryData<int, int, bool> NaNCases
    {
        get
        {
            var data = new TheoryData<int, int, bool>();
            foreach (int n in new[] { 2, 5, 8, 9, 16, 17, 33, 67 })
                foreach (bool f64 in new[] { false, true })
                {
                    data.Add(n, n - 1, f64);
                    data.Add(n, 0, f64);
                    data.Add(n, n / 2, f64);
                }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(NaNCases))]
    public void Max_NaNPresent_NaNIsTheMaximumAtItsFirstIndex(int n, int nanAt, bool f64)
    {
        // Row 0 holds NaN at nanAt (and again at the end), row 1 has none; a large value sits elsewhere.
        var data = new double[2 * n];
        for (int j = 0; j < n; j++) data[j] = data[n + j] = j % 3;
        data[(nanAt + 1) % n] = 100;
        data[nanAt] = double.NaN;
        if (nanAt != n - 1) data[n - 1] = double.NaN;
        data[n + n / 2] = 50;
        var rows = Tensor.FromArray(data, 2, n);
        var cols = Tensor.FromArray(Enumerable.Range(0, 2 * n).Select(i => data[(i % 2) * n + i / 2]).ToArray(), n, 2);
        if (!f64)
        {
            rows = rows.To(DType.Float32);
            cols = cols.To(DType.Float32);
        }
        foreach (var (x, axis) in new[] { (rows, 1), (cols, 0) }) // contiguous rows and the strided path
        {
            var (values, indices) = x.Max(axis);
            Assert.True(double.IsNaN(values.GetFlat(0)), $"axis {axis}: max of a row holding NaN is {values.GetFlat(0)}");
            Assert.Equal(50.0, values.GetFlat(1));
            Assert.Equal([nanAt, n / 2], indices.ToArray());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Max_LargeRowWithTiesInTail_ReturnsFirstIndex(bool f64)
    {
        foreach (int n in new[] { 9, 17, 33, 67, 130 })
        {
            var data = Enumerable.Range(0, n).Select(i => (double)(i % 4)).ToArray();
            data[n - 1] = 8;
            data[n / 3] = 8;
            var x = Tensor.FromArray(data, 1, n);
            if (!f64) x = x.To(DType.Float32);
            var (values, indices) = x.Max(1);
            Assert.Equal(8.0, values.Item());
            Assert.Equal(n / 3, indices[0]);
        }
    }

    [Fact]
    public void Max_SignedZeroTie_SameFirstIndexOnEveryAxis()
    {
        // -0 == +0 in IEEE 754, so this is a tie and the documented rule is the first index (as PyTorch).
        var rows = Tensor.FromArray([-0.0f, 0.0f], 1, 2);
        var cols = Tensor.FromArray([-0.0f, -0.0f, 0.0f, 0.0f], 2, 2); // axis 0 with inner 2: the strided path
        Assert.Equal([0, 0], cols.Max(0).Indices.ToArray());
        Assert.Equal(0, rows.Max(1).Indices[0]);
    }

    public static TheoryData<int[], int[], bool> MaxAxesCases => new()
    {
        { [2, 3, 4, 5], [1, 3], false },
        { [2, 3, 4, 5], [1, 3], true },
        { [2, 3, 4, 5], [0, 2], false },
        { [2, 3, 4, 5], [-1, -4], true },
        { [2, 3, 4, 5], [], false },
        { [2, 3, 4, 5], [], true },
        { [2, 1, 33], [0, 2], false },
        { [2, 1, 33], [1], true },
        { [3, 5], [0, 1], true },
        { [7], [], false },
        { [], [], false },
    };

    [Theory]
    [MemberData(nameof(MaxAxesCases))]
    public void Max_SeveralAxes_MatchesReference(int[] shape, int[] axes, bool keepDim)
    {
        var x = Input(shape, float64: true);
        var y = x.Max(axes, keepDim);
        var (want, outShape) = Reference(x.ToDoubleArray(), shape, axes, keepDim, g => RefMax(g).Value);
        Assert.Equal(outShape, y.Shape.ToArray());
        Assert.Equal(want, y.ToDoubleArray());
    }

    [Fact]
    public void Max_SeveralAxesWithNaN_GivesNaNOnlyWhereItOccurs()
    {
        var data = Enumerable.Range(0, 24).Select(i => (double)i).ToArray();
        data[5] = double.NaN; // in block [0, *, *] for shape [2, 3, 4]
        var y = Tensor.FromArray(data, 2, 3, 4).Max([1, 2]);
        Assert.True(double.IsNaN(y.GetFlat(0)));
        Assert.Equal(23.0, y.GetFlat(1));
    }

    [Fact]
    public void Max_SeveralAxesWithEmptyKeptDimension_ReturnsEmpty()
    {
        var y = Tensor.Zeros(0, 3, 2).Max([1, 2]);
        Assert.Equal([0], y.Shape.ToArray());
    }

    [Fact]
    public void Max_Backward_FlowsOnlyToTheArgMax()
    {
        var x = Tensor.FromArray([1.0, 5.0, 3.0, 7.0, 2.0, 7.0], 2, 3);
        x.RequiresGrad = true;
        x.Max(1).Values.Backward(Tensor.FromArray([10.0, 20.0]));
        Assert.Equal([0, 10, 0, 20, 0, 0], x.Grad!.ToDoubleArray()); // tie 7/7: the first index takes it all

        var z = Tensor.FromArray([1.0, 5.0, 3.0, 7.0, 2.0, 7.0], 2, 3);
        z.RequiresGrad = true;
        z.Max(0, keepDim: true).Values.Backward(Tensor.FromArray([10.0, 20.0, 30.0], 1, 3));
        Assert.Equal([0, 20, 0, 10, 0, 30], z.Grad!.ToDoubleArray());

        var w = Tensor.FromArray(Enumerable.Range(0, 24).Select(i => (double)(i * 5 % 24)).ToArray(), 2, 3, 4);
        w.RequiresGrad = true;
        w.Max([0, 2]).Backward(Tensor.FromArray([1.0, 2.0, 3.0]));
        var grad = w.Grad!.ToDoubleArray();
        var data = w.ToDoubleArray();
        for (int j = 0; j < 3; j++)
        {
            // The arg-max of block j over (i, k), found here by scanning.
            int best = -1;
            for (int i = 0; i < 2; i++)
                for (int k = 0; k < 4; k++)
                {
                    int f = (i * 3 + j) * 4 + k;
                    if (best < 0 || data[f] > data[best]) best = f;
                }
            for (int i = 0; i < 2; i++)
                for (int k = 0; k < 4; k++)
                {
                    int f = (i * 3 + j) * 4 + k;
                    Assert.Equal(f == best ? j + 1.0 : 0.0, grad[f]);
                }
        }
    }

    [Theory]
    [InlineData(new[] { 7 }, 0)]
    [InlineData(new[] { 3, 5 }, 0)]
    [InlineData(new[] { 3, 5 }, -1)]
    [InlineData(new[] { 2, 1, 33 }, 1)]
    [InlineData(new[] { 2, 1, 33 }, 2)]
    [InlineData(new[] { 2, 3, 4, 5 }, 2)]
    [InlineData(new[] { 2, 3, 4, 5 }, 0)]
    public void Max_Backward_MatchesFiniteDifferences(int[] shape, int axis)
    {
        GradCheck.Assert(t => t[0].Max(axis).Values, [Distinct(shape)]);
        GradCheck.Assert(t => t[0].Max(axis, keepDim: true).Values, [Distinct(shape)]);
    }

    [Theory]
    [MemberData(nameof(MaxAxesCases))]
    public void Max_SeveralAxes_BackwardMatchesFiniteDifferences(int[] shape, int[] axes, bool keepDim)
    {
        GradCheck.Assert(t => t[0].Max(axes, keepDim), [Distinct(shape)]);
    }

    // ------------------------------------------------------------------ errors

    private static Tensor X23 => Tensor.Zeros(2, 3);

    private static readonly Dictionary<string, (Action Act, string[] Fragments)> Errors = new()
    {
        ["sum axis out of range"] = (() => X23.Sum(2), ["sum:", "2"]),
        ["sum negative axis out of range"] = (() => X23.Sum([-3]), ["sum:", "-3"]),
        ["sum axis twice"] = (() => X23.Sum([1, -1]), ["sum:", "-1", "twice"]),
        ["mean axis out of range"] = (() => X23.Mean(2), ["mean:", "2"]),
        ["mean axis twice"] = (() => X23.Mean([0, 0]), ["mean:", "0", "twice"]),
        ["mean over empty axis"] = (() => Tensor.Zeros(2, 0).Mean(1), ["mean:", "[2, 0]"]),
        ["mean of empty tensor"] = (() => Tensor.Zeros(0).Mean(), ["mean:", "[0]"]),
        ["var no degrees of freedom"] = (() => Tensor.Zeros(3, 1).Var(1), ["var:", "[3, 1]"]),
        ["var correction exceeds count"] = (() => X23.Var([1], correction: 3), ["var:", "[2, 3]", "3"]),
        ["var axis out of range"] = (() => X23.Var(5), ["var:", "5"]),
        ["var axis twice"] = (() => X23.Var([1, 1]), ["var:", "1", "twice"]),
        ["max axis out of range"] = (() => X23.Max(2), ["max:", "2"]),
        ["max negative axis out of range"] = (() => X23.Max(-3), ["max:", "-3"]),
        ["max axes twice"] = (() => X23.Max([0, -2]), ["max:", "-2", "twice"]),
        ["max over empty axis"] = (() => Tensor.Zeros(2, 0).Max(1), ["max:", "[2, 0]"]),
        ["max over several axes, one empty"] = (() => Tensor.Zeros(2, 0).Max([0, 1]), ["max:", "empty"]),
    };

    public static TheoryData<string> ErrorCases => new(Errors.Keys);

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public void Reduction_BadInput_ThrowsArgumentExceptionNamingOpAndValue(string name)
    {
        var (act, fragments) = Errors[name];
        var ex = Assert.ThrowsAny<ArgumentException>(act);
        foreach (var f in fragments) Assert.Contains(f, ex.Message);
    }
}
