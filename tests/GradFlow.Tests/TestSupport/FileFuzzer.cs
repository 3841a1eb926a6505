namespace GradFlow.Tests.TestSupport;

/// <summary>
/// Seeded mutation fuzzing of file readers: each variant of a valid file (bit flips, truncation,
/// inserted or deleted bytes, an extreme 8-byte value near the start, or a syntax character) must
/// either load or throw the documented <see cref="InvalidDataException"/>; any other exception, or
/// an allocation beyond 64 bytes per file byte plus 8 MB, fails the test naming the seed, the
/// variant and the mutation, so every failure reproduces.
/// </summary>
public sealed class FileFuzzer(string directory)
{
    /// <summary>Characters that matter to text formats (JSON, CSV, Python literals).</summary>
    public const string DefaultSyntax = "0123456789-,:{}[]\"eE.F";

    /// <summary>A mutated copy of <paramref name="original"/>, and what was done.</summary>
    public static byte[] Mutate(byte[] original, Random rng, out string how, string syntax = DefaultSyntax)
    {
        var b = (byte[])original.Clone();
        switch (rng.Next(6))
        {
            case 0:
            {
                int flips = 1 + rng.Next(4);
                for (int i = 0; i < flips; i++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                how = $"{flips} bit flips";
                return b;
            }
            case 1:
            {
                int len = rng.Next(b.Length);
                how = $"truncated to {len}";
                return b[..len];
            }
            case 2:
            {
                int at = rng.Next(b.Length), n = 1 + rng.Next(16);
                var ins = new byte[n];
                rng.NextBytes(ins);
                how = $"inserted {n} bytes at {at}";
                return [.. b[..at], .. ins, .. b[at..]];
            }
            case 3:
            {
                int at = rng.Next(b.Length), n = Math.Min(1 + rng.Next(16), b.Length - at);
                how = $"deleted {n} bytes at {at}";
                return [.. b[..at], .. b[(at + n)..]];
            }
            case 4:
            {
                // overwrite a 4- or 8-byte field near the start (length fields, dims) with an extreme value
                int at = rng.Next(Math.Min(b.Length, 48));
                var v = BitConverter.GetBytes(rng.Next(3) switch { 0 => ulong.MaxValue, 1 => (ulong)int.MaxValue + 1, _ => (ulong)rng.NextInt64() });
                for (int i = 0; i < 8 && at + i < b.Length; i++) b[at + i] = v[i];
                how = $"extreme value at {at}";
                return b;
            }
            default:
            {
                int at = rng.Next(b.Length);
                b[at] = (byte)syntax[rng.Next(syntax.Length)];
                how = $"syntax byte at {at}";
                return b;
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="variants"/> mutations of <paramref name="valid"/> to <paramref name="name"/>
    /// in the directory and runs <paramref name="read"/> on each; returns how many loaded.
    /// </summary>
    public int Run(string name, byte[] valid, int variants, int seed, Action<string> read, string syntax = DefaultSyntax)
    {
        var rng = new Random(seed);
        var path = Path.Combine(directory, name);
        int loaded = 0;
        for (int v = 0; v < variants; v++)
        {
            var bytes = Mutate(valid, rng, out string how, syntax);
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                read(path);
                loaded++;
            }
            catch (InvalidDataException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"{name} variant {v} (seed {seed}, {how}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 64L * bytes.Length + (8 << 20), $"{name} variant {v} (seed {seed}, {how}) allocated {allocated} bytes for a {bytes.Length}-byte file");
        }
        return loaded;
    }
}
