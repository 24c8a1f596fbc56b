using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Discipline;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>
/// The appliance as a stratum-2 server in software mode, its upstreams real chronyd servers
/// (<c>local stratum 1</c>, -x) on loopback, checked from outside by a chronyd client.
/// </summary>
[Collection(RealPeers.Name)]
public partial class UpstreamTests
{
    private static async Task<ApplianceServer> StartAsync(string sources, string mode = "software", SimulatedKernel? kernel = null)
    {
        string yaml = $"""
            ntp: {"{"} listen: ["127.0.0.1:{Ports.FreeUdpPort()}"], workers: 1 {"}"}
            clock: {"{"} mode: {mode}, last-known-time: off {"}"}
            sources:
            {sources}
            metrics: {"{"} listen: "127.0.0.1:0" {"}"}
            """;
        ConfigResult result = ConfigLoader.Parse(yaml);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders(), kernel?.Clock);
    }

    private static string Source(System.Net.IPEndPoint endPoint) =>
        $"  - ntp: {{ address: \"{endPoint}\", minpoll: 0, maxpoll: 1 }}\n";

    /// <summary>Waits until the appliance serves <paramref name="stratum"/> and every source has answered at least <paramref name="answers"/> times.</summary>
    private static Task WaitForAsync(ApplianceServer server, int stratum, int answers, TimeSpan timeout) =>
        Eventually.TrueAsync(() => server.State.Current.Stratum == stratum && server.Clock.Sources.All(s => s.Counters.Answers >= answers),
            timeout, () => $"stratum {server.State.Current.Stratum}; sources: " + string.Join("; ", server.Clock.Snapshot.Sources));

    [GeneratedRegex(@"System clock wrong by (-?[0-9.]+) seconds")]
    private static partial Regex ChronyOffset();

    /// <summary>chronyd -Q against the appliance: its offset and (from its measurements log) the stratum it saw.</summary>
    private static async Task<(double Offset, int Stratum)> ChronydQueryAsync(ApplianceServer server)
    {
        string dir = Directory.CreateTempSubdirectory("chronyq").FullName;
        await Run.CheckedAsync("chmod", "777", dir);
        CommandResult result = await Run.CommandAsync("chronyd",
            ["-Q", "-t", "20", $"server 127.0.0.1 port {server.NtpEndPoints[0].Port} iburst", $"pidfile {dir}/chronyd.pid", "cmdport 0",
             $"logdir {dir}", "log measurements"], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.ToString());
        Match match = ChronyOffset().Match(result.Output);
        Assert.True(match.Success, result.ToString());
        // measurements.log: date time address leap stratum ...
        string line = File.ReadLines(Path.Combine(dir, "measurements.log")).Last(l => l.Contains("127.0.0.1", StringComparison.Ordinal));
        string[] columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(columns[4], CultureInfo.InvariantCulture));
    }

    private static string Label(string source) => $"source=\"{source}\"";

    [Fact]
    public async Task ThreeChronydUpstreams_ApplianceServesStratum2_ChronydReadsOffsetUnder100us()
    {
        await using ChronyServer a = await ChronyServer.StartAsync();
        await using ChronyServer b = await ChronyServer.StartAsync();
        await using ChronyServer c = await ChronyServer.StartAsync();
        await using ApplianceServer server = await StartAsync(Source(a.EndPoint) + Source(b.EndPoint) + Source(c.EndPoint));

        await WaitForAsync(server, 2, answers: 6, TimeSpan.FromSeconds(40));

        (double offset, int stratum) = await ChronydQueryAsync(server);
        Assert.Equal(2, stratum);
        Assert.True(Math.Abs(offset) < 100e-6, $"chronyd measured {offset * 1e6:F1} µs");

        MetricsScrape metrics = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        Assert.Equal(1, metrics["appliance_clock_status{status=\"synchronised\"}"]);
        Assert.Equal(2, metrics["appliance_stratum"]);
        Assert.True(metrics.Samples.ContainsKey("appliance_clock_frequency_ppm"));
        Assert.True(metrics["appliance_root_dispersion_seconds"] > 0);
        int survivors = 0;
        foreach (ChronyServer chrony in new[] { a, b, c })
        {
            string source = Label(chrony.EndPoint.ToString());
            Assert.Equal(1, metrics[$"appliance_source_state{{{source},state=\"reachable\"}}"]);
            Assert.True(metrics[$"appliance_source_reach{{{source}}}"] > 0);
            Assert.True(metrics[$"appliance_source_answers_total{{{source}}}"] >= 6, "answers");
            Assert.Equal(1, metrics[$"appliance_source_stratum{{{source}}}"]);
            Assert.True(Math.Abs(metrics[$"appliance_source_offset_seconds{{{source}}}"]) < 1e-3);
            Assert.True(metrics[$"appliance_source_delay_seconds{{{source}}}"] > 0);
            survivors += (int)(metrics[$"appliance_source_selection{{{source},selection=\"candidate\"}}"]
                + metrics[$"appliance_source_selection{{{source},selection=\"system_peer\"}}"]);
        }
        Assert.Equal(3, survivors);
    }

    [Fact]
    public async Task ShiftedUpstream_IsRejectedAsFalseticker_WhileTheOthersAgree()
    {
        await using ChronyServer a = await ChronyServer.StartAsync();
        await using ChronyServer b = await ChronyServer.StartAsync();
        await using TestNtpServer shifted = TestNtpServer.Shifted(0.5);
        await using ApplianceServer server = await StartAsync(Source(a.EndPoint) + Source(shifted.EndPoint) + Source(b.EndPoint));

        await WaitForAsync(server, 2, answers: 6, TimeSpan.FromSeconds(40));

        MetricsScrape metrics = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        string falseticker = Label(shifted.EndPoint.ToString());
        Assert.Equal(1, metrics[$"appliance_source_selection{{{falseticker},selection=\"falseticker\"}}"]);
        Assert.InRange(metrics[$"appliance_source_offset_seconds{{{falseticker}}}"], 0.49, 0.51);
        Assert.Equal(PeerStatus.Falseticker, server.Clock.Snapshot.Sources.Single(s => s.Name == shifted.EndPoint.ToString()).Selection);

        (double offset, int stratum) = await ChronydQueryAsync(server);
        Assert.Equal(2, stratum);
        Assert.True(Math.Abs(offset) < 100e-6, $"chronyd measured {offset * 1e6:F1} µs: the falseticker moved the clock");
    }

    [Fact]
    public async Task ChronydNtsUpstream_ApplianceAuthenticatesAndSyncs()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
        await using ChronyServer chrony = await ChronyServer.StartAsync(certificate);
        string ke = $"127.0.0.1:{chrony.NtsKePort}";
        await using ApplianceServer server = await StartAsync(
            $"  - ntp: {{ address: \"{ke}\", nts: true, name: ntp.test, trust: {certificate.CertificatePath}, minpoll: 0, maxpoll: 1 }}\n");

        await WaitForAsync(server, 2, answers: 4, TimeSpan.FromSeconds(40));

        MetricsScrape metrics = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        string source = Label(ke);
        Assert.Equal(1, metrics[$"appliance_source_nts_key_exchanges_total{{{source}}}"]);
        Assert.True(metrics[$"appliance_source_answers_total{{{source}}}"] >= 4, "answers");
        Assert.Equal(0, metrics[$"appliance_source_invalid_total{{{source}}}"]);
        Assert.Equal(0, metrics[$"appliance_source_nts_naks_total{{{source}}}"]);

        // chronyd's own counters: the requests it answered were NTS-authenticated.
        CommandResult stats = await chrony.ChronycAsync("serverstats");
        Match authenticated = Regex.Match(stats.StdOut, @"Authenticated NTP packets\s*:\s*(\d+)");
        Assert.True(authenticated.Success, stats.ToString());
        Assert.True(int.Parse(authenticated.Groups[1].Value, CultureInfo.InvariantCulture) >= 4, stats.StdOut);

        (double offset, int stratum) = await ChronydQueryAsync(server);
        Assert.Equal(2, stratum);
        Assert.True(Math.Abs(offset) < 100e-6, $"chronyd measured {offset * 1e6:F1} µs");
    }

    [Fact]
    public async Task ApplianceNtsUpstream_OnAes128GcmSiv_AuthenticatesAndSyncs()
    {
        // One appliance as the other's NTS server: the client offers AEAD 30 first (and record 1024),
        // the server agrees, and every answer verifies under GCM-SIV keys from the compliant context.
        var upstream = new NtsServerFixture();
        await using ApplianceServer serving = await upstream.StartAsync();
        string ke = $"127.0.0.1:{upstream.KePort}";
        await using ApplianceServer server = await StartAsync(
            $"  - ntp: {{ address: \"{ke}\", nts: true, name: ntp.test, trust: {upstream.Certificate.CertificatePath}, aeads: [AES-128-GCM-SIV, AES-SIV-CMAC-256], minpoll: 0, maxpoll: 1 }}\n");

        await WaitForAsync(server, 4, answers: 4, TimeSpan.FromSeconds(40));

        MetricsScrape client = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        string source = Label(ke);
        Assert.Equal(1, client[$"appliance_source_nts_key_exchanges_total{{{source}}}"]);
        Assert.Equal(0, client[$"appliance_source_invalid_total{{{source}}}"]);
        MetricsScrape served = await MetricsScrape.FetchAsync($"http://{serving.MetricsEndPoint}/metrics");
        Assert.Equal(1, served["appliance_ntske_aeads_total{aead=\"AES-128-GCM-SIV\",context=\"rfc8915\"}"]);
        Assert.True(served["appliance_nts_requests_total{kind=\"respond\",reason=\"served\"}"] >= 4, "NTS answers served");
    }

    /// <summary>
    /// The appliance's time now, minus the system clock's (seconds), from the shortest of four NTP
    /// exchanges, with that exchange's round trip: the error of the estimate is at most half of it
    /// (RFC 5905 §8), however a loaded host delays one of them.
    /// </summary>
    private static async Task<(double Offset, double RoundTrip)> ServedMinusSystemAsync(ApplianceServer server)
    {
        (double Offset, double RoundTrip) best = (0, double.MaxValue);
        for (int i = 0; i < 4; i++)
        {
            long t1 = DateTime.UtcNow.Ticks;
            byte[]? answer = await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(0x1234), TimeSpan.FromSeconds(2));
            long t4 = DateTime.UtcNow.Ticks;
            Assert.NotNull(answer);
            var transmit = Appliance.Protocol.NtpHeader.Read(answer).Transmit;
            long served = transmit.ToUnixNanoseconds(0) / 100 + DateTime.UnixEpoch.Ticks;
            double roundTrip = (t4 - t1) / 1e7;
            if (roundTrip < best.RoundTrip)
            {
                best = ((served - ((t1 + t4) / 2)) / 1e7, roundTrip);
            }
        }
        return best;
    }

    [Fact]
    public async Task SoftwareMode_StepsServedTime_NeverTheSystemClock()
    {
        var kernel = new SimulatedKernel();
        await using TestNtpServer shifted = TestNtpServer.Shifted(0.3);
        await using ApplianceServer server = await StartAsync(Source(shifted.EndPoint), "software", kernel);

        await WaitForAsync(server, 2, answers: 2, TimeSpan.FromSeconds(20));

        // The clock core stepped its correction by the 0.3 s the only source reports: clients see the
        // source's time, the workers applying the transform to kernel timestamps. Each side's
        // measurement is off by at most half its round trip (RFC 5905 §8): the appliance's of the
        // source, ours of the appliance.
        (double served, double roundTrip) = await ServedMinusSystemAsync(server);
        double sourceDelay = server.Clock.Snapshot.Sources.Single().Delay ?? 0;
        double tolerance = 0.01 + (roundTrip / 2) + (sourceDelay / 2);
        Assert.True(Math.Abs(served - 0.3) <= tolerance, $"served - system = {served:F4} s, expected 0.3 ± {tolerance:F4} s (round trips {roundTrip:F4} s and {sourceDelay:F4} s)");
        Assert.NotEqual(0, server.State.Current.Transform.OffsetNanoseconds);
        Assert.Empty(kernel.Calls);
    }

    [Fact]
    public async Task KernelMode_StepsAndStatusGoToClockAdjtime_OfASimulatedKernel()
    {
        var kernel = new SimulatedKernel();
        await using TestNtpServer shifted = TestNtpServer.Shifted(0.3);
        await using ApplianceServer server = await StartAsync(Source(shifted.EndPoint), "kernel", kernel);

        await WaitForAsync(server, 2, answers: 2, TimeSpan.FromSeconds(20));

        IReadOnlyList<Appliance.Timestamping.Interop.Timex> calls = kernel.Calls;
        // At start: STA_UNSYNC, before anything is known.
        Assert.Equal(KernelClock.StaUnsync, calls[0].Status & KernelClock.StaUnsync);
        // Then one step of the source's offset by ADJ_SETOFFSET…
        var step = Assert.Single(calls, c => (c.Modes & KernelClock.AdjSetOffset) != 0);
        double seconds = step.TimeSeconds + (step.TimeFraction / 1e9);
        Assert.InRange(seconds, 0.29, 0.31);
        // …any frequency setting within the kernel's range, and the synchronised status.
        Assert.All(calls.Where(c => (c.Modes & KernelClock.AdjFrequency) != 0), c => Assert.InRange(c.Frequency, -500L << 16, 500L << 16));
        Assert.Contains(calls, c => (c.Modes & KernelClock.AdjStatus) != 0 && (c.Status & KernelClock.StaUnsync) == 0);
        // Kernel mode serves kernel timestamps as they are.
        Assert.Equal(Appliance.Protocol.TimeTransform.Identity, server.State.Current.Transform);
    }

    [Fact]
    public async Task KernelMode_WithoutCapSysTime_RefusesToStartAndSaysHow()
    {
        var kernel = new SimulatedKernel { Errno = 1 }; // EPERM
        await using TestNtpServer shifted = TestNtpServer.Shifted(0);
        var e = await Assert.ThrowsAsync<Appliance.Server.Ntp.StartupFailedException>(() => StartAsync(Source(shifted.EndPoint), "kernel", kernel));
        Assert.Contains("CAP_SYS_TIME", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFailingSource_IsLoggedAndRestarted_WhileTheServerKeepsServing()
    {
        var logs = new CapturedLogs();
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
            clock: { mode: software, local: { stratum: 10 } }
            sources:
              - ptp: { interface: appliance-no-such-nic }
            metrics: { listen: off }
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l =>
        {
            l.ClearProviders();
            l.AddProvider(logs);
        });

        await Eventually.TrueAsync(() => logs.Lines.Any(l => l.Contains("failed", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), () => string.Join("\n", logs.Lines));
        string failure = logs.Lines.First(l => l.Contains("failed", StringComparison.Ordinal));
        Assert.Contains("appliance-no-such-nic", failure, StringComparison.Ordinal);
        Assert.Contains("restarting it in 10 s", failure, StringComparison.Ordinal);
        // The clock service lives on: the local reference is served.
        byte[]? answer = await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(0x42), TimeSpan.FromSeconds(2));
        Assert.NotNull(answer);
        Assert.Equal(10, Appliance.Protocol.NtpHeader.Read(answer).Stratum);
    }
}
