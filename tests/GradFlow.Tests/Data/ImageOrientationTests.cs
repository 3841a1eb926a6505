using GradFlow.Data;
using SkiaSharp;

namespace GradFlow.Tests.Data;

/// <summary>
/// JPEG EXIF orientation in image folders: a 16×8 JPEG whose left half is black and right half white,
/// with an EXIF APP1 segment (written here byte by byte: TIFF header, one IFD entry, tag 0x0112) saying
/// how it is meant to be seen, decodes upright — its size and where the black half lands follow the
/// EXIF rule for each orientation.
/// </summary>
public sealed class ImageOrientationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gradflow-exif-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 16×8 JPEG, left half black and right half white, with EXIF orientation <paramref name="orientation"/> (none when 0).</summary>
    private static byte[] Jpeg(int orientation)
    {
        using var bitmap = new SKBitmap(16, 8, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 16; x++)
                bitmap.SetPixel(x, y, x < 8 ? SKColors.Black : SKColors.White);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 100);
        var jpeg = data.ToArray();
        if (orientation == 0) return jpeg;
        // APP1: "Exif\0\0", little-endian TIFF header, IFD0 at offset 8 with one entry: Orientation (0x0112), SHORT, 1, value
        byte[] tiff = [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (byte)orientation, 0, 0, 0, 0, 0, 0, 0];
        byte[] payload = [.. "Exif\0\0"u8, .. tiff];
        int length = payload.Length + 2;
        return [jpeg[0], jpeg[1], 0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload, .. jpeg[2..]];
    }

    [Theory]
    [InlineData(0, 16, 8, "left")]
    [InlineData(1, 16, 8, "left")]
    [InlineData(2, 16, 8, "right")]
    [InlineData(3, 16, 8, "right")]
    [InlineData(4, 16, 8, "left")]
    [InlineData(5, 8, 16, "top")]
    [InlineData(6, 8, 16, "top")]
    [InlineData(7, 8, 16, "bottom")]
    [InlineData(8, 8, 16, "bottom")]
    public void Decode_JpegWithExifOrientation_IsUpright(int orientation, int width, int height, string blackSide)
    {
        string file = Path.Combine(_dir, $"o{orientation}.jpg");
        File.WriteAllBytes(file, Jpeg(orientation));
        int? w = null, h = null;
        var x = ImageFolder.Decode(file, ref w, ref h, 1);
        Assert.Equal((width, height), (w!.Value, h!.Value));
        double Mean(Func<int, int, bool> where)
        {
            double sum = 0;
            int n = 0;
            for (int y = 0; y < height; y++)
                for (int c = 0; c < width; c++)
                    if (where(c, y))
                    {
                        sum += x[y * width + c];
                        n++;
                    }
            return sum / n;
        }
        Func<int, int, bool> black = blackSide switch
        {
            "left" => (c, _) => c < width / 2,
            "right" => (c, _) => c >= width / 2,
            "top" => (_, y) => y < height / 2,
            _ => (_, y) => y >= height / 2,
        };
        Assert.True(Mean(black) < 0.1, $"orientation {orientation}: the {blackSide} half should be black, mean {Mean(black):F2}");
        Assert.True(Mean((c, y) => !black(c, y)) > 0.9, $"orientation {orientation}: the other half should be white");
    }
}
