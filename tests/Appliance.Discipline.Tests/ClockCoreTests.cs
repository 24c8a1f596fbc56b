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
    public void RemovePeer_LeavesTheOthersFilters_AndANewPeerGetsAFreshId()
    {
        var (core, peers) = Core();
        Feed(core, peers, 1, 20e-6, delay: 400e-6);
        Peer system = core.Selection.SystemPeer!;
        int kept = peers[0] == system ? 1 : 0;
        int samplesBefore = peers[kept].Filter.Count;

        Assert.True(core.RemovePeer(system));
        Assert.False(core.RemovePeer(system));
        ClockUpdate update = core.Tick(Samples.At(2));
        Assert.DoesNotContain(system, core.Peers);
        Assert.DoesNotContain(system, update.Selection.Survivors);
        Assert.NotEqual(system, update.Selection.SystemPeer);
        Assert.Equal(samplesBefore, peers[kept].Filter.Count);
        Assert.Equal(ClockCoreStatus.Synchronised, core.Status);

        Peer added = core.AddPeer("new", 0xC0000299);
        Assert.DoesNotContain(core.Peers, p => p != added && p.Id == added.Id);
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

    private const uint Gps = 0x47505300;

    /// <summary>A serial GPS report as GpsdSource gives it: stratum 0, refid GPS, a 200 ms window.</summary>
    private static Sample Serial(double at, double offset) => new(Samples.At(at), offset, 0.2, 1e-3, 0, 1e-3, 0, LeapIndicator.NoWarning, Gps);

    private static void AssertNamesItsReference(ServerState state, uint referenceId, byte stratum, string when)
    {
        Assert.True(state.IsSynchronised, $"{when}: not synchronised");
        Assert.True(state.ReferenceId == referenceId, $"{when}: reference id 0x{state.ReferenceId:X8}, not 0x{referenceId:X8}");
        Assert.True(state.Stratum == stratum, $"{when}: stratum {state.Stratum}, not {stratum}");
    }

    [Fact]
    public void AFirstSampleThatSteps_LeavesEveryStateNamingTheReferenceClock_UntilItsNextSample()
    {
        // gpsd as the only source, its first serial time 0.3 s from the clock: beyond the step
        // threshold, so the clock is stepped and every filter cleared. The ticks that follow, before
        // the next sample, must still say whom the time comes from (RFC 5905 §7.3), at stratum 1.
        var core = new ClockCore(new ClockCoreOptions { StartupWait = TimeSpan.Zero });
        Peer gpsd = core.AddPeer("127.0.0.1:2947", Gps);
        gpsd.PollSeconds = 1;
        ClockUpdate first = core.OnSample(gpsd, Serial(1, 0.3), Samples.At(1));
        Assert.Single(first.Commands.OfType<ClockCommand.Step>());
        AssertNamesItsReference(first.State, Gps, 1, "the step");
        for (int t = 2; t <= 4; t++)
        {
            ClockUpdate tick = core.Tick(Samples.At(t + 0.3));
            AssertNamesItsReference(tick.State, Gps, 1, $"tick {t}");
            // The path to the primary reference is not forgotten either: its window and dispersion.
            Assert.Equal(0.2, tick.State.RootDelay, 9);
            Assert.True(tick.State.RootDispersion >= 1e-3, $"tick {t}: root dispersion {tick.State.RootDispersion}");
        }
        AssertNamesItsReference(core.OnSample(gpsd, Serial(5.3, 0), Samples.At(5.3)).State, Gps, 1, "the next sample");
    }

    [Fact]
    public void AStepUnderStratum1Upstreams_KeepsStratum2AndTheSystemPeersReference_RFC5905Section11_2_3()
    {
        var (core, peers) = Core();
        ClockUpdate step = Feed(core, peers, 1, 2.0);
        Assert.Single(step.Commands.OfType<ClockCommand.Step>());
        uint named = step.State.ReferenceId;
        Assert.Contains(named, peers.Select(p => p.ReferenceId));
        ClockUpdate tick = core.Tick(Samples.At(3.5));
        // Not "stratum 1, refid 0": a step clears the filters, not what the system peer said.
        AssertNamesItsReference(tick.State, named, 2, "after the step");
        Assert.Equal(300e-6, tick.State.RootDelay, 9);
    }

    [Fact]
    public void ASystemPeerThatDoesNotNameItsReference_NeverMakesTheStateSynchronised()
    {
        var core = new ClockCore(new ClockCoreOptions { StartupWait = TimeSpan.Zero });
        Peer unnamed = core.AddPeer("refclock", 0);
        unnamed.PollSeconds = 1;
        for (int t = 1; t <= 5; t++)
        {
            ClockUpdate update = core.OnSample(unnamed, Serial(t, 0.01), Samples.At(t));
            Assert.False(update.State.IsSynchronised, $"sample {t}: stratum {update.State.Stratum}, refid 0x{update.State.ReferenceId:X8}");
            Assert.Contains(update.Commands, c => c is ClockCommand.SetStatus { Synchronised: false });
        }
        Assert.Equal(ClockCoreStatus.Unsynchronised, core.Status);

        // Once the driver names it, the same source makes the server stratum 1 under that name.
        unnamed.ReferenceId = Gps;
        AssertNamesItsReference(core.OnSample(unnamed, Serial(6, 0.01), Samples.At(6)).State, Gps, 1, "named");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void EverySynchronisedState_NamesAReferenceThatIsOneOfItsPeers(int seed)
    {
        // GPS (stratum 0) and two stratum-1 upstreams, samples and ticks in random order, some
        // offsets far enough to step, sources falling silent and coming back.
        var random = new Random(seed);
        var core = new ClockCore(new ClockCoreOptions { StartupWait = TimeSpan.Zero, StepOut = TimeSpan.FromSeconds(20) });
        Peer gps = core.AddPeer("gps", Gps);
        gps.PollSeconds = 1;
        Peer[] upstreams = [core.AddPeer("a", 0xC0000201), core.AddPeer("b", 0xC0000202)];
        foreach (Peer p in upstreams)
        {
            p.PollSeconds = 4;
        }
        double clockOffset = 0.4; // true − local, at start
        for (double t = 1; t < 600; t += 0.25 + random.NextDouble())
        {
            if (random.NextDouble() < 0.01)
            {
                clockOffset += random.NextDouble() < 0.5 ? 0.5 : -0.5; // a jump the core must step for
            }
            ClockUpdate update;
            int pick = random.Next(6);
            if (pick == 0 && (int)(t / 60) % 3 != 2)
            {
                update = core.OnSample(gps, Serial(t, clockOffset + ((random.NextDouble() - 0.5) * 2e-3)), Samples.At(t));
            }
            else if (pick == 1)
            {
                Peer p = upstreams[random.Next(upstreams.Length)];
                update = core.OnSample(p, Samples.Make(t, clockOffset + ((random.NextDouble() - 0.5) * 1e-4)), Samples.At(t));
            }
            else
            {
                update = core.Tick(Samples.At(t));
            }
            foreach (ClockCommand.Step step in update.Commands.OfType<ClockCommand.Step>())
            {
                clockOffset -= step.Seconds;
                t += step.Seconds; // the local clock's readings jump with it
            }
            if (update.State.IsSynchronised)
            {
                uint id = update.State.ReferenceId;
                Assert.True(id == Gps ? update.State.Stratum == 1 : upstreams.Any(p => p.ReferenceId == id) && update.State.Stratum == 2,
                    $"seed {seed}, t = {t:F2}: stratum {update.State.Stratum}, refid 0x{id:X8}, status {core.Status}");
            }
        }
    }
}
