using System.Text.RegularExpressions;

namespace Appliance.Testing;

/// <summary>A label matcher of a selector: <c>metric{label op "value"}</c>.</summary>
public sealed record LabelMatcher(string Metric, string Label, string Operator, string Value)
{
    public bool IsRegex => Operator is "=~" or "!~";
}

/// <summary>A vector selector in a PromQL expression: the metric name (null for <c>{__name__=...}</c>) and its matchers' text.</summary>
public sealed record PromSelector(string? Metric, string Matchers);

/// <summary>
/// Just enough of PromQL's lexer to find the vector selectors of an expression: the metric names a
/// dashboard or rule reads, and the label matchers on each. Skips string literals, range and
/// subquery brackets, numbers, functions and aggregations (an identifier followed by "("), the label
/// lists of by/without/on/ignoring/group_left/group_right, and the binary keywords.
/// </summary>
public static partial class PromQl
{
    private static readonly HashSet<string> s_labelListKeywords =
        new(["by", "without", "on", "ignoring", "group_left", "group_right"], StringComparer.Ordinal);

    /// <summary>Binary keywords, and the aggregations, which may be followed by by/without before their "(".</summary>
    private static readonly HashSet<string> s_keywords = new(
    [
        "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", .. s_labelListKeywords,
        "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    ], StringComparer.OrdinalIgnoreCase);

    public static IReadOnlyList<PromSelector> Selectors(string expr)
    {
        ArgumentNullException.ThrowIfNull(expr);
        var selectors = new List<PromSelector>();
        int i = 0;
        while (i < expr.Length)
        {
            char c = expr[i];
            if (c == '"' || c == '\'' || c == '`')
            {
                i = SkipString(expr, i);
            }
            else if (c == '[')
            {
                i = expr.IndexOf(']', i) + 1;
            }
            else if (c == '{')
            {
                int end = SkipBraces(expr, i);
                selectors.Add(new PromSelector(null, expr[(i + 1)..(end - 1)]));
                i = end;
            }
            else if (char.IsAsciiDigit(c) || (c == '.' && i + 1 < expr.Length && char.IsAsciiDigit(expr[i + 1])))
            {
                while (i < expr.Length && (char.IsAsciiLetterOrDigit(expr[i]) || expr[i] == '.'))
                {
                    i++;
                }
            }
            else if (char.IsAsciiLetter(c) || c == '_' || c == ':')
            {
                int start = i;
                while (i < expr.Length && (char.IsAsciiLetterOrDigit(expr[i]) || expr[i] == '_' || expr[i] == ':'))
                {
                    i++;
                }
                string word = expr[start..i];
                int next = SkipSpace(expr, i);
                bool call = next < expr.Length && expr[next] == '(';
                if (s_labelListKeywords.Contains(word) && call)
                {
                    i = expr.IndexOf(')', next) + 1; // a label list, not an expression
                }
                else if (call || s_keywords.Contains(word))
                {
                    // a function, an aggregation or a keyword: what follows is parsed on its own
                }
                else if (next < expr.Length && expr[next] == '{')
                {
                    int end = SkipBraces(expr, next);
                    selectors.Add(new PromSelector(word, expr[(next + 1)..(end - 1)]));
                    i = end;
                }
                else
                {
                    selectors.Add(new PromSelector(word, ""));
                }
            }
            else
            {
                i++;
            }
        }
        return selectors;
    }

    /// <summary>The metric names an expression reads.</summary>
    public static IEnumerable<string> Metrics(string expr) => Selectors(expr).Select(s => s.Metric).OfType<string>().Distinct(StringComparer.Ordinal);

    /// <summary>The label matchers of the named selectors of an expression.</summary>
    public static IReadOnlyList<LabelMatcher> Matchers(string expr) =>
    [
        .. Selectors(expr).Where(s => s.Metric is not null).SelectMany(s => MatcherPattern().Matches(s.Matchers)
            .Select(m => new LabelMatcher(s.Metric!, m.Groups["label"].Value, m.Groups["op"].Value, m.Groups["value"].Value))),
    ];

    [GeneratedRegex("(?<label>[a-zA-Z_]\\w*)\\s*(?<op>=~|!~|!=|=)\\s*\"(?<value>(?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex MatcherPattern();

    private static int SkipSpace(string text, int i)
    {
        while (i < text.Length && char.IsWhiteSpace(text[i]))
        {
            i++;
        }
        return i;
    }

    private static int SkipString(string text, int i)
    {
        char quote = text[i++];
        while (i < text.Length && text[i] != quote)
        {
            i += text[i] == '\\' && quote != '`' ? 2 : 1;
        }
        return i + 1;
    }

    /// <summary>From a '{' to just past its '}', stepping over quoted label values.</summary>
    private static int SkipBraces(string text, int i)
    {
        for (i++; i < text.Length && text[i] != '}';)
        {
            i = text[i] is '"' or '\'' or '`' ? SkipString(text, i) : i + 1;
        }
        return i + 1;
    }
}
