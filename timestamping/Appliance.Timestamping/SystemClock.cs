using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Reads the kernel's clocks with nanosecond resolution (clock_gettime(2)).</summary>
public static class SystemClock
{
    /// <summary>CLOCK_REALTIME in nanoseconds since the Unix epoch.</summary>
    public static long RealtimeNanoseconds()
    {
        Libc.ClockGetTime(Libc.ClockRealtime, out Timespec ts);
        return ts.ToNanoseconds();
    }

    /// <summary>CLOCK_MONOTONIC in nanoseconds: for intervals, never steps.</summary>
    public static long MonotonicNanoseconds()
    {
        Libc.ClockGetTime(Libc.ClockMonotonic, out Timespec ts);
        return ts.ToNanoseconds();
    }

    /// <summary>
    /// The clock's precision as log2 seconds (RFC 5905 §7.3): the smallest step between two distinct
    /// readings, which covers both the resolution and the time it takes to read the clock.
    /// </summary>
    public static sbyte MeasurePrecision()
    {
        long best = long.MaxValue;
        for (int i = 0; i < 1000; i++)
        {
            long a = RealtimeNanoseconds();
            long b = RealtimeNanoseconds();
            while (b == a)
            {
                b = RealtimeNanoseconds();
            }
            best = Math.Min(best, b - a);
        }
        return PrecisionFromNanoseconds(best);
    }

    /// <summary>ceil(log2(step in seconds)), clamped to the range NTP can carry.</summary>
    public static sbyte PrecisionFromNanoseconds(long stepNanoseconds)
    {
        double log2 = Math.Ceiling(Math.Log2(Math.Max(1, stepNanoseconds) / 1e9));
        return (sbyte)Math.Clamp(log2, -32, 0);
    }
}
