using System.ComponentModel;
using System.Text.RegularExpressions;
using Appliance.Protocol;
using Appliance.Server.Hosting;
using Appliance.Testing;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>
/// The alert rules the image ships (appliance-image/monitoring/prometheus): promtool accepts them and
/// passes their unit tests; every alert is tested firing and quiet, carries a severity and the three
/// annotations; and every metric and label value the expressions name is one a running appliance
/// exposes, so a renamed metric cannot leave an alert that never fires.
/// </summary>
public partial class AlertRulesTests
{
    private static readonly string s_rules = Repo.Path("appliance-image", "monitoring", "prometheus", "appliance-alerts.yml");
    private static readonly string s_tests = Repo.Path("appliance-image", "monitoring", "prometheus", "appliance-alerts.test.yml");

    /// <summary>Series Prometheus makes itself for every target, not the appliance's.</summary>
    private static readonly string[] s_prometheusOwn = ["up"];

    private static readonly string[] s_severities = ["page", "ticket"];
    private static readonly string[] s_annotations = ["summary", "description", "runbook"];

    [Fact]
    public async Task PromtoolCheckRules_AcceptsTheRules()
    {
        CommandResult result = await PromtoolAsync("check", "rules", s_rules);
        Assert.True(result.ExitCode == 0 && result.Output.Contains("SUCCESS", StringComparison.Ordinal), result.ToString());
    }

    [Fact]
    public async Task PromtoolTestRules_EveryCasePasses()
    {
        CommandResult result = await PromtoolAsync("test", "rules", s_tests);
        Assert.True(result.ExitCode == 0 && result.Output.Contains("SUCCESS", StringComparison.Ordinal), result.ToString());
    }

    [Fact]
    public void EveryAlert_HasACaseThatFiresIt_AndOneWhereItStaysQuiet()
    {
        IReadOnlyList<AlertRule> alerts = AlertRule.Load(File.ReadAllText(s_rules));
        Assert.NotEmpty(alerts);
        Assert.Empty(CoverageProblems(alerts, AlertCase.Load(File.ReadAllText(s_tests))));
    }

    [Fact]
    public void CoverageCheck_FindsAnAlertWithoutCases()
    {
        AlertRule[] alerts = [.. AlertRule.Load(File.ReadAllText(s_rules)), new AlertRule("ApplianceNew", "vector(1)", new Dictionary<string, string>(), new Dictionary<string, string>())];
        IReadOnlyList<AlertCase> cases = AlertCase.Load(File.ReadAllText(s_tests));
        Assert.Equal(["ApplianceNew: no case fires it", "ApplianceNew: no case where it stays quiet"], CoverageProblems(alerts, cases));
        // Firing cases alone are not enough.
        AlertCase[] firingOnly = [.. cases.Where(c => c.AlertName != "ApplianceUnsynchronised" || c.Fires)];
        Assert.Equal(["ApplianceUnsynchronised: no case where it stays quiet"], CoverageProblems(AlertRule.Load(File.ReadAllText(s_rules)), firingOnly));
    }

    [Fact]
    public void EveryAlert_HasASeverity_ASummary_ADescription_AndAOneLineRunbook()
    {
        IReadOnlyList<AlertRule> alerts = AlertRule.Load(File.ReadAllText(s_rules));
        var problems = new List<string>();
        foreach (AlertRule alert in alerts)
        {
            if (!alert.Labels.TryGetValue("severity", out string? severity) || !s_severities.Contains(severity))
            {
                problems.Add($"{alert.Name}: labels.severity is {severity ?? "missing"}, not page or ticket");
            }
            foreach (string annotation in s_annotations)
            {
                if (!alert.Annotations.TryGetValue(annotation, out string? text) || string.IsNullOrWhiteSpace(text))
                {
                    problems.Add($"{alert.Name}: no annotations.{annotation}");
                }
            }
            if (alert.Annotations.TryGetValue("runbook", out string? runbook) && runbook.Contains('\n', StringComparison.Ordinal))
            {
                problems.Add($"{alert.Name}: the runbook is more than one line");
            }
        }
        problems.AddRange(alerts.GroupBy(a => a.Name).Where(g => g.Count() > 1).Select(g => $"{g.Key}: defined {g.Count()} times"));
        Assert.Empty(problems);
    }

    [Fact]
    public void Readme_ListsEveryAlert_WithItsSeverity()
    {
        string readme = File.ReadAllText(Repo.Path("appliance-image", "monitoring", "README.md"));
        var listed = ReadmeRow().Matches(readme).ToDictionary(m => m.Groups["alert"].Value, m => m.Groups["severity"].Value, StringComparer.Ordinal);
        var rules = AlertRule.Load(File.ReadAllText(s_rules)).ToDictionary(a => a.Name, a => a.Labels.GetValueOrDefault("severity", ""), StringComparer.Ordinal);
        Assert.Equal(rules.OrderBy(p => p.Key, StringComparer.Ordinal), listed.OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    [GeneratedRegex(@"^\| (?<alert>Appliance\w+) \| (?<severity>\w+) \|", RegexOptions.Multiline)]
    private static partial Regex ReadmeRow();

    [Fact]
    public void MetricNames_AreTheSelectedSeries_NotFunctionsLabelsKeywordsOrNumbers()
    {
        const string expression = """
            sum without (kind, reason) (rate(appliance_ntp_drops_total{reason!~"rate_limited|denied"}[10m] offset 5m))
              / ignoring (reason) group_left rate(appliance_ntp_requests_total[1h:5m]) > 1e-3
            and on (instance, job) -appliance_uptime_seconds >= 6 * 3600 or up == bool 0
            """;
        Assert.Equal(["appliance_ntp_drops_total", "appliance_ntp_requests_total", "appliance_uptime_seconds", "up"], PromQl.Metrics(expression).Order(StringComparer.Ordinal));
        Assert.Equal([new LabelMatcher("appliance_ntp_drops_total", "reason", "!~", "rate_limited|denied")], PromQl.Matchers(expression));
    }

    /// <summary>
    /// A live appliance with every family the rules read: an upstream source (our own NTP server on
    /// loopback), NTS-KE with a certificate, and a leap-seconds file. Every metric an expression names
    /// must be declared in its /metrics (a counter never incremented is declared, without a series),
    /// and every label value a matcher names must be one the appliance can write.
    /// </summary>
    [Fact]
    public async Task EveryMetricAndLabelValueTheRulesUse_IsOneARunningApplianceExposes()
    {
        await using TestNtpServer upstream = TestNtpServer.Shifted(0);
        var fixture = new NtsServerFixture(
            extraClock: $", leap-seconds: {Repo.TestData("leap-seconds.list")}",
            extraYaml: $"sources:\n  - ntp: {{ address: \"{upstream.EndPoint}\", minpoll: -4, maxpoll: -4 }}");
        await using ApplianceServer server = await fixture.StartAsync();
        string url = $"http://{server.MetricsEndPoint}/metrics";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string exposition = "";
        await Eventually.TrueAsync(async () =>
        {
            exposition = await http.GetStringAsync(new Uri(url));
            return exposition.Contains("appliance_source_selection{", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(20), () => $"no source series in {url}:\n{exposition}");

        IReadOnlyDictionary<string, MetricFamily> exposed = Exposition.Parse(exposition);
        IReadOnlyList<AlertRule> alerts = AlertRule.Load(File.ReadAllText(s_rules));
        var problems = new List<string>();
        foreach (AlertRule alert in alerts)
        {
            foreach (string name in PromQl.Metrics(alert.Expression))
            {
                if (!Declares(exposed, name) && !s_prometheusOwn.Contains(name))
                {
                    problems.Add($"{alert.Name}: {name} is not in the appliance's /metrics");
                }
            }
            foreach (LabelMatcher matcher in PromQl.Matchers(alert.Expression))
            {
                IReadOnlySet<string> values = LabelValues(exposed, matcher.Metric, matcher.Label);
                problems.AddRange(UnknownValues(matcher, values).Select(v => $"{alert.Name}: {matcher.Metric}{{{matcher.Label}}} is never \"{v}\""));
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems) + $"\n--- {url}\n{exposition}");
    }

    /// <summary>Whether the scrape declares (# TYPE) the series name: a family, or a histogram's or summary's _bucket/_sum/_count.</summary>
    private static bool Declares(IReadOnlyDictionary<string, MetricFamily> exposed, string name) =>
        exposed.ContainsKey(name) || ((string[])["_bucket", "_sum", "_count"]).Any(suffix => name.EndsWith(suffix, StringComparison.Ordinal)
            && exposed.TryGetValue(name[..^suffix.Length], out MetricFamily? family) && family.Type is "histogram" or "summary");

    /// <summary>
    /// The values <paramref name="label"/> of <paramref name="metric"/> can take: those the scrape shows
    /// (state-like gauges list every value), and for counters whose series appear only once
    /// incremented, the name tables they are written from.
    /// </summary>
    private static HashSet<string> LabelValues(IReadOnlyDictionary<string, MetricFamily> exposed, string metric, string label)
    {
        var values = new HashSet<string>(StringComparer.Ordinal);
        if (exposed.TryGetValue(metric, out MetricFamily? family) && family.Labels.TryGetValue(label, out SortedSet<string>? seen))
        {
            values.UnionWith(seen);
        }
        if (metric is "appliance_ntp_drops_total" or "appliance_ntp_responses_total" && label == "reason")
        {
            values.UnionWith(Enum.GetValues<ResponseReason>().Select(OutcomeNames.Reason));
        }
        if (metric == "appliance_ntp_responses_total" && label == "kind")
        {
            values.UnionWith([OutcomeNames.Action(ResponseAction.Respond), OutcomeNames.Action(ResponseAction.KissOfDeath)]);
        }
        return values;
    }

    /// <summary>
    /// Values a matcher names that the label never takes. A regex is read as a list of alternatives
    /// when it is one (a|b|c); any other regex must match at least one known value.
    /// </summary>
    private static IEnumerable<string> UnknownValues(LabelMatcher matcher, IReadOnlySet<string> known)
    {
        if (!matcher.IsRegex)
        {
            return known.Contains(matcher.Value) ? [] : [matcher.Value];
        }
        if (PlainAlternatives().IsMatch(matcher.Value))
        {
            return matcher.Value.Split('|').Where(v => !known.Contains(v));
        }
        var regex = new Regex($"^(?:{matcher.Value})$", RegexOptions.None, TimeSpan.FromSeconds(1));
        return known.Any(regex.IsMatch) ? [] : [matcher.Value];
    }

    [GeneratedRegex(@"^[\w]+(\|[\w]+)*$")]
    private static partial Regex PlainAlternatives();

    private static List<string> CoverageProblems(IEnumerable<AlertRule> alerts, IReadOnlyList<AlertCase> cases)
    {
        var problems = new List<string>();
        foreach (AlertRule alert in alerts)
        {
            if (!cases.Any(c => c.AlertName == alert.Name && c.Fires))
            {
                problems.Add($"{alert.Name}: no case fires it");
            }
            if (!cases.Any(c => c.AlertName == alert.Name && !c.Fires))
            {
                problems.Add($"{alert.Name}: no case where it stays quiet");
            }
        }
        return problems;
    }

    private static async Task<CommandResult> PromtoolAsync(params string[] args)
    {
        try
        {
            return await Run.CommandAsync("promtool", args, TimeSpan.FromSeconds(60));
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException("promtool is missing: run tests/peers/install.sh (Debian package prometheus)", e);
        }
    }
}

/// <summary>One alerting rule of a Prometheus rules file.</summary>
internal sealed record AlertRule(string Name, string Expression, IReadOnlyDictionary<string, string> Labels, IReadOnlyDictionary<string, string> Annotations)
{
    public static IReadOnlyList<AlertRule> Load(string yaml)
    {
        var rules = new List<AlertRule>();
        foreach (YamlMappingNode group in Yaml.Sequence(Yaml.Root(yaml), "groups").Cast<YamlMappingNode>())
        {
            foreach (YamlMappingNode rule in Yaml.Sequence(group, "rules").Cast<YamlMappingNode>())
            {
                if (Yaml.Scalar(rule, "alert") is { } name)
                {
                    rules.Add(new AlertRule(name, Yaml.Scalar(rule, "expr") ?? "", Yaml.Map(rule, "labels"), Yaml.Map(rule, "annotations")));
                }
            }
        }
        return rules;
    }
}

/// <summary>One alert_rule_test of a promtool test file: the alert it evaluates and whether alerts are expected.</summary>
internal sealed record AlertCase(string TestName, string AlertName, string EvalTime, bool Fires)
{
    public static IReadOnlyList<AlertCase> Load(string yaml)
    {
        var cases = new List<AlertCase>();
        foreach (YamlMappingNode test in Yaml.Sequence(Yaml.Root(yaml), "tests").Cast<YamlMappingNode>())
        {
            foreach (YamlMappingNode check in Yaml.Sequence(test, "alert_rule_test").Cast<YamlMappingNode>())
            {
                // A missing exp_alerts is promtool's "expects none", like exp_alerts: [].
                bool fires = Yaml.Sequence(check, "exp_alerts").Children.Count > 0;
                cases.Add(new AlertCase(Yaml.Scalar(test, "name") ?? "", Yaml.Scalar(check, "alertname") ?? "", Yaml.Scalar(check, "eval_time") ?? "", fires));
            }
        }
        return cases;
    }
}

/// <summary>Reads the parts of a YAML document the rule and test files need.</summary>
internal static class Yaml
{
    public static YamlMappingNode Root(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    public static YamlSequenceNode Sequence(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? child) && child is YamlSequenceNode sequence ? sequence : new YamlSequenceNode();

    public static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? child) && child is YamlScalarNode scalar ? scalar.Value : null;

    public static Dictionary<string, string> Map(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? child) && child is YamlMappingNode map
            ? map.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value ?? "", p => (p.Value as YamlScalarNode)?.Value ?? "", StringComparer.Ordinal)
            : new Dictionary<string, string>(StringComparer.Ordinal);
}
