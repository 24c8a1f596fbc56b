using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    internal const int AfInet = 2;
    internal const int AfInet6 = 10;
    internal const int SockDgram = 2;
    internal const int SockCloexec = 0x80000;
    internal const int IpProtoUdp = 17;

    /// <summary>socket(2).</summary>
    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);
}
