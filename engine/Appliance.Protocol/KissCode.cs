using System.Buffers.Binary;

namespace Appliance.Protocol;

/// <summary>
/// Kiss-o'-Death codes (RFC 5905 §7.4): four ASCII characters carried in the reference id of a
/// stratum-0 response.
/// </summary>
public enum KissCode : uint
{
    /// <summary>Access denied by remote server.</summary>
    Deny = 0x44454E59, // "DENY"

    /// <summary>Access denied due to local policy.</summary>
    Restrict = 0x52535452, // "RSTR"

    /// <summary>Rate exceeded: the client must reduce its rate.</summary>
    Rate = 0x52415445, // "RATE"

    /// <summary>NTS negative acknowledgment: the cookie could not be used (RFC 8915 §5.7).</summary>
    NtsNak = 0x4E54534E, // "NTSN"
}

/// <summary>Builds Kiss-o'-Death responses, RFC 5905 §7.4.</summary>
public static class KissOfDeath
{
    /// <summary>
    /// Writes a 48-byte KoD: LI=3, stratum 0, the code in the reference id, origin = the client's
    /// transmit so the client can match it. Receive and transmit repeat the client's transmit
    /// (as ntpd does) so that a KoD never hands out the server's time.
    /// </summary>
    public static int Write(Span<byte> response, byte version, sbyte poll, NtpTimestamp clientTransmit, KissCode code)
    {
        var header = new NtpHeader
        {
            Leap = LeapIndicator.Unsynchronised,
            Version = version,
            Mode = NtpMode.Server,
            Stratum = 0,
            Poll = poll,
            Precision = 0,
            ReferenceId = (uint)code,
            Origin = clientTransmit,
            Receive = clientTransmit,
            Transmit = clientTransmit,
        };
        header.Write(response);
        return NtpHeader.Length;
    }

    /// <summary>The KoD code of a response, or null when it is not a KoD (stratum ≠ 0).</summary>
    public static KissCode? Read(ReadOnlySpan<byte> response) =>
        response.Length >= NtpHeader.Length && response[1] == 0
            ? (KissCode)BinaryPrimitives.ReadUInt32BigEndian(response[12..])
            : null;
}
