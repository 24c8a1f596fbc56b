using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Pins the calling thread to CPUs (sched_setaffinity).</summary>
public static unsafe class ThreadAffinity
{
    /// <summary>Pins the calling OS thread to <paramref name="cpu"/>; false (and errno text) if the kernel refuses.</summary>
    public static bool PinCurrentThread(int cpu, out string error)
    {
        error = "";
        if (cpu < 0 || cpu >= Libc.CpuSetSize * 8)
        {
            error = $"CPU {cpu} is out of range";
            return false;
        }
        byte* mask = stackalloc byte[Libc.CpuSetSize];
        new Span<byte>(mask, Libc.CpuSetSize).Clear();
        mask[cpu / 8] = (byte)(1 << (cpu % 8));
        if (Libc.SchedSetAffinity(0, Libc.CpuSetSize, mask) != 0)
        {
            error = Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
            return false;
        }
        return true;
    }
}
