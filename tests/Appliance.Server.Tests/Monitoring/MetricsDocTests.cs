using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Server.Tests.Control;
using Appliance.Testing;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>
/// docs/metrics.md against a live scrape of an appliance with every part switched on (upstream
/// sources, NTS-KE, a leap-seconds file, a rate-limit table that evicts): every exposed family is in
/// the table with its type and labels, the table names nothing that is not exposed, and promtool's
/// linter finds nothing. The new gauges are checked against what they measure.
/// </summary>
[Collection(RealPeers.Name)]
public sealed partial class MetricsDocTests(MonitoredAppliance appliance) : IClassFixture<MonitoredAppliance>
{
    private const string Promtool = "/usr/bin/promtool";

    /// <summary>One row of the table in docs/metrics.md.</summary>
    private sealed record DocRow(string Name, string Type, IReadOnlyDictionary<string, IReadOnlySet<string>?> Labels, string Line);

    [GeneratedRegex(@"^\|\s*`(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|")]
    private static partial Regex RowStart();

    /// <summary>A label in the Labels column: `name` (values, comma separated) or `name` (*free-form description*).</summary>
    [GeneratedRegex(@"`(?<label>[a-zA-Z_][a-zA-Z0-9_]*)`\s*\((?<values>[^)]*)\)")]
    private static partial Regex LabelCell();

    private static List<DocRow> ReadDoc()
    {
        string[] lines = File.ReadAllLines(Repo.Path("docs", "metrics.md"));
        int header = Array.FindIndex(lines, l => l.StartsWith("| Metric |", StringComparison.Ordinal));
        Assert.True(header >= 0, "docs/metrics.md has no table starting '| Metric |'");
        string[] columns = [.. lines[header].Split('|')[1..^1].Select(c => c.Trim())];
        Assert.Equal(["Metric", "Type", "Labels", "Unit", "Meaning", "Alerts"], columns);
        var rows = new List<DocRow>();
        foreach (string line in lines.Skip(header + 2))
        {
            Match start = RowStart().Match(line);
            if (!start.Success)
            {
                continue;
            }
            string[] cells = [.. line.Split('|')[1..^1].Select(c => c.Trim())];
            Assert.True(cells.Length == columns.Length, $"docs/metrics.md: {cells.Length} cells, not {columns.Length}: {line}");
            var labels = new Dictionary<string, IReadOnlySet<string>?>(StringComparer.Ordinal);
            foreach (Match label in LabelCell().Matches(cells[2]))
            {
                string values = label.Groups["values"].Value.Trim();
                labels[label.Groups["label"].Value] = values.StartsWith('*')
                    ? null
                    : values.Split(',').Select(v => v.Trim()).ToHashSet(StringComparer.Ordinal);
            }
            Assert.True(labels.Count > 0 || cells[2] == "—", $"docs/metrics.md: labels must be `name` (values) or —: {line}");
            rows.Add(new DocRow(start.Groups["name"].Value, cells[1], labels, line));
        }
        return rows;
    }

    [Fact]
    public async Task MetricsDoc_DocumentsEveryExposedFamily_WithItsTypeAndLabels_AndNothingElse()
    {
        IReadOnlyDictionary<string, MetricFamily> live = Exposition.Parse(await appliance.ScrapeAsync());
        List<DocRow> doc = ReadDoc();
        var documented = doc.ToDictionary(r => r.Name, StringComparer.Ordinal);
        var problems = new List<string>();
        problems.AddRange(doc.GroupBy(r => r.Name).Where(g => g.Count() > 1).Select(g => $"{g.Key}: documented {g.Count()} times"));
        problems.AddRange(live.Keys.Where(n => !documented.ContainsKey(n)).Order(StringComparer.Ordinal)
            .Select(n => $"{n}: exposed but not in docs/metrics.md ({live[n].Type}, labels {string.Join(",", live[n].Labels.Keys)}: {live[n].Help})"));
        problems.AddRange(documented.Keys.Where(n => !live.ContainsKey(n)).Order(StringComparer.Ordinal)
            .Select(n => $"{n}: in docs/metrics.md but not exposed"));
        foreach (MetricFamily family in live.Values.Where(f => documented.ContainsKey(f.Name)))
        {
            DocRow row = documented[family.Name];
            if (row.Type != family.Type)
            {
                problems.Add($"{family.Name}: documented as {row.Type}, exposed as {family.Type}");
            }
            if (!row.Labels.Keys.Order(StringComparer.Ordinal).SequenceEqual(family.Labels.Keys.Order(StringComparer.Ordinal)))
            {
                problems.Add($"{family.Name}: documented labels [{string.Join(", ", row.Labels.Keys)}], exposed [{string.Join(", ", family.Labels.Keys)}]");
                continue;
            }
            foreach ((string label, SortedSet<string> values) in family.Labels)
            {
                if (row.Labels[label] is { } allowed && values.FirstOrDefault(v => !allowed.Contains(v)) is { } stray)
                {
                    problems.Add($"{family.Name}: label {label}=\"{stray}\" is exposed but not among the documented values ({string.Join(", ", allowed)})");
                }
            }
        }
        Assert.True(problems.Count == 0, "docs/metrics.md and /metrics disagree:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void MetricsDoc_AlertsColumn_NamesExactlyTheAlertsThatReadTheMetric_AndEveryRowHasAUnitAndAMeaning()
    {
        IReadOnlyList<AlertRule> alerts = AlertRule.Load(File.ReadAllText(Repo.Path("appliance-image", "monitoring", "prometheus", "appliance-alerts.yml")));
        foreach (DocRow row in ReadDoc())
        {
            string[] cells = [.. row.Line.Split('|')[1..^1].Select(c => c.Trim())];
            Assert.True(cells[1] is "counter" or "gauge" or "histogram" or "summary" or "untyped", row.Line);
            Assert.True(cells[3].Length > 0 && cells[4].Length > 0 && cells[5].Length > 0, $"empty cell: {row.Line}");
            string[] readBy = [.. alerts.Where(a => PromQl.Metrics(a.Expression).Contains(row.Name, StringComparer.Ordinal)).Select(a => a.Name)];
            Assert.True(cells[5] == (readBy.Length == 0 ? "—" : string.Join(", ", readBy)),
                $"docs/metrics.md: {row.Name} is read by {(readBy.Length == 0 ? "no alert (write —)" : string.Join(", ", readBy))}, the Alerts column says {cells[5]}");
        }
    }

    /// <summary>promtool 2.42's linter (names, suffixes, units, help) on the live exposition, through stdin: it must print nothing.</summary>
    [Fact]
    public async Task PromtoolCheckMetrics_OnALiveScrape_FindsNothing()
    {
        Assert.True(File.Exists(Promtool), $"{Promtool} is missing: run tests/peers/install.sh (Debian package prometheus)");
        string scrape = await appliance.ScrapeAsync();
        CommandResult result = await Run.CommandAsync(Promtool, ["check", "metrics"], TimeSpan.FromSeconds(30), stdin: scrape);
        Assert.True(result.ExitCode == 0 && result.Output.Trim().Length == 0, $"promtool check metrics:\n{result}");
    }

    [Fact]
    public async Task NewGauges_MeasureWhatTheySay()
    {
        double upAtLeast = appliance.AfterStart.Elapsed.TotalSeconds;
        MetricsScrape scrape = MetricsScrape.Parse(await appliance.ScrapeAsync());
        double upAtMost = appliance.BeforeStart.Elapsed.TotalSeconds;
        double now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

        // Build info: the assembly's version and the commit the SDK read from git at build time.
        string series = Assert.Single(scrape.Samples.Keys, k => k.StartsWith("appliance_build_info{", StringComparison.Ordinal));
        Assert.Equal(1, scrape[series]);
        Assert.Contains($"version=\"{Hosting.BuildInfo.Version}\"", series, StringComparison.Ordinal);
        Assert.Matches("commit=\"([0-9a-f]{40}|unknown)\"", series);

        // Uptime lies between the two stopwatches read around the scrape, however slow the host.
        Assert.InRange(scrape["appliance_uptime_seconds"], upAtLeast, upAtMost);

        // The leap file's #@ line is NTP seconds.
        string expiry = File.ReadLines(MonitoredAppliance.LeapFile).Single(l => l.StartsWith("#@", StringComparison.Ordinal));
        double expires = double.Parse(expiry[2..].Trim(), CultureInfo.InvariantCulture) - 2_208_988_800;
        Assert.InRange(scrape["appliance_leap_seconds_file_remaining_seconds"], expires - now - 60, expires - now + 60);

        // The test certificate is made now, valid for its lifetime from now.
        double certificate = scrape["appliance_ntske_certificate_remaining_seconds"];
        double notAfter = new DateTimeOffset(appliance.Server.NtsKe!.Certificates.Current.TargetCertificate.NotAfter).ToUnixTimeSeconds();
        Assert.InRange(certificate, notAfter - now - 60, notAfter - now + 60);
        Assert.True(certificate > 86400, $"certificate remaining {certificate} s");

        // Key ring: 24 h rotation by default; the current key started at its period's start.
        double age = scrape["appliance_nts_key_age_seconds"];
        double next = scrape["appliance_nts_key_next_rotation_seconds"];
        Assert.InRange(age, 0, 86400);
        Assert.InRange(next, 0, 86400);
        Assert.InRange(age + next, 86400 - 60, 86400 + 60);
    }

    /// <summary>The key gauges come from the same KeyRingStore code as <c>appliance keys</c>: both say the same.</summary>
    [Fact]
    public async Task KeyGauges_AgreeWithApplianceKeys()
    {
        JsonElement keys = await ControlTests.JsonVerbAsync(appliance.ControlSocket, "keys");
        MetricsScrape scrape = MetricsScrape.Parse(await appliance.ScrapeAsync());
        DateTimeOffset now = DateTimeOffset.UtcNow;
        JsonElement current = Assert.Single(keys.GetProperty("keys").EnumerateArray(), k => k.GetProperty("current").GetBoolean());
        Assert.InRange(scrape["appliance_nts_key_age_seconds"], current.GetProperty("age_seconds").GetDouble() - 5, current.GetProperty("age_seconds").GetDouble() + 5);
        double untilNext = (keys.GetProperty("next_rotation").GetDateTimeOffset() - now).TotalSeconds;
        Assert.InRange(scrape["appliance_nts_key_next_rotation_seconds"], untilNext - 5, untilNext + 5);
    }

    /// <summary>
    /// ServerStatistics serves /metrics and <c>appliance serverstats</c>: both show the same receive
    /// and transmit timestamp counts (chronyc serverstats' "daemon/kernel/hardware RX/TX timestamps")
    /// and the same evictions.
    /// </summary>
    [Fact]
    public async Task Serverstats_ShowsTheSameTimestampAndEvictionCountsAsMetrics()
    {
        await appliance.WaitForQuietAsync();
        MetricsScrape scrape = MetricsScrape.Parse(await appliance.ScrapeAsync());
        JsonElement stats = await ControlTests.JsonVerbAsync(appliance.ControlSocket, "serverstats");

        Assert.True(scrape["appliance_ntp_rate_limit_evictions_total"] > 0, "the flood of distinct clients evicted nobody");
        Assert.Equal(scrape["appliance_ntp_rate_limit_evictions_total"], stats.GetProperty("rate_limit_evictions").GetInt64());
        foreach ((string json, string metric) in (ReadOnlySpan<(string, string)>)[
            ("timestamp_sources", "appliance_ntp_receive_timestamps_total"),
            ("transmit_timestamp_sources", "appliance_ntp_transmit_timestamps_total")])
        {
            foreach (JsonProperty source in stats.GetProperty(json).EnumerateObject())
            {
                Assert.Equal(scrape[$"{metric}{{source=\"{source.Name}\"}}"], source.Value.GetInt64());
            }
        }
        // Every time response carried a transmit timestamp: the daemon's reading, but for the
        // interleaved client's third response, which carried the kernel's stamp of its second.
        long answered = stats.GetProperty("answered").GetInt64();
        Assert.True(answered > MonitoredAppliance.TableClients, $"answered {answered}");
        JsonElement transmit = stats.GetProperty("transmit_timestamp_sources");
        Assert.Equal(1, transmit.GetProperty("kernel_software").GetInt64());
        Assert.Equal(answered - 1, transmit.GetProperty("user_space").GetInt64());
        Assert.Equal(0, transmit.GetProperty("hardware").GetInt64());
        Assert.Equal(2, scrape["appliance_ntp_kernel_transmit_timestamps_total{source=\"kernel_software\",result=\"saved\"}"]); // the second and third responses'
        CommandResult table = await ControlTests.CliAsync(appliance.ControlSocket, "serverstats");
        Assert.Matches($@"(?m)^Transmit timestamps\s*: {answered} \(", table.StdOut);
        Assert.Matches(@"(?m)^Clients evicted\s*: [1-9][0-9]*$", table.StdOut);
    }
}
