using GradFlow.Tensors;

namespace GradFlow.Tests.Tensors;

// Creation of tensors (Zeros, Ones, Full, Arange, FromArray), element access errors, and the seeded
// Generator: its stream against an independent transcription of the published algorithms
// (xoshiro256** and SplitMix64 by Blackman and Vigna; Lemire's bounded integers), and the
// statistics of the random tensors built on it.
public class CreationTests
{
    // ------------------------------------------------------------------ zeros, ones, full

    public static TheoryData<int[]> Shapes => new() { Array.Empty<int>(), new[] { 0 }, new[] { 3 }, new[] { 2, 1, 33 }, new[] { 2, 3, 4, 5 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ZerosOnesFull_Shape_FillEveryElement(int[] shape)
    {
        int n = shape.Aggregate(1, (p, d) => p * d);
        foreach (var (t, value, dtype) in new[]
        {
            (Tensor.Zeros(shape), 0.0, DType.Float32),
            (Tensor.Zeros(DType.Float64, shape), 0.0, DType.Float64),
            (Tensor.Ones(shape), 1.0, DType.Float32),
            (Tensor.Ones(DType.Float64, shape), 1.0, DType.Float64),
            (Tensor.Full(-2.5, shape), -2.5, DType.Float32),
            (Tensor.Full(0.1, DType.Float64, shape), 0.1, DType.Float64),
        })
        {
            Assert.Equal(shape, t.Shape.ToArray());
            Assert.Equal(n, t.Count);
            Assert.Equal(dtype, t.DType);
            Assert.Equal(Enumerable.Repeat(value, n), t.ToDoubleArray());
        }
    }

    [Fact]
    public void Full_Float32_StoresTheRoundedValue()
    {
        Assert.Equal([0.1f, 0.1f], Tensor.Full(0.1, 2).ToArray());
        Assert.Equal(0, Tensor.Scalar(3).Rank);
        Assert.Equal(3.0, Tensor.Scalar(3).Item());
    }

    // ------------------------------------------------------------------ arange

    // Expected values written out by hand (torch.arange semantics: ceil((end - start) / step) values).
    public static TheoryData<double, double, double, double[]> ArangeCases => new()
    {
        { 0, 5, 1, [0, 1, 2, 3, 4] },
        { 0, 10, 3, [0, 3, 6, 9] },
        { -3, 3, 2, [-3, -1, 1] },
        { 0, 1, 0.25, [0, 0.25, 0.5, 0.75] },
        { 1, 0, -0.25, [1, 0.75, 0.5, 0.25] },
        { 5, 0, -1.5, [5, 3.5, 2, 0.5] },
        { 0, 0.3, 0.1, [0, 0.1, 0.2] },
        { 2, 2, 1, [] },
        { 2, 2.5, 1, [2] },
    };

    [Theory]
    [MemberData(nameof(ArangeCases))]
    public void Arange_StartEndStep_GivesHandComputedValues(double start, double end, double step, double[] expected)
    {
        var t = Tensor.Arange(start, end, step);
        Assert.Equal([expected.Length], t.Shape.ToArray());
        Assert.Equal(expected.Select(v => (float)v).ToArray(), t.ToArray());
        var d = Tensor.Arange(start, end, step, DType.Float64);
        Assert.Equal(DType.Float64, d.DType);
        Assert.Equal(expected.Length, d.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], d.GetFlat(i), 15);
    }

    [Fact]
    public void Arange_FractionalStepFloat64_TenValuesBelowEnd()
    {
        var t = Tensor.Arange(0, 1, 0.1, DType.Float64);
        Assert.Equal(10, t.Count);
        for (int i = 0; i < 10; i++) Assert.True(Math.Abs(t.GetFlat(i) - i / 10.0) <= 1e-15, $"element {i}: {t.GetFlat(i):R}");
        Assert.True(t.GetFlat(9) < 1);
    }

    [Theory]
    [InlineData(0, 5, 0, "0")]
    [InlineData(0, 5, -1, "-1")]
    [InlineData(5, 0, 1, "5")]
    [InlineData(double.NaN, 5, 1, "NaN")]
    [InlineData(0, double.PositiveInfinity, 1, "Infinity")]
    [InlineData(0, 5, double.NaN, "NaN")]
    public void Arange_BadArguments_ThrowNamingArangeAndValue(double start, double end, double step, string fragment)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => Tensor.Arange(start, end, step));
        Assert.Contains("arange:", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }

    // ------------------------------------------------------------------ from array

    [Fact]
    public void FromArray_DefaultShape_IsOneDimensionalCopy()
    {
        var data = new[] { 1f, 2f, 3f };
        var t = Tensor.FromArray(data);
        data[0] = 99;
        Assert.Equal([3], t.Shape.ToArray());
        Assert.Equal([1f, 2f, 3f], t.ToArray());
        var m = Tensor.FromArray(new float[,] { { 1, 2, 3 }, { 4, 5, 6 } });
        Assert.Equal([2, 3], m.Shape.ToArray());
        Assert.Equal(6.0, m[1, 2]);
        Assert.Equal(4.0, m[-1, 0]);
    }

    [Fact]
    public void FromArray_ShapeMismatch_ThrowsNamingShapeAndLength()
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => Tensor.FromArray([1f, 2f, 3f, 4f, 5f], 2, 2));
        Assert.Contains("FromArray:", ex.Message);
        Assert.Contains("[2, 2]", ex.Message);
        Assert.Contains("5", ex.Message);
        var ex64 = Assert.ThrowsAny<ArgumentException>(() => Tensor.FromArray([1.0, 2.0], 3));
        Assert.Contains("FromArray:", ex64.Message);
        Assert.Contains("[3]", ex64.Message);
    }

    [Fact]
    public void Creation_NegativeDimension_ThrowsNamingOpAndShape()
    {
        foreach (var (act, op) in new (Action, string)[]
        {
            (() => Tensor.Zeros(2, -1), "zeros:"),
            (() => Tensor.Full(1, 2, -1), "full:"),
            (() => Tensor.FromArray([1f, 2f], -1, -2), "FromArray:"),
        })
        {
            var ex = Assert.ThrowsAny<ArgumentException>(act);
            Assert.Contains(op, ex.Message);
            Assert.Contains("-1", ex.Message);
        }
    }

    // ------------------------------------------------------------------ element access errors

    [Fact]
    public void Item_MultipleElements_ThrowsNamingShape()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Tensor.Zeros(2, 3).Item());
        Assert.Contains("Item:", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Equal(4.0, Tensor.Full(4, 1, 1).Item());
    }

    [Fact]
    public void Indexer_WrongIndexCount_ThrowsNamingShape()
    {
        var x = Tensor.Zeros(2, 3);
        var ex = Assert.ThrowsAny<ArgumentException>(() => x[0]);
        Assert.Contains("[2, 3]", ex.Message);
    }

    [Fact]
    public void Indexer_IndexOutOfRange_ThrowsNamingShape()
    {
        var x = Tensor.Zeros(2, 3);
        foreach (var index in new[] { new[] { 0, 3 }, new[] { 2, 0 }, new[] { 0, -4 } })
        {
            var ex = Assert.ThrowsAny<ArgumentException>(() => x[index]);
            Assert.Contains("[2, 3]", ex.Message);
            Assert.Contains(index.First(i => i >= 2 || i < -3).ToString(), ex.Message);
        }
    }

    [Fact]
    public void GetFlat_IndexOutOfRange_ThrowsNamingShape()
    {
        var x = Tensor.Zeros(2, 3);
        foreach (int i in new[] { 6, -1 })
        {
            var ex = Assert.ThrowsAny<ArgumentException>(() => x.GetFlat(i));
            Assert.Contains("GetFlat", ex.Message);
            Assert.Contains("[2, 3]", ex.Message);
            Assert.Contains(i.ToString(), ex.Message);
        }
    }

    // ------------------------------------------------------------------ generator: reference

    /// <summary>SplitMix64 (Steele, Lea and Flood; Vigna's splitmix64.c), transcribed from the published C code.</summary>
    private static ulong SplitMix64(ref ulong x)
    {
        x += 0x9e3779b97f4a7c15UL;
        ulong z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        return z ^ (z >> 31);
    }

    /// <summary>xoshiro256** 1.0 (Blackman and Vigna 2018), transcribed from xoshiro256starstar.c.</summary>
    private sealed class Xoshiro
    {
        private readonly ulong[] _s;

        public Xoshiro(ulong s0, ulong s1, ulong s2, ulong s3) => _s = [s0, s1, s2, s3];

        /// <summary>Seeded as the authors recommend: the state is four successive SplitMix64 outputs.</summary>
        public static Xoshiro Seeded(ulong seed)
        {
            ulong x = seed;
            return new Xoshiro(SplitMix64(ref x), SplitMix64(ref x), SplitMix64(ref x), SplitMix64(ref x));
        }

        private static ulong Rotl(ulong x, int k) => (x << k) | (x >> (64 - k));

        public ulong Next()
        {
            ulong result = Rotl(_s[1] * 5, 7) * 9;
            ulong t = _s[1] << 17;
            _s[2] ^= _s[0];
            _s[3] ^= _s[1];
            _s[1] ^= _s[2];
            _s[0] ^= _s[3];
            _s[2] ^= t;
            _s[3] = Rotl(_s[3], 45);
            return result;
        }

        /// <summary>Lemire (2019), "Fast random integer generation in an interval", Algorithm 5.</summary>
        public int NextBounded(int s)
        {
            ulong range = (ulong)s;
            UInt128 m = (UInt128)Next() * range;
            if ((ulong)m < range)
            {
                ulong t = unchecked(0UL - range) % range;
                while ((ulong)m < t) m = (UInt128)Next() * range;
            }
            return (int)(m >> 64);
        }
    }

    [Fact]
    public void Reference_SplitMix64FromZero_GivesPublishedOutputs()
    {
        ulong x = 0;
        Assert.Equal(0xE220A8397B1DCDAFUL, SplitMix64(ref x));
        Assert.Equal(0x6E789E6AA1B965F4UL, SplitMix64(ref x));
        Assert.Equal(0x06C45D188009454FUL, SplitMix64(ref x));
        Assert.Equal(0xF88BB8A8724C81ECUL, SplitMix64(ref x));
    }

    [Fact]
    public void Reference_XoshiroFromState1234_GivesPublishedOutputs()
    {
        // The test vector of the reference implementation (as used by rand_xoshiro).
        var r = new Xoshiro(1, 2, 3, 4);
        ulong[] expected =
        [
            11520, 0, 1509978240, 1215971899390074240, 1216172134540287360,
            607988272756665600, 16172922978634559625, 8476171486693032832,
            10595114339597558777, 2904607092377533576,
        ];
        foreach (ulong e in expected) Assert.Equal(e, r.Next());
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(42UL)]
    [InlineData(0xDEADBEEFCAFEF00DUL)]
    [InlineData(ulong.MaxValue)]
    public void Generator_Seed_MatchesReferenceXoshiroStream(ulong seed)
    {
        var g = new Generator(seed);
        var r = Xoshiro.Seeded(seed);
        Assert.Equal(seed, g.Seed);
        for (int i = 0; i < 1000; i++) Assert.Equal(r.Next(), g.NextUInt64());
    }

    [Fact]
    public void Generator_NextDoubleAndNextSingle_UseTheTopBitsOfOneDraw()
    {
        var g = new Generator(7);
        var r = Xoshiro.Seeded(7);
        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal((r.Next() >> 11) * Math.Pow(2, -53), g.NextDouble());
            Assert.Equal((float)((r.Next() >> 40) * Math.Pow(2, -24)), g.NextSingle());
        }
    }

    [Fact]
    public void Generator_EqualSeeds_GiveEqualStreams()
    {
        var a = new Generator(123);
        var b = new Generator(123);
        var c = new Generator(124);
        bool differs = false;
        for (int i = 0; i < 1000; i++)
        {
            ulong x = a.NextUInt64();
            Assert.Equal(x, b.NextUInt64());
            differs |= x != c.NextUInt64();
        }
        Assert.True(differs);
        var t1 = Tensor.RandN(new Generator(5), 4, 67).ToArray();
        var t2 = Tensor.RandN(new Generator(5), 4, 67).ToArray();
        Assert.Equal(t1.Select(BitConverter.SingleToInt32Bits), t2.Select(BitConverter.SingleToInt32Bits));
    }

    // ------------------------------------------------------------------ generator: integers

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(1000)]
    [InlineData(1 << 30)]
    [InlineData(3 << 29)]
    [InlineData(int.MaxValue)]
    public void NextInt_Range_MatchesLemireReferenceAndStaysInRange(int maxExclusive)
    {
        var g = new Generator(99);
        var r = Xoshiro.Seeded(99);
        for (int i = 0; i < 2000; i++)
        {
            int v = g.NextInt(maxExclusive);
            Assert.InRange(v, 0, maxExclusive - 1);
            Assert.Equal(r.NextBounded(maxExclusive), v);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void NextInt_NonPositiveBound_Throws(int maxExclusive)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => new Generator(1).NextInt(maxExclusive));
        Assert.Contains(maxExclusive.ToString(), ex.Message);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(7)]
    public void NextInt_SmallRange_ChiSquareShowsNoBias(int k)
    {
        // n = 10000·k draws from a fixed seed. Under uniformity the statistic is χ² with k - 1 degrees
        // of freedom; 40 lies beyond its 1 - 10⁻⁶ quantile for k - 1 ≤ 6 (35.9 for 5, 37.9 for 6),
        // while a biased or off-by-one mapping gives values in the thousands.
        int n = 10000 * k;
        var counts = new int[k];
        var g = new Generator(2024);
        for (int i = 0; i < n; i++) counts[g.NextInt(k)]++;
        double expected = (double)n / k;
        double chi2 = counts.Sum(c => (c - expected) * (c - expected) / expected);
        Assert.True(chi2 < 40, $"chi-square {chi2:F2} for counts [{string.Join(", ", counts)}]");
        Assert.All(counts, c => Assert.True(c > 0));
    }

    // ------------------------------------------------------------------ random tensors

    private const int N = 100_000;

    private static (double Mean, double Var) Moments(Tensor t)
    {
        var v = t.ToDoubleArray();
        double mean = v.Average();
        double ss = 0;
        foreach (double x in v) ss += (x - mean) * (x - mean);
        return (mean, ss / (v.Length - 1));
    }

    [Theory]
    [InlineData(0.0, 1.0, false)]
    [InlineData(3.0, 2.0, false)]
    [InlineData(-1.0, 0.5, true)]
    public void Normal_Samples_MeanAndVarianceWithinFiveStandardErrors(double mean, double std, bool f64)
    {
        var t = mean == 0 && std == 1 && !f64
            ? Tensor.RandN(new Generator(11), N)
            : Tensor.Normal(new Generator(11), mean, std, f64 ? DType.Float64 : DType.Float32, N);
        Assert.Equal([N], t.Shape.ToArray());
        var (m, v) = Moments(t);
        // SE of the mean σ/√n; SE of the sample variance of a normal σ²·√(2/(n-1)).
        Assert.True(Math.Abs(m - mean) <= 5 * std / Math.Sqrt(N), $"mean {m}");
        Assert.True(Math.Abs(v - std * std) <= 5 * std * std * Math.Sqrt(2.0 / (N - 1)), $"variance {v}");
    }

    [Theory]
    [InlineData(0.0, 1.0, false)]
    [InlineData(-2.0, 3.0, false)]
    [InlineData(-2.0, 3.0, true)]
    public void Uniform_Samples_InRangeWithMeanAndVarianceWithinFiveStandardErrors(double low, double high, bool f64)
    {
        var t = low == 0 && high == 1 && !f64
            ? Tensor.Rand(new Generator(12), N)
            : Tensor.Uniform(new Generator(12), low, high, f64 ? DType.Float64 : DType.Float32, N);
        var values = t.ToDoubleArray();
        Assert.All(values, x => Assert.True(x >= low && x < high, $"{x:R} outside [{low}, {high})"));
        var (m, v) = Moments(t);
        double w = high - low;
        // U[a, b): mean (a+b)/2 with SE w/√(12n); variance w²/12 with SE w²/√(180n) (μ4 - σ⁴ = w⁴/180).
        Assert.True(Math.Abs(m - (low + high) / 2) <= 5 * w / Math.Sqrt(12.0 * N), $"mean {m}");
        Assert.True(Math.Abs(v - w * w / 12) <= 5 * w * w / Math.Sqrt(180.0 * N), $"variance {v}");
    }

    [Fact]
    public void Rand_Float32_NeverReturnsOne()
    {
        // Draw 16714 of seed 295 (found with the reference generator) is within 2^-25 of 1.
        const ulong seed = 295;
        const int at = 16714;
        var r = Xoshiro.Seeded(seed);
        for (int i = 0; i < at; i++) r.Next();
        double u = (r.Next() >> 11) * Math.Pow(2, -53);
        Assert.Equal(1.0f, (float)u); // the premise: this draw rounds to 1 in float32
        var t = Tensor.Rand(new Generator(seed), at + 1);
        Assert.True(t.GetFlat(at) < 1.0, $"Rand returned {t.GetFlat(at):R}, outside [0, 1)");
    }

    [Theory]
    [InlineData(0.0, -1.0, "-1")]
    [InlineData(0.0, double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, 1.0, "Infinity")]
    public void Normal_BadArguments_ThrowNamingNormalAndValue(double mean, double std, string fragment)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => Tensor.Normal(new Generator(1), mean, std, 3));
        Assert.Contains("normal:", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public void Uniform_HighBelowLow_ThrowsNamingUniformAndBounds()
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => Tensor.Uniform(new Generator(1), 2, 1, 3));
        Assert.Contains("uniform:", ex.Message);
        Assert.Contains("low=2", ex.Message);
        Assert.Contains("high=1", ex.Message);
    }
}
