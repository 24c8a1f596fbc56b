using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    /// <summary>gettid(2): the kernel's id of the calling thread (the TID under /proc/self/task).</summary>
    [LibraryImport("libc", EntryPoint = "gettid")]
    internal static partial int GetTid();
}
