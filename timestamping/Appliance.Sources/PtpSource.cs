using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol;
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
/// timestamps), and so are Delay_Req departures (the error queue). Per exchange (§11.3):
/// offset (master − slave) = ((t1 − t2) + (t4 − t3)) / 2 and round trip = (t2 − t1) + (t4 − t3),
/// with t1 the Sync's origin (from Follow_Up), t2 its arrival, t3 the Delay_Req's departure and t4
/// its arrival at the master (from Delay_Resp). Correction fields are applied. A master on the PTP
/// timescale (flag set in Announce) is converted to UTC with its currentUtcOffset. It never sends
/// Sync or Announce: it cannot become a master.
/// <para>
/// Whom it believes. IEEE 1588-2008 authenticates nothing (its Annex K is experimental), so what ties
/// a message to the master is where it came from: both sockets take only what arrives on the
/// configured interface (SO_BINDTODEVICE), and of that only messages that carry the master's
/// clockIdentity <em>and</em> come from the address its Announce came from. A message naming the
/// master from any other address — a process on this host, or a node that copied the identity — is
/// refused and counted (<see cref="SourceCounters.Invalid"/>). The master is the first clock whose
/// Announce arrives from another host; another is taken only once it has been silent for
/// <see cref="MasterTimeoutMilliseconds"/> (there is no full BMCA: slave-only). The UTC offset is
/// learnt from the first Announce and may then change only by the leap second the master announced
/// (leap61: +1 s, leap59: −1 s, §13.3.2.6); an Announce that moves it otherwise is refused, so no
/// Announce can move the time by whole seconds. A node on the link that forges the master's source
/// address is not detectable here.
/// </para>
/// </summary>
public sealed class PtpSource(PtpOptions options, ILogger logger) : ITimeSource
{
    public static readonly IPAddress PrimaryGroup = IPAddress.Parse("224.0.1.129");

    /// <summary>A master silent this long (no accepted Announce) is gone: unreachable, and another may take over.</summary>
    public const long MasterTimeoutMilliseconds = 5000;

    /// <summary>
    /// How long a clock must announce a changed UTC offset (one no announced leap second explains),
    /// in every Announce and with nothing contradicting it from that clock, before it is believed:
    /// a grandmaster that corrects its offset, or a backup on another timescale after the master
    /// failed. A spoofer racing the real master cannot do that (the master's next Announce with the
    /// old offset starts the wait again); meanwhile that clock is not followed.
    /// </summary>
    public const long OffsetSettleMilliseconds = 16_000;

    private const byte Sync = 0x0, DelayReq = 0x1, FollowUp = 0x8, DelayResp = 0x9, Announce = 0xB;
    private const int HeaderLength = 34;

    /// <summary>flagField[1] (§13.3.2.6): leap61, leap59, ptpTimescale.</summary>
    private const byte Leap61 = 0x01, Leap59 = 0x02, PtpTimescale = 0x08;

    private readonly Lock _lock = new();
    private readonly byte[] _identity = NewIdentity();
    private byte[]? _master;
    private NetAddress _masterAddress;
    private NetAddress[] _localAddresses = [];
    private long _utcOffsetNanoseconds;
    private bool _utcOffsetKnown;
    private bool _offsetChangePending;             // a clock announces another UTC offset: since when, from whom
    private readonly byte[] _offsetChangeIdentity = new byte[10];
    private NetAddress _offsetChangeAddress;
    private long _offsetChange;
    private long _offsetChangeSince;
    private byte _leapFlags;
    private ushort _syncSequence;
    private long _syncArrival;
    private long _syncOrigin = -1;
    private bool _syncAwaitsFollowUp;              // a two-step Sync of the master we follow, its Follow_Up not yet read
    private ushort _followUpSequence;
    private long _followUpOrigin = -1;   // a Follow_Up taken before its Sync (the two ports are read on two threads)
    private ushort _delaySequence;
    private long _delayDeparture;
    private long _lastAnnounce;
    private bool _answered = true;
    private readonly LogSummary _refusals = new(logger, LogLevel.Warning, "source ptp: refused messages");

    public string Name => $"ptp:{options.Interface}/{options.Domain}";

    public string Kind => "ptp";

    public uint ReferenceId => ReferenceIds.Ptp;

    public SourceState State => _master is null ? SourceState.Starting
        : Environment.TickCount64 - _lastAnnounce > MasterTimeoutMilliseconds ? SourceState.Unreachable
        : Reach == 0 ? SourceState.Starting : SourceState.Reachable;

    public byte Reach { get; private set; }

    public double PollSeconds => Math.ScaleB(1.0, options.DelayRequestInterval);

    public SourceCounters Counters { get; } = new();

    /// <summary>
    /// This host's own addresses (those of every interface at start): an Announce from one of them
    /// is a local process, never a master. Set by <see cref="RunAsync"/>; tests set it directly.
    /// </summary>
    internal IReadOnlyList<NetAddress> LocalAddresses
    {
        get
        {
            lock (_lock)
            {
                return _localAddresses;
            }
        }

        set
        {
            lock (_lock)
            {
                _localAddresses = [.. value];
            }
        }
    }

    /// <summary>A random clock identity (IEEE 1588 §7.5.2.2 allows one not derived from a MAC), port 1.</summary>
    private static byte[] NewIdentity()
    {
        var identity = new byte[10];
        RandomNumberGenerator.Fill(identity.AsSpan(0, 8));
        identity[9] = 1;
        return identity;
    }

    /// <summary>
    /// Opens both sockets before its first await (a caller that runs it on a thread inside a network
    /// namespace gets sockets in that namespace), then runs until cancelled.
    /// </summary>
    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        NetworkInterface[] interfaces = NetworkInterface.GetAllNetworkInterfaces();
        NetworkInterface nic = interfaces.FirstOrDefault(n => n.Name == options.Interface)
            ?? throw new InvalidOperationException($"ptp: no interface {options.Interface} (ip link shows the names)");
        int index = nic.GetIPProperties().GetIPv4Properties().Index;
        LocalAddresses = [.. interfaces.SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => NetAddress.FromIPAddress(a.Address))];
        var socketOptions = new TimestampedSocketOptions
        {
            ReceiveBufferBytes = 256 << 10,
            ReceiveTimeout = TimeSpan.FromMilliseconds(100),
            Device = options.Interface,
        };
        using TimestampedSocket events = TimestampedSocket.Open(new IPEndPoint(IPAddress.Any, options.EventPort), socketOptions);
        events.JoinMulticast(PrimaryGroup, index);
        events.EnableTransmitTimestamps();
        using TimestampedSocket general = TimestampedSocket.Open(new IPEndPoint(IPAddress.Any, options.GeneralPort), socketOptions);
        general.JoinMulticast(PrimaryGroup, index);
        logger.LogInformation("source ptp: listening on {Interface} (index {Index}) only, domain {Domain}", options.Interface, index, options.Domain);

        Task eventLoop = Task.Factory.StartNew(() => EventLoop(events, cancellationToken), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Task generalLoop = Task.Factory.StartNew(() => GeneralLoop(general, sink, cancellationToken), cancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
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
                OnEvent(batch.Payload(i)[..batch.Length(i)], batch.Source(i), arrival != 0 ? arrival : SystemClock.RealtimeNanoseconds());
            }
        }
    }

    /// <summary>Announce, Follow_Up and Delay_Resp; a measurement per Delay_Resp that answers ours.</summary>
    private void GeneralLoop(TimestampedSocket socket, MeasurementSink sink, CancellationToken cancellationToken)
    {
        using var batch = new PacketBatch(8);
        while (!cancellationToken.IsCancellationRequested)
        {
            int n = socket.Receive(batch);
            for (int i = 0; i < n; i++)
            {
                if (OnGeneral(batch.Payload(i)[..batch.Length(i)], batch.Source(i), Environment.TickCount64) is { } measurement)
                {
                    Reach = (byte)((Reach << 1) | 1);
                    Counters.Answers++;
                    sink(this, measurement);
                }
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
            if (!WriteDelayRequest(request))
            {
                continue;
            }
            // Held across the send: the Delay_Resp is not taken before its departure time is known.
            lock (_lock)
            {
                batch.Clear();
                batch.Load(0, request, destination, 0);
                batch.SetResponse(0, request.Length);
                long beforeSend = SystemClock.RealtimeNanoseconds();
                socket.Send(batch);
                // The kernel's software transmit timestamp, when it comes (it does on Linux within microseconds).
                long stamped = socket.ReadTransmitTimestamp(batch, TimeSpan.FromMilliseconds(20));
                if (stamped == 0)
                {
                    Counters.Invalid++; // fell back to the reading before the send
                }
                DelayRequestSent(stamped != 0 ? stamped : beforeSend);
            }
        }
    }

    /// <summary>Writes the next Delay_Req into <paramref name="request"/> (44 bytes); false while there is no master or Sync to pair it with.</summary>
    internal bool WriteDelayRequest(Span<byte> request)
    {
        lock (_lock)
        {
            if (_master is null || _syncOrigin < 0)
            {
                return false;
            }
            _delaySequence++;
            WriteHeader(request, DelayReq, 44, _delaySequence, control: 1);
            if (!_answered)
            {
                Reach <<= 1; // the previous request went unanswered
            }
            _answered = false;
            Counters.Requests++;
            return true;
        }
    }

    /// <summary>The departure time (t3) of the Delay_Req just written.</summary>
    internal void DelayRequestSent(long departure)
    {
        lock (_lock)
        {
            _delayDeparture = departure;
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

    /// <summary>A Sync's or Follow_Up's origin timestamp plus its correction, in UTC (the master's offset taken off).</summary>
    private long OriginUtc(ReadOnlySpan<byte> message) => Timestamp(message[34..]) + Correction(message) - _utcOffsetNanoseconds;

    /// <summary>correctionField: nanoseconds × 2^16 (§13.3.2.7).</summary>
    private static long Correction(ReadOnlySpan<byte> message) => BinaryPrimitives.ReadInt64BigEndian(message[8..]) >> 16;

    /// <summary>PTP version 2 on our domain: the only messages looked at.</summary>
    private bool Ours(ReadOnlySpan<byte> message) =>
        message.Length >= HeaderLength && message[4] == options.Domain && (message[1] & 0x0f) == 2;

    /// <summary>
    /// True when the message comes from the master we follow: its clockIdentity (sourcePortIdentity)
    /// from the address its Announce came from. The identity from anywhere else is refused and counted.
    /// </summary>
    private bool FromMaster(ReadOnlySpan<byte> message, NetAddress source)
    {
        if (_master is null || !message.Slice(20, 10).SequenceEqual(_master))
        {
            return false; // another clock's message (another slave's, a passive master's): not ours to follow
        }
        if (source != _masterAddress)
        {
            RefuseImpostor(source);
            return false;
        }
        return true;
    }

    private void RefuseImpostor(NetAddress source)
    {
        if (Refused())
        {
            logger.LogWarning("source ptp: refused a message naming the master {Master} from {Source}, not from its address {Address}; "
                + "further refusals are counted in appliance_source_invalid_total", Convert.ToHexString(_master!), source, _masterAddress);
        }
    }

    /// <summary>Counts a refused message; true when it should also be logged (the first of a spell; the rest are counted once a minute).</summary>
    private bool Refused()
    {
        Counters.Invalid++;
        return _refusals.Occurred();
    }

    /// <summary>A datagram from the event port (319), from <paramref name="source"/>, received at <paramref name="arrival"/> (Unix ns).</summary>
    internal void OnEvent(ReadOnlySpan<byte> message, NetAddress source, long arrival)
    {
        if (message.Length < 44 || (message[0] & 0x0f) != Sync || !Ours(message))
        {
            return;
        }
        lock (_lock)
        {
            if (!FromMaster(message, source))
            {
                return;
            }
            _syncSequence = BinaryPrimitives.ReadUInt16BigEndian(message[30..]);
            _syncArrival = arrival;
            bool twoStep = (message[6] & 0x02) != 0;
            _syncAwaitsFollowUp = false;
            if (!twoStep)
            {
                _syncOrigin = OriginUtc(message);
            }
            else if (_followUpSequence == _syncSequence && _followUpOrigin >= 0)
            {
                _syncOrigin = _followUpOrigin; // its Follow_Up was read first
            }
            else
            {
                _syncOrigin = -1; // until its Follow_Up
                _syncAwaitsFollowUp = true;
            }
            _followUpOrigin = -1; // a Follow_Up kept for an earlier Sync never completes a later one
        }
    }

    /// <summary>
    /// A datagram from the general port (320), from <paramref name="source"/>, at monotonic time
    /// <paramref name="now"/> (ms); a measurement when it is the Delay_Resp to our Delay_Req.
    /// </summary>
    internal Measurement? OnGeneral(ReadOnlySpan<byte> message, NetAddress source, long now)
    {
        if (!Ours(message))
        {
            return null;
        }
        int type = message[0] & 0x0f;
        lock (_lock)
        {
            if (type == Announce)
            {
                if (message.Length >= 64)
                {
                    OnAnnounce(message, source, now);
                }
                return null;
            }
            if (!FromMaster(message, source))
            {
                return null;
            }
            ushort sequence = BinaryPrimitives.ReadUInt16BigEndian(message[30..]);
            if (type == FollowUp && message.Length >= 44)
            {
                // Its Sync may not have been read yet: the event port has its own thread. Kept, it
                // completes that Sync when it comes (ptp4l does the same).
                long origin = OriginUtc(message);
                if (_syncAwaitsFollowUp && sequence == _syncSequence)
                {
                    // Only a Sync of this master that waits for it: never one taken before a master change.
                    _syncOrigin = origin;
                    _syncAwaitsFollowUp = false;
                }
                else
                {
                    _followUpSequence = sequence;
                    _followUpOrigin = origin;
                }
                return null;
            }
            if (type == DelayResp && message.Length >= 54 && sequence == _delaySequence && message.Slice(44, 10).SequenceEqual(_identity))
            {
                // A master whose Announces stopped (or were refused) is not followed any more.
                if (_syncOrigin < 0 || now - _lastAnnounce > MasterTimeoutMilliseconds)
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

    /// <summary>
    /// Takes the first master heard from another host, and another only when it has gone quiet (no
    /// full BMCA: slave-only); refuses the master's identity from another address, and a UTC offset
    /// that moves by more than the leap second the master announced until that clock has announced
    /// it without contradiction for <see cref="OffsetSettleMilliseconds"/>.
    /// </summary>
    private void OnAnnounce(ReadOnlySpan<byte> message, NetAddress source, long now)
    {
        ReadOnlySpan<byte> identity = message.Slice(20, 10);
        bool current = _master is not null && identity.SequenceEqual(_master);
        if (current && source != _masterAddress)
        {
            RefuseImpostor(source);
            return;
        }
        if (!current)
        {
            if (_master is not null && now - _lastAnnounce <= MasterTimeoutMilliseconds)
            {
                return; // another clock while ours is alive: not followed
            }
            if (Array.IndexOf(_localAddresses, source) >= 0)
            {
                if (Refused())
                {
                    logger.LogWarning("source ptp: refused an Announce from {Source}, an address of this host: a master is another host; "
                        + "further refusals are counted in appliance_source_invalid_total", source);
                }
                return;
            }
        }
        byte flags = message[7];
        long utcOffset = (flags & PtpTimescale) != 0 ? BinaryPrimitives.ReadInt16BigEndian(message[44..]) * 1_000_000_000L : 0;
        if (_utcOffsetKnown && utcOffset != _utcOffsetNanoseconds && !AnnouncedLeap(utcOffset - _utcOffsetNanoseconds))
        {
            if (!OffsetChangeSettled(identity, source, utcOffset, now))
            {
                if (Refused())
                {
                    logger.LogWarning("source ptp: refused an Announce from {Source} that moves the UTC offset from {Known} s to {Offset} s "
                        + "without announcing that leap second; it is believed once that clock has announced it, and nothing else, for {Settle} s. "
                        + "Further refusals are counted in appliance_source_invalid_total",
                        source, _utcOffsetNanoseconds / 1_000_000_000, utcOffset / 1_000_000_000, OffsetSettleMilliseconds / 1000);
                }
                return;
            }
            logger.LogWarning("source ptp: {Source} has announced a UTC offset of {Offset} s (not {Known} s) for {Settle} s without contradiction: "
                + "taken", source, utcOffset / 1_000_000_000, _utcOffsetNanoseconds / 1_000_000_000, OffsetSettleMilliseconds / 1000);
        }
        else if (current)
        {
            _offsetChangePending = false; // the master itself confirms the offset we know
        }
        if (!current)
        {
            logger.LogInformation("source ptp: master {Master} at {Address} on domain {Domain}", Convert.ToHexString(identity), source, options.Domain);
            _master = identity.ToArray();
            _masterAddress = source;
            _syncOrigin = -1;
            _syncAwaitsFollowUp = false;
            _followUpOrigin = -1;
        }
        else if (utcOffset != _utcOffsetNanoseconds && AnnouncedLeap(utcOffset - _utcOffsetNanoseconds))
        {
            logger.LogInformation("source ptp: the master's UTC offset is now {Offset} s (the leap second it announced)", utcOffset / 1_000_000_000);
        }
        if (utcOffset != _utcOffsetNanoseconds)
        {
            // The exchange in flight began under the old offset: its t1 and t4 would straddle the change.
            _syncOrigin = -1;
            _syncAwaitsFollowUp = false;
            _followUpOrigin = -1;
        }
        _lastAnnounce = now;
        _utcOffsetNanoseconds = utcOffset;
        _utcOffsetKnown = true;
        _leapFlags = (byte)(flags & (Leap61 | Leap59));
    }

    /// <summary>
    /// Whether <paramref name="identity"/> at <paramref name="source"/> has announced
    /// <paramref name="offset"/> in every Announce for <see cref="OffsetSettleMilliseconds"/>; a
    /// different offset or clock starts the wait again.
    /// </summary>
    private bool OffsetChangeSettled(ReadOnlySpan<byte> identity, NetAddress source, long offset, long now)
    {
        if (!_offsetChangePending || _offsetChange != offset || source != _offsetChangeAddress || !identity.SequenceEqual(_offsetChangeIdentity))
        {
            _offsetChangePending = true;
            identity.CopyTo(_offsetChangeIdentity);
            _offsetChangeAddress = source;
            _offsetChange = offset;
            _offsetChangeSince = now;
            return false;
        }
        if (now - _offsetChangeSince < OffsetSettleMilliseconds)
        {
            return false;
        }
        _offsetChangePending = false;
        return true;
    }

    /// <summary>Whether the master's last Announce announced the leap second that explains a change of the UTC offset.</summary>
    private bool AnnouncedLeap(long change) =>
        (change == 1_000_000_000L && (_leapFlags & Leap61) != 0) || (change == -1_000_000_000L && (_leapFlags & Leap59) != 0);

    public void Dispose() => _refusals.Dispose();
}
