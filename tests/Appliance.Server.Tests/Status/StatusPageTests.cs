using System.Text.RegularExpressions;
using Appliance.Server.Control;
using Appliance.Server.Status;
using static Appliance.Server.Tests.Status.StatusTestData;

namespace Appliance.Server.Tests.Status;

public class StatusPageTests
{
    private static string[] Codes(IReadOnlyList<StatusWarning> warnings) => [.. warnings.Select(w => w.Code)];

    [Fact]
    public void Render_SourceNamesAndReferenceFromPeers_AreEscapedEverywhere()
    {
        const string hostile = "<img src=x onerror=alert(1)>\"'&";
        string page = StatusPage.Render(Page(
            status: StatusWith(referenceId: "<b>ref</b>", systemPeer: hostile),
            sources: [Source(hostile, "system_peer")],
            history: new HistoryView([0], [1e-6], [1e-7], [new HistorySeries(hostile, [1e-6])])));

        Assert.DoesNotContain("<img", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>ref", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        const string escaped = "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;";
        Assert.Contains($"<tr data-source=\"{escaped}\">", page, StringComparison.Ordinal);
        Assert.Contains($"<td id=\"system-peer\">{escaped}</td>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"reference-id\">&lt;b&gt;ref&lt;/b&gt;</td>", page, StringComparison.Ordinal);
        Assert.Contains($"<li data-series=\"{escaped}\">", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_ShowsTheReportsValuesUnderTheirIds()
    {
        string page = StatusPage.Render(Page(sources: [Source("192.0.2.1:123", "system_peer"), Source("192.0.2.2:123", "falseticker")]));

        Assert.Contains("<td id=\"stratum\">2</td>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"reference-id\">192.0.2.1</td>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"offset\">12 µs</td>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"offset-uncertainty\">±3 µs</td>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"frequency\">+1.500 ppm ±0.010</td>", page, StringComparison.Ordinal);
        Assert.Matches("data-source=\"192.0.2.2:123\">.*?<td data-field=\"selection\">falseticker</td>", page);
        Assert.Contains("data-synchronised=\"true\"", page, StringComparison.Ordinal);
        Assert.Contains("<tr data-outcome=\"received\"><th>Received</th><td class=\"num\" data-field=\"rate\">42.5</td><td class=\"num\" id=\"requests-received\">1000</td></tr>", page, StringComparison.Ordinal);
        Assert.Contains("<tr data-outcome=\"dropped\"><th>Dropped</th><td class=\"num\" data-field=\"rate\">1.0</td><td class=\"num\" id=\"requests-dropped\">6</td></tr>", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_KissOfDeathTotal_CountsEachNtsNakOnce()
    {
        // serverstats' kod_sent already holds the NAKs (kod/nts_cookie_*); nts_naks is the same count seen from NTS.
        ServerStatsReport stats = Stats() with
        {
            KodSent = new Dictionary<string, long> { ["rate_limited"] = 4, ["nts_cookie_invalid"] = 3 },
            NtsNaks = 3,
        };
        string page = StatusPage.Render(Page(stats: stats));
        Assert.Contains("id=\"requests-kod\">7</td>", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_IsSelfContained_NoScriptNoExternalReference()
    {
        string page = StatusPage.Render(Page(ntsKe: new NtsKeFacts(Now.AddDays(90), 0),
            stats: Stats(new Dictionary<string, long> { ["success/ok"] = 3 }),
            keys: new KeysReport(true, "random", 86400, 7, Now.AddHours(5), [new KeyReport(7, true, 3600)], null)));

        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotMatch(new Regex("(src|href)=\"https?:", RegexOptions.IgnoreCase), page);
        Assert.Contains("<meta http-equiv=\"refresh\"", page, StringComparison.Ordinal);
        Assert.Contains("<tr data-outcome=\"success/ok\"><td>success/ok</td><td class=\"num\" data-field=\"count\">3</td></tr>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"key-age\">1 h 0 min</td>", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_EmptyHistoryAndNoSources_SaysSoInsteadOfPlotting()
    {
        string page = StatusPage.Render(Page(sources: []));

        Assert.Contains("id=\"no-sources\"", page, StringComparison.Ordinal);
        Assert.Equal(2, Regex.Count(page, "no data yet"));
        Assert.Contains("id=\"no-warnings\"", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_Warnings_AreListedWithTheirCodes()
    {
        string page = StatusPage.Render(Page(warnings: [new StatusWarning("unsynchronised", "a & b")]));

        Assert.Contains("<li class=\"warning\" data-warning=\"unsynchronised\">a &amp; b</li>", page, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"no-warnings\"", page, StringComparison.Ordinal);
    }

    [Fact]
    public void Warnings_HealthyServer_None()
    {
        Assert.Empty(StatusWarnings.Evaluate(StatusWith(), new SourcesReport([Source("a", "system_peer")]), Now.AddDays(15), Now.AddDays(31), Now));
    }

    [Theory]
    [InlineData(13.9, "certificate_expiring")]
    [InlineData(0.01, "certificate_expiring")]
    [InlineData(-1, "certificate_expired")]
    public void Warnings_CertificateWithin14DaysOrExpired_Warns(double days, string code)
    {
        Assert.Equal([code], Codes(StatusWarnings.Evaluate(StatusWith(), new SourcesReport([]), Now.AddDays(days), null, Now)));
    }

    [Theory]
    [InlineData(29.9, "leap_file_expiring")]
    [InlineData(0, "leap_file_expired")]
    [InlineData(-200, "leap_file_expired")]
    public void Warnings_LeapFileWithin30DaysOrExpired_Warns(double days, string code)
    {
        Assert.Equal([code], Codes(StatusWarnings.Evaluate(StatusWith(), new SourcesReport([]), null, Now.AddDays(days), Now)));
    }

    [Fact]
    public void Warnings_NoSourceSelectable_AndUnsynchronised_BothWarn()
    {
        var sources = new SourcesReport([Source("a", "falseticker"), Source("b", "no_sample", offset: null), Source("c", "unfit")]);

        Assert.Equal(["unsynchronised", "no_selectable_source"], Codes(StatusWarnings.Evaluate(StatusWith(synchronised: false), sources, null, null, Now)));
        Assert.Empty(StatusWarnings.Evaluate(StatusWith(), new SourcesReport([Source("a", "falseticker"), Source("b", "candidate")]), null, null, Now));
    }
}
