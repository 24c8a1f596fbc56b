using System.Globalization;
using System.Text;
using Appliance.Server.Control;

namespace Appliance.Server.Status;

/// <summary>What the NTS-KE listener adds to the page beyond the reports: never key bytes, never client addresses.</summary>
public sealed record NtsKeFacts(DateTimeOffset CertificateNotAfter, int ActiveConnections);

/// <summary>Everything one rendering of the page shows: the control socket's reports plus the few facts they lack.</summary>
/// <param name="LeapFileExpires">The leap-seconds file's expiry, or null when none is configured.</param>
public sealed record StatusPageData(
    StatusReport Status,
    SourcesReport Sources,
    ServerStatsReport Stats,
    KeysReport Keys,
    RequestRates Rates,
    NtsKeFacts? NtsKe,
    DateTimeOffset? LeapFileExpires,
    IReadOnlyList<StatusWarning> Warnings,
    HistoryView History,
    DateTimeOffset Now);

/// <summary>
/// The status page served at <c>/</c> on the metrics listener: one self-contained HTML document (inline
/// CSS and SVG, no script, a meta refresh). Every string that comes from configuration or from a peer
/// (source names, reference ids, reasons) goes through <see cref="SvgPlot.Escape"/>. Elements carry ids
/// and data- attributes so that tests (and scrapers) find values without parsing prose.
/// </summary>
public static class StatusPage
{
    public const int RefreshSeconds = 10;

    private const string Style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
        h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}
        table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
        th{font-weight:600}table.grid td,table.grid th{border-bottom:1px solid #ddd;padding-right:14px}
        td.num{text-align:right;font-variant-numeric:tabular-nums}
        .state{display:inline-block;padding:2px 8px;border-radius:4px;color:#fff;font-weight:600}
        .ok{background:#2a7d2a}.bad{background:#b52a2a}
        ul.warnings{padding:0;list-style:none}li.warning{background:#fdecea;border-left:4px solid #b52a2a;padding:4px 8px;margin:4px 0}
        .plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figcaption{font-weight:600}
        svg text{font-size:10px;fill:#555}ul.legend{list-style:none;padding:0;margin:2px 0;font-size:12px}
        ul.legend li{display:inline-block;margin-right:12px}ul.legend span{display:inline-block;width:10px;height:10px;margin-right:4px}
        .muted{color:#777}
        """;

    public static string Render(StatusPageData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var html = new StringBuilder(32 * 1024);
        StatusReport status = data.Status;
        string state = status.Synchronised ? "synchronised" : "unsynchronised";
        html.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
        Append(html, $"<meta http-equiv=\"refresh\" content=\"{RefreshSeconds}\">");
        Append(html, $"<title>appliance: {state}, stratum {status.Stratum}</title><style>{Style}</style></head><body>");
        Append(html, $"<h1>appliance {E(status.Version)}</h1>");
        Append(html, $"<p><span id=\"sync-state\" class=\"state {(status.Synchronised ? "ok" : "bad")}\" data-synchronised=\"{(status.Synchronised ? "true" : "false")}\">{state}</span> ");
        Append(html, $"<span class=\"muted\">as of {data.Now:yyyy-MM-dd HH:mm:ss} UTC, refreshed every {RefreshSeconds} s</span></p>");

        Warnings(html, data.Warnings);
        Clock(html, data);
        Plots(html, data);
        Sources(html, data.Sources);
        Requests(html, data.Rates, data.Stats);
        Nts(html, data);
        html.Append("</body></html>\n");
        return html.ToString();
    }

    private static void Warnings(StringBuilder html, IReadOnlyList<StatusWarning> warnings)
    {
        html.Append("<section id=\"warnings\"><h2>Warnings</h2>");
        if (warnings.Count == 0)
        {
            html.Append("<p id=\"no-warnings\" class=\"muted\">None.</p>");
        }
        else
        {
            html.Append("<ul class=\"warnings\">");
            foreach (StatusWarning warning in warnings)
            {
                Append(html, $"<li class=\"warning\" data-warning=\"{E(warning.Code)}\">{E(warning.Text)}</li>");
            }
            html.Append("</ul>");
        }
        html.Append("</section>");
    }

    private static void Clock(StringBuilder html, StatusPageData data)
    {
        StatusReport s = data.Status;
        html.Append("<section><h2>Clock</h2><table id=\"clock\">");
        Row(html, "clock-status", "Clock status", s.ClockStatus);
        Row(html, "clock-mode", "Clock mode", s.ClockMode);
        Row(html, "stratum", "Stratum", s.Stratum.ToString(CultureInfo.InvariantCulture));
        Row(html, "reference-id", "Reference", s.ReferenceId.Length == 0 ? "-" : s.ReferenceId);
        Row(html, "system-peer", "System peer", s.SystemPeer ?? "none");
        Row(html, "offset", "Offset", Seconds(s.OffsetSeconds));
        Row(html, "offset-uncertainty", "Offset uncertainty", "±" + Seconds(s.OffsetUncertaintySeconds));
        Row(html, "frequency", "Frequency", string.Create(CultureInfo.InvariantCulture, $"{s.FrequencyPpm:+0.000;-0.000;0.000} ppm ±{s.FrequencyUncertaintyPpm:0.000}"));
        Row(html, "root-delay", "Root delay", Seconds(s.RootDelaySeconds));
        Row(html, "root-dispersion", "Root dispersion", Seconds(s.RootDispersionSeconds));
        Row(html, "leap", "Leap", s.Leap);
        Row(html, "leap-file", "Leap-seconds file", data.LeapFileExpires is { } expires
            ? string.Create(CultureInfo.InvariantCulture, $"expires {expires:yyyy-MM-dd}") : "not configured");
        Row(html, "uptime", "Uptime", Duration(s.UptimeSeconds));
        html.Append("</table></section>");
    }

    private static void Plots(StringBuilder html, StatusPageData data)
    {
        HistoryView history = data.History;
        html.Append("<section><h2>The last hour</h2><div class=\"plots\">");
        double[] lower = new double[history.Offset.Length], upper = new double[history.Offset.Length];
        for (int k = 0; k < lower.Length; k++)
        {
            lower[k] = history.Offset[k] - history.OffsetUncertainty[k];
            upper[k] = history.Offset[k] + history.OffsetUncertainty[k];
        }
        SvgPlot.Write(html, "plot-offset", "System offset (band: ± uncertainty)", history.SecondsAgo,
            [new PlotSeries("offset", history.Offset, lower, upper)]);
        // Log scale: one source's jitter may be a thousand times another's (a falseticker, a start-up spike).
        SvgPlot.Write(html, "plot-jitter", "Jitter by source (log scale)", history.SecondsAgo,
            history.Jitter.Select(j => new PlotSeries(j.Name, j.Values)).ToList(), logarithmic: true);
        html.Append("</div></section>");
    }

    private static void Sources(StringBuilder html, SourcesReport sources)
    {
        html.Append("<section><h2>Sources</h2>");
        if (sources.Sources.Count == 0)
        {
            html.Append("<p id=\"no-sources\" class=\"muted\">No sources configured.</p></section>");
            return;
        }
        html.Append("<table id=\"sources\" class=\"grid\"><tr><th>Name</th><th>Kind</th><th>State</th><th>Selection</th><th>Reach</th>"
            + "<th>Stratum</th><th>Poll</th><th>Offset</th><th>Delay</th><th>Jitter</th><th>Answers / requests</th></tr>");
        foreach (SourceReport s in sources.Sources)
        {
            Append(html, $"<tr data-source=\"{E(s.Name)}\"><td data-field=\"name\">{E(s.Name)}</td><td data-field=\"kind\">{E(s.Kind)}</td>");
            Append(html, $"<td data-field=\"state\">{E(s.State)}</td><td data-field=\"selection\">{E(s.Selection)}</td>");
            Append(html, $"<td data-field=\"reach\" class=\"num\">{Convert.ToString(s.Reach, 8)}</td><td data-field=\"stratum\" class=\"num\">{s.Stratum}</td>");
            Append(html, $"<td data-field=\"poll\" class=\"num\">{s.PollSeconds:0} s</td>");
            Append(html, $"<td data-field=\"offset\" class=\"num\">{(s.OffsetSeconds is { } o ? Seconds(o) : "-")}</td>");
            Append(html, $"<td data-field=\"delay\" class=\"num\">{(s.DelaySeconds is { } d ? Seconds(d) : "-")}</td>");
            Append(html, $"<td data-field=\"jitter\" class=\"num\">{(s.OffsetSeconds is null ? "-" : Seconds(s.JitterSeconds))}</td>");
            Append(html, $"<td data-field=\"answers\" class=\"num\">{s.Answers} / {s.Requests}</td></tr>");
        }
        html.Append("</table></section>");
    }

    private static void Requests(StringBuilder html, RequestRates rates, ServerStatsReport stats)
    {
        html.Append("<section><h2>Requests</h2><table id=\"requests\" class=\"grid\"><tr><th></th><th>per second (10 s)</th><th>total</th></tr>");
        RateRow(html, "received", "Received", rates.Received, stats.Received);
        RateRow(html, "answered", "Answered", rates.Answered, stats.Answered);
        RateRow(html, "kod", "Kiss-o'-Death", rates.KissOfDeath, stats.KodSent.Values.Sum()); // NTS NAKs are in it (kod/nts_cookie_*)
        RateRow(html, "dropped", "Dropped", rates.Dropped, stats.Dropped.Values.Sum());
        // Of the dropped, those shed because a worker is behind (docs/overload.md): overload, not bad input.
        RateRow(html, "shed", "Shed (overloaded)", rates.Shed, stats.Dropped.GetValueOrDefault("stale"));
        html.Append("</table>");
        Counts(html, "drop-reasons", "Dropped, by reason", stats.Dropped);
        Counts(html, "kod-reasons", "Kiss-o'-Death, by reason", stats.KodSent);
        Append(html, $"<p class=\"muted\">Rate limited: <span id=\"rate-limited\">{stats.RateLimited}</span>; send errors {stats.SendErrors}, receive errors {stats.ReceiveErrors}, worker restarts {stats.WorkerRestarts}.</p>");
        html.Append("</section>");
    }

    private static void RateRow(StringBuilder html, string id, string label, double perSecond, long total) =>
        Append(html, $"<tr data-outcome=\"{id}\"><th>{label}</th><td class=\"num\" data-field=\"rate\">{perSecond:0.0}</td><td class=\"num\" id=\"requests-{id}\">{total}</td></tr>");

    private static void Counts(StringBuilder html, string id, string title, IReadOnlyDictionary<string, long> counts)
    {
        if (counts.Count == 0)
        {
            return;
        }
        Append(html, $"<table id=\"{id}\" class=\"grid\"><tr><th>{title}</th><th></th></tr>");
        foreach ((string reason, long count) in counts)
        {
            Append(html, $"<tr data-reason=\"{E(reason)}\"><td>{E(reason)}</td><td class=\"num\">{count}</td></tr>");
        }
        html.Append("</table>");
    }

    private static void Nts(StringBuilder html, StatusPageData data)
    {
        html.Append("<section id=\"nts\"><h2>NTS</h2>");
        if (data.NtsKe is not { } ke)
        {
            html.Append("<p class=\"muted\">NTS-KE is not configured.</p></section>");
            return;
        }
        ServerStatsReport stats = data.Stats;
        html.Append("<table id=\"nts-summary\">");
        Row(html, "ntske-certificate", "Certificate expires", string.Create(CultureInfo.InvariantCulture,
            $"{ke.CertificateNotAfter:yyyy-MM-dd HH:mm} UTC (in {(ke.CertificateNotAfter - data.Now).TotalDays:0.0} days)"));
        Row(html, "ntske-connections", "NTS-KE connections open", ke.ActiveConnections.ToString(CultureInfo.InvariantCulture));
        Row(html, "nts-requests", "NTS requests received / answered / NAK", string.Create(CultureInfo.InvariantCulture,
            $"{stats.NtsReceived} / {stats.NtsAnswered} / {stats.NtsNaks}"));
        Row(html, "cookies-issued", "Cookies issued", stats.CookiesIssued.ToString(CultureInfo.InvariantCulture));
        KeysReport keys = data.Keys;
        if (keys.Nts)
        {
            KeyReport? current = keys.Keys.FirstOrDefault(k => k.Current);
            Row(html, "key-ring", "Key ring", string.Create(CultureInfo.InvariantCulture,
                $"{keys.Mode}, {keys.Keys.Count} keys, rotation every {Duration(keys.RotationSeconds)}"));
            Row(html, "key-age", "Current key age", current is null ? "-" : Duration(current.AgeSeconds));
            Row(html, "key-next-rotation", "Next rotation", keys.NextRotation is { } next
                ? string.Create(CultureInfo.InvariantCulture, $"{next.UtcDateTime:yyyy-MM-dd HH:mm} UTC") : "-");
        }
        html.Append("</table>");
        if (stats.NtsKeHandshakes.Count == 0)
        {
            html.Append("<p id=\"ntske-none\" class=\"muted\">No NTS-KE handshakes yet.</p>");
        }
        else
        {
            html.Append("<table id=\"ntske-handshakes\" class=\"grid\"><tr><th>NTS-KE handshakes (result/reason)</th><th></th></tr>");
            foreach ((string outcome, long count) in stats.NtsKeHandshakes)
            {
                Append(html, $"<tr data-outcome=\"{E(outcome)}\"><td>{E(outcome)}</td><td class=\"num\" data-field=\"count\">{count}</td></tr>");
            }
            html.Append("</table>");
        }
        html.Append("</section>");
    }

    private static void Row(StringBuilder html, string id, string label, string value) =>
        Append(html, $"<tr><th>{label}</th><td id=\"{id}\">{E(value)}</td></tr>");

    /// <summary>A duration in the unit that suits it, with its sign: "+12.3 µs", "-1.204 ms".</summary>
    public static string Seconds(double seconds)
    {
        (double scale, string unit) = SvgPlot.Unit(Math.Abs(seconds));
        return string.Create(CultureInfo.InvariantCulture, $"{seconds * scale:0.###} {unit}");
    }

    private static string Duration(double seconds)
    {
        var span = TimeSpan.FromSeconds(Math.Max(0, seconds));
        return span.TotalDays >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalDays} d {span.Hours} h")
            : span.TotalHours >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{span.Hours} h {span.Minutes} min")
            : string.Create(CultureInfo.InvariantCulture, $"{span.Minutes} min {span.Seconds} s");
    }

    private static string E(string text) => SvgPlot.Escape(text);

    private static void Append(StringBuilder html, FormattableString text) => html.Append(text.ToString(CultureInfo.InvariantCulture));
}
