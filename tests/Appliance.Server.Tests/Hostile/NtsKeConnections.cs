using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Appliance.Protocol.Nts;
using Appliance.Server.Hosting;
using Appliance.Testing;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// Raw NTS-KE client pieces for tests that misbehave on purpose: a TCP connection from a chosen
/// 127.0.0.0/8 address, the TLS handshake with chosen versions and ALPN, a request written as octets,
/// the records read back, and the server's counters.
/// </summary>
internal static class NtsKeConnections
{
    public static readonly SslApplicationProtocol NtsKe = new("ntske/1");

    public static async Task<MetricsScrape> Scrape(ApplianceServer server) => await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");

    /// <summary><c>appliance_ntske_handshakes_total</c> for one (result, reason) pair (<see cref="NtsKeOutcomeNames"/>).</summary>
    public static string Handshakes(NtsKeServerReason reason) =>
        $"appliance_ntske_handshakes_total{{result=\"{NtsKeOutcomeNames.Result(reason)}\",reason=\"{NtsKeOutcomeNames.Reason(reason)}\"}}";

    /// <summary>Every connection the server has ended, whatever the reason.</summary>
    public static double AllHandshakes(MetricsScrape scrape) =>
        scrape.Samples.Where(s => s.Key.StartsWith("appliance_ntske_handshakes_total{", StringComparison.Ordinal)).Sum(s => s.Value);

    /// <summary>A TCP connection to <paramref name="server"/> from <paramref name="local"/>: every 127.0.0.0/8 address is this host's.</summary>
    public static async Task<Socket> ConnectFromAsync(IPAddress local, IPEndPoint server, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(local, 0));
            await socket.ConnectAsync(server, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A TLS handshake on a connected socket, which the stream then owns: TLS 1.3 and ALPN ntske/1
    /// unless told otherwise; by default it trusts exactly the fixture's certificate.
    /// </summary>
    public static async Task<SslStream> HandshakeOnAsync(Socket socket, TestCertificate certificate, CancellationToken cancellationToken,
        RemoteCertificateValidationCallback? validate = null, SslProtocols protocols = SslProtocols.Tls13, SslApplicationProtocol? alpn = null)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), false,
            validate ?? ((_, c, _, _) => c?.GetCertHashString() == certificate.Certificate.GetCertHashString()));
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "ntp.test",
                EnabledSslProtocols = protocols,
                ApplicationProtocols = [alpn ?? NtsKe],
            }, cancellationToken);
            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    /// <summary>A request for AEAD 15 with NTPv4, as chronyd sends it.</summary>
    public static byte[] GoodRequest()
    {
        var request = new byte[32];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, 0);
        n += NtsKeRecords.WriteUInt16(request.AsSpan(n), true, NtsKeRecordType.AeadAlgorithm, 15);
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        return request[..n];
    }

    /// <summary>Records, each written with its critical bit, one after the other.</summary>
    public static byte[] Records(params (bool Critical, NtsKeRecordType Type, byte[] Body)[] records)
    {
        var bytes = new byte[records.Sum(r => NtsKeRecords.HeaderLength + r.Body.Length)];
        int n = 0;
        foreach ((bool critical, NtsKeRecordType type, byte[] body) in records)
        {
            n += NtsKeRecords.Write(bytes.AsSpan(n), critical, type, body);
        }
        return bytes;
    }

    /// <summary>Everything the server sends until it closes, as records (a trailing part of one is dropped).</summary>
    public static async Task<List<(ushort Type, byte[] Body)>> ReadRecordsAsync(SslStream tls, CancellationToken cancellationToken)
    {
        var received = new MemoryStream();
        await tls.CopyToAsync(received, cancellationToken);
        var records = new List<(ushort, byte[])>();
        byte[] bytes = received.ToArray();
        int offset = 0;
        while (NtsKeRecords.TryRead(bytes.AsSpan(offset), out NtsKeRecord record, out int consumed))
        {
            records.Add((record.Type, record.Body.ToArray()));
            offset += consumed;
        }
        return records;
    }

    /// <summary>A raw NTS-KE session from <paramref name="from"/>: handshake, send <paramref name="request"/>, read all records back.</summary>
    public static async Task<List<(ushort Type, byte[] Body)>> RawExchange(IPEndPoint server, TestCertificate certificate, byte[] request,
        IPAddress? from = null, CancellationToken cancellationToken = default)
    {
        await using SslStream tls = await HandshakeOnAsync(await ConnectFromAsync(from ?? IPAddress.Loopback, server, cancellationToken),
            certificate, cancellationToken);
        await tls.WriteAsync(request, cancellationToken);
        return await ReadRecordsAsync(tls, cancellationToken);
    }

    /// <summary>
    /// The first TLS record a real .NET client sends (its ClientHello: TLS 1.3, ALPN ntske/1, SNI
    /// ntp.test), caught by a listener that then hangs up, for tests that send part of it.
    /// </summary>
    public static async Task<byte[]> ClientHelloAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!, timeout.Token);
        var tls = new SslStream(new NetworkStream(client, ownsSocket: false), false, (_, _, _, _) => false);
        Task handshake = tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "ntp.test",
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [NtsKe],
        }, timeout.Token);
        using Socket accepted = await listener.AcceptAsync(timeout.Token);
        // A TLS record: type (1), version (2), length (2), then that many octets (RFC 8446 §5.1).
        var header = new byte[5];
        await ReadExactlyAsync(accepted, header, timeout.Token);
        var hello = new byte[5 + ((header[3] << 8) | header[4])];
        header.CopyTo(hello, 0);
        await ReadExactlyAsync(accepted, hello.AsMemory(5), timeout.Token);
        accepted.Close();
        await Assert.ThrowsAnyAsync<Exception>(() => handshake);
        await tls.DisposeAsync();
        Assert.Equal(0x16, hello[0]); // handshake
        Assert.Equal(0x01, hello[5]); // ClientHello
        return hello;
    }

    private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        for (int n = 0; n < buffer.Length;)
        {
            int read = await socket.ReceiveAsync(buffer[n..], cancellationToken);
            Assert.NotEqual(0, read);
            n += read;
        }
    }

    public static async Task WaitFor(Func<Task<bool>> condition, TimeSpan? within = null)
    {
        TimeSpan limit = within ?? TimeSpan.FromSeconds(10);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                Assert.Fail($"condition not met within {limit.TotalSeconds:F0} s");
            }
            await Task.Delay(100);
        }
    }

    public static Task WaitForMetric(ApplianceServer server, string series, double value) =>
        WaitFor(async () => (await Scrape(server))[series] == value);
}
