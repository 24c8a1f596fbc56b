using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Discipline;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Tests.Control;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests.Status;

/// <summary>
/// The status page in a real browser (Debian's headless Chromium) against a running appliance with real
/// upstreams (two chronyd, one server shifted by 0.5 s that selection must call a falseticker), NTS-KE
/// and an expired leap-seconds file: the DOM holds what the control socket reports, and the screenshot
/// is a page, not a blank.
/// </summary>
[Collection(RealPeers.Name)]
public partial class StatusPageBrowserTests
{
    private const string UpdateCommand = "APPLIANCE_UPDATE_DOCS=1 dotnet test tests/Appliance.Server.Tests --filter StatusPageBrowserTests";
    private static readonly TimeSpan s_browserTimeout = TimeSpan.FromSeconds(60);

    [GeneratedRegex("<td(?: class=\"num\")? id=\"(?<id>[a-z-]+)\">(?<value>[^<]*)</td>")]
    private static partial Regex Cell();

    [GeneratedRegex("<tr data-source=\"(?<name>[^\"]*)\">(?<row>.*?)</tr>", RegexOptions.Singleline)]
    private static partial Regex SourceRow();

    [GeneratedRegex("<td data-field=\"selection\">(?<value>[^<]*)</td>")]
    private static partial Regex SelectionCell();

    [GeneratedRegex("<tr data-outcome=\"(?<outcome>[^\"]*)\"><td>[^<]*</td><td class=\"num\" data-field=\"count\">(?<count>[0-9]+)</td></tr>")]
    private static partial Regex HandshakeRow();

    [GeneratedRegex("id=\"(?<id>plot-[a-z]+)\".*?data-points=\"(?<n>[0-9]+)\"", RegexOptions.Singleline)]
    private static partial Regex PlotPoints();

    [Fact]
    public async Task Chromium_LoadsThePage_DomHoldsWhatTheControlSocketReports_AndTheScreenshotIsAPage()
    {
        var nts = new NtsServerFixture();
        await using ChronyServer a = await ChronyServer.StartAsync();
        await using ChronyServer b = await ChronyServer.StartAsync();
        await using TestNtpServer shifted = TestNtpServer.Shifted(0.5);
        string socket = ControlTests.NewSocketPath();
        ConfigResult config = ConfigLoader.Parse($"""
            ntp: {"{"} listen: ["127.0.0.1:{nts.NtpPort}"], workers: 1, rate-limit: off {"}"}
            nts-ke:
              listen: ["127.0.0.1:{nts.KePort}"]
              certificate: {nts.Certificate.CertificatePath}
              private-key: {nts.Certificate.KeyPath}
              keys: {"{"} storage: {nts.KeyFile} {"}"}
            clock: {"{"} mode: software, leap-seconds: {Repo.TestData("leap-seconds.list")} {"}"}
            sources:
              - ntp: {"{"} address: "{a.EndPoint}", minpoll: 0, maxpoll: 1 {"}"}
              - ntp: {"{"} address: "{shifted.EndPoint}", minpoll: 0, maxpoll: 1 {"}"}
              - ntp: {"{"} address: "{b.EndPoint}", minpoll: 0, maxpoll: 1 {"}"}
            metrics: {"{"} listen: "127.0.0.1:0" {"}"}
            control: {"{"} socket: {socket} {"}"}
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l => l.ClearProviders());

        // Synchronised at stratum 2 with the falseticker told apart, two NTS-KE handshakes, and the plots
        // past their first point (one per 10 s).
        await Eventually.TrueAsync(() => server.State.Current.Stratum == 2 && server.Clock.Sources.All(s => s.Counters.Answers >= 4)
            && server.Clock.Snapshot.Sources.Any(s => s.Selection == PeerStatus.Falseticker), TimeSpan.FromSeconds(60),
            () => $"stratum {server.State.Current.Stratum}; sources: " + string.Join("; ", server.Clock.Snapshot.Sources));
        NtsKeResult ke = await nts.KeAsync();
        Assert.NotEmpty((await nts.KeAsync()).Cookies);
        // Clients for the requests table: NTS with the cookies from the key exchange, then plain NTP,
        // for longer than one history interval (the plots need a second point). The screenshot in docs/
        // waits longer, for a few minutes of plot.
        foreach (byte[] cookie in ke.Cookies)
        {
            Assert.Equal(NtsResponseCheck.Authentic, (await nts.QueryAsync(ke, cookie)).Check);
        }
        TimeSpan load = TimeSpan.FromSeconds(Environment.GetEnvironmentVariable("APPLIANCE_UPDATE_DOCS") == "1" ? 180 : 11);
        for (DateTime end = DateTime.UtcNow + load; DateTime.UtcNow < end;)
        {
            await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(7), TimeSpan.FromMilliseconds(500));
            await Task.Delay(100);
        }

        string url = $"http://{server.MetricsEndPoint}/";
        string profile = Directory.CreateTempSubdirectory("appliance-chromium").FullName;
        try
        {
            // Live values move: the DOM and the control socket agree within a few attempts or the test fails.
            string? mismatch = null;
            for (int attempt = 0; attempt < 5; attempt++)
            {
                JsonElement status = await ControlTests.JsonVerbAsync(socket, "status");
                JsonElement sources = await ControlTests.JsonVerbAsync(socket, "sources");
                JsonElement stats = await ControlTests.JsonVerbAsync(socket, "serverstats");
                string dom = await ChromiumAsync(profile, "--dump-dom", url);
                mismatch = Compare(dom, status, sources, stats);
                if (mismatch is null)
                {
                    Assert.Contains("data-warning=\"leap_file_expired\"", dom, StringComparison.Ordinal);
                    Assert.DoesNotContain("data-warning=\"unsynchronised\"", dom, StringComparison.Ordinal);
                    Dictionary<string, int> plots = PlotPoints().Matches(dom).ToDictionary(m => m.Groups["id"].Value, m => int.Parse(m.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture));
                    Assert.True(plots["plot-offset"] >= 1, $"offset plot points: {plots["plot-offset"]}");
                    Assert.True(plots["plot-jitter"] >= 3, $"jitter plot points: {plots["plot-jitter"]}");
                    break;
                }
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            Assert.True(mismatch is null, mismatch);

            string shot = Repo.Path("out", "status-page.png");
            Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
            File.Delete(shot);
            await ChromiumAsync(profile, $"--screenshot={shot}", "--window-size=1200,1600", url);
            AssertIsPagePng(shot);
            string docs = Repo.Path("docs", "status-page.png");
            if (Environment.GetEnvironmentVariable("APPLIANCE_UPDATE_DOCS") == "1")
            {
                File.Copy(shot, docs, overwrite: true);
            }
            Assert.True(File.Exists(docs), $"docs/status-page.png is missing: run {UpdateCommand}");
            AssertIsPagePng(docs);
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }

    /// <summary>Null when the DOM shows the control socket's stratum, reference, system peer, every source's selection and NTS-KE counts; else what differs.</summary>
    private static string? Compare(string dom, JsonElement status, JsonElement sources, JsonElement stats)
    {
        Dictionary<string, string> cells = Cell().Matches(dom).ToDictionary(m => m.Groups["id"].Value, m => WebUtility.HtmlDecode(m.Groups["value"].Value));
        var differences = new List<string>();
        void Expect(string id, string expected)
        {
            string actual = cells.GetValueOrDefault(id, "(missing)");
            if (actual != expected)
            {
                differences.Add($"#{id}: page {actual}, control socket {expected}");
            }
        }
        Expect("stratum", status.GetProperty("stratum").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Expect("reference-id", status.GetProperty("reference_id").GetString()!);
        Expect("system-peer", status.GetProperty("system_peer").GetString() ?? "none");
        Expect("leap", status.GetProperty("leap").GetString()!);
        Expect("clock-status", status.GetProperty("clock_status").GetString()!);

        Expect("requests-received", stats.GetProperty("received").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Expect("requests-answered", stats.GetProperty("answered").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));

        Dictionary<string, string> rows = SourceRow().Matches(dom).ToDictionary(m => WebUtility.HtmlDecode(m.Groups["name"].Value),
            m => SelectionCell().Match(m.Groups["row"].Value).Groups["value"].Value);
        JsonElement[] reported = [.. sources.GetProperty("sources").EnumerateArray()];
        if (rows.Count != reported.Length)
        {
            differences.Add($"page lists {rows.Count} sources, control socket {reported.Length}");
        }
        foreach (JsonElement source in reported)
        {
            string name = source.GetProperty("name").GetString()!;
            string selection = source.GetProperty("selection").GetString()!;
            if (rows.GetValueOrDefault(name) != selection)
            {
                differences.Add($"source {name}: page {rows.GetValueOrDefault(name) ?? "(missing)"}, control socket {selection}");
            }
        }

        Dictionary<string, long> handshakes = HandshakeRow().Matches(dom).ToDictionary(m => WebUtility.HtmlDecode(m.Groups["outcome"].Value),
            m => long.Parse(m.Groups["count"].Value, System.Globalization.CultureInfo.InvariantCulture));
        Dictionary<string, long> expected = stats.GetProperty("nts_ke_handshakes").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        if (expected.Values.Sum() < 2 || !handshakes.OrderBy(h => h.Key).SequenceEqual(expected.OrderBy(h => h.Key)))
        {
            differences.Add($"NTS-KE handshakes: page {string.Join(", ", handshakes)}, control socket {string.Join(", ", expected)}");
        }
        return differences.Count == 0 ? null : string.Join("\n", differences) + "\n--- page\n" + dom;
    }

    /// <summary>Runs headless Chromium on <paramref name="args"/> with a private profile, killed (its own process tree only) after the timeout.</summary>
    private static async Task<string> ChromiumAsync(string profile, params string[] args)
    {
        CommandResult result = await Run.CommandAsync("chromium",
            ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", $"--user-data-dir={profile}", .. args], s_browserTimeout);
        Assert.True(result.ExitCode == 0, $"chromium {string.Join(' ', args)}: {result}");
        return result.StdOut;
    }

    /// <summary>A PNG of the window's size whose content is more than a blank (a white 1200×1600 PNG is a few KB).</summary>
    private static void AssertIsPagePng(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        byte[] png = File.ReadAllBytes(path);
        Assert.True(png.AsSpan().StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]), $"{path} is not a PNG");
        // IHDR: width and height, big-endian, at bytes 16 and 20.
        Assert.Equal(1200, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(1600, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        Assert.True(png.Length > 30_000, $"{path}: {png.Length} bytes, too small to hold the page");
    }
}
