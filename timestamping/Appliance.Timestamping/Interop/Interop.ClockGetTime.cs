using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct timespec on x86-64 glibc: 16 bytes (pinned by a test).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Timespec
{
    public long Seconds;
    public long Nanoseconds;

    public readonly long ToNanoseconds() => (Seconds * 1_000_000_000L) + Nanoseconds;
}

internal static partial class Libc
{
    internal const int ClockRealtime = 0;
    internal const int ClockMonotonic = 1;

    /// <summary>
    /// clock_gettime(2). The generated stub pins the out struct and allocates nothing. Without
    /// SetLastError (its stub costs two more native calls, and the workers read the clock several
    /// times per batch): the one caller that can fail, a PHC read, takes errno with
    /// <see cref="Marshal.GetLastSystemError"/> right after the call, as the recvmmsg callers do.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    internal static partial int ClockGetTime(int clockId, out Timespec time);
}
