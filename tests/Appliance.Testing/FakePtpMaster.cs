using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Timestamping;

namespace Appliance.Testing;

/// <summary>
/// A scriptable PTP grandmaster (IEEE 1588-2008 over UDP/IPv4, Annex D) inside a network namespace
/// the test made: Announce four times a second, two-step Sync and Follow_Up eight times a second, a
/// Delay_Resp to every Delay_Req, all to 224.0.1.129 out of the namespace's interface. Its time is the
/// host clock plus <see cref="ShiftSeconds"/>, which a test may step at any moment (a master that
/// jumps); ptp4l cannot be made to. The timestamps are read in user space, before a send and after a
/// receive, so each error only lengthens the round trip the slave measures: the slave's bound of half
/// that round trip still holds.
/// </summary>
public sealed class FakePtpMaster : IAsyncDisposable
{
    private static readonly IPAddress s_group = IPAddress.Parse("224.0.1.129");

    private readonly Socket _event;
    private readonly Socket _general;
    private readonly byte[] _identity = new byte[10];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _loops;
    private long _shiftNanoseconds;
    private int _delayRequests;

    public FakePtpMaster(NetworkNamespace ns)
    {
        RandomNumberGenerator.Fill(_identity.AsSpan(0, 8));
        _identity[9] = 1;
        var address = IPAddress.Parse(ns.Address!);
        (_event, _general) = NetworkNamespaceThread.Run(ns.Name, () => (Open(address, 319), Open(address, 320)));
        _loops = [Task.Run(AnnounceAsync), Task.Run(SyncAsync), Task.Run(DelayResponsesAsync)];
    }

    /// <summary>The master's time minus the host clock's, seconds.</summary>
    public double ShiftSeconds
    {
        get => Interlocked.Read(ref _shiftNanoseconds) / 1e9;
        set => Interlocked.Exchange(ref _shiftNanoseconds, (long)Math.Round(value * 1e9));
    }

    public int DelayRequests => Volatile.Read(ref _delayRequests);

    private static Socket Open(IPAddress address, int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(IPAddress.Any, port));
        socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.AddMembership, new MulticastOption(s_group, address));
        socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastInterface, address.GetAddressBytes());
        socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastLoopback, false);
        return socket;
    }

    private long Now() => SystemClock.RealtimeNanoseconds() + Interlocked.Read(ref _shiftNanoseconds);

    private async Task AnnounceAsync()
    {
        ushort sequence = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            do
            {
                await _general.SendToAsync(PtpMessages.Announce(_identity, sequence++, flags: 0, utcOffset: 0), new IPEndPoint(s_group, 320), _stop.Token);
            }
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task SyncAsync()
    {
        ushort sequence = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(125));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                sequence++;
                long origin = Now(); // read before the send: the true departure is later
                await _event.SendToAsync(PtpMessages.Sync(_identity, sequence, originNanoseconds: null), new IPEndPoint(s_group, 319), _stop.Token);
                await _general.SendToAsync(PtpMessages.FollowUp(_identity, sequence, origin), new IPEndPoint(s_group, 320), _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task DelayResponsesAsync()
    {
        var buffer = new byte[1500];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                int length = await _event.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                long arrival = Now(); // read after the arrival: the true one is earlier
                if (length < 44 || (buffer[0] & 0x0f) != 0x1)
                {
                    continue; // only Delay_Req is ours to answer
                }
                Interlocked.Increment(ref _delayRequests);
                byte[] response = PtpMessages.DelayResp(_identity, PtpMessages.SequenceOf(buffer), arrival, buffer.AsSpan(20, 10));
                await _general.SendToAsync(response, new IPEndPoint(s_group, 320), _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _event.Dispose();
        _general.Dispose();
        await Task.WhenAll(_loops);
        _stop.Dispose();
    }
}
