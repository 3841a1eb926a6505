using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace GradFlow.Training;

/// <summary>
/// Writes a file so that a crash at any instant leaves either the old file or the complete new one:
/// the content goes to a temporary file in the same directory, is flushed to disk, and is then
/// renamed over the target (rename within a directory is atomic on POSIX file systems).
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>; on any exception the target is untouched and the temporary file removed.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, TemporaryName(Path.GetFileName(full), Environment.ProcessId));
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>The temporary file of a write: <c>.NAME.PID.GUID.tmp</c>, hidden, naming the writing process.</summary>
    private static string TemporaryName(string name, int processId) => $".{name}.{processId}.{Guid.NewGuid():N}.tmp";

    /// <summary>Matches <see cref="TemporaryName"/>; group 1 is the process id.</summary>
    private static readonly Regex Temporary = new(@"^\..+\.(\d+)\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Deletes the temporary files that writers killed mid-write left in <paramref name="directory"/>
    /// (named <c>.NAME.PID.GUID.tmp</c>) whose process is no longer running. Temporaries of a live
    /// process (this one, or another writing concurrently) and files named otherwise are kept.
    /// </summary>
    /// <returns>The paths deleted (none when the directory does not exist).</returns>
    public static IReadOnlyList<string> RemoveOrphanedTemporaries(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var removed = new List<string>();
        if (!Directory.Exists(directory)) return removed;
        foreach (var path in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            var m = Temporary.Match(Path.GetFileName(path));
            if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || IsRunning(pid))
                continue;
            try
            {
                File.Delete(path);
                removed.Add(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // another process removed or holds it: leave it
            }
        }
        return removed;
    }

    private static bool IsRunning(int processId)
    {
        if (processId == Environment.ProcessId) return true;
        try
        {
            using var p = Process.GetProcessById(processId);
            return !p.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Writes <paramref name="text"/> (UTF-8) atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, s =>
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            s.Write(bytes, 0, bytes.Length);
        });
}
