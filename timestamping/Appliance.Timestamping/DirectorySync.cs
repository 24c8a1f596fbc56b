using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;
using Microsoft.Win32.SafeHandles;

namespace Appliance.Timestamping;

/// <summary>
/// fsync(2) of a directory: what makes a file created or renamed in it durable (a crash after
/// rename(2) returned may otherwise leave the old name, or none). .NET opens no directory (its
/// handles refuse them), so the directory is opened here and flushed through the handle.
/// </summary>
public static class DirectorySync
{
    /// <summary>Flushes <paramref name="directory"/>'s entries to disk; an <see cref="IOException"/> says why it could not.</summary>
    public static void Flush(string directory)
    {
        int fd = Libc.Open(directory, Libc.ORdOnly | Libc.ODirectory | Libc.OCloExec);
        if (fd < 0)
        {
            throw new IOException($"cannot open the directory {directory} to flush it: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        RandomAccess.FlushToDisk(handle);
    }
}
