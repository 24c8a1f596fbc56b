using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

/// <summary>
/// The smear against an independent model: a continuous clock c (SI seconds, as CLOCK_MONOTONIC runs)
/// from which UTC is derived the way the main listeners serve it — the inserted second repeated, or a
/// deleted one skipped — and the smear written in c: start + (c − start) × 86400 / (86400 ± 1) over
/// the window, which ends when UTC reaches noon after the leap.
/// </summary>
public class LeapSmearTests
{
    private const long Second = 1_000_000_000;

    /// <summary>2016-12-31 → 2017-01-01 00:00:00 UTC, the last inserted leap second.</summary>
    private const long Leap = 1_483_228_800 * Second;

    /// <summary>CLOCK_MONOTONIC is the continuous clock minus this (any constant).</summary>
    private const long MonotonicOrigin = 1_400_000_000 * Second;

    private static long Utc(long c, bool insert) => insert
        ? c >= Leap ? c - Second : c          // 23:59:59 served twice
        : c >= Leap - Second ? c + Second : c; // 23:59:59 skipped

    private static SmearReading Reading(long c, bool insert)
    {
        long served = Utc(c, insert);
        return new SmearReading(served, served - (c - MonotonicOrigin));
    }

    private static long Model(long c, bool insert)
    {
        long start = Leap - (12 * 3600 * Second);
        long endInC = Leap + (12 * 3600 * Second) + (insert ? Second : -Second);
        if (c < start || c >= endInC)
        {
            return Utc(c, insert);
        }
        Int128 elapsed = c - start;
        return start + (long)(elapsed * 86_400 / (insert ? 86_401 : 86_399));
    }

    /// <summary>The smear as the schedule publishes it: anchored a second and a half before the leap.</summary>
    private static LeapSmear Smear(bool insert) =>
        new(Leap, insert, Reading(Leap - (3 * Second / 2), insert).ServedMinusMonotonic, StepSeen: false);

    public static TheoryData<bool> Kinds => new() { true, false };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SmearedTime_FollowsTheCurve_Within1Microsecond(bool insert)
    {
        LeapSmear smear = Smear(insert);
        var instants = new List<long>();
        for (long c = Leap - (13 * 3600 * Second); c <= Leap + (13 * 3600 * Second); c += 997 * Second)
        {
            instants.Add(c);
        }
        // Dense across the leap and the window's edges: every 10 ms.
        foreach (long centre in new[] { Leap - Second, smear.StartUnixNanoseconds, smear.EndUnixNanoseconds + (insert ? Second : -Second) })
        {
            for (long c = centre - (3 * Second); c <= centre + (3 * Second); c += 10_000_000)
            {
                instants.Add(c);
            }
        }
        foreach (long c in instants)
        {
            SmearReading now = Reading(c, insert);
            long got = smear.Apply(now.Served, now);
            long want = Model(c, insert);
            Assert.True(Math.Abs(got - want) <= 1000, $"c = leap {(c - Leap) / 1e9:+0.000;-0.000} s: smeared {got}, model {want}, {(got - want) / 1e3} µs off");
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SmearedTime_NeverStepsAndNeverRunsBackwards(bool insert)
    {
        LeapSmear smear = Smear(insert);
        long previous = long.MinValue;
        for (long c = Leap - (5 * Second); c <= Leap + (5 * Second); c += 1_000_000)
        {
            SmearReading now = Reading(c, insert);
            long smeared = smear.Apply(now.Served, now);
            Assert.True(smeared > previous, $"at leap {(c - Leap) / 1e9:+0.000;-0.000} s the smeared time ran backwards");
            // Each millisecond of c is 1 ms × 86400/(86400 ± 1) smeared: no step anywhere.
            Assert.True(previous == long.MinValue || Math.Abs(smeared - previous - 1_000_000) <= 13, $"a step at leap {(c - Leap) / 1e9:+0.000} s");
            previous = smeared;
        }
    }

    [Fact]
    public void AtTheLeap_TheSmearIsHalfASecond_AndAtTheEndsNothing()
    {
        LeapSmear smear = Smear(insert: true);
        // Half the second is smeared by the leap: half a second behind UTC just before the step, and
        // (UTC 23:59:59.000 again, its second pass) half a second ahead just after it.
        Assert.Equal(-0.5, smear.OffsetSecondsAt(Reading(Leap - 1, insert: true)), 4);
        Assert.Equal(0.5, smear.OffsetSecondsAt(Reading(Leap, insert: true)), 4);
        Assert.Equal(0, smear.OffsetSecondsAt(Reading(smear.StartUnixNanoseconds, insert: true)), 9);
        Assert.Equal(0, smear.OffsetSecondsAt(Reading(smear.EndUnixNanoseconds + Second, insert: true)), 9);
        // An hour before noon after the leap: 1 h of the 24 h still to go.
        double offset = smear.OffsetSecondsAt(Reading(smear.EndUnixNanoseconds + Second - (3600 * Second), insert: true));
        Assert.Equal(3600.0 / 86401, offset, 6);
    }

    [Fact]
    public void ARequestStampedBeforeTheRepeat_AndAnsweredAfterIt_IsTheFirstPass()
    {
        LeapSmear smear = Smear(insert: true);
        foreach ((long received, long answered) in new[] { (Leap - 2_000_000, Leap + 3_000_000), (Leap - 400_000_000, Leap + 500_000_000), (Leap - 900_000_000, Leap + 50_000_000) })
        {
            long got = smear.Apply(Utc(received, insert: true), Reading(answered, insert: true));
            Assert.True(Math.Abs(got - Model(received, insert: true)) <= 1000, $"received at leap {(received - Leap) / 1e9} s, answered at {(answered - Leap) / 1e9} s: {(got - Model(received, true)) / 1e6} ms off");
        }
        // Received in the second pass and answered a little later: the second pass.
        long late = smear.Apply(Utc(Leap + 100_000_000, insert: true), Reading(Leap + 104_000_000, insert: true));
        Assert.True(Math.Abs(late - Model(Leap + 100_000_000, insert: true)) <= 1000);
    }

    [Fact]
    public void TheLatch_KeepsTheSecondPass_WhenTheAnchorWasTakenAfterIt()
    {
        // A schedule that anchored after the step (it latched StepSeen when it saw the drop) still
        // tells the second pass: the latch alone says so.
        SmearReading during = Reading(Leap + (Second / 2), insert: true);
        var latched = new LeapSmear(Leap, Insert: true, during.ServedMinusMonotonic, StepSeen: true);
        Assert.True(latched.HasStepped(during));
        Assert.Equal(Model(Leap + (Second / 2), true), latched.Apply(during.Served, during), 1000.0);
        var unlatched = latched with { StepSeen = false };
        Assert.False(unlatched.HasStepped(during));
    }

    [Fact]
    public void TheMainListeners_InsertAndDelete_AsTheKernelDoes()
    {
        var insert = new TimeTransform(0, 0, 0) { LeapUnixNanoseconds = Leap };
        Assert.Equal(Leap - 1, insert.Apply(Leap - 1));
        Assert.Equal(Leap - Second, insert.Apply(Leap)); // 23:59:59 again
        Assert.Equal(Leap, insert.Apply(Leap + Second));
        var delete = new TimeTransform(0, 0, 0) { LeapUnixNanoseconds = Leap, LeapDelete = true };
        Assert.Equal(Leap - Second - 1, delete.Apply(Leap - Second - 1));
        Assert.Equal(Leap, delete.Apply(Leap - Second)); // 23:59:59 never shown
        var state = new ServerState { Transform = insert };
        Assert.Equal(Leap - Second, state.ServedTime(Leap, default)); // no smear on a main state
    }

    [Fact]
    public void AMainClockThatDidNotTakeTheLeap_IsFollowedWithoutAStepAtMidnight()
    {
        // The main clock lost sync before midnight and never repeated the second: the smear does not
        // invent the step (it would jump a second); it follows the main clock, a second off with it.
        LeapSmear smear = Smear(insert: true);
        long previous = 0;
        for (long c = Leap - (2 * Second); c <= Leap + (2 * Second); c += 1_000_000)
        {
            var now = new SmearReading(c, c - (c - MonotonicOrigin)); // served = c: no repeat, served − monotonic constant
            long smeared = smear.Apply(c, now);
            Assert.True(previous == 0 || Math.Abs(smeared - previous - 1_000_000) <= 13, $"a step at leap {(c - Leap) / 1e9:+0.000} s");
            previous = smeared;
        }
    }
}
