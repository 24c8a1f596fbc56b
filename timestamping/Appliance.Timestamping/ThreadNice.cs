using System.Globalization;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// The nice value of the process's threads (Linux keeps one per thread: setpriority(2) with
/// PRIO_PROCESS and a TID), and the list of them (/proc/self/task). Under CPU contention the kernel
/// gives a thread CPU time in proportion to its weight, which each nice step changes by about 1.25×.
/// </summary>
public static class ThreadNice
{
    /// <summary>The highest nice value: the least CPU under contention.</summary>
    public const int Lowest = 19;

    /// <summary>The nice value of thread <paramref name="tid"/> of this process, or null (and the error) if the kernel refuses.</summary>
    public static int? Of(int tid, out string error)
    {
        error = "";
        Marshal.SetLastPInvokeError(0);
        int nice = Libc.GetPriority(Libc.PrioProcess, (uint)tid);
        int errno = Marshal.GetLastPInvokeError();
        if (nice == -1 && errno != 0)
        {
            error = Marshal.GetPInvokeErrorMessage(errno);
            return null;
        }
        return nice;
    }

    /// <summary>
    /// Sets thread <paramref name="tid"/>'s nice value; false, the error and whether the thread had
    /// already ended (ESRCH: it ended between a listing and this call) if the kernel refuses.
    /// </summary>
    public static bool TrySet(int tid, int nice, out string error, out bool ended)
    {
        error = "";
        ended = false;
        if (Libc.SetPriority(Libc.PrioProcess, (uint)tid, nice) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            ended = errno == Errno.ESRCH;
            error = Marshal.GetPInvokeErrorMessage(errno);
            return false;
        }
        return true;
    }

    /// <summary>The TIDs of this process's threads now (threads start and end meanwhile: a snapshot).</summary>
    public static IEnumerable<int> ThreadsOfThisProcess()
    {
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out int tid))
            {
                yield return tid;
            }
        }
    }
}
