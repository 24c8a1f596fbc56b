using System.Buffers.Binary;
using Appliance.Protocol;
using Appliance.Timestamping;

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

    /// <summary>
    /// Writes one request per entry of <paramref name="transmits"/> into consecutive segments of
    /// <paramref name="segmentSize"/> bytes (one segmented send). A codec may do their work side by side.
    /// </summary>
    void WriteRequests(Span<byte> segments, int segmentSize, ReadOnlySpan<int> clients, ReadOnlySpan<ulong> transmits)
    {
        for (int i = 0; i < transmits.Length; i++)
        {
            WriteRequest(segments.Slice(i * segmentSize, segmentSize), clients[i], transmits[i]);
        }
    }

    /// <summary>
    /// <see cref="CheckResponse"/> for several responses of one receive batch, a verdict and reason
    /// each. A codec may do their work side by side.
    /// </summary>
    void CheckResponses(ResponseSet responses, Span<CodecVerdict> verdicts, Span<string?> reasons)
    {
        for (int i = 0; i < responses.Count; i++)
        {
            verdicts[i] = CheckResponse(responses.Response(i), responses.Client(i), responses.Transmit(i), out reasons[i]);
        }
    }
}

/// <summary>Responses of one receive batch that passed the NTP checks, with the client and transmit value each answers.</summary>
internal readonly ref struct ResponseSet
{
    private readonly PacketBatch _batch;
    private readonly ReadOnlySpan<int> _slots;
    private readonly ReadOnlySpan<int> _clients;
    private readonly ReadOnlySpan<ulong> _transmits;

    public ResponseSet(PacketBatch batch, ReadOnlySpan<int> slots, ReadOnlySpan<int> clients, ReadOnlySpan<ulong> transmits)
    {
        _batch = batch;
        _slots = slots;
        _clients = clients;
        _transmits = transmits;
    }

    public int Count => _slots.Length;

    public ReadOnlySpan<byte> Response(int i) => _batch.Payload(_slots[i])[.._batch.Length(_slots[i])];

    public int Client(int i) => _clients[i];

    public ulong Transmit(int i) => _transmits[i];
}

/// <summary>Plain NTPv4 client mode requests (RFC 5905 §7.3), 48 bytes.</summary>
internal sealed class NtpCodec : IRequestCodec
{
    public string Name => "ntp";

    public int FixedRequestLength => NtpHeader.Length;

    public int WriteRequest(Span<byte> destination, int client, ulong transmit) => Write(destination, transmit);

    /// <summary>A basic-mode request with <paramref name="transmit"/> as its transmit timestamp; returns its length.</summary>
    public static int Write(Span<byte> destination, ulong transmit)
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
