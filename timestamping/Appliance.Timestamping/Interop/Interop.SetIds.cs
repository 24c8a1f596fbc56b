using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    /// <summary>
    /// setresuid(2). glibc's wrapper applies it to every thread of the process (it signals each one,
    /// SIGSETXID, and waits), as POSIX asks; the raw system call would change the caller alone.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "setresuid", SetLastError = true)]
    internal static partial int SetResUid(uint real, uint effective, uint saved);

    /// <summary>setresgid(2), every thread (as <see cref="SetResUid"/>).</summary>
    [LibraryImport("libc", EntryPoint = "setresgid", SetLastError = true)]
    internal static partial int SetResGid(uint real, uint effective, uint saved);

    /// <summary>setgroups(2), every thread (as <see cref="SetResUid"/>).</summary>
    [LibraryImport("libc", EntryPoint = "setgroups", SetLastError = true)]
    internal static partial int SetGroups(nuint size, uint* groups);

    /// <summary>getresuid(2).</summary>
    [LibraryImport("libc", EntryPoint = "getresuid", SetLastError = true)]
    internal static partial int GetResUid(out uint real, out uint effective, out uint saved);
}
