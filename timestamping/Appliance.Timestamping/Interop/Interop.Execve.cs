using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    /// <summary>execve(2): returns only on failure. <paramref name="argv"/> and <paramref name="envp"/> end with a null pointer.</summary>
    [LibraryImport("libc", EntryPoint = "execve", SetLastError = true)]
    internal static partial int Execve(byte* path, byte** argv, byte** envp);
}
