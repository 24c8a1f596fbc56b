using Appliance.Timestamping;
using Microsoft.Win32.SafeHandles;

namespace Appliance.Server.Hosting;

/// <summary>
/// Files that hold secrets (the NTS key ring, the Roughtime long-term key): checked private before
/// they are read, read with a bound, and written so that a crash or a power cut leaves the old file
/// or the new one whole, never a torn one, and never a moment in which others could read it.
/// </summary>
internal static class SecretFile
{
    /// <summary>For a file the appliance writes itself (0600): nobody else may have any access.</summary>
    public const UnixFileMode OthersMask = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// <see cref="InvalidDataException"/> if the mode of the file opened (not of the path: the check and
    /// the read see one file) has any of the <paramref name="forbidden"/> bits.
    /// </summary>
    public static void CheckPrivate(SafeFileHandle handle, string path, UnixFileMode forbidden, string whyPrivate)
    {
        UnixFileMode mode = File.GetUnixFileMode(handle);
        if ((mode & forbidden) != 0)
        {
            throw new InvalidDataException($"{path} is open to others (mode {ModeText(mode)}), but {whyPrivate}");
        }
    }

    /// <summary>The file's bytes, as <see cref="InvalidDataException"/> if it is longer than <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadBounded(SafeFileHandle handle, string path, int maxBytes, string what)
    {
        long length = RandomAccess.GetLength(handle);
        if (length > maxBytes)
        {
            throw new InvalidDataException($"{path} is {length} bytes, more than {what} can be ({maxBytes})");
        }
        var bytes = new byte[length];
        int read = 0;
        while (read < bytes.Length && RandomAccess.Read(handle, bytes.AsSpan(read), read) is int n and > 0)
        {
            read += n;
        }
        return read == bytes.Length ? bytes : bytes[..read];
    }

    /// <summary>
    /// Removes the temporary files of saves that never finished (a crash, any process id): they may
    /// hold keys, and one written before the temporary file was made with O_EXCL may be readable by others.
    /// </summary>
    public static void RemoveStaleTemporaryFiles(string path)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(directory))
        {
            return;
        }
        // The pattern covers the copy's temporary files too (.NAME.prev.PID.tmp).
        foreach (string stale in Directory.EnumerateFiles(directory, $".{Path.GetFileName(path)}.*.tmp"))
        {
            File.Delete(stale);
        }
    }

    public static string ModeText(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> (in <paramref name="directory"/>) as
    /// a new 0600 file renamed over the old one, each step on disk before the next. A failure (ENOSPC,
    /// EROFS, EACCES, EIO) throws <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>
    /// and leaves the old file as it was. With <paramref name="replace"/> false a file that is there
    /// already (made meanwhile by another process) is kept and <see cref="IOException"/> thrown.
    /// </summary>
    public static void WriteDurably(string path, string directory, byte[] content, bool replace = true)
    {
        string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        // A temporary file left by a crash (by a process of the same id, before a reboot) is removed,
        // never reused: opened as it is, it would keep its old mode and owner (a link, its target's),
        // and the keys would land in it. CreateNew (O_EXCL) then makes a new file or fails.
        File.Delete(temporary);
        try
        {
            using (FileStream stream = new(temporary, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                stream.Write(content);
                // fsync before the rename: else a crash may leave the new name on an empty file (ext4's
                // delayed allocation), which is the torn key file this order exists to prevent.
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: replace);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk leaves a partly written temporary file: remove it, it holds keys and takes space.
            TryDelete(temporary);
            throw;
        }
        // rename(2) is in the directory: until the directory is on disk, a crash may bring back the
        // old file (keys that sealed cookies since would be lost) or leave no file at all.
        DirectorySync.Flush(directory);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // a read-only disk: there was no temporary file to remove (its creation failed)
        }
    }
}
