namespace Appliance.Protocol;

/// <summary>
/// One leap second smeared linearly over the 24 hours from noon UTC before it to noon UTC after it,
/// as the large public smearing services do (Google's "standard smear": 86,401 SI seconds shown as
/// 86,400, each smeared second about 11.6 µs long). It maps the main listeners' time — UTC, which
/// repeats the inserted second (RFC 5905 §7.3, and the kernel's STA_INS) or skips a deleted one —
/// to a clock that never steps and meets UTC again at the window's end.
/// Served on the smear listener only (docs/leap-smear.md); the main listeners never smear.
/// </summary>
/// <param name="LeapUnixNanoseconds">The instant UTC jumps: 00:00:00 of the day after the leap second.</param>
/// <param name="Insert">True for an inserted second (TAI − UTC grows), false for a deleted one.</param>
/// <param name="AnchorServedMinusMonotonic">Served time minus CLOCK_MONOTONIC at the latest reading before the ambiguous second (see <see cref="SmearReading"/>).</param>
/// <param name="StepSeen">The main clock is known to have taken the leap already (repeated or skipped the second).</param>
public sealed record LeapSmear(long LeapUnixNanoseconds, bool Insert, long AnchorServedMinusMonotonic, bool StepSeen)
{
    public const long HalfWindowNanoseconds = 43_200_000_000_000;

    public const long SecondNanoseconds = 1_000_000_000;

    /// <summary>Served minus monotonic dropping by more than this is the main clock repeating the second.</summary>
    private const long StepThresholdNanoseconds = SecondNanoseconds / 2;

    /// <summary>Noon UTC before the leap: the smear starts.</summary>
    public long StartUnixNanoseconds => LeapUnixNanoseconds - HalfWindowNanoseconds;

    /// <summary>Noon UTC after the leap: smeared time is UTC again.</summary>
    public long EndUnixNanoseconds => LeapUnixNanoseconds + HalfWindowNanoseconds;

    /// <summary>
    /// True when the main clock has taken the leap by the time of <paramref name="now"/>: the latch,
    /// or served time having moved against the monotonic clock (which no leap moves) by more than
    /// half a second since the anchor, back for an insert, ahead for a delete.
    /// </summary>
    public bool HasStepped(in SmearReading now)
    {
        long drift = now.ServedMinusMonotonic - AnchorServedMinusMonotonic;
        return StepSeen || (Insert ? drift < -StepThresholdNanoseconds : drift > StepThresholdNanoseconds);
    }

    /// <summary>
    /// The smeared time for main-listener time <paramref name="served"/>, read no later than
    /// <paramref name="now"/>. Exact to the nanosecond (integer arithmetic).
    /// </summary>
    public long Apply(long served, in SmearReading now)
    {
        if (served < StartUnixNanoseconds || served >= EndUnixNanoseconds)
        {
            return served;
        }
        // After the leap the main clock is one second behind the SI seconds elapsed since the start
        // (insert) or one ahead (delete). For an insert [L − 1 s, L) is seen twice: the second time
        // once the clock has stepped back and the time is not later than now (a request stamped
        // before the step and answered after it is later). A main clock that has not taken the leap
        // (it lost sync before midnight) is followed as it is: it, not the smear, is a second off.
        bool after = HasStepped(now) && (Insert
            ? served >= LeapUnixNanoseconds || (served >= LeapUnixNanoseconds - SecondNanoseconds && served <= now.Served)
            : served >= LeapUnixNanoseconds - SecondNanoseconds);
        long step = Insert ? SecondNanoseconds : -SecondNanoseconds;
        long elapsed = served - StartUnixNanoseconds + (after ? step : 0);
        // Smeared = start + elapsed × 86400 / (86400 ± 1): the offset from the main clock is
        // (after ? step : 0) − elapsed × step / (86400 s ± 1 s), which is −elapsed / 86401 for an insert.
        long seconds = (2 * HalfWindowNanoseconds / SecondNanoseconds) + (Insert ? 1 : -1);
        long smear = Insert ? -(elapsed / seconds) : elapsed / seconds;
        return served + (after ? step : 0) + smear;
    }

    /// <summary>The smeared time minus the main listeners' time at <paramref name="now"/>, seconds (for metrics and status).</summary>
    public double OffsetSecondsAt(in SmearReading now) => (Apply(now.Served, now) - now.Served) / 1e9;
}

/// <summary>
/// The clocks read once by whoever serves smeared time: served (main-listener) time now and that
/// minus CLOCK_MONOTONIC, which tells the two passes of a repeated second apart.
/// </summary>
public readonly record struct SmearReading(long Served, long ServedMinusMonotonic);
