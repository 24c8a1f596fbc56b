using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    /// <summary>open(2) flags (x86-64); O_DIRECTORY fails unless the path is a directory.</summary>
    internal const int ORdOnly = 0, ORdWr = 2, ODirectory = 0x10000, OCloExec = 0x80000;

    /// <summary>open(2).</summary>
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Open(string path, int flags);
}
