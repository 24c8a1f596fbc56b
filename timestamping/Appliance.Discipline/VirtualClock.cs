using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// Software mode's clock: the system clock plus a correction c(t) that the clock core steers exactly
/// as it would steer the kernel's — a frequency command changes c's slope (served time stays
/// continuous), a step moves it. The system clock itself is never touched, and neither is the
/// kernel's status. The correction is published to the workers as the <see cref="TimeTransform"/> of
/// the <see cref="ServerState"/>.
/// </summary>
/// <param name="system">Reads the untouched clock underneath (Unix nanoseconds): the system clock, or a simulated one.</param>
public sealed class VirtualClock(Func<long> system) : ISteeredClock
{
    private const long Day = 86_400L * 1_000_000_000;

    /// <summary>A leap has been passed and the announcement not withdrawn since (the kernel's TIME_WAIT).</summary>
    private bool _leapPassed;

    public TimeTransform Transform { get; private set; } = TimeTransform.Identity;

    public long Now() => Transform.Apply(system());

    public void Step(double seconds) =>
        Transform = Transform with { OffsetNanoseconds = Transform.OffsetNanoseconds + (long)Math.Round(seconds * 1e9) };

    public void SetFrequency(double correction) => Transform = Reanchor(system(), correction);

    /// <summary>
    /// The leap second is inserted or deleted in the served time, as the kernel does with STA_INS /
    /// STA_DEL in kernel mode: at the end of the UTC day the core announced it in (RFC 5905 §7.3,
    /// a leap second ends a UTC day). Once passed, the step becomes part of the offset, and, as in the
    /// kernel's TIME_WAIT state, an announcement that goes on after it arms nothing until it has been
    /// withdrawn. The kernel's own status stays as it is.
    /// </summary>
    public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset)
    {
        bool announced = synchronised && leap is LeapIndicator.InsertSecond or LeapIndicator.DeleteSecond;
        if (Transform.LeapUnixNanoseconds != 0 && (!announced || Passed(system())))
        {
            Transform = Reanchor(system(), Transform.Frequency, keepPending: announced);
        }
        if (!announced)
        {
            _leapPassed = false;
        }
        else if (!_leapPassed && Transform.LeapUnixNanoseconds == 0)
        {
            Transform = Transform with { LeapUnixNanoseconds = ((Now() / Day) + 1) * Day, LeapDelete = leap == LeapIndicator.DeleteSecond };
        }
    }

    private bool Passed(long now) => Transform.Apply(now) != (Transform with { LeapUnixNanoseconds = 0 }).Apply(now);

    /// <summary>
    /// Re-anchored at <paramref name="now"/> so the served clock does not jump, with a new slope. A leap
    /// already passed is folded into the offset; one still to come stays pending unless withdrawn.
    /// </summary>
    private TimeTransform Reanchor(long now, double frequency, bool keepPending = true)
    {
        long served = Transform.Apply(now);
        var next = new TimeTransform(now, served - now, frequency);
        if (Transform.LeapUnixNanoseconds == 0)
        {
            return next;
        }
        if (Passed(now))
        {
            _leapPassed = true;
            return next;
        }
        return keepPending ? next with { LeapUnixNanoseconds = Transform.LeapUnixNanoseconds, LeapDelete = Transform.LeapDelete } : next;
    }
}
