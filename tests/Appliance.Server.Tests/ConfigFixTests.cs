using System.Text.RegularExpressions;
using Appliance.Server.Configuration;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>The advice in errors: every YAML a fix shows is valid, and an error is reported once, at its root.</summary>
public partial class ConfigFixTests
{
    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Backticked();

    /// <summary>Every fix text there is, with the path its examples are written at.</summary>
    private static IEnumerable<(string Source, string Context, string Fix)> Fixes() =>
        ConfigKeys.All.Select(k => ($"{k.Path} (fix)", k.Path, k.Fix))
            .Concat(ConfigKeys.All.Where(k => k.IfMissing is not null).Select(k => ($"{k.Path} (if missing)", k.Path, k.IfMissing!)))
            .Concat(ConfigRules.All.Select(r => ($"rule at '{r.Context}'", r.Context, r.Fix)));

    public static TheoryData<string, string, string> FixExamples()
    {
        var data = new TheoryData<string, string, string>();
        foreach ((string source, string context, string fix) in Fixes())
        {
            foreach (Match match in Backticked().Matches(fix))
            {
                data.Add(source, context, match.Groups[1].Value);
            }
        }
        return data;
    }

    [Fact]
    public void FixExamples_AreFound_OneForEveryKeyAtLeast()
    {
        // The theory below proves nothing if the extraction finds nothing.
        Assert.True(FixExamples().Count >= ConfigKeys.All.Count, $"{FixExamples().Count} examples");
        Assert.All(ConfigKeys.All, k => Assert.Matches(Backticked(), k.Fix));
    }

    [Theory]
    [MemberData(nameof(FixExamples))]
    public void FixExample_Validates_AsAFragmentOfAConfiguration(string source, string context, string yaml)
    {
        YamlMappingNode tree = ConfigFragment.At(context, yaml);
        string text = ConfigFragment.Render(tree);
        ConfigResult result = ConfigLoader.Bind(text);
        Assert.True(result.IsValid, $"{source}: `{yaml}` as\n{text}\n{string.Join("\n", result.Errors)}");
    }

    [Fact]
    public void NoTimeSource_FixShowsTheSourceFormValidateAccepts()
    {
        // The fix once suggested sources: [{ address: "ntp.example.net" }], which validate rejects.
        ConfigError error = Assert.Single(ConfigLoader.Parse("clock: { mode: software }\n").Errors);
        Assert.StartsWith("no time source", error.Message, StringComparison.Ordinal);
        string[] examples = Backticked().Matches(error.Fix).Select(m => m.Groups[1].Value).ToArray();
        Assert.Contains(examples, e => e.StartsWith("sources:", StringComparison.Ordinal));
        foreach (string example in examples)
        {
            // Each is a whole configuration on its own: it gives the time source that was missing.
            ConfigResult result = ConfigLoader.Parse(example + "\n");
            Assert.True(result.IsValid, $"{example}: {string.Join("\n", result.Errors)}");
        }
    }

    [Theory]
    [InlineData("sources: [ntp: { adress: \"ntp.example.net\" }]", 1, 18, "unknown key 'sources[].ntp.adress'", "did you mean 'address'")]
    [InlineData("sources:\n  - ntp: { address: \"ntp.example.net\", minpol: 4 }", 2, 40, "unknown key 'sources[].ntp.minpol'", "did you mean 'minpoll'")]
    [InlineData("sources: [{ address: \"ntp.example.net\" }]", 1, 13, "unknown key 'sources[].address'", "`- ntp: { address: \"ntp.example.net\" }`")]
    [InlineData("sources: [nttp: \"ntp.example.net\"]", 1, 11, "unknown key 'sources[].nttp'", "did you mean 'ntp'")]
    [InlineData("sources: [pps: { devise: /dev/pps0 }]", 1, 18, "unknown key 'sources[].pps.devise'", "did you mean 'device'")]
    [InlineData("sources: [ntp: \"ntp.example.net:99999\"]", 1, 16, "is not host[:port]: the port '99999'", "optional port")]
    [InlineData("sources: [ntp: { address: [a, b] }]", 1, 27, "'sources[].ntp.address' must be a single value", "e.g. `address:")]
    [InlineData("source: [ntp: \"ntp.example.net\"]", 1, 1, "unknown key 'source'", "did you mean 'sources'")]
    [InlineData("clock: { locl: {} }", 1, 10, "unknown key 'clock.locl'", "did you mean 'local'")]
    [InlineData("clock: { local: 10 }", 1, 17, "'clock.local' must be a mapping", "e.g. `local: { stratum: 10 }`")]
    [InlineData("ntp: { require-nts: true }\nnts-kee: {}\nclock: { local: {} }", 2, 1, "unknown key 'nts-kee'", "did you mean 'nts-ke'")]
    [InlineData("nts-ke: { certficate: /etc/hosts, private-key: /etc/hosts }\nclock: { local: {} }", 1, 11, "unknown key 'nts-ke.certficate'", "did you mean 'certificate'")]
    [InlineData("nts-ke: on\nclock: { local: {} }", 1, 9, "'nts-ke' must be a mapping", "e.g. `nts-ke: {")]
    public void WrongEntry_GivesExactlyTheRootError_NotItsEcho(string yaml, int line, int column, string message, string fix)
    {
        // An entry in error once also gave "no time source" (and a missing key its misspelling had):
        // echoes of the one mistake, which sent the reader to the wrong place.
        ConfigResult result = ConfigLoader.Parse(yaml + "\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Contains(fix, error.Fix, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
    }

    [Theory]
    [InlineData("sources: [ntp: { nts: true }]", "'sources[].ntp' has no address")]
    [InlineData("sources: [ntp: { host: \"ntp.example.net\" }]", "'sources[].ntp' has no address")]
    [InlineData("sources: [{}]", "a source must name exactly one kind")]
    [InlineData("sources: [{ ntp: a.example, gpsd: b.example }]", "a source must name exactly one kind")]
    public void MissingKey_NotAMisspelling_IsReportedToo(string yaml, string message)
    {
        // The other side of the echo rule: a key missing for itself is an error of its own.
        ConfigResult result = ConfigLoader.Parse(yaml + "\n");
        Assert.Contains(result.Errors, e => e.Message == message);
        Assert.DoesNotContain(result.Errors, e => e.Message.StartsWith("no time source", StringComparison.Ordinal));
    }

    public static TheoryData<int, string> DocumentationExamples()
    {
        string docs = File.ReadAllText(Testing.Repo.Path("docs", "configuration.md"));
        var data = new TheoryData<int, string>();
        foreach (Match match in Regex.Matches(docs, "```yaml\n(.*?)```", RegexOptions.Singleline))
        {
            data.Add(docs[..match.Index].Count(c => c == '\n') + 1, match.Groups[1].Value);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(DocumentationExamples))]
    public void DocumentationExample_Validates(int line, string yaml)
    {
        YamlMappingNode tree = ConfigFragment.Complete((YamlMappingNode)ConfigFragment.Parse(yaml));
        ConfigResult result = ConfigFragment.Bind(tree);
        Assert.True(result.IsValid, $"docs/configuration.md:{line}:\n{ConfigFragment.Render(tree)}\n{string.Join("\n", result.Errors)}");
    }
}
