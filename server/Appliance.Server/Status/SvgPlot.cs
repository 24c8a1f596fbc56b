using System.Globalization;
using System.Text;

namespace Appliance.Server.Status;

/// <summary>One line of a plot: its name (shown in the legend, escaped) and values parallel to the x values; NaN is a gap.</summary>
/// <param name="Lower">With <paramref name="Upper"/>: a band drawn behind the line (e.g. offset ± uncertainty).</param>
public sealed record PlotSeries(string Name, double[] Values, double[]? Lower = null, double[]? Upper = null);

/// <summary>
/// A small time plot drawn on the server as inline SVG: no script, no external assets, so the page
/// works in any browser and under a strict Content-Security-Policy. The x axis is seconds before now
/// (−<c>span</c> to 0), the y axis fits the finite values, scaled to s, ms, µs or ns.
/// </summary>
public static class SvgPlot
{
    public const int Width = 560;
    public const int Height = 180;

    private const int Left = 64;
    private const int Right = 8;
    private const int Top = 10;
    private const int Bottom = 24;

    private static readonly string[] s_colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

    /// <summary>Writes one <c>&lt;figure&gt;</c> holding the SVG and its legend.</summary>
    /// <param name="id">The figure's id (trusted: a constant of the page).</param>
    /// <param name="x">Seconds relative to now (≤ 0), oldest first.</param>
    /// <param name="logarithmic">A log y axis, for values that span decades (jitter); values ≤ 0 are then gaps.</param>
    public static void Write(StringBuilder html, string id, string title, double[] x, IReadOnlyList<PlotSeries> series, double span = 3600,
        bool logarithmic = false)
    {
        ArgumentNullException.ThrowIfNull(html);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(series);
        if (logarithmic)
        {
            // Plotted as log10 of the value: everything below is linear in that, only the labels undo it.
            series = [.. series.Select(s => new PlotSeries(s.Name, Log(s.Values), Log(s.Lower), Log(s.Upper)))];
        }
        (double min, double max, int points) = Range(series);
        html.Append(CultureInfo.InvariantCulture, $"<figure id=\"{id}\" class=\"plot\"><figcaption>{Escape(title)}</figcaption>");
        html.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" data-points=\"{points}\">");
        html.Append(CultureInfo.InvariantCulture,
            $"<rect x=\"{Left}\" y=\"{Top}\" width=\"{Width - Left - Right}\" height=\"{Height - Top - Bottom}\" fill=\"#fff\" stroke=\"#999\"/>");
        XAxis(html, span);
        if (points == 0)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{(Left + Width - Right) / 2}\" y=\"{(Top + Height - Bottom) / 2}\" text-anchor=\"middle\" class=\"empty\">no data yet</text></svg></figure>");
            return;
        }
        if (max - min < Math.Max(Math.Abs(max), 1e-12) * 1e-9)
        {
            // A flat line (or one point): give it room so it sits in the middle (half a decade on a log axis).
            double pad = logarithmic ? 0.5 : Math.Max(Math.Abs(max) * 0.1, 1e-9);
            min -= pad;
            max += pad;
        }
        YAxis(html, min, max, logarithmic);
        for (int s = 0; s < series.Count; s++)
        {
            string colour = s_colours[s % s_colours.Length];
            PlotSeries line = series[s];
            if (line.Lower is { } lower && line.Upper is { } upper)
            {
                Band(html, x, lower, upper, min, max, span, colour);
            }
            Line(html, x, line.Values, min, max, span, colour, s);
        }
        html.Append("</svg><ul class=\"legend\">");
        for (int s = 0; s < series.Count; s++)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<li data-series=\"{Escape(series[s].Name)}\"><span style=\"background:{s_colours[s % s_colours.Length]}\"></span>{Escape(series[s].Name)}</li>");
        }
        html.Append("</ul></figure>");
    }

    /// <summary>
    /// HTML-escapes text for element content and quoted attributes: the five characters that can end
    /// either (&amp; &lt; &gt; &quot; &#39;) and nothing else, so "µs" and "±" stay readable in the page's
    /// source (it is UTF-8). WebUtility.HtmlEncode would also turn every Latin-1 letter into an entity.
    /// </summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.AsSpan().IndexOfAny("&<>\"'") < 0)
        {
            return text;
        }
        var escaped = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            _ = c switch
            {
                '&' => escaped.Append("&amp;"),
                '<' => escaped.Append("&lt;"),
                '>' => escaped.Append("&gt;"),
                '"' => escaped.Append("&quot;"),
                '\'' => escaped.Append("&#39;"),
                _ => escaped.Append(c),
            };
        }
        return escaped.ToString();
    }

    private static (double Min, double Max, int Points) Range(IReadOnlyList<PlotSeries> series)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        int points = 0;
        foreach (PlotSeries line in series)
        {
            foreach (double[]? values in (ReadOnlySpan<double[]?>)[line.Values, line.Lower, line.Upper])
            {
                foreach (double v in values ?? [])
                {
                    if (double.IsFinite(v))
                    {
                        min = Math.Min(min, v);
                        max = Math.Max(max, v);
                    }
                }
            }
            foreach (double v in line.Values)
            {
                points += double.IsFinite(v) ? 1 : 0;
            }
        }
        return (min, max, points);
    }

    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(values))]
    private static double[]? Log(double[]? values) => values?.Select(v => v > 0 ? Math.Log10(v) : double.NaN).ToArray();

    /// <summary>The unit seconds of this size read best in: its scale and symbol.</summary>
    internal static (double Scale, string Unit) Unit(double magnitude) => magnitude switch
    {
        0 or >= 1 => (1, "s"),
        >= 1e-3 => (1e3, "ms"),
        >= 1e-6 => (1e6, "µs"),
        _ => (1e9, "ns"),
    };

    private static double Px(double x, double span) => Left + (x + span) / span * (Width - Left - Right);

    private static double Py(double y, double min, double max) => Top + (max - y) / (max - min) * (Height - Top - Bottom);

    private static void XAxis(StringBuilder html, double span)
    {
        for (int k = 0; k <= 4; k++)
        {
            double at = -span + k * span / 4;
            double px = Px(at, span);
            string label = k == 4 ? "now" : string.Create(CultureInfo.InvariantCulture, $"−{-at / 60:0} min");
            string anchor = k == 4 ? "end" : "middle"; // "now" sits at the right edge: keep it inside the picture
            html.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{px:0.#}\" y1=\"{Top}\" x2=\"{px:0.#}\" y2=\"{Height - Bottom}\" stroke=\"#eee\"/><text x=\"{px:0.#}\" y=\"{Height - 8}\" text-anchor=\"{anchor}\">{label}</text>");
        }
    }

    private static void YAxis(StringBuilder html, double min, double max, bool logarithmic)
    {
        (double scale, string unit) = Unit(Math.Max(Math.Abs(min), Math.Abs(max)));
        for (int k = 0; k <= 2; k++)
        {
            double value = min + k * (max - min) / 2;
            double py = Py(value, min, max);
            html.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{Left}\" y1=\"{py:0.#}\" x2=\"{Width - Right}\" y2=\"{py:0.#}\" stroke=\"#eee\"/><text x=\"{Left - 4}\" y=\"{py + 4:0.#}\" text-anchor=\"end\">{(logarithmic ? StatusPage.Seconds(Math.Pow(10, value)) : string.Create(CultureInfo.InvariantCulture, $"{value * scale:0.###} {unit}"))}</text>");
        }
        if (!logarithmic && min < 0 && max > 0)
        {
            double zero = Py(0, min, max);
            html.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{zero:0.#}\" x2=\"{Width - Right}\" y2=\"{zero:0.#}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>");
        }
    }

    /// <summary>The values as a path, broken at gaps; a point with no finite neighbour becomes a dot (a path of one point draws nothing).</summary>
    private static void Line(StringBuilder html, double[] x, double[] values, double min, double max, double span, string colour, int index)
    {
        var path = new StringBuilder();
        int n = Math.Min(x.Length, values.Length);
        for (int k = 0; k < n; k++)
        {
            if (!double.IsFinite(values[k]))
            {
                continue;
            }
            double px = Px(Math.Max(x[k], -span), span), py = Py(values[k], min, max);
            bool before = k > 0 && double.IsFinite(values[k - 1]);
            bool after = k + 1 < n && double.IsFinite(values[k + 1]);
            if (!before && !after)
            {
                html.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{px:0.#}\" cy=\"{py:0.#}\" r=\"2.5\" fill=\"{colour}\" data-series-index=\"{index}\"/>");
                continue;
            }
            path.Append(CultureInfo.InvariantCulture, $"{(before ? 'L' : 'M')}{px:0.#} {py:0.#} ");
        }
        if (path.Length > 0)
        {
            html.Append(CultureInfo.InvariantCulture, $"<path d=\"{path.ToString().TrimEnd()}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" data-series-index=\"{index}\"/>");
        }
    }

    /// <summary>Each run of finite lower/upper pairs as one filled polygon.</summary>
    private static void Band(StringBuilder html, double[] x, double[] lower, double[] upper, double min, double max, double span, string colour)
    {
        int n = Math.Min(x.Length, Math.Min(lower.Length, upper.Length));
        int k = 0;
        while (k < n)
        {
            if (!double.IsFinite(lower[k]) || !double.IsFinite(upper[k]))
            {
                k++;
                continue;
            }
            int end = k;
            while (end + 1 < n && double.IsFinite(lower[end + 1]) && double.IsFinite(upper[end + 1]))
            {
                end++;
            }
            if (end > k)
            {
                var points = new StringBuilder();
                for (int j = k; j <= end; j++)
                {
                    points.Append(CultureInfo.InvariantCulture, $"{Px(Math.Max(x[j], -span), span):0.#},{Py(upper[j], min, max):0.#} ");
                }
                for (int j = end; j >= k; j--)
                {
                    points.Append(CultureInfo.InvariantCulture, $"{Px(Math.Max(x[j], -span), span):0.#},{Py(lower[j], min, max):0.#} ");
                }
                html.Append(CultureInfo.InvariantCulture, $"<polygon points=\"{points.ToString().TrimEnd()}\" fill=\"{colour}\" fill-opacity=\"0.15\" stroke=\"none\"/>");
            }
            k = end + 1;
        }
    }
}
