using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Server.Hosting;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// chronyd 4.3 with <c>xleave</c> against the appliance (RFC 9769, the interleaved client/server mode),
/// beside a chronyd without it against the same appliance: the first reports interleaved responses
/// (`chronyc ntpdata`: "Interleaved : Yes"), the second never; the interleaved responses carry the
/// kernel's transmit timestamps, and the interleaved one's offset and delay are no worse than the
/// basic one's. Both run with -x: the host clock is never touched.
/// </summary>
[Collection(RealPeers.Name)]
public partial class InterleavedRealClientTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private sealed class ChronyClient : IAsyncDisposable
    {
        private readonly PeerProcess _process;
        private readonly string _directory;

        private ChronyClient(PeerProcess process, string directory)
        {
            _process = process;
            _directory = directory;
        }

        public static async Task<ChronyClient> StartAsync(int port, bool xleave)
        {
            string dir = Path.Combine(Path.GetTempPath(), $"chrony-xleave-{Guid.NewGuid():N}");
            Directory.CreateDirectory(dir);
            await Run.CheckedAsync("chown", "_chrony:_chrony", dir);
            await Run.CheckedAsync("chmod", "750", dir);
            string conf = Path.Combine(dir, "client.conf");
            await File.WriteAllTextAsync(conf, $"""
                server 127.0.0.1 port {port} iburst minpoll 0 maxpoll 0{(xleave ? " xleave" : "")}
                port 0
                cmdport 0
                bindcmdaddress {dir}/chronyd.sock
                pidfile {dir}/chronyd.pid

                """);
            return new ChronyClient(new PeerProcess("chronyd", ["-x", "-d", "-f", conf]), dir);
        }

        public Task WaitForLogAsync(string text) => _process.WaitForOutputAsync(text, TimeSpan.FromSeconds(30));

        public async Task<string> ChronycAsync(string command) =>
            (await Run.CheckedAsync("chronyc", "-h", $"{_directory}/chronyd.sock", "-n", command)).StdOut;

        public async ValueTask DisposeAsync()
        {
            await _process.DisposeAsync();
            Directory.Delete(_directory, recursive: true);
        }
    }

    [GeneratedRegex(@"^Interleaved\s+:\s+(\w+)", RegexOptions.Multiline)]
    private static partial Regex Interleaved();

    [GeneratedRegex(@"^Offset\s+:\s+([-+]?[0-9.e+-]+) seconds", RegexOptions.Multiline)]
    private static partial Regex Offset();

    [GeneratedRegex(@"^Peer delay\s+:\s+([-+]?[0-9.e+-]+) seconds", RegexOptions.Multiline)]
    private static partial Regex Delay();

    private static double Number(Regex regex, string text)
    {
        Match m = regex.Match(text);
        Assert.True(m.Success, text);
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task ChronydWithXleave_GetsInterleavedResponses_NoWorseThanBasicMode()
    {
        await using ApplianceServer server = await ServerTests.StartAsync();
        int port = server.NtpEndPoints[0].Port;
        await using ChronyClient interleaved = await ChronyClient.StartAsync(port, xleave: true);
        await using ChronyClient basic = await ChronyClient.StartAsync(port, xleave: false);
        await interleaved.WaitForLogAsync("Selected source 127.0.0.1");
        await basic.WaitForLogAsync("Selected source 127.0.0.1");

        // Samples once a second from both, side by side: |offset| and delay of each response chronyd took.
        var xleaveOffsets = new List<double>();
        var xleaveDelays = new List<double>();
        var basicOffsets = new List<double>();
        var basicDelays = new List<double>();
        int interleavedSeen = 0;
        for (int i = 0; i < 12; i++)
        {
            await Task.Delay(1000);
            string x = await interleaved.ChronycAsync("ntpdata");
            string b = await basic.ChronycAsync("ntpdata");
            Assert.Equal("No", Interleaved().Match(b).Groups[1].Value);
            if (Interleaved().Match(x).Groups[1].Value == "Yes")
            {
                interleavedSeen++;
                xleaveOffsets.Add(Math.Abs(Number(Offset(), x)));
                xleaveDelays.Add(Number(Delay(), x));
            }
            basicOffsets.Add(Math.Abs(Number(Offset(), b)));
            basicDelays.Add(Number(Delay(), b));
        }
        MetricsScrape scrape = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
        string figures = $"interleaved: {interleavedSeen} of 12; |offset| {Median(xleaveOffsets):E2} vs basic {Median(basicOffsets):E2}; "
            + $"delay {Median(xleaveDelays):E2} vs {Median(basicDelays):E2}; metric {scrape["appliance_ntp_interleaved_responses_total"]}, "
            + $"kernel transmit timestamps carried {scrape["appliance_ntp_transmit_timestamps_total{source=\"kernel_software\"}"]}";
        output.WriteLine(figures);
        Assert.True(interleavedSeen >= 8, figures);
        Assert.True(scrape["appliance_ntp_interleaved_responses_total"] >= interleavedSeen, figures);
        // Every interleaved response but the client's first carries the kernel's stamp of the one before.
        Assert.True(scrape["appliance_ntp_transmit_timestamps_total{source=\"kernel_software\"}"] >= interleavedSeen - 1, figures);
        // No worse: on loopback both are a few to tens of µs; the medians and 200 µs allow for a
        // loaded host's stalls, while a wrong timestamp (another response's, another time scale)
        // would be off by a poll interval or more.
        Assert.True(Median(xleaveOffsets) <= Median(basicOffsets) + 200e-6, figures);
        Assert.True(Median(xleaveDelays) <= Median(basicDelays) + 200e-6, figures);
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        List<double> sorted = [.. values.Order()];
        return sorted[sorted.Count / 2];
    }
}
