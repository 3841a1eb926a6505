using GradFlow.Tensors;

namespace GradFlow.Data;

/// <summary>
/// Seeded augmentation of image batches <c>[B, C, H, W]</c> (NCHW), as in the CIFAR ResNet recipe of
/// He et al. 2016: each image is padded with <see cref="Padding"/> zeros on every side and a random
/// H × W window of it is kept (a shift by (dy, dx) ∈ [−P, P]², zero-filled), then mirrored
/// left-right with probability <see cref="FlipProbability"/>. The draws for a batch come from
/// <see cref="Generator"/>s seeded by (seed, epoch, batch), so the same seed gives the same
/// augmented batches on every run and thread count. Evaluation uses the images as they are.
/// </summary>
/// <param name="Padding">Zero padding P of the random crop (0: no crop).</param>
/// <param name="FlipProbability">Probability of a horizontal flip (0: none, 0.5: the usual).</param>
public sealed record ImageAugmentation(int Padding = 4, double FlipProbability = 0.5)
{
    /// <summary>The augmented copy of <paramref name="images"/> (float32 <c>[B, C, H, W]</c>), drawn from <paramref name="generator"/>.</summary>
    /// <exception cref="ArgumentException">when the batch is not a 4-D float32 tensor, or the padding or probability is out of range.</exception>
    public Tensor Apply(Tensor images, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(generator);
        if (images.Rank != 4 || images.DType != DType.Float32)
            throw new ArgumentException($"ImageAugmentation: expects float32 images [B, C, H, W], got {images.DType} {Shapes.Format(images.Shape)}; load them with ImageLayout.Channels.");
        if (Padding < 0 || Padding >= Math.Min(images.Shape[2], images.Shape[3]))
            throw new ArgumentException($"ImageAugmentation: padding {Padding} must be in [0, {Math.Min(images.Shape[2], images.Shape[3]) - 1}] for {images.Shape[2]} x {images.Shape[3]} images.");
        if (!(FlipProbability >= 0 && FlipProbability <= 1))
            throw new ArgumentException($"ImageAugmentation: flip probability {FlipProbability} must be in [0, 1].");
        int b = images.Shape[0], c = images.Shape[1], h = images.Shape[2], w = images.Shape[3];
        var src = images.Span<float>();
        var dst = new float[images.Count];
        for (int i = 0; i < b; i++)
        {
            // two crop offsets, then the flip, per image, in this order
            int dy = Padding == 0 ? 0 : generator.NextInt(2 * Padding + 1) - Padding;
            int dx = Padding == 0 ? 0 : generator.NextInt(2 * Padding + 1) - Padding;
            bool flip = FlipProbability > 0 && generator.NextDouble() < FlipProbability;
            for (int ch = 0; ch < c; ch++)
            {
                int plane = (i * c + ch) * h * w;
                for (int y = 0; y < h; y++)
                {
                    int sy = y + dy;
                    if (sy < 0 || sy >= h) continue; // zero row of the padding
                    for (int x = 0; x < w; x++)
                    {
                        int sx = (flip ? w - 1 - x : x) + dx;
                        if (sx >= 0 && sx < w) dst[plane + y * w + x] = src[plane + sy * w + sx];
                    }
                }
            }
        }
        return new Tensor(dst, images.Shape.ToArray());
    }
}
