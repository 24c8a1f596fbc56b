using Appliance.Engine;

namespace Appliance.Engine.Tests;

/// <summary>
/// The busy-poll decision fed made-up observations, as a worker would feed it: per idle period the
/// gap to the next datagram, whether a poll or the blocking receive got it, and the datagrams served;
/// per timed blocking receive its CPU. Prices in ns.
/// </summary>
public class BusyPollGovernorTests
{
    private const long Max = 50_000;

    /// <summary>
    /// Runs <paramref name="periods"/> idle periods the way the worker does: poll for the window,
    /// sleep when the gap outlasts it (timed when the governor asks, at
    /// <paramref name="sleepCpu"/>), then report the period.
    /// </summary>
    private static void Feed(BusyPollGovernor governor, int periods, Func<int, long> gap, long sleepCpu,
        long queuedCpu = 2_000, int datagramsAfterSleep = 1, int datagramsAfterCatch = 1)
    {
        for (int i = 0; i < periods; i++)
        {
            long window = governor.BeginIdle(out bool probe);
            long g = gap(i);
            bool slept = g >= window;
            if (slept && governor.BeginSleep(probe))
            {
                bool queued = g - window <= 0;
                governor.RecordSleep(g - window, queued ? queuedCpu : sleepCpu, slept: !queued);
            }
            governor.RecordPeriod(g, slept, slept ? datagramsAfterSleep : datagramsAfterCatch);
        }
    }

    /// <summary>Times some receives that found a datagram queued: the fixed cost of a turn.</summary>
    private static void FeedQueued(BusyPollGovernor governor, long cpu)
    {
        for (int i = 0; i < 8; i++)
        {
            governor.RecordSleep(-500, cpu, slept: false);
        }
    }

    [Fact]
    public void Candidates_AreZeroThenDoublingFrom1024NanosecondsUpToTheMaximum()
    {
        Assert.Equal([0L, 1_024, 2_048, 4_096, 8_192, 16_384, 32_768, 50_000], new BusyPollGovernor(Max).Candidates.ToArray());
        Assert.Equal([0L], new BusyPollGovernor(0).Candidates.ToArray());
        Assert.Equal(16, new BusyPollGovernor(10_000_000).Candidates.Length);
    }

    [Fact]
    public void Fixed_AlwaysPollsTheMaximumAndTimesNothing()
    {
        var governor = new BusyPollGovernor(Max, adaptive: false);
        Feed(governor, 1000, _ => 200_000, sleepCpu: 8_000);
        Assert.Equal(Max, governor.BeginIdle(out bool probe));
        Assert.False(probe);
        Assert.DoesNotContain(true, Enumerable.Range(0, 100).Select(_ => governor.BeginSleep(false)));
    }

    [Fact]
    public void ZeroMaximum_NeverPolls_EvenWhenSleepsCostMore()
    {
        var governor = new BusyPollGovernor(0);
        FeedQueued(governor, 2_000);
        Feed(governor, 1000, _ => 500, sleepCpu: 50_000);
        Assert.Equal(0, governor.WindowNanoseconds);
        Assert.Equal(0, governor.BeginIdle(out _));
    }

    [Fact]
    public void Untimed_SleepsAtOnce()
    {
        var governor = new BusyPollGovernor(Max);
        Assert.Equal(0, governor.BeginIdle(out _));
        // Gaps of 1.5 µs, but no sleep was ever timed (BeginSleep ignored): sleeping is priced at 0.
        for (int i = 0; i < 1000; i++)
        {
            governor.BeginIdle(out _);
            governor.RecordPeriod(1_500, slept: true, 1);
        }
        Assert.Equal(0, governor.WindowNanoseconds);
    }

    [Fact]
    public void LongGaps_SleepAtOnce()
    {
        // 5 k/s: 200 µs between datagrams, a sleep costs 8 µs of CPU.
        var governor = new BusyPollGovernor(Max);
        Feed(governor, 2000, _ => 200_000, sleepCpu: 8_000);
        Assert.Equal(0, governor.WindowNanoseconds);
        Assert.Equal(8_000, governor.SleepPrice(governor.Candidates.Length - 1), 1);
        for (int j = 1; j < governor.Candidates.Length; j++)
        {
            Assert.True(governor.ExpectedCost(j) > governor.ExpectedCost(0));
        }
    }

    [Fact]
    public void GapsShorterThanASleepCosts_ArePolledThrough_WithTheShortestWindowThatCatchesThem()
    {
        // Gaps of 1.5 µs (the class from 1.024 to 2.048 µs) against sleeps of 10 µs: a 2.048 µs window catches them all.
        var governor = new BusyPollGovernor(Max);
        FeedQueued(governor, 2_000);
        Feed(governor, 2000, _ => 1_500, sleepCpu: 10_000);
        Assert.Equal(2_048, governor.WindowNanoseconds);
    }

    [Fact]
    public void ASleepThatBatches_CanBeCheaperPerDatagramThanPolling()
    {
        // Gaps of 3 µs, a sleep costs 4 µs more than a receive of a queued datagram (2 µs). When the
        // thread wakes to two datagrams where a poll catches one, sleeping is cheaper per datagram:
        // (2 + 4) / 2 = 3 µs against (2 + 3) / 1 = 5 µs. Without the batching, polling is:
        // 6 µs against 5 µs.
        var batching = new BusyPollGovernor(Max);
        FeedQueued(batching, 2_000);
        Feed(batching, 2000, _ => 3_000, sleepCpu: 6_000, datagramsAfterSleep: 2);
        Assert.Equal(0, batching.WindowNanoseconds);

        var single = new BusyPollGovernor(Max);
        FeedQueued(single, 2_000);
        Feed(single, 2000, _ => 3_000, sleepCpu: 6_000, datagramsAfterSleep: 1);
        Assert.Equal(4_096, single.WindowNanoseconds);
    }

    [Fact]
    public void PollingThatSavesLessThanTheMargin_IsNotChosen()
    {
        // Gaps of 3 µs against sleeps 3.3 µs dearer than a queued receive (2 µs): polling, 5 µs per
        // datagram, saves 6 % of sleeping's 5.3 µs; it must save 10 %.
        var governor = new BusyPollGovernor(Max);
        FeedQueued(governor, 2_000);
        Feed(governor, 2000, _ => 3_000, sleepCpu: 5_300);
        Assert.Equal(0, governor.WindowNanoseconds);
        Assert.True(governor.ExpectedCost(3) < governor.ExpectedCost(0));
    }

    [Fact]
    public void Bursts_ArePolledThrough_TheGapsBetweenThemSlept()
    {
        // Bursts: half the gaps 1.5 µs, half 1 ms; a sleep costs 8 µs more than a queued receive.
        // Poll 2.048 µs (about 7.8 µs per datagram), then sleep; sleeping at once costs 10 µs.
        var governor = new BusyPollGovernor(Max);
        FeedQueued(governor, 2_000);
        Feed(governor, 4000, i => i % 2 == 0 ? 1_500 : 1_000_000, sleepCpu: 10_000);
        Assert.Equal(2_048, governor.WindowNanoseconds);
    }

    [Fact]
    public void WhenTheLoadFalls_ItGoesBackToSleepingAtOnce()
    {
        var governor = new BusyPollGovernor(10_000_000);
        FeedQueued(governor, 2_000);
        Feed(governor, 2000, _ => 1_500, sleepCpu: 10_000);
        Assert.Equal(2_048, governor.WindowNanoseconds);
        // 5 k/s again: 200 µs gaps outlast every poll; within 16 epochs it sleeps at once.
        Feed(governor, 16 * BusyPollGovernor.Epoch, _ => 200_000, sleepCpu: 10_000);
        Assert.Equal(0, governor.WindowNanoseconds);
    }

    [Fact]
    public void WhilePolling_EveryProbeIntervalthPeriodSleepsAtOnceAndIsTimed()
    {
        var governor = new BusyPollGovernor(Max);
        FeedQueued(governor, 2_000);
        Feed(governor, 2000, _ => 1_500, sleepCpu: 10_000);
        Assert.Equal(2_048, governor.WindowNanoseconds);
        var probes = new List<int>();
        for (int i = 0; i < 3 * BusyPollGovernor.ProbeInterval; i++)
        {
            long window = governor.BeginIdle(out bool probe);
            if (probe)
            {
                probes.Add(i);
                Assert.Equal(0, window);
                Assert.True(governor.BeginSleep(probe));
            }
            else
            {
                Assert.Equal(2_048, window);
            }
        }
        Assert.Equal(3, probes.Count);
        Assert.Equal(BusyPollGovernor.ProbeInterval, probes[1] - probes[0]);
    }

    [Fact]
    public void Sleeping_TimesEverySampleIntervalthSleep()
    {
        var governor = new BusyPollGovernor(Max);
        bool[] timed = [.. Enumerable.Range(0, 4 * BusyPollGovernor.SampleInterval).Select(_ => governor.BeginSleep(false))];
        Assert.Equal(4, timed.Count(t => t));
        Assert.True(timed[BusyPollGovernor.SampleInterval - 1]);
    }

    [Fact]
    public void Price_IsTheMedianOfTheLastTimedSleeps_AndIgnoresPreemptions()
    {
        var governor = new BusyPollGovernor(Max);
        int k = governor.Candidates.Length - 1;
        foreach (long cpu in (long[])[6_000, 7_000, 200_000, 6_500, 7_500, 6_000, 7_000, 6_500])
        {
            governor.RecordSleep(100_000, cpu, slept: true);
        }
        Assert.Equal(6_750, governor.SleepPrice(k), 1);
        // Host preemption charged to the thread: milliseconds in one receive, not a price.
        for (int i = 0; i < 8; i++)
        {
            governor.RecordSleep(100_000, 3_000_000, slept: true);
        }
        Assert.Equal(6_750, governor.SleepPrice(k), 1);
        // Prices are net of a receive that found a datagram queued.
        FeedQueued(governor, 2_000);
        Assert.Equal(4_750, governor.SleepPrice(k), 1);
        Assert.True(double.IsNaN(governor.SleepPrice(0)));
    }
}
