using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Tests.Hostile;
using Appliance.Sources;
using Appliance.Testing;
using Xunit.Abstractions;
using static Appliance.Server.Tests.Hostile.NtsKeConnections;

namespace Appliance.Server.Tests;

/// <summary>The NTS-KE listener and NTS on the NTP path, through real TLS and UDP on loopback.</summary>
public class NtsKeServerTests(ITestOutputHelper output)
{

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
    public async Task Aead30_IsNegotiatedWithOurClient_WithTheCompliantContext_AndAuthenticatesNtp()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();

        // Our client offers 30 and asks for the RFC 8915 §5.1 context (record 1024); the server echoes it.
        NtsKeResult ke = await fixture.KeAsync(AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256);

        Assert.True(ke.Succeeded, $"{ke.Error}");
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, ke.Aead);
        Assert.Equal(16, ke.C2S.Length);
        Assert.All(ke.Cookies, c => Assert.Equal(72, c.Length));
        var (check, cookies, response) = await fixture.QueryAsync(ke, ke.Cookies[0], placeholders: 1);
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(2, cookies);
        Assert.Equal(NtsResponseCheck.Authentic, NtsClientPacket.ParseResponse(response, response!.AsSpan(NtpHeader.Length + 4, 32), 2048, out ResponseAuthenticator auth));
        Assert.Equal(12, auth.NonceLength);
        await WaitForMetric(server, "appliance_ntske_aeads_total{aead=\"AES-128-GCM-SIV\",context=\"rfc8915\"}", 1);
    }

    [Fact]
    public async Task Aead30_ForAChrony44Request_UsesTheContextOf15_AsThoseClientsDeriveTheirKeys()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();

        // chrony 4.4 to 4.6.0: "30 15" and no record 1024, through real TLS.
        await using SslStream tls = await HandshakeAsync(fixture);
        var request = new byte[32];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, 0);
        NtsKeRecords.WriteHeader(request.AsSpan(n), true, NtsKeRecordType.AeadAlgorithm, 4);
        request[n + 4] = 0;
        request[n + 5] = 30;
        request[n + 6] = 0;
        request[n + 7] = 15;
        n += 8;
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        await tls.WriteAsync(request.AsMemory(0, n));
        var received = new MemoryStream();
        await tls.CopyToAsync(received);
        var session = new NtsKeClientSession([AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256]);
        session.Receive(received.ToArray());
        Assert.Equal(NtsKeClientStep.Done, session.Close());
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, session.Aead);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, session.ExporterAead); // no echo

        byte[] c2s = new byte[16], s2c = new byte[16], c2sCompliant = new byte[16], s2cCompliant = new byte[16];
        NtsKeExporter.ExportKeys(tls, AeadAlgorithm.AesSivCmac256, c2s, s2c);
        NtsKeExporter.ExportKeys(tls, AeadAlgorithm.Aes128GcmSiv, c2sCompliant, s2cCompliant);
        var ke = new NtsKeResult(AeadAlgorithm.Aes128GcmSiv, c2s, s2c, session.Cookies, null, session.Port, null);
        Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(ke, session.Cookies[0])).Check);
        (_, _, byte[]? none) = await fixture.QueryAsync(ke with { C2S = c2sCompliant, S2C = s2cCompliant }, session.Cookies[1]);
        Assert.Null(none);
        await WaitForMetric(server, "appliance_ntske_aeads_total{aead=\"AES-128-GCM-SIV\",context=\"aead15\"}", 1);
    }

    [Fact]
    public async Task Aead30_TurnedOff_OurClientOfferingItFirst_Gets15()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  aeads: [AES-SIV-CMAC-256]");
        await using ApplianceServer server = await fixture.StartAsync();
        NtsKeResult ke = await fixture.KeAsync(AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, ke.Aead);
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
    private static async Task<SslStream> HandshakeAsync(NtsServerFixture fixture, RemoteCertificateValidationCallback? validate = null) =>
        await HandshakeOnAsync(await ConnectFromAsync(IPAddress.Loopback, fixture.Ke, CancellationToken.None), fixture, validate, CancellationToken.None);

    private static Task<SslStream> HandshakeOnAsync(Socket socket, NtsServerFixture fixture, RemoteCertificateValidationCallback? validate, CancellationToken cancellationToken) =>
        NtsKeConnections.HandshakeOnAsync(socket, fixture.Certificate, cancellationToken, validate);

    private static Task<List<(ushort Type, byte[] Body)>> RawExchange(NtsServerFixture fixture, byte[] request, IPAddress? from = null) =>
        NtsKeConnections.RawExchange(fixture.Ke, fixture.Certificate, request, from);

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
        await open.WriteAsync(GoodRequest());
        var received = new MemoryStream();
        await open.CopyToAsync(received);
        Assert.True(received.Length > 8 * 104, $"only {received.Length} bytes");
    }

    /// <summary>
    /// Security review (issue #14), slowloris: a read timer restarted by every octet let a connection
    /// that sent one byte every few seconds after its handshake hold a slot for an hour, and a few
    /// addresses filled all 1,000 slots. Here 1,000 connections from four addresses each complete TLS
    /// if they are let in, then trickle a request one octet a second (never silent for the idle
    /// timeout). The rate limit is opened wide, so only the per-client cap and the deadline stand in
    /// their way: a well-behaved client from another address gets its cookies within a second, and
    /// the slow ones are closed at the exchange's deadline however they trickle.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task SlowClients_AThousandFromFourAddresses_CannotKeepAWellBehavedClientOut_AndEndAtTheDeadline()
    {
        const int Slow = 1000;
        var fixture = new NtsServerFixture(extraNtsKe: "  client-limit: { connections: 100000, interval: 1s }");
        await using ApplianceServer server = await fixture.StartAsync();
        IPAddress[] addresses = [.. Enumerable.Range(2, 4).Select(i => IPAddress.Parse($"127.0.0.{i}"))];
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        // A non-critical record of a type nobody knows, 1000 octets long: never a whole request, never too large.
        byte[] slowRequest = new byte[1004];
        NtsKeRecords.WriteHeader(slowRequest, false, (NtsKeRecordType)0x1234, 1000);
        var sockets = new List<Socket>(Slow);
        var streams = new ConcurrentBag<SslStream>();
        using var stopTrickling = new CancellationTokenSource();
        Task trickle = Task.CompletedTask;
        var attack = Stopwatch.StartNew();
        try
        {
            for (int i = 0; i < Slow; i++)
            {
                sockets.Add(await ConnectFromAsync(addresses[i % addresses.Length], fixture.Ke, bound.Token));
            }
            int[] admitted = await Task.WhenAll(sockets.Select(async socket =>
            {
                try
                {
                    SslStream tls = await HandshakeOnAsync(socket, fixture, null, bound.Token);
                    streams.Add(tls);
                    await tls.WriteAsync(slowRequest.AsMemory(0, 1), bound.Token);
                    return 1;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    return 0; // closed at accept
                }
            }));
            int held = admitted.Sum();
            // On a loaded host the first let in may reach their deadline before the last has connected,
            // and each slot that frees lets one more in: those closes, counted once every connection is
            // let in or closed, widen the bound on how many were let in over the whole attack.
            MetricsScrape afterHandshakes = await Scrape(server);
            double freedEarly = afterHandshakes.Samples
                .Where(s => s.Key.StartsWith("appliance_ntske_handshakes_total{result=\"closed\"", StringComparison.Ordinal)
                    && !s.Key.Contains("reason=\"client_concurrency\"", StringComparison.Ordinal))
                .Sum(s => s.Value);
            trickle = Task.Run(async () =>
            {
                for (int next = 1; next < slowRequest.Length; next++)
                {
                    try
                    {
                        await Task.Delay(TimeSpan.FromSeconds(1), stopTrickling.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    foreach (SslStream tls in streams)
                    {
                        try
                        {
                            await tls.WriteAsync(slowRequest.AsMemory(next, 1), stopTrickling.Token);
                        }
                        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or NotSupportedException)
                        {
                            // closed by the server
                        }
                    }
                }
            });

            var watch = Stopwatch.StartNew();
            NtsKeResult ke = await NtsKeClient.ExchangeAsync(fixture.Ke, "ntp.test", fixture.Certificate.Trust, [AeadAlgorithm.AesSivCmac256], bound.Token);
            watch.Stop();
            output.WriteLine($"{Slow} slow connections from {addresses.Length} addresses: {held} let in, {Slow - held} closed at accept; " +
                $"the well-behaved client's key exchange took {watch.Elapsed.TotalMilliseconds:F0} ms");
            Assert.True(ke.Succeeded, $"{ke.Reason} {ke.Error}");
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the key exchange took {watch.Elapsed.TotalMilliseconds:F0} ms");

            // Four addresses hold at most ten connections each (client-limit.concurrent) at once; the rest were closed at accept.
            Assert.InRange(held, addresses.Length, (addresses.Length * 10) + freedEarly);
            Assert.InRange(server.NtsKe!.ActiveConnections, 0, addresses.Length * 10);
            MetricsScrape scrape = await Scrape(server);
            Assert.Equal(Slow - held, scrape["appliance_ntske_handshakes_total{result=\"closed\",reason=\"client_concurrency\"}"]);
            Assert.Equal(0, scrape["appliance_ntske_handshakes_total{result=\"closed\",reason=\"max_connections\"}"]);

            // Trickling keeps none of them past the deadline: 5 s handshake + 2 s request from accept
            // (the margin is for a loaded host's timers and scrapes).
            await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"deadline\"}", held);
            Assert.Equal(0, server.NtsKe.ActiveConnections);
            output.WriteLine($"the {held} let in were all closed at the deadline, {attack.Elapsed.TotalSeconds:F1} s after the first connected");
            Assert.True(attack.Elapsed < TimeSpan.FromSeconds(10), $"closed {attack.Elapsed.TotalSeconds:F1} s after the first connected");
            Assert.Equal(0, (await Scrape(server))["appliance_ntske_handshakes_total{result=\"closed\",reason=\"idle_timeout\"}"]);
        }
        finally
        {
            await stopTrickling.CancelAsync();
            await trickle;
            foreach (SslStream tls in streams)
            {
                await tls.DisposeAsync();
            }
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task TricklingClient_IsClosedAtTheExchangeDeadline_ThoughNeverIdle()
    {
        // Deadline: handshake-timeout 1 s + request-timeout 2 s (its default) from accept; an octet every 300 ms is never idle for 1 s.
        var fixture = new NtsServerFixture(extraNtsKe: "  handshake-timeout: 1s\n  idle-timeout: 1s");
        await using ApplianceServer server = await fixture.StartAsync();
        var watch = Stopwatch.StartNew();
        await using SslStream tls = await HandshakeAsync(fixture);
        Task<int> closed = tls.ReadAsync(new byte[16]).AsTask();
        byte[] slowRequest = new byte[104];
        NtsKeRecords.WriteHeader(slowRequest, false, (NtsKeRecordType)0x1234, 100);
        for (int i = 0; i < slowRequest.Length && !closed.IsCompleted && watch.Elapsed < TimeSpan.FromSeconds(10); i++)
        {
            try
            {
                await tls.WriteAsync(slowRequest.AsMemory(i, 1));
            }
            catch (IOException)
            {
                break; // closed by the server
            }
            await Task.WhenAny(closed, Task.Delay(300));
        }
        Assert.True(closed.IsCompleted, $"still open after {watch.Elapsed.TotalSeconds:F1} s");
        TimeSpan open = watch.Elapsed;
        output.WriteLine($"a client sending an octet every 300 ms was closed {open.TotalSeconds:F2} s after it connected");
        Assert.True(open > TimeSpan.FromSeconds(2.5) && open < TimeSpan.FromSeconds(6), $"closed after {open.TotalSeconds:F1} s");
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"deadline\"}", 1);
        Assert.Equal(0, (await Scrape(server))["appliance_ntske_handshakes_total{result=\"closed\",reason=\"idle_timeout\"}"]);
    }

    [Fact]
    public async Task DeniedNetwork_IsClosedAtAccept_BeforeTls_AndCounted_AnAllowedAddressIsServed()
    {
        // Security review (issue #14): NTS-KE ignored ntp.access, so a denied network still cost TLS handshakes.
        var fixture = new NtsServerFixture(extraNtp: ", access: { deny: [\"127.0.0.0/30\"] }");
        await using ApplianceServer server = await fixture.StartAsync();

        using (Socket denied = await ConnectFromAsync(IPAddress.Parse("127.0.0.2"), fixture.Ke, CancellationToken.None))
        {
            denied.ReceiveTimeout = 5000;
            Assert.Equal(0, denied.Receive(new byte[16])); // closed at once, before any ClientHello: no TLS work
        }
        await Assert.ThrowsAnyAsync<Exception>(() => fixture.KeAsync()); // from 127.0.0.1
        await WaitForMetric(server, "appliance_ntske_handshakes_total{result=\"closed\",reason=\"denied\"}", 2);

        var records = await RawExchange(fixture, GoodRequest(), from: IPAddress.Parse("127.0.0.4"));
        Assert.Equal(8, records.Count(r => r.Type == (ushort)NtsKeRecordType.NewCookie));
        MetricsScrape scrape = await Scrape(server);
        Assert.Equal(1, scrape["appliance_ntske_handshakes_total{result=\"ok\",reason=\"ok\"}"]);
        Assert.Equal(0, scrape["appliance_ntske_handshakes_total{result=\"closed\",reason=\"tls\"}"]);
    }

    [Fact]
    public async Task LongestNtpServerNameValidateTakes_ReachesTheClient()
    {
        // Security review (issue #14): a name past ~198 characters once made every exchange throw.
        string name = ConfigAddressTests.LongName(AddressText.MaxNameLength);
        var fixture = new NtsServerFixture(extraNtsKe: $"  ntp-server: \"{name}:1123\"");
        await using ApplianceServer server = await fixture.StartAsync();
        NtsKeResult ke = await fixture.KeAsync();
        Assert.True(ke.Succeeded, $"{ke.Reason} {ke.Error}");
        Assert.Equal((name, (ushort?)1123), (ke.Server, ke.Port));
        Assert.Equal(8, ke.Cookies.Count);
    }

    [Fact]
    public async Task RenewedKeyUnreadable_TheReloadFailsAndIsCounted_TheOldCertificateServesOn()
    {
        // Security review (issue #14): the reload ran on the file watcher's timer and let an
        // UnauthorizedAccessException out, which ended the process. Root reads any file, so the key
        // is made unreadable the way it is for root too: its path is a directory.
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        File.Delete(fixture.Certificate.KeyPath);
        Directory.CreateDirectory(fixture.Certificate.KeyPath);
        File.WriteAllText(fixture.Certificate.CertificatePath, File.ReadAllText(fixture.Certificate.CertificatePath)); // "renewed"

        await WaitForMetric(server, "appliance_ntske_certificate_reloads_total{result=\"failed\"}", 1);
        NtsKeResult ke = await fixture.KeAsync(); // trusts the original certificate only
        Assert.True(ke.Succeeded, $"{ke.Reason} {ke.Error}");
        Assert.Equal(0, (await Scrape(server))["appliance_ntske_certificate_reloads_total{result=\"ok\"}"]);
    }

    private static async Task WaitFor(Func<bool> condition) => await NtsKeConnections.WaitFor(() => Task.FromResult(condition()));

    private static Task WaitFor(Func<Task<bool>> condition) => NtsKeConnections.WaitFor(condition);
}
