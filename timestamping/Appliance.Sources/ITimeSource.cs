using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol;

namespace Appliance.Sources;

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

/// <summary>Takes a measurement; returns whether it agreed with the clock's estimate (a poll may then grow).</summary>
public delegate bool MeasurementSink(ITimeSource source, Measurement measurement);

/// <summary>
/// A driver that turns the world into <see cref="Measurement"/>s: an upstream NTP/NTS server, gpsd, a
/// PPS device, a PHC, a PTP master. It runs on its own and never blocks the clock core.
/// </summary>
public interface ITimeSource : IDisposable
{
    /// <summary>As configured (host:port, device path…): the label in logs and metrics.</summary>
    string Name { get; }

    /// <summary>"ntp", "gpsd", "pps", "phc", "ptp".</summary>
    string Kind { get; }

    /// <summary>The reference id the appliance serves when this source is the system peer (RFC 5905 §7.3); 0 until known.</summary>
    uint ReferenceId { get; }

    SourceState State { get; }

    /// <summary>Reachability register (RFC 5905 §9.2): one bit per poll or expected sample.</summary>
    byte Reach { get; }

    /// <summary>Seconds between samples (the staleness limit is eight of these).</summary>
    double PollSeconds { get; }

    SourceCounters Counters { get; }

    /// <summary>Runs until cancelled (or until the source refuses us for good).</summary>
    Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken);
}

/// <summary>Reference ids (RFC 5905 §7.3).</summary>
public static class ReferenceIds
{
    public const uint Gps = 0x47505300;  // "GPS"
    public const uint Pps = 0x50505300;  // "PPS"
    public const uint Ptp = 0x50545000;  // "PTP"
    public const uint Phc = 0x50484300;  // "PHC"

    /// <summary>An IPv4 server's refid is its address; an IPv6 server's, the first four octets of the MD5 of its address.</summary>
    public static uint Of(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6)
        {
            return BinaryPrimitives.ReadUInt32BigEndian(address.MapToIPv4().GetAddressBytes());
        }
#pragma warning disable CA5351 // MD5 is what RFC 5905 specifies for the IPv6 refid; not a security use
        return BinaryPrimitives.ReadUInt32BigEndian(MD5.HashData(address.GetAddressBytes()));
#pragma warning restore CA5351
    }
}
