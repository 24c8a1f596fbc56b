using Appliance.Protocol;
using Appliance.Protocol.Nts;

namespace Appliance.Testing;

/// <summary>Randomness that repeats: every run sees the same "random" octets (0, 1, 2, …), so a result or a fuzz finding reproduces.</summary>
public sealed class CountingRandom : IRandomSource
{
    private byte _next;

    public void Fill(Span<byte> destination)
    {
        foreach (ref byte b in destination)
        {
            b = _next++;
        }
    }
}

/// <summary>The fixed world the protocol tests and the fuzz targets share: a receive time, its request context, a synchronised server.</summary>
public static class ProtocolFixtures
{
    public const long ReceiveUnixNs = 1_795_435_203_123_456_789L;

    public static RequestContext Context(long rxUnixNs = ReceiveUnixNs) =>
        new(NetAddress.FromIPv4(0x7F000001), rxUnixNs, NtpTimestamp.FromUnixNanoseconds(rxUnixNs));

    /// <summary>Where the first NTS-KE End of Message record ends (RFC 8915 §4), or the whole length when there is none.</summary>
    public static int EndOfFirstMessage(ReadOnlySpan<byte> bytes)
    {
        int offset = 0;
        while (NtsKeRecords.TryRead(bytes[offset..], out NtsKeRecord record, out int consumed))
        {
            offset += consumed;
            if (record.Type == (ushort)NtsKeRecordType.EndOfMessage)
            {
                return offset;
            }
        }
        return bytes.Length;
    }

    /// <summary>A stratum-2 server synchronised 8 s before the receive time.</summary>
    public static ServerState Synced(long updatedUnixNs = ReceiveUnixNs - 8_000_000_000L) => new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 2,
        ReferenceId = 0xC0000201,
        ReferenceTime = NtpTimestamp.FromUnixNanoseconds(updatedUnixNs),
        RootDelay = 0.0125,
        RootDispersion = 0.001,
        UpdatedAtUnixNanoseconds = updatedUnixNs,
        Precision = -24,
    };
}
