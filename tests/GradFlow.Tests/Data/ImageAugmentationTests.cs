using GradFlow.Data;
using GradFlow.Tensors;

namespace GradFlow.Tests.Data;

/// <summary>Random crop with zero padding and horizontal flip of NCHW batches, seeded.</summary>
public class ImageAugmentationTests
{
    /// <summary>Images [b, c, h, w] whose pixels are all distinct and non-zero, so each output pixel names its source.</summary>
    private static Tensor Images(int b, int c, int h, int w) =>
        new(Enumerable.Range(1, b * c * h * w).Select(v => (float)v).ToArray(), [b, c, h, w]);

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(2, 0.0)]
    [InlineData(3, 0.5)]
    [InlineData(4, 1.0)]
    public void Apply_EveryImageIsAZeroFilledShiftOfItselfWithinThePaddingMirroredOrNot(int padding, double flip)
    {
        const int b = 16, c = 2, h = 7, w = 9;
        var x = Images(b, c, h, w);
        var src = x.ToArray();
        var y = new ImageAugmentation(padding, flip).Apply(x, new Generator(5)).ToArray();
        Assert.Equal(src.Length, y.Length);
        int flipped = 0;
        for (int i = 0; i < b; i++)
        {
            // find the one (dy, dx, mirror) under which the output is the definition, for every channel at once
            var matches = new List<(int, int, bool)>();
            for (int dy = -padding; dy <= padding; dy++)
                for (int dx = -padding; dx <= padding; dx++)
                    foreach (bool m in new[] { false, true })
                    {
                        bool ok = true;
                        for (int ch = 0; ch < c && ok; ch++)
                            for (int r = 0; r < h && ok; r++)
                                for (int col = 0; col < w && ok; col++)
                                {
                                    int sy = r + dy, sx = (m ? w - 1 - col : col) + dx;
                                    int plane = (i * c + ch) * h * w;
                                    float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[plane + sy * w + sx] : 0f;
                                    ok = y[plane + r * w + col] == want;
                                }
                        if (ok) matches.Add((dy, dx, m));
                    }
            var (_, _, mirrored) = Assert.Single(matches);
            if (mirrored) flipped++;
        }
        if (flip == 0) Assert.Equal(0, flipped);
        else if (flip == 1) Assert.Equal(b, flipped);
        else Assert.InRange(flipped, 1, b - 1);
    }

    [Fact]
    public void Apply_ShiftsCoverThePaddingRange()
    {
        // over many images every offset in [-P, P] appears: the crop is not stuck in the middle
        var x = Images(400, 1, 8, 8);
        var y = new ImageAugmentation(2, 0).Apply(x, new Generator(9)).ToArray();
        var src = x.ToArray();
        var shifts = new HashSet<int>();
        for (int i = 0; i < 400; i++)
        {
            // the image's top-left source pixel tells the shift: value 1 + i*64 + sy*8 + sx sits at (sy - dy, sx - dx)
            int plane = i * 64;
            for (int p = 0; p < 64; p++)
            {
                if (y[plane + p] == 0) continue;
                int s = (int)y[plane + p] - 1 - plane;
                shifts.Add(s / 8 - p / 8);
                break;
            }
        }
        Assert.Equal(Enumerable.Range(-2, 5).ToHashSet(), shifts);
        Assert.Equal(src.Length, y.Length);
    }

    [Fact]
    public void Loader_SameSeedSameBatches_OtherEpochOtherDraws_LabelsUntouched()
    {
        var labels = IndexTensor.FromArray(Enumerable.Range(0, 32).Select(i => i % 3).ToArray(), 32);
        var data = Dataset.Classification(Images(32, 1, 6, 6), labels, 3);
        DataLoader Loader() => new(data, 8, shuffle: true, seed: 4) { Augmentation = new ImageAugmentation(2) };
        var a = Loader().Epoch(0).ToArray();
        var b = Loader().Epoch(0).ToArray();
        var c = Loader().Epoch(1).ToArray();
        var plain = new DataLoader(data, 8, shuffle: true, seed: 4).Epoch(0).ToArray();
        for (int k = 0; k < a.Length; k++)
        {
            Assert.Equal(a[k].Inputs.ToArray(), b[k].Inputs.ToArray());
            Assert.Equal(plain[k].Indices, a[k].Indices);                 // the same examples, in the same order
            Assert.Equal(plain[k].Labels!.ToArray(), a[k].Labels!.ToArray());
            Assert.NotEqual(plain[k].Inputs.ToArray(), a[k].Inputs.ToArray());
        }
        // the same examples in the same order (no shuffling), another epoch: other crops and flips
        var ordered = new DataLoader(data, 8, shuffle: false, seed: 4) { Augmentation = new ImageAugmentation(2) };
        Assert.NotEqual(ordered.Epoch(0).SelectMany(x => x.Inputs.ToArray()), ordered.Epoch(1).SelectMany(x => x.Inputs.ToArray()));
        Assert.Equal(c.Length, a.Length);
    }

    [Theory]
    [InlineData(new[] { 4, 6, 6 }, 1, 0.5, "expects float32 images [B, C, H, W]")]
    [InlineData(new[] { 2, 1, 4, 4 }, 4, 0.5, "padding 4 must be in [0, 3]")]
    [InlineData(new[] { 2, 1, 4, 4 }, 1, 1.5, "flip probability 1.5")]
    public void Apply_BadInput_ErrorNamesTheProblem(int[] shape, int padding, double flip, string expected)
    {
        var x = Tensor.Zeros(shape);
        var e = Assert.Throws<ArgumentException>(() => new ImageAugmentation(padding, flip).Apply(x, new Generator(1)));
        Assert.Contains(expected, e.Message);
    }
}
