using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests.Status;

/// <summary>The metrics listener as a whole: /metrics and / on one port, everything else refused; the page without a control socket.</summary>
public partial class MonitoringServerTests
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private static async Task<ApplianceServer> StartAsync(string metricsListen = "127.0.0.1:0")
    {
        int port = Ports.FreeUdpPort();
        ConfigResult result = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1, rate-limit: off }
            clock: { mode: software, local: { stratum: 10 } }
            metrics: { listen: "{{metricsListen}}" }
            control: { socket: off }
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders());
    }

    private static Uri Url(ApplianceServer server, string path) => new($"http://{server.MetricsEndPoint}{path}");

    [GeneratedRegex("<tr data-outcome=\"received\"><th>Received</th><td class=\"num\" data-field=\"rate\">([0-9.]+)</td>")]
    private static partial Regex ReceivedRate();

    [Fact]
    public async Task Metrics_ServesTheTextFormat004_AndHeadSendsHeadersOnly()
    {
        await using ApplianceServer server = await StartAsync();

        using HttpResponseMessage get = await s_http.GetAsync(Url(server, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", get.Content.Headers.ContentType!.ToString());
        Assert.Contains("# TYPE appliance_ntp_requests_total counter", await get.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using HttpResponseMessage head = await s_http.SendAsync(new HttpRequestMessage(HttpMethod.Head, Url(server, "/")));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("text/html; charset=utf-8", head.Content.Headers.ContentType!.ToString());
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task OtherPaths_Are404_AndOtherMethods_Are405WithAllow()
    {
        await using ApplianceServer server = await StartAsync();

        foreach (string path in (string[])["/index.html", "/metrics/x", "/favicon.ico", "/..%2fetc/passwd"])
        {
            using HttpResponseMessage missing = await s_http.GetAsync(Url(server, path));
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }
        foreach (HttpMethod method in (HttpMethod[])[HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete])
        {
            using var request = new HttpRequestMessage(method, Url(server, "/")) { Content = new StringContent("body") };
            using HttpResponseMessage refused = await s_http.SendAsync(request);
            Assert.Equal(HttpStatusCode.MethodNotAllowed, refused.StatusCode);
            Assert.Equal("GET, HEAD", string.Join(", ", refused.Content.Headers.Allow));
        }
    }

    [Fact]
    public async Task Page_WithoutControlSocket_IsServedAndItsRequestRateMoves()
    {
        await using ApplianceServer server = await StartAsync();
        Assert.Null(server.ControlSocket);

        using HttpResponseMessage response = await s_http.GetAsync(Url(server, "/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.Contains("default-src 'none'", string.Join(" ", response.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
        Assert.Contains("<td id=\"stratum\">10</td>", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The once-a-second sample runs with the socket off: the page's rate sees the requests.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        Task load = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(1), TimeSpan.FromMilliseconds(200));
                await Task.Delay(20);
            }
        });
        double rate = 0;
        await Eventually.TrueAsync(async () =>
        {
            Match match = ReceivedRate().Match(await s_http.GetStringAsync(Url(server, "/")));
            rate = match.Success ? double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
            return rate > 0;
        }, TimeSpan.FromSeconds(15), () => $"received rate on the page stayed {rate}");
        await cts.CancelAsync();
        await load;
    }

    [Fact]
    public async Task PortTaken_FailsWithBindFailedExceptionNamingTheFix()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;

        BindFailedException e = await Assert.ThrowsAsync<BindFailedException>(() => StartAsync($"127.0.0.1:{port}"));
        Assert.Contains("metrics on TCP", e.Message, StringComparison.Ordinal);
        Assert.Contains("change metrics.listen", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Page_ManyAtOnce_EveryRequestIsAnsweredOrToldToRetry()
    {
        await using ApplianceServer server = await StartAsync();

        HttpResponseMessage[] responses = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => s_http.GetAsync(Url(server, "/"))));
        try
        {
            Assert.All(responses, r => Assert.Contains(r.StatusCode, (HttpStatusCode[])[HttpStatusCode.OK, HttpStatusCode.ServiceUnavailable]));
            Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK);
            Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable), r => Assert.Equal("1", r.Headers.RetryAfter!.ToString()));
        }
        finally
        {
            foreach (HttpResponseMessage r in responses)
            {
                r.Dispose();
            }
        }
    }
}
