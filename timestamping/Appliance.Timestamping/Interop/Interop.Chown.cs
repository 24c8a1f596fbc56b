using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    /// <summary>lchown(2): a symbolic link itself, never what it points at.</summary>
    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int LChown(string path, uint owner, uint group);
}
