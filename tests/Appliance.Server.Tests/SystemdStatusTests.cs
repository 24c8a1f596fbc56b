using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Server.Clock;
using Appliance.Server.Hosting;
using Appliance.Sources;

namespace Appliance.Server.Tests;

/// <summary>The pieces behind sd_notify, without sockets: the status line, the progress decisions, the environment.</summary>
public class SystemdStatusTests
{
    private static ClockSnapshot Clock(ClockCoreStatus status, double offset = 0, params SourceSnapshot[] sources) =>
        ClockSnapshot.Empty with { Status = status, Offset = offset, Sources = sources };

    private static SourceSnapshot Source(string name, PeerStatus selection) =>
        new(name, "ntp", SourceState.Reachable, selection, 0xff, 64, 0, 0.001, 0, 1, new SourceCounters());

    private static ServerState State(byte stratum, uint referenceId = 0) => new() { Leap = LeapIndicator.NoWarning, Stratum = stratum, ReferenceId = referenceId };

    [Fact]
    public void Status_Synchronised_NamesTheSystemPeerAndTheOffset()
    {
        ClockSnapshot clock = Clock(ClockCoreStatus.Synchronised, 12.4e-6,
            Source("192.0.2.7:123", PeerStatus.Candidate), Source("192.0.2.1:123", PeerStatus.SystemPeer));
        Assert.Equal("stratum 2, synchronised to 192.0.2.1:123, offset +12 µs", StatusLine.Format(clock, State(2, 0xC0000201), []));
        Assert.Equal("stratum 2, synchronised to 192.0.2.1:123", StatusLine.Format(clock, State(2, 0xC0000201), [], offset: false));
    }

    [Fact]
    public void Status_SynchronisedWithoutASystemPeerName_ShowsTheReferenceId()
    {
        Assert.Equal("stratum 1, synchronised to GPS, offset -1.3 ms", StatusLine.Format(Clock(ClockCoreStatus.Synchronised, -1.26e-3), State(1, ReferenceIds.Gps), []));
        Assert.Equal("stratum 3, synchronised to 198.51.100.9, offset +2.500 s", StatusLine.Format(Clock(ClockCoreStatus.Synchronised, 2.5), State(3, 0xC6336409), []));
    }

    [Fact]
    public void Status_OtherStates_AndStalledParts()
    {
        Assert.Equal("unsynchronised", StatusLine.Format(Clock(ClockCoreStatus.Unsynchronised), State(16), []));
        Assert.Equal("holdover (no usable source), stratum 2", StatusLine.Format(Clock(ClockCoreStatus.Holdover, 1e-6), State(2), []));
        Assert.Equal("local reference, stratum 10", StatusLine.Format(Clock(ClockCoreStatus.Local), State(10), []));
        Assert.StartsWith("unsynchronised: ", StatusLine.Format(Clock(ClockCoreStatus.Panic), State(16), []), StringComparison.Ordinal);
        Assert.Equal("local reference, stratum 10; NTP worker 3 stuck; clock service keeps failing",
            StatusLine.Format(Clock(ClockCoreStatus.Local), State(10),
                [new Stall("NTP worker 3", false, TimeSpan.FromSeconds(2)), new Stall("clock service", true, TimeSpan.Zero)]));
    }

    private const long Second = 1_000_000_000;

    [Fact]
    public void Progress_AHeartbeatThatMoves_IsNoStall_OneThatStandsForItsGrace_Is()
    {
        long beat = 0;
        var monitor = new ProgressMonitor();
        monitor.Add("NTP worker 0", () => beat, TimeSpan.FromSeconds(1), now: 0);

        beat++;
        Assert.Empty(monitor.Check(Second / 2));
        Assert.Empty(monitor.Check(Second)); // still for 0.5 s: inside the grace
        Stall stall = Assert.Single(monitor.Check(3 * Second / 2));
        Assert.Equal("NTP worker 0", stall.Part);
        Assert.False(stall.Failing);
        Assert.Equal(TimeSpan.FromSeconds(1), stall.Since);
        Assert.Equal("has made no progress for 1.0 s", stall.Problem);
        beat++;
        Assert.Empty(monitor.Check(2 * Second));
    }

    [Fact]
    public void Progress_OneFault_IsProgress_FaultsThatRepeat_AreNot()
    {
        long beat = 0;
        long faults = 0;
        bool backoffGrown = false;
        var monitor = new ProgressMonitor();
        monitor.Add("NTP worker 1", () => beat, TimeSpan.FromSeconds(1), now: 0, () => faults, () => backoffGrown);

        // One fault after a healthy run: restarted after the first pause, serving again.
        faults++;
        beat++;
        Assert.Empty(monitor.Check(Second / 2));
        // Faults in a row, each restart turning the loop once: the beat moves, but the back-off grew.
        faults += 3;
        beat += 3;
        backoffGrown = true;
        Stall stall = Assert.Single(monitor.Check(Second));
        Assert.True(stall.Failing);
        // Restarted and turning, no new fault yet: still failing while the fault is recent.
        beat++;
        Assert.True(Assert.Single(monitor.Check(2 * Second)).Failing);
        beat++;
        Assert.True(Assert.Single(monitor.Check((1 + ProgressMonitor.FaultMemoryGraces) * Second - 1)).Failing);
        // A run of five graces without a fault: the grown back-off alone is no stall.
        beat++;
        Assert.Empty(monitor.Check((1 + ProgressMonitor.FaultMemoryGraces) * Second));
    }

    [Theory]
    [InlineData("30000000", null, 30.0)]
    [InlineData("500000", "SELF", 0.5)]
    [InlineData("500000", "OTHER", null)]
    [InlineData("0", null, null)]
    [InlineData("-5", null, null)]
    [InlineData("soon", null, null)]
    [InlineData(null, null, null)]
    public void Environment_WatchdogInterval_OnlyForThisProcess(string? usec, string? pid, double? seconds)
    {
        int self = Environment.ProcessId;
        string? watchdogPid = pid switch
        {
            "SELF" => self.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "OTHER" => (self + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => null,
        };
        var environment = new SystemdEnvironment("/run/systemd/notify", usec, watchdogPid);
        Assert.Equal(seconds, environment.WatchdogInterval(self)?.TotalSeconds);
    }

    [Fact]
    public void Notifier_WithoutNotifySocket_IsOffAndSendsNothing()
    {
        using var notifier = new SystemdNotifier(SystemdEnvironment.None);
        Assert.False(notifier.IsEnabled);
        Assert.Null(notifier.WatchdogInterval);
        Assert.False(notifier.Notify("READY=1"));
        using var relative = new SystemdNotifier(new SystemdEnvironment("notify.sock", "1000000"));
        Assert.False(relative.IsEnabled); // sd_notify(3): only an absolute path or '@'
    }
}
