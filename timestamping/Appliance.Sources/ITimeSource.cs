using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol.Client;

namespace Appliance.Sources;

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
