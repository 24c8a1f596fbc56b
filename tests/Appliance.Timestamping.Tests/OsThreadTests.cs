using System.Globalization;

namespace Appliance.Timestamping.Tests;

public class OsThreadTests
{
    [Fact]
    public void CurrentId_IsThisThreadsEntryUnderProcSelfTask()
    {
        int tid = OsThread.CurrentId();
        Assert.True(Directory.Exists($"/proc/self/task/{tid}"));
        int other = 0;
        var thread = new Thread(() => other = OsThread.CurrentId());
        thread.Start();
        thread.Join();
        Assert.NotEqual(tid, other);
    }

    [Fact]
    public void CpuNanoseconds_CountsWorkAndNotSleep_AsTheSchedulerDoes()
    {
        int tid = OsThread.CurrentId();
        long cpu0 = OsThread.CpuNanoseconds();
        long sched0 = Schedstat(tid);
        Thread.Sleep(200);
        long slept = OsThread.CpuNanoseconds() - cpu0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        double x = 1;
        while (watch.ElapsedMilliseconds < 100)
        {
            x = Math.Sqrt(x + 1);
        }
        long cpu1 = OsThread.CpuNanoseconds();
        long sched1 = Schedstat(tid);

        Assert.True(x > 1);
        Assert.InRange(slept, 0, 20_000_000);          // asleep for 200 ms: next to nothing
        Assert.InRange(cpu1 - cpu0, 50_000_000, 400_000_000); // 100 ms of work (less if the host stole some)
        // The scheduler's account in /proc/self/task/TID/schedstat, which for the running thread
        // itself lags by up to a tick (4 ms at HZ=250).
        Assert.InRange(sched1 - sched0, cpu1 - cpu0 - 10_000_000, cpu1 - cpu0 + 10_000_000);
    }

    private static long Schedstat(int tid) =>
        long.Parse(File.ReadAllText($"/proc/self/task/{tid}/schedstat").Split(' ')[0], CultureInfo.InvariantCulture);
}
