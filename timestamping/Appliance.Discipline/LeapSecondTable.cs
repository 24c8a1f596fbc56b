using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// A leap-seconds.list (IERS/NIST format): "#$" last update, "#@" expiry, "#h" SHA-1 of the data,
/// and lines of NTP seconds and TAI − UTC. The hash is checked on parse; expiry is the caller's to
/// warn about. Times here are Unix seconds.
/// </summary>
public sealed class LeapSecondTable
{
    private const long NtpToUnix = NtpTimestamp.UnixEpochOffsetSeconds;

    private LeapSecondTable(List<(long Time, int Tai)> entries, long updated, long expires)
    {
        Entries = entries;
        Updated = updated;
        Expires = expires;
    }

    /// <summary>(Unix time at which TAI − UTC becomes the value, that value), oldest first.</summary>
    public IReadOnlyList<(long Time, int Tai)> Entries { get; }

    public long Updated { get; }

    public long Expires { get; }

    public bool IsExpired(long nowUnixSeconds) => nowUnixSeconds >= Expires;

    /// <summary>Parses and verifies; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static LeapSecondTable Parse(string text)
    {
        var hashed = new StringBuilder();
        var entries = new List<(long, int)>();
        long? updated = null, expires = null;
        string? hash = null;
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("#$", StringComparison.Ordinal))
            {
                string field = FirstField(line[2..]);
                updated = long.Parse(field, CultureInfo.InvariantCulture) - NtpToUnix;
                hashed.Append(field);
            }
            else if (line.StartsWith("#@", StringComparison.Ordinal))
            {
                string field = FirstField(line[2..]);
                expires = long.Parse(field, CultureInfo.InvariantCulture) - NtpToUnix;
                hashed.Append(field);
            }
            else if (line.StartsWith("#h", StringComparison.Ordinal))
            {
                // Five 32-bit words in hex, leading zeros of each word dropped by some publishers.
                hash = string.Concat(line[2..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(w => w.PadLeft(8, '0')));
            }
            else if (line.Length > 0 && line[0] != '#')
            {
                string[] fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 2)
                {
                    throw new FormatException($"leap-seconds.list: a data line needs two numbers: '{line}'");
                }
                entries.Add((long.Parse(fields[0], CultureInfo.InvariantCulture) - NtpToUnix, int.Parse(fields[1], CultureInfo.InvariantCulture)));
                hashed.Append(fields[0]).Append(fields[1]);
            }
        }
        if (updated is null || expires is null || entries.Count == 0)
        {
            throw new FormatException("leap-seconds.list: missing the #$ (update) or #@ (expiry) line, or data");
        }
        if (hash is null)
        {
            throw new FormatException("leap-seconds.list: no #h hash line; the file cannot be verified");
        }
#pragma warning disable CA5350 // the file format defines its integrity check as SHA-1; it guards against damage, not forgery
        string actual = Convert.ToHexStringLower(SHA1.HashData(Encoding.ASCII.GetBytes(hashed.ToString())));
#pragma warning restore CA5350
        if (!string.Equals(actual, hash, StringComparison.OrdinalIgnoreCase))
        {
            throw new FormatException($"leap-seconds.list: hash mismatch (file says {hash}, data gives {actual}): the file is damaged or edited");
        }
        return new LeapSecondTable(entries, updated.Value, expires.Value);
    }

    private static string FirstField(string text) =>
        text.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries) is [var first, ..] ? first : throw new FormatException("leap-seconds.list: empty #$ or #@ line");

    /// <summary>TAI − UTC at <paramref name="unixSeconds"/>.</summary>
    public int TaiOffset(long unixSeconds)
    {
        int tai = Entries[0].Tai;
        foreach ((long time, int value) in Entries)
        {
            if (time > unixSeconds)
            {
                break;
            }
            tai = value;
        }
        return tai;
    }

    /// <summary>The next leap event after <paramref name="unixSeconds"/>: the instant UTC jumps (end of the last day), and its kind.</summary>
    public (long Time, LeapIndicator Kind)? NextEvent(long unixSeconds)
    {
        for (int i = 1; i < Entries.Count; i++)
        {
            if (Entries[i].Time > unixSeconds)
            {
                return (Entries[i].Time, Entries[i].Tai > Entries[i - 1].Tai ? LeapIndicator.InsertSecond : LeapIndicator.DeleteSecond);
            }
        }
        return null;
    }

    /// <summary>LI to serve at <paramref name="unixSeconds"/>: insert/delete during the last day before an event (RFC 5905 §7.3), else none.</summary>
    public LeapIndicator Announcement(long unixSeconds) =>
        NextEvent(unixSeconds) is { } next && next.Time - unixSeconds <= 86400 ? next.Kind : LeapIndicator.NoWarning;
}
