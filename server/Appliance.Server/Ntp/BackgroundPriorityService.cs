using Appliance.Engine;
using Appliance.Server.Configuration;
using Appliance.Timestamping;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Ntp;

/// <summary>
/// Keeps every thread of the appliance but the NTP workers <c>ntp.background-nice</c> nice steps
/// below them (issue #18: a key-exchange flood must not take the NTP path's CPU). The NTS-KE shell,
/// the control socket, metrics and the clock service run on the thread pool and the socket engine,
/// whose threads come and go: once a second each thread not yet seen is given the lower priority.
/// Only raising a nice value needs no privilege, so the workers keep the nice the process started
/// with and nothing is ever lowered again. A thread started by one already lowered inherits its nice
/// value (clone(2)); one the runtime starts from a worker's context runs at the workers' priority
/// until the next sweep, a second at most. A garbage collection triggered on a lowered thread stops
/// the workers while it runs at the lower priority: the workers allocate nothing, so collections are
/// rare (docs/benchmarks.md, "Soak"), but under a flood one can last longer.
/// The clock's sources run on such threads too: their receive timestamps are the kernel's, taken
/// whatever the priority of the thread that reads them later; an upstream's send time is taken just
/// before the send, and a delay there lengthens the measured round trip, which the clock filter
/// weighs (RFC 5905 §10).
/// </summary>
internal sealed class BackgroundPriorityService(NtpEngine engine, ApplianceConfig config, ILogger<BackgroundPriorityService> logger) : BackgroundService
{
    public static readonly TimeSpan Sweep = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        int steps = config.Ntp.BackgroundNice;
        if (steps == 0)
        {
            return;
        }
        // The workers write their thread ids as they start (NtpService has started them).
        for (int waited = 0; engine.Workers.Any(w => w.OsThreadId == 0); waited++)
        {
            if (waited == 1000)
            {
                logger.LogWarning("the NTP workers did not start within 10 s: the other threads keep their priority ({Key})", K.NtpBackgroundNice.Path);
                return;
            }
            await Task.Delay(10, stoppingToken).ConfigureAwait(false);
        }
        var workers = engine.Workers.Select(w => w.OsThreadId).ToHashSet();
        if (ThreadNice.Of(workers.First(), out string niceError) is not { } workerNice)
        {
            logger.LogWarning("cannot read the NTP workers' priority ({Error}): the other threads keep theirs ({Key})", niceError, K.NtpBackgroundNice.Path);
            return;
        }
        int target = Math.Min(ThreadNice.Lowest, workerNice + steps);
        if (target == workerNice)
        {
            logger.LogWarning("the NTP workers run at nice {Nice} already, the lowest priority: the other threads cannot go below them ({Key})", workerNice, K.NtpBackgroundNice.Path);
            return;
        }
        var lowered = new HashSet<int>();
        bool warned = false, said = false;
        using var timer = new PeriodicTimer(Sweep);
        do
        {
            HashSet<int> present;
            try
            {
                present = ThreadNice.ThreadsOfThisProcess().ToHashSet();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A priority is no reason to stop serving: say so once and leave the threads as they are.
                logger.LogWarning("cannot list the appliance's threads ({Error}): they keep their priority ({Key})", e.Message, K.NtpBackgroundNice.Path);
                return;
            }
            lowered.IntersectWith(present); // a TID is reused only after its thread ended
            foreach (int tid in present)
            {
                if (workers.Contains(tid) || lowered.Contains(tid))
                {
                    continue;
                }
                if (ThreadNice.Of(tid, out _) >= target || ThreadNice.TrySet(tid, target, out string error, out bool ended))
                {
                    lowered.Add(tid);
                }
                else if (!ended && !warned)
                {
                    warned = true;
                    logger.LogWarning("cannot lower the priority of thread {Tid} below the NTP workers: {Error} ({Key})", tid, error, K.NtpBackgroundNice.Path);
                }
            }
            if (lowered.Count > 0 && !said)
            {
                said = true;
                logger.LogInformation("threads other than the {Workers} NTP worker(s) run at nice {Nice}, the workers at {WorkerNice}: "
                    + "under CPU contention the workers answer first ({Key})", workers.Count, target, workerNice, K.NtpBackgroundNice.Path);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
