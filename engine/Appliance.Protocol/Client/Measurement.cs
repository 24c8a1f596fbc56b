namespace Appliance.Protocol.Client;

/// <summary>How a source stands, for logs and metrics.</summary>
public enum SourceState : byte
{
    /// <summary>Nothing heard yet.</summary>
    Starting,

    /// <summary>Delivering usable time.</summary>
    Reachable,

    /// <summary>The last polls went unanswered, or the daemon/device cannot be reached.</summary>
    Unreachable,

    /// <summary>Answering, but not synchronised itself (LI = 3 or stratum 16).</summary>
    Unsynchronised,

    /// <summary>Sent a KoD RATE: polling slower (RFC 5905 §7.4).</summary>
    RateLimited,

    /// <summary>Sent a KoD DENY or RSTR: no longer polled (RFC 5905 §7.4).</summary>
    Denied,

    /// <summary>NTS: the key exchange failed; retried with back-off.</summary>
    KeyExchangeFailed,

    /// <summary>A reference clock without a usable fix (GPS mode below 2D, too few satellites).</summary>
    NoFix,
}

/// <summary>What a source has done, for metrics (each driver uses the counters that apply to it).</summary>
public sealed class SourceCounters
{
    public long Requests;
    public long Answers;
    public long Invalid;
    public long KissOfDeath;
    public long NtsNaks;
    public long KeyExchanges;
}

/// <summary>
/// One measurement's four timestamps (RFC 5905 §8), Unix nanoseconds, T1 and T4 read from the system
/// clock, and what the source said about itself. A reference clock's sample is the same shape: its
/// edge at system time t and reference time r, with an uncertainty window d, is (t − d/2, r, r, t + d/2)
/// — offset r − t, delay d — with stratum 0 and the clock's reference id in the header.
/// </summary>
public readonly record struct Measurement(long T1, long T2, long T3, long T4, NtpHeader Response)
{
    /// <summary>A reference clock's sample: <paramref name="reference"/> at system time <paramref name="system"/>.</summary>
    public static Measurement FromReferenceClock(long system, long reference, double delaySeconds, double dispersionSeconds,
        uint referenceId, LeapIndicator leap = LeapIndicator.NoWarning)
    {
        long half = (long)(delaySeconds * 5e8);
        return new Measurement(system - half, reference, reference, system + half, new NtpHeader
        {
            Leap = leap,
            Version = 4,
            Mode = NtpMode.Server,
            Stratum = 0,
            RootDispersion = NtpShort.FromSeconds(dispersionSeconds),
            ReferenceId = referenceId,
        });
    }
}
