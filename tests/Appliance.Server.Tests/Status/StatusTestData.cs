using Appliance.Discipline;
using Appliance.Protocol.Client;
using Appliance.Server.Clock;
using Appliance.Server.Control;
using Appliance.Server.Status;

namespace Appliance.Server.Tests.Status;

/// <summary>Reports and snapshots as the control verbs build them, with the fields a test cares about.</summary>
internal static class StatusTestData
{
    public static readonly DateTimeOffset Now = new(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);

    public static StatusReport StatusWith(bool synchronised = true, int stratum = 2, string referenceId = "192.0.2.1", string? systemPeer = "192.0.2.1:123") =>
        new("1.2.3", "software", synchronised ? "synchronised" : "unsynchronised", synchronised, synchronised ? stratum : 16,
            synchronised ? referenceId : "", systemPeer, 12e-6, 3e-6, 1.5, 0.01, 0, 0.002, 0.0003, synchronised ? "no_warning" : "unsynchronised",
            3700, 42.5, 1000);

    public static SourceReport Source(string name, string selection = "candidate", double? offset = 1e-4) =>
        new(name, "ntp", "reachable", selection, 255, 64, 1, offset, 2e-3, 5e-5, 10, 9, 0, 0, 0, 0);

    public static ServerStatsReport Stats(IReadOnlyDictionary<string, long>? handshakes = null) =>
        new(1000, 990, 4, 0, new Dictionary<string, long> { ["denied"] = 6 }, new Dictionary<string, long> { ["rate_limited"] = 4 },
            20, 19, 1, 30, handshakes ?? new Dictionary<string, long>(), new Dictionary<string, long> { ["kernel"] = 1000 },
            new Dictionary<string, long> { ["user_space"] = 990 }, 0, 0, 0);

    public static KeysReport NoKeys { get; } = new(false, "", 0, 0, null, [], null);

    public static StatusPageData Page(StatusReport? status = null, IReadOnlyList<SourceReport>? sources = null, NtsKeFacts? ntsKe = null,
        IReadOnlyList<StatusWarning>? warnings = null, HistoryView? history = null, ServerStatsReport? stats = null, KeysReport? keys = null) =>
        new(status ?? StatusWith(), new SourcesReport(sources ?? [Source("192.0.2.1:123", "system_peer")]), stats ?? Stats(), keys ?? NoKeys,
            new RequestRates(42.5, 40, 1.5, 1), ntsKe, null, warnings ?? [], history ?? HistoryView.Empty, Now);

    public static SourceSnapshot Snapshot(string name, double jitter, double? offset = 1e-4) =>
        new(name, "ntp", SourceState.Reachable, PeerStatus.Candidate, 255, 64, offset, 1e-3, jitter, 1, new SourceCounters());

    public static ClockSnapshot ClockWith(double offset, double uncertainty = 1e-6, ClockCoreStatus status = ClockCoreStatus.Synchronised,
        params SourceSnapshot[] sources) => new(status, offset, 0, 0, uncertainty, 0, sources);
}
