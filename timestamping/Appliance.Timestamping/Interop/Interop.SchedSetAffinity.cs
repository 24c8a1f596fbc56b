using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    /// <summary>sizeof(cpu_set_t) in glibc: 1024 CPUs.</summary>
    internal const int CpuSetSize = 128;

    /// <summary>sched_setaffinity(2); pid 0 is the calling thread.</summary>
    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    internal static partial int SchedSetAffinity(int pid, nuint cpuSetSize, byte* mask);
}
