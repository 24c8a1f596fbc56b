using System.Buffers.Binary;
using Appliance.Protocol;

namespace Appliance.Server.Tests;

/// <summary>
/// How an NTP Pool monitor judges one answer, and the shape of its check, as read from the pool's
/// monitor (github.com/ntppool/monitor, client/monitor/monitor.go: CheckHost) and the SNTP client it
/// uses (github.com/beevik/ntp, ntp.go: getTime). Written here from that reading, not copied:
/// docs/pool.md cites both.
/// </summary>
internal static class PoolMonitor
{
    /// <summary>Queries per check (the monitor's default <c>Samples</c>).</summary>
    public const int Samples = 3;

    /// <summary>The pause between a check's queries: the monitor sleeps 2 s after each answer (or timeout).</summary>
    public static readonly TimeSpan Spacing = TimeSpan.FromSeconds(2);

    /// <summary>How long the monitor waits for each answer.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    /// <summary>The highest stratum the monitor accepts (it fails a check on "bad stratum" above it).</summary>
    public const int MaxStratum = 6;

    /// <summary>
    /// The monitor's verdict on one answer to a request whose transmit timestamp was
    /// <paramref name="sentTransmit"/>: null when it is a good sample, else the error the monitor
    /// records. A KoD's code is the error ("RATE": −3.5 in the pool's scorer, "DENY"/"RSTR": −10),
    /// and any KoD or bad stratum ends the whole check at once; no answer at all is a missed sample
    /// (−5 only when all three are missed).
    /// </summary>
    public static string? Judge(ulong sentTransmit, ReadOnlySpan<byte> reply)
    {
        if (reply.Length < NtpHeader.Length)
        {
            return "short answer";
        }
        NtpHeader header = NtpHeader.Read(reply);
        // The SNTP client's own checks come first (beevik/ntp getTime): a server-mode answer to this
        // very request (origin = the random transmit it sent), with a transmit time, not ticking backwards.
        if (header.Mode != NtpMode.Server)
        {
            return "invalid mode in response";
        }
        if (header.Transmit.IsZero)
        {
            return "invalid transmit time in response";
        }
        if (header.Origin.Value != sentTransmit)
        {
            return "server response didn't match request";
        }
        if (header.Receive.Value > header.Transmit.Value)
        {
            return "server clock ticked backwards";
        }
        // Then the monitor's (CheckHost): stratum 0 or 16 ends the check, with the kiss code when there is one.
        if (header.Stratum is 0 or 16)
        {
            string code = KissText(header.ReferenceId);
            return code.Length > 0 ? code : $"bad stratum {header.Stratum}";
        }
        if (header.Stratum > MaxStratum)
        {
            return $"bad stratum {header.Stratum}";
        }
        return null;
    }

    /// <summary>The reference id as a kiss code: four printable ASCII characters, or empty.</summary>
    private static string KissText(uint referenceId)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, referenceId);
        foreach (byte b in bytes)
        {
            if (b is < 32 or > 126)
            {
                return "";
            }
        }
        return System.Text.Encoding.ASCII.GetString(bytes);
    }
}
