namespace Appliance.Discipline;

/// <summary>
/// The earliest "now" can be, and what says so (issue #21, docs/deploying.md#cold-start): the time
/// of the commit the binary was built from, the last time the clock was known good (persisted), a
/// GPS fix. A system clock behind it is wrong, as on a board without a battery-backed clock that
/// boots in 1970, or a VM restored from an old snapshot.
/// </summary>
/// <param name="UnixNanoseconds">The floor; 0 for none.</param>
/// <param name="Origin">What set it, for the log line that says the clock is wrong.</param>
public readonly record struct TimeFloor(long UnixNanoseconds, string Origin)
{
    public static TimeFloor None { get; } = new(0, "none");

    /// <summary>This floor, or <paramref name="unixNanoseconds"/> from <paramref name="origin"/> when that is later.</summary>
    public TimeFloor Raise(long unixNanoseconds, string origin) =>
        unixNanoseconds > UnixNanoseconds ? new TimeFloor(unixNanoseconds, origin) : this;

    /// <summary>A clock that reads <paramref name="now"/> is behind the floor: wrong.</summary>
    public bool IsAfter(long now) => now < UnixNanoseconds;

    /// <summary>
    /// What certificate dates are checked against (RFC 8915 §4 starts NTS with TLS, whose checks
    /// need the time NTS is there to give): the clock once it is synchronised; before that, never
    /// earlier than the floor, so that a clock years behind cannot make every certificate "not yet
    /// valid" and the appliance never reach time at all.
    /// </summary>
    public long VerificationTime(long now, bool synchronised) => synchronised ? now : Math.Max(now, UnixNanoseconds);
}
