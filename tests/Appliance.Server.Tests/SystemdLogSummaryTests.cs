using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Appliance.Engine;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>Never one log line per packet (issue #15): events that can repeat at packet rate are counted and summarised.</summary>
public partial class SystemdLogSummaryTests
{
    [GeneratedRegex(@"^Warning: flood: (\d+) more in the last 0\.2 s")]
    private static partial Regex SummaryLine();

    [Fact]
    public async Task Flood_OfAHundredThousandEvents_IsTheFirstLineAndOneCountPerWindow_ThatAddUp()
    {
        var logs = new CapturedLogs();
        using var summary = new LogSummary(logs.CreateLogger("test"), LogLevel.Warning, "flood", TimeSpan.FromMilliseconds(200));
        const int Events = 100_000;
        int full = 0;
        DateTime start = DateTime.UtcNow;
        for (int i = 0; i < Events; i++)
        {
            if (summary.Occurred(i.ToString(CultureInfo.InvariantCulture)))
            {
                full++;
            }
            if (i % 10_000 == 0)
            {
                await Task.Delay(100); // spread over about a second: several windows
            }
        }
        double seconds = (DateTime.UtcNow - start).TotalSeconds;
        await Task.Delay(700); // the last window's count, then a window with none ends the spell

        List<long> counts = [.. logs.Lines.Select(l => SummaryLine().Match(l)).Where(m => m.Success).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
        // One flood, one line in full, the rest counted. A loaded host that stalls this loop for a whole
        // quiet window (200 ms) ends the spell, and the next event is in full again, as it should be
        // (fresh-clone CI saw 2): whatever the spells, every event is in full or counted, once.
        Assert.InRange(full, 1, 3);
        Assert.Equal(Events - full, counts.Sum());
        Assert.InRange(counts.Count, 1, (int)Math.Ceiling(seconds / 0.2) + 2 + full);
        Assert.Equal(counts.Count, logs.Lines.Count);
        Assert.EndsWith($"(latest: {Events - 1})", logs.Lines.Last(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AfterAQuietWindow_TheNextEventIsLoggedInFullAgain()
    {
        var logs = new CapturedLogs();
        using var summary = new LogSummary(logs.CreateLogger("test"), LogLevel.Warning, "flood", TimeSpan.FromMilliseconds(100));
        Assert.True(summary.Occurred());
        Assert.False(summary.Occurred());
        await Eventually.TrueAsync(() => logs.Lines.Count == 1, TimeSpan.FromSeconds(5), () => string.Join("\n", logs.Lines));
        Assert.StartsWith("Warning: flood: 1 more in the last 0.1 s", logs.Lines.Single(), StringComparison.Ordinal);
        await Task.Delay(400); // a window with nothing ends the spell
        Assert.True(summary.Occurred());
        Assert.Single(logs.Lines);
    }

    /// <summary>
    /// The real path: a worker whose every batch throws, with the back-off shortened to 1 ms so it
    /// fails at the rate packets come; NtpService logs the first failure with its stack, not the rest.
    /// </summary>
    [Fact]
    public async Task WorkerFailingAtPacketRate_LogsOneLine()
    {
        var logs = new CapturedLogs();
        int port = Ports.FreeUdpPort();
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1, rate-limit: off }
            clock: { mode: software, local: { stratum: 10 } }
            metrics: { listen: off }
            """);
        await using ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l =>
        {
            l.ClearProviders();
            l.AddProvider(logs);
        }, systemd: SystemdEnvironment.None);
        NtpWorker worker = server.Engine.Workers[0];
        worker.Backoff = new RestartBackoff(TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1));
        worker.BeforeBatch = _ => throw new InvalidOperationException("injected failure");

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        byte[] request = NtpQuery.ClientRequest(1);
        for (int i = 0; i < 300; i++)
        {
            await socket.SendToAsync(request, new IPEndPoint(IPAddress.Loopback, port));
            await Task.Delay(2);
        }
        await Eventually.TrueAsync(() => worker.Counters.Restarts >= 50, TimeSpan.FromSeconds(10), () => $"{worker.Counters.Restarts} restarts");

        Assert.Single(logs.Lines, l => l.Contains("NTP worker 0 failed; restarting it in", StringComparison.Ordinal));
        worker.BeforeBatch = null;
    }
}
