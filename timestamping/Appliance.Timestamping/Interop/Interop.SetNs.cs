using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    internal const int CloneNewNet = 0x40000000;

    /// <summary>setns(2): moves the calling thread into the namespace the descriptor names.</summary>
    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int nsType);
}
