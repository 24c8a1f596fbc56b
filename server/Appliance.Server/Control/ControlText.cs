using System.Globalization;
using System.Text;

namespace Appliance.Server.Control;

/// <summary>The human form of each report: chronyc's layouts where there is one.</summary>
public static class ControlText
{
    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    public static string Status(StatusReport s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var text = new StringBuilder();
        Line(text, "Reference ID", s.Synchronised ? s.ReferenceId : "(none: unsynchronised)");
        Line(text, "Stratum", s.Stratum.ToString(s_invariant));
        Line(text, "System peer", s.SystemPeer ?? "(none)");
        Line(text, "Clock", $"{s.ClockStatus} ({s.ClockMode} mode)");
        Line(text, "Offset", $"{Signed(s.OffsetSeconds)} s (± {Seconds(s.OffsetUncertaintySeconds)} s)");
        Line(text, "Frequency", $"{s.FrequencyPpm.ToString("+0.000;-0.000", s_invariant)} ppm (± {s.FrequencyUncertaintyPpm.ToString("0.000", s_invariant)} ppm)");
        if (s.ClockMode == "software")
        {
            Line(text, "Correction", $"{Signed(s.CorrectionSeconds)} s (served time − system clock)");
        }
        Line(text, "Root delay", $"{Seconds(s.RootDelaySeconds)} s");
        Line(text, "Root dispersion", $"{Seconds(s.RootDispersionSeconds)} s");
        Line(text, "Leap status", s.Leap);
        Line(text, "Requests", $"{s.Requests.ToString(s_invariant)} ({s.RequestsPerSecond.ToString("0.0", s_invariant)}/s over 10 s)");
        if (s.ShedPerSecond > 0)
        {
            // Only while it happens: an overloaded worker drops what waited too long (docs/overload.md).
            Line(text, "Shed (overloaded)", $"{s.ShedPerSecond.ToString("0.0", s_invariant)}/s over 10 s: add workers or servers");
        }
        Line(text, "Uptime", Duration(s.UptimeSeconds));
        Line(text, "Version", s.Version);
        return text.ToString();
    }

    public static string Sources(SourcesReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.Sources.Count == 0)
        {
            return "No sources: the appliance serves its local reference (configure sources: in the YAML file).\n";
        }
        return Table(
            ["Name", "Kind", "State", "Selection", "Reach", "Poll", "St", "Offset", "Delay", "Jitter", "Sent", "Valid"],
            report.Sources.Select(s => new[]
            {
                s.Name, s.Kind, s.State, s.Selection, Convert.ToString(s.Reach, 8), Duration(s.PollSeconds),
                s.Stratum.ToString(s_invariant), s.OffsetSeconds is { } o ? Short(o, signed: true) : "-",
                s.DelaySeconds is { } d ? Short(d, signed: false) : "-", Short(s.JitterSeconds, signed: false),
                s.Requests.ToString(s_invariant), s.Answers.ToString(s_invariant),
            }),
            "Selection: system_peer = followed, candidate = combined, outlier/falseticker = outvoted, unfit = not usable, no_sample = none yet. Reach in octal, like chronyc.");
    }

    public static string Clients(ClientsReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (!report.Tracking)
        {
            return "No client table: rate limiting is off. Turn it on (ntp.rate-limit) to track clients.\n";
        }
        return Table(
            ["Address", "Requests", "Limited", "KoD", "NTS", "Last seen"],
            report.Clients.Select(c => new[]
            {
                c.Address, c.Requests.ToString(s_invariant), c.RateLimited.ToString(s_invariant), c.KodSent.ToString(s_invariant),
                c.NtsRequests.ToString(s_invariant), Duration(c.LastSeenSecondsAgo) + " ago",
            }),
            $"{report.Clients.Count} of {report.Tracked} clients tracked, busiest first.");
    }

    public static string ServerStats(ServerStatsReport s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var text = new StringBuilder();
        Line(text, "NTP packets received", Count(s.Received));
        Line(text, "NTP answered", Count(s.Answered));
        Line(text, "NTP rate limited", Count(s.RateLimited));
        Line(text, "Clients evicted", Count(s.RateLimitEvictions));
        Line(text, "NTP KoD sent", Breakdown(s.KodSent));
        Line(text, "NTP dropped", Breakdown(s.Dropped));
        Line(text, "NTS requests", Count(s.NtsReceived));
        Line(text, "NTS answered", Count(s.NtsAnswered));
        Line(text, "NTS NAKs sent", Count(s.NtsNaks));
        Line(text, "NTS cookies issued", Count(s.CookiesIssued));
        Line(text, "NTS-KE connections", Breakdown(s.NtsKeHandshakes));
        Line(text, "Receive timestamps", Breakdown(s.TimestampSources));
        Line(text, "Transmit timestamps", Breakdown(s.TransmitTimestampSources));
        Line(text, "Send errors", Count(s.SendErrors));
        Line(text, "Receive errors", Count(s.ReceiveErrors));
        Line(text, "Worker restarts", Count(s.WorkerRestarts));
        return text.ToString();
    }

    public static string Keys(KeysReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        string nts;
        if (!report.Nts)
        {
            nts = "NTS is not configured (nts-ke): there is no key ring.\n";
        }
        else
        {
            string header = $"Mode: {report.Mode}; rotation every {Duration(report.RotationSeconds)}, {report.Keep} old key(s) kept; next rotation {report.NextRotation?.ToString("u", s_invariant) ?? "-"}";
            nts = Table(["Id", "Role", "Age"],
                report.Keys.Select(k => new[] { k.Id.ToString(s_invariant), k.Current ? "seals (current)" : "opens", Duration(k.AgeSeconds) }),
                header);
        }
        if (report.Roughtime is not { } roughtime)
        {
            return nts;
        }
        var text = new StringBuilder(nts).Append('\n').Append("Roughtime (publish the public key; clients trust it alone):\n");
        Line(text, "Public key (base64)", roughtime.PublicKey);
        Line(text, "Public key (hex)", roughtime.PublicKeyHex);
        Line(text, "Key file", roughtime.KeyFile);
        Line(text, "Online key", roughtime.OnlineKeyMint is { } mint && roughtime.OnlineKeyMaxt is { } maxt
            ? $"valid {mint.ToString("u", s_invariant)} to {maxt.ToString("u", s_invariant)} ({roughtime.Delegations} made since the start)"
            : "none yet (made for the first answer)");
        return text.ToString();
    }

    public static string Action(ActionReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return report.Lines.Count == 0 ? "done\n" : string.Join('\n', report.Lines) + "\n";
    }

    private static void Line(StringBuilder text, string name, string value) => text.Append(name.PadRight(20)).Append(": ").Append(value).Append('\n');

    private static string Table(string[] header, IEnumerable<string[]> rows, string note)
    {
        List<string[]> all = [header, .. rows];
        int[] widths = Enumerable.Range(0, header.Length).Select(c => all.Max(r => r[c].Length)).ToArray();
        var text = new StringBuilder();
        text.Append(note).Append('\n');
        foreach (string[] row in all)
        {
            text.Append(string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c]))).TrimEnd()).Append('\n');
        }
        return text.ToString();
    }

    private static string Count(long n) => n.ToString(s_invariant);

    private static string Breakdown(IReadOnlyDictionary<string, long> counts) =>
        counts.Count == 0 ? "0" : $"{counts.Values.Sum().ToString(s_invariant)} ({string.Join(", ", counts.Select(kv => $"{kv.Key} {kv.Value.ToString(s_invariant)}"))})";

    private static string Signed(double seconds) => seconds.ToString("+0.000000000;-0.000000000", s_invariant);

    private static string Seconds(double seconds) => seconds.ToString("0.000000000", s_invariant);

    /// <summary>Like chronyc: the value in the unit that keeps it short (ns, us, ms, s).</summary>
    internal static string Short(double seconds, bool signed)
    {
        double magnitude = Math.Abs(seconds);
        (double scaled, string unit) = magnitude < 1e-6 ? (seconds * 1e9, "ns") : magnitude < 1e-3 ? (seconds * 1e6, "us")
            : magnitude < 1 ? (seconds * 1e3, "ms") : (seconds, "s");
        return scaled.ToString(signed ? "+0.0;-0.0" : "0.0", s_invariant) + unit;
    }

    internal static string Duration(double seconds)
    {
        if (seconds < 1)
        {
            return seconds.ToString("0.0", s_invariant) + "s";
        }
        var span = TimeSpan.FromSeconds(Math.Round(seconds));
        return span.TotalDays >= 1 ? $"{(int)span.TotalDays}d{span.Hours}h"
            : span.TotalHours >= 1 ? $"{(int)span.TotalHours}h{span.Minutes:00}m"
            : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m{span.Seconds:00}s"
            : $"{span.Seconds}s";
    }
}
