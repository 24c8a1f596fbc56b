using System.Buffers.Binary;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;

namespace Appliance.Protocol.Client;

/// <summary>How one upstream association polls (RFC 5905 client mode, RFC 8915 with <see cref="Nts"/>).</summary>
public sealed record AssociationOptions
{
    public bool Nts { get; init; }

    public bool Iburst { get; init; } = true;

    public int MinPoll { get; init; } = 6;

    public int MaxPoll { get; init; } = 10;

    /// <summary>How long to wait for an answer before the request counts as lost.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>What the driver is to do when <see cref="NtpAssociation.Poll"/> is called.</summary>
public enum PollAction : byte
{
    /// <summary>Nothing now: sleep until <see cref="NtpAssociation.WakeAt"/>.</summary>
    Wait,

    /// <summary>Send the request written into the caller's buffer, then report <see cref="NtpAssociation.Sent"/>.</summary>
    Send,

    /// <summary>NTS: no cookies left: run an NTS-KE exchange and report it (<see cref="NtpAssociation.KeyExchanged"/> or <see cref="NtpAssociation.Failed"/>).</summary>
    KeyExchange,

    /// <summary>The server said DENY or RSTR (RFC 5905 §7.4): never poll it again.</summary>
    Stop,
}

/// <summary>What a received datagram was to this association: a metric label and a log line.</summary>
public enum ReplyReason : byte
{
    /// <summary>A valid answer: the measurement is handed out.</summary>
    Sample,

    /// <summary>A valid answer from a server that is not synchronised itself (LI 3 or stratum 16): reachable, no sample.</summary>
    ServerUnsynchronised,

    /// <summary>KoD RATE: poll slower (RFC 5905 §7.4).</summary>
    KissRate,

    /// <summary>KoD DENY: stop.</summary>
    KissDeny,

    /// <summary>KoD RSTR: stop.</summary>
    KissRestrict,

    /// <summary>Another kiss code: no time in it, nothing to act on.</summary>
    KissOther,

    /// <summary>NTS NAK (RFC 8915 §5.7): the server cannot read our cookies; a new key exchange follows.</summary>
    NtsNak,

    /// <summary>Not an answer to the outstanding request (none outstanding, or another origin): late, duplicated or spoofed. Not counted as invalid.</summary>
    NotOurs,

    /// <summary>Shorter than an NTP header.</summary>
    Malformed,

    /// <summary>Mode is not server (4).</summary>
    BadMode,

    /// <summary>Version is not 3 or 4.</summary>
    BadVersion,

    /// <summary>NTS: the Unique Identifier or the authenticator does not check out; ignored, KoDs included (RFC 8915 §5.7).</summary>
    Unauthenticated,

    /// <summary>Receive or transmit timestamp zero (RFC 5905 §8: a server that has not answered properly).</summary>
    ZeroTimestamps,

    /// <summary>T3 before T2: the server's timestamps contradict themselves.</summary>
    TransmitBeforeReceive,
}

/// <summary>Why the driver could not do what the association asked.</summary>
public enum AssociationFailure : byte
{
    /// <summary>The name did not resolve, or the request could not be sent.</summary>
    Network,

    /// <summary>NTS-KE failed (TLS, refused, no cookies).</summary>
    KeyExchange,
}

/// <summary>
/// One upstream association as a sans-IO machine (RFC 5905 client mode; RFC 8915 §5 with NTS): it is
/// told the time and handed datagrams, and says what to do — send these bytes, wake at
/// <see cref="WakeAt"/>, here is a measurement, a KoD, an invalid answer and why. Poll adaptation, the
/// reach register, iburst and KoD back-off live in its <see cref="PollSchedule"/>; the NTS cookie pool
/// and NAK handling here. It reads no clock and draws no randomness of its own: the driver passes
/// "now" (monotonic nanoseconds for timers; the system clock's Unix nanoseconds for T1 and T4) and the
/// random source, so the daemon's driver and the simulation run the same machine.
/// Requests carry a random transmit timestamp (the NTP data-minimisation draft, as chrony does): they
/// reveal nothing of our clock, and an off-path attacker cannot guess what an answer must echo.
/// </summary>
public sealed class NtpAssociation
{
    /// <summary>NTS cookies to hold (RFC 8915 §5.7: ask for as many as it takes to get back to eight).</summary>
    public const int CookiePool = 8;

    private readonly AssociationOptions _options;
    private readonly IRandomSource _random;
    private readonly long _timeout;
    private readonly byte[] _uniqueId = new byte[NtsClientPacket.UniqueIdentifierLength];
    private readonly byte[] _plaintext = new byte[2048];
    private readonly Queue<byte[]> _cookies = new();
    private readonly CookieSink _keepCookie;
    private INtsAead? _c2s;
    private INtsAead? _s2c;
    private bool _awaiting;
    private ulong _transmit;
    private long _t1;
    private long _polledAt;
    private long _deadline;
    private int _failures;
    private bool _keyExchangeFailed;
    private bool _serverUnsynchronised;

    public NtpAssociation(AssociationOptions options, IRandomSource random)
    {
        _options = options;
        _random = random;
        _timeout = (long)(options.Timeout.TotalMilliseconds * 1e6);
        Schedule = new PollSchedule(options.MinPoll, options.MaxPoll, options.Iburst);
        _keepCookie = cookie => _cookies.Enqueue(cookie.ToArray());
    }

    public PollSchedule Schedule { get; }

    public SourceCounters Counters { get; } = new();

    /// <summary>Monotonic nanoseconds at which <see cref="Poll"/> wants to be called next (the first poll is at once).</summary>
    public long WakeAt { get; private set; } = long.MinValue;

    /// <summary>A request is out and its answer neither in nor given up on (until <see cref="WakeAt"/>).</summary>
    public bool AwaitingReply => _awaiting;

    /// <summary>NTS cookies in hand.</summary>
    public int Cookies => _cookies.Count;

    public SourceState State => _keyExchangeFailed ? SourceState.KeyExchangeFailed : Schedule.State(_serverUnsynchronised);

    /// <summary>
    /// Called at or after <see cref="WakeAt"/>. An unanswered request past its timeout is given up
    /// (the reach register already counts it lost); then, when the next poll is due, the request is
    /// written into <paramref name="request"/> (1280 bytes hold any NTS request) and its length returned.
    /// </summary>
    public PollAction Poll(long now, Span<byte> request, out int length)
    {
        length = 0;
        if (Schedule.Stopped)
        {
            return PollAction.Stop;
        }
        if (_awaiting)
        {
            if (now < _deadline)
            {
                return PollAction.Wait;
            }
            _awaiting = false;
            _failures = 0;
            ScheduleNext(_polledAt, Schedule.NextIntervalSeconds);
        }
        if (now < WakeAt)
        {
            return PollAction.Wait;
        }
        if (_options.Nts && (_c2s is null || _cookies.Count == 0))
        {
            return PollAction.KeyExchange;
        }
        length = WriteRequest(request);
        Schedule.OnSend();
        Counters.Requests++;
        _awaiting = true;
        _polledAt = now;
        _deadline = now + _timeout;
        WakeAt = _deadline;
        return PollAction.Send;
    }

    /// <summary>
    /// The request left at <paramref name="t1"/> (the system clock, read just before the send): T1 of
    /// the measurement. The timeout runs from here, <paramref name="now"/> (monotonic): what the driver
    /// spent before the send (a name to resolve, a socket to open) is not the server's delay.
    /// </summary>
    public void Sent(long t1, long now)
    {
        _t1 = t1;
        _deadline = now + _timeout;
        WakeAt = _deadline;
    }

    /// <summary>
    /// The driver could not do what was asked. Retries back off exponentially (2 s, 4 s, … up to
    /// 2^maxpoll), so a broken server or network is not hammered.
    /// </summary>
    public void Failed(long now, AssociationFailure failure)
    {
        _awaiting = false;
        _failures++;
        _keyExchangeFailed = failure == AssociationFailure.KeyExchange && _c2s is null;
        ScheduleNext(now, Math.ScaleB(1.0, Math.Min(_failures, Math.Max(_options.MaxPoll, 1))));
    }

    /// <summary>NTS-KE done (RFC 8915 §4): the AEAD agreed, its keys and the cookies for the NTP exchange; the next poll is at once.</summary>
    public void KeyExchanged(AeadAlgorithm aead, ReadOnlySpan<byte> c2s, ReadOnlySpan<byte> s2c, IEnumerable<byte[]> cookies, long now)
    {
        _c2s = AeadAlgorithms.Create(aead, c2s);
        _s2c = AeadAlgorithms.Create(aead, s2c);
        _cookies.Clear();
        foreach (byte[] cookie in cookies)
        {
            _cookies.Enqueue(cookie);
        }
        _keyExchangeFailed = false;
        _failures = 0;
        Counters.KeyExchanges++;
        WakeAt = now;
    }

    /// <summary>
    /// A datagram arrived at <paramref name="t4"/> (the system clock, a kernel timestamp where there
    /// is one) while <paramref name="now"/> (monotonic) — the RFC 5905 §8 and RFC 8915 §5.7 checks.
    /// </summary>
    public ReplyReason Receive(ReadOnlySpan<byte> datagram, long t4, long now, out Measurement measurement)
    {
        measurement = default;
        if (!NtpHeader.TryRead(datagram, out NtpHeader header))
        {
            return Invalid(ReplyReason.Malformed);
        }
        // Too late counts as lost: the reach register already says so, and the next request is due.
        if (!_awaiting || now >= _deadline || header.Origin.Value != _transmit)
        {
            return ReplyReason.NotOurs;
        }
        if (header.Mode != NtpMode.Server)
        {
            return Invalid(ReplyReason.BadMode);
        }
        if (header.Version is not (3 or 4))
        {
            return Invalid(ReplyReason.BadVersion);
        }
        if (_s2c is { } s2c)
        {
            NtsResponseCheck check = NtsClientPacket.CheckResponse(datagram, _uniqueId, s2c, _plaintext, out _, _keepCookie);
            if (check == NtsResponseCheck.Nak)
            {
                // The server can no longer open our cookies (its keys rotated past them): a new key exchange.
                Counters.NtsNaks++;
                _c2s = _s2c = null;
                _cookies.Clear();
                return End(ReplyReason.NtsNak);
            }
            if (check != NtsResponseCheck.Authentic)
            {
                return Invalid(ReplyReason.Unauthenticated);
            }
        }
        if (header.Stratum == 0 && KissOfDeath.Read(datagram) is { } code)
        {
            Counters.KissOfDeath++;
            Schedule.OnKissOfDeath(code, header.Poll);
            return End(code switch
            {
                KissCode.Rate => ReplyReason.KissRate,
                KissCode.Deny => ReplyReason.KissDeny,
                KissCode.Restrict => ReplyReason.KissRestrict,
                _ => ReplyReason.KissOther,
            });
        }
        if (header.Transmit.IsZero || header.Receive.IsZero)
        {
            Counters.Invalid++;
            return End(ReplyReason.ZeroTimestamps);
        }
        Schedule.OnAnswer();
        Counters.Answers++;
        _serverUnsynchronised = header.Leap == LeapIndicator.Unsynchronised || header.Stratum >= ServerState.UnsynchronisedStratum;
        if (_serverUnsynchronised)
        {
            return End(ReplyReason.ServerUnsynchronised);
        }
        // The era of each timestamp is the one nearest T1 (RFC 5905 §6: within 68 years).
        long t2 = header.Receive.ToUnixNanoseconds(_t1);
        long t3 = header.Transmit.ToUnixNanoseconds(_t1);
        if (t3 < t2)
        {
            Counters.Invalid++;
            return End(ReplyReason.TransmitBeforeReceive);
        }
        measurement = new Measurement(_t1, t2, t3, t4, header);
        return End(ReplyReason.Sample);
    }

    /// <summary>After a sample: whether it agreed with the clock's estimate, for the poll adaptation (RFC 5905 §A.5.5.2).</summary>
    public void Adapt(bool steady) => Schedule.Adapt(steady);

    private ReplyReason Invalid(ReplyReason reason)
    {
        Counters.Invalid++;
        return reason;
    }

    /// <summary>The outstanding request is answered (whatever the verdict): the next poll counts from when it was sent.</summary>
    private ReplyReason End(ReplyReason reason)
    {
        _awaiting = false;
        _failures = 0;
        ScheduleNext(_polledAt, Schedule.NextIntervalSeconds);
        return reason;
    }

    /// <summary>±1/16 of the interval at random, so many appliances started together do not poll in step.</summary>
    private void ScheduleNext(long from, double seconds)
    {
        Span<byte> bytes = stackalloc byte[8];
        _random.Fill(bytes);
        double unit = (BinaryPrimitives.ReadUInt64LittleEndian(bytes) >> 11) * Math.ScaleB(1.0, -53);
        WakeAt = from + (long)(seconds * (1 + ((unit - 0.5) / 8)) * 1e9);
    }

    private int WriteRequest(Span<byte> request)
    {
        Span<byte> random = stackalloc byte[8];
        _random.Fill(random);
        _transmit = BinaryPrimitives.ReadUInt64LittleEndian(random);
        if (_c2s is { } c2s)
        {
            Span<byte> nonce = stackalloc byte[AeadAlgorithms.NonceLength(c2s.Algorithm)];
            _random.Fill(_uniqueId);
            _random.Fill(nonce);
            byte[] cookie = _cookies.Dequeue();
            // Placeholders for as many new cookies as it takes to get back to a full pool (RFC 8915 §5.7).
            int placeholders = Math.Clamp(CookiePool - 1 - _cookies.Count, 0, CookiePool - 1);
            return NtsClientPacket.WriteRequest(request, _transmit, _uniqueId, cookie, placeholders, nonce, c2s);
        }
        var header = new NtpHeader
        {
            Leap = LeapIndicator.Unsynchronised,
            Version = 4,
            Mode = NtpMode.Client,
            Poll = (sbyte)Schedule.Poll,
            Transmit = new NtpTimestamp(_transmit),
        };
        header.Write(request);
        return NtpHeader.Length;
    }
}
