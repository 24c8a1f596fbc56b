using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    internal const int SolUdp = 17;
    internal const int UdpSegment = 103;

    /// <summary>send(2) on a connected socket.</summary>
    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    internal static partial nint Send(int fd, byte* buffer, nuint length, int flags);
}
