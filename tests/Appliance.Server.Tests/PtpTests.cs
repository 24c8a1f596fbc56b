using System.Globalization;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// ptp4l (linuxptp 3.1) as grandmaster in one network namespace, software timestamps, free-running
/// and with CAP_SYS_TIME dropped (it never adjusts the clock: ../shared/PEERS.md §4); the appliance's
/// PTP client in another, over a veth pair, in software mode. Both namespaces read the same
/// CLOCK_REALTIME, so the grandmaster's time is the system clock, and the appliance's software-mode
/// correction (served − system) is its error against the grandmaster.
/// </summary>
[Collection(RealPeers.Name)]
public class PtpTests
{
    [Fact]
    public async Task Ptp4lGrandmaster_ApplianceLocks_ServedTimeWithin10usOfTheGrandmaster()
    {
        (NetworkNamespace master, NetworkNamespace slave) = await NetworkNamespace.CreateLinkedPairAsync("ptp");
        await using NetworkNamespace a = master;
        await using NetworkNamespace b = slave;
        string dir = Directory.CreateTempSubdirectory("ptp").FullName;
        string config = Path.Combine(dir, "master.cfg");
        await File.WriteAllTextAsync(config, $"""
            [global]
            priority1 100
            free_running 1
            logAnnounceInterval -2
            announceReceiptTimeout 2
            logSyncInterval -3
            logMinDelayReqInterval -3
            uds_address {dir}/master.uds

            """);
        await using var ptp4l = new PeerProcess("ip", master.Exec("capsh", "--drop=cap_sys_time", "--", "-c",
            $"exec ptp4l -S -4 -i {master.Interface} -m -f {config}"));
        await ptp4l.WaitForOutputAsync("assuming the grand master role", TimeSpan.FromSeconds(20));

        int metricsPort = 9900 + (Environment.ProcessId % 90); // inside the test's own namespace: nothing else there
        string yaml = ApplianceProcess.WriteConfig($$"""
            ntp: { listen: ["127.0.0.1:123"], workers: 1 }
            clock: { mode: software }
            sources:
              - ptp: { interface: {{slave.Interface}}, delay-interval: -2 }
            metrics: { listen: "127.0.0.1:{{metricsPort}}" }
            """);
        await using PeerProcess appliance = ApplianceProcess.StartIn(slave, "serve", "--config", yaml);
        await appliance.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));

        async Task<MetricsScrape> ScrapeAsync()
        {
            CommandResult result = await slave.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sf", $"http://127.0.0.1:{metricsPort}/metrics");
            Assert.True(result.ExitCode == 0, result.ToString() + appliance.Output);
            return MetricsScrape.Parse(result.StdOut);
        }

        string source = $"source=\"ptp:{slave.Interface}/0\"";
        MetricsScrape metrics = MetricsScrape.Parse("");
        await Eventually.TrueAsync(async () =>
        {
            metrics = await ScrapeAsync();
            return metrics[$"appliance_source_answers_total{{{source}}}"] >= 8 && metrics["appliance_stratum"] == 1;
        }, TimeSpan.FromSeconds(30), () => $"no lock: {appliance.Output}\n{ptp4l.Output}");
        Assert.Equal(1, metrics[$"appliance_source_selection{{{source},selection=\"system_peer\"}}"]);
        Assert.Equal(1, metrics[$"appliance_source_state{{{source},state=\"reachable\"}}"]);
        Assert.Equal(0, metrics[$"appliance_source_invalid_total{{{source}}}"]); // every Delay_Req got a kernel transmit timestamp

        // Locked: over the next ten seconds the served time stays within 10 µs of the grandmaster's.
        var corrections = new List<double>();
        for (int i = 0; i < 10; i++)
        {
            await Task.Delay(1000);
            corrections.Add((await ScrapeAsync())["appliance_clock_correction_seconds"]);
        }
        string seen = string.Join(", ", corrections.Select(c => (c * 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " µs"));
        Assert.True(corrections.All(c => Math.Abs(c) < 10e-6), $"served − grandmaster: {seen}");
    }
}
