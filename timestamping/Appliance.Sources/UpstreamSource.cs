using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol;
using Appliance.Protocol.Client;
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

    /// <summary>
    /// NTS: what the certificate's dates are checked against at each key exchange (the clock
    /// service's rule, issue #21); null: the system clock.
    /// </summary>
    public Func<CertificateTime>? CertificateTime { get; init; }

    /// <summary>NTS: the AEADs offered in the key exchange, the preferred first (RFC 8915 §4.1.5).</summary>
    public IReadOnlyList<AeadAlgorithm> Aeads { get; init; } = [AeadAlgorithm.AesSivCmac256];

    public bool Iburst { get; init; } = true;

    public int MinPoll { get; init; } = 6;

    public int MaxPoll { get; init; } = 10;

    /// <summary>How long to wait for an answer.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How the source is named in logs and metrics: host:port as configured.</summary>
    public string Name => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>
/// The driver of one upstream NTP or NTS server: a thin loop over the <see cref="NtpAssociation"/>
/// machine, which decides everything (RFC 5905 checks, poll, reach, iburst, KoD, NTS cookies and
/// NAKs). Here are only what it cannot do: DNS, the NTS-KE TLS exchange, the socket (requests leave
/// from a random ephemeral port, RFC 9109; answers are timestamped by the kernel), the timers and the
/// logs.
/// </summary>
public sealed class UpstreamSource : ITimeSource
{
    private readonly ILogger _logger;
    private readonly byte[] _request = new byte[1280];
    private readonly PacketBatch _batch = new(8);
    private TimestampedSocket? _socket;
    private IPEndPoint? _ntpEndPoint;
    private SourceState _loggedState = SourceState.Starting;

    /// <summary>What the last key exchange checked certificate dates against, for its failure's log line.</summary>
    private CertificateTime? _certificateTime;

    /// <summary>A server that answers every poll with a KoD or a NAK would get a line per reply: summarised.</summary>
    private readonly LogSummary _refusals;

    public UpstreamSource(UpstreamOptions options, ILogger logger)
    {
        Options = options;
        _logger = logger;
        _refusals = new LogSummary(logger, LogLevel.Warning, $"source {Name}: Kiss-o'-Death and NAK replies");
        Association = new NtpAssociation(new AssociationOptions
        {
            Nts = options.Nts,
            Iburst = options.Iburst,
            MinPoll = options.MinPoll,
            MaxPoll = options.MaxPoll,
            Timeout = options.Timeout,
        }, SystemRandom.Instance);
    }

    public UpstreamOptions Options { get; }

    /// <summary>The protocol machine this driver runs.</summary>
    public NtpAssociation Association { get; }

    public PollSchedule Schedule => Association.Schedule;

    public string Name => Options.Name;

    public string Kind => "ntp";

    public uint ReferenceId => _ntpEndPoint is { } endPoint ? ReferenceIds.Of(endPoint.Address) : 0;

    public byte Reach => Schedule.Reach;

    public double PollSeconds => Schedule.PollSeconds;

    public SourceCounters Counters => Association.Counters;

    /// <summary>Where NTP requests go (for NTS, as the key exchange said).</summary>
    public IPEndPoint? NtpEndPoint => _ntpEndPoint;

    public SourceState State => Association.State;

    /// <summary>NTS cookies in hand.</summary>
    public int Cookies => Association.Cookies;

    /// <summary>Polls until cancelled, or until the server says DENY or RSTR.</summary>
    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            long now = SystemClock.MonotonicNanoseconds();
            if (Association.WakeAt > now)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromTicks((Association.WakeAt - now) / 100), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            switch (Association.Poll(SystemClock.MonotonicNanoseconds(), _request, out int length))
            {
                case PollAction.Stop:
                    _logger.LogError("source {Source}: the server sent a Kiss-o'-Death DENY/RSTR; it is no longer polled (RFC 5905 §7.4). Remove it or ask its operator.", Name);
                    return;
                case PollAction.KeyExchange:
                    await Attempt(AssociationFailure.KeyExchange, () => KeyExchangeAsync(cancellationToken), cancellationToken).ConfigureAwait(false);
                    break;
                case PollAction.Send:
                    await Attempt(AssociationFailure.Network, () => ExchangeAsync(length, sink, cancellationToken), cancellationToken).ConfigureAwait(false);
                    break;
            }
            LogStateChange();
        }
    }

    /// <summary>Runs one step of I/O; a failure goes back to the machine, which schedules the retry.</summary>
    private async Task Attempt(AssociationFailure kind, Func<Task> step, CancellationToken cancellationToken)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException or InvalidDataException
            or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            long now = SystemClock.MonotonicNanoseconds();
            Association.Failed(now, kind);
            _logger.LogWarning("source {Source}: {Error}; retrying in {Wait:F0} s", Name, Describe(e), (Association.WakeAt - now) / 1e9);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private string Describe(Exception e) => e switch
    {
        OperationCanceledException or TimeoutException => "timed out",
        AuthenticationException => $"TLS: {e.Message} (check the source's trust/name settings{CertificateTimeNote()})",
        _ => e.Message,
    };

    /// <summary>What the certificate's dates were checked against, for a TLS failure that may be the clock's.</summary>
    private string CertificateTimeNote() => _certificateTime switch
    {
        { IgnoreValidityPeriod: true } => "; its dates were not checked (clock.skip-certificate-dates)",
        { } t => FormattableString.Invariant($"; its dates were checked against {t.VerificationTime.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC"),
        null => "",
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

    internal static async Task<IPEndPoint> ResolveAsync(string host, int port, CancellationToken cancellationToken)
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
        _certificateTime = Options.CertificateTime?.Invoke();
        NtsKeResult result = await NtsKeClient.ExchangeAsync(ke, Options.TlsName ?? Options.Host, Options.Trust,
            Options.Aeads, timeout.Token, time: _certificateTime).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            string why = result.Error is { } code ? $"the server sent Error {code}" : result.Reason.ToString();
            throw new InvalidDataException($"NTS-KE with {ke} failed: {why}");
        }
        // RFC 8915 §4.1.7–4.1.8: NTP goes to the Server/Port records' host and port, else the KE host on 123.
        IPEndPoint ntp = await ResolveAsync(result.Server ?? Options.Host, result.Port ?? 123, cancellationToken).ConfigureAwait(false);
        if (!ntp.Equals(_ntpEndPoint))
        {
            _socket?.Dispose();
            _socket = null;
            _ntpEndPoint = ntp;
        }
        Association.KeyExchanged(result.Aead!.Value, result.C2S, result.S2C, result.Cookies, SystemClock.MonotonicNanoseconds());
        _logger.LogInformation("source {Source}: NTS-KE done (AEAD {Aead}, {Cookies} cookies), NTP at {NtpEndPoint}",
            Name, (int)result.Aead!.Value, result.Cookies.Count, ntp);
    }

    private async Task ExchangeAsync(int length, MeasurementSink sink, CancellationToken cancellationToken)
    {
        _ntpEndPoint ??= await ResolveAsync(Options.Host, Options.Port, cancellationToken).ConfigureAwait(false);
        _socket ??= OpenSocket(_ntpEndPoint);
        // The exchange blocks in recvmmsg until the answer or the timeout: on a thread of its own, not the pool's.
        await Task.Factory.StartNew(() => Exchange(length, sink), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    /// <summary>Sends the request and hands every datagram to the machine until it has its answer or gives up.</summary>
    private void Exchange(int length, MeasurementSink sink)
    {
        TimestampedSocket socket = _socket!;
        _batch.Clear();
        _batch.Load(0, _request.AsSpan(0, length), _ntpEndPoint!, 0);
        _batch.SetResponse(0, length);
        Association.Sent(SystemClock.RealtimeNanoseconds(), SystemClock.MonotonicNanoseconds());
        if (socket.Send(_batch) > 0)
        {
            throw new SocketException((int)SocketError.NetworkUnreachable);
        }
        while (Association.AwaitingReply && SystemClock.MonotonicNanoseconds() < Association.WakeAt)
        {
            int n = socket.Receive(_batch);
            for (int i = 0; i < n && Association.AwaitingReply; i++)
            {
                long t4 = _batch.ReceiveTimestamp(i);
                t4 = t4 != 0 ? t4 : SystemClock.RealtimeNanoseconds();
                ReplyReason reason = Association.Receive(_batch.Payload(i)[.._batch.Length(i)], t4, SystemClock.MonotonicNanoseconds(), out Measurement measurement);
                Report(reason, measurement, sink);
            }
        }
    }

    private void Report(ReplyReason reason, in Measurement measurement, MeasurementSink sink)
    {
        switch (reason)
        {
            case ReplyReason.Sample:
                Association.Adapt(sink(this, measurement));
                break;
            case ReplyReason.KissRate or ReplyReason.KissDeny or ReplyReason.KissRestrict or ReplyReason.KissOther:
                if (_refusals.Occurred(reason.ToString()))
                {
                    _logger.LogWarning("source {Source}: Kiss-o'-Death {Code}", Name, reason);
                }
                break;
            case ReplyReason.NtsNak:
                if (_refusals.Occurred("NTS NAK"))
                {
                    _logger.LogWarning("source {Source}: NTS NAK; doing a new key exchange", Name);
                }
                break;
        }
    }

    public void Dispose()
    {
        _socket?.Dispose();
        _batch.Dispose();
        _refusals.Dispose();
    }
}

/// <summary>The operating system's CSPRNG, for the few random bytes an association draws per poll.</summary>
internal sealed class SystemRandom : IRandomSource
{
    public static SystemRandom Instance { get; } = new();

    public void Fill(Span<byte> destination) => System.Security.Cryptography.RandomNumberGenerator.Fill(destination);
}
