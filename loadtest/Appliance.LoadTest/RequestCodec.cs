using System.Buffers.Binary;
using Appliance.Protocol;

namespace Appliance.LoadTest;

/// <summary>What the protocol layer says about a response beyond the NTP header checks.</summary>
internal enum CodecVerdict : byte
{
    Ok,
    Invalid,
}

/// <summary>
/// Builds requests and checks responses for one protocol (plain NTP here; NTS adds its own). The
/// generator owns timing, matching and statistics; the codec only owns the bytes.
/// </summary>
internal interface IRequestCodec
{
    string Name { get; }

    /// <summary>The size every request has, or 0 when sizes vary (then no segmentation offload).</summary>
    int FixedRequestLength { get; }

    /// <summary>Writes a client request whose transmit timestamp field is <paramref name="transmit"/>; returns its length.</summary>
    int WriteRequest(Span<byte> destination, int client, ulong transmit);

    /// <summary>Checks what only this protocol can (e.g. an authenticator) for the request sent with <paramref name="transmit"/>.</summary>
    CodecVerdict CheckResponse(ReadOnlySpan<byte> response, int client, ulong transmit, out string? reason);

    /// <summary>Protocol-specific counts for the report (cookies, NAKs), reset per step.</summary>
    Dictionary<string, long> TakeCounts();
}

/// <summary>Plain NTPv4 client mode requests (RFC 5905 §7.3), 48 bytes.</summary>
internal sealed class NtpCodec : IRequestCodec
{
    public string Name => "ntp";

    public int FixedRequestLength => NtpHeader.Length;

    public int WriteRequest(Span<byte> destination, int client, ulong transmit)
    {
        destination[..NtpHeader.Length].Clear();
        destination[0] = NtpHeader.FirstOctet(LeapIndicator.NoWarning, 4, NtpMode.Client);
        destination[2] = 6; // poll 64 s, as a pool client would
        BinaryPrimitives.WriteUInt64BigEndian(destination[NtpHeader.TransmitOffset..], transmit);
        return NtpHeader.Length;
    }

    public CodecVerdict CheckResponse(ReadOnlySpan<byte> response, int client, ulong transmit, out string? reason)
    {
        reason = null;
        return CodecVerdict.Ok;
    }

    public Dictionary<string, long> TakeCounts() => [];
}
