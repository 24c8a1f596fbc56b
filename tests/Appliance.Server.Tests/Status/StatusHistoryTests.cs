using Appliance.Discipline;
using Appliance.Server.Clock;
using Appliance.Server.Status;
using static Appliance.Server.Tests.Status.StatusTestData;

namespace Appliance.Server.Tests.Status;

public class StatusHistoryTests
{
    private const long Second = 1_000_000_000;

    [Fact]
    public void Read_EmptyHistory_HasNoPointsAndNoSeries()
    {
        HistoryView view = new StatusHistory().Read(100 * Second);

        Assert.Empty(view.SecondsAgo);
        Assert.Empty(view.Offset);
        Assert.Empty(view.Jitter);
    }

    [Fact]
    public void Record_OfferedEverySecond_TakesOnePointPerInterval()
    {
        var history = new StatusHistory(capacity: 100, TimeSpan.FromSeconds(10));
        int taken = 0;
        for (int s = 0; s <= 60; s++)
        {
            taken += history.Record(s * Second, ClockWith(s * 1e-6)) ? 1 : 0;
        }

        HistoryView view = history.Read(60 * Second);
        Assert.Equal(7, taken); // at 0, 10, …, 60 s
        Assert.Equal([-60.0, -50, -40, -30, -20, -10, 0], view.SecondsAgo);
        Assert.Equal([0.0, 10e-6, 20e-6, 30e-6, 40e-6, 50e-6, 60e-6], view.Offset.Select(o => Math.Round(o, 9)));
    }

    [Fact]
    public void Record_PastCapacity_WrapsAndKeepsTheNewestOldestFirst()
    {
        var history = new StatusHistory(capacity: 4, TimeSpan.FromSeconds(10));
        for (int k = 0; k < 10; k++)
        {
            history.Record(k * 10 * Second, ClockWith(k, 0.5, ClockCoreStatus.Synchronised, Snapshot("a", jitter: k / 100.0)));
        }

        HistoryView view = history.Read(90 * Second);
        Assert.Equal([6.0, 7, 8, 9], view.Offset);
        Assert.Equal([5.5, 6.5, 7.5, 8.5], view.Offset.Select((o, i) => o - view.OffsetUncertainty[i]));
        Assert.Equal([-30.0, -20, -10, 0], view.SecondsAgo);
        Assert.Equal([0.06, 0.07, 0.08, 0.09], Assert.Single(view.Jitter).Values);
    }

    [Fact]
    public void Record_Unsynchronised_IsAGapNotAZero_AndASourceWithoutSampleHasNoJitter()
    {
        var history = new StatusHistory(capacity: 8, TimeSpan.FromSeconds(1));
        history.Record(0, ClockWith(0, 0, ClockCoreStatus.Unsynchronised, Snapshot("a", jitter: 0, offset: null)));
        history.Record(Second, ClockWith(2e-6, 1e-6, ClockCoreStatus.Synchronised, Snapshot("a", jitter: 3e-6)));

        HistoryView view = history.Read(Second);
        Assert.True(double.IsNaN(view.Offset[0]));
        Assert.Equal(2e-6, view.Offset[1]);
        double[] jitter = Assert.Single(view.Jitter).Values;
        Assert.True(double.IsNaN(jitter[0]));
        Assert.Equal(3e-6, jitter[1]);
    }

    [Fact]
    public void Record_MoreSourcesThanColumns_PlotsTheFirst_AndAGoneSourcesColumnIsReusedCleared()
    {
        var history = new StatusHistory(capacity: 8, TimeSpan.FromSeconds(1));
        SourceSnapshot[] many = [.. Enumerable.Range(0, StatusHistory.MaxSources + 2).Select(i => Snapshot($"s{i}", jitter: i))];
        history.Record(0, ClockWith(0, 0, ClockCoreStatus.Synchronised, many));
        Assert.Equal(Enumerable.Range(0, StatusHistory.MaxSources).Select(i => $"s{i}"), history.Read(0).Jitter.Select(j => j.Name));

        // s0 is gone: the next new source takes its column, with none of s0's past.
        history.Record(Second, ClockWith(0, 0, ClockCoreStatus.Synchronised, [.. many[1..StatusHistory.MaxSources], Snapshot("new", jitter: 99)]));
        HistoryView view = history.Read(Second);
        Assert.DoesNotContain(view.Jitter, j => j.Name == "s0");
        double[] fresh = view.Jitter.Single(j => j.Name == "new").Values;
        Assert.True(double.IsNaN(fresh[0]));
        Assert.Equal(99, fresh[1]);
        Assert.Equal([1.0, 1.0], view.Jitter.Single(j => j.Name == "s1").Values);
    }

    [Fact]
    public void Record_SteadyState_AllocatesNothing()
    {
        var history = new StatusHistory(capacity: 16, TimeSpan.FromSeconds(1));
        ClockSnapshot snapshot = ClockWith(1e-6, 1e-7, ClockCoreStatus.Synchronised, Snapshot("a", 1e-6), Snapshot("b", 2e-6));
        for (int k = 0; k < 100; k++)
        {
            history.Record(k * Second, snapshot);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int k = 100; k < 10_100; k++)
        {
            history.Record(k * Second, snapshot);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
