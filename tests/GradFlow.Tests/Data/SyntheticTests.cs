using GradFlow.Data;
using GradFlow.Tensors;

namespace GradFlow.Tests.Data;

public class SyntheticTests
{
    [Fact]
    public void TwoSpirals_Shapes_BalancedAlternatingClasses()
    {
        var d = Synthetic.TwoSpirals(101, noise: 0.1, turns: 2, seed: 1);
        Assert.Equal([101, 2], d.Inputs.Shape.ToArray());
        Assert.Equal([101], d.Labels!.Shape.ToArray());
        Assert.Equal(DType.Float32, d.Inputs.DType);
        Assert.Equal([51, 50], d.ClassCounts());
        for (int i = 0; i < 101; i++) Assert.Equal(i % 2, d.Labels[i]);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(1.5)]
    [InlineData(3.25)]
    public void TwoSpirals_NoNoise_PointsLieOnTheirArm(double turns)
    {
        var d = Synthetic.TwoSpirals(400, noise: 0, turns: turns, seed: 11);
        for (int i = 0; i < d.Count; i++)
        {
            double x = d.Inputs[i, 0], y = d.Inputs[i, 1];
            double r = Math.Sqrt(x * x + y * y);
            Assert.InRange(r, 0.1 - 1e-6, 1.0 + 1e-6);
            // theta = 2 pi turns (r - 0.1) / 0.9 + c pi, compared modulo 2 pi.
            double expected = 2 * Math.PI * turns * (r - 0.1) / 0.9 + d.Labels![i] * Math.PI;
            double diff = Math.IEEERemainder(Math.Atan2(y, x) - expected, 2 * Math.PI);
            Assert.True(Math.Abs(diff) < 1e-4 * (1 + turns * 10), $"example {i}: angle off by {diff}");
        }
    }

    [Fact]
    public void TwoSpirals_Noise_SpreadsPointsOffTheArm()
    {
        var clean = Synthetic.TwoSpirals(200, noise: 0, seed: 3).Inputs.ToArray();
        var noisy = Synthetic.TwoSpirals(200, noise: 0.2, seed: 3).Inputs.ToArray();
        // Same seed, same draws: the difference is exactly the noise term, with sample std near 0.2.
        double ss = 0;
        for (int i = 0; i < clean.Length; i++) ss += (noisy[i] - clean[i]) * (double)(noisy[i] - clean[i]);
        double std = Math.Sqrt(ss / clean.Length);
        Assert.InRange(std, 0.18, 0.22);
    }

    [Fact]
    public void ConcentricCircles_NoNoise_RadiiAreOneAndFactor()
    {
        var d = Synthetic.ConcentricCircles(300, noise: 0, factor: 0.3, seed: 5);
        Assert.Equal([300, 2], d.Inputs.Shape.ToArray());
        Assert.Equal([150, 150], d.ClassCounts());
        double minAngle = double.MaxValue, maxAngle = double.MinValue;
        for (int i = 0; i < d.Count; i++)
        {
            double x = d.Inputs[i, 0], y = d.Inputs[i, 1];
            double r = Math.Sqrt(x * x + y * y);
            Assert.Equal(d.Labels![i] == 0 ? 1.0 : 0.3, r, 1e-6);
            double a = Math.Atan2(y, x);
            minAngle = Math.Min(minAngle, a);
            maxAngle = Math.Max(maxAngle, a);
        }
        Assert.True(minAngle < -3.0 && maxAngle > 3.0, "angles cover the whole circle");
    }

    [Fact]
    public void ConcentricCircles_Noise_RadiusRangesOverlapOnlyNearTheGap()
    {
        var d = Synthetic.ConcentricCircles(2000, noise: 0.05, factor: 0.5, seed: 6);
        var outer = new List<double>();
        var inner = new List<double>();
        for (int i = 0; i < d.Count; i++)
        {
            double r = Math.Sqrt(d.Inputs[i, 0] * d.Inputs[i, 0] + d.Inputs[i, 1] * d.Inputs[i, 1]);
            (d.Labels![i] == 0 ? outer : inner).Add(r);
        }
        Assert.InRange(outer.Average(), 0.99, 1.01);
        Assert.InRange(inner.Average(), 0.49, 0.52);
        Assert.True(outer.Min() > 0.7 && inner.Max() < 0.8, $"outer min {outer.Min()}, inner max {inner.Max()}");
    }

    [Fact]
    public void Synthetic_SameSeed_BitwiseEqual_DifferentSeed_Differs()
    {
        Assert.Equal(Synthetic.TwoSpirals(64, 0.1, 1.5, 9).Inputs.ToArray(), Synthetic.TwoSpirals(64, 0.1, 1.5, 9).Inputs.ToArray());
        Assert.NotEqual(Synthetic.TwoSpirals(64, 0.1, 1.5, 9).Inputs.ToArray(), Synthetic.TwoSpirals(64, 0.1, 1.5, 10).Inputs.ToArray());
        Assert.Equal(Synthetic.ConcentricCircles(64, 0.1, 0.5, 9).Inputs.ToArray(), Synthetic.ConcentricCircles(64, 0.1, 0.5, 9).Inputs.ToArray());
        Assert.NotEqual(Synthetic.ConcentricCircles(64, 0.1, 0.5, 9).Inputs.ToArray(), Synthetic.ConcentricCircles(64, 0.1, 0.5, 8).Inputs.ToArray());
        var t1 = Synthetic.TeacherClassification(200, 7, 3, 2, 16, seed: 4);
        var t2 = Synthetic.TeacherClassification(200, 7, 3, 2, 16, seed: 4);
        Assert.Equal(t1.Inputs.ToArray(), t2.Inputs.ToArray());
        Assert.Equal(t1.Labels!.ToArray(), t2.Labels!.ToArray());
        Assert.NotEqual(t1.Labels.ToArray(), Synthetic.TeacherClassification(200, 7, 3, 2, 16, seed: 5).Labels!.ToArray());
    }

    [Theory]
    [InlineData(300, 2, 2, 0, 8)]
    [InlineData(1000, 20, 10, 2, 32)]
    [InlineData(250, 784, 10, 3, 64)]
    [InlineData(11, 5, 4, 1, 4)]
    public void TeacherClassification_Shapes_ExactlyBalanced(int n, int inputSize, int classes, int depth, int width)
    {
        var d = Synthetic.TeacherClassification(n, inputSize, classes, depth, width, seed: 2);
        Assert.Equal([n, inputSize], d.Inputs.Shape.ToArray());
        Assert.Equal(classes, d.ClassCount);
        var counts = d.ClassCounts();
        for (int k = 0; k < classes; k++) Assert.Equal(n / classes + (k < n % classes ? 1 : 0), counts[k]);
    }

    [Fact]
    public void TeacherClassification_Labels_AreTheTeachersArgmax()
    {
        const ulong seed = 21;
        var d = Synthetic.TeacherClassification(500, 12, 5, 2, 24, seed);
        var teacher = new TeacherMlp(12, 5, 2, 24, new Generator(seed));
        var x = d.Inputs.ToDoubleArray();
        var z = new double[5];
        for (int i = 0; i < d.Count; i++)
        {
            var row = x.AsSpan(i * 12, 12);
            teacher.Logits(row, z);
            int best = 0;
            for (int k = 1; k < 5; k++) if (z[k] > z[best]) best = k;
            Assert.Equal(best, d.Labels![i]);
            Assert.Equal(best, teacher.Classify(row));
        }
    }

    [Fact]
    public void TeacherMlp_DepthZero_MatchesHandComputedCalibratedLinearMap()
    {
        // Depth 0: raw logits W x + b, W ~ N(0, 1/3) then b ~ N(0, 0.1^2) drawn first; then 2048
        // calibration inputs; z_k = (raw_k - mean_k) / std_k. Recomputed here from the same stream.
        var g = new Generator(77);
        var w = new double[2 * 3];
        for (int i = 0; i < w.Length; i++) w[i] = g.NextNormal() / Math.Sqrt(3);
        var b = new double[2];
        for (int i = 0; i < 2; i++) b[i] = 0.1 * g.NextNormal();
        double Raw(int k, double[] v) => w[3 * k] * v[0] + w[3 * k + 1] * v[1] + w[3 * k + 2] * v[2] + b[k];
        double[] sum = new double[2], sumSq = new double[2];
        for (int s = 0; s < 2048; s++)
        {
            double[] v = [g.NextNormal(), g.NextNormal(), g.NextNormal()];
            for (int k = 0; k < 2; k++) { sum[k] += Raw(k, v); sumSq[k] += Raw(k, v) * Raw(k, v); }
        }
        var teacher = new TeacherMlp(3, 2, 0, 1, new Generator(77));
        double[] x = [0.5, -1.0, 2.0];
        var z = new double[2];
        teacher.Logits(x, z);
        for (int k = 0; k < 2; k++)
        {
            double mean = sum[k] / 2048, std = Math.Sqrt(sumSq[k] / 2048 - mean * mean);
            Assert.Equal((Raw(k, x) - mean) / std, z[k], 1e-9);
        }
    }

    [Fact]
    public void TeacherClassification_IsLearnable_NearestNeighbourBeatsChance()
    {
        // A deterministic labelling of a smooth function: 1-nearest-neighbour on 2-D inputs
        // (train 1500, test 500) must do far better than chance (1/3).
        var d = Synthetic.TeacherClassification(2000, 2, 3, 2, 16, seed: 8);
        var x = d.Inputs.ToArray();
        int correct = 0;
        for (int i = 1500; i < 2000; i++)
        {
            int best = -1;
            double bestDist = double.MaxValue;
            for (int j = 0; j < 1500; j++)
            {
                double dx = x[2 * i] - x[2 * j], dy = x[2 * i + 1] - x[2 * j + 1];
                double dist = dx * dx + dy * dy;
                if (dist < bestDist) { bestDist = dist; best = j; }
            }
            if (d.Labels![best] == d.Labels[i]) correct++;
        }
        Assert.True(correct > 400, $"1-NN accuracy {correct}/500");
    }

    [Fact]
    public void Synthetic_BadArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Synthetic.TwoSpirals(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Synthetic.TwoSpirals(10, noise: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Synthetic.TwoSpirals(10, turns: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Synthetic.ConcentricCircles(10, factor: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Synthetic.TeacherClassification(10, 3, 1));
    }
}
