using Appliance.Protocol;
using Appliance.Testing;

namespace Appliance.Discipline.Tests;

public class ClockCoreTests
{
    private static (ClockCore Core, Peer[] Peers) Core(ClockCoreOptions? options = null, int peers = 3)
    {
        var core = new ClockCore(options ?? new ClockCoreOptions());
        var list = Enumerable.Range(0, peers).Select(i => core.AddPeer($"s{i}", 0xC0000201u + (uint)i)).ToArray();
        foreach (Peer p in list)
        {
            p.PollSeconds = 16;
        }
        return (core, list);
    }

    /// <summary>Every peer reports <paramref name="offset"/> at <paramref name="at"/> seconds; returns the last update with every command issued.</summary>
    private static ClockUpdate Feed(ClockCore core, Peer[] peers, double at, double offset, double delay = 300e-6)
    {
        var commands = new List<ClockCommand>();
        ClockUpdate? last = null;
        foreach (Peer p in peers)
        {
            last = core.OnSample(p, Samples.Make(at, offset, delay), Samples.At(at));
            commands.AddRange(last.Commands);
        }
        return last! with { Commands = commands };
    }

    [Fact]
    public void AReferenceClock_MakesAStratum1Server_AndWhenLost_TheUpstreamsTakeOver()
    {
        var (core, upstreams) = Core(peers: 3);
        Peer pps = core.AddPeer("pps", 0x50505300);
        pps.PollSeconds = 1;
        for (int t = 1; t <= 64; t++)
        {
            // PPS every second (stratum 0, no delay), the upstreams every 16 s, all agreeing.
            core.OnSample(pps, new Sample(Samples.At(t), 1e-6, 0, 1e-7, 0, 1e-7, 0, LeapIndicator.NoWarning, 0x50505300), Samples.At(t));
            if (t % 16 == 1)
            {
                Feed(core, upstreams, t, 5e-6);
            }
        }
        ClockUpdate update = core.Tick(Samples.At(64.5));
        Assert.Same(pps, update.Selection.SystemPeer);
        Assert.Equal(1, update.State.Stratum);
        Assert.Equal(0x50505300u, update.State.ReferenceId); // "PPS"
        Assert.Equal(PeerStatus.SystemPeer, pps.Status);

        // The pulses stop: after eight missed polls the PPS is stale, and an upstream is the system peer.
        for (int t = 65; t <= 100; t++)
        {
            if (t % 16 == 1)
            {
                Feed(core, upstreams, t, 5e-6);
            }
            update = core.Tick(Samples.At(t));
        }
        Assert.Contains(update.Selection.SystemPeer, upstreams);
        Assert.Equal(2, update.State.Stratum);
        Assert.Equal(PeerStatus.NoSample, pps.Status);
        Assert.Equal(ClockCoreStatus.Synchronised, core.Status);
    }

    [Fact]
    public void BeforeAnySource_ServesUnsynchronised_LI3Stratum16()
    {
        var (core, _) = Core();
        ClockUpdate update = core.Tick(Samples.At(0));
        Assert.Equal(LeapIndicator.Unsynchronised, update.State.Leap);
        Assert.Equal(ServerState.UnsynchronisedStratum, update.State.Stratum);
        Assert.Contains(update.Commands, c => c is ClockCommand.SetStatus { Synchronised: false });
        Assert.Equal(ClockCoreStatus.Unsynchronised, core.Status);
    }

    [Fact]
    public void ThreeAgreeingStratum1Sources_MakeAStratum2Server()
    {
        var (core, peers) = Core();
        ClockUpdate update = Feed(core, peers, 1, 20e-6, delay: 400e-6);
        Assert.Equal(ClockCoreStatus.Synchronised, core.Status);
        Assert.Equal(LeapIndicator.NoWarning, update.State.Leap);
        Assert.Equal(2, update.State.Stratum);
        Assert.Equal(update.Selection.SystemPeer!.ReferenceId, update.State.ReferenceId);
        Assert.Equal(400e-6, update.State.RootDelay, 9);         // upstream root delay 0 + our delay
        Assert.InRange(update.State.RootDispersion, 10e-6, 5e-3); // upstream's 10 µs and ours on top
        Assert.Contains(update.Commands, c => c is ClockCommand.SetFrequency);
        Assert.DoesNotContain(update.Commands, c => c is ClockCommand.Step);
        // 20 µs to slew away over 16 s, frequency still unknown (0): +1.25 ppm.
        Assert.Equal(20e-6 / 16, core.AppliedFrequency, 9);
    }

    [Fact]
    public void TheFirstSourceAlone_DoesNotSetTheClock_UntilAMajorityOrTheStartupWait()
    {
        var (core, peers) = Core();
        core.OnSample(peers[0], Samples.Make(1, 0.4), Samples.At(1));
        Assert.Equal(ClockCoreStatus.Unsynchronised, core.Status);
        Assert.False(core.Servo.Initialised);
        core.OnSample(peers[0], Samples.Make(61, 0.4), Samples.At(61));
        Assert.True(core.Servo.Initialised, "after the start-up wait the only source is used");
    }

    [Fact]
    public void AnOffsetBeyond128ms_IsSteppedOnce()
    {
        var (core, peers) = Core();
        ClockUpdate update = Feed(core, peers, 1, 2.0);
        ClockCommand.Step step = Assert.Single(update.Commands.OfType<ClockCommand.Step>());
        Assert.Equal(2.0, step.Seconds);
        // The clock now reads 2 s later; a sample measured before the step is ignored.
        ClockUpdate late = core.OnSample(peers[0], Samples.Make(1.5, 2.0), Samples.At(3.5));
        Assert.DoesNotContain(late.Commands, c => c is ClockCommand.Step);
        Assert.Equal(0, core.OffsetAt(Samples.At(3.5)), 6);
    }

    [Fact]
    public void ASpike_IsIgnoredUntilItLastsTheStepoutInterval_RFC5905Section11_3()
    {
        var (core, peers) = Core();
        for (int i = 1; i <= 8; i++)
        {
            Feed(core, peers, 16 * i, 0);
        }
        ClockUpdate spike = Feed(core, peers, 16 * 9, 1.0, delay: 250e-6);
        Assert.DoesNotContain(spike.Commands, c => c is ClockCommand.Step);
        bool stepped = false;
        for (int i = 10; i <= 40 && !stepped; i++)
        {
            stepped = Feed(core, peers, 16 * i, 1.0, delay: 200e-6 - i * 1e-6).Commands.Any(c => c is ClockCommand.Step);
            Assert.True(!stepped || (16 * (i - 9)) >= 300, $"stepped after {16 * (i - 9)} s");
        }
        Assert.True(stepped, "a lasting offset is believed after the stepout interval");
    }

    [Fact]
    public void APanicOffset_IsRefusedWhenNotAllowedAtStart()
    {
        var (core, peers) = Core(new ClockCoreOptions { AllowPanicStepAtStart = false });
        ClockUpdate update = Feed(core, peers, 1, 5000);
        Assert.Equal(ClockCoreStatus.Panic, core.Status);
        Assert.DoesNotContain(update.Commands, c => c is ClockCommand.Step);
        Assert.False(update.State.IsSynchronised);
    }

    [Fact]
    public void TheLeapTable_AnnouncesTheLeapAndTellsTheKernelTaiOffset()
    {
        LeapSecondTable table = LeapSecondTable.Parse(File.ReadAllText(Repo.TestData("leap-seconds.list")));
        var core = new ClockCore(new ClockCoreOptions { LeapSeconds = table });
        var peers = new[] { core.AddPeer("a", 1), core.AddPeer("b", 2), core.AddPeer("c", 3) };
        long lastDay = new DateTimeOffset(2016, 12, 31, 12, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000;
        ClockUpdate update = null!;
        foreach (Peer p in peers)
        {
            update = core.OnSample(p, new Sample(lastDay, 0, 300e-6, 1e-6, 0, 10e-6, 1, LeapIndicator.NoWarning, 0x47505300), lastDay);
        }
        Assert.Equal(LeapIndicator.InsertSecond, update.State.Leap);
        ClockCommand.SetStatus status = update.Commands.OfType<ClockCommand.SetStatus>().Single();
        Assert.Equal(LeapIndicator.InsertSecond, status.Leap);
        Assert.Equal(36, status.TaiOffset);
    }

    [Fact]
    public void WithoutATable_TheMajorityOfSurvivorsDecidesTheLeap()
    {
        var (core, peers) = Core();
        ClockUpdate update = null!;
        for (int i = 0; i < peers.Length; i++)
        {
            LeapIndicator leap = i < 2 ? LeapIndicator.InsertSecond : LeapIndicator.NoWarning;
            update = core.OnSample(peers[i], Samples.Make(1, 0, leap: leap), Samples.At(1));
        }
        Assert.Equal(LeapIndicator.InsertSecond, update.State.Leap);
    }

    [Fact]
    public void WithNothingBetter_ServesTheLocalClockAtTheConfiguredStratum()
    {
        var (core, _) = Core(new ClockCoreOptions { LocalStratum = 10 });
        ClockUpdate update = core.Tick(Samples.At(0));
        Assert.Equal(ClockCoreStatus.Local, core.Status);
        Assert.Equal(10, update.State.Stratum);
        Assert.Equal(LeapIndicator.NoWarning, update.State.Leap);
    }

    [Fact]
    public void SourcesLost_Holdover_ThenUnsynchronisedOnceTheBudgetIsSpent()
    {
        var (core, peers) = Core(new ClockCoreOptions { Holdover = TimeSpan.FromHours(1) });
        for (int i = 1; i <= 8; i++)
        {
            Feed(core, peers, 16 * i, 0);
        }
        double synced = core.Tick(Samples.At(16 * 8 + 1)).State.RootDispersion;

        ClockUpdate holdover = core.Tick(Samples.At(16 * 8 + 1800));
        Assert.Equal(ClockCoreStatus.Holdover, core.Status);
        Assert.True(holdover.State.IsSynchronised);
        // Half an hour without a sample: at least PHI × 1800 s = 27 ms more dispersion.
        Assert.True(holdover.State.RootDispersion >= synced + (ServerState.Phi * 1700), $"{holdover.State.RootDispersion}");

        ClockUpdate spent = core.Tick(Samples.At(16 * 8 + 3700));
        Assert.Equal(ClockCoreStatus.Unsynchronised, core.Status);
        Assert.False(spent.State.IsSynchronised);
    }
}
