using System.Text.Json.Serialization;

namespace Appliance.Server.Control;

// What the control verbs answer: one record per verb, serialised with snake_case names. These records
// are the JSON schema of `--json` (docs/control.md is generated from them and checked by a test), so a
// field is added, never renamed or retyped.

/// <summary><c>appliance status</c>: like <c>chronyc tracking</c>.</summary>
/// <param name="ClockStatus">unsynchronised, synchronised, holdover, local or panic.</param>
/// <param name="ReferenceId">As served: four letters at stratum 1 (GPS, PPS), an IPv4 address (or the IPv6 hash) at stratum 2+.</param>
/// <param name="SystemPeer">The source the clock follows, or null.</param>
/// <param name="OffsetSeconds">The clock's estimated offset still to be slewed away.</param>
/// <param name="CorrectionSeconds">Software mode: served time minus the untouched system clock (0 in kernel mode).</param>
/// <param name="Leap">none, insert, delete or unsynchronised, as served.</param>
/// <param name="RequestsPerSecond">NTP requests received per second over the last 10 s.</param>
/// <param name="ShedPerSecond">Of those, shed unanswered per second because a worker was overloaded (docs/overload.md).</param>
public sealed record StatusReport(
    string Version,
    string ClockMode,
    string ClockStatus,
    bool Synchronised,
    int Stratum,
    string ReferenceId,
    string? SystemPeer,
    double OffsetSeconds,
    double OffsetUncertaintySeconds,
    double FrequencyPpm,
    double FrequencyUncertaintyPpm,
    double CorrectionSeconds,
    double RootDelaySeconds,
    double RootDispersionSeconds,
    string Leap,
    double UptimeSeconds,
    double RequestsPerSecond,
    long Requests,
    double ShedPerSecond = 0);

/// <summary><c>appliance sources</c>: like <c>chronyc sources -v</c> and <c>sourcestats</c>.</summary>
public sealed record SourcesReport(IReadOnlyList<SourceReport> Sources);

/// <param name="State">starting, reachable, unreachable, …: what the driver knows.</param>
/// <param name="Selection">What selection made of it: no_sample, unfit, falseticker, outlier, candidate, system_peer.</param>
/// <param name="Reach">The reachability register (RFC 5905 §9.2), 0–255; chrony prints it in octal.</param>
/// <param name="OffsetSeconds">Of the chosen sample, source − local clock; null before the first.</param>
public sealed record SourceReport(
    string Name,
    string Kind,
    string State,
    string Selection,
    int Reach,
    double PollSeconds,
    int Stratum,
    double? OffsetSeconds,
    double? DelaySeconds,
    double JitterSeconds,
    long Requests,
    long Answers,
    long Invalid,
    long KissOfDeath,
    long NtsNaks,
    long KeyExchanges);

/// <summary><c>appliance clients</c>: like <c>chronyc clients</c>, the busiest clients of the workers' tables.</summary>
/// <param name="Tracking">False when rate limiting is off: there is no client table.</param>
/// <param name="Tracked">Clients the tables hold now (their bound: <c>ntp.rate-limit.clients</c>).</param>
public sealed record ClientsReport(bool Tracking, long Tracked, IReadOnlyList<ClientReport> Clients);

/// <param name="Address">IPv4 address, or an IPv6 client's /64 prefix (the table keys IPv6 by /64).</param>
/// <param name="RateLimited">Requests over the client's rate (dropped, answered with KoD RATE, or leaked).</param>
/// <param name="LastSeenSecondsAgo">Since its latest request.</param>
public sealed record ClientReport(
    string Address,
    long Requests,
    long RateLimited,
    long KodSent,
    long NtsRequests,
    double LastSeenSecondsAgo);

/// <summary><c>appliance serverstats</c>: like <c>chronyc serverstats</c>.</summary>
/// <param name="Answered">Time responses sent (plain and NTS, including leaked rate-limited ones and crypto-NAKs).</param>
/// <param name="Dropped">Requests given no response, by reason.</param>
/// <param name="KodSent">Kiss-o'-Death responses, by reason (denied, rate_limited).</param>
/// <param name="NtsNaks">NTS NAKs sent (RFC 8915 §5.7: the cookie could not be opened).</param>
/// <param name="NtsKeHandshakes">NTS-KE connections by result/reason, as in appliance_ntske_handshakes_total.</param>
/// <param name="RateLimitEvictions">Clients the rate-limit tables dropped to make room for new ones.</param>
/// <param name="TimestampSources">Requests by where their receive timestamp came from (hardware, kernel_software, user_space).</param>
/// <param name="TransmitTimestampSources">Time responses by where their transmit timestamp came from (user_space: the daemon read the clock just before sending).</param>
public sealed record ServerStatsReport(
    long Received,
    long Answered,
    long RateLimited,
    long RateLimitEvictions,
    IReadOnlyDictionary<string, long> Dropped,
    IReadOnlyDictionary<string, long> KodSent,
    long NtsReceived,
    long NtsAnswered,
    long NtsNaks,
    long CookiesIssued,
    IReadOnlyDictionary<string, long> NtsKeHandshakes,
    IReadOnlyDictionary<string, long> TimestampSources,
    IReadOnlyDictionary<string, long> TransmitTimestampSources,
    long SendErrors,
    long ReceiveErrors,
    long WorkerRestarts);

/// <summary><c>appliance keys</c>: the NTS master-key ring. Never key bytes.</summary>
/// <param name="Nts">False when NTS is not configured (the other fields are then empty).</param>
/// <param name="Mode">random (this appliance's own keys, persisted) or fleet (derived from the fleet secret).</param>
/// <param name="NextRotation">When the next scheduled rotation is due (UTC, ISO 8601).</param>
/// <param name="Roughtime">The Roughtime server's keys, or null when <c>roughtime</c> is off.</param>
public sealed record KeysReport(
    bool Nts,
    string Mode,
    double RotationSeconds,
    int Keep,
    DateTimeOffset? NextRotation,
    IReadOnlyList<KeyReport> Keys,
    RoughtimeKeysReport? Roughtime);

/// <summary>The Roughtime keys: the long-term public key to publish, and the online key's validity. Never a private key.</summary>
/// <param name="PublicKey">The long-term Ed25519 public key, base64 (as server lists write it, RFC 10049 §7).</param>
/// <param name="PublicKeyHex">The same key in hex (as some clients take it).</param>
/// <param name="KeyFile">Where the long-term key is kept.</param>
/// <param name="OnlineKeyMint">The current online key's MINT (UTC), or null before the first signed answer.</param>
/// <param name="OnlineKeyMaxt">Its MAXT (UTC).</param>
public sealed record RoughtimeKeysReport(
    string PublicKey,
    string PublicKeyHex,
    string KeyFile,
    DateTimeOffset? OnlineKeyMint,
    DateTimeOffset? OnlineKeyMaxt,
    long Delegations);

/// <param name="Current">The key that seals new cookies; the others only open cookies already handed out.</param>
/// <param name="AgeSeconds">Since the key became current, by the rotation schedule (after a forced rotation, right to within one rotation interval).</param>
public sealed record KeyReport(uint Id, bool Current, double AgeSeconds);

/// <summary><c>appliance reload</c> and <c>appliance rotate-keys</c>: what happened, as lines.</summary>
/// <param name="Ok">False: nothing changed (an invalid file, a refused rotation).</param>
public sealed record ActionReport(bool Ok, IReadOnlyList<string> Lines);

/// <summary>What a control request is: one JSON object on one line.</summary>
/// <param name="Verb">status, sources, clients, serverstats, keys, reload or rotate-keys.</param>
/// <param name="Limit">clients: how many to list.</param>
public sealed record ControlRequest(string Verb, int? Limit = null);

/// <summary>The answer when a request fails: what went wrong and what to do.</summary>
public sealed record ControlError(string Error);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never, NumberHandling = JsonNumberHandling.Strict, RespectNullableAnnotations = true)]
[JsonSerializable(typeof(StatusReport))]
[JsonSerializable(typeof(SourcesReport))]
[JsonSerializable(typeof(ClientsReport))]
[JsonSerializable(typeof(ServerStatsReport))]
[JsonSerializable(typeof(KeysReport))]
[JsonSerializable(typeof(ActionReport))]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlError))]
internal sealed partial class ControlJson : JsonSerializerContext;
