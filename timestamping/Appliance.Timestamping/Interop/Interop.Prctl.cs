using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    /// <summary>prctl(2) options (linux/prctl.h).</summary>
    internal const int PrGetDumpable = 3, PrCapBsetRead = 23, PrCapBsetDrop = 24, PrGetSecureBits = 27, PrSetSecureBits = 28,
        PrCapAmbient = 47, PrCapAmbientClearAll = 4;

    /// <summary>
    /// securebits (linux/securebits.h): with SECBIT_NO_SETUID_FIXUP the kernel leaves the capability
    /// sets alone when the uids leave 0 (capabilities(7), "Effect of user ID changes on
    /// capabilities"). Unlike SECBIT_KEEP_CAPS it survives execve(2) and is inherited by new threads.
    /// </summary>
    internal const int SecBitNoSetuidFixup = 1 << 2;

    /// <summary>prctl(2); every option used here acts on the calling thread alone.</summary>
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    internal static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
