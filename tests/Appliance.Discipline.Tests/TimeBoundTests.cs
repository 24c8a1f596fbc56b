using Appliance.Discipline;
using Appliance.Protocol.Roughtime;

namespace Appliance.Discipline.Tests;

/// <summary>The Roughtime bootstrap's agreement rule (issue #21): the intersection most servers share.</summary>
public class TimeBoundTests
{
    private const long S = 1_000_000_000;
    private const long T = 1_796_400_000 * S;

    private static RoughtimeSample Around(string name, long midpoint, long radius, long at = 0) => new(name, midpoint - radius, midpoint + radius, at);

    [Fact]
    public void FromReading_WidensByTheRoundTrip_OnTheLateSide()
    {
        RoughtimeSample sample = RoughtimeSample.FromReading("a", 1_796_400_000, 3, sentMonotonic: 10 * S, receivedMonotonic: (10 * S) + 40_000_000);
        Assert.Equal(T - (3 * S), sample.EarliestUnixNanoseconds);
        Assert.Equal(T + (3 * S) + 40_000_000, sample.LatestUnixNanoseconds);
        Assert.Equal((10 * S) + 40_000_000, sample.AtMonotonic);
    }

    [Fact]
    public void ThreeThatAgree_OutvoteOneThatLiesByAnHour()
    {
        RoughtimeSample[] samples =
        [
            Around("a", T, 5 * S),
            Around("b", T + (2 * S), 5 * S),
            Around("liar", T + (3600 * S), 5 * S),
            Around("c", T - (1 * S), 3 * S),
        ];
        TimeBound bound = Assert.NotNull(TimeBound.Agree(samples, quorum: 3, monotonic: 0));
        Assert.Equal(3, bound.Agreeing);
        Assert.Equal(4, bound.Answered);
        // The overlap of a [T−5, T+5], b [T−3, T+7] and c [T−4, T+2]: [T−3, T+2].
        Assert.Equal(T - (3 * S), bound.EarliestUnixNanoseconds);
        Assert.Equal(T + (2 * S), bound.LatestUnixNanoseconds);
        Assert.False(bound.Contains(T + (3600 * S), 0));
        Assert.True(bound.Contains(T, 0));
    }

    [Fact]
    public void ServersThatDoNotOverlap_ProveNothingTogether()
    {
        RoughtimeSample[] samples = [Around("a", T, 1 * S), Around("b", T + (10 * S), 1 * S)];
        Assert.Null(TimeBound.Agree(samples, quorum: 2, monotonic: 0));
        // Even with a quorum of one: one against one is a tie, and neither is believed.
        Assert.Null(TimeBound.Agree(samples, quorum: 1, monotonic: 0));
        Assert.Equal(2, TimeBound.Agree([.. samples, Around("c", T, 2 * S)], quorum: 1, monotonic: 0)!.Value.Agreeing);
        Assert.Null(TimeBound.Agree([], quorum: 1, monotonic: 0));
        // Two pairs that each agree, on different times: neither can be believed.
        Assert.Null(TimeBound.Agree([Around("a", T, 1 * S), Around("b", T, 1 * S), Around("c", T + (60 * S), 1 * S), Around("d", T + (60 * S), 1 * S)],
            quorum: 2, monotonic: 0));
        // Intervals that only touch share that instant.
        Assert.NotNull(TimeBound.Agree([Around("a", T, 1 * S), Around("b", T + (2 * S), 1 * S)], quorum: 2, monotonic: 0));
    }

    [Fact]
    public void ABound_MovesWithTheMonotonicClock_WidenedByTheMostAClockDrifts()
    {
        // A sample taken 100 s (monotonic) before the agreement is carried forward 100 s.
        TimeBound bound = TimeBound.Agree([Around("a", T, 2 * S, at: 0)], quorum: 1, monotonic: 100 * S)!.Value;
        long drift100 = (long)(100 * S * 500e-6);
        Assert.Equal(T + (98 * S) - drift100, bound.EarliestUnixNanoseconds);
        Assert.Equal(T + (102 * S) + drift100, bound.LatestUnixNanoseconds);
        // An hour later, at most 1.8 s wider on each side.
        (long earliest, long latest) = bound.At((100 + 3600) * S);
        Assert.Equal(T + (3698 * S) - drift100 - 1_800_000_000, earliest);
        Assert.Equal(T + (3702 * S) + drift100 + 1_800_000_000, latest);
        Assert.Equal(earliest, bound.Clamp(0, (100 + 3600) * S));   // a clock in 1970 is moved into it
        Assert.Equal(T + (3700 * S), bound.Clamp(T + (3700 * S), (100 + 3600) * S)); // one within it is kept
    }
}
