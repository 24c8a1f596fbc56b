using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;

namespace Appliance.Testing;

/// <summary>
/// A small NTP server of our own on an ephemeral loopback port whose answers a test scripts: a clock
/// shifted from the host's, a Kiss-o'-Death, a wrong origin… <see cref="Respond"/> gets the request
/// and its arrival time (Unix ns) and returns the answer, or null to stay silent.
/// </summary>
public sealed class TestNtpServer : IAsyncDisposable
{
    private readonly UdpClient _udp = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public TestNtpServer(Func<NtpHeader, long, byte[]?> respond)
    {
        Respond = respond;
        _loop = Task.Run(LoopAsync);
    }

    public Func<NtpHeader, long, byte[]?> Respond { get; set; }

    public int Requests { get; private set; }

    /// <summary>Where the request being answered came from (set before <see cref="Respond"/> is called).</summary>
    public IPEndPoint? LastClient { get; private set; }

    /// <summary>Sends <paramref name="datagram"/> from this server's own address and port (garbage, a second answer…).</summary>
    public void Send(byte[] datagram, IPEndPoint to) => _udp.Send(datagram, datagram.Length, to);

    public IPEndPoint EndPoint => (IPEndPoint)_udp.Client.LocalEndPoint!;

    /// <summary>A stratum-1 server whose clock reads the host's plus <paramref name="shiftSeconds"/>.</summary>
    public static TestNtpServer Shifted(double shiftSeconds) => new(ShiftedAnswers(shiftSeconds));

    /// <summary>What <see cref="Shifted"/> answers: a stratum-1 server's, its clock the host's plus <paramref name="shiftSeconds"/>.</summary>
    public static Func<NtpHeader, long, byte[]?> ShiftedAnswers(double shiftSeconds) => (request, received) =>
    {
        long shift = (long)(shiftSeconds * 1e9);
        long now = RealtimeNanoseconds() + shift;
        return Answer(request, new NtpHeader
        {
            Leap = LeapIndicator.NoWarning,
            Stratum = 1,
            Precision = -20,
            RootDispersion = NtpShort.FromSeconds(0.0001),
            ReferenceId = 0x53484654, // "SHFT"
            Reference = NtpTimestamp.FromUnixNanoseconds(now - 1_000_000_000),
            Receive = NtpTimestamp.FromUnixNanoseconds(received + shift),
        }, shift);
    };

    /// <summary>Fills in what every answer has (mode 4, the request's version and poll, origin = its transmit, transmit = now) and serialises.</summary>
    public static byte[] Answer(NtpHeader request, NtpHeader answer, long shiftNanoseconds = 0)
    {
        answer.Mode = NtpMode.Server;
        answer.Version = request.Version;
        answer.Poll = request.Poll;
        answer.Origin = request.Transmit;
        answer.Transmit = NtpTimestamp.FromUnixNanoseconds(RealtimeNanoseconds() + shiftNanoseconds);
        if (answer.Receive.IsZero && answer.Stratum != 0)
        {
            answer.Receive = answer.Transmit;
        }
        var bytes = new byte[NtpHeader.Length];
        answer.Write(bytes);
        return bytes;
    }

    /// <summary>A Kiss-o'-Death answer with <paramref name="code"/> (RFC 5905 §7.4).</summary>
    public static byte[] KissOfDeath(NtpHeader request, KissCode code)
    {
        var bytes = new byte[NtpHeader.Length];
        Protocol.KissOfDeath.Write(bytes, request.Version, request.Poll, request.Transmit, code);
        return bytes;
    }

    private static long RealtimeNanoseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            UdpReceiveResult received;
            try
            {
                received = await _udp.ReceiveAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            long arrival = RealtimeNanoseconds();
            if (!NtpHeader.TryRead(received.Buffer, out NtpHeader request))
            {
                continue;
            }
            Requests++;
            LastClient = received.RemoteEndPoint;
            if (Respond(request, arrival) is { } answer)
            {
                await _udp.SendAsync(answer, received.RemoteEndPoint);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _udp.Dispose();
        await _loop;
        _stop.Dispose();
    }
}
