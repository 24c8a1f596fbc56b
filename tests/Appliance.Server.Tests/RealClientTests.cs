using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Server.Hosting;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// Real clients against the real server: chronyd, NTPsec's ntpdig and ntpq (../shared/PEERS.md).
/// They are installed by `make test` (tests/peers/install.sh); a missing peer fails the test.
/// </summary>
[Collection(RealPeers.Name)]
public partial class RealClientTests
{
    [GeneratedRegex(@"System clock wrong by (-?[0-9.]+) seconds")]
    private static partial Regex ChronyOffset();

    [Fact]
    public async Task ChronydQ_AgainstServer_ExitsZeroWithOffsetUnder1ms()
    {
        await using ApplianceServer server = await ServerTests.StartAsync();
        int port = server.NtpEndPoints[0].Port;
        string pidfile = Path.Combine(Path.GetTempPath(), $"chronyq-{Guid.NewGuid():N}.pid");

        CommandResult result = await Run.CommandAsync("chronyd",
            ["-Q", "-t", "15", $"server 127.0.0.1 port {port} iburst", $"pidfile {pidfile}", "cmdport 0"], TimeSpan.FromSeconds(30));

        Assert.True(result.ExitCode == 0, result.ToString());
        Match match = ChronyOffset().Match(result.Output);
        Assert.True(match.Success, result.ToString());
        double offset = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(offset) < 0.001, $"chronyd measured {offset} s");
    }

    [Fact]
    public async Task Ntpdig_InNamespaceOnPort123_ReportsStratumAndOffsetUnder1ms()
    {
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("ntpdig");
        string config = ApplianceProcess.WriteConfig("ntp: { listen: [\"127.0.0.1:123\"] }\nclock: { mode: software, local: { stratum: 10 } }\nmetrics: { listen: off }\n");
        await using PeerProcess server = ApplianceProcess.StartIn(ns, "serve", "--config", config);
        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));

        // Four samples, the least-delayed reported (-p 4): one sample on a loaded 2-core machine can carry
        // the client's own scheduling delay (this test once saw 3.5 ms while other tests ran).
        CommandResult result = await ns.RunAsync(TimeSpan.FromSeconds(30), "ntpdig", "-j", "-p", "4", "-t", "2", "127.0.0.1");

        Assert.True(result.ExitCode == 0, result.ToString());
        using JsonDocument json = JsonDocument.Parse(result.StdOut);
        Assert.Equal(10, json.RootElement.GetProperty("stratum").GetInt32());
        Assert.Equal("no-leap", json.RootElement.GetProperty("leap").GetString());
        double offset = json.RootElement.GetProperty("offset").GetDouble();
        Assert.True(Math.Abs(offset) < 0.001, $"ntpdig measured {offset} s");
    }

    [Fact]
    public async Task Ntpq_Mode6Query_GetsNoAnswer()
    {
        string ntpq = Path.Combine(Repo.PeersDirectory, "ntpsec-root", "usr", "bin", "ntpq");
        Assert.True(File.Exists(ntpq), $"{ntpq} is missing: run tests/peers/install.sh (make test does)");
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("ntpq");
        string config = ApplianceProcess.WriteConfig("ntp: { listen: [\"127.0.0.1:123\"] }\nclock: { mode: software, local: {} }\nmetrics: { listen: \"127.0.0.1:9975\" }\n");
        await using PeerProcess server = ApplianceProcess.StartIn(ns, "serve", "--config", config);
        await server.WaitForOutputAsync("metrics on", TimeSpan.FromSeconds(30));

        CommandResult result = await ns.RunAsync(TimeSpan.FromSeconds(30), ntpq, "-n", "-c", "rv 0", "127.0.0.1");

        Assert.Contains("timed out", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("stratum=", result.Output, StringComparison.Ordinal);
        CommandResult metrics = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sf", "http://127.0.0.1:9975/metrics");
        Assert.True(metrics.ExitCode == 0, metrics.ToString());
        Assert.Matches(@"appliance_ntp_drops_total\{reason=""control_query""\} [1-9]", metrics.StdOut);
        Assert.DoesNotContain("appliance_ntp_responses_total{", metrics.StdOut, StringComparison.Ordinal);
    }
}
