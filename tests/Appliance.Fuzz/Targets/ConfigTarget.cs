using System.Text;
using Appliance.Server.Configuration;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The YAML configuration loader, from the text alone (<see cref="ConfigLoader.Bind"/>: no file is
/// opened). The input is the file's octets as UTF-8, at most 4 KiB (the shipped configuration is
/// under 2 KiB; longer inputs only cost time). Invariants: no exception; a result is a configuration
/// or errors, never both nor neither; every error carries a message, a fix, and a line and column
/// inside the text (1-based; a line past the last line break by one at most).
/// </summary>
public static class ConfigTarget
{
    public const int MaxInput = 4096;

    public static void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        ConfigResult result = ConfigLoader.Bind(text);
        InvariantViolatedException.Check((result.Config is null) != (result.Errors.Count == 0),
            $"a result with {(result.Config is null ? "no configuration" : "a configuration")} and {result.Errors.Count} errors");
        int lines = Lines(text);
        foreach (ConfigError e in result.Errors)
        {
            InvariantViolatedException.Check(e.Line >= 1 && e.Line <= lines + 1 && e.Column >= 1,
                $"an error at line {e.Line}, column {e.Column} of a text of {lines} lines: {e.Message}");
            InvariantViolatedException.Check(!string.IsNullOrWhiteSpace(e.Message) && !string.IsNullOrWhiteSpace(e.Fix), $"an error without a message or fix: {e}");
        }
    }

    /// <summary>Lines as YAML counts them (YAML 1.2 §5.4: CR LF, CR, LF; YamlDotNet also takes NEL, LS and PS).</summary>
    private static int Lines(string text)
    {
        int lines = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                continue;
            }
            if (c is '\r' or '\n' or '\u0085' or '\u2028' or '\u2029')
            {
                lines++;
            }
        }
        return lines;
    }
}
