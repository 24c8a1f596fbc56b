using System.Globalization;

namespace Appliance.Server.Configuration;

/// <summary>Durations in configuration files: a number and a unit (ms, s, m, h, d), e.g. "2s", "24h".</summary>
public static class DurationText
{
    public static bool TryParse(string text, out TimeSpan value)
    {
        value = default;
        (string unit, double seconds)[] units = [("us", 1e-6), ("µs", 1e-6), ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)];
        foreach ((string unit, double seconds) in units)
        {
            if (text.EndsWith(unit, StringComparison.Ordinal)
                && !(unit == "s" && (text.EndsWith("ms", StringComparison.Ordinal) || text.EndsWith("us", StringComparison.Ordinal) || text.EndsWith("µs", StringComparison.Ordinal)))
                && double.TryParse(text[..^unit.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double number))
            {
                // Whole ticks, rounded: 20us is 200 ticks, not the 199 a truncated 1.9999e-5 s would give.
                value = TimeSpan.FromTicks((long)Math.Round(number * seconds * TimeSpan.TicksPerSecond));
                return true;
            }
        }
        return false;
    }

    public static string Format(TimeSpan value) => value switch
    {
        { TotalDays: >= 1 } when value.TotalDays == Math.Floor(value.TotalDays) => $"{value.TotalDays}d",
        { TotalHours: >= 1 } when value.TotalHours == Math.Floor(value.TotalHours) => $"{value.TotalHours}h",
        { TotalMinutes: >= 1 } when value.TotalMinutes == Math.Floor(value.TotalMinutes) => $"{value.TotalMinutes}m",
        { TotalSeconds: >= 1 } when value.TotalSeconds == Math.Floor(value.TotalSeconds) => $"{value.TotalSeconds}s",
        { TotalMilliseconds: >= 1 } => $"{value.TotalMilliseconds}ms",
        _ => $"{value.TotalMicroseconds}us",
    };
}
