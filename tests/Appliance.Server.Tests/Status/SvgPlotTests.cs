using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Appliance.Discipline;
using Appliance.Server.Status;
using static Appliance.Server.Tests.Status.StatusTestData;

namespace Appliance.Server.Tests.Status;

public partial class SvgPlotTests
{
    private static string Plot(double[] x, params PlotSeries[] series)
    {
        var html = new StringBuilder();
        SvgPlot.Write(html, "p", "title", x, series);
        return html.ToString();
    }

    /// <summary>The figure parsed as XML: proves the markup is well-formed (every escape closed, every element ended).</summary>
    private static XElement Parse(string figure) => XElement.Parse(figure.Replace("&#39;", "&apos;", StringComparison.Ordinal));

    private static readonly XNamespace s_svg = "http://www.w3.org/2000/svg";

    [GeneratedRegex(@"[ML](-?[0-9.]+) (-?[0-9.]+)")]
    private static partial Regex PathPoint();

    [Fact]
    public void Write_NoPoints_SaysNoDataYetAndDrawsNoLine()
    {
        string figure = Plot([], new PlotSeries("offset", []));

        XElement svg = Parse(figure).Element(s_svg + "svg")!;
        Assert.Equal("0", svg.Attribute("data-points")!.Value);
        Assert.Contains("no data yet", figure, StringComparison.Ordinal);
        Assert.Empty(svg.Elements(s_svg + "path"));
        Assert.Empty(svg.Elements(s_svg + "circle"));
    }

    [Fact]
    public void Write_OnePoint_DrawsADotInsideThePlot()
    {
        XElement svg = Parse(Plot([0], new PlotSeries("offset", [5e-6]))).Element(s_svg + "svg")!;

        Assert.Equal("1", svg.Attribute("data-points")!.Value);
        Assert.Empty(svg.Elements(s_svg + "path"));
        XElement dot = Assert.Single(svg.Elements(s_svg + "circle"));
        double cy = double.Parse(dot.Attribute("cy")!.Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(cy, 10, SvgPlot.Height - 24);
        Assert.Equal(SvgPlot.Width - 8, double.Parse(dot.Attribute("cx")!.Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Write_Gap_BreaksTheLineIntoTwoRuns()
    {
        XElement svg = Parse(Plot([-40, -30, -20, -10, 0], new PlotSeries("j", [1, 2, double.NaN, 3, 4]))).Element(s_svg + "svg")!;

        string d = Assert.Single(svg.Elements(s_svg + "path")).Attribute("d")!.Value;
        Assert.Equal(2, d.Count(c => c == 'M'));
        Assert.Equal(2, d.Count(c => c == 'L'));
        Assert.Equal("4", svg.Attribute("data-points")!.Value);
    }

    [Fact]
    public void Write_Logarithmic_SpansDecadesAndTreatsNonPositiveAsGaps()
    {
        var html = new StringBuilder();
        SvgPlot.Write(html, "p", "t", [-20, -10, 0], [new PlotSeries("j", [1e-6, 0, 1e-3])], logarithmic: true);

        XElement svg = Parse(html.ToString()).Element(s_svg + "svg")!;
        Assert.Equal("2", svg.Attribute("data-points")!.Value);
        string[] labels = [.. svg.Elements(s_svg + "text").Select(t => t.Value)];
        Assert.Contains("1 µs", labels);
        Assert.Contains("31.623 µs", labels); // the middle of 1 µs and 1 ms on a log axis
        Assert.Contains("1 ms", labels);
        Assert.Equal(2, svg.Elements(s_svg + "circle").Count()); // the zero between them broke the line
    }

    [Fact]
    public void Write_SeriesName_IsEscapedInTheLegend()
    {
        const string name = "<script>alert('x')</script>&\"";
        string figure = Plot([0, 10], new PlotSeries(name, [1, 2]));

        Assert.DoesNotContain("<script", figure, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;", figure, StringComparison.Ordinal);
        XElement legend = Parse(figure).Element("ul")!.Element("li")!;
        Assert.Equal(name, legend.Attribute("data-series")!.Value);
        Assert.Equal(name, legend.Value);
    }

    [Fact]
    public void Write_FullRingThatWrapped_PlotsEveryPointInsideTheFrameInTimeOrder()
    {
        var history = new StatusHistory(); // 360 points, 10 s apart
        const long second = 1_000_000_000;
        for (int k = 0; k < 500; k++)
        {
            history.Record(k * 10 * second, ClockWith(Math.Sin(k / 10.0) * 1e-5, 1e-6, ClockCoreStatus.Synchronised, Snapshot("a", 1e-6 * (k % 7))));
        }
        HistoryView view = history.Read(499 * 10 * second);
        var html = new StringBuilder();
        SvgPlot.Write(html, "p", "t", view.SecondsAgo, [new PlotSeries("offset", view.Offset, view.Offset, view.Offset)]);

        XElement svg = Parse(html.ToString()).Element(s_svg + "svg")!;
        Assert.Equal("360", svg.Attribute("data-points")!.Value);
        double[] xs = [.. PathPoint().Matches(Assert.Single(svg.Elements(s_svg + "path")).Attribute("d")!.Value)
            .Select(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.Equal(360, xs.Length);
        Assert.All(xs, x => Assert.InRange(x, 64, SvgPlot.Width - 8));
        Assert.Equal(xs.Order(), xs); // oldest left, newest right: the wrap is not visible
        Assert.Equal(SvgPlot.Width - 8, xs[^1]);
    }
}
