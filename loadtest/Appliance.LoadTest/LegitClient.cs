using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.LoadTest;

/// <summary>What the legitimate clients beside a flood saw: their polls, the answers with time, the KoDs.</summary>
internal sealed record LegitResult(string Address, int Clients, long Polls, long Answered, long Kod, double SharePercent, double DelayMaxMicros);

/// <summary>
/// Legitimate clients polling beside the load (issue #18: "while a legitimate client polls once a
/// second"): one plain NTPv4 request per poll from a client's own connected socket and address, the
/// clients in turn, each request with a transmit timestamp of its own, matched by the origin of the
/// answer (RFC 5905 §8). They share the generator's thread and poller, so they are served as promptly
/// as the flood's answers are read.
/// </summary>
internal sealed class LegitClient
{
    private readonly NtpCodec _codec = new();
    private readonly TimestampedSocket[] _sockets;
    private readonly PacketBatch _send;
    private readonly Dictionary<ulong, long> _outstanding = [];
    private long _polls;
    private long _answered;
    private long _kod;
    private long _delayMax;

    public LegitClient(TimestampedSocket[] sockets, PacketBatch send)
    {
        _sockets = sockets;
        _send = send;
    }

    /// <summary>Sends one request now, from the next client.</summary>
    public void Poll()
    {
        long t1 = SystemClock.RealtimeNanoseconds();
        // The count in the low bits keeps every poll's transmit value distinct whatever the clock does.
        ulong transmit = (NtpTimestamp.FromUnixNanoseconds(t1).Value & ~0xFFFFUL) | ((ulong)_polls & 0xFFFF);
        _send.Clear();
        int length = _codec.WriteRequest(_send.Payload(0), 0, transmit);
        _send.Prepare(0, [], default, length);
        _outstanding[transmit] = t1;
        TimestampedSocket socket = _sockets[_polls % _sockets.Length];
        _polls++;
        socket.Send(_send);
    }

    /// <summary>Reads what client <paramref name="client"/>'s socket holds; returns the datagrams read.</summary>
    public int Receive(int client, PacketBatch batch, ReadOnlySpan<byte> target)
    {
        int n = _sockets[client].ReceiveNoWait(batch);
        for (int i = 0; i < n; i++)
        {
            if (!batch.CameFrom(i, target) || batch.Length(i) < NtpHeader.Length)
            {
                continue;
            }
            var header = NtpHeader.Read(batch.Payload(i)[..batch.Length(i)]);
            if (header.Mode != NtpMode.Server || !_outstanding.Remove(header.Origin.Value, out long t1))
            {
                continue;
            }
            if (header.Stratum == 0)
            {
                _kod++;
                continue;
            }
            _answered++;
            long t4 = batch.ReceiveTimestamp(i) != 0 ? batch.ReceiveTimestamp(i) : SystemClock.RealtimeNanoseconds();
            _delayMax = Math.Max(_delayMax, t4 - t1);
        }
        return n;
    }

    /// <summary>Discards answers left from an earlier step.</summary>
    public void Drain(PacketBatch batch)
    {
        foreach (TimestampedSocket socket in _sockets)
        {
            while (socket.ReceiveNoWait(batch) > 0)
            {
            }
        }
    }

    public LegitResult Result() =>
        new(_sockets[0].LocalEndPoint.Address.ToString(), _sockets.Length, _polls, _answered, _kod, _polls == 0 ? 0 : 100.0 * _answered / _polls, _delayMax / 1000.0);
}
