using System.Diagnostics;
using System.Text.Json.Nodes;
using Appliance.Testing;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>appliance-image/monitoring/grafana/appliance-dashboard.json: its panels, their targets, Grafana's variables.</summary>
internal static class DashboardFile
{
    /// <summary>What $__rate_interval and $__interval become: Grafana's at a 1 s scrape interval is 4 s; 30 s gives each rate many samples.</summary>
    public const string RateWindow = "30s";

    public const string InstanceFilter = "instance=~\"$instance\"";

    public sealed record Target(string Panel, string RefId, string Expr);

    public static JsonObject Load() =>
        JsonNode.Parse(File.ReadAllText(Repo.Path("appliance-image", "monitoring", "grafana", "appliance-dashboard.json")))!.AsObject();

    /// <summary>Every panel, the ones inside collapsed rows too.</summary>
    public static IEnumerable<JsonObject> Panels(JsonObject dashboard) =>
        dashboard["panels"]!.AsArray().Select(p => p!.AsObject())
            .SelectMany(p => (p["panels"]?.AsArray() ?? []).Select(c => c!.AsObject()).Prepend(p));

    public static List<Target> Targets(JsonObject dashboard) =>
        [.. Panels(dashboard).SelectMany(p => (p["targets"]?.AsArray() ?? []).Select(t => new Target(
            (string)p["title"]!, (string)t!["refId"]!, (string)t["expr"]!)))];

    /// <summary>The query Grafana sends for <paramref name="expr"/> with one instance chosen.</summary>
    public static string Substitute(string expr, string instance) =>
        expr.Replace("$instance", instance, StringComparison.Ordinal)
            .Replace("$__rate_interval", RateWindow, StringComparison.Ordinal)
            .Replace("$__interval", RateWindow, StringComparison.Ordinal)
            .Replace("$__range", RateWindow, StringComparison.Ordinal);
}

/// <summary>The dashboard file on its own: Grafana's shape, the variables, the layout, the instance filter on every selector.</summary>
public sealed class DashboardFileTests
{
    [Fact]
    public void Dashboard_IsGrafanaJson_WithTheDatasourceAndInstanceVariables()
    {
        JsonObject dashboard = DashboardFile.Load();
        Assert.InRange((int)dashboard["schemaVersion"]!, 36, 41);
        JsonArray variables = dashboard["templating"]!["list"]!.AsArray();
        JsonNode datasource = Assert.Single(variables, v => (string)v!["name"]! == "datasource")!;
        Assert.Equal("datasource", (string)datasource["type"]!);
        Assert.Equal("prometheus", (string)datasource["query"]!);
        JsonNode instance = Assert.Single(variables, v => (string)v!["name"]! == "instance")!;
        Assert.Equal("query", (string)instance["type"]!);
        Assert.Equal("label_values(appliance_build_info, instance)", (string)instance["definition"]!);
        Assert.Equal("label_values(appliance_build_info, instance)", (string)instance["query"]!["query"]!);
        Assert.Equal("${datasource}", (string)instance["datasource"]!["uid"]!);

        var ids = new HashSet<int>();
        foreach (JsonObject panel in DashboardFile.Panels(dashboard))
        {
            Assert.True(ids.Add((int)panel["id"]!), $"panel id {panel["id"]} twice");
            if ((string)panel["type"]! == "row")
            {
                continue;
            }
            Assert.Equal("${datasource}", (string)panel["datasource"]!["uid"]!);
            Assert.NotEmpty(panel["targets"]!.AsArray());
            Assert.False(string.IsNullOrWhiteSpace((string?)panel["description"]), $"panel {panel["title"]} has no description");
            foreach (JsonNode? target in panel["targets"]!.AsArray())
            {
                Assert.Equal("${datasource}", (string)target!["datasource"]!["uid"]!);
            }
        }
    }

    [Fact]
    public void Dashboard_PanelsDoNotOverlap()
    {
        var taken = new Dictionary<(int X, int Y), string>();
        foreach (JsonObject panel in DashboardFile.Panels(DashboardFile.Load()))
        {
            JsonNode pos = panel["gridPos"]!;
            (int x, int y, int w, int h) = ((int)pos["x"]!, (int)pos["y"]!, (int)pos["w"]!, (int)pos["h"]!);
            Assert.True(x >= 0 && w > 0 && x + w <= 24 && h > 0, $"{panel["title"]}: gridPos {pos.ToJsonString()}");
            for (int i = x; i < x + w; i++)
            {
                for (int j = y; j < y + h; j++)
                {
                    Assert.True(taken.TryAdd((i, j), (string)panel["title"]!), $"{panel["title"]} overlaps {taken.GetValueOrDefault((i, j))} at ({i}, {j})");
                }
            }
        }
    }

    [Fact]
    public void EveryPanelQuery_FiltersEachSelectorOnTheInstanceVariable()
    {
        List<DashboardFile.Target> targets = DashboardFile.Targets(DashboardFile.Load());
        Assert.True(targets.Count >= 40, $"{targets.Count} targets");
        var unfiltered = targets
            .SelectMany(t => PromQl.Selectors(t.Expr).Where(s => !s.Matchers.Contains(DashboardFile.InstanceFilter, StringComparison.Ordinal))
                .Select(s => $"{t.Panel} {t.RefId}: {s.Metric}{{{s.Matchers}}} in {t.Expr}"))
            .ToList();
        Assert.True(unfiltered.Count == 0, "selectors without " + DashboardFile.InstanceFilter + ":\n" + string.Join("\n", unfiltered));
        Assert.All(targets, t => Assert.NotEmpty(PromQl.Selectors(t.Expr)));
    }

    [Fact]
    public void PromQl_FindsSelectors_NotFunctionsLabelListsOrDurations()
    {
        IReadOnlyList<PromSelector> selectors = PromQl.Selectors(
            "sum by (instance, kind) (rate(a_total{reason=\"x}y\", instance=~\"$i\"}[$__rate_interval])) / on (instance) group_left "
            + "sum by (instance) (rate(b_total[5m] offset 1m)) * 1e3 > bool c and {__name__=~\"d.*\"}");
        Assert.Equal(["a_total", "b_total", "c", null], selectors.Select(s => s.Metric));
        Assert.Equal("reason=\"x}y\", instance=~\"$i\"", selectors[0].Matchers);
        Assert.Equal("", selectors[1].Matchers);
    }

    [Fact]
    public async Task PromtoolCheckConfig_AcceptsTheFixturesConfig()
    {
        string dir = Directory.CreateTempSubdirectory("prometheus-config").FullName;
        try
        {
            string path = Path.Combine(dir, "prometheus.yml");
            await File.WriteAllTextAsync(path, PrometheusServer.Config("127.0.0.1:9975"));
            CommandResult result = await Run.CommandAsync("/usr/bin/promtool", ["check", "config", path], TimeSpan.FromSeconds(30));
            Assert.True(result.ExitCode == 0 && result.Output.Contains("SUCCESS", StringComparison.Ordinal), result.ToString());
            Assert.DoesNotContain("WARNING", result.Output, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

}

/// <summary>
/// appliance-image/monitoring/grafana/appliance-dashboard.json against a real Prometheus scraping a
/// live appliance (every part switched on, traffic flowing): every panel query, with Grafana's
/// variables filled in, returns data and reads only metrics the appliance exposes. Grafana itself
/// is not in Debian; what it would send is what is run here.
/// </summary>
[Collection(RealPeers.Name)]
public sealed class DashboardTests(MonitoredAppliance appliance) : IClassFixture<MonitoredAppliance>
{
    /// <summary>
    /// The proof: Prometheus scrapes the appliance every second; once each family has a few samples,
    /// every panel query goes through /api/v1/query as Grafana would send it (variables filled in) and
    /// must return at least one series, and every metric it names must be in the appliance's exposition.
    /// </summary>
    [Fact]
    public async Task EveryPanelQuery_ReturnsDataFromARealPrometheus_AndReadsOnlyExposedMetrics()
    {
        List<DashboardFile.Target> targets = DashboardFile.Targets(DashboardFile.Load());
        appliance.StartBackgroundTraffic();
        await using PrometheusServer prometheus = await PrometheusServer.StartAsync(appliance.Target);
        string instance = appliance.Target;

        // The instance variable: label_values(appliance_build_info, instance) offers the appliance.
        IReadOnlyList<PromSample> build = await prometheus.WaitForAsync("appliance_build_info", TimeSpan.FromSeconds(30));
        Assert.Contains(instance, build.Select(s => s.Labels.GetValueOrDefault("instance")));
        // Enough samples that every rate has several in its window (the first lands ~6 s after start).
        await prometheus.WaitForAsync($"count_over_time(appliance_ntp_requests_total{{instance=\"{instance}\"}}[{DashboardFile.RateWindow}]) >= 5", TimeSpan.FromSeconds(30));

        IReadOnlyDictionary<string, MetricFamily> exposed = Exposition.Parse(await appliance.ScrapeAsync());
        var failures = new List<string>();
        var results = new Dictionary<(string Panel, string RefId), IReadOnlyList<PromSample>>();
        foreach (DashboardFile.Target target in targets)
        {
            string query = DashboardFile.Substitute(target.Expr, instance);
            failures.AddRange(PromQl.Metrics(target.Expr).Where(m => !exposed.ContainsKey(m))
                .Select(m => $"{target.Panel} {target.RefId}: {m} is not exposed by the appliance"));
            try
            {
                IReadOnlyList<PromSample> result = await prometheus.QueryAsync(query);
                results[(target.Panel, target.RefId)] = result;
                if (result.Count == 0)
                {
                    failures.Add($"{target.Panel} {target.RefId}: no data for {query}");
                }
            }
            catch (InvalidOperationException e)
            {
                failures.Add($"{target.Panel} {target.RefId}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {targets.Count} panel queries failed:\n" + string.Join("\n", failures));

        // Not only data, the right data: panels whose values this appliance and its traffic fix.
        (string Panel, string RefId, Func<PromSample, bool> Holds, string What)[] checks =
        [
            ("Synchronised", "A", s => s.Value == 1, "1 (local stratum 3 at least)"),
            ("Requests per second", "A", s => s.Value > 2, "> 2/s (the background clients send about 10/s each)"),
            ("Clients tracked", "B", s => s.Value == MonitoredAppliance.TableClients, $"the table's {MonitoredAppliance.TableClients}"),
            ("Rate-limited share", "A", s => s.Value is > 0.2 and < 0.8, "about half dropped (one client far over its rate, one within)"),
            ("Timestamps by source", "B", s => s.Labels["source"] == "user_space" ? s.Value > 0 : s.Labels["source"] == "kernel_software" && s.Value < 1,
                "transmit timestamps from user_space at the basic clients' rate, kernel_software once (one interleaved client's third response)"),
            ("Certificate expires in", "A", s => s.Value > 1, "days of the test certificate's life"),
            ("Build", "A", s => s.Labels.ContainsKey("version") && s.Labels.ContainsKey("commit") && s.Value > 1.7e12, "version, commit, start time in ms"),
        ];
        foreach ((string panel, string refId, Func<PromSample, bool> holds, string what) in checks)
        {
            IReadOnlyList<PromSample> result = results[(panel, refId)];
            Assert.True(result.All(holds), $"{panel} {refId}: expected {what}, got\n{string.Join("\n", result)}");
        }
    }
}
