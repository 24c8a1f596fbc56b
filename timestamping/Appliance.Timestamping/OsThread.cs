using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>The kernel's view of the calling thread.</summary>
public static class OsThread
{
    /// <summary>CLOCK_THREAD_CPUTIME_ID (linux/time.h).</summary>
    private const int ClockThreadCpuTimeId = 3;

    /// <summary>The calling thread's kernel id (gettid): its directory under /proc/self/task.</summary>
    public static int CurrentId() => Libc.GetTid();

    /// <summary>
    /// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID: the scheduler's exact account,
    /// user and system together, including the running slice), in nanoseconds. A system call, not a
    /// vDSO read: for sampling, not for every packet. (getrusage's thread times are only as fresh as
    /// the last tick or switch: milliseconds off.)
    /// </summary>
    public static long CpuNanoseconds()
    {
        Libc.ClockGetTime(ClockThreadCpuTimeId, out Timespec ts);
        return ts.ToNanoseconds();
    }
}
