using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol.Client;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>A PTP domain to listen to, on one interface.</summary>
public sealed record PtpOptions
{
    /// <summary>The interface the master is reached on (its IPv4 address and index are looked up).</summary>
    public required string Interface { get; init; }

    public byte Domain { get; init; }

    /// <summary>log2 seconds between Delay_Req messages.</summary>
    public int DelayRequestInterval { get; init; }

    public int EventPort { get; init; } = 319;

    public int GeneralPort { get; init; } = 320;
}

/// <summary>
/// An IEEE 1588-2008 ordinary clock in slave-only mode over UDP/IPv4 (Annex D): it listens for the
/// master's Announce, Sync and Follow_Up (two-step) and measures the path with the end-to-end
/// Delay_Req/Delay_Resp mechanism. Sync arrivals are timestamped by the kernel (software receive
/// timestamps); Delay_Req departures are read just before the send. Per exchange (§11.3):
/// offset (master − slave) = ((t1 − t2) + (t4 − t3)) / 2 and round trip = (t2 − t1) + (t4 − t3),
/// with t1 the Sync's origin (from Follow_Up), t2 its arrival, t3 the Delay_Req's departure and t4
/// its arrival at the master (from Delay_Resp). Correction fields are applied. A master on the PTP
/// timescale (flag set in Announce) is converted to UTC with its currentUtcOffset. It never sends
/// Sync or Announce: it cannot become a master.
/// </summary>
public sealed class PtpSource(PtpOptions options, ILogger logger) : ITimeSource
{
    public static readonly IPAddress PrimaryGroup = IPAddress.Parse("224.0.1.129");

    private const byte Sync = 0x0, DelayReq = 0x1, FollowUp = 0x8, DelayResp = 0x9, Announce = 0xB;
    private const int HeaderLength = 34;

    private readonly Lock _lock = new();
    private readonly byte[] _identity = NewIdentity();
    private byte[]? _master;
    private long _utcOffsetNanoseconds;
    private ushort _syncSequence;
    private long _syncArrival;
    private long _syncOrigin = -1;
    private ushort _delaySequence;
    private long _delayDeparture;
    private long _lastAnnounce;
    private bool _answered = true;

    public string Name => $"ptp:{options.Interface}/{options.Domain}";

    public string Kind => "ptp";

    public uint ReferenceId => ReferenceIds.Ptp;

    public SourceState State => _master is null ? SourceState.Starting
        : Environment.TickCount64 - _lastAnnounce > 5000 ? SourceState.Unreachable
        : Reach == 0 ? SourceState.Starting : SourceState.Reachable;

    public byte Reach { get; private set; }

    public double PollSeconds => Math.ScaleB(1.0, options.DelayRequestInterval);

    public SourceCounters Counters { get; } = new();

    /// <summary>A random clock identity (IEEE 1588 §7.5.2.2 allows one not derived from a MAC), port 1.</summary>
    private static byte[] NewIdentity()
    {
        var identity = new byte[10];
        RandomNumberGenerator.Fill(identity.AsSpan(0, 8));
        identity[9] = 1;
        return identity;
    }

    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        NetworkInterface nic = NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(n => n.Name == options.Interface)
            ?? throw new InvalidOperationException($"ptp: no interface {options.Interface} (ip link shows the names)");
        int index = nic.GetIPProperties().GetIPv4Properties().Index;
        using TimestampedSocket events = TimestampedSocket.Open(new IPEndPoint(IPAddress.Any, options.EventPort),
            new TimestampedSocketOptions { ReceiveBufferBytes = 256 << 10, ReceiveTimeout = TimeSpan.FromMilliseconds(100) });
        events.JoinMulticast(PrimaryGroup, index);
        events.EnableTransmitTimestamps();
        using var general = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        general.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        general.Bind(new IPEndPoint(IPAddress.Any, options.GeneralPort));
        general.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.AddMembership, new MulticastOption(PrimaryGroup, index));
        logger.LogInformation("source ptp: listening on {Interface} (index {Index}), domain {Domain}", options.Interface, index, options.Domain);

        Task eventLoop = Task.Factory.StartNew(() => EventLoop(events, cancellationToken), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Task generalLoop = GeneralLoopAsync(general, sink, cancellationToken);
        Task delayLoop = DelayRequestLoopAsync(events, cancellationToken);
        try
        {
            await Task.WhenAll(eventLoop, generalLoop, delayLoop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Sync arrivals, kernel-timestamped (and our own Delay_Req looping back, ignored).</summary>
    private void EventLoop(TimestampedSocket socket, CancellationToken cancellationToken)
    {
        using var batch = new PacketBatch(8);
        while (!cancellationToken.IsCancellationRequested)
        {
            int n = socket.Receive(batch);
            for (int i = 0; i < n; i++)
            {
                long arrival = batch.ReceiveTimestamp(i);
                OnEvent(batch.Payload(i)[..batch.Length(i)], arrival != 0 ? arrival : SystemClock.RealtimeNanoseconds());
            }
        }
    }

    private async Task GeneralLoopAsync(Socket socket, MeasurementSink sink, CancellationToken cancellationToken)
    {
        var buffer = new byte[1500];
        while (!cancellationToken.IsCancellationRequested)
        {
            int length = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (OnGeneral(buffer.AsSpan(0, length)) is { } measurement)
            {
                Reach = (byte)((Reach << 1) | 1);
                Counters.Answers++;
                sink(this, measurement);
            }
        }
    }

    private async Task DelayRequestLoopAsync(TimestampedSocket socket, CancellationToken cancellationToken)
    {
        using var batch = new PacketBatch(1);
        var request = new byte[44];
        var destination = new IPEndPoint(PrimaryGroup, options.EventPort);
        while (!cancellationToken.IsCancellationRequested)
        {
            // ±1/4 of the interval at random (§9.5.11.2 asks for randomised Delay_Req timing).
            double interval = PollSeconds * (0.75 + (Random.Shared.NextDouble() / 2));
            await Task.Delay(TimeSpan.FromSeconds(interval), cancellationToken).ConfigureAwait(false);
            if (_master is null || _syncOrigin < 0)
            {
                continue;
            }
            lock (_lock)
            {
                _delaySequence++;
                WriteHeader(request, DelayReq, 44, _delaySequence, control: 1);
                if (!_answered)
                {
                    Reach <<= 1; // the previous request went unanswered
                }
                _answered = false;
                Counters.Requests++;
                batch.Clear();
                batch.Load(0, request, destination, 0);
                batch.SetResponse(0, request.Length);
                _delayDeparture = SystemClock.RealtimeNanoseconds();
                socket.Send(batch);
                // The kernel's software transmit timestamp, when it comes (it does on Linux within microseconds).
                long stamped = socket.ReadTransmitTimestamp(batch, TimeSpan.FromMilliseconds(20));
                if (stamped != 0)
                {
                    _delayDeparture = stamped;
                }
                else
                {
                    Counters.Invalid++; // fell back to the reading before the send
                }
            }
        }
    }

    private void WriteHeader(Span<byte> message, byte type, int length, ushort sequence, byte control)
    {
        message.Clear();
        message[0] = type;
        message[1] = 2; // versionPTP
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], (ushort)length);
        message[4] = options.Domain;
        _identity.CopyTo(message[20..]);
        BinaryPrimitives.WriteUInt16BigEndian(message[30..], sequence);
        message[32] = control;
        message[33] = 0x7f;
    }

    private static long Timestamp(ReadOnlySpan<byte> field)
    {
        // UInteger48 seconds, UInteger32 nanoseconds (§5.3.3).
        long seconds = ((long)BinaryPrimitives.ReadUInt16BigEndian(field) << 32) | BinaryPrimitives.ReadUInt32BigEndian(field[2..]);
        return (seconds * 1_000_000_000L) + BinaryPrimitives.ReadUInt32BigEndian(field[6..]);
    }

    /// <summary>correctionField: nanoseconds × 2^16 (§13.3.2.7).</summary>
    private static long Correction(ReadOnlySpan<byte> message) => BinaryPrimitives.ReadInt64BigEndian(message[8..]) >> 16;

    private bool FromMaster(ReadOnlySpan<byte> message) =>
        message.Length >= HeaderLength && message[4] == options.Domain && (message[1] & 0x0f) == 2
        && _master is not null && message.Slice(20, 10).SequenceEqual(_master);

    internal void OnEvent(ReadOnlySpan<byte> message, long arrival)
    {
        if (message.Length < 44 || (message[0] & 0x0f) != Sync || !FromMaster(message))
        {
            return;
        }
        lock (_lock)
        {
            _syncSequence = BinaryPrimitives.ReadUInt16BigEndian(message[30..]);
            _syncArrival = arrival;
            bool twoStep = (message[6] & 0x02) != 0;
            _syncOrigin = twoStep ? -1 : Timestamp(message[34..]) + Correction(message) - _utcOffsetNanoseconds;
        }
    }

    internal Measurement? OnGeneral(ReadOnlySpan<byte> message)
    {
        if (message.Length < HeaderLength || message[4] != options.Domain)
        {
            return null;
        }
        int type = message[0] & 0x0f;
        lock (_lock)
        {
            if (type == Announce && message.Length >= 64)
            {
                OnAnnounce(message);
                return null;
            }
            if (!FromMaster(message))
            {
                return null;
            }
            ushort sequence = BinaryPrimitives.ReadUInt16BigEndian(message[30..]);
            if (type == FollowUp && message.Length >= 44 && sequence == _syncSequence)
            {
                _syncOrigin = Timestamp(message[34..]) + Correction(message) - _utcOffsetNanoseconds;
                return null;
            }
            if (type == DelayResp && message.Length >= 54 && sequence == _delaySequence && message.Slice(44, 10).SequenceEqual(_identity))
            {
                if (_syncOrigin < 0)
                {
                    return null;
                }
                long t1 = _syncOrigin, t2 = _syncArrival, t3 = _delayDeparture;
                long t4 = Timestamp(message[34..]) - Correction(message) - _utcOffsetNanoseconds;
                long offset = ((t1 - t2) + (t4 - t3)) / 2;
                long roundTrip = (t2 - t1) + (t4 - t3);
                if (roundTrip < 0 || roundTrip > 1_000_000_000)
                {
                    Counters.Invalid++;
                    return null;
                }
                _answered = true;
                return Measurement.FromReferenceClock(t2, t2 + offset, roundTrip / 1e9, 1e-7, ReferenceIds.Ptp);
            }
        }
        return null;
    }

    /// <summary>Takes the first master heard, and another only when it has gone quiet (no full BMCA: slave-only).</summary>
    private void OnAnnounce(ReadOnlySpan<byte> message)
    {
        ReadOnlySpan<byte> source = message.Slice(20, 10);
        bool quiet = Environment.TickCount64 - _lastAnnounce > 5000;
        if (_master is null || quiet || source.SequenceEqual(_master))
        {
            if (_master is null || !source.SequenceEqual(_master))
            {
                logger.LogInformation("source ptp: master {Master} on domain {Domain}", Convert.ToHexString(source), options.Domain);
                _syncOrigin = -1;
            }
            _master = source.ToArray();
            _lastAnnounce = Environment.TickCount64;
            // flagField[1]: 0x04 currentUtcOffsetValid, 0x08 ptpTimescale (§13.3.2.6).
            bool ptpTimescale = (message[7] & 0x08) != 0;
            short utcOffset = BinaryPrimitives.ReadInt16BigEndian(message[44..]);
            _utcOffsetNanoseconds = ptpTimescale ? utcOffset * 1_000_000_000L : 0;
        }
    }

    public void Dispose()
    {
    }
}
