using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Appliance.Discipline;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Protocol.Nts;
using Appliance.Server.Clock;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Metrics;
using Appliance.Server.Nts;
using Appliance.Server.Status;
using Appliance.Timestamping;

namespace Appliance.Server.Control;

/// <summary>What the control verbs read and call: the running server's parts.</summary>
/// <param name="StartedAt">When the server started, on the monotonic clock (nanoseconds).</param>
public sealed record ControlContext(
    NtpEngine Engine,
    ServerStateCell State,
    ClockService Clock,
    NtsMetrics Nts,
    CookieKeyRingCell KeyRing,
    KeyRingStore? KeyStore,
    long StartedAt,
    Func<CancellationToken, Task<ActionReport>> Reload,
    Func<CancellationToken, Task<ActionReport>> RotateKeys)
{
    /// <summary>The Roughtime listener, or null when it is off.</summary>
    public Roughtime.RoughtimeServer? Roughtime { get; init; }
}

/// <summary>Requests per second, by how they ended (see <see cref="RequestTotals"/>).</summary>
public readonly record struct RequestRates(double Received, double Answered, double KissOfDeath, double Dropped, double Shed = 0);

/// <summary>
/// The verbs of the control socket, each building its report from the live server (read-only verbs
/// read snapshots and counters; nothing here touches the request path). Answers are one JSON
/// envelope: <c>{"ok": true, "data": REPORT}</c> or <c>{"ok": false, "data": {"error": "..."}}</c>.
/// </summary>
public sealed class ControlVerbs(ControlContext context)
{
    public const int DefaultClientLimit = 20;
    public const int MaxClientLimit = 10_000;

    /// <summary>The verbs, in the order the CLI lists them.</summary>
    public static IReadOnlyList<string> Verbs { get; } = ["status", "sources", "clients", "serverstats", "keys", "reload", "rotate-keys"];

    /// <summary>requests/s is averaged over this many one-second samples.</summary>
    private const int RateWindow = 10;

    private readonly Queue<(long At, RequestTotals Totals)> _samples = new();
    private readonly Lock _sampleLock = new();

    public static bool IsVerb(string? verb) => verb is not null && Verbs.Contains(verb);

    /// <summary>Verbs only the socket's owner or root may use.</summary>
    public static bool ChangesState(string verb) => verb is "reload" or "rotate-keys";

    /// <summary>The last hour of the clock, one point per 10 s, for the status page's plots.</summary>
    public StatusHistory History { get; } = new();

    /// <summary>
    /// Records the request counters (once a second) for <see cref="StatusReport.RequestsPerSecond"/> and
    /// <see cref="Rates"/>, and offers the clock's state to <see cref="History"/>. The server runs
    /// it whether or not the control socket is on: the status page reads the same figures.
    /// </summary>
    public void Sample()
    {
        RequestTotals totals = ServerStatistics.Totals(context.Engine);
        long now = SystemClock.MonotonicNanoseconds();
        lock (_sampleLock)
        {
            _samples.Enqueue((now, totals));
            while (_samples.Count > RateWindow + 1)
            {
                _samples.Dequeue();
            }
        }
        History.Record(now, context.Clock.Snapshot);
    }

    public async Task<byte[]> ExecuteAsync(ControlRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        switch (request.Verb)
        {
            case "status":
                return Envelope(true, ControlJson.Default.StatusReport, Status());
            case "sources":
                return Envelope(true, ControlJson.Default.SourcesReport, Sources());
            case "clients":
                int limit = request.Limit ?? DefaultClientLimit;
                if (limit is < 1 or > MaxClientLimit)
                {
                    return ControlServer.ErrorAnswer($"--limit must be from 1 to {MaxClientLimit}");
                }
                return Envelope(true, ControlJson.Default.ClientsReport, Clients(limit));
            case "serverstats":
                return Envelope(true, ControlJson.Default.ServerStatsReport, ServerStats());
            case "keys":
                return Envelope(true, ControlJson.Default.KeysReport, Keys());
            case "reload":
                ActionReport reload = await context.Reload(cancellationToken).ConfigureAwait(false);
                return Envelope(reload.Ok, ControlJson.Default.ActionReport, reload);
            case "rotate-keys":
                ActionReport rotate = await context.RotateKeys(cancellationToken).ConfigureAwait(false);
                return Envelope(rotate.Ok, ControlJson.Default.ActionReport, rotate);
            default:
                return ControlServer.ErrorAnswer($"unknown verb '{request.Verb}'");
        }
    }

    public StatusReport Status()
    {
        ClockSnapshot clock = context.Clock.Snapshot;
        ServerState state = context.State.Current;
        long now = SystemClock.RealtimeNanoseconds();
        bool synchronised = state.IsSynchronised;
        long received = ServerStatistics.Totals(context.Engine).Received;
        RequestRates rates = Rates();
        return new StatusReport(
            Version: Program.Version,
            ClockMode: context.Clock.Mode == ClockMode.Software ? "software" : "kernel",
            ClockStatus: ClockMetrics.Name(clock.Status),
            Synchronised: synchronised,
            Stratum: synchronised ? state.Stratum : ServerState.UnsynchronisedStratum,
            ReferenceId: synchronised ? StatusLine.ReferenceIdText(state.ReferenceId, state.Stratum) : "",
            SystemPeer: clock.SystemPeer,
            OffsetSeconds: clock.Offset,
            OffsetUncertaintySeconds: clock.OffsetStdDev,
            FrequencyPpm: clock.Frequency * 1e6,
            FrequencyUncertaintyPpm: clock.FrequencyStdDev * 1e6,
            CorrectionSeconds: clock.Correction,
            RootDelaySeconds: state.RootDelay,
            RootDispersionSeconds: state.RootDispersionAt(now),
            Leap: ClockMetrics.Name(synchronised ? state.Leap : LeapIndicator.Unsynchronised),
            UptimeSeconds: (SystemClock.MonotonicNanoseconds() - context.StartedAt) / 1e9,
            RequestsPerSecond: rates.Received,
            Requests: received,
            ShedPerSecond: rates.Shed);
    }

    /// <summary>Requests per second received, answered, answered with KoD and dropped, over the last <see cref="RateWindow"/> samples.</summary>
    public RequestRates Rates()
    {
        lock (_sampleLock)
        {
            if (_samples.Count < 2)
            {
                return default;
            }
            (long firstAt, RequestTotals first) = _samples.Peek();
            (long lastAt, RequestTotals last) = _samples.Last();
            if (lastAt <= firstAt)
            {
                return default;
            }
            double seconds = (lastAt - firstAt) / 1e9;
            return new RequestRates((last.Received - first.Received) / seconds, (last.Answered - first.Answered) / seconds,
                (last.KissOfDeath - first.KissOfDeath) / seconds, (last.Dropped - first.Dropped) / seconds, (last.Shed - first.Shed) / seconds);
        }
    }

    public SourcesReport Sources() => new(context.Clock.Snapshot.Sources.Select(s => new SourceReport(
        s.Name, s.Kind, ClockMetrics.Name(s.State), ClockMetrics.Name(s.Selection), s.Reach, s.PollSeconds, s.Stratum,
        s.Offset, s.Delay, s.Jitter, s.Counters.Requests, s.Counters.Answers, s.Counters.Invalid, s.Counters.KissOfDeath,
        s.Counters.NtsNaks, s.Counters.KeyExchanges)).ToList());

    /// <summary>The busiest <paramref name="limit"/> clients over every worker's table.</summary>
    public ClientsReport Clients(int limit)
    {
        var records = new List<ClientRecord>();
        bool tracking = false;
        long tracked = 0;
        foreach (NtpWorker worker in context.Engine.Workers)
        {
            if (worker.RateLimiter is { } table)
            {
                tracking = true;
                tracked += table.Count;
                table.CopyClients(records);
            }
        }
        long now = SystemClock.MonotonicNanoseconds();
        // An IPv6 /64 may be spread over several workers (they steer by the whole address): one line each.
        var clients = records
            .GroupBy(r => (r.Address, r.IsPrefix))
            .Select(g => new ClientReport(
                g.Key.IsPrefix ? $"{g.Key.Address}/64" : g.Key.Address.ToString(),
                g.Sum(r => r.Requests), g.Sum(r => r.RateLimited), g.Sum(r => r.KissesSent), g.Sum(r => r.NtsRequests),
                Math.Max(0, (now - g.Max(r => r.LastSeenNanoseconds)) / 1e9)))
            .OrderByDescending(c => c.Requests).ThenBy(c => c.LastSeenSecondsAgo)
            .Take(limit)
            .ToList();
        return new ClientsReport(tracking, tracked, clients);
    }

    public ServerStatsReport ServerStats()
    {
        var stats = ServerStatistics.Collect(context.Engine);
        var dropped = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var kod = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long rateLimited = 0;
        for (int r = 0; r < OutcomeNames.ReasonCount; r++)
        {
            var reason = (ResponseReason)r;
            if (stats.Outcome(ResponseAction.Drop, reason) is long d and > 0)
            {
                dropped[OutcomeNames.Reason(reason)] = d;
            }
            if (stats.Outcome(ResponseAction.KissOfDeath, reason) is long k and > 0)
            {
                kod[OutcomeNames.Reason(reason)] = k;
            }
        }
        foreach (ResponseAction action in (ReadOnlySpan<ResponseAction>)[ResponseAction.Drop, ResponseAction.KissOfDeath, ResponseAction.Respond])
        {
            rateLimited += stats.Outcome(action, ResponseReason.RateLimited);
        }
        var handshakes = new SortedDictionary<string, long>(StringComparer.Ordinal);
        for (int r = 0; r < NtsKeOutcomeNames.Count; r++)
        {
            var reason = (NtsKeServerReason)r;
            if (context.Nts.Handshakes(reason) is long count and > 0)
            {
                handshakes[$"{NtsKeOutcomeNames.Result(reason)}/{NtsKeOutcomeNames.Reason(reason)}"] = count;
            }
        }
        var timestamps = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var transmitTimestamps = new SortedDictionary<string, long>(StringComparer.Ordinal);
        for (int s = 0; s < TimestampSourceNames.Count; s++)
        {
            timestamps[TimestampSourceNames.Name((TimestampSource)s)] = stats.Timestamps((TimestampSource)s);
            transmitTimestamps[TimestampSourceNames.Name((TimestampSource)s)] = stats.TransmitTimestamps((TimestampSource)s);
        }
        long ntsReceived = stats.NtsTotal(ResponseAction.Drop) + stats.NtsTotal(ResponseAction.Respond) + stats.NtsTotal(ResponseAction.KissOfDeath);
        return new ServerStatsReport(
            Received: stats.Received,
            Answered: stats.Total(ResponseAction.Respond),
            RateLimited: rateLimited,
            RateLimitEvictions: stats.TableEvictions,
            Dropped: dropped,
            KodSent: kod,
            NtsReceived: ntsReceived,
            NtsAnswered: stats.NtsTotal(ResponseAction.Respond),
            NtsNaks: stats.NtsTotal(ResponseAction.KissOfDeath),
            CookiesIssued: stats.CookiesIssued + context.Nts.CookiesIssued,
            NtsKeHandshakes: handshakes,
            TimestampSources: timestamps,
            TransmitTimestampSources: transmitTimestamps,
            SendErrors: stats.SendErrors,
            ReceiveErrors: stats.ReceiveErrors,
            WorkerRestarts: stats.Restarts);
    }

    public KeysReport Keys()
    {
        RoughtimeKeysReport? roughtime = RoughtimeKeys();
        if (context.KeyStore is not { } store || context.KeyRing.Current is not { } ring)
        {
            return new KeysReport(false, "", 0, 0, null, [], roughtime);
        }
        DateTimeOffset now = DateTimeOffset.UtcNow;
        var keys = ring.Keys
            .OrderByDescending(k => k.Id)
            .Select(k => new KeyReport(k.Id, k.Id == ring.Current.Id, store.AgeSeconds(k.Id, now)))
            .ToList();
        NtsKeysConfig config = store.Config; // what a reload made of rotation and keep
        return new KeysReport(true, store.FleetMode ? "fleet" : "random", config.Rotation.TotalSeconds, config.Keep, store.NextRotation(now), keys, roughtime);
    }

    private RoughtimeKeysReport? RoughtimeKeys()
    {
        if (context.Roughtime?.Keys is not { } keys)
        {
            return null;
        }
        Protocol.Roughtime.RoughtimeDelegation? online = keys.Current;
        return new RoughtimeKeysReport(keys.PublicKeyBase64, Convert.ToHexStringLower(keys.PublicKey), keys.Path,
            online is null ? null : DateTimeOffset.FromUnixTimeSeconds((long)online.Mint),
            online is null ? null : DateTimeOffset.FromUnixTimeSeconds((long)online.Maxt),
            keys.Delegations);
    }

    /// <summary>The answer on the wire: the envelope around <paramref name="value"/>.</summary>
    internal static byte[] Envelope<T>(bool ok, JsonTypeInfo<T> info, T value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteBoolean("ok", ok);
            writer.WritePropertyName("data");
            JsonSerializer.Serialize(writer, value, info);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
