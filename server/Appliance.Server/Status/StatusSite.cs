using Appliance.Server.Clock;
using Appliance.Server.Control;
using Appliance.Server.Nts;
using Appliance.Timestamping;

namespace Appliance.Server.Status;

/// <summary>
/// Gathers one rendering of the status page from the running server: the control verbs' own reports
/// (the same objects <c>appliance status</c>, <c>sources</c>, <c>serverstats</c> and <c>keys</c> print),
/// their request rates and history, plus the two expiry dates the reports lack.
/// </summary>
public sealed class StatusSite(ControlVerbs verbs, ClockService clock, NtsKeServer? ntsKe)
{
    public StatusPageData Collect()
    {
        DateTimeOffset now = DateTimeOffset.UtcNow;
        StatusReport status = verbs.Status();
        SourcesReport sources = verbs.Sources();
        NtsKeFacts? nts = ntsKe is null ? null
            : new NtsKeFacts(ntsKe.Certificates.NotAfter.ToUniversalTime(), ntsKe.ActiveConnections);
        DateTimeOffset? leap = clock.LeapSeconds is { } table ? DateTimeOffset.FromUnixTimeSeconds(table.Expires) : null;
        return new StatusPageData(status, sources, verbs.ServerStats(), verbs.Keys(), verbs.Rates(), nts, leap,
            StatusWarnings.Evaluate(status, sources, nts?.CertificateNotAfter, leap, now),
            verbs.History.Read(SystemClock.MonotonicNanoseconds()), now);
    }

    public string Render() => StatusPage.Render(Collect());
}
