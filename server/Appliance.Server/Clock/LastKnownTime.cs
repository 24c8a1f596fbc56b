using System.Globalization;
using System.Text;
using Appliance.Server.Hosting;

namespace Appliance.Server.Clock;

/// <summary>
/// The last time the clock was known good (clock.last-known-time, issue #21): one line, RFC 3339 UTC,
/// written durably (a new file fsync'd and renamed over the old, as systemd-timesyncd keeps its clock
/// file) at each synchronisation, every 10 minutes while synchronised and at stop; read at start as
/// part of the floor for "now". A board that boots in 1970 then knows it is at least as late as when
/// it was last shut down.
/// </summary>
public static class LastKnownTime
{
    private const string Format = "yyyy-MM-ddTHH:mm:ss.fffffffZ";

    /// <summary>How often a synchronised clock is written again.</summary>
    public static TimeSpan Interval { get; } = TimeSpan.FromMinutes(10);

    /// <summary>The time in the file, Unix nanoseconds; null when there is none yet. A file that does not parse is an <see cref="InvalidDataException"/>.</summary>
    public static long? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        string text = File.ReadAllText(path).Trim();
        if (!DateTimeOffset.TryParseExact(text, Format, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset time)
            || time.Year is < 2000 or > 2200)
        {
            throw new InvalidDataException($"{path} holds '{(text.Length > 40 ? text[..40] + "…" : text)}', not a time between 2000 and 2200 such as 2026-12-04T01:23:45.0000000Z; remove it, and the next synchronisation writes it again");
        }
        return (time - DateTimeOffset.UnixEpoch).Ticks * 100;
    }

    /// <summary>Writes <paramref name="unixNanoseconds"/>; throws <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/> when it cannot.</summary>
    public static void Write(string path, long unixNanoseconds)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string text = DateTimeOffset.UnixEpoch.AddTicks(unixNanoseconds / 100).ToString(Format, CultureInfo.InvariantCulture) + "\n";
        SecretFile.WriteDurably(path, directory, Encoding.ASCII.GetBytes(text));
    }

    /// <summary>Unix nanoseconds as the log says them.</summary>
    public static string Show(long unixNanoseconds) =>
        DateTimeOffset.UnixEpoch.AddTicks(unixNanoseconds / 100).ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);
}
