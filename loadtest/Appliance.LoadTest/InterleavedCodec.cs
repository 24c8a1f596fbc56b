using System.Buffers.Binary;
using Appliance.Protocol;

namespace Appliance.LoadTest;

/// <summary>
/// NTPv4 requests as interleaved clients send them (RFC 9769 §2; chrony's <c>xleave</c>): each
/// simulated client names, in its request's origin, the receive timestamp of one of its earlier
/// responses, so the server answers with that response's transmit timestamp. A client with many
/// requests in flight keeps the receive timestamps it has not named yet in a queue and names each
/// once (the server answers from each only once); with none left it asks in basic mode.
/// The generator's value goes into the request's transmit timestamp (even) and, with its low bit set,
/// into its receive timestamp: a basic answer echoes the first as its origin, an interleaved one the
/// second, and both are matched to their request.
/// </summary>
internal sealed class InterleavedCodec : IRequestCodec
{
    private const int Depth = 1024;

    private readonly ulong[] _queue;
    private readonly int[] _head;
    private readonly int[] _count;
    private long _interleaved;
    private long _basic;

    public InterleavedCodec(int clients)
    {
        _queue = new ulong[clients * Depth];
        _head = new int[clients];
        _count = new int[clients];
    }

    public string Name => "interleaved";

    public int FixedRequestLength => NtpHeader.Length;

    public int WriteRequest(Span<byte> destination, int client, ulong transmit)
    {
        NtpCodec.Write(destination, transmit);
        ulong origin = 0;
        if (_count[client] > 0)
        {
            origin = _queue[(client * Depth) + _head[client]];
            _head[client] = (_head[client] + 1) % Depth;
            _count[client]--;
        }
        BinaryPrimitives.WriteUInt64BigEndian(destination[NtpHeader.OriginOffset..], origin);
        // §2: an interleaved request's receive and transmit timestamps differ.
        BinaryPrimitives.WriteUInt64BigEndian(destination[NtpHeader.ReceiveOffset..], transmit | 1);
        return NtpHeader.Length;
    }

    public CodecVerdict CheckResponse(ReadOnlySpan<byte> response, int client, ulong transmit, out string? reason)
    {
        reason = null;
        ulong origin = BinaryPrimitives.ReadUInt64BigEndian(response[NtpHeader.OriginOffset..]);
        if (origin == (transmit | 1))
        {
            _interleaved++;
        }
        else
        {
            _basic++;
        }
        // Each answer's receive timestamp is one more the client may name (oldest first); a full queue drops it.
        if (_count[client] < Depth)
        {
            _queue[(client * Depth) + ((_head[client] + _count[client]) % Depth)] = BinaryPrimitives.ReadUInt64BigEndian(response[NtpHeader.ReceiveOffset..]);
            _count[client]++;
        }
        return CodecVerdict.Ok;
    }

    public Dictionary<string, long> TakeCounts()
    {
        var counts = new Dictionary<string, long> { ["interleaved"] = _interleaved, ["basic"] = _basic };
        _interleaved = _basic = 0;
        return counts;
    }
}
