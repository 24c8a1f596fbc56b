using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Appliance.LoadTest;

/// <summary>The results of a whole run: every step, and the highest rate each target held.</summary>
internal sealed record RunReport(string Mode, double LossThresholdPercent, IReadOnlyList<StepResult> Steps)
{
    public IEnumerable<string> Targets => Steps.Select(s => s.Target).Distinct();

    /// <summary>The highest target rate at which the step held (loss under the threshold, nothing invalid).</summary>
    public double? MaxHeldRate(string target) =>
        Steps.Where(s => s.Target == target && s.Held(LossThresholdPercent)).Select(s => (double?)s.TargetRate).Max();
}

/// <summary>Tables for people, JSON for machines, SVG for slides.</summary>
internal static class Report
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Json(RunReport report) => JsonSerializer.Serialize(new
    {
        report.Mode,
        report.LossThresholdPercent,
        MaxHeldRate = report.Targets.ToDictionary(t => t, report.MaxHeldRate),
        report.Steps,
    }, s_json);

    public static string Table(RunReport report)
    {
        var sb = new StringBuilder();
        bool cpu = report.Steps.Any(s => s.ServerCpuMicrosPerResponse is not null);
        string header = "| target | proto | rate/s | sent | valid/s | loss % | invalid % | KoD | delay p50 µs | p99 | p99.9 | offset p50 µs | abs offset p99 µs | T3−T2 p50 µs | p90 | p99 |"
            + (cpu ? " server CPU µs/resp | server RSS MiB |" : "");
        sb.AppendLine(header);
        sb.AppendLine(string.Concat(Enumerable.Repeat("| --- ", header.Count(c => c == '|') - 1)) + "|");
        foreach (StepResult s in report.Steps)
        {
            string flag = s.GeneratorLimited ? " (generator-limited)" : "";
            sb.Append(Inv($"| {s.Target} | {s.Protocol} | {s.TargetRate:0}{flag} | {s.Sent} | {s.ValidRate:0} | {s.LossPercent:0.000} | {s.InvalidPercent:0.000} | {s.Kod} | "));
            sb.Append(Inv($"{s.DelayP50Micros:0.0} | {s.DelayP99Micros:0.0} | {s.DelayP999Micros:0.0} | {s.OffsetP50Micros:0.0} | {s.OffsetP99Micros:0.0} | {s.ProcessingP50Micros:0.0} | {s.ProcessingP90Micros:0.0} | {s.ProcessingP99Micros:0.0} |"));
            if (cpu)
            {
                sb.Append(Inv($" {s.ServerCpuMicrosPerResponse:0.00} | {s.ServerPeakRssMiB:0.0} |"));
            }
            sb.AppendLine();
        }
        if (report.Steps.Any(s => s.Fresh is not null))
        {
            sb.AppendLine();
            foreach (StepResult s in report.Steps.Where(s => s.Fresh is not null))
            {
                sb.AppendLine(Inv($"- {s.Target} at {s.TargetRate:0}/s: fresh {s.FreshRate:0}/s ({s.Fresh} fresh, {s.Stale} stale); response time p50 {s.ResponseTimeP50Micros:0} µs, p99 {s.ResponseTimeP99Micros:0} µs"));
            }
        }
        if (report.Steps.Any(s => s.Legit is not null))
        {
            sb.AppendLine();
            foreach (StepResult s in report.Steps.Where(s => s.Legit is not null))
            {
                LegitResult l = s.Legit!;
                sb.AppendLine(Inv($"- {s.Target} at {s.TargetRate:0}/s: legitimate client(s) {l.Address} (× {l.Clients}) answered {l.Answered} of {l.Polls} polls ({l.SharePercent:0.00} %), KoD {l.Kod}, delay max {l.DelayMaxMicros:0} µs; the load's answered share {100 - s.LossPercent:0.00} %"));
            }
        }
        if (report.Steps.Any(s => s.InvalidReasons.Count > 0 || s.KodCodes.Count > 0 || s.Extra.Count > 0))
        {
            sb.AppendLine();
            foreach (StepResult s in report.Steps.Where(s => s.InvalidReasons.Count > 0 || s.KodCodes.Count > 0 || s.Extra.Count > 0))
            {
                sb.AppendLine(Inv($"- {s.Target} at {s.TargetRate:0}/s: invalid {Pairs(s.InvalidReasons)}; KoD {Pairs(s.KodCodes)}{(s.Extra.Count > 0 ? "; " + Pairs(s.Extra) : "")}"));
            }
        }
        return sb.ToString();
    }

    /// <summary>Per rate step, the two targets' valid rates side by side with their ratio (--vs).</summary>
    public static string Comparison(RunReport report, string a, string b)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Inv($"| rate/s | {a} valid/s | {a} loss % | {b} valid/s | {b} loss % | ratio |"));
        sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (IGrouping<double, StepResult> step in report.Steps.GroupBy(s => s.TargetRate))
        {
            StepResult? x = step.FirstOrDefault(s => s.Target == a);
            StepResult? y = step.FirstOrDefault(s => s.Target == b);
            if (x is null || y is null)
            {
                continue;
            }
            string ratio = y.ValidRate > 0 ? Inv($"{x.ValidRate / y.ValidRate:0.00}×") : "∞";
            sb.AppendLine(Inv($"| {step.Key:0} | {x.ValidRate:0} | {x.LossPercent:0.000} | {y.ValidRate:0} | {y.LossPercent:0.000} | {ratio} |"));
        }
        double? ma = report.MaxHeldRate(a), mb = report.MaxHeldRate(b);
        sb.AppendLine();
        sb.AppendLine(Inv($"Highest rate held (loss ≤ {report.LossThresholdPercent}%): {a} {Rate(ma)}, {b} {Rate(mb)}; ratio {(ma is > 0 && mb is > 0 ? Inv($"{ma / mb:0.00}×") : "n/a")}."));
        return sb.ToString();
    }

    public static string Summary(RunReport report) => string.Join("\n", report.Targets.Select(t =>
        Inv($"{t}: highest rate held with loss ≤ {report.LossThresholdPercent}%: {Rate(report.MaxHeldRate(t))}")));

    private static string Rate(double? rate) => rate is null ? "none" : Inv($"{rate:0}/s");

    private static string Pairs(Dictionary<string, long> pairs) =>
        pairs.Count == 0 ? "none" : string.Join(", ", pairs.Select(p => $"{p.Key}={p.Value}"));

    /// <summary>Rate against loss and against p99 delay, one line per target.</summary>
    public static string Svg(RunReport report)
    {
        const int width = 900, height = 420, left = 70, right = 70, top = 40, bottom = 60;
        string[] colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
        double maxRate = Math.Max(1, report.Steps.Max(s => s.TargetRate));
        double maxLoss = Math.Max(1, report.Steps.Max(s => s.LossPercent));
        double maxDelay = Math.Max(1, report.Steps.Select(s => double.IsNaN(s.DelayP99Micros) ? 0 : s.DelayP99Micros).Max());
        double X(double rate) => left + ((width - left - right) * rate / maxRate);
        double YLoss(double loss) => height - bottom - ((height - top - bottom) * Math.Min(loss, maxLoss) / maxLoss);
        double YDelay(double d) => height - bottom - ((height - top - bottom) * Math.Min(d, maxDelay) / maxDelay);
        var sb = new StringBuilder();
        sb.AppendLine(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"));
        sb.AppendLine(Inv($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"));
        sb.AppendLine(Inv($"<text x=\"{width / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Loss (solid) and p99 delay (dashed) against offered rate</text>"));
        sb.AppendLine(Inv($"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>"));
        sb.AppendLine(Inv($"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"black\"/>"));
        sb.AppendLine(Inv($"<line x1=\"{width - right}\" y1=\"{top}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>"));
        for (int i = 0; i <= 5; i++)
        {
            double r = maxRate * i / 5;
            sb.AppendLine(Inv($"<text x=\"{X(r)}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\">{r:0}</text>"));
            sb.AppendLine(Inv($"<text x=\"{left - 6}\" y=\"{YLoss(maxLoss * i / 5) + 4}\" text-anchor=\"end\">{maxLoss * i / 5:0.##}%</text>"));
            sb.AppendLine(Inv($"<text x=\"{width - right + 6}\" y=\"{YDelay(maxDelay * i / 5) + 4}\">{maxDelay * i / 5:0}µs</text>"));
        }
        sb.AppendLine(Inv($"<text x=\"{width / 2}\" y=\"{height - 15}\" text-anchor=\"middle\">offered rate (requests/s)</text>"));
        int k = 0;
        foreach (string target in report.Targets)
        {
            string colour = colours[k % colours.Length];
            StepResult[] steps = report.Steps.Where(s => s.Target == target).OrderBy(s => s.TargetRate).ToArray();
            string loss = string.Join(" ", steps.Select(s => Inv($"{X(s.TargetRate):0.0},{YLoss(s.LossPercent):0.0}")));
            string delay = string.Join(" ", steps.Where(s => !double.IsNaN(s.DelayP99Micros)).Select(s => Inv($"{X(s.TargetRate):0.0},{YDelay(s.DelayP99Micros):0.0}")));
            sb.AppendLine($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{loss}\"/>");
            sb.AppendLine($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"6,4\" points=\"{delay}\"/>");
            sb.AppendLine(Inv($"<text x=\"{left + 10}\" y=\"{top + 16 + (16 * k)}\" fill=\"{colour}\">{System.Security.SecurityElement.Escape(target)}</text>"));
            k++;
        }
        sb.AppendLine("</svg>");
        return sb.ToString();
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
