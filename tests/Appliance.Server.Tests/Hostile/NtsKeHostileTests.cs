using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Xunit.Abstractions;
using static Appliance.Server.Tests.Hostile.NtsKeConnections;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// Issue #18, NTS-KE under attack: connections that never finish, a handshake flood and malformed
/// requests against the real listener (TLS 1.3 with a test certificate, loopback only). Each hostile
/// connection must end with the answer RFC 8915 §4 gives it, or be closed, and be counted under its
/// reason in <c>appliance_ntske_handshakes_total</c>; none may cost a well-behaved client its key exchange.
/// </summary>
public class NtsKeHostileTests(ITestOutputHelper output)
{
    private enum Slow
    {
        /// <summary>Connects and sends nothing.</summary>
        Silent,

        /// <summary>Sends the first half of a real ClientHello, then nothing.</summary>
        HalfClientHello,

        /// <summary>Completes the TLS handshake, then sends no request.</summary>
        HandshakeThenSilent,
    }

    /// <summary>
    /// 1,000 connections from eight addresses that never finish (a third silent, a third stopping
    /// half-way through their ClientHello, a third stopping after the handshake), and a flood of
    /// complete key exchanges from one more address, against the real executable with its default
    /// NTS-KE limits (1,000 connections in all; per client 10 open, 20 new per 10 s; the handshake
    /// in 5 s, then a read at least every 5 s, all over by 7 s from accept). Meanwhile a client
    /// from another address completes ten key exchanges and NTP keeps answering. What must hold:
    /// no address holds more than 10 connections (the rest are closed at accept and counted
    /// <c>client_concurrency</c>), the flood gets at most 20 exchanges per 10 s (the rest counted
    /// <c>client_rate</c>), the slow ones end at their timeouts under their reasons, every
    /// connection is counted exactly once, and none are left open.
    /// The well-behaved client's exchanges take tens of milliseconds when this box is quiet; the
    /// issue's bound is 1 s, asserted on the median of the ten, with 3 s for the slowest one: a
    /// second core shared with five other builds can stall any single exchange, but not most of them.
    /// </summary>
    [Fact(Timeout = 180_000)]
    public async Task Slowloris_AThousandUnfinishedConnections_AndAHandshakeFlood_LeaveANewClientItsKeyExchange_AndTheLimitsHold()
    {
        const int Connections = 1000, Concurrent = 10, PerInterval = 20;
        const int Good = 10, FloodLoops = 4;
        IPAddress[] attackers = [.. Enumerable.Range(1, 8).Select(i => IPAddress.Parse($"127.0.1.{i}"))];
        IPAddress flooder = IPAddress.Parse("127.0.0.9");
        var fixture = new NtsServerFixture();
        int metricsPort = Ports.FreeTcpPort();
        string yaml = fixture.Yaml.Replace("metrics: { listen: \"127.0.0.1:0\" }", $"metrics: {{ listen: \"127.0.0.1:{metricsPort}\" }}", StringComparison.Ordinal);
        Assert.NotEqual(fixture.Yaml, yaml);
        await using PeerProcess server = ApplianceProcess.Start("serve", "--config", ApplianceProcess.WriteConfig(yaml));
        await server.WaitForOutputAsync("serving NTS-KE", TimeSpan.FromSeconds(30));
        await server.WaitForOutputAsync("serving NTP", TimeSpan.FromSeconds(30));
        async Task<MetricsScrape> ScrapeServer() => await MetricsScrape.FetchAsync($"http://127.0.0.1:{metricsPort}/metrics");

        byte[] hello = await ClientHelloAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var sockets = new List<Socket>(Connections);
        var streams = new ConcurrentBag<SslStream>();
        var handshakes = new List<Task<bool>>();
        var handshakesPerAddress = new int[attackers.Length];
        using var stopFlood = new CancellationTokenSource();
        long floodAttempts = 0, floodOk = 0;
        double maxOpen = 0;
        Task flood = Task.CompletedTask, sampler = Task.CompletedTask;
        try
        {
            var attack = Stopwatch.StartNew();
            for (int i = 0; i < Connections; i++)
            {
                Socket socket = await ConnectFromAsync(attackers[i % attackers.Length], fixture.Ke, bound.Token);
                sockets.Add(socket);
                switch ((Slow)(i % 3))
                {
                    case Slow.HalfClientHello:
                        try
                        {
                            await socket.SendAsync(hello.AsMemory(0, hello.Length / 2), bound.Token);
                        }
                        catch (SocketException)
                        {
                            // already closed at accept
                        }
                        break;
                    case Slow.HandshakeThenSilent:
                        int address = i % attackers.Length;
                        handshakes.Add(Task.Run(async () =>
                        {
                            try
                            {
                                streams.Add(await HandshakeOnAsync(socket, fixture.Certificate, bound.Token));
                                Interlocked.Increment(ref handshakesPerAddress[address]);
                                return true;
                            }
                            catch (Exception e) when (e is AuthenticationException or IOException)
                            {
                                return false; // closed at accept
                            }
                        }));
                        break;
                }
            }
            bool[] completed = await Task.WhenAll(handshakes);
            int tlsHeld = completed.Count(c => c);
            // A slot freed by a timeout before the last connection arrived lets one more in: counted
            // here, it widens the bound on how many were let in (only on a host slow enough to take 5 s).
            MetricsScrape connected = await ScrapeServer();
            double freedEarly = connected[Handshakes(NtsKeServerReason.HandshakeTimeout)] + connected[Handshakes(NtsKeServerReason.IdleTimeout)];
            output.WriteLine($"{Connections} slow connections from {attackers.Length} addresses in {attack.Elapsed.TotalMilliseconds:F0} ms; " +
                $"{tlsHeld} of {handshakes.Count} completed TLS; per address: {string.Join(" ", handshakesPerAddress)}");

            sampler = Task.Run(async () =>
            {
                while (!stopFlood.IsCancellationRequested)
                {
                    maxOpen = Math.Max(maxOpen, (await ScrapeServer())["appliance_ntske_connections"]);
                    await Task.Delay(100);
                }
            });
            var floodWatch = Stopwatch.StartNew();
            flood = Task.WhenAll(Enumerable.Range(0, FloodLoops).Select(_ => Task.Run(async () =>
            {
                while (!stopFlood.IsCancellationRequested)
                {
                    Socket socket;
                    try
                    {
                        socket = await ConnectFromAsync(flooder, fixture.Ke, bound.Token);
                    }
                    catch (SocketException)
                    {
                        continue; // never connected: nothing for the server to count
                    }
                    Interlocked.Increment(ref floodAttempts);
                    try
                    {
                        await using SslStream tls = await HandshakeOnAsync(socket, fixture.Certificate, bound.Token);
                        await tls.WriteAsync(GoodRequest(), bound.Token);
                        if ((await ReadRecordsAsync(tls, bound.Token)).Count(r => r.Type == (ushort)NtsKeRecordType.NewCookie) == 8)
                        {
                            Interlocked.Increment(ref floodOk);
                        }
                    }
                    catch (Exception e) when (e is AuthenticationException or IOException)
                    {
                        // closed at accept
                    }
                }
            })));

            await Task.Delay(500); // the flood under way
            var times = new List<double>();
            int answered = 0;
            for (int i = 0; i < Good; i++)
            {
                var watch = Stopwatch.StartNew();
                NtsKeResult ke = await NtsKeClient.ExchangeAsync(fixture.Ke, "ntp.test", fixture.Certificate.Trust, [AeadAlgorithm.AesSivCmac256], bound.Token);
                times.Add(watch.Elapsed.TotalMilliseconds);
                Assert.True(ke.Succeeded, $"exchange {i}: {ke.Reason} {ke.Error}");
                answered += await NtpQuery.ExchangeAsync(fixture.Ntp, NtpQuery.ClientRequest((ulong)i + 1), TimeSpan.FromSeconds(3)) is null ? 0 : 1;
                await Task.Delay(100, bound.Token);
            }
            await stopFlood.CancelAsync();
            await flood;
            await sampler;
            double floodSeconds = floodWatch.Elapsed.TotalSeconds;
            times.Sort();
            double median = times[times.Count / 2];
            output.WriteLine($"the well-behaved client's key exchanges under attack: median {median:F1} ms, max {times[^1]:F1} ms ({string.Join(" ", times.Select(t => t.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))})");
            output.WriteLine($"the flood from {flooder}: {floodAttempts} connections in {floodSeconds:F1} s, {floodOk} key exchanges completed; at most {maxOpen} connections open");
            Assert.True(median < 1000, $"median key exchange {median:F0} ms");
            Assert.True(times[^1] < 3000, $"slowest key exchange {times[^1]:F0} ms");
            Assert.Equal(Good, answered); // NTP answered throughout

            // Per client: no address completed more handshakes than it may hold open, the flood no more
            // exchanges than its windows allow (fixed 10 s windows from its first connection).
            Assert.All(handshakesPerAddress, n => Assert.InRange(n, 1, Concurrent));
            Assert.InRange(floodOk, 1, PerInterval * ((long)(floodSeconds / 10) + 1));
            Assert.InRange(maxOpen, 1, (attackers.Length * Concurrent) + FloodLoops + 1);

            // Every connection ends, within the 7 s deadline of the last, and is counted once.
            long total = Connections + floodAttempts + Good;
            await WaitFor(async () => AllHandshakes(await ScrapeServer()) == total, TimeSpan.FromSeconds(30));
            MetricsScrape end = await ScrapeServer();
            Assert.Equal(0, end["appliance_ntske_connections"]);
            double refused = end[Handshakes(NtsKeServerReason.ClientConcurrency)];
            double letIn = Connections - refused;
            output.WriteLine($"let in {letIn} of the slow connections, {refused} closed at accept (client_concurrency), " +
                $"{end[Handshakes(NtsKeServerReason.ClientRate)]} flood connections closed at accept (client_rate)");
            Assert.InRange(letIn, attackers.Length, (attackers.Length * Concurrent) + freedEarly);
            // The silent and half-hello ones at the handshake timeout, those past TLS at the idle timeout.
            Assert.Equal(letIn - tlsHeld, end[Handshakes(NtsKeServerReason.HandshakeTimeout)]);
            Assert.Equal(tlsHeld, end[Handshakes(NtsKeServerReason.IdleTimeout)]);
            Assert.Equal(floodOk + Good, end[Handshakes(NtsKeServerReason.Ok)]);
            Assert.Equal(floodAttempts - floodOk, end[Handshakes(NtsKeServerReason.ClientRate)]);
            Assert.Equal(0, end[Handshakes(NtsKeServerReason.MaxConnections)]);
            Assert.Equal(0, end[Handshakes(NtsKeServerReason.Internal)]);
        }
        finally
        {
            await stopFlood.CancelAsync();
            await Task.WhenAll(flood, sampler).ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (SslStream tls in streams)
            {
                await tls.DisposeAsync();
            }
            sockets.ForEach(s => s.Dispose());
        }
    }

    /// <summary>
    /// <c>max-connections</c> holds: 600 connections from 60 addresses (each within its own limit of
    /// 10) against a server that holds 50, silent until the handshake timeout. The gauge never goes
    /// past 50, the rest are closed at accept and counted <c>max_connections</c>, and once the
    /// timeouts have freed the slots a new client is served.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task MaxConnections_HoldsAgainstSixHundredSilentConnections_TheExcessIsCounted_AndFreedSlotsServeANewClient()
    {
        const int Max = 50, Addresses = 60, PerAddress = 10;
        var fixture = new NtsServerFixture(extraNtsKe: $"  max-connections: {Max}\n  handshake-timeout: 2s");
        await using ApplianceServer server = await fixture.StartAsync();
        var sockets = new List<Socket>();
        int maxOpen = 0;
        using var stop = new CancellationTokenSource();
        Task sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                maxOpen = Math.Max(maxOpen, server.NtsKe!.ActiveConnections);
                await Task.Delay(5);
            }
        });
        try
        {
            for (int i = 0; i < Addresses * PerAddress; i++)
            {
                sockets.Add(await ConnectFromAsync(IPAddress.Parse($"127.0.2.{1 + (i % Addresses)}"), fixture.Ke, CancellationToken.None));
            }
            await WaitFor(async () => AllHandshakes(await Scrape(server)) == (Addresses * PerAddress) - Max);
            MetricsScrape full = await Scrape(server);
            Assert.Equal((Addresses * PerAddress) - Max, full[Handshakes(NtsKeServerReason.MaxConnections)]);
            Assert.Equal(Max, full["appliance_ntske_connections"]);
            await Assert.ThrowsAnyAsync<Exception>(() => fixture.KeAsync()); // full: closed at accept too

            await WaitForMetric(server, Handshakes(NtsKeServerReason.HandshakeTimeout), Max);
            NtsKeResult ke = await fixture.KeAsync();
            Assert.True(ke.Succeeded, $"{ke.Reason} {ke.Error}");
            await stop.CancelAsync();
            await sampler;
            output.WriteLine($"at most {maxOpen} connections open of {Addresses * PerAddress} offered");
            Assert.Equal(Max, maxOpen);
            MetricsScrape end = await Scrape(server);
            Assert.Equal((Addresses * PerAddress) - Max + 1, end[Handshakes(NtsKeServerReason.MaxConnections)]);
            Assert.Equal(0, end["appliance_ntske_connections"]);
        }
        finally
        {
            await stop.CancelAsync();
            await sampler;
            sockets.ForEach(s => s.Dispose());
        }
    }

    /// <summary>
    /// One malformed exchange: what the client does, the reason the server must count, and the Error
    /// record it must get (null: closed with no answer). <paramref name="OrReset"/>: a reset may come
    /// first, for a client still sending when the server has read all it will (the kernel then throws
    /// away what the client has not read yet).
    /// </summary>
    private sealed record Case(string What, Func<Task<Ending>> Run, NtsKeServerReason Reason, NtsKeErrorCode? Error, bool OrReset = false);

    /// <summary>How a malformed exchange ended, seen from the client.</summary>
    private sealed record Ending(NtsKeErrorCode? Error, bool ClosedWithoutAnswer, string Detail);

    /// <summary>An Error record and End of Message (RFC 8915 §4.1.3), nothing else: its code; else what came.</summary>
    private static Ending ErrorOf(List<(ushort Type, byte[] Body)> records) =>
        records.Count == 2 && records[0].Type == (ushort)NtsKeRecordType.Error && records[0].Body.Length == 2
            && records[1].Type == (ushort)NtsKeRecordType.EndOfMessage && records[1].Body.Length == 0
            ? new Ending((NtsKeErrorCode)((records[0].Body[0] << 8) | records[0].Body[1]), false, "error record")
            : new Ending(null, records.Count == 0, $"{records.Count} records: {string.Join(",", records.Select(r => r.Type))}");

    /// <summary>
    /// Every malformed exchange of issue #18, at once, each from its own address, while a
    /// well-behaved client keeps exchanging keys: each gets the answer RFC 8915 §4 gives it (an
    /// Error record with code 0 for an unrecognised critical record, 1 for a bad request; §4.1.3) or
    /// a closed connection, is counted under its reason, and the good client never fails.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task MalformedExchanges_EachGetsItsErrorRecordOrIsClosed_EachIsCounted_AndAGoodClientInParallelIsServed()
    {
        var fixture = new NtsServerFixture(extraNtsKe: "  handshake-timeout: 2s\n  idle-timeout: 1s\n  max-request: 1024\n  client-limit: { connections: 1000, interval: 10s }");
        await using ApplianceServer server = await fixture.StartAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        byte[] hello = await ClientHelloAsync();
        int next = 0;
        IPAddress NextAddress() => IPAddress.Parse($"127.0.3.{Interlocked.Increment(ref next)}");
        async Task<SslStream> Open() => await HandshakeOnAsync(await ConnectFromAsync(NextAddress(), fixture.Ke, bound.Token), fixture.Certificate, bound.Token);

        // Sends the octets, then closes its side (or, with hold, waits for the server to act), and reads what comes back.
        async Task<Ending> Send(byte[] request, bool hold = false)
        {
            await using SslStream tls = await Open();
            await tls.WriteAsync(request, bound.Token);
            if (!hold)
            {
                await tls.ShutdownAsync();
            }
            return ErrorOf(await ReadRecordsAsync(tls, bound.Token));
        }

        // Refused during or right after the TLS handshake: no NTS-KE octet ever comes back.
        async Task<Ending> RefusedAtTls(Func<Socket, Task> client)
        {
            using Socket socket = await ConnectFromAsync(NextAddress(), fixture.Ke, bound.Token);
            try
            {
                await client(socket);
                return new Ending(null, true, "closed");
            }
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException)
            {
                return new Ending(null, true, e.GetType().Name);
            }
        }

        async Task<Ending> Handshake(Socket socket, SslProtocols protocols, SslApplicationProtocol alpn)
        {
            await using SslStream tls = await HandshakeOnAsync(socket, fixture.Certificate, bound.Token, protocols: protocols, alpn: alpn);
            await tls.WriteAsync(GoodRequest(), bound.Token);
            var records = await ReadRecordsAsync(tls, bound.Token);
            return new Ending(null, records.Count == 0, $"TLS completed, then {records.Count} records");
        }

        async Task<Ending> Raw(Socket socket, byte[] octets)
        {
            await socket.SendAsync(octets, bound.Token);
            var buffer = new byte[64];
            int n = await socket.ReceiveAsync(buffer, bound.Token);
            // A TLS alert (0x15) or nothing: never an NTS-KE record.
            return n == 0 || buffer[0] == 0x15 ? new Ending(null, true, $"{n} octets") : new Ending(null, false, $"{n} octets, first {buffer[0]}");
        }

        // Writes records for ever (a body that fills whatever the server reads), reading meanwhile: the server must stop it.
        async Task<Ending> SendsForever()
        {
            await using SslStream tls = await Open();
            Task<List<(ushort Type, byte[] Body)>> answer = ReadRecordsAsync(tls, bound.Token);
            byte[] chunk = Records((false, (NtsKeRecordType)0x1234, new byte[1000]));
            long sent = 0;
            try
            {
                while (!answer.IsCompleted && sent < 100_000_000)
                {
                    await tls.WriteAsync(chunk, bound.Token);
                    sent += chunk.Length;
                }
            }
            catch (IOException)
            {
                // the server closed the connection under it
            }
            Ending ending;
            try
            {
                ending = ErrorOf(await answer);
            }
            catch (IOException e)
            {
                ending = new Ending(null, true, e.Message);
            }
            // Loopback socket buffers grow to a few megabytes (tcp_rmem, tcp_wmem): what fits in them is not what the server read.
            Assert.True(sent < 50_000_000, $"{sent} octets of a request that never ends were taken");
            return ending with { Detail = $"{ending.Detail} after {sent} octets sent" };
        }

        byte[] nextProtocol = Records((true, NtsKeRecordType.NextProtocol, [0, 0]));
        var cases = new Case[]
        {
            new("truncated record header, then close", () => Send(nextProtocol[..2]), NtsKeServerReason.ClientClosed, null),
            new("truncated record body, then close", () => Send([.. nextProtocol[..5]]), NtsKeServerReason.ClientClosed, null),
            new("truncated record, then silence", () => Send(nextProtocol[..5], hold: true), NtsKeServerReason.IdleTimeout, null),
            new("unknown critical record", () => Send(Records((true, NtsKeRecordType.NextProtocol, [0, 0]), (true, (NtsKeRecordType)0x4321, [1, 2]),
                (true, NtsKeRecordType.AeadAlgorithm, [0, 15]), (true, NtsKeRecordType.EndOfMessage, [])), hold: true), NtsKeServerReason.UnrecognizedCritical, NtsKeErrorCode.UnrecognizedCriticalRecord),
            new("no Next Protocol record", () => Send(Records((true, NtsKeRecordType.AeadAlgorithm, [0, 15]), (true, NtsKeRecordType.EndOfMessage, [])), hold: true),
                NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest),
            new("an Error record from the client", () => Send(Records((true, NtsKeRecordType.Error, [0, 1]), (true, NtsKeRecordType.EndOfMessage, [])), hold: true),
                NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest),
            new("absurd length: a record of 65,535 octets, sent whole", () => Send(Records((false, (NtsKeRecordType)0x1234, new byte[ushort.MaxValue])), hold: true),
                NtsKeServerReason.RequestTooLarge, NtsKeErrorCode.BadRequest),
            new("absurd length: End of Message claiming 65,535 octets, then close", () => Send([0x80, 0, 0xFF, 0xFF, 1, 2, 3]), NtsKeServerReason.ClientClosed, null),
            new("a client that sends for ever", SendsForever, NtsKeServerReason.RequestTooLarge, NtsKeErrorCode.BadRequest, OrReset: true),
            new("wrong ALPN (http/1.1)", () => RefusedAtTls(s => Handshake(s, SslProtocols.Tls13, SslApplicationProtocol.Http11)), NtsKeServerReason.Tls, null),
            new("TLS 1.2 only", () => RefusedAtTls(s => Handshake(s, SslProtocols.Tls12, NtsKe)), NtsKeServerReason.Tls, null),
            new("half a ClientHello, then close", () => RefusedAtTls(async s =>
            {
                await s.SendAsync(hello.AsMemory(0, hello.Length / 2), bound.Token);
                s.Shutdown(SocketShutdown.Send);
                Assert.Equal(0, await s.ReceiveAsync(new byte[16], bound.Token));
            }), NtsKeServerReason.Tls, null),
            new("not TLS at all", () => RefusedAtTls(async s => Assert.True((await Raw(s, "GET / HTTP/1.1\r\nHost: ntp.test\r\n\r\n"u8.ToArray())).ClosedWithoutAnswer)),
                NtsKeServerReason.Tls, null),
        };

        using var stopGood = new CancellationTokenSource();
        var goodTimes = new ConcurrentQueue<double>();
        Task good = Task.Run(async () =>
        {
            while (!stopGood.IsCancellationRequested)
            {
                var watch = Stopwatch.StartNew();
                NtsKeResult ke = await fixture.KeAsync();
                Assert.True(ke.Succeeded, $"the good client: {ke.Reason} {ke.Error}");
                goodTimes.Enqueue(watch.Elapsed.TotalMilliseconds);
                await Task.Delay(50);
            }
        });
        Ending[] endings = await Task.WhenAll(cases.Select(c => Task.Run(c.Run)));
        await Task.Delay(200);
        await stopGood.CancelAsync();
        await good;

        for (int i = 0; i < cases.Length; i++)
        {
            output.WriteLine($"{cases[i].What}: {(endings[i].Error is { } e ? $"Error {(ushort)e}" : "closed")} ({endings[i].Detail})");
        }
        for (int i = 0; i < cases.Length; i++)
        {
            if (cases[i].Error is { } code)
            {
                Assert.True(endings[i].Error == code || (cases[i].OrReset && endings[i].ClosedWithoutAnswer),
                    $"{cases[i].What}: expected Error {(ushort)code}, got {endings[i].Detail}");
            }
            else
            {
                Assert.True(endings[i].ClosedWithoutAnswer, $"{cases[i].What}: expected a close without an answer, got {endings[i].Detail}");
            }
        }
        output.WriteLine($"the good client meanwhile: {goodTimes.Count} key exchanges, slowest {goodTimes.Max():F0} ms");
        Assert.True(goodTimes.Count >= 3, $"only {goodTimes.Count} good exchanges");

        int expected = cases.Length + goodTimes.Count;
        await WaitFor(async () => AllHandshakes(await Scrape(server)) == expected);
        MetricsScrape scrape = await Scrape(server);
        foreach (var group in cases.GroupBy(c => c.Reason))
        {
            Assert.True(group.Count() == scrape[Handshakes(group.Key)],
                $"{Handshakes(group.Key)}: {scrape[Handshakes(group.Key)]}, expected {group.Count()} ({string.Join("; ", group.Select(c => c.What))})");
        }
        Assert.Equal(goodTimes.Count, scrape[Handshakes(NtsKeServerReason.Ok)]);
        Assert.Equal(0, server.NtsKe!.ActiveConnections);
    }
}
