using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>
/// A real gpsd (3.22) fed by a fake receiver over tcp:// (../shared/PEERS.md §3: under gpsfake's pty
/// the same TPV/TOFF flow; tcp:// needs no gpsd-clients), the appliance in software mode with gpsd
/// as its only source. gpsd cannot produce PPS here (no /dev/pps).
/// </summary>
[Collection(RealPeers.Name)]
public class GpsdTests
{
    private sealed class Gpsd : IAsyncDisposable
    {
        private PeerProcess? _process;

        public Gpsd(int feederPort)
        {
            FeederPort = feederPort;
            Port = Ports.FreeTcpPort();
        }

        public int FeederPort { get; }

        public int Port { get; }

        public async Task StartAsync()
        {
            // -N foreground, -n poll the device without waiting for a client, -S the client port.
            _process = new PeerProcess("gpsd", ["-N", "-n", "-S", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"tcp://127.0.0.1:{FeederPort}"]);
            PeerProcess process = _process;
            await Eventually.TrueAsync(ListeningAsync, TimeSpan.FromSeconds(10), () => $"gpsd did not listen on {Port}: {process.Output}");
        }

        private async Task<bool> ListeningAsync()
        {
            using var client = new System.Net.Sockets.TcpClient();
            try
            {
                await client.ConnectAsync(System.Net.IPAddress.Loopback, Port);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return false;
            }
        }

        public async Task StopAsync()
        {
            if (_process is not null)
            {
                await _process.DisposeAsync();
                _process = null;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            // gpsd leaves its NTP shared-memory segments behind (PEERS.md §3): remove the unattached ones.
            for (int unit = 0; unit < 8; unit++)
            {
                await Run.CommandAsync("ipcrm", ["-M", $"0x{0x4e545030 + unit:x}"], TimeSpan.FromSeconds(5));
            }
        }
    }

    [Fact]
    public async Task ApplianceTakesTimeOfDayFromGpsd_AndSurvivesGpsdRestarting()
    {
        // The receiver says it is two seconds later than the host clock: the appliance must follow it.
        await using var feeder = new NmeaFeeder(shiftSeconds: 2);
        await using var gpsd = new Gpsd(feeder.Port);
        await gpsd.StartAsync();
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
            clock: { mode: software }
            sources:
              - gpsd: { address: "127.0.0.1:{{gpsd.Port}}", delay: 20ms }
            metrics: { listen: "127.0.0.1:0" }
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l => l.ClearProviders());
        ITimeSource source = Assert.Single(server.Clock.Sources);
        string Describe() => $"stratum {server.State.Current.Stratum}, source {server.Clock.Snapshot.Sources.Single()}";

        // Every state the workers could have served, read as they read it, all through the test: a
        // synchronised one names GPS at stratum 1 (RFC 5905 §7.3), right after the first +2 s step too.
        using var watching = new CancellationTokenSource();
        var unnamed = new List<string>();
        Task watch = Task.Run(async () =>
        {
            while (!watching.IsCancellationRequested)
            {
                ServerState s = server.State.Current;
                if (s.IsSynchronised && (s.ReferenceId != ReferenceIds.Gps || s.Stratum != 1) && unnamed.Count < 10)
                {
                    unnamed.Add($"stratum {s.Stratum}, refid 0x{s.ReferenceId:X8}, root dispersion {s.RootDispersion:F3} s");
                }
                await Task.Delay(2);
            }
        });

        // The served state is published a moment before the snapshot /metrics reads: wait for both.
        await Eventually.TrueAsync(() => server.State.Current.Stratum == 1 && source.Counters.Answers >= 3
            && server.Clock.Snapshot.SystemPeer == source.Name, TimeSpan.FromSeconds(30), Describe);

        Assert.Equal(ReferenceIds.Gps, server.State.Current.ReferenceId);
        // The fix lifted the floor for "now" (issue #21) to the receiver's time, 2 s ahead of the host's, never beyond it.
        Appliance.Discipline.TimeFloor floor = server.Clock.CurrentFloor;
        Assert.StartsWith("a GPS fix", floor.Origin, StringComparison.Ordinal);
        double floorAhead = (floor.UnixNanoseconds - Appliance.Timestamping.SystemClock.RealtimeNanoseconds()) / 1e9;
        Assert.True(floorAhead is > -3 and < 2.1, $"the floor is {floorAhead:F3} s ahead of the host clock");
        double correction = server.State.Current.Transform.OffsetNanoseconds / 1e9;
        // +2 s, less the serial latency (NMEA arrives a little after its second), within serial jitter.
        Assert.True(correction is > 1.95 and < 2.05, $"correction {correction} s, transform {server.State.Current.Transform}; {Describe()}");
        MetricsScrape metrics = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        string label = $"source=\"127.0.0.1:{gpsd.Port}\"";
        Assert.Equal(1, metrics[$"appliance_source_state{{{label},state=\"reachable\"}}"]);
        Assert.Equal(1, metrics[$"appliance_source_selection{{{label},selection=\"system_peer\"}}"]);
        Assert.Equal(1, metrics["appliance_stratum"]);

        // gpsd goes away: the source says so, the appliance keeps serving (holdover)…
        await gpsd.StopAsync();
        await Eventually.TrueAsync(() => source.State == SourceState.Unreachable, TimeSpan.FromSeconds(15), Describe);
        Assert.True(server.State.Current.IsSynchronised);
        // …and comes back: samples flow again without a restart of the appliance.
        long before = source.Counters.Answers;
        await gpsd.StartAsync();
        await Eventually.TrueAsync(() => source.State == SourceState.Reachable && source.Counters.Answers >= before + 3, TimeSpan.FromSeconds(40), Describe);
        Assert.Equal(1, server.State.Current.Stratum);

        await watching.CancelAsync();
        await watch;
        Assert.True(unnamed.Count == 0, "synchronised states that did not name GPS: " + string.Join("; ", unnamed));
    }
}
