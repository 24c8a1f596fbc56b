using Appliance.Protocol;

namespace Appliance.Discipline.Tests;

public class VirtualClockTests
{
    /// <summary>A virtual clock over a system clock the test sets by hand.</summary>
    private sealed class Fixture
    {
        public long System { get; set; } = Samples.At(0);

        public VirtualClock Clock { get; }

        /// <summary>CLOCK_MONOTONIC; a test that moves <see cref="System"/> like a host that steps moves this by the SI seconds.</summary>
        public long Monotonic { get; set; }

        public Fixture() => Clock = new VirtualClock(() => System, () => Monotonic);

        /// <summary>Both clocks forward by <paramref name="nanoseconds"/>, as when no one steps.</summary>
        public void Run(long nanoseconds)
        {
            System += nanoseconds;
            Monotonic += nanoseconds;
        }

        public long ServedAt(double seconds)
        {
            System = Samples.At(seconds);
            return Clock.Now();
        }
    }

    [Fact]
    public void AStep_MovesServedTime()
    {
        var f = new Fixture();
        f.Clock.Apply([new ClockCommand.Step(2.5)]);
        Assert.Equal(Samples.At(10) + 2_500_000_000, f.ServedAt(10));
        Assert.Equal(Samples.At(10) + 2_500_000_000, f.Clock.Transform.Apply(Samples.At(10)));
    }

    [Fact]
    public void AFrequencyChange_KeepsServedTimeContinuous_AndChangesItsRate()
    {
        var f = new Fixture();
        f.Clock.Apply([new ClockCommand.SetFrequency(10e-6)]);
        Assert.Equal(Samples.At(100) + 1_000_000, f.ServedAt(100)); // +10 ppm × 100 s
        f.Clock.Apply([new ClockCommand.SetFrequency(-10e-6)]);
        Assert.Equal(Samples.At(100) + 1_000_000, f.ServedAt(100)); // no jump at the change
        Assert.Equal(Samples.At(200), f.ServedAt(200));
    }

    private const long Second = 1_000_000_000;

    /// <summary>2017-01-01 00:00:00 UTC.</summary>
    private const long Midnight = 1_483_228_800 * Second;

    private static ClockCommand.SetStatus Announce(LeapIndicator leap, bool synchronised = true) => new(leap, synchronised, 1e-3, 1e-4, 36);

    [Fact]
    public void AnAnnouncedInsert_RepeatsTheLastSecondOfTheDay_ThenFoldsIntoTheOffset()
    {
        var f = new Fixture { System = Midnight - (3600 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(Midnight - (3600 * Second), f.Clock.Now()); // nothing moves before the leap
        f.System = Midnight - 1;
        Assert.Equal(Midnight - 1, f.Clock.Now());
        f.System = Midnight;
        Assert.Equal(Midnight - Second, f.Clock.Now()); // 23:59:59 once more
        f.System = Midnight + (Second / 2);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]); // still announced during the repeat: no second leap
        f.System = Midnight + (2 * Second);
        f.Clock.Apply([Announce(LeapIndicator.NoWarning)]);
        Assert.Equal(Midnight + Second, f.Clock.Now());
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
        Assert.Equal(-Second, f.Clock.Transform.OffsetNanoseconds);
        f.System = Midnight + (86_400 * Second) + Second;
        Assert.Equal(Midnight + (86_400 * Second), f.Clock.Now()); // and the next midnight is a plain one
    }

    [Fact]
    public void AnAnnouncementThatGoesOnAfterTheLeap_ArmsNothing_UntilWithdrawn()
    {
        // A stale upstream sample can announce for a while after the leap: like the kernel in
        // TIME_WAIT, the clock does not insert another second the next midnight.
        var f = new Fixture { System = Midnight - Second };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.System = Midnight + (5 * Second);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
        f.System = Midnight + (86_400 * Second) + (5 * Second);
        Assert.Equal(Midnight + (86_400 * Second) + (4 * Second), f.Clock.Now());
        f.Clock.Apply([Announce(LeapIndicator.NoWarning), Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(Midnight + (2 * 86_400 * Second), f.Clock.Transform.LeapUnixNanoseconds); // re-armed once withdrawn
    }

    [Fact]
    public void AnAnnouncedDelete_SkipsTheLastSecondOfTheDay()
    {
        var f = new Fixture { System = Midnight - (7200 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.DeleteSecond)]);
        f.System = Midnight - Second - 1;
        Assert.Equal(Midnight - Second - 1, f.Clock.Now());
        f.System = Midnight - Second;
        Assert.Equal(Midnight, f.Clock.Now());
    }

    [Fact]
    public void AFrequencyChange_KeepsAPendingLeap_AndOnePassedStaysPassed()
    {
        var f = new Fixture { System = Midnight - (60 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond), new ClockCommand.SetFrequency(1e-6)]);
        Assert.Equal(Midnight, f.Clock.Transform.LeapUnixNanoseconds);
        f.System = Midnight + (10 * Second);
        long before = f.Clock.Now();
        f.Clock.Apply([new ClockCommand.SetFrequency(2e-6)]);
        Assert.Equal(before, f.Clock.Now()); // continuous, the leap not applied twice
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
        Assert.Equal(Midnight + (9 * Second) + 70_000, before, 1000.0); // one second back, +1 ppm × 70 s
    }

    [Fact]
    public void AWithdrawnAnnouncement_OrAnUnsynchronisedClock_InsertsNothing()
    {
        var f = new Fixture { System = Midnight - (3600 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Clock.Apply([Announce(LeapIndicator.NoWarning)]);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond, synchronised: false)]);
        f.System = Midnight + Second;
        Assert.Equal(Midnight + Second, f.Clock.Now());
    }

    [Fact]
    public void AHostThatInsertsTheLeapItself_IsLeftToIt_TheSecondRepeatedOnce()
    {
        // A host whose own daemon armed STA_INS: its system clock repeats 23:59:59. The virtual
        // clock sees the system clock fall behind the monotonic one and takes nothing off itself.
        var f = new Fixture { System = Midnight - (10 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Run(9 * Second + (Second / 2)); // 23:59:59.5
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Run(Second / 2);
        f.System -= Second; // the host's kernel repeats the second
        f.Run(Second / 2); // the clock service's extra tick, half a second past midnight
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
        Assert.Equal(Midnight - (Second / 2), f.Clock.Now());
        f.Run(Second);
        Assert.Equal(Midnight + (Second / 2), f.Clock.Now()); // not a third pass
        f.Run(86_400 * Second);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds); // still announced: nothing armed (TIME_WAIT)
    }

    [Fact]
    public void AStepInsideTheRepeatedSecond_FoldsTheLeapFirst()
    {
        var f = new Fixture { System = Midnight - (5 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Run(5 * Second + (Second / 4)); // second pass of 23:59:59, .25
        Assert.Equal(Midnight - (3 * Second / 4), f.Clock.Now());
        f.Clock.Apply([new ClockCommand.Step(-0.5)]);
        Assert.Equal(Midnight - (5 * Second / 4), f.Clock.Now());
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
        f.Run(2 * Second);
        Assert.Equal(Midnight + (3 * Second / 4), f.Clock.Now()); // no second repeat after the step
    }

    [Fact]
    public void AStepPastAPendingLeap_TakesTheLeapWithIt()
    {
        // The core measured 19 s against sources that have had the leap: the step sets UTC outright.
        var f = new Fixture { System = Midnight - (10 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Clock.Apply([new ClockCommand.Step(19)]);
        Assert.Equal(Midnight + (9 * Second), f.Clock.Now());
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
    }

    [Fact]
    public void AChangeOfKind_ReArms_AndLosingSyncInTheRepeatedSecond_DoesNotRepeatItAgain()
    {
        var f = new Fixture { System = Midnight - (3600 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Clock.Apply([Announce(LeapIndicator.DeleteSecond)]);
        Assert.True(f.Clock.Transform.LeapDelete);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.False(f.Clock.Transform.LeapDelete);
        f.Run(3600 * Second + (Second / 2)); // second pass, .5
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond, synchronised: false)]);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.Run(2 * Second);
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(Midnight + (3 * Second / 2), f.Clock.Now());
        Assert.Equal(0, f.Clock.Transform.LeapUnixNanoseconds);
    }

    [Fact]
    public void AHostStepHoursBeforeTheLeap_IsJustAStep_AndTheLeapStillComes()
    {
        var f = new Fixture { System = Midnight - (3600 * Second) };
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        f.System -= 7 * Second / 10; // the host's daemon steps its clock back 0.7 s
        f.Clock.Apply([Announce(LeapIndicator.InsertSecond)]);
        Assert.Equal(Midnight, f.Clock.Transform.LeapUnixNanoseconds);
        f.System = Midnight + (Second / 4);
        f.Monotonic = f.System - (Midnight - (3600 * Second)) + (7 * Second / 10);
        Assert.Equal(Midnight - (3 * Second / 4), f.Clock.Now()); // the second repeated by the appliance itself
    }
}
