using System.Text;

namespace Appliance.Testing;

/// <summary>One metric family of a scrape: its TYPE, HELP, and every label with the values its series carry.</summary>
public sealed record MetricFamily(string Name, string Type, string Help, IReadOnlyDictionary<string, SortedSet<string>> Labels, int Series);

/// <summary>
/// The Prometheus text format (0.0.4) read by family: what the documentation and dashboard tests
/// compare against. Families come from the # TYPE lines; a sample's family is its name, or, for a
/// histogram or summary, the name without _bucket/_sum/_count.
/// </summary>
public static class Exposition
{
    public static IReadOnlyDictionary<string, MetricFamily> Parse(string text)
    {
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var help = new Dictionary<string, string>(StringComparer.Ordinal);
        var labels = new Dictionary<string, Dictionary<string, SortedSet<string>>>(StringComparer.Ordinal);
        var series = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal) || line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ', 4);
                (line[2] == 'T' ? types : help)[parts[2]] = parts.Length > 3 ? parts[3] : "";
                labels.TryAdd(parts[2], new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal));
                continue;
            }
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            (string name, Dictionary<string, string> pairs) = ParseSample(line);
            string family = FamilyOf(name, types);
            if (!labels.TryGetValue(family, out Dictionary<string, SortedSet<string>>? known))
            {
                throw new FormatException($"sample of a family without a # TYPE line: {line}");
            }
            series[family] = series.GetValueOrDefault(family) + 1;
            foreach ((string label, string value) in pairs)
            {
                if (label == "le" || label == "quantile")
                {
                    continue;
                }
                if (!known.TryGetValue(label, out SortedSet<string>? values))
                {
                    known[label] = values = new SortedSet<string>(StringComparer.Ordinal);
                }
                values.Add(value);
            }
        }
        return types.ToDictionary(t => t.Key, t => new MetricFamily(t.Key, t.Value, help.GetValueOrDefault(t.Key, ""), labels[t.Key], series.GetValueOrDefault(t.Key)),
            StringComparer.Ordinal);
    }

    private static string FamilyOf(string sample, Dictionary<string, string> types)
    {
        if (types.ContainsKey(sample))
        {
            return sample;
        }
        foreach (string suffix in (string[])["_bucket", "_sum", "_count"])
        {
            if (sample.EndsWith(suffix, StringComparison.Ordinal) && types.ContainsKey(sample[..^suffix.Length]))
            {
                return sample[..^suffix.Length];
            }
        }
        return sample;
    }

    /// <summary>name{a="x",b="y\"z"} value [timestamp] → the name and the label pairs (escapes undone).</summary>
    private static (string Name, Dictionary<string, string> Labels) ParseSample(string line)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        int i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }
        string name = line[..i];
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                int equals = line.IndexOf('=', i);
                string label = line[i..equals].Trim(',', ' ');
                i = equals + 2; // past ="
                var value = new StringBuilder();
                for (; line[i] != '"'; i++)
                {
                    if (line[i] == '\\')
                    {
                        i++;
                        value.Append(line[i] == 'n' ? '\n' : line[i]);
                    }
                    else
                    {
                        value.Append(line[i]);
                    }
                }
                pairs[label] = value.ToString();
                i++; // past the closing quote
                if (line[i] == ',')
                {
                    i++;
                }
            }
        }
        return (name, pairs);
    }
}
