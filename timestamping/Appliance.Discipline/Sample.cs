using Appliance.Protocol;
using Appliance.Protocol.Client;

namespace Appliance.Discipline;

/// <summary>
/// One measurement of a source against the local clock (RFC 5905 §8): the offset θ = true − local,
/// the round-trip delay δ, the measurement's own dispersion ε, and what the source said about its
/// own distance from the primary reference. <see cref="LocalTime"/> is the local clock (nanoseconds
/// since the Unix epoch) at the middle of the exchange; <see cref="Steering"/> is what the clock core
/// had slewed and stepped the clock by at that moment (it fills it in), so Offset + Steering is the
/// offset of the free-running oscillator.
/// </summary>
public readonly record struct Sample(
    long LocalTime,
    double Offset,
    double Delay,
    double Dispersion,
    double RootDelay,
    double RootDispersion,
    byte Stratum,
    LeapIndicator Leap,
    uint ReferenceId,
    double Steering = 0)
{
    /// <summary>
    /// A source's measurement as a sample of the steered clock: its T1 and T4 were read from the system
    /// clock, and <paramref name="toSteered"/> maps them (identity when the system clock is the one steered).
    /// </summary>
    public static Sample FromMeasurement(in Measurement measurement, TimeTransform toSteered, double precisionSeconds) =>
        FromTimestamps(toSteered.Apply(measurement.T1), measurement.T2, measurement.T3, toSteered.Apply(measurement.T4), precisionSeconds, measurement.Response);

    /// <summary>Builds a sample from the four timestamps of an exchange (RFC 5905 §8), all in Unix nanoseconds.</summary>
    public static Sample FromTimestamps(long t1, long t2, long t3, long t4, double precisionSeconds, NtpHeader response)
    {
        double offset = ((t2 - t1) + (double)(t3 - t4)) / 2e9;
        double delay = Math.Max(((t4 - t1) - (double)(t3 - t2)) / 1e9, 0);
        // ε = 2^precision (both ends) + PHI × (t4 − t1) (RFC 5905 §8).
        double dispersion = (2 * precisionSeconds) + (Constants.Phi * (t4 - t1) / 1e9);
        return new Sample(t1 + ((t4 - t1) / 2), offset, delay, dispersion, response.RootDelay.ToSeconds(),
            response.RootDispersion.ToSeconds(), response.Stratum, response.Leap, response.ReferenceId);
    }
}

/// <summary>RFC 5905 §7.2 parameters and the servo's limits.</summary>
public static class Constants
{
    /// <summary>Frequency tolerance, 15 ppm.</summary>
    public const double Phi = ServerState.Phi;

    /// <summary>Maximum root distance a source may have to be selected (RFC 5905 MAXDIST), seconds.</summary>
    public const double MaxDistance = 1.5;

    /// <summary>Minimum dispersion increment (RFC 5905 MINDISP), seconds.</summary>
    public const double MinDispersion = 0.005;

    /// <summary>Clock filter stages (RFC 5905 NSTAGE).</summary>
    public const int FilterStages = 8;

    /// <summary>Minimum survivors of clustering (RFC 5905 NMIN / minclock).</summary>
    public const int MinClock = 3;

    /// <summary>Most the servo will ever correct the frequency by: 500 ppm, the kernel's limit.</summary>
    public const double MaxFrequency = 500e-6;
}
