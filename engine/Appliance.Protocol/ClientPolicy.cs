namespace Appliance.Protocol;

/// <summary>What the access and rate-limit policy says about one request.</summary>
public enum PolicyVerdict : byte
{
    Allow,

    /// <summary>Denied: no response.</summary>
    DenyIgnore,

    /// <summary>Denied: KoD DENY (RFC 5905 §7.4), the client's one KoD of the interval.</summary>
    DenyKiss,

    /// <summary>Denied by local policy: KoD RSTR.</summary>
    RestrictKiss,

    /// <summary>Over its rate: no response.</summary>
    RateDrop,

    /// <summary>Over its rate and not leaked: KoD RATE, the client's one KoD of the interval.</summary>
    RateKiss,

    /// <summary>Over its rate, but answered with time anyway (the 1 in 2^leak that keeps a spoofed victim served).</summary>
    RateLeak,
}

/// <summary>The per-request context a worker passes to the responder.</summary>
/// <param name="MonotonicNanoseconds">
/// The worker's monotonic clock (CLOCK_MONOTONIC) when it took the request up, for the rate limiter:
/// it never steps, where the system clock the receive timestamp comes from may (the appliance steps it
/// itself in kernel mode). 0 when the caller has none: the limiter then runs on
/// <paramref name="ReceiveUnixNanoseconds"/>, a backward step counting as no time elapsed.
/// </param>
public readonly record struct RequestContext(NetAddress Client, long ReceiveUnixNanoseconds, NtpTimestamp ReceiveTime, long MonotonicNanoseconds = 0)
{
    /// <summary>The clock the rate limiter runs on: monotonic where the caller has it.</summary>
    public long LimiterNanoseconds => MonotonicNanoseconds != 0 ? MonotonicNanoseconds : ReceiveUnixNanoseconds;
}

/// <summary>
/// The policy hook consulted once per well-formed client request (access control, then rate limit).
/// A struct type parameter, so the JIT devirtualises the call (DESIGN.md boundary 3).
/// </summary>
public interface IClientPolicy
{
    /// <param name="nts">The request carries NTS extension fields (the client table counts them).</param>
    PolicyVerdict Evaluate(in RequestContext context, bool nts);

    /// <summary>
    /// True when <paramref name="client"/> is known to poll within its rate: the rate limiter holds
    /// it and its bucket holds a token at <paramref name="limiterNanoseconds"/>, nothing charged. An overloaded worker
    /// answers such a client's request even past the queue budget (issue #20): it polls no faster
    /// than the rate-limit interval, so an answer late by milliseconds still comes long before its
    /// next request (the definition of stale). Without a rate limiter nothing is known: false.
    /// </summary>
    bool WithinRate(NetAddress client, long limiterNanoseconds);
}

/// <summary>Answers everyone.</summary>
public struct AllowAllPolicy : IClientPolicy
{
    public readonly PolicyVerdict Evaluate(in RequestContext context, bool nts) => PolicyVerdict.Allow;

    public readonly bool WithinRate(NetAddress client, long limiterNanoseconds) => false;
}

/// <summary>What to do with a denied client.</summary>
public enum DenyAction : byte
{
    /// <summary>Send nothing.</summary>
    Ignore,

    /// <summary>Send a KoD DENY (RFC 5905 §7.4).</summary>
    Kod,
}

/// <summary>
/// The server's policy: access control first, then the worker's own rate limiter. Either part may be
/// absent. Every KoD goes through the rate table, DENY included (an RFC 5905 §7.4 KoD is 48 octets, as
/// long as a plain request: unlimited, they would reflect a flood spoofing a victim's address at
/// the victim one for one): a client gets at most one KoD per interval, RATE or DENY.
/// </summary>
public readonly struct ServerPolicy : IClientPolicy
{
    /// <summary>
    /// The table of KoD allowances for a policy given no rate limiter: a caller without a table of its
    /// own (a test, a benchmark). Its hash key is fixed, not random; the server's configuration refuses
    /// <c>deny-action: kod</c> without <c>rate-limit</c>, so a server always uses its worker's table.
    /// </summary>
    private const int KissOnlyCapacity = 4096;

    private readonly AccessList? _access;
    private readonly DenyAction _denyAction;
    private readonly RateLimiter? _limiter;
    private readonly RateLimiter? _kisses;

    public ServerPolicy(AccessList? access, DenyAction denyAction, RateLimiter? limiter)
    {
        _access = access;
        _denyAction = denyAction;
        _limiter = limiter;
        _kisses = limiter ?? (access is not null && denyAction == DenyAction.Kod
            ? new RateLimiter(RateLimitSettings.Default with { Clients = KissOnlyCapacity }, KissOnlyCapacity, 0x6B6F_645F_6465_6E79, 0x7461_626C_655F_6B65)
            : null);
    }

    public PolicyVerdict Evaluate(in RequestContext context, bool nts)
    {
        if (_access is not null && !_access.Allows(context.Client))
        {
            return _denyAction == DenyAction.Kod && _kisses!.TryKiss(context.Client, context.LimiterNanoseconds, nts)
                ? PolicyVerdict.DenyKiss
                : PolicyVerdict.DenyIgnore;
        }
        if (_limiter is null)
        {
            return PolicyVerdict.Allow;
        }
        return _limiter.Check(context.Client, context.LimiterNanoseconds, nts) switch
        {
            RateDecision.Allow => PolicyVerdict.Allow,
            RateDecision.Leak => PolicyVerdict.RateLeak,
            RateDecision.Kiss => PolicyVerdict.RateKiss,
            _ => PolicyVerdict.RateDrop,
        };
    }

    public bool WithinRate(NetAddress client, long limiterNanoseconds) => _limiter?.HasToken(client, limiterNanoseconds) ?? false;
}
