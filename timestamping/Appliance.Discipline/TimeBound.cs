using Appliance.Protocol.Roughtime;

namespace Appliance.Discipline;

/// <summary>
/// Where "now" lies according to the Roughtime servers that agree (issue #21): the intersection of
/// their intervals, carried forward on the monotonic clock and widened by the most a clock may drift
/// meanwhile (500 ppm, the kernel's MAXFREQ).
/// </summary>
/// <param name="Agreeing">How many servers' intervals share it.</param>
/// <param name="Answered">How many servers gave a verified answer.</param>
public readonly record struct TimeBound(long EarliestUnixNanoseconds, long LatestUnixNanoseconds, long AtMonotonic, int Agreeing, int Answered)
{
    private const double MaxDrift = 500e-6;

    /// <summary>The bound at <paramref name="monotonic"/>.</summary>
    public (long Earliest, long Latest) At(long monotonic) => Carry(EarliestUnixNanoseconds, LatestUnixNanoseconds, AtMonotonic, monotonic);

    /// <summary>An interval read at <paramref name="from"/> (monotonic), as it stands at <paramref name="to"/>.</summary>
    private static (long Earliest, long Latest) Carry(long earliest, long latest, long from, long to)
    {
        long elapsed = to - from;
        long drift = (long)(Math.Abs(elapsed) * MaxDrift);
        return (earliest + elapsed - drift, latest + elapsed + drift);
    }

    /// <summary><paramref name="unixNanoseconds"/>, read at <paramref name="monotonic"/>, moved into the bound if it lies outside.</summary>
    public long Clamp(long unixNanoseconds, long monotonic)
    {
        (long earliest, long latest) = At(monotonic);
        return Math.Clamp(unixNanoseconds, earliest, latest);
    }

    /// <summary>True when <paramref name="unixNanoseconds"/>, read at <paramref name="monotonic"/>, lies within the bound.</summary>
    public bool Contains(long unixNanoseconds, long monotonic)
    {
        (long earliest, long latest) = At(monotonic);
        return unixNanoseconds >= earliest && unixNanoseconds <= latest;
    }

    /// <summary>
    /// The bound the most servers agree on (Marzullo's intersection, as RFC 5905 §11.2.1 selects
    /// truechimers), if at least <paramref name="quorum"/> of them share it and no other group as
    /// large agrees on another time; null otherwise: servers that disagree prove nothing together.
    /// Each sample is first carried to <paramref name="monotonic"/>.
    /// </summary>
    public static TimeBound? Agree(IReadOnlyList<RoughtimeSample> samples, int quorum, long monotonic)
    {
        var edges = new List<(long At, int Step)>(samples.Count * 2);
        foreach (RoughtimeSample sample in samples)
        {
            (long earliest, long latest) = Carry(sample.EarliestUnixNanoseconds, sample.LatestUnixNanoseconds, sample.AtMonotonic, monotonic);
            edges.Add((earliest, +1));
            edges.Add((latest, -1));
        }
        // Closed intervals: at one instant an interval that starts counts before one that ends.
        edges.Sort((a, b) => a.At != b.At ? a.At.CompareTo(b.At) : b.Step.CompareTo(a.Step));
        int count = 0, best = 0;
        long low = 0, high = 0;
        bool tied = false;
        for (int i = 0; i < edges.Count; i++)
        {
            count += edges[i].Step;
            if (edges[i].Step < 0)
            {
                continue;
            }
            if (count > best)
            {
                best = count;
                low = edges[i].At;
                // The overlap lasts until the next interval ends: the next edge, since count fell below best at any end.
                high = edges[i + 1].At;
                tied = false;
            }
            else if (count == best && edges[i].At > high)
            {
                tied = true; // as many servers agree on another time, elsewhere: none of them can be believed
            }
        }
        if (tied)
        {
            return null;
        }
        return best >= Math.Max(1, quorum) ? new TimeBound(low, high, monotonic, best, samples.Count) : null;
    }
}
