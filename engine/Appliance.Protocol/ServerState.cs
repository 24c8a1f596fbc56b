namespace Appliance.Protocol;

/// <summary>
/// The affine map from the kernel's timestamps to served time (DESIGN.md "Time: what is served"):
/// served = t + offset + frequency × (t − epoch). Identity in kernel mode; the clock core publishes
/// a correction in software mode, where the system clock is never touched.
/// In software mode a leap second is inserted or deleted here, as the kernel does it in kernel mode:
/// from <see cref="LeapUnixNanoseconds"/> on, served time is one second behind (the second before it
/// is served twice) or one ahead (it is skipped). The clock folds the step into the offset once past.
/// </summary>
public readonly record struct TimeTransform(long EpochUnixNanoseconds, long OffsetNanoseconds, double Frequency)
{
    private const long Second = 1_000_000_000;

    public static TimeTransform Identity => default;

    /// <summary>The instant UTC jumps (00:00:00 after the leap second, served time); 0: no leap pending.</summary>
    public long LeapUnixNanoseconds { get; init; }

    /// <summary>The pending leap second is deleted (23:59:59 skipped), not inserted.</summary>
    public bool LeapDelete { get; init; }

    public long Apply(long unixNanoseconds)
    {
        long served = unixNanoseconds + OffsetNanoseconds + (long)(Frequency * (unixNanoseconds - EpochUnixNanoseconds));
        if (LeapUnixNanoseconds == 0)
        {
            return served;
        }
        // RFC 5905 §7.3: the last minute of the day has 61 (or 59) seconds.
        return LeapDelete
            ? served >= LeapUnixNanoseconds - Second ? served + Second : served
            : served >= LeapUnixNanoseconds ? served - Second : served;
    }
}

/// <summary>
/// The immutable snapshot of what the server says about its own time (RFC 5905 §9 system variables),
/// published by the clock core and read by every worker. A new snapshot replaces the old by a
/// reference swap (<see cref="ServerStateCell"/>); nothing in it changes after publication.
/// </summary>
public sealed record ServerState
{
    /// <summary>Frequency tolerance PHI, 15 ppm: the rate at which dispersion grows (RFC 5905 §7.2, §11.1.1).</summary>
    public const double Phi = 15e-6;

    public const byte UnsynchronisedStratum = 16;

    public LeapIndicator Leap { get; init; } = LeapIndicator.Unsynchronised;
    public byte Stratum { get; init; } = UnsynchronisedStratum;
    public uint ReferenceId { get; init; }
    public NtpTimestamp ReferenceTime { get; init; }

    /// <summary>Round-trip delay to the primary reference, seconds (RFC 5905 §7.3 rootdelay).</summary>
    public double RootDelay { get; init; }

    /// <summary>Dispersion to the primary reference at <see cref="UpdatedAtUnixNanoseconds"/>, seconds.</summary>
    public double RootDispersion { get; init; }

    /// <summary>When the dispersion figure was valid, as a kernel timestamp (before the transform); it grows with PHI from here.</summary>
    public long UpdatedAtUnixNanoseconds { get; init; }

    /// <summary>log2 seconds of the clock's precision (RFC 5905 §7.3).</summary>
    public sbyte Precision { get; init; } = -20;

    public TimeTransform Transform { get; init; }

    /// <summary>The smear applied after <see cref="Transform"/>: set on the smear listener's states only, null on the main listeners'.</summary>
    public LeapSmear? Smear { get; init; }

    /// <summary>True when clients may use this time: LI ≠ 3 and stratum 1..15 (RFC 5905 §7.3).</summary>
    public bool IsSynchronised => Leap != LeapIndicator.Unsynchronised && Stratum is > 0 and < UnsynchronisedStratum;

    /// <summary>The unsynchronised state a server starts in: LI=3, stratum 16.</summary>
    public static ServerState Unsynchronised(sbyte precision) => new() { Precision = precision };

    /// <summary>
    /// What is served for kernel timestamp <paramref name="kernelUnixNanoseconds"/>: the transform,
    /// then the smear if this state has one (<paramref name="now"/> is read only then).
    /// </summary>
    public long ServedTime(long kernelUnixNanoseconds, in SmearReading now) =>
        Smear is null ? Transform.Apply(kernelUnixNanoseconds) : Smear.Apply(Transform.Apply(kernelUnixNanoseconds), now);

    /// <summary>Root dispersion grown by PHI since the last update (RFC 5905 §11.2.2 / A.5.5.3).</summary>
    public double RootDispersionAt(long nowUnixNanoseconds)
    {
        long elapsed = nowUnixNanoseconds - UpdatedAtUnixNanoseconds;
        return elapsed > 0 ? RootDispersion + (Phi * elapsed / 1e9) : RootDispersion;
    }
}

/// <summary>
/// The one place a <see cref="ServerState"/> is published: writers swap the reference, readers take
/// whatever snapshot is current (DESIGN.md boundary 4).
/// </summary>
public sealed class ServerStateCell(ServerState initial)
{
    private ServerState _current = initial;

    public ServerState Current => Volatile.Read(ref _current);

    public void Publish(ServerState next) => Volatile.Write(ref _current, next);
}
