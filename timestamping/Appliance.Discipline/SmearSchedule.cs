using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// Decides, once a clock tick, which leap second the smear listener smears (<see cref="LeapSmear"/>)
/// and keeps what it needs to tell the two passes of an inserted second apart. The leap comes from the
/// leap-seconds table when there is one (so a restart inside the window smears on where it was), else
/// from the leap indicator the main listeners announce — from midnight before the leap, twelve hours
/// before the smear starts (RFC 5905 §7.3: the warning covers the last day). The leap is then at the
/// next UTC midnight, the moment the main clock inserts it too (the kernel's STA_INS, or
/// <see cref="VirtualClock"/> in software mode), and is remembered to the window's end, when the
/// announcement has long gone.
/// </summary>
/// <param name="table">The leap-seconds table (<c>clock.leap-seconds</c>), or null to follow the announcement.</param>
public sealed class SmearSchedule(LeapSecondTable? table)
{
    private const long Day = 86_400 * LeapSmear.SecondNanoseconds;

    /// <summary>
    /// A leap has passed and the announcement has not been withdrawn since: as the kernel in
    /// TIME_WAIT (and <see cref="VirtualClock"/>), an announcement still on names no next midnight.
    /// </summary>
    private bool _waiting;

    /// <summary>The smear in force after the latest <see cref="Update"/>; null outside every window.</summary>
    public LeapSmear? Current { get; private set; }

    /// <summary>
    /// Takes the main listeners' state and a reading of now; returns the smear to publish with the
    /// smear listener's state (null: serve the main time unchanged).
    /// </summary>
    public LeapSmear? Update(ServerState main, in SmearReading now)
    {
        if (main.IsSynchronised && main.Leap == LeapIndicator.NoWarning)
        {
            _waiting = false;
        }
        else if (Current is { } passing && now.Served >= passing.LeapUnixNanoseconds)
        {
            _waiting = true;
        }
        (long leap, bool insert)? found = Find(main, now.Served);
        if (found is not { } leapSecond || now.Served >= leapSecond.leap + LeapSmear.HalfWindowNanoseconds)
        {
            return Current = null;
        }
        if (Current is not { } smear || smear.LeapUnixNanoseconds != leapSecond.leap || smear.Insert != leapSecond.insert)
        {
            // Begun afresh past the leap (a restart inside the window) the main clock, set from
            // sources that have had the leap, has taken it. Begun inside the ambiguous second itself
            // the anchor may already be a second off, and the repeat is taken for the first pass.
            return Current = new LeapSmear(leapSecond.leap, leapSecond.insert, now.ServedMinusMonotonic,
                StepSeen: now.Served >= leapSecond.leap);
        }
        if (now.Served < smear.LeapUnixNanoseconds - LeapSmear.SecondNanoseconds)
        {
            // Before the ambiguous second: keep the anchor fresh, so the slow drift between the
            // disciplined clock and the monotonic one (≤ 500 ppm × a tick) stays far below the 1 s step.
            return Current = smear with { AnchorServedMinusMonotonic = now.ServedMinusMonotonic };
        }
        if (!smear.StepSeen && smear.HasStepped(now))
        {
            return Current = smear with { StepSeen = true };
        }
        return smear;
    }

    private (long Leap, bool Insert)? Find(ServerState main, long served)
    {
        if (table is not null)
        {
            // The event whose window holds now: the first one not yet 12 h in the past.
            return table.NextEvent((served - LeapSmear.HalfWindowNanoseconds) / LeapSmear.SecondNanoseconds) is { } next && (next.Time * LeapSmear.SecondNanoseconds) - LeapSmear.HalfWindowNanoseconds <= served
                ? (next.Time * LeapSmear.SecondNanoseconds, next.Kind == LeapIndicator.InsertSecond)
                : null;
        }
        LeapSmear? remembered = Current;
        if (remembered is not null && served >= remembered.LeapUnixNanoseconds - LeapSmear.SecondNanoseconds)
        {
            // From the repeated second to the window's end this leap holds, whatever a stale
            // upstream sample still announces after it.
            return (remembered.LeapUnixNanoseconds, remembered.Insert);
        }
        if (!_waiting && main.IsSynchronised && main.Leap is LeapIndicator.InsertSecond or LeapIndicator.DeleteSecond)
        {
            return (((served / Day) + 1) * Day, main.Leap == LeapIndicator.InsertSecond);
        }
        // Withdrawn by synchronised sources before the leap: the main clock will not step either.
        // Unsynchronised, the smear listener says LI=3 anyway; the leap is kept in case sync returns.
        return remembered is not null && !main.IsSynchronised ? (remembered.LeapUnixNanoseconds, remembered.Insert) : null;
    }
}
