using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>One upstream server to take time from.</summary>
public sealed record UpstreamOptions
{
    /// <summary>Host name or address literal.</summary>
    public required string Host { get; init; }

    /// <summary>The NTP port, or with <see cref="Nts"/> the NTS-KE port (the NTP port then comes from the key exchange).</summary>
    public required int Port { get; init; }

    public bool Nts { get; init; }

    /// <summary>NTS: the name the server's certificate must carry; the host when null.</summary>
    public string? TlsName { get; init; }

    /// <summary>NTS: trust anchors instead of the system's.</summary>
    public X509Certificate2Collection? Trust { get; init; }

    public bool Iburst { get; init; } = true;

    public int MinPoll { get; init; } = 6;

    public int MaxPoll { get; init; } = 10;

    /// <summary>How long to wait for an answer.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How the source is named in logs and metrics: host:port as configured.</summary>
    public string Name => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>
/// The client of one upstream NTP or NTS server (RFC 5905 client mode, RFC 8915 §5): polls on its
/// <see cref="PollSchedule"/>, checks every answer (origin, mode, version, KoD, and for NTS the
/// authenticator), timestamps the answer's arrival in the kernel, and hands each measurement to the
/// clock core. Requests leave from a random ephemeral port (RFC 9109) and carry a random transmit
/// timestamp (the NTP data-minimisation draft, as chrony does): they reveal nothing of our clock,
/// and an off-path attacker cannot guess what an answer must echo.
/// </summary>
public sealed class UpstreamSource : ITimeSource
{
    private readonly ILogger _logger;
    private readonly byte[] _request = new byte[1280];
    private readonly byte[] _plaintext = new byte[2048];
    private readonly byte[] _uniqueId = new byte[NtsClientPacket.UniqueIdentifierLength];
    private readonly byte[] _nonce = new byte[NtsClientPacket.ClientNonceLength];
    private readonly PacketBatch _batch = new(8);
    private TimestampedSocket? _socket;
    private IPEndPoint? _ntpEndPoint;
    private NtsSession? _nts;
    private bool _serverUnsynchronised;
    private bool _keyExchangeFailed;
    private int _failures;
    private SourceState _loggedState = SourceState.Starting;

    public UpstreamSource(UpstreamOptions options, ILogger logger)
    {
        Options = options;
        _logger = logger;
        Schedule = new PollSchedule(options.MinPoll, options.MaxPoll, options.Iburst);
    }

    public UpstreamOptions Options { get; }

    public PollSchedule Schedule { get; }

    public string Name => Options.Name;

    public string Kind => "ntp";

    public uint ReferenceId => _ntpEndPoint is { } endPoint ? ReferenceIds.Of(endPoint.Address) : 0;

    public byte Reach => Schedule.Reach;

    public double PollSeconds => Schedule.PollSeconds;

    public SourceCounters Counters { get; } = new();

    /// <summary>Where NTP requests go (for NTS, as the key exchange said).</summary>
    public IPEndPoint? NtpEndPoint => _ntpEndPoint;

    public SourceState State => _keyExchangeFailed ? SourceState.KeyExchangeFailed : Schedule.State(_serverUnsynchronised);

    /// <summary>NTS cookies in hand.</summary>
    public int Cookies => _nts?.Cookies.Count ?? 0;

    /// <summary>Polls until cancelled, or until the server says DENY or RSTR.</summary>
    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && !Schedule.Stopped)
        {
            double wait;
            try
            {
                if (Options.Nts && (_nts is null || _nts.Cookies.Count == 0))
                {
                    await KeyExchangeAsync(cancellationToken).ConfigureAwait(false);
                }
                _ntpEndPoint ??= await ResolveAsync(Options.Host, Options.Port, cancellationToken).ConfigureAwait(false);
                _socket ??= OpenSocket(_ntpEndPoint);
                // The exchange blocks in recvmmsg for up to the timeout: on a thread of its own, not the pool's.
                await Task.Factory.StartNew(() => Exchange(sink), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                _failures = 0;
                wait = Schedule.NextIntervalSeconds;
            }
            catch (Exception e) when (e is SocketException or IOException or AuthenticationException or InvalidDataException
                or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Back off exponentially (2 s, 4 s, … up to maxpoll): a broken server is not hammered.
                _failures++;
                _keyExchangeFailed = Options.Nts && _nts is null;
                wait = Math.ScaleB(1.0, Math.Min(_failures, Math.Max(Options.MaxPoll, 1)));
                _logger.LogWarning("source {Source}: {Error}; retrying in {Wait} s", Name, Describe(e), wait);
            }
            LogStateChange();
            // ±1/16 of the interval at random, so many appliances started together do not poll in step.
            double jitter = wait * ((Random.Shared.NextDouble() - 0.5) / 8);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(wait + jitter), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        if (Schedule.Stopped)
        {
            _logger.LogError("source {Source}: the server sent a Kiss-o'-Death DENY/RSTR; it is no longer polled (RFC 5905 §7.4). Remove it or ask its operator.", Name);
        }
    }

    private static string Describe(Exception e) => e switch
    {
        OperationCanceledException or TimeoutException => "timed out",
        AuthenticationException => $"TLS: {e.Message} (check the source's trust/name settings)",
        _ => e.Message,
    };

    private void LogStateChange()
    {
        SourceState state = State;
        if (state == _loggedState)
        {
            return;
        }
        _loggedState = state;
        if (state is SourceState.Reachable)
        {
            _logger.LogInformation("source {Source}: reachable", Name);
        }
        else
        {
            _logger.LogWarning("source {Source}: {State}", Name, state);
        }
    }

    private static async Task<IPEndPoint> ResolveAsync(string host, int port, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return new IPEndPoint(address, port);
        }
        IPAddress[] addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return addresses.Length > 0
            ? new IPEndPoint(addresses[0], port)
            : throw new SocketException((int)SocketError.HostNotFound);
    }

    private static TimestampedSocket OpenSocket(IPEndPoint server)
    {
        IPAddress any = server.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
        TimestampedSocket socket = TimestampedSocket.Open(new IPEndPoint(any, 0), new TimestampedSocketOptions
        {
            ReceiveBufferBytes = 64 << 10,
            ReceiveTimeout = TimeSpan.FromMilliseconds(100),
        });
        socket.Connect(server);
        return socket;
    }

    private async Task KeyExchangeAsync(CancellationToken cancellationToken)
    {
        IPEndPoint ke = await ResolveAsync(Options.Host, Options.Port, cancellationToken).ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        NtsKeResult result = await NtsKeClient.ExchangeAsync(ke, Options.TlsName ?? Options.Host, Options.Trust,
            [AeadAlgorithm.AesSivCmac256], timeout.Token).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new InvalidDataException($"NTS-KE with {ke} refused: {result.Error?.ToString() ?? "no cookies"}");
        }
        // RFC 8915 §4.1.7–4.1.8: NTP goes to the Server/Port records' host and port, else the KE host on 123.
        IPEndPoint ntp = await ResolveAsync(result.Server ?? Options.Host, result.Port ?? 123, cancellationToken).ConfigureAwait(false);
        if (!ntp.Equals(_ntpEndPoint))
        {
            _socket?.Dispose();
            _socket = null;
            _ntpEndPoint = ntp;
        }
        _nts = new NtsSession(new AesSiv(result.C2S), new AesSiv(result.S2C), new Queue<byte[]>(result.Cookies));
        _keyExchangeFailed = false;
        Counters.KeyExchanges++;
        _logger.LogInformation("source {Source}: NTS-KE done (AEAD {Aead}, {Cookies} cookies), NTP at {NtpEndPoint}",
            Name, (int)result.Aead!.Value, result.Cookies.Count, ntp);
    }

    /// <summary>One request and its answer (blocking, on a pool thread): at most <see cref="UpstreamOptions.Timeout"/>.</summary>
    private void Exchange(MeasurementSink sink)
    {
        TimestampedSocket socket = _socket!;
        int length = WriteRequest(out ulong transmit);
        _batch.Clear();
        _batch.Load(0, _request.AsSpan(0, length), _ntpEndPoint!, 0);
        _batch.SetResponse(0, length);
        Schedule.OnSend();
        Counters.Requests++;
        long t1 = SystemClock.RealtimeNanoseconds();
        if (socket.Send(_batch) > 0)
        {
            throw new SocketException((int)SocketError.NetworkUnreachable);
        }
        long deadline = SystemClock.MonotonicNanoseconds() + (long)(Options.Timeout.TotalMilliseconds * 1e6);
        while (SystemClock.MonotonicNanoseconds() < deadline)
        {
            int n = socket.Receive(_batch);
            for (int i = 0; i < n; i++)
            {
                long t4 = _batch.ReceiveTimestamp(i);
                t4 = t4 != 0 ? t4 : SystemClock.RealtimeNanoseconds();
                if (Answer(_batch.Payload(i)[.._batch.Length(i)], transmit, t1, t4, sink))
                {
                    return;
                }
            }
        }
    }

    private int WriteRequest(out ulong transmit)
    {
        Span<byte> random = stackalloc byte[8];
        RandomNumberGenerator.Fill(random);
        transmit = BinaryPrimitives.ReadUInt64LittleEndian(random);
        if (_nts is { } nts)
        {
            RandomNumberGenerator.Fill(_uniqueId);
            RandomNumberGenerator.Fill(_nonce);
            byte[] cookie = nts.Cookies.Dequeue();
            // Ask for as many new cookies as it takes to get back to eight (RFC 8915 §5.7).
            int placeholders = Math.Clamp(NtsSession.PoolSize - 1 - nts.Cookies.Count, 0, NtsSession.PoolSize - 1);
            return NtsClientPacket.WriteRequest(_request, transmit, _uniqueId, cookie, placeholders, _nonce, nts.C2S);
        }
        var header = new NtpHeader
        {
            Leap = LeapIndicator.Unsynchronised,
            Version = 4,
            Mode = NtpMode.Client,
            Poll = (sbyte)Schedule.Poll,
            Transmit = new NtpTimestamp(transmit),
        };
        header.Write(_request);
        return NtpHeader.Length;
    }

    /// <summary>Checks one datagram; true when it answered our request (whatever the verdict).</summary>
    private bool Answer(ReadOnlySpan<byte> datagram, ulong transmit, long t1, long t4, MeasurementSink sink)
    {
        if (!NtpHeader.TryRead(datagram, out NtpHeader header) || header.Origin.Value != transmit)
        {
            return false; // not ours: a late answer to an earlier request, or spoofed
        }
        if (header.Mode != NtpMode.Server || header.Version is not (3 or 4))
        {
            Counters.Invalid++;
            return false;
        }
        if (_nts is { } nts)
        {
            NtsResponseCheck check = NtsClientPacket.CheckResponse(datagram, _uniqueId, nts.S2C, _plaintext, out _,
                cookie => nts.Cookies.Enqueue(cookie.ToArray()));
            if (check == NtsResponseCheck.Nak)
            {
                // The server cannot read our cookies any more (its keys rotated past them): new key exchange.
                Counters.NtsNaks++;
                _nts = null;
                _logger.LogWarning("source {Source}: NTS NAK; doing a new key exchange", Name);
                return true;
            }
            if (check != NtsResponseCheck.Authentic)
            {
                Counters.Invalid++; // unauthenticated: ignored, including any KoD in it (RFC 8915 §5.7)
                return false;
            }
        }
        if (header.Stratum == 0 && KissOfDeath.Read(datagram) is { } code)
        {
            Counters.KissOfDeath++;
            Schedule.OnKissOfDeath(code, header.Poll);
            _logger.LogWarning("source {Source}: Kiss-o'-Death {Code}", Name, code);
            return true;
        }
        if (header.Transmit.IsZero || header.Receive.IsZero)
        {
            Counters.Invalid++;
            return true;
        }
        Schedule.OnAnswer();
        Counters.Answers++;
        _serverUnsynchronised = header.Leap == LeapIndicator.Unsynchronised || header.Stratum >= ServerState.UnsynchronisedStratum;
        if (_serverUnsynchronised)
        {
            return true;
        }
        long t2 = header.Receive.ToUnixNanoseconds(t1);
        long t3 = header.Transmit.ToUnixNanoseconds(t1);
        if (t3 < t2)
        {
            Counters.Invalid++;
            return true;
        }
        Schedule.Adapt(sink(this, new Measurement(t1, t2, t3, t4, header)));
        return true;
    }

    public void Dispose()
    {
        _socket?.Dispose();
        _batch.Dispose();
    }

    private sealed record NtsSession(AesSiv C2S, AesSiv S2C, Queue<byte[]> Cookies)
    {
        public const int PoolSize = 8;
    }
}
