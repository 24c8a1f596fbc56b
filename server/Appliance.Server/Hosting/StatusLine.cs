using System.Globalization;
using System.Text;
using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Server.Clock;

namespace Appliance.Server.Hosting;

/// <summary>
/// The one-line sync state `systemctl status` shows (the unit's STATUS=): "stratum 2, synchronised
/// to 192.0.2.1:123, offset +12 µs", "holdover, stratum 2", "local reference, stratum 10",
/// "unsynchronised", then any part that has stalled.
/// </summary>
public static class StatusLine
{
    /// <summary>
    /// The line; without <paramref name="offset"/>, the state alone (a change there is news at once,
    /// while the offset moves a little every second).
    /// </summary>
    public static string Format(ClockSnapshot clock, ServerState state, IReadOnlyList<Stall> stalls, bool offset = true)
    {
        var text = new StringBuilder();
        switch (clock.Status)
        {
            case ClockCoreStatus.Synchronised:
                string reference = clock.SystemPeer ?? ReferenceIdText(state.ReferenceId, state.Stratum);
                text.Append(CultureInfo.InvariantCulture, $"stratum {state.Stratum}, synchronised to {reference}");
                if (offset)
                {
                    text.Append(", offset ").Append(Offset(clock.Offset));
                }
                break;
            case ClockCoreStatus.Holdover:
                text.Append(CultureInfo.InvariantCulture, $"holdover (no usable source), stratum {state.Stratum}");
                break;
            case ClockCoreStatus.Local:
                text.Append(CultureInfo.InvariantCulture, $"local reference, stratum {state.Stratum}");
                break;
            case ClockCoreStatus.Panic:
                text.Append("unsynchronised: the sources put the clock off by more than clock.panic-threshold");
                break;
            default:
                text.Append("unsynchronised");
                break;
        }
        foreach (Stall stall in stalls)
        {
            text.Append(CultureInfo.InvariantCulture, $"; {stall.Part} {(stall.Failing ? "keeps failing" : "stuck")}");
        }
        return text.ToString();
    }

    /// <summary>Seconds as a signed figure of two or three significant digits in µs, ms or s.</summary>
    public static string Offset(double seconds)
    {
        double magnitude = Math.Abs(seconds);
        string sign = seconds < 0 ? "-" : "+";
        return magnitude switch
        {
            < 1e-3 => string.Create(CultureInfo.InvariantCulture, $"{sign}{magnitude * 1e6:F0} µs"),
            < 1 => string.Create(CultureInfo.InvariantCulture, $"{sign}{magnitude * 1e3:F1} ms"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{sign}{magnitude:F3} s"),
        };
    }

    /// <summary>
    /// A reference id as chrony shows it (RFC 5905 §7.3): its printable letters at stratum 0–1 (GPS,
    /// PPS), else an IPv4 address (the upstream's, or the first four octets of the MD5 of its IPv6 address).
    /// </summary>
    public static string ReferenceIdText(uint id, int stratum)
    {
        Span<byte> octets = [(byte)(id >> 24), (byte)(id >> 16), (byte)(id >> 8), (byte)id];
        if (stratum <= 1)
        {
            var letters = new StringBuilder(4);
            foreach (byte b in octets)
            {
                if (b is >= 0x20 and < 0x7F)
                {
                    letters.Append((char)b);
                }
            }
            return letters.ToString();
        }
        return string.Create(CultureInfo.InvariantCulture, $"{octets[0]}.{octets[1]}.{octets[2]}.{octets[3]}");
    }
}
