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
/// <param name="monotonic">
/// CLOCK_MONOTONIC (or the simulation's), which no leap moves: with it the clock notices the host
/// inserting or deleting the leap second itself (its own daemon arming STA_INS) and then leaves the
/// leap to the host, so the second is never repeated twice. Null: the host is assumed not to.
/// </param>
public sealed class VirtualClock(Func<long> system, Func<long>? monotonic = null) : ISteeredClock
{
    private const long Day = 86_400L * 1_000_000_000;

    private const long Second = 1_000_000_000;

    /// <summary>
    /// The latest leap passed (its UTC midnight); a leap is armed only after it. With the
    /// announcement still on after it, nothing is armed until it has been withdrawn (the kernel's TIME_WAIT).
    /// </summary>
    private long _passedLeap;

    /// <summary>The announcement has been on without a break since <see cref="_passedLeap"/>.</summary>
    private bool _stillAnnounced;

    /// <summary>System minus monotonic at the latest reading before the pending leap's ambiguous second.</summary>
    private long _hostAnchor;

    public TimeTransform Transform { get; private set; } = TimeTransform.Identity;

    /// <summary>The pending leap's midnight (served time), or 0: when the clock service should look again, just after it.</summary>
    public long PendingLeap => Transform.LeapUnixNanoseconds;

    public long Now() => Transform.Apply(system());

    /// <summary>
    /// A step sets the served time outright: a leap in its repeated second is folded first, and a
    /// step that lands past a pending leap's midnight takes the leap with it (the core's offset was
    /// measured against sources that have had it).
    /// </summary>
    public void Step(double seconds)
    {
        long now = system();
        Settle(now, announced: true);
        if (Transform.LeapUnixNanoseconds != 0 && Plain(Transform).Apply(now) >= Transform.LeapUnixNanoseconds)
        {
            Pass(new TimeTransform(now, Transform.Apply(now) - now, Transform.Frequency));
        }
        Transform = Transform with { OffsetNanoseconds = Transform.OffsetNanoseconds + (long)Math.Round(seconds * 1e9) };
        if (Transform.LeapUnixNanoseconds != 0 && Plain(Transform).Apply(now) >= Transform.LeapUnixNanoseconds)
        {
            Pass(Plain(Transform));
        }
    }

    /// <summary>Re-anchored at now so the served clock does not jump, with a new slope; a pending leap stays pending.</summary>
    public void SetFrequency(double correction)
    {
        long now = system();
        Settle(now, announced: true);
        Transform = new TimeTransform(now, Plain(Transform).Apply(now) - now, correction)
        {
            LeapUnixNanoseconds = Transform.LeapUnixNanoseconds,
            LeapDelete = Transform.LeapDelete,
        };
    }

    /// <summary>
    /// The leap second is inserted or deleted in the served time, as the kernel does with STA_INS /
    /// STA_DEL in kernel mode: at the end of the UTC day the core announced it in (RFC 5905 §7.3,
    /// a leap second ends a UTC day). Once passed, the step becomes part of the offset. As in the
    /// kernel, an announcement that goes on after the leap arms nothing until it has been withdrawn,
    /// and a change of kind (insert, delete) re-arms. The kernel's own status stays as it is.
    /// </summary>
    public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset)
    {
        bool announced = synchronised && leap is LeapIndicator.InsertSecond or LeapIndicator.DeleteSecond;
        long now = system();
        Settle(now, announced);
        if (!announced)
        {
            _stillAnnounced = false;
            return;
        }
        bool delete = leap == LeapIndicator.DeleteSecond;
        long midnight = ((Now() / Day) + 1) * Day;
        if (Transform.LeapUnixNanoseconds != 0 && Transform.LeapDelete != delete)
        {
            Transform = Plain(Transform); // re-armed below, the other way
        }
        // Inside the repeated second the next midnight is the leap's own: never armed twice.
        if (Transform.LeapUnixNanoseconds == 0 && !_stillAnnounced && midnight > _passedLeap)
        {
            Transform = Transform with { LeapUnixNanoseconds = midnight, LeapDelete = delete };
            _hostAnchor = now - (monotonic?.Invoke() ?? 0);
        }
    }

    /// <summary>
    /// Brings a pending leap up to date at system time <paramref name="now"/>: done by the host
    /// itself (dropped, the offset unchanged), over (folded into the offset once the repeated second
    /// has run out), withdrawn before its midnight (dropped), or still to come (the host anchor refreshed).
    /// </summary>
    private void Settle(long now, bool announced)
    {
        TimeTransform t = Transform;
        if (t.LeapUnixNanoseconds == 0)
        {
            return;
        }
        long served = Plain(t).Apply(now);
        long hostDrift = monotonic is null ? 0 : now - monotonic() - _hostAnchor;
        // Only around midnight is a step of the system clock the host's leap; before that it is just
        // a step (the host's daemon setting its clock), taken into the anchor.
        bool nearLeap = served >= t.LeapUnixNanoseconds - (2 * Second);
        if (nearLeap && (t.LeapDelete ? hostDrift > Second / 2 : hostDrift < -Second / 2))
        {
            // The system clock itself stepped by the leap second: the host did it.
            Pass(Plain(t));
        }
        else if (served >= t.LeapUnixNanoseconds + Second)
        {
            Pass(new TimeTransform(now, t.Apply(now) - now, t.Frequency));
        }
        else if (!announced && served < t.LeapUnixNanoseconds)
        {
            Transform = Plain(t);
        }
        else if (!nearLeap)
        {
            _hostAnchor = now - (monotonic?.Invoke() ?? 0);
        }
    }

    private static TimeTransform Plain(TimeTransform t) => t with { LeapUnixNanoseconds = 0, LeapDelete = false };

    private void Pass(TimeTransform next)
    {
        _passedLeap = Transform.LeapUnixNanoseconds;
        _stillAnnounced = true;
        Transform = next;
    }
}
