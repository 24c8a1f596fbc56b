using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    /// <summary>sendmmsg(2). Without SetLastError, as <see cref="RecvMMsg"/>: read errno right after a failed call.</summary>
    [LibraryImport("libc", EntryPoint = "sendmmsg")]
    internal static partial int SendMMsg(int fd, MMsgHdr* messages, uint count, int flags);
}
