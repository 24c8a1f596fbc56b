using System.Buffers.Binary;
using System.Net;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>The daemon in process: real sockets on loopback, the real metrics endpoint.</summary>
public class ServerTests
{
    internal static async Task<ApplianceServer> StartAsync(string extraYaml = "")
    {
        int port = Ports.FreeUdpPort();
        ConfigResult result = ConfigLoader.Parse($"""
            ntp: {"{"} listen: ["127.0.0.1:{port}", "[::1]:{port}"], workers: 2, rate-limit: off {"}"}
            clock: {"{"} mode: software, local: {"{"} stratum: 10 {"}"} {"}"}
            metrics: {"{"} listen: "127.0.0.1:0" {"}"}
            {extraYaml}
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return await ApplianceServer.StartAsync(result.Config!, logging => logging.ClearProviders());
    }

    private static string MetricsUrl(ApplianceServer server) => $"http://{server.MetricsEndPoint}/metrics";

    [Fact]
    public async Task Serve_AnswersOnIPv4AndIPv6_WithLocalStratum10()
    {
        await using ApplianceServer server = await StartAsync();
        foreach (IPEndPoint endPoint in server.NtpEndPoints)
        {
            long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            byte[]? reply = await NtpQuery.ExchangeAsync(endPoint, NtpQuery.ClientRequest(0xDEADBEEF_01020304), TimeSpan.FromSeconds(5));
            long after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

            Assert.NotNull(reply);
            Assert.Equal(48, reply.Length);
            Assert.Equal(0x24, reply[0]); // LI 0, VN 4, mode 4
            Assert.Equal(10, reply[1]);
            Assert.Equal(0x7F7F0101u, BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(12)));
            Assert.Equal(0xDEADBEEF_01020304UL, BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(24)));
            long transmitMs = NtpMilliseconds(reply.AsSpan(40));
            Assert.InRange(transmitMs, before - 1, after + 1);
            Assert.True(NtpMilliseconds(reply.AsSpan(16)) <= transmitMs, "reference time must not be after transmit");
        }
    }

    private static long NtpMilliseconds(ReadOnlySpan<byte> timestamp)
    {
        ulong value = BinaryPrimitives.ReadUInt64BigEndian(timestamp);
        return (((long)(value >> 32) - 2_208_988_800L) * 1000) + (long)((value & 0xFFFF_FFFF) * 1000 >> 32);
    }

    [Fact]
    public async Task Metrics_CountResponsesAndDropsByReason()
    {
        await using ApplianceServer server = await StartAsync();
        IPEndPoint ntp = server.NtpEndPoints[0];
        var timeout = TimeSpan.FromMilliseconds(300);
        Assert.NotNull(await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(5)));
        Assert.Null(await NtpQuery.ExchangeAsync(ntp, new byte[20], timeout));                         // too short
        Assert.Null(await NtpQuery.ExchangeAsync(ntp, [0x16, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], timeout)); // mode 6
        Assert.Null(await NtpQuery.ExchangeAsync(ntp, [0x17, 0, 3, 42, 0, 0, 0, 0], timeout));       // mode 7 monlist
        Assert.Null(await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest(2, version: 1), timeout));

        MetricsScrape scrape = await MetricsScrape.FetchAsync(MetricsUrl(server));
        string all = string.Join("\n", scrape.Samples.Where(s => s.Key.StartsWith("appliance", StringComparison.Ordinal)));
        Assert.True(scrape["appliance_ntp_requests_total"] == 5, all);
        Assert.True(scrape["appliance_ntp_responses_total{kind=\"respond\",reason=\"served\"}"] == 1, all);
        Assert.Equal(1, scrape["appliance_ntp_responses_total{kind=\"respond\",reason=\"served\"}"]);
        Assert.Equal(1, scrape["appliance_ntp_drops_total{reason=\"too_short\"}"]);
        Assert.Equal(1, scrape["appliance_ntp_drops_total{reason=\"control_query\"}"]);
        Assert.Equal(1, scrape["appliance_ntp_drops_total{reason=\"private_query\"}"]);
        Assert.Equal(1, scrape["appliance_ntp_drops_total{reason=\"unsupported_version\"}"]);
        Assert.Equal(10, scrape["appliance_stratum"]);
        Assert.Equal(1, scrape["appliance_synchronised"]);
        Assert.True(scrape["appliance_process_allocated_bytes_total"] > 0);
    }

    [Fact]
    public async Task Metrics_WorkerAllocatedBytes_StayFlatUnderRequests()
    {
        await using ApplianceServer server = await StartAsync();
        IPEndPoint ntp = server.NtpEndPoints[0];
        const string series = "appliance_ntp_worker_allocated_bytes_total";
        for (int i = 0; i < 200; i++)
        {
            await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest((ulong)i), TimeSpan.FromSeconds(5)); // warm-up
        }
        double before = (await MetricsScrape.FetchAsync(MetricsUrl(server)))[series];
        for (int i = 0; i < 2000; i++)
        {
            Assert.NotNull(await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest((ulong)i), TimeSpan.FromSeconds(5)));
        }
        double after = (await MetricsScrape.FetchAsync(MetricsUrl(server)))[series];
        Assert.True(after - before < 2000, $"the request path allocated {after - before} bytes over 2000 requests");
    }
}
