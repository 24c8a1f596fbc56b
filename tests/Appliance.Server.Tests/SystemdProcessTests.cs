using System.Net;
using System.Text.RegularExpressions;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// The real `appliance serve` child process, given the environment systemd gives a Type=notify
/// service (through env(1)): NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM.
/// </summary>
public partial class SystemdProcessTests
{
    /// <summary>Every variable systemd sets is cleared first, so the test's own environment cannot leak in.</summary>
    private static PeerProcess Serve(string config, params string[] environment) =>
        new("env", ["-u", "NOTIFY_SOCKET", "-u", "WATCHDOG_USEC", "-u", "WATCHDOG_PID", "-u", "JOURNAL_STREAM", .. environment,
            .. ApplianceProcess.Command("serve", "--config", config)]);

    private static string Config(int port, string address = "127.0.0.1") =>
        ApplianceProcess.WriteConfig($"ntp: {{ listen: [\"{address}:{port}\"], workers: 2 }}\nclock: {{ mode: software, local: {{ stratum: 10 }} }}\nmetrics: {{ listen: off }}\n");

    [GeneratedRegex(@"^<[0-7]>")]
    private static partial Regex Priority();

    [GeneratedRegex(@"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")]
    private static partial Regex Timestamp();

    [Fact]
    public async Task Serve_UnderSystemd_ReadyOnceItAnswers_PingsTheWatchdog_StopsOnSigterm_LogsWithPriorities()
    {
        int port = Ports.FreeUdpPort();
        byte[]? answerAtReady = null;
        using var notify = new SystemdNotifySocket(onMessage: m =>
        {
            if (m.Has("READY=1"))
            {
                answerAtReady = NtpQuery.ExchangeAsync(new IPEndPoint(IPAddress.Loopback, port), NtpQuery.ClientRequest(5), TimeSpan.FromSeconds(2))
                    .GetAwaiter().GetResult();
            }
        });
        string config = Config(port);
        await using PeerProcess server = Serve(config, $"NOTIFY_SOCKET={notify.Address}", "WATCHDOG_USEC=1000000", "JOURNAL_STREAM=8:424242");

        Notification ready = await notify.WaitForAsync(m => m.Has("READY=1"), TimeSpan.FromSeconds(30));
        Assert.Equal("local reference, stratum 10", ready.Status);
        Assert.NotNull(answerAtReady);
        Assert.Equal(10, answerAtReady[1]);
        await notify.WaitForAsync(m => m.Has("WATCHDOG=1"), TimeSpan.FromSeconds(3), from: ready.At + TimeSpan.FromSeconds(1));

        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        IReadOnlyList<Notification> messages = notify.Messages;
        int stopping = messages.ToList().FindIndex(m => m.Has("STOPPING=1"));
        Assert.True(stopping > 0, notify.Describe());
        Assert.DoesNotContain(messages.Skip(stopping + 1), m => m.Has("WATCHDOG=1"));
        Assert.True(messages.Count(m => m.Has("WATCHDOG=1")) >= 2, notify.Describe());

        // journald: a priority on every line, no timestamp, no colour; info is <6>.
        string[] lines = server.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.Matches(Priority(), l));
        Assert.DoesNotContain(lines, l => Timestamp().IsMatch(l) || l.Contains('\u001b', StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("<6>", StringComparison.Ordinal) && l.Contains("serving NTP on UDP", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("<6>", StringComparison.Ordinal) && l.Contains("NTP workers stopped", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("Press Ctrl+C", StringComparison.Ordinal));
        File.Delete(config);
    }

    [Fact]
    public async Task Serve_WithoutJournalStream_LogsTheTimestampedPlainFormat_AndNotifiesNothing()
    {
        int port = Ports.FreeUdpPort();
        string config = Config(port);
        await using PeerProcess server = Serve(config);
        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));
        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(20)));

        string line = server.Output.Split('\n').First(l => l.Contains("serving NTP on UDP", StringComparison.Ordinal));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: Appliance\.Server\.Ntp\.NtpService\[0\] serving NTP on UDP", line);
        Assert.DoesNotContain(server.Output.Split('\n'), l => Priority().IsMatch(l));
        File.Delete(config);
    }

    [Fact]
    public async Task Serve_WithAnUnbindableAddress_ExitsWithoutReady()
    {
        using var notify = new SystemdNotifySocket();
        string config = Config(Ports.FreeUdpPort(), "192.0.2.1");
        await using PeerProcess server = Serve(config, $"NOTIFY_SOCKET={notify.Address}", "WATCHDOG_USEC=1000000");
        Assert.Equal(2, await server.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("cannot bind NTP on UDP 192.0.2.1", server.Output, StringComparison.Ordinal);
        await Task.Delay(200);
        Assert.Empty(notify.Messages);
        File.Delete(config);
    }
}
