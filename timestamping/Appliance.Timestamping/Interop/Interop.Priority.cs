using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static partial class Libc
{
    /// <summary>PRIO_PROCESS (sys/resource.h): on Linux its id is a thread's (a TID), not the whole process's.</summary>
    internal const int PrioProcess = 0;

    /// <summary>getpriority(2): the nice value (−20..19); −1 is a valid value, so errno tells a failure.</summary>
    [LibraryImport("libc", EntryPoint = "getpriority", SetLastError = true)]
    internal static partial int GetPriority(int which, uint who);

    /// <summary>setpriority(2): an unprivileged caller may raise a thread's nice value (lower its priority), not lower it.</summary>
    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    internal static partial int SetPriority(int which, uint who, int prio);
}
