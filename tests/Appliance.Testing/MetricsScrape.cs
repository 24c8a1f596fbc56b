using System.Globalization;

namespace Appliance.Testing;

/// <summary>A Prometheus text-format scrape, as name{labels} → value.</summary>
public sealed class MetricsScrape(IReadOnlyDictionary<string, double> samples)
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public IReadOnlyDictionary<string, double> Samples { get; } = samples;

    public static async Task<MetricsScrape> FetchAsync(string url)
    {
        string text = await s_http.GetStringAsync(new Uri(url));
        return Parse(text);
    }

    public static MetricsScrape Parse(string text)
    {
        var samples = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            int space = line.LastIndexOf(' ');
            samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
        }
        return new MetricsScrape(samples);
    }

    /// <summary>The value of a sample, or 0 when the series has not appeared (a counter never incremented).</summary>
    public double this[string series] => Samples.GetValueOrDefault(series);
}
