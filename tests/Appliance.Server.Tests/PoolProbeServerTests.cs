using System.Diagnostics;
using System.Net;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>
/// A real appliance on each shipped configuration, changed only where a test must (loopback ports
/// of its own, software clock mode, and for the image its upstreams: local chronyd peers instead of
/// internet servers), probed over loopback as an NTP Pool monitor probes (three queries 2 s apart,
/// each answer judged by the monitor's checks) while another loopback address floods it.
/// </summary>
[Collection(RealPeers.Name)]
public class PoolProbeServerTests(ITestOutputHelper output)
{
    private const int FloodRequests = 300;
    private static readonly TimeSpan s_floodStep = TimeSpan.FromMilliseconds(10);
    private static readonly IPAddress s_floodSource = IPAddress.Parse("127.0.0.50");

    /// <summary>One monitor query: what was asked, what came back (null: nothing in 3 s), and the monitor's verdict.</summary>
    private sealed record Sample(ulong Nonce, byte[]? Reply, string? Verdict);

    [Fact]
    public async Task ImageConfiguration_SyncedToChronyd_PassesTwoMonitorsChecks_WhileAFloodFromAnotherAddressIsLimited()
    {
        await using ChronyServer a = await ChronyServer.StartAsync();
        await using ChronyServer b = await ChronyServer.StartAsync();
        await using ChronyServer c = await ChronyServer.StartAsync();
        string shipped = PoolProbeSimulationTests.Shipped("appliance image");
        // The image listens on every IPv4 and IPv6 address: the pool monitors both families.
        Assert.Contains("\"[::]:123\"", shipped, StringComparison.Ordinal);
        await using ApplianceServer server = await StartAsync(shipped, [a.EndPoint, b.EndPoint, c.EndPoint]);
        await Eventually.TrueAsync(() => server.State.Current.Stratum == 2, TimeSpan.FromSeconds(40),
            () => $"stratum {server.State.Current.Stratum}; sources: " + string.Join("; ", server.Clock.Snapshot.Sources));

        IPEndPoint v4 = server.NtpEndPoints.Single(e => e.Address.Equals(IPAddress.Loopback));
        IPEndPoint v6 = server.NtpEndPoints.Single(e => e.Address.Equals(IPAddress.IPv6Loopback));
        Task<(int Sent, int Answered, int Kisses, TimeSpan Elapsed)> flood = FloodAsync(v4);
        // Two monitors at once, one per family; the IPv4 one runs a second check straight after (an ad-hoc check).
        Task<List<Sample>> monitor4 = ChecksAsync(IPAddress.Parse("127.0.0.2"), v4, checks: 2);
        Task<List<Sample>> monitor6 = ChecksAsync(IPAddress.IPv6Loopback, v6, checks: 1);
        List<Sample> samples = [.. await monitor4, .. await monitor6];

        Assert.Equal(3 * PoolMonitor.Samples, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.True(s.Verdict is null, $"the monitor would record: {s.Verdict}");
            NtpHeader header = NtpHeader.Read(s.Reply);
            Assert.Equal(NtpMode.Server, header.Mode);
            Assert.Equal(2, header.Stratum);
            Assert.Equal(LeapIndicator.NoWarning, header.Leap);
        });
        await AssertFloodLimitedAsync(server, await flood, samples.Count);
    }

    [Fact]
    public async Task EmbeddedDefault_AnswersEveryMonitorQueryWithoutKod_AtLocalStratum10_WhichThePoolsStratumCheckRefuses()
    {
        await using ApplianceServer server = await StartAsync(PoolProbeSimulationTests.Shipped("embedded default"), upstreams: null);
        IPEndPoint v4 = server.NtpEndPoints.Single(e => e.Address.Equals(IPAddress.Loopback));
        Task<(int Sent, int Answered, int Kisses, TimeSpan Elapsed)> flood = FloodAsync(v4);
        // Without the monitor's early stop on a bad stratum, to see every answer of the check.
        List<Sample> samples = await ChecksAsync(IPAddress.Parse("127.0.0.2"), v4, checks: 1, stopOnError: false);

        Assert.Equal(PoolMonitor.Samples, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.NotNull(s.Reply);
            NtpHeader header = NtpHeader.Read(s.Reply);
            Assert.Equal(NtpMode.Server, header.Mode);
            Assert.Equal(LeapIndicator.NoWarning, header.Leap);
            // The embedded default serves the host clock as `local` at stratum 10, on loopback only: a
            // configuration to try the appliance, not a pool member (the pool asks for no local clock,
            // and the monitor fails stratum > 6). docs/pool.md starts from the image's configuration.
            Assert.Equal(10, header.Stratum);
            Assert.Equal("bad stratum 10", s.Verdict);
        });
        await AssertFloodLimitedAsync(server, await flood, samples.Count);
    }

    /// <summary>
    /// The shipped text with what a test must change: NTP on loopback (IPv4 and IPv6) at a free port,
    /// metrics on an ephemeral port, the software clock, and the upstreams when given. The rate limit,
    /// access and everything else stay as shipped.
    /// </summary>
    private static async Task<ApplianceServer> StartAsync(string shipped, IReadOnlyList<IPEndPoint>? upstreams)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(shipped));
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        var ntp = (YamlMappingNode)root["ntp"];
        int port = Ports.FreeUdpPort();
        ntp.Children[new YamlScalarNode("listen")] = new YamlSequenceNode(Quoted($"127.0.0.1:{port}"), Quoted($"[::1]:{port}"));
        ((YamlMappingNode)root["clock"]).Children[new YamlScalarNode("mode")] = new YamlScalarNode("software");
        root.Children[new YamlScalarNode("metrics")] = new YamlMappingNode { { "listen", Quoted("127.0.0.1:0") } };
        if (root.Children.TryGetValue(new YamlScalarNode("nts-ke"), out YamlNode? ntsKe))
        {
            // The image's NTS-KE as shipped, on this machine's terms: a loopback port, a certificate made
            // here (the image's first boot makes its own), a key file of the test's own.
            var nts = (YamlMappingNode)ntsKe;
            TestCertificate certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
            nts.Children[new YamlScalarNode("listen")] = new YamlSequenceNode(Quoted($"127.0.0.1:{Ports.FreeTcpPort()}"));
            nts.Children[new YamlScalarNode("certificate")] = new YamlScalarNode(certificate.CertificatePath);
            nts.Children[new YamlScalarNode("private-key")] = new YamlScalarNode(certificate.KeyPath);
            nts.Children[new YamlScalarNode("keys")] = new YamlMappingNode { { "storage", Path.Combine(certificate.Directory, "nts-keys") } };
        }
        if (upstreams is not null)
        {
            root.Children[new YamlScalarNode("sources")] = new YamlSequenceNode(upstreams.Select(e =>
                new YamlMappingNode { { "ntp", new YamlMappingNode { { "address", Quoted(e.ToString()) }, { "minpoll", "0" }, { "maxpoll", "1" } } } }));
        }
        var text = new StringWriter();
        yaml.Save(text, assignAnchors: false);
        ConfigResult result = ConfigLoader.Parse(text.ToString());
        Assert.True(result.IsValid, string.Join("\n", result.Errors) + "\n" + text);
        return await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders());
    }

    private static YamlScalarNode Quoted(string value) => new(value) { Style = ScalarStyle.DoubleQuoted };

    /// <summary>
    /// A monitor's checks from <paramref name="source"/>: three queries each, the next 2 s after the
    /// previous answer (or its 3 s timeout), a fresh random transmit timestamp each, and, as the
    /// monitor does, the check given up at the first KoD or bad stratum.
    /// </summary>
    private static async Task<List<Sample>> ChecksAsync(IPAddress source, IPEndPoint server, int checks, bool stopOnError = true)
    {
        var samples = new List<Sample>();
        for (int check = 0; check < checks; check++)
        {
            for (int s = 0; s < PoolMonitor.Samples; s++)
            {
                if (s > 0 || check > 0)
                {
                    await Task.Delay(PoolMonitor.Spacing);
                }
                ulong nonce = (ulong)Random.Shared.NextInt64();
                byte[]? reply = await NtpQuery.ExchangeFromAsync(source, server, NtpQuery.ClientRequest(nonce), PoolMonitor.Timeout);
                string? verdict = reply is null ? "no answer" : PoolMonitor.Judge(nonce, reply);
                samples.Add(new Sample(nonce, reply, verdict));
                if (stopOnError && verdict is not null && verdict != "no answer")
                {
                    return samples;
                }
            }
        }
        return samples;
    }

    /// <summary>
    /// <see cref="FloodRequests"/> requests from one address, one every 10 ms (100/s), each waited
    /// for 2 s (a late answer would count as a drop the server never made): how many were answered, how many of the answers were KoDs, and how long the sending took.
    /// </summary>
    private static async Task<(int Sent, int Answered, int Kisses, TimeSpan Elapsed)> FloodAsync(IPEndPoint server)
    {
        var exchanges = new List<Task<byte[]?>>();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < FloodRequests; i++)
        {
            // Paced on the clock, not by the sum of the delays (each overshoots its 10 ms).
            TimeSpan wait = (i * s_floodStep) - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
            exchanges.Add(NtpQuery.ExchangeFromAsync(s_floodSource, server, NtpQuery.ClientRequest(0xF100D000UL + (ulong)i), TimeSpan.FromSeconds(2)));
        }
        TimeSpan elapsed = clock.Elapsed;
        byte[]?[] replies = await Task.WhenAll(exchanges);
        int kisses = replies.Count(r => r is not null && NtpHeader.Read(r).Stratum == 0);
        return (FloodRequests, replies.Count(r => r is not null), kisses, elapsed);
    }

    /// <summary>
    /// The flood got no KoD (kod is off by default) and was limited: of its answers, the served ones
    /// are the burst plus at most one per interval of the time it took, the rest the leak (one in
    /// 2^leak of the limited requests); the server's own counters agree with what the clients saw.
    /// </summary>
    private async Task AssertFloodLimitedAsync(ApplianceServer server, (int Sent, int Answered, int Kisses, TimeSpan Elapsed) flood, int monitorQueries)
    {
        RateLimitSettings rate = server.Engine.Workers[0].AppliedPolicy.RateLimit!;
        Assert.Equal(0, flood.Kisses);
        string url = $"http://{server.MetricsEndPoint}/metrics";
        MetricsScrape metrics = null!;
        await Eventually.TrueAsync(async () =>
        {
            metrics = await MetricsScrape.FetchAsync(url);
            return metrics["appliance_ntp_requests_total"] == flood.Sent + monitorQueries;
        }, TimeSpan.FromSeconds(10), () => $"requests {metrics?["appliance_ntp_requests_total"]}, sent {flood.Sent + monitorQueries}");

        double served = metrics["appliance_ntp_responses_total{kind=\"respond\",reason=\"served\"}"];
        double leaked = metrics["appliance_ntp_responses_total{kind=\"respond\",reason=\"rate_limited\"}"];
        double dropped = metrics["appliance_ntp_drops_total{reason=\"rate_limited\"}"];
        Assert.Equal(0, metrics.Samples.Where(s => s.Key.StartsWith("appliance_ntp_responses_total{kind=\"kod\"", StringComparison.Ordinal)).Sum(s => s.Value));
        // Every monitor query was served; what else was served and leaked is what the flood saw answered.
        double floodServed = served - monitorQueries;
        Assert.Equal(flood.Answered, floodServed + leaked);
        Assert.Equal(flood.Sent - flood.Answered, dropped);
        double refills = Math.Floor(flood.Elapsed / rate.Interval) + 1;
        Assert.InRange(floodServed, rate.Burst, rate.Burst + refills);
        double limited = flood.Sent - floodServed;
        double expected = limited / (1 << rate.Leak);
        double sigma = Math.Sqrt(expected * (1 - (1.0 / (1 << rate.Leak))));
        Assert.InRange(leaked, expected - (5 * sigma), expected + (5 * sigma));
        output.WriteLine($"flood: {flood.Sent} sent in {flood.Elapsed.TotalSeconds:F2} s, {flood.Answered} answered ({floodServed} served, {leaked} leaked), {dropped} dropped, {flood.Kisses} KoD; monitors: {monitorQueries} queries served");
    }
}
