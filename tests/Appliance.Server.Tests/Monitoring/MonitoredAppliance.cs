using System.Net;
using System.Net.Sockets;
using Appliance.Protocol.Nts;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>
/// An appliance with every part that has metrics switched on, for the tests that check the metrics
/// against their documentation, promtool and the dashboard: two upstream sources (a real chronyd
/// and a scripted <see cref="TestNtpServer"/>), NTS-KE with its key ring, a leap-seconds file, the smear listener, a
/// small rate-limit table with KoD, and traffic that reaches each outcome a labelled series needs to
/// appear (served, KoD RATE, rate-limited and too-short drops, NTS answers and NAKs, a key exchange,
/// clients evicted from a full table).
/// </summary>
/// <remarks>An xunit class fixture: one appliance for all the tests of a class.</remarks>
public sealed class MonitoredAppliance : IAsyncLifetime
{
    /// <summary>Clients the rate-limit table holds (the smallest ntp.rate-limit.clients allows): sending from more evicts.</summary>
    public const int TableClients = 1024;

    private readonly CancellationTokenSource _stop = new();
    private readonly string _roughtimeDirectory = Path.Combine(Path.GetTempPath(), $"appliance-roughtime-{Guid.NewGuid():N}");
    private ChronyServer? _chrony;
    private TestNtpServer? _scripted;
    private NtsServerFixture? _fixture;
    private ApplianceServer? _server;
    private Task? _background;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    /// <summary>Started just before the appliance: its uptime can never exceed this.</summary>
    public System.Diagnostics.Stopwatch BeforeStart { get; } = new();

    /// <summary>Started once the appliance has started: its uptime is never less than this.</summary>
    public System.Diagnostics.Stopwatch AfterStart { get; } = new();

    public static string LeapFile => Repo.TestData("leap-seconds.list");

    /// <summary>The control socket of the appliance (for <c>appliance serverstats</c>).</summary>
    public string ControlSocket { get; } = Control.ControlTests.NewSocketPath();

    /// <summary>host:port of /metrics: the target Prometheus scrapes and the <c>instance</c> label of its series.</summary>
    public string Target => Server.MetricsEndPoint!.ToString();

    public string MetricsUrl => $"http://{Target}/metrics";

    private NtsServerFixture Fixture => _fixture ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        _chrony = await ChronyServer.StartAsync();
        _scripted = TestNtpServer.Shifted(0.0002);
        _fixture = new NtsServerFixture(
            extraNtsKe: $"control: {{ socket: {ControlSocket} }}\nroughtime: {{ listen: [\"127.0.0.1:0\"], key: {Path.Combine(_roughtimeDirectory, "roughtime.key")} }}",
            extraNtp: $", rate-limit: {{ interval: 10s, burst: 4, leak: 16, kod: true, clients: {TableClients} }}, smear: {{ listen: [\"127.0.0.1:0\"] }}",
            extraClock: $", leap-seconds: {LeapFile}",
            extraYaml: "sources:\n" + Source(_chrony.EndPoint) + Source(_scripted.EndPoint));
        BeforeStart.Start();
        _server = await _fixture.StartAsync();
        AfterStart.Start();
        await DriveEveryOutcomeAsync();
        await Eventually.TrueAsync(() => Server.Clock.Sources.All(s => s.Counters.Answers >= 2), TimeSpan.FromSeconds(20),
            () => "sources: " + string.Join("; ", Server.Clock.Snapshot.Sources));
    }

    private static string Source(IPEndPoint endPoint) => $"  - ntp: {{ address: \"{endPoint}\", minpoll: 0, maxpoll: 1 }}\n";

    public async Task<string> ScrapeAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await http.GetStringAsync(new Uri(MetricsUrl));
    }

    /// <summary>One request or exchange for each outcome a labelled series appears with.</summary>
    private async Task DriveEveryOutcomeAsync()
    {
        IPEndPoint ntp = Fixture.Ntp;
        // Served, from 127.0.0.1.
        for (int i = 0; i < 2; i++)
        {
            Assert.NotNull(await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest((ulong)i + 1), TimeSpan.FromSeconds(3)));
        }
        // NTS: a key exchange, an authenticated request, and one with a broken cookie (a NAK).
        NtsKeResult ke = await Fixture.KeAsync();
        Assert.Equal(NtsResponseCheck.Authentic, (await Fixture.QueryAsync(ke, ke.Cookies[0])).Check);
        byte[] broken = [.. ke.Cookies[1]];
        broken[^1] ^= 0x01;
        Assert.Equal(NtsResponseCheck.Nak, (await Fixture.QueryAsync(ke, broken)).Check);
        // An interleaved client (RFC 9769), from its own address (under the burst): its third response
        // carries the kernel's transmit timestamp of its second.
        var interleaved = IPAddress.Parse("127.0.0.3");
        ulong origin = 0;
        for (ulong i = 1; i <= 3; i++)
        {
            byte[]? reply = await NtpQuery.ExchangeFromAsync(interleaved, ntp, NtpQuery.InterleavedRequest(origin, 1000 + i, 2000 + i), TimeSpan.FromSeconds(3));
            Assert.NotNull(reply);
            origin = NtpQuery.ReceiveTimestamp(reply);
            await Eventually.TrueAsync(() => Server.Engine.Workers.Sum(w => w.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: true)) >= (long)i - 1,
                TimeSpan.FromSeconds(5), () => $"kernel transmit timestamps saved: {Server.Engine.Workers.Sum(w => w.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: true))}");
        }
        // Too short: dropped.
        Assert.Null(await NtpQuery.ExchangeAsync(ntp, new byte[10], TimeSpan.FromMilliseconds(200)));
        // Roughtime: an answer on UDP and on TCP (a signature, an online key), and 100 bytes of no packet (framing).
        await RoughtimeOutcomesAsync();
        // One client over its burst of 4: a KoD RATE, then drops.
        var flooder = IPAddress.Parse("127.0.0.2");
        for (int i = 0; i < 6; i++)
        {
            await NtpQuery.ExchangeFromAsync(flooder, ntp, NtpQuery.ClientRequest((ulong)i + 100), TimeSpan.FromMilliseconds(100));
        }
        // More distinct clients than the table holds: the oldest of a full set make room.
        SendFromManyClients(ntp, 2 * TableClients);
        await Eventually.TrueAsync(() => Server.Engine.Workers.Sum(w => w.RateLimiter!.Evictions) > 0, TimeSpan.FromSeconds(10),
            () => $"no evictions; table holds {Server.Engine.Workers.Sum(w => w.RateLimiter!.Count)}");
    }

    private async Task RoughtimeOutcomesAsync()
    {
        Roughtime.RoughtimeServer roughtime = Server.Roughtime!;
        var request = new byte[Protocol.Roughtime.RoughtimeClient.RequestPacketLength];
        Protocol.Roughtime.RoughtimeClient.WriteRequest(request, new byte[32], roughtime.Keys.PublicKey, [Protocol.Roughtime.RoughtimeVersion.Rfc]);
        using (var udp = new UdpClient(AddressFamily.InterNetwork))
        {
            udp.Connect(roughtime.UdpEndPoints[0]);
            await udp.SendAsync(request);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            Assert.InRange((await udp.ReceiveAsync(timeout.Token)).Buffer.Length, 1, request.Length);
            await udp.SendAsync(request.AsMemory(0, 100));
        }
        using (var tcp = new TcpClient(AddressFamily.InterNetwork))
        {
            await tcp.ConnectAsync(roughtime.TcpEndPoints[0]);
            await tcp.GetStream().WriteAsync(request);
            await tcp.GetStream().ReadExactlyAsync(new byte[Protocol.Roughtime.RoughtimePacket.HeaderLength]);
        }
        await Eventually.TrueAsync(() => roughtime.Counters.Received(Roughtime.RoughtimeCounters.Udp) == 2, TimeSpan.FromSeconds(5),
            () => $"Roughtime UDP requests received: {roughtime.Counters.Received(Roughtime.RoughtimeCounters.Udp)}");
    }

    /// <summary>Waits until the workers have taken every datagram sent (their count stands still for 300 ms).</summary>
    public async Task WaitForQuietAsync()
    {
        long before = -1;
        await Eventually.TrueAsync(async () =>
        {
            long now = Metrics.ServerStatistics.Totals(Server.Engine).Received;
            bool still = now == before;
            before = now;
            await Task.Delay(300);
            return still;
        }, TimeSpan.FromSeconds(10), () => $"still receiving ({before})");
    }

    /// <summary>One request from each of <paramref name="clients"/> loopback addresses 127.0.1.0 and up, without waiting for the answers.</summary>
    private static void SendFromManyClients(IPEndPoint server, int clients)
    {
        byte[] request = NtpQuery.ClientRequest(7);
        for (int i = 0; i < clients; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Bind(new IPEndPoint(new IPAddress([127, (byte)(1 + (i >> 16)), (byte)(i >> 8), (byte)i]), 0));
            socket.SendTo(request, server);
        }
    }

    /// <summary>
    /// Keeps traffic flowing while Prometheus scrapes, so that rates are rates: every 100 ms a request
    /// from 127.0.0.3, far over its rate limit (dropped, with a KoD RATE now and then), and one from
    /// one of 250 other clients in turn, each well within its rate (served).
    /// </summary>
    public void StartBackgroundTraffic()
    {
        var limited = IPAddress.Parse("127.0.0.3");
        _background = Task.Run(async () =>
        {
            for (ulong i = 1000; !_stop.IsCancellationRequested; i++)
            {
                await NtpQuery.ExchangeFromAsync(limited, Fixture.Ntp, NtpQuery.ClientRequest(i), TimeSpan.FromMilliseconds(50));
                var served = new IPAddress([127, 0, 2, (byte)(1 + (i % 250))]);
                await NtpQuery.ExchangeFromAsync(served, Fixture.Ntp, NtpQuery.ClientRequest(i), TimeSpan.FromMilliseconds(50));
                await Task.Delay(50);
            }
        });
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_background is not null)
        {
            await _background;
        }
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        if (_scripted is not null)
        {
            await _scripted.DisposeAsync();
        }
        if (_chrony is not null)
        {
            await _chrony.DisposeAsync();
        }
        if (Directory.Exists(_roughtimeDirectory))
        {
            Directory.Delete(_roughtimeDirectory, recursive: true);
        }
        _stop.Dispose();
    }
}
