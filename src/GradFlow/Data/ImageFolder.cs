using GradFlow.Tensors;
using SkiaSharp;

namespace GradFlow.Data;

/// <summary>How the images of an <see cref="ImageFolder"/> are decoded and laid out.</summary>
/// <param name="Width">Width every image is resized to; null with <paramref name="Height"/> null = the first image's size.</param>
/// <param name="Height">Height every image is resized to.</param>
/// <param name="Channels">1 (grey: ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B) or 3 (RGB); alpha is dropped.</param>
/// <param name="Layout">Flat <c>[N, C·H·W]</c> (for MLPs), or channels <c>[N, C, H, W]</c> (for conv nets); grid <c>[N, H, W]</c> needs one channel.</param>
public sealed record ImageFolderOptions(int? Width = null, int? Height = null, int Channels = 3, ImageLayout Layout = ImageLayout.Flat);

/// <summary>
/// A folder of images with one subfolder per class (<c>root/cat/1.png</c>, <c>root/dog/a.jpg</c>):
/// classes are the subfolder names in ordinal order, examples the PNG and JPEG files in each
/// (<c>.png</c>, <c>.jpg</c>, <c>.jpeg</c>, any case; other files and deeper folders are ignored),
/// decoded with SkiaSharp, resized with a Mitchell cubic filter, scaled to [0, 1].
/// </summary>
/// <remarks>
/// Guards against crafted files: an image whose header declares more than
/// <see cref="MaxPixels"/> pixels, or more than <see cref="PixelsPerFileByte"/> pixels per byte of
/// its file plus <see cref="PixelAllowance"/> (more than any real PNG or JPEG compresses to), is
/// refused before anything is decoded. Every failure is an <see cref="InvalidDataException"/>
/// naming the file.
/// </remarks>
public static class ImageFolder
{
    /// <summary>The most pixels one image may declare.</summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>Pixels allowed per byte of an image file beyond <see cref="PixelAllowance"/> (deflate's limit is 1032:1 bytes).</summary>
    public const long PixelsPerFileByte = 2100;

    /// <summary>Pixels any image may have whatever its file size.</summary>
    public const long PixelAllowance = 4_000_000;

    /// <summary>The class folders and image files under <paramref name="root"/>, sorted.</summary>
    /// <exception cref="DirectoryNotFoundException">when <paramref name="root"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">when there is no class folder or a class folder has no image.</exception>
    public static (IReadOnlyList<string> Classes, IReadOnlyList<(string File, int Label)> Files) List(string root)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"images: {root} does not exist or is not a directory.");
        var classes = ClassFolders(root);
        if (classes.Count == 0) throw new InvalidDataException($"images: {root}: has no class subfolders (expected {root}/CLASS/IMAGE.png).");
        var files = new List<(string, int)>();
        for (int c = 0; c < classes.Count; c++)
        {
            var dir = Path.Combine(root, classes[c]);
            var images = Directory.GetFiles(dir).Where(IsImage).Order(StringComparer.Ordinal).ToList();
            if (images.Count == 0) throw new InvalidDataException($"images: {dir}: the class folder '{classes[c]}' has no .png, .jpg or .jpeg file.");
            files.AddRange(images.Select(f => (f, c)));
        }
        return (classes, files);
    }

    /// <summary><see cref="List(string)"/>, whose class folders must be <paramref name="classNames"/> when given (a test folder, or one to predict).</summary>
    private static (IReadOnlyList<string> Classes, IReadOnlyList<(string File, int Label)> Files) List(string root, IReadOnlyList<string>? classNames)
    {
        var (classes, files) = List(root);
        if (classNames is not null && !classNames.SequenceEqual(classes))
            throw new InvalidDataException($"images: {root}: the class folders ({string.Join(", ", classes)}) differ from the training folder's ({string.Join(", ", classNames)}).");
        return (classes, files);
    }

    /// <summary>The class folders of <paramref name="root"/>: its subfolders not starting with '.', in ordinal order.</summary>
    private static List<string> ClassFolders(string root) =>
        Directory.GetDirectories(root).Select(d => Path.GetFileName(d)!).Where(n => !n.StartsWith('.')).Order(StringComparer.Ordinal).ToList();

    private static bool IsImage(string file) =>
        Path.GetExtension(file).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg" && !Path.GetFileName(file).StartsWith('.');

    private static void Check(ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Channels is not (1 or 3)) throw new ArgumentException($"images: channels must be 1 or 3, got {options.Channels}.", nameof(options));
        if (options.Width is < 1 or > 4096 || options.Height is < 1 or > 4096 || options.Width.HasValue != options.Height.HasValue)
            throw new ArgumentException($"images: the size {options.Width}x{options.Height} must give both width and height in 1..4096.", nameof(options));
        if (options.Layout == ImageLayout.Grid && options.Channels != 1)
            throw new ArgumentException("images: the grid layout [N, H, W] needs one channel.", nameof(options));
    }

    /// <summary>Loads every image under <paramref name="root"/> as a classification set.</summary>
    /// <param name="root">The folder of class subfolders.</param>
    /// <param name="options">Size, channels and layout.</param>
    /// <param name="classNames">When given (a test folder), its class folders must be exactly these.</param>
    /// <exception cref="DirectoryNotFoundException">when <paramref name="root"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">naming the file that is not a decodable PNG or JPEG, or too large.</exception>
    public static Dataset Load(string root, ImageFolderOptions options, IReadOnlyList<string>? classNames = null)
    {
        Check(options);
        var (classes, files) = List(root, classNames);
        var inputs = DecodeAll(root, [.. files.Select(f => f.File)], options);
        return Dataset.Classification(inputs, new IndexTensor([.. files.Select(f => f.Label)], [files.Count]), classes.Count, classes);
    }

    /// <summary>
    /// A folder to predict, decoded as <see cref="Load"/> decodes: with class subfolders, which must be <paramref name="classNames"/>, its
    /// images and their labels; without, the images directly in it (to classify), in ordinal order of their names, and no labels. The
    /// files are given relative to <paramref name="root"/>, in the order of the inputs.
    /// </summary>
    /// <exception cref="InvalidDataException">when the folder has no image, or as <see cref="Load"/>.</exception>
    public static (Tensor Inputs, IndexTensor? Labels, IReadOnlyList<string> Files) LoadToPredict(string root, ImageFolderOptions options, IReadOnlyList<string> classNames)
    {
        Check(options);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"images: {root} does not exist or is not a directory.");
        IndexTensor? labels = null;
        string[] files;
        if (ClassFolders(root).Count > 0)
        {
            var (_, listed) = List(root, classNames);
            files = [.. listed.Select(f => f.File)];
            labels = new IndexTensor([.. listed.Select(f => f.Label)], [listed.Count]);
        }
        else
        {
            files = Directory.GetFiles(root).Where(IsImage).Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new InvalidDataException($"images: {root}: has no class subfolders and no .png, .jpg or .jpeg file.");
        }
        return (DecodeAll(root, files, options), labels, [.. files.Select(f => Path.GetRelativePath(root, f))]);
    }

    /// <summary><paramref name="files"/> decoded to one tensor laid out as <paramref name="options"/> say, at the options' size or the first image's.</summary>
    private static Tensor DecodeAll(string root, IReadOnlyList<string> files, ImageFolderOptions options)
    {
        int? width = options.Width, height = options.Height;
        int c = options.Channels;
        float[]? x = null;
        for (int i = 0; i < files.Count; i++)
        {
            var pixels = Decode(files[i], ref width, ref height, c);
            if (x is null)
            {
                if ((long)files.Count * pixels.Length > Array.MaxLength)
                    throw new InvalidDataException($"images: {root}: {files.Count} images of {pixels.Length} values do not fit one array; resize them smaller.");
                x = new float[files.Count * pixels.Length];
            }
            pixels.CopyTo(x.AsSpan(i * pixels.Length));
        }
        int h = height!.Value, w = width!.Value, n = files.Count;
        int[] shape = options.Layout switch
        {
            ImageLayout.Flat => [n, c * h * w],
            ImageLayout.Grid => [n, h, w],
            _ => [n, c, h, w],
        };
        return new Tensor(x!, shape);
    }

    /// <summary>
    /// The folder as a streamed <see cref="Dataset"/> (<see cref="ImageLayout.Flat"/> inputs
    /// <c>[N, C·H·W]</c>): the file list and the labels are held, each image is decoded when a batch
    /// asks for it, as <see cref="Load"/> decodes it. Without a size in <paramref name="options"/>, the
    /// first image is decoded now to fix it.
    /// </summary>
    /// <exception cref="ArgumentException">for bad options or a layout other than flat.</exception>
    /// <exception cref="InvalidDataException">as <see cref="Load"/>, for the folder now and for an image when it is read.</exception>
    public static Dataset Stream(string root, ImageFolderOptions options, IReadOnlyList<string>? classNames = null)
    {
        Check(options);
        if (options.Layout != ImageLayout.Flat)
            throw new ArgumentException("images: a streamed folder gives flat inputs [N, C·H·W] (a model's image input reshapes them).", nameof(options));
        var (classes, files) = List(root, classNames);
        int? width = options.Width, height = options.Height;
        if (width is null) Decode(files[0].File, ref width, ref height, options.Channels);
        var labels = new int[files.Count];
        for (int i = 0; i < labels.Length; i++) labels[i] = files[i].Label;
        var source = new StreamedImages([.. files.Select(f => f.File)], width!.Value, height!.Value, options.Channels);
        return Dataset.Streamed(source, new IndexTensor(labels, [labels.Length]), null, classes.Count, classes);
    }

    /// <summary>Images decoded per read, resized to one size.</summary>
    private sealed class StreamedImages(string[] files, int width, int height, int channels) : IInputSource
    {
        public int Count => files.Length;

        public IReadOnlyList<int> ExampleShape { get; } = [channels * height * width];

        public void Read(ReadOnlySpan<int> rows, Span<float> destination)
        {
            int per = channels * height * width;
            for (int k = 0; k < rows.Length; k++)
            {
                int? w = width, h = height;
                Decode(files[rows[k]], ref w, ref h, channels).AsSpan().CopyTo(destination.Slice(k * per, per));
            }
        }
    }

    /// <summary>
    /// Decodes one PNG or JPEG file into channels-first values in [0, 1], resized to
    /// <paramref name="width"/> × <paramref name="height"/> (set to the image's own size when null).
    /// </summary>
    /// <exception cref="InvalidDataException">naming the file when it is not a complete, decodable PNG or JPEG, or declares too many pixels.</exception>
    public static float[] Decode(string file, ref int? width, ref int? height, int channels)
    {
        var bytes = File.ReadAllBytes(file);
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidDataException($"images: {file}: not a decodable PNG or JPEG image.");
        if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
            throw new InvalidDataException($"images: {file}: is a {codec.EncodedFormat} image; only PNG and JPEG are read.");
        var info = codec.Info;
        long pixels = (long)info.Width * info.Height;
        if (info.Width < 1 || info.Height < 1 || pixels > MaxPixels || pixels > PixelAllowance + PixelsPerFileByte * bytes.Length)
            throw new InvalidDataException($"images: {file}: declares {info.Width}x{info.Height} pixels, more than a {bytes.Length}-byte file can hold " +
                $"(limits: {MaxPixels:N0} pixels, and {PixelAllowance:N0} + {PixelsPerFileByte} per file byte).");
        var rgba = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var stored = new SKBitmap(rgba);
        var result = codec.GetPixels(rgba, stored.GetPixels());
        if (result != SKCodecResult.Success)
            throw new InvalidDataException($"images: {file}: decoding failed ({result}).");
        using var oriented = Orient(stored, codec.EncodedOrigin);
        var decoded = oriented ?? stored;
        info = decoded.Info;
        width ??= info.Width;
        height ??= info.Height;
        int w = width.Value, h = height.Value;
        SKBitmap? resized = null;
        try
        {
            var source = decoded;
            if (w != info.Width || h != info.Height)
            {
                resized = decoded.Resize(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKCubicResampler.Mitchell))
                    ?? throw new InvalidDataException($"images: {file}: could not be resized from {info.Width}x{info.Height} to {w}x{h}.");
                source = resized;
            }
            var span = source.GetPixelSpan();
            int plane = w * h;
            var x = new float[channels * plane];
            for (int p = 0; p < plane; p++)
            {
                float r = span[4 * p] / 255f, g = span[4 * p + 1] / 255f, b = span[4 * p + 2] / 255f;
                if (channels == 1) x[p] = 0.299f * r + 0.587f * g + 0.114f * b;
                else
                {
                    x[p] = r;
                    x[plane + p] = g;
                    x[2 * plane + p] = b;
                }
            }
            return x;
        }
        finally
        {
            resized?.Dispose();
        }
    }

    /// <summary>
    /// The image as it is meant to be seen: a JPEG's EXIF orientation (<paramref name="origin"/>, tag
    /// 0x0112) applied to the stored pixels, or null when they are already upright. For orientations 5–8
    /// width and height swap. Output pixel (x, y) reads stored pixel: 2 (W−1−x, y), 3 (W−1−x, H−1−y),
    /// 4 (x, H−1−y), 5 (y, x), 6 (y, H−1−x), 7 (W−1−y, H−1−x), 8 (W−1−y, x).
    /// </summary>
    internal static SKBitmap? Orient(SKBitmap stored, SKEncodedOrigin origin)
    {
        if (origin == SKEncodedOrigin.TopLeft) return null;
        int w = stored.Width, h = stored.Height;
        bool swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        int ow = swap ? h : w, oh = swap ? w : h;
        var result = new SKBitmap(new SKImageInfo(ow, oh, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var src = stored.GetPixelSpan();
        using var pixmap = result.PeekPixels();
        var dst = pixmap.GetPixelSpan<byte>();
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                (int sx, int sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (w - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, h - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, h - 1 - x),
                    SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x), // LeftBottom
                };
                src.Slice(4 * (sy * w + sx), 4).CopyTo(dst.Slice(4 * (y * ow + x), 4));
            }
        return result;
    }
}
