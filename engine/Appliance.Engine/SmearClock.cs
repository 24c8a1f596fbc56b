using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>The clock readings a <see cref="LeapSmear"/> needs, taken together.</summary>
public static class SmearClock
{
    /// <summary>Served time now through <paramref name="transform"/>, and that minus CLOCK_MONOTONIC (which no leap moves).</summary>
    public static SmearReading Now(in TimeTransform transform)
    {
        long monotonic = SystemClock.MonotonicNanoseconds();
        long served = transform.Apply(SystemClock.RealtimeNanoseconds());
        return new SmearReading(served, served - monotonic);
    }
}
