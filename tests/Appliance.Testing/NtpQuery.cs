using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Appliance.Testing;

/// <summary>A minimal NTP client for tests: sends raw bytes, returns the reply (or null on timeout).</summary>
public static class NtpQuery
{
    /// <summary>A mode-3 NTPv4 request with the given transmit timestamp (a nonce for the origin check).</summary>
    public static byte[] ClientRequest(ulong transmit, byte version = 4)
    {
        var packet = new byte[48];
        packet[0] = (byte)((version << 3) | 3);
        packet[2] = 6;
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(40), transmit);
        return packet;
    }

    /// <summary>
    /// A mode-3 request as an interleaved client sends it (RFC 9769 §2): origin the receive timestamp
    /// of the previous response (zero for a first, basic, request), receive and transmit the client's
    /// own readings, which must differ.
    /// </summary>
    public static byte[] InterleavedRequest(ulong origin, ulong receive, ulong transmit)
    {
        byte[] packet = ClientRequest(transmit);
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(24), origin);
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(32), receive);
        return packet;
    }

    /// <summary>The receive timestamp of a response, as an interleaved client's next origin.</summary>
    public static ulong ReceiveTimestamp(byte[] response) => BinaryPrimitives.ReadUInt64BigEndian(response.AsSpan(32));

    public static Task<byte[]?> ExchangeAsync(IPEndPoint server, byte[] request, TimeSpan timeout) =>
        ExchangeFromAsync(server.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Loopback : IPAddress.IPv6Loopback, server, request, timeout);

    /// <summary>One exchange sent from <paramref name="source"/> (e.g. 127.0.0.7, to be another client of the loopback server).</summary>
    public static async Task<byte[]?> ExchangeFromAsync(IPAddress source, IPEndPoint server, byte[] request, TimeSpan timeout)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.SendToAsync(request, server);
        var buffer = new byte[2048];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            SocketReceiveFromResult result = await socket.ReceiveFromAsync(buffer, SocketFlags.None, server, cts.Token);
            return buffer[..result.ReceivedBytes];
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
