using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>The NTS-KE listener and NTS on the NTP path, through real TLS and UDP on loopback.</summary>
public class NtsKeServerTests
{
    private static async Task<MetricsScrape> Scrape(ApplianceServer server) => await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");

    [Fact]
    public async Task KeyExchange_GivesAead15Port8Cookies_AndTheKeysAuthenticateNtp()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();

        NtsKeResult ke = await fixture.KeAsync();

        Assert.True(ke.Succeeded, $"{ke.Error}");
        Assert.Equal(AeadAlgorithm.AesSivCmac256, ke.Aead);
        Assert.Equal(8, ke.Cookies.Count);
        Assert.All(ke.Cookies, c => Assert.Equal(104, c.Length));
        Assert.Equal((ushort)fixture.NtpPort, ke.Port);
        Assert.Null(ke.Server);
        var (check, cookies, response) = await fixture.QueryAsync(ke, ke.Cookies[0], placeholders: 2);
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(3, cookies);
        Assert.Equal(3, NtpHeader.Read(response).Stratum);

        MetricsScrape scrape = await Scrape(server);
        Assert.Equal(1, scrape["appliance_ntske_handshakes_total{result=\"ok\",reason=\"ok\"}"]);
        Assert.Equal(8, scrape["appliance_nts_cookies_issued_total{via=\"ntske\"}"]);
        Assert.Equal(3, scrape["appliance_nts_cookies_issued_total{via=\"ntp\"}"]);
        Assert.Equal(1, scrape["appliance_nts_requests_total{kind=\"respond\",reason=\"served\"}"]);
    }

    [Fact]
    public async Task Aead17_IsNegotiatedWhenOfferedFirst()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        NtsKeResult ke = await fixture.KeAsync(AeadAlgorithm.AesSivCmac512, AeadAlgorithm.AesSivCmac256);
        Assert.Equal(AeadAlgorithm.AesSivCmac512, ke.Aead);
        Assert.Equal(64, ke.C2S.Length);
        Assert.All(ke.Cookies, c => Assert.Equal(168, c.Length));
        Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(ke, ke.Cookies[0])).Check);
    }

    [Fact]
    public async Task ClientWithoutAlpn_IsClosedAndCounted()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            NtsKeResult result = await NtsKeClient.ExchangeAsync(fixture.Ke, "ntp.test", fixture.Certificate.Trust,
                [AeadAlgorithm.AesSivCmac256], CancellationToken.None, offerAlpn: false);
            Assert.False(result.Succeeded);
            throw new InvalidOperationException("no cookies, as expected");
        });
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"alpn\"}", 1);
    }

    [Fact]
    public async Task Tls12Client_IsRefused()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(fixture.Ke);
        await using var tls = new SslStream(new NetworkStream(socket), false, (_, _, _, _) => true);
        await Assert.ThrowsAnyAsync<Exception>(() => tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "ntp.test",
            EnabledSslProtocols = SslProtocols.Tls12,
            ApplicationProtocols = [new SslApplicationProtocol("ntske/1")],
        }));
    }

    /// <summary>
    /// A TLS 1.3 connection to the NTS-KE listener, asking for ntske/1 (it owns its socket); by
    /// default it trusts exactly the fixture's certificate.
    /// </summary>
    private static async Task<SslStream> HandshakeAsync(NtsServerFixture fixture, RemoteCertificateValidationCallback? validate = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(fixture.Ke);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), false,
            validate ?? ((_, c, _, _) => c?.GetCertHashString() == fixture.Certificate.Certificate.GetCertHashString()));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "ntp.test",
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [new SslApplicationProtocol("ntske/1")],
        });
        return tls;
    }

    /// <summary>A raw NTS-KE session: handshake, send <paramref name="request"/>, read all records back.</summary>
    private static async Task<List<(ushort Type, byte[] Body)>> RawExchange(NtsServerFixture fixture, byte[] request)
    {
        await using SslStream tls = await HandshakeAsync(fixture);
        await tls.WriteAsync(request);
        var received = new MemoryStream();
        await tls.CopyToAsync(received);
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

    [Fact]
    public async Task BadRequest_GetsErrorRecordBadRequest()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        var request = new byte[16];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.AeadAlgorithm, 15);
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        var records = await RawExchange(fixture, request[..n]);
        Assert.Equal((ushort)NtsKeRecordType.Error, records[0].Type);
        Assert.Equal([0, (byte)NtsKeErrorCode.BadRequest], records[0].Body);
        Assert.Equal((ushort)NtsKeRecordType.EndOfMessage, records[^1].Type);
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"error\",reason=\"bad_request\"}", 1);
    }

    [Fact]
    public async Task UnrecognizedCriticalRecord_GetsErrorRecordZero()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        var request = new byte[32];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, 0);
        n += NtsKeRecords.Write(request.AsSpan(n), true, (NtsKeRecordType)0x1234, [1, 2]);
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        var records = await RawExchange(fixture, request[..n]);
        Assert.Equal((ushort)NtsKeRecordType.Error, records[0].Type);
        Assert.Equal([0, (byte)NtsKeErrorCode.UnrecognizedCriticalRecord], records[0].Body);
    }

    [Fact]
    public async Task OversizedRequest_GetsErrorAndIsCounted()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  max-request: 64");
        await using ApplianceServer server = await fixture.StartAsync();
        var request = new byte[200];
        NtsKeRecords.Write(request, false, (NtsKeRecordType)0x1234, new byte[150]);
        var records = await RawExchange(fixture, request[..154]);
        Assert.Equal((ushort)NtsKeRecordType.Error, records[0].Type);
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"error\",reason=\"request_too_large\"}", 1);
    }

    [Fact]
    public async Task ClientClosingBeforeEndOfMessage_GetsNothing_AndIsCountedClientClosed()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        await using SslStream tls = await HandshakeAsync(fixture);
        var request = new byte[8];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, 0);
        await tls.WriteAsync(request.AsMemory(0, n));
        await tls.ShutdownAsync();
        var received = new MemoryStream();
        await tls.CopyToAsync(received);
        Assert.Equal(0, received.Length);
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"error\",reason=\"client_closed\"}", 1);
    }

    [Fact]
    public async Task ConnectionLimits_ExcessIsClosedAndCounted()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  max-connections: 2\n  client-limit: { connections: 50, interval: 60s }\n  handshake-timeout: 10s");
        await using ApplianceServer server = await fixture.StartAsync();
        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < 2; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(fixture.Ke);
                held.Add(s);
            }
            await WaitFor(() => server.NtsKe!.ActiveConnections == 2);
            using var third = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await third.ConnectAsync(fixture.Ke);
            third.ReceiveTimeout = 5000;
            Assert.Equal(0, third.Receive(new byte[16])); // closed by the server at once
            await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"max_connections\"}", 1);
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task PerClientRate_ExcessIsClosedAndCounted()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  client-limit: { connections: 2, interval: 60s }");
        await using ApplianceServer server = await fixture.StartAsync();
        Assert.True((await fixture.KeAsync()).Succeeded);
        Assert.True((await fixture.KeAsync()).Succeeded);
        await Assert.ThrowsAnyAsync<Exception>(() => fixture.KeAsync());
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"client_rate\"}", 1);
    }

    [Fact]
    public async Task SilentClient_IsClosedAfterTheHandshakeTimeout()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  handshake-timeout: 300ms");
        await using ApplianceServer server = await fixture.StartAsync();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(fixture.Ke);
        socket.ReceiveTimeout = 5000;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(0, socket.Receive(new byte[16]));
        Assert.InRange(watch.Elapsed.TotalSeconds, 0.2, 4);
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"handshake_timeout\"}", 1);
    }

    [Fact]
    public async Task CookieOfAnotherServer_GetsNtsNak()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        NtsKeResult ke = await fixture.KeAsync();
        byte[] forged = (byte[])ke.Cookies[0].Clone();
        forged[0] ^= 0xFF; // another key id
        var (check, _, response) = await fixture.QueryAsync(ke, forged);
        Assert.Equal(NtsResponseCheck.Nak, check);
        Assert.Equal(KissCode.NtsNak, KissOfDeath.Read(response));
        MetricsScrape scrape = await Scrape(server);
        Assert.Equal(1, scrape["appliance_nts_requests_total{kind=\"kod\",reason=\"nts_cookie_unknown_key\"}"]);
    }

    [Fact]
    public async Task CertificateReplaced_NewHandshakesGetIt_OpenConnectionCompletes()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        // A connection whose handshake is done before the change...
        await using SslStream open = await HandshakeAsync(fixture, (_, _, _, _) => true);

        TestCertificate renewed = TestCertificate.Create("ntp.test", "127.0.0.1");
        File.Copy(renewed.KeyPath, fixture.Certificate.KeyPath, overwrite: true);
        File.Copy(renewed.CertificatePath, fixture.Certificate.CertificatePath, overwrite: true);

        // ...new handshakes see the renewed certificate once the watcher has reloaded it...
        await WaitFor(async () =>
        {
            try
            {
                return (await NtsKeClient.ExchangeAsync(fixture.Ke, "ntp.test", renewed.Trust, [AeadAlgorithm.AesSivCmac256], CancellationToken.None)).Succeeded;
            }
            catch (AuthenticationException)
            {
                return false;
            }
        });
        // ...and the connection opened before still gets its cookies.
        var request = new byte[32];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, 0);
        n += NtsKeRecords.WriteUInt16(request.AsSpan(n), true, NtsKeRecordType.AeadAlgorithm, 15);
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        await open.WriteAsync(request.AsMemory(0, n));
        var received = new MemoryStream();
        await open.CopyToAsync(received);
        Assert.True(received.Length > 8 * 104, $"only {received.Length} bytes");
    }

    private static async Task WaitFor(Func<bool> condition) => await WaitFor(() => Task.FromResult(condition()));

    private static async Task WaitFor(Func<Task<bool>> condition)
    {
        for (int i = 0; i < 100; i++)
        {
            if (await condition())
            {
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail("condition not met within 10 s");
    }

    private static Task WaitForMetric(ApplianceServer server, string series, double value) =>
        WaitFor(async () => (await Scrape(server))[series] == value);
}
