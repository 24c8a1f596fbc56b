using Appliance.Protocol;
using Appliance.Testing;

namespace Appliance.Discipline.Tests;

public class SmearScheduleTests
{
    private const long Second = 1_000_000_000;

    /// <summary>2017-01-01 00:00:00 UTC, when TAI − UTC became 37 s (in tests/testdata/leap-seconds.list).</summary>
    private const long Leap = 1_483_228_800 * Second;

    private static readonly ServerState s_synchronised = new() { Stratum = 2, Leap = LeapIndicator.NoWarning, ReferenceId = 0x7F000001 };

    private static LeapSecondTable Table() =>
        LeapSecondTable.Parse(File.ReadAllText(Repo.TestData("leap-seconds.list")));

    /// <summary>Served time <paramref name="served"/>, with served − monotonic as a clock that has not stepped yet.</summary>
    private static SmearReading At(long served, long stepped = 0) => new(served, 5 * Second - stepped);

    [Fact]
    public void FromTheTable_TheWindowIsNoonToNoon_AndARestartInsideItSmearsOn()
    {
        var schedule = new SmearSchedule(Table());
        Assert.Null(schedule.Update(s_synchronised, At(Leap - (12 * 3600 * Second) - 1)));
        LeapSmear? smear = schedule.Update(s_synchronised, At(Leap - (12 * 3600 * Second)));
        Assert.NotNull(smear);
        Assert.Equal(Leap, smear.LeapUnixNanoseconds);
        Assert.True(smear.Insert);
        // A fresh schedule (a restart) six hours after the leap: still smearing, from the table.
        LeapSmear? restarted = new SmearSchedule(Table()).Update(s_synchronised, At(Leap + (6 * 3600 * Second), Second));
        Assert.Equal(Leap, restarted?.LeapUnixNanoseconds);
        Assert.True(restarted!.StepSeen); // a clock set after midnight has had the leap
        Assert.Null(new SmearSchedule(Table()).Update(s_synchronised, At(Leap + (12 * 3600 * Second), Second)));
    }

    [Fact]
    public void WithoutATable_TheAnnouncementSetsTheLeapAtTheNextMidnight_RememberedToTheEnd()
    {
        var schedule = new SmearSchedule(null);
        ServerState announcing = s_synchronised with { Leap = LeapIndicator.InsertSecond };
        Assert.Null(schedule.Update(s_synchronised, At(Leap - (20 * 3600 * Second))));
        Assert.Equal(Leap, schedule.Update(announcing, At(Leap - (20 * 3600 * Second)))?.LeapUnixNanoseconds);
        // After the leap the announcement ends; a stale sample that still announces names no new day.
        Assert.Equal(Leap, schedule.Update(s_synchronised, At(Leap + Second, Second))?.LeapUnixNanoseconds);
        Assert.Equal(Leap, schedule.Update(announcing, At(Leap + (60 * Second), Second))?.LeapUnixNanoseconds);
        // Still announced when the window ends (no withdrawal since the leap): nothing for the next midnight.
        Assert.Null(schedule.Update(announcing, At(Leap + (12 * 3600 * Second), Second)));
        Assert.Null(schedule.Update(announcing, At(Leap + (13 * 3600 * Second), Second)));
        schedule.Update(s_synchronised, At(Leap + (14 * 3600 * Second), Second));
        Assert.Equal(Leap + (86_400 * Second), schedule.Update(announcing, At(Leap + (15 * 3600 * Second), Second))?.LeapUnixNanoseconds);
    }

    [Fact]
    public void AnAnnouncementWithdrawnBeforeTheLeap_EndsTheSmear_ButLosingSyncDoesNot()
    {
        var schedule = new SmearSchedule(null);
        ServerState announcing = s_synchronised with { Leap = LeapIndicator.DeleteSecond };
        Assert.False(schedule.Update(announcing, At(Leap - (3 * 3600 * Second)))!.Insert);
        Assert.NotNull(schedule.Update(ServerState.Unsynchronised(-20), At(Leap - (2 * 3600 * Second))));
        Assert.Null(schedule.Update(s_synchronised, At(Leap - (3600 * Second))));
    }

    [Fact]
    public void TheAnchorFollowsTheClockBeforeTheLeap_AndTheStepIsLatched()
    {
        var schedule = new SmearSchedule(Table());
        schedule.Update(s_synchronised, new SmearReading(Leap - (10 * Second), 7 * Second));
        Assert.Equal(7 * Second + 300, schedule.Update(s_synchronised, new SmearReading(Leap - (2 * Second), (7 * Second) + 300))!.AnchorServedMinusMonotonic);
        // In the first pass nothing has stepped; in the second served − monotonic is a second lower.
        Assert.False(schedule.Update(s_synchronised, new SmearReading(Leap - (Second / 2), (7 * Second) + 300))!.StepSeen);
        LeapSmear latched = schedule.Update(s_synchronised, new SmearReading(Leap - (Second / 2), (6 * Second) + 300))!;
        Assert.True(latched.StepSeen);
        Assert.Equal(7 * Second + 300, latched.AnchorServedMinusMonotonic);
    }

    [Fact]
    public void ADeletedSecond_IsLatchedWhenServedTimeJumpsAhead()
    {
        var schedule = new SmearSchedule(null);
        ServerState announcing = s_synchronised with { Leap = LeapIndicator.DeleteSecond };
        schedule.Update(announcing, new SmearReading(Leap - (3 * Second), 7 * Second));
        Assert.False(schedule.Update(announcing, new SmearReading(Leap - Second - 1, 7 * Second))!.StepSeen);
        Assert.True(schedule.Update(announcing, new SmearReading(Leap + (Second / 10), 8 * Second))!.StepSeen);
    }
}
