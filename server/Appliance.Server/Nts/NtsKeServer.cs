using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Ntp;
using Appliance.Sources;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>
/// The NTS-KE server's TLS shell (RFC 8915 §4): it accepts, admits (the access list, connections
/// open in all, and per client — an IPv4 address or an IPv6 /64 — connections open and new ones per
/// interval), runs the TLS 1.3 handshake in its timeout, checks ALPN "ntske/1" (.NET accepts a
/// client that offers none), then only moves octets between the connection and
/// <see cref="NtsKeServerSession"/>, which decides the request and the answer, and supplies what the
/// machine cannot have: the TLS exporter keys (§5.1) and randomness. Every exchange has one deadline
/// from accept (handshake timeout + request timeout) that no trickle of octets moves; within it,
/// each read waits at most the idle timeout.
/// </summary>
public sealed class NtsKeServer : IAsyncDisposable
{
    public static readonly SslApplicationProtocol Alpn = new("ntske/1");

    // Replaced whole by a reload (UpdateLimits); each read takes the one in force.
    private volatile NtsKeConfig _config;
    private volatile NtsKeServerOptions _options;

    /// <summary>The AEADs new key exchanges agree to now (<c>nts-ke.aeads</c>, as the last reload set it).</summary>
    public IReadOnlyList<AeadAlgorithm> Aeads => _options.Aeads;
    private readonly CertificateStore _certificates;
    private readonly CookieKeyRingCell _keys;
    private readonly NtsMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners;
    private readonly ClientConnectionLimiter _limiter;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private readonly LogSummary _acceptFailures;
    private readonly LogSummary _sessionFailures;
    private int _active;

    private NtsKeServer(NtsKeConfig config, CertificateStore certificates, CookieKeyRingCell keys, NtsMetrics metrics, ILogger logger, List<Socket> listeners)
    {
        _config = config;
        _options = new NtsKeServerOptions(config.MaxRequest, config.NtpServer, config.NtpPort, config.Aeads.Items);
        _certificates = certificates;
        _keys = keys;
        _metrics = metrics;
        _logger = logger;
        _listeners = listeners;
        _acceptFailures = new LogSummary(logger, LogLevel.Warning, "NTS-KE accept failures");
        _sessionFailures = new LogSummary(logger, LogLevel.Error, "NTS-KE session failures");
        // More clients remembered than connections can be open, so one with none open can always be forgotten.
        _limiter = new ClientConnectionLimiter(config.ClientConnections, config.ClientInterval, config.ClientConcurrent,
            Math.Max(ClientConnectionLimiter.DefaultCapacity, 2 * config.MaxConnections));
    }

    /// <summary>
    /// A reload's limits: connections in all and per client, the timeouts, the request size, the
    /// Server/Port records and the access list, for every connection accepted from now on (one open
    /// now takes the new timeouts and size at its next step). Listen addresses and the key storage
    /// need a restart. Returns false, changing nothing, when <c>max-connections</c> grows past half the
    /// client table built at start (it must remember more clients than can be connected).
    /// </summary>
    public bool UpdateLimits(NtsKeConfig config)
    {
        if (2L * config.MaxConnections > _limiter.Capacity)
        {
            return false;
        }
        _limiter.Update(config.ClientConnections, config.ClientInterval, config.ClientConcurrent);
        _options = new NtsKeServerOptions(config.MaxRequest, config.NtpServer, config.NtpPort, config.Aeads.Items);
        _config = config;
        return true;
    }

    /// <summary>The configuration in force: the start's, with a reload's limits.</summary>
    public NtsKeConfig Config => _config;

    public IReadOnlyList<IPEndPoint> LocalEndPoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToList();

    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>The certificate in service and its reload counts.</summary>
    public CertificateStore Certificates => _certificates;

    /// <summary>Binds every NTS-KE address; throws <see cref="BindFailedException"/> naming the first that fails.</summary>
    public static NtsKeServer Bind(NtsKeConfig config, CertificateStore certificates, CookieKeyRingCell keys, NtsMetrics metrics, ILogger logger)
    {
        var listeners = new List<Socket>();
        try
        {
            foreach (IPEndPoint endPoint in config.Listen)
            {
                listeners.Add(Hosting.TcpListeners.Bind(endPoint, "NTS-KE on TCP"));
            }
            return new NtsKeServer(config, certificates, keys, metrics, logger, listeners);
        }
        catch
        {
            foreach (Socket socket in listeners)
            {
                socket.Dispose();
            }
            throw;
        }
    }

    public void Start()
    {
        foreach (Socket listener in _listeners)
        {
            _loops.Add(Task.Run(() => AcceptLoop(listener)));
        }
    }

    private Task AcceptLoop(Socket listener) =>
        Hosting.TcpListeners.AcceptAsync(listener, _acceptFailures, _logger, "NTS-KE", Accepted, _stopping.Token);

    private void Accepted(Socket client)
    {
        long acceptedAt = Stopwatch.GetTimestamp();
        var peer = (IPEndPoint)client.RemoteEndPoint!;
        NetAddress address = NetAddress.FromIPAddress(peer.Address);
        if (Admit(address, acceptedAt) is { } refusal)
        {
            _metrics.CountHandshake(refusal);
            client.Dispose();
            return;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await ServeAsync(client, peer, acceptedAt);
            }
            finally
            {
                try
                {
                    _limiter.Release(address);
                }
                finally
                {
                    Interlocked.Decrement(ref _active); // the server's slot, whatever happened
                }
            }
        });
    }

    /// <summary>
    /// Admission at accept, before any TLS work, cheapest refusal first; null when admitted (then the
    /// connection holds one of the server's slots and one of its client's until it ends).
    /// </summary>
    private NtsKeServerReason? Admit(NetAddress client, long acceptedAt)
    {
        if (!_config.Access.Allows(client))
        {
            return NtsKeServerReason.Denied;
        }
        if (!TryTakeSlot(_config.MaxConnections))
        {
            return NtsKeServerReason.MaxConnections;
        }
        if (!_limiter.TryAdmit(client, Stopwatch.GetElapsedTime(0, acceptedAt).Ticks, out NtsKeServerReason refusal))
        {
            Interlocked.Decrement(ref _active);
            return refusal;
        }
        return null;
    }

    /// <summary>
    /// One of the server's slots, unless all <paramref name="max"/> are taken. Never counted past the
    /// limit, not even for the moment of a refusal: taken and given back, a refused connection could
    /// be seen by a scrape of <c>appliance_ntske_connections</c> as one over <c>max-connections</c>.
    /// </summary>
    private bool TryTakeSlot(int max)
    {
        int active = Volatile.Read(ref _active);
        while (active < max)
        {
            int seen = Interlocked.CompareExchange(ref _active, active + 1, active);
            if (seen == active)
            {
                return true;
            }
            active = seen;
        }
        return false;
    }

    private async Task ServeAsync(Socket client, IPEndPoint peer, long acceptedAt)
    {
        using (client)
        await using (var stream = new SslStream(new NetworkStream(client, ownsSocket: false), leaveInnerStreamOpen: false))
        {
            // The exchange's one deadline, from accept (DESIGN.md boundary 6: bounded in time). A read
            // timer restarted by every octet let one byte every few seconds hold a slot for an hour.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(Left(acceptedAt, _config.HandshakeTimeout + _config.RequestTimeout));
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            handshake.CancelAfter(Left(acceptedAt, _config.HandshakeTimeout));
            try
            {
                await stream.AuthenticateAsServerAsync(ServerOptions(_certificates.Current), handshake.Token);
            }
            catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
            {
                _metrics.CountHandshake(_stopping.IsCancellationRequested ? NtsKeServerReason.Shutdown
                    : handshake.IsCancellationRequested ? NtsKeServerReason.HandshakeTimeout : NtsKeServerReason.Tls);
                return;
            }
            if (stream.NegotiatedApplicationProtocol != Alpn)
            {
                // RFC 8915 §4: NTS-KE is only spoken to clients that asked for it by ALPN.
                _metrics.CountHandshake(NtsKeServerReason.Alpn);
                return;
            }
            try
            {
                NtsKeServerReason reason = await RunSessionAsync(stream, deadline.Token);
                _metrics.CountHandshake(reason);
                if (reason is NtsKeServerReason.BadRequest or NtsKeServerReason.UnrecognizedCritical or NtsKeServerReason.RequestTooLarge)
                {
                    await LingerAsync(client, deadline.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                _metrics.CountHandshake(_stopping.IsCancellationRequested ? NtsKeServerReason.Shutdown
                    : deadline.IsCancellationRequested ? NtsKeServerReason.Deadline : NtsKeServerReason.IdleTimeout);
            }
            catch (Exception e)
            {
                if (_sessionFailures.Occurred($"{peer}: {e.Message}"))
                {
                    _logger.LogError(e, "NTS-KE session with {Peer} failed", peer);
                }
                _metrics.CountHandshake(NtsKeServerReason.Internal);
            }
        }
    }

    /// <summary>Octets of a refused request <see cref="LingerAsync"/> reads and drops at most: twice the largest <c>max-request</c>, with TLS framing.</summary>
    private const int LingerBytes = 2 * 65536 + 4096;

    /// <summary>How long <see cref="LingerAsync"/> waits for the client's end of stream at most (within the exchange's deadline).</summary>
    private static readonly TimeSpan s_lingerTime = TimeSpan.FromSeconds(1);

    /// <summary>
    /// After an Error record (RFC 8915 §4.1.3) that answered a request before its end was read: the
    /// client may still be sending it. Closing a socket with octets unread makes the kernel reset the
    /// connection (RFC 1122 §4.2.2.13), and a reset throws away what the client has not read yet,
    /// the Error record with it: in the hostile tests of issue #18 a whole record of 65,535 octets
    /// against the default limit of 1,024 got a reset and no answer (in some runs). So the sending
    /// side is shut (FIN after TLS close_notify) and what still comes is read and dropped until the
    /// client's end of stream, at most <see cref="LingerBytes"/> octets or <see cref="s_lingerTime"/>:
    /// a client that sends for ever is then reset, and may lose the answer.
    /// </summary>
    private static async Task LingerAsync(Socket client, CancellationToken deadline)
    {
        byte[] sink = System.Buffers.ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            client.Shutdown(SocketShutdown.Send);
            using var linger = CancellationTokenSource.CreateLinkedTokenSource(deadline);
            linger.CancelAfter(s_lingerTime);
            for (int total = 0, n = 1; n > 0 && total < LingerBytes; total += n)
            {
                n = await client.ReceiveAsync(sink, SocketFlags.None, linger.Token);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // reset by the client, or out of time: closed now either way
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(sink);
        }
    }

    /// <summary>What is left of <paramref name="allowed"/> since <paramref name="acceptedAt"/>; zero (cancel now) once it is spent.</summary>
    private static TimeSpan Left(long acceptedAt, TimeSpan allowed)
    {
        TimeSpan left = allowed - Stopwatch.GetElapsedTime(acceptedAt);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>One session after the handshake, within <paramref name="deadline"/>: octets in, the machine's steps out; how it ended.</summary>
    private async Task<NtsKeServerReason> RunSessionAsync(SslStream stream, CancellationToken deadline)
    {
        var session = new NtsKeServerSession(_options, _keys.Current);
        byte[] buffer = new byte[Math.Min(_config.MaxRequest, 4096)];
        NtsKeServerStep step = session.Step;
        while (step == NtsKeServerStep.NeedBytes)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(deadline);
            idle.CancelAfter(_config.IdleTimeout);
            int n = await stream.ReadAsync(buffer, idle.Token);
            step = n == 0 ? session.Close() : session.Receive(buffer.AsSpan(0, n));
        }
        if (step == NtsKeServerStep.NeedKeys)
        {
            step = SupplyKeys(stream, session);
        }
        if (step == NtsKeServerStep.SendThenClose)
        {
            await stream.WriteAsync(session.Response, deadline);
            await stream.ShutdownAsync();
            _metrics.CountCookies(session.CookiesIssued);
            if (session.Reason == NtsKeServerReason.Ok)
            {
                _metrics.CountAgreement(session.Aead!.Value, session.ExporterAead!.Value);
            }
        }
        return session.Reason;
    }

    private static NtsKeServerStep SupplyKeys(SslStream stream, NtsKeServerSession session)
    {
        AeadAlgorithm aead = session.Aead!.Value;
        int keyLength = AeadAlgorithms.KeyLength(aead);
        Span<byte> keys = stackalloc byte[2 * keyLength];
        Span<byte> nonces = stackalloc byte[NtsKeServerSession.RandomLength];
        try
        {
            NtsKeExporter.ExportKeys(stream, session.ExporterAead!.Value, keys[..keyLength], keys[keyLength..]);
            RandomNumberGenerator.Fill(nonces);
            return session.SupplyKeys(keys[..keyLength], keys[keyLength..], nonces);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }
    }

    public static SslServerAuthenticationOptions ServerOptions(SslStreamCertificateContext certificate) => new()
    {
        ServerCertificateContext = certificate,
        EnabledSslProtocols = SslProtocols.Tls13,
        ApplicationProtocols = [Alpn],
        ClientCertificateRequired = false,
        AllowRenegotiation = false,
        CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
    };

    /// <summary>
    /// The start-up self-test: a TLS 1.3 handshake with itself over loopback, both ends exporting the
    /// C2S key. The exporter reaches into SslStream's private state, so a runtime update could break
    /// it silently; this makes it break loudly instead, before any client gets a cookie.
    /// </summary>
    public static async Task SelfTestAsync(SslStreamCertificateContext certificate, CancellationToken cancellationToken = default)
    {
        if (!TlsKeyExporter.IsAvailable)
        {
            throw new InvalidOperationException("NTS-KE self-test: this .NET runtime does not expose the TLS state the key exporter needs");
        }
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        byte[] serverKey = new byte[32], clientKey = new byte[32], unused = new byte[32];
        Task server = Task.Run(async () =>
        {
            using Socket accepted = await listener.AcceptAsync(timeout.Token);
            await using var stream = new SslStream(new NetworkStream(accepted, ownsSocket: false));
            await stream.AuthenticateAsServerAsync(ServerOptions(certificate), timeout.Token);
            NtsKeExporter.ExportKeys(stream, AeadAlgorithm.AesSivCmac256, serverKey, unused);
        }, timeout.Token);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!, timeout.Token);
        string expected = certificate.TargetCertificate.GetCertHashString();
        // The client trusts exactly the certificate the server is about to present, nothing else.
        await using var clientStream = new SslStream(new NetworkStream(client, ownsSocket: false), false,
            (_, presented, _, _) => presented is not null && presented.GetCertHashString() == expected);
        await clientStream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "self-test.invalid",
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [Alpn],
        }, timeout.Token);
        NtsKeExporter.ExportKeys(clientStream, AeadAlgorithm.AesSivCmac256, clientKey, unused);
        await server;
        if (!CryptographicOperations.FixedTimeEquals(serverKey, clientKey) || serverKey.All(b => b == 0))
        {
            throw new InvalidOperationException("NTS-KE self-test: the two ends of a TLS connection exported different keys; NTS cannot work on this runtime");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        foreach (Socket listener in _listeners)
        {
            listener.Dispose();
        }
        await Task.WhenAll(_loops);
        _stopping.Dispose();
        _acceptFailures.Dispose();
        _sessionFailures.Dispose();
    }
}
