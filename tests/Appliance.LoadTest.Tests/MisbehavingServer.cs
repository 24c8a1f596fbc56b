using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Appliance.LoadTest.Tests;

/// <summary>How the test server gets its answers wrong.</summary>
public enum Misbehaviour
{
    Correct,
    WrongOrigin,

    /// <summary>The origin is the request's transmit value with its lowest bit set: an interleaved answer to a request that was not one.</summary>
    OddOrigin,
    WrongMode,
    KissRate,
    Unsynchronised,
    Silent,
}

/// <summary>A small NTP server for the harness's own tests: it answers every request, wrongly on purpose.</summary>
public sealed class MisbehavingServer : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly Thread _thread;
    private volatile bool _stopping;

    public MisbehavingServer(Misbehaviour how)
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _socket.ReceiveTimeout = 200;
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        _thread = new Thread(() => Run(how)) { IsBackground = true };
        _thread.Start();
    }

    public IPEndPoint EndPoint { get; }

    public long Received;

    /// <summary>Every source address a request came from; read it after <see cref="Dispose"/>.</summary>
    public HashSet<IPAddress> SourceAddresses { get; } = [];

    private void Run(Misbehaviour how)
    {
        var buffer = new byte[2048];
        var peer = new SocketAddress(AddressFamily.InterNetwork);
        while (!_stopping)
        {
            int n;
            try
            {
                n = _socket.ReceiveFrom(buffer, SocketFlags.None, peer);
            }
            catch (SocketException)
            {
                continue;
            }
            Interlocked.Increment(ref Received);
            SourceAddresses.Add(((IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(peer)).Address);
            if (n < 48 || how == Misbehaviour.Silent)
            {
                continue;
            }
            ulong transmit = BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(40));
            ulong now = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000 + 2_208_988_800L) << 32;
            buffer[0] = how == Misbehaviour.WrongMode ? (byte)0x23 : how is Misbehaviour.Unsynchronised or Misbehaviour.KissRate ? (byte)0xE4 : (byte)0x24;
            buffer[1] = how switch { Misbehaviour.KissRate => 0, Misbehaviour.Unsynchronised => 16, _ => 2 };
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(12), how == Misbehaviour.KissRate ? 0x52415445u : 0xC0000201u);
            BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(24), how switch { Misbehaviour.WrongOrigin => transmit ^ 0x10000, Misbehaviour.OddOrigin => transmit | 1, _ => transmit });
            BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(32), now);
            BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(40), now);
            _socket.SendTo(buffer.AsSpan(0, 48), SocketFlags.None, peer);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _thread.Join();
        _socket.Dispose();
    }
}
