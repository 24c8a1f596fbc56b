using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Ntp;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>
/// The NTS-KE server (RFC 8915 §4): TLS 1.3 with ALPN "ntske/1" (enforced here: .NET accepts a client
/// that offers no ALPN), the request's records, keys from the TLS exporter (§5.1), and eight cookies
/// sealed with the current master key. Each connection is bounded: concurrent connections, new
/// connections per client address, handshake and idle timeouts, request size.
/// </summary>
public sealed class NtsKeServer : IAsyncDisposable
{
    public static readonly SslApplicationProtocol Alpn = new("ntske/1");
    private static readonly byte[] s_exporterLabel = "EXPORTER-network-time-security"u8.ToArray();

    private readonly NtsKeConfig _config;
    private readonly CertificateStore _certificates;
    private readonly CookieKeyRingCell _keys;
    private readonly NtsMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners;
    private readonly ClientConnectionLimiter _limiter;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private int _active;

    private NtsKeServer(NtsKeConfig config, CertificateStore certificates, CookieKeyRingCell keys, NtsMetrics metrics, ILogger logger, List<Socket> listeners)
    {
        _config = config;
        _certificates = certificates;
        _keys = keys;
        _metrics = metrics;
        _logger = logger;
        _listeners = listeners;
        _limiter = new ClientConnectionLimiter(config.ClientConnections, config.ClientInterval);
    }

    public IReadOnlyList<IPEndPoint> LocalEndPoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToList();

    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>Binds every NTS-KE address; throws <see cref="BindFailedException"/> naming the first that fails.</summary>
    public static NtsKeServer Bind(NtsKeConfig config, CertificateStore certificates, CookieKeyRingCell keys, NtsMetrics metrics, ILogger logger)
    {
        var listeners = new List<Socket>();
        try
        {
            foreach (IPEndPoint endPoint in config.Listen)
            {
                var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                listeners.Add(socket);
                if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
                {
                    socket.DualMode = false;
                }
                try
                {
                    socket.Bind(endPoint);
                    socket.Listen(1024);
                }
                catch (SocketException e)
                {
                    throw new BindFailedException("NTS-KE on TCP", endPoint, Engine.EngineBindException.Describe(e), e);
                }
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

    private async Task AcceptLoop(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || (e is SocketException && _stopping.IsCancellationRequested))
            {
                return;
            }
            catch (SocketException e)
            {
                _logger.LogWarning("NTS-KE accept failed: {Error}", e.Message);
                continue;
            }
            var peer = (IPEndPoint)client.RemoteEndPoint!;
            if (Interlocked.Increment(ref _active) > _config.MaxConnections)
            {
                Interlocked.Decrement(ref _active);
                _metrics.CountHandshake("closed", "max_connections");
                client.Dispose();
                continue;
            }
            if (!_limiter.TryAdmit(peer.Address, DateTime.UtcNow.Ticks))
            {
                Interlocked.Decrement(ref _active);
                _metrics.CountHandshake("closed", "client_rate");
                client.Dispose();
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(client, peer);
                }
                finally
                {
                    Interlocked.Decrement(ref _active);
                }
            });
        }
    }

    private async Task ServeAsync(Socket client, IPEndPoint peer)
    {
        using (client)
        await using (var stream = new SslStream(new NetworkStream(client, ownsSocket: false), leaveInnerStreamOpen: false))
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(_config.HandshakeTimeout);
            try
            {
                await stream.AuthenticateAsServerAsync(ServerOptions(_certificates.Current), deadline.Token);
            }
            catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
            {
                _metrics.CountHandshake("closed", deadline.IsCancellationRequested ? "handshake_timeout" : "tls");
                return;
            }
            if (stream.NegotiatedApplicationProtocol != Alpn)
            {
                // RFC 8915 §4: NTS-KE is only spoken to clients that asked for it by ALPN.
                _metrics.CountHandshake("closed", "alpn");
                return;
            }
            try
            {
                string reason = await ExchangeAsync(stream);
                _metrics.CountHandshake(reason == "ok" ? "ok" : "error", reason);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                _metrics.CountHandshake("closed", _stopping.IsCancellationRequested ? "shutdown" : "idle_timeout");
            }
            catch (Exception e)
            {
                _logger.LogError(e, "NTS-KE session with {Peer} failed", peer);
                _metrics.CountHandshake("error", "internal");
            }
        }
    }

    /// <summary>Reads the request records, answers, and says how it went.</summary>
    private async Task<string> ExchangeAsync(SslStream stream)
    {
        byte[] request = new byte[_config.MaxRequest];
        int length = 0;
        NtsKeRequest parsed;
        while (true)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            idle.CancelAfter(_config.IdleTimeout);
            int n = await stream.ReadAsync(request.AsMemory(length), idle.Token);
            if (n == 0)
            {
                return "client_closed";
            }
            length += n;
            parsed = NtsKeRequest.Parse(request.AsSpan(0, length));
            if (parsed.Status != NtsKeRequestStatus.Incomplete)
            {
                break;
            }
            if (length == request.Length)
            {
                await WriteErrorAsync(stream, NtsKeErrorCode.BadRequest);
                return "request_too_large";
            }
        }
        if (parsed.Status == NtsKeRequestStatus.Error)
        {
            await WriteErrorAsync(stream, parsed.Error);
            return parsed.Error == NtsKeErrorCode.UnrecognizedCriticalRecord ? "unrecognized_critical" : "bad_request";
        }
        CookieKeyRing? ring = _keys.Current;
        if (ring is null)
        {
            await WriteErrorAsync(stream, NtsKeErrorCode.InternalServerError);
            return "no_keys";
        }
        int cookieLength = 0;
        byte[] cookies = [];
        if (parsed.NtpV4 && parsed.Aead is AeadAlgorithm aead)
        {
            int keyLength = AeadAlgorithms.KeyLength(aead);
            byte[] c2s = new byte[keyLength], s2c = new byte[keyLength];
            ExportKeys(stream, aead, c2s, s2c);
            cookieLength = NtsCookie.Length(aead);
            cookies = new byte[cookieLength * NtsKeResponse.CookieCount];
            Span<byte> nonce = stackalloc byte[NtsCookie.NonceLength];
            for (int i = 0; i < NtsKeResponse.CookieCount; i++)
            {
                RandomNumberGenerator.Fill(nonce);
                NtsCookie.Seal(ring.Current, nonce, aead, c2s, s2c, cookies.AsSpan(i * cookieLength, cookieLength));
            }
            CryptographicOperations.ZeroMemory(c2s);
            CryptographicOperations.ZeroMemory(s2c);
            _metrics.CountCookies(NtsKeResponse.CookieCount);
        }
        byte[] response = new byte[256 + cookies.Length];
        int written = NtsKeResponse.Write(response, parsed, cookies, cookieLength, _config.NtpServer, _config.NtpPort);
        await stream.WriteAsync(response.AsMemory(0, written), _stopping.Token);
        await stream.ShutdownAsync();
        return !parsed.NtpV4 ? "no_protocol" : parsed.Aead is null ? "no_aead" : "ok";
    }

    private async Task WriteErrorAsync(SslStream stream, NtsKeErrorCode code)
    {
        byte[] record = new byte[16];
        int n = NtsKeRecords.WriteError(record, code);
        await stream.WriteAsync(record.AsMemory(0, n), _stopping.Token);
        await stream.ShutdownAsync();
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

    /// <summary>C2S and S2C keys (RFC 8915 §5.1): exporter context = Next Protocol (NTPv4) ‖ AEAD id ‖ 0 or 1.</summary>
    public static void ExportKeys(SslStream stream, AeadAlgorithm aead, Span<byte> c2s, Span<byte> s2c)
    {
        Span<byte> context = [0, 0, (byte)((ushort)aead >> 8), (byte)aead, 0];
        TlsKeyExporter.Export(stream, s_exporterLabel, context, c2s);
        context[4] = 1;
        TlsKeyExporter.Export(stream, s_exporterLabel, context, s2c);
    }

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
            ExportKeys(stream, AeadAlgorithm.AesSivCmac256, serverKey, unused);
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
        ExportKeys(clientStream, AeadAlgorithm.AesSivCmac256, clientKey, unused);
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
    }
}
