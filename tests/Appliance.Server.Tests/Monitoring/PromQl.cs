using System.Text.RegularExpressions;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>A label matcher of a selector: <c>metric{label op "value"}</c>.</summary>
internal sealed record LabelMatcher(string Metric, string Label, string Operator, string Value)
{
    public bool IsRegex => Operator is "=~" or "!~";
}

/// <summary>
/// Just enough PromQL to read what a rule depends on: the metric names its expression selects and the
/// label matchers of its selectors. Not a parser: it removes what cannot be a metric name (strings,
/// label matchers, durations, grouping label lists) and takes the identifiers that remain, less
/// functions (followed by a parenthesis) and keywords.
/// </summary>
internal static partial class PromQl
{
    private static readonly HashSet<string> s_keywords = new(StringComparer.Ordinal)
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "inf", "nan",
    };

    public static SortedSet<string> MetricNames(string expression)
    {
        string text = StringLiteral().Replace(expression, "\"\"");
        text = Braces().Replace(text, "");
        text = Brackets().Replace(text, "");
        // Gone with its keyword, so that "sum without (a) (x)" reads as the call "sum (x)".
        text = GroupingList().Replace(text, "");
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (Match match in Identifier().Matches(text))
        {
            bool isCall = text.AsSpan(match.Index + match.Length).TrimStart().StartsWith("(");
            if (!isCall && !s_keywords.Contains(match.Value.ToLowerInvariant()))
            {
                names.Add(match.Value);
            }
        }
        return names;
    }

    public static List<LabelMatcher> Matchers(string expression)
    {
        var matchers = new List<LabelMatcher>();
        foreach (Match selector in Selector().Matches(expression))
        {
            foreach (Match matcher in Matcher().Matches(selector.Groups["body"].Value))
            {
                matchers.Add(new LabelMatcher(selector.Groups["metric"].Value, matcher.Groups["label"].Value,
                    matcher.Groups["op"].Value, matcher.Groups["value"].Value));
            }
        }
        return matchers;
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", RegexOptions.IgnoreCase)]
    private static partial Regex GroupingList();

    /// <summary>An identifier not inside a number (1e6) or a duration (5m).</summary>
    [GeneratedRegex(@"(?<![\w.:])[a-zA-Z_:][\w:]*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"(?<metric>[a-zA-Z_:][\w:]*)\s*\{(?<body>[^}]*)\}")]
    private static partial Regex Selector();

    [GeneratedRegex("(?<label>[a-zA-Z_]\\w*)\\s*(?<op>=~|!~|!=|=)\\s*\"(?<value>(?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex Matcher();
}
