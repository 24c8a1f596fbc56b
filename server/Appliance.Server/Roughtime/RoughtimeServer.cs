using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;
using Appliance.Protocol.Roughtime;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Server.Nts;
using Appliance.Sources;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Roughtime;

/// <summary>
/// The Roughtime listener (RFC 10049): one thread answers every UDP address, a received
/// <c>recvmmsg</c> batch at a time with one signature per version for the whole batch (§5.3), in
/// place, sent back with one <c>sendmmsg</c>; TCP connections (§5: the same framing, requests one
/// after another on a connection) are answered one request at a time. Time is the main listeners'
/// served time, never the smear listener's: MIDP the served time rounded, RADI its root distance
/// (<see cref="RoughtimeResponder.Radius"/>); nothing is signed while it is unsynchronised.
/// </summary>
public sealed class RoughtimeServer : IAsyncDisposable
{
    /// <summary>Datagrams a receive takes, answered under one signature.</summary>
    public const int BatchSize = 64;

    /// <summary>TCP connections open at once, and per client (an IPv4 address or an IPv6 /64).</summary>
    public const int MaxTcpConnections = 1024;

    public const int MaxTcpConnectionsPerClient = 8;

    /// <summary>A TCP connection with no request for this long is closed (its slot freed).</summary>
    public static readonly TimeSpan TcpIdleTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Requests one TCP connection may make; then it is closed (a client may connect again, within its limits).</summary>
    public const int MaxRequestsPerConnection = 100;

    private readonly RoughtimeKeys _keys;
    private readonly ServerStateCell _state;
    private readonly ILogger _logger;
    private readonly List<TimestampedSocket> _udp;
    private readonly List<Socket> _tcp;
    private readonly ClientConnectionLimiter _limiter = new(60, TimeSpan.FromSeconds(10), MaxTcpConnectionsPerClient);
    private readonly RoughtimeSigner _tcpSigner;
    // One TCP request signed at a time, waited for without holding a thread: a flood of TCP requests
    // takes the one signer, never the thread pool that NTS-KE, the control socket and /metrics share.
    private readonly SemaphoreSlim _tcpSigning = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private volatile AccessList _access;
    private readonly LogSummary _failures;
    private Thread? _udpThread;
    private volatile bool _stop;
    private int _tcpActive;

    private RoughtimeServer(RoughtimeKeys keys, ServerStateCell state, AccessList access, ILogger logger, List<TimestampedSocket> udp, List<Socket> tcp)
    {
        _access = access;
        _keys = keys;
        _state = state;
        _logger = logger;
        _udp = udp;
        _tcp = tcp;
        _tcpSigner = new RoughtimeSigner(keys, state, Counters, 1);
        _failures = new LogSummary(logger, LogLevel.Error, "Roughtime failures");
    }

    public RoughtimeCounters Counters { get; } = new();

    public RoughtimeKeys Keys => _keys;

    public IReadOnlyList<IPEndPoint> UdpEndPoints => _udp.Select(s => s.LocalEndPoint).ToList();

    public IReadOnlyList<IPEndPoint> TcpEndPoints => _tcp.Select(s => (IPEndPoint)s.LocalEndPoint!).ToList();

    /// <summary>TCP connections open now.</summary>
    public int TcpConnections => Volatile.Read(ref _tcpActive);

    /// <summary>
    /// Binds every address (UDP, and TCP with <c>roughtime.tcp</c>); throws <see cref="BindFailedException"/>
    /// naming the first that fails. <paramref name="access"/> is <c>ntp.access</c>: a network denied
    /// NTP is denied Roughtime too (nothing is sent to it).
    /// </summary>
    public static RoughtimeServer Bind(RoughtimeConfig config, RoughtimeKeys keys, ServerStateCell state, AccessList access, ILogger logger)
    {
        var udp = new List<TimestampedSocket>();
        var tcp = new List<Socket>();
        try
        {
            foreach (IPEndPoint endPoint in config.Listen)
            {
                try
                {
                    udp.Add(TimestampedSocket.Open(endPoint, new TimestampedSocketOptions()));
                }
                catch (SocketException e)
                {
                    throw new BindFailedException("Roughtime on UDP", endPoint, Engine.EngineBindException.Describe(e), e);
                }
                if (!config.Tcp)
                {
                    continue;
                }
                // The TCP port is the UDP one (an ephemeral port 0 resolved), so one address names both.
                tcp.Add(TcpListeners.Bind(new IPEndPoint(endPoint.Address, udp[^1].LocalEndPoint.Port), "Roughtime on TCP"));
            }
            return new RoughtimeServer(keys, state, access, logger, udp, tcp);
        }
        catch
        {
            udp.ForEach(s => s.Dispose());
            tcp.ForEach(s => s.Dispose());
            throw;
        }
    }

    /// <summary>A reload's <c>ntp.access</c>: in force from the next batch and the next connection.</summary>
    public void UpdateAccess(AccessList access) => _access = access;

    public void Start()
    {
        if (_udp.Count > 0)
        {
            _udpThread = new Thread(RunUdp) { IsBackground = true, Name = "roughtime udp" };
            _udpThread.Start();
        }
        foreach (Socket listener in _tcp)
        {
            _loops.Add(Task.Run(() => AcceptLoop(listener)));
        }
    }

    private void RunUdp()
    {
        using var batch = new PacketBatch(BatchSize);
        var signer = new RoughtimeSigner(_keys, _state, Counters, BatchSize);
        using Poller? poller = _udp.Count > 1 ? new Poller(_udp) : null;
        while (!_stop)
        {
            try
            {
                if (poller is null)
                {
                    ServeUdp(_udp[0], batch, signer, wait: true);
                    continue;
                }
                int ready = poller.Wait(250);
                for (int r = 0; r < ready; r++)
                {
                    ServeUdp(_udp[poller.Ready(r)], batch, signer, wait: false);
                }
            }
            catch (Exception e) when (!_stop)
            {
                // A fault is logged (summarised) and the loop goes on after a pause, never the process lost.
                if (_failures.Occurred(e.Message))
                {
                    _logger.LogError(e, "Roughtime on UDP failed; serving again in 1 s");
                }
                Thread.Sleep(1000);
            }
        }
    }

    private void ServeUdp(TimestampedSocket socket, PacketBatch batch, RoughtimeSigner signer, bool wait)
    {
        int n = wait ? socket.Receive(batch) : socket.ReceiveNoWait(batch);
        if (n <= 0)
        {
            return; // a timeout (the stop check), EINTR, or an error of the socket's (ICMP): nothing to answer
        }
        int answered = signer.Answer(new BatchSlots(batch), n, RoughtimeCounters.Udp, _access);
        if (answered == 0)
        {
            return;
        }
        int refused = socket.Send(batch);
        Counters.CountAnswered(RoughtimeCounters.Udp, answered - refused);
        if (refused > 0)
        {
            Counters.CountDrop(RoughtimeCounters.Udp, (int)RoughtimeListenerDrop.SendFailed, refused);
        }
    }

    private Task AcceptLoop(Socket listener) =>
        TcpListeners.AcceptAsync(listener, _failures, _logger, "Roughtime", Accepted, _stopping.Token);

    /// <summary>Admission at accept: <c>ntp.access</c>, the server's connections, then the client's.</summary>
    private void Accepted(Socket client)
    {
        NetAddress address = NetAddress.FromIPAddress(((IPEndPoint)client.RemoteEndPoint!).Address);
        if (!_access.Allows(address))
        {
            Counters.CountReceived(RoughtimeCounters.Tcp, 1);
            Counters.CountDrop(RoughtimeCounters.Tcp, (int)RoughtimeListenerDrop.Denied);
            client.Dispose();
            return;
        }
        if (Interlocked.Increment(ref _tcpActive) > MaxTcpConnections)
        {
            Interlocked.Decrement(ref _tcpActive);
            Refuse(client);
            return;
        }
        if (!_limiter.TryAdmit(address, Stopwatch.GetElapsedTime(0, Stopwatch.GetTimestamp()).Ticks, out _))
        {
            Interlocked.Decrement(ref _tcpActive);
            Refuse(client);
            return;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await ServeTcpAsync(client, address);
            }
            finally
            {
                try
                {
                    _limiter.Release(address);
                }
                finally
                {
                    Interlocked.Decrement(ref _tcpActive); // the server's slot, whatever happened
                }
            }
        });
    }

    private void Refuse(Socket client)
    {
        Counters.CountReceived(RoughtimeCounters.Tcp, 1);
        Counters.CountDrop(RoughtimeCounters.Tcp, (int)RoughtimeListenerDrop.Refused);
        client.Dispose();
    }

    /// <summary>
    /// Requests one after another on one connection, each answered before the next is read; the
    /// connection closes at the first request that gets no answer (there is no error to send, §5.2),
    /// at a frame larger than a datagram slot, after <see cref="TcpIdleTimeout"/> without a request (or
    /// without reading its answer), and after <see cref="MaxRequestsPerConnection"/> requests.
    /// </summary>
    private async Task ServeTcpAsync(Socket client, NetAddress address)
    {
        using (client)
        await using (var stream = new NetworkStream(client, ownsSocket: false))
        {
            byte[] buffer = new byte[PacketBatch.SlotSize];
            try
            {
                for (int served = 0; served < MaxRequestsPerConnection && !_stopping.IsCancellationRequested; served++)
                {
                    using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                    idle.CancelAfter(TcpIdleTimeout);
                    int header = await stream.ReadAtLeastAsync(buffer.AsMemory(0, RoughtimePacket.HeaderLength), RoughtimePacket.HeaderLength,
                        throwOnEndOfStream: false, idle.Token);
                    if (header < RoughtimePacket.HeaderLength)
                    {
                        return; // the client closed (between requests, or in a header: nothing to answer)
                    }
                    uint length = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(8));
                    if (BinaryPrimitives.ReadUInt64LittleEndian(buffer) != RoughtimePacket.Magic)
                    {
                        Counters.CountReceived(RoughtimeCounters.Tcp, 1);
                        Counters.CountDrop(RoughtimeCounters.Tcp, (int)RoughtimeDrop.Framing);
                        return;
                    }
                    if (length > PacketBatch.SlotSize - RoughtimePacket.HeaderLength)
                    {
                        Counters.CountReceived(RoughtimeCounters.Tcp, 1);
                        Counters.CountDrop(RoughtimeCounters.Tcp, (int)RoughtimeListenerDrop.Truncated);
                        return;
                    }
                    int total = RoughtimePacket.HeaderLength + (int)length;
                    await stream.ReadExactlyAsync(buffer.AsMemory(RoughtimePacket.HeaderLength, (int)length), idle.Token);
                    var slot = new FrameSlot(buffer, total, address);
                    await _tcpSigning.WaitAsync(idle.Token);
                    try
                    {
                        // ntp.access again: a reload may have denied the client since it connected.
                        _tcpSigner.Answer(slot, 1, RoughtimeCounters.Tcp, _access);
                    }
                    finally
                    {
                        _tcpSigning.Release();
                    }
                    if (slot.Response == 0)
                    {
                        return;
                    }
                    await stream.WriteAsync(buffer.AsMemory(0, slot.Response), idle.Token);
                    Counters.CountAnswered(RoughtimeCounters.Tcp, 1);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
            {
                // idle too long, the client gone mid-frame, or the server stopping: the connection just ends
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop)
        {
            return; // the host's stop, then the failed start's clean-up: once is enough
        }
        _stop = true;
        await _stopping.CancelAsync();
        _tcp.ForEach(s => s.Dispose());
        try
        {
            await Task.WhenAll(_loops);
            // The connections end at the cancellation (their reads and writes take its token): wait for them, boundedly.
            for (int i = 0; i < 200 && Volatile.Read(ref _tcpActive) > 0; i++)
            {
                await Task.Delay(10);
            }
        }
        finally
        {
            _udpThread?.Join();
            _udp.ForEach(s => s.Dispose());
            _failures.Dispose();
        }
    }

    /// <summary>The slots of a received batch.</summary>
    private readonly struct BatchSlots(PacketBatch batch) : IRoughtimeSlots
    {
        public Span<byte> Buffer(int slot) => batch.Payload(slot);

        public int Length(int slot) => batch.Length(slot);

        public bool Truncated(int slot) => batch.Truncated(slot);

        public NetAddress Source(int slot) => batch.Source(slot);

        public void SetResponse(int slot, int length) => batch.SetResponse(slot, length);
    }

    /// <summary>One TCP frame, read whole into its buffer.</summary>
    private sealed class FrameSlot(byte[] buffer, int length, NetAddress source) : IRoughtimeSlots
    {
        public int Response { get; private set; }

        public Span<byte> Buffer(int slot) => buffer;

        public int Length(int slot) => length;

        public bool Truncated(int slot) => false;

        public NetAddress Source(int slot) => source;

        public void SetResponse(int slot, int length) => Response = length;
    }
}

/// <summary>Requests in buffers, answered in place.</summary>
internal interface IRoughtimeSlots
{
    /// <summary>The slot's whole buffer: the request at its start, the answer written over it.</summary>
    Span<byte> Buffer(int slot);

    /// <summary>The request's length.</summary>
    int Length(int slot);

    /// <summary>True when the request did not fit the buffer (it is never answered).</summary>
    bool Truncated(int slot);

    /// <summary>Who sent it.</summary>
    NetAddress Source(int slot);

    void SetResponse(int slot, int length);
}

/// <summary>
/// Answers a batch of Roughtime requests: the one place that decides what is signed. MIDP and RADI
/// come from the served state at signing; the online key from <see cref="RoughtimeKeys.For"/>. Not
/// thread-safe: one per UDP thread, one under a lock for TCP.
/// </summary>
internal sealed class RoughtimeSigner(RoughtimeKeys keys, ServerStateCell state, RoughtimeCounters counters, int capacity)
{
    private readonly RoughtimeResponder _responder = new(keys.PublicKey, capacity, PacketBatch.SlotSize);
    private readonly bool[] _accepted = new bool[capacity];

    /// <summary>Answers slots 0..<paramref name="count"/>−1 in place; returns how many got an answer (their lengths set on <paramref name="slots"/>).</summary>
    public int Answer<T>(T slots, int count, int transport, AccessList access) where T : IRoughtimeSlots
    {
        counters.CountReceived(transport, count);
        ServerState served = state.Current;
        if (!served.IsSynchronised)
        {
            // RFC 10049 §5.2.5 asks for a MIDP the server believes; an unsynchronised server has none.
            counters.CountDrop(transport, (int)RoughtimeListenerDrop.Unsynchronised, count);
            return 0;
        }
        _responder.Clear();
        int accepted = 0;
        for (int i = 0; i < count; i++)
        {
            _accepted[i] = false;
            if (!access.Allows(slots.Source(i)))
            {
                counters.CountDrop(transport, (int)RoughtimeListenerDrop.Denied);
                continue;
            }
            if (slots.Truncated(i))
            {
                counters.CountDrop(transport, (int)RoughtimeListenerDrop.Truncated);
                continue;
            }
            RoughtimeDrop drop = _responder.Accept(i, slots.Buffer(i)[..slots.Length(i)]);
            if (drop != RoughtimeDrop.None)
            {
                counters.CountDrop(transport, (int)drop);
                continue;
            }
            _accepted[i] = true;
            accepted++;
        }
        if (accepted == 0)
        {
            return 0;
        }
        long now = SystemClock.RealtimeNanoseconds();
        ulong midpoint = RoughtimeResponder.Midpoint(served.Transform.Apply(now));
        // RFC 5905 §11.2.3's root distance bounds the served time's error: RADI covers it and MIDP's rounding.
        uint radius = RoughtimeResponder.Radius((served.RootDelay / 2) + served.RootDispersionAt(now));
        _responder.Delegation = keys.For(midpoint);
        if (_responder.Sign(midpoint, radius))
        {
            counters.CountSigned(_responder.Signatures);
        }
        int answered = 0;
        for (int i = 0; i < count; i++)
        {
            if (!_accepted[i])
            {
                continue;
            }
            int length = _responder.WriteResponse(i, slots.Buffer(i), out RoughtimeDrop drop);
            if (length > 0)
            {
                slots.SetResponse(i, length);
                answered++;
            }
            else
            {
                counters.CountDrop(transport, (int)drop);
            }
        }
        return answered;
    }
}
