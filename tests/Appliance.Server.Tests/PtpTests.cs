using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Appliance.Testing;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Appliance.Server.Tests;

/// <summary>
/// ptp4l (linuxptp 3.1) as grandmaster in one network namespace, software timestamps, free-running
/// and with CAP_SYS_TIME dropped (it never adjusts the clock: ../shared/PEERS.md §4); the appliance's
/// PTP client in another, over a veth pair, in software mode. Both namespaces read the same
/// CLOCK_REALTIME, so the grandmaster's time is the system clock, and the appliance's software-mode
/// correction (served − system) is its error against the grandmaster.
/// </summary>
[Collection(RealPeers.Name)]
public class PtpTests(ITestOutputHelper output)
{
    /// <summary>ptp4l as grandmaster in <paramref name="master"/>; returns it once it has taken the role, with its clockIdentity.</summary>
    private static async Task<(PeerProcess Ptp4l, byte[] Identity)> StartGrandmasterAsync(NetworkNamespace master)
    {
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
        var ptp4l = new PeerProcess("ip", master.Exec("capsh", "--drop=cap_sys_time", "--", "-c",
            $"exec ptp4l -S -4 -i {master.Interface} -m -f {config}"));
        try
        {
            await ptp4l.WaitForOutputAsync("assuming the grand master role", TimeSpan.FromSeconds(20));
            // "selected local clock 1ab017.fffe.68dcd5 as best master": the clockIdentity; port 1.
            Match selected = Regex.Match(ptp4l.Output, @"selected local clock ([0-9a-f]{6})\.([0-9a-f]{4})\.([0-9a-f]{6})");
            Assert.True(selected.Success, ptp4l.Output);
            return (ptp4l, Convert.FromHexString(selected.Groups[1].Value + selected.Groups[2].Value + selected.Groups[3].Value + "0001"));
        }
        catch
        {
            await ptp4l.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Ptp4lGrandmaster_ApplianceLocks_ServedTimeWithin10usOfTheGrandmaster()
    {
        (NetworkNamespace master, NetworkNamespace slave) = await NetworkNamespace.CreateLinkedPairAsync("ptp");
        await using NetworkNamespace a = master;
        await using NetworkNamespace b = slave;
        await using PeerProcess ptp4l = (await StartGrandmasterAsync(master)).Ptp4l;

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

    [Fact]
    public async Task ASpooferOnTheSlavesHost_NamingTheGrandmaster_IsRefused_AndEverySampleStaysOnTheGrandmaster()
    {
        (NetworkNamespace master, NetworkNamespace slave) = await NetworkNamespace.CreateLinkedPairAsync("ptps");
        await using NetworkNamespace a = master;
        await using NetworkNamespace b = slave;
        (PeerProcess grandmaster, byte[] identity) = await StartGrandmasterAsync(master);
        await using PeerProcess ptp4l = grandmaster;

        // The PTP client in the slave's namespace; both ends read the same CLOCK_REALTIME, so every
        // true offset is within microseconds of zero.
        var source = new PtpSource(new PtpOptions { Interface = slave.Interface!, DelayRequestInterval = -3 }, NullLogger.Instance);
        var offsets = new ConcurrentQueue<double>();
        using var stop = new CancellationTokenSource();
        Task run = NetworkNamespaceThread.Run(slave.Name, () => source.RunAsync((_, m) =>
        {
            offsets.Enqueue((m.T2 - ((m.T1 / 2) + (m.T4 / 2))) / 1e9);
            return true;
        }, stop.Token));
        string Summary() => $"{offsets.Count} samples: {string.Join(", ", offsets.Select(o => (o * 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " µs"))}; "
            + $"{source.Counters.Invalid} refused, {source.Counters.Requests} requests, {source.Counters.Answers} answers";
        string Seen() => $"{Summary()}\n{ptp4l.Output}";
        await Eventually.TrueAsync(() => offsets.Count >= 4, TimeSpan.FromSeconds(20), Seen);
        offsets.Clear();

        // The spoofer: a plain UDP socket on the slave's host, as any local process can open. It
        // names the grandmaster's identity in Announces that put the master on the PTP timescale
        // 1000 s from UTC, and in one-step Syncs 0.8 s early; to the multicast group out of the
        // slave's interface (looped back to local members), to the slave's address and to loopback.
        using Socket spoofer = NetworkNamespaceThread.Run(slave.Name, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastInterface, IPAddress.Parse(slave.Address!).GetAddressBytes());
            socket.Bind(new IPEndPoint(IPAddress.Any, 0));
            return socket;
        });
        IPAddress[] targets = [PtpSource.PrimaryGroup, IPAddress.Parse(slave.Address!), IPAddress.Loopback];
        ushort sequence = 40_000;
        DateTime until = DateTime.UtcNow.AddSeconds(4);
        while (DateTime.UtcNow < until)
        {
            sequence++;
            byte[] announce = PtpMessages.Announce(identity, sequence, PtpMessages.PtpTimescale | PtpMessages.UtcOffsetValid, utcOffset: 1000);
            byte[] sync = PtpMessages.Sync(identity, sequence, SystemClock.RealtimeNanoseconds() - 800_000_000);
            foreach (IPAddress target in targets)
            {
                spoofer.SendTo(announce, new IPEndPoint(target, 320));
                spoofer.SendTo(sync, new IPEndPoint(target, 319));
            }
            await Task.Delay(10);
        }
        await Task.Delay(1000);
        await stop.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));

        output.WriteLine(Summary());
        Assert.True(offsets.Count >= 20, Seen()); // eight Delay_Req a second for five seconds
        Assert.True(offsets.All(o => Math.Abs(o) < 100e-6), Seen());
        Assert.True(source.Counters.Invalid > 0, Seen());
    }
}
