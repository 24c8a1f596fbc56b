using Appliance.Server.Control;

namespace Appliance.Server.Status;

/// <summary>One warning on the status page: a stable code (the element's data-warning) and what to do.</summary>
public sealed record StatusWarning(string Code, string Text);

/// <summary>What the status page warns about, from the same reports the control socket answers with.</summary>
public static class StatusWarnings
{
    /// <summary>Warn this long before the NTS-KE certificate's NotAfter: long enough to renew by hand.</summary>
    public static readonly TimeSpan CertificateNotice = TimeSpan.FromDays(14);

    /// <summary>
    /// Warn this long before the leap-seconds file expires. IERS announces a leap second about six
    /// months ahead and the list is republished with each Bulletin C, so a file a month from expiry is
    /// one the host's updates have stopped refreshing.
    /// </summary>
    public static readonly TimeSpan LeapFileNotice = TimeSpan.FromDays(30);

    /// <param name="certificateNotAfter">The NTS-KE certificate's NotAfter; null without NTS-KE.</param>
    /// <param name="leapFileExpires">The leap-seconds file's expiry; null when none is configured.</param>
    public static IReadOnlyList<StatusWarning> Evaluate(StatusReport status, SourcesReport sources, DateTimeOffset? certificateNotAfter,
        DateTimeOffset? leapFileExpires, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(sources);
        var warnings = new List<StatusWarning>();
        if (!status.Synchronised)
        {
            warnings.Add(new StatusWarning("unsynchronised",
                "Unsynchronised: clients are told LI=3, stratum 16 and should ignore this server. Check the sources below."));
        }
        if (sources.Sources.Count > 0 && !sources.Sources.Any(s => s.Selection is "candidate" or "system_peer" or "outlier"))
        {
            warnings.Add(new StatusWarning("no_selectable_source",
                "No selectable source: every source is unreachable, unfit or a falseticker (see the selection column)."));
        }
        if (certificateNotAfter is { } notAfter)
        {
            AddExpiry(warnings, "certificate", "The NTS-KE certificate", notAfter, CertificateNotice, now,
                "NTS clients refuse the handshake. ", "Renew it; the appliance reloads it by itself.");
        }
        if (leapFileExpires is { } expires)
        {
            AddExpiry(warnings, "leap_file", "The leap-seconds file", expires, LeapFileNotice, now,
                "a leap second announced since is not known. ",
                "Install a fresh leap-seconds.list (Debian: tzdata) and restart the appliance (it reads the file at start).");
        }
        return warnings;
    }

    /// <summary><c>{code}_expired</c> once <paramref name="expires"/> has passed, <c>{code}_expiring</c> within <paramref name="notice"/> of it.</summary>
    private static void AddExpiry(List<StatusWarning> warnings, string code, string what, DateTimeOffset expires, TimeSpan notice,
        DateTimeOffset now, string consequence, string fix)
    {
        TimeSpan left = expires - now;
        if (left <= TimeSpan.Zero)
        {
            warnings.Add(new StatusWarning(code + "_expired", $"{what} expired {Ago(-left)} ago ({expires:u}): {consequence}{fix}"));
        }
        else if (left < notice)
        {
            warnings.Add(new StatusWarning(code + "_expiring", $"{what} expires in {Ago(left)} ({expires:u}). {fix}"));
        }
    }

    private static string Ago(TimeSpan span) => span.TotalDays >= 2 ? $"{span.TotalDays:0} days"
        : span.TotalHours >= 2 ? $"{span.TotalHours:0} hours" : $"{Math.Max(1, span.TotalMinutes):0} minutes";
}
