namespace Appliance.Protocol;

/// <summary>What the access and rate-limit policy says about one request.</summary>
public enum PolicyVerdict : byte
{
    Allow,

    /// <summary>Denied: no response.</summary>
    DenyIgnore,

    /// <summary>Denied: KoD DENY (RFC 5905 §7.4).</summary>
    DenyKiss,

    /// <summary>Denied by local policy: KoD RSTR.</summary>
    RestrictKiss,

    /// <summary>Over its rate: no response.</summary>
    RateDrop,

    /// <summary>Over its rate: KoD RATE.</summary>
    RateKiss,

    /// <summary>Over its rate, but answered anyway (the 1 in 2^leak that keeps a spoofed victim served).</summary>
    RateLeak,
}

/// <summary>The per-request context a worker passes to the responder.</summary>
public readonly record struct RequestContext(NetAddress Client, long ReceiveUnixNanoseconds, NtpTimestamp ReceiveTime);

/// <summary>
/// The policy hook consulted once per well-formed client request (access control, then rate limit).
/// A struct type parameter, so the JIT devirtualises the call (DESIGN.md boundary 3).
/// </summary>
public interface IClientPolicy
{
    PolicyVerdict Evaluate(in RequestContext context);
}

/// <summary>Answers everyone.</summary>
public struct AllowAllPolicy : IClientPolicy
{
    public readonly PolicyVerdict Evaluate(in RequestContext context) => PolicyVerdict.Allow;
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
/// The server's policy: access control first (denied clients never touch the rate table), then the
/// worker's own rate limiter. Either part may be absent.
/// </summary>
public readonly struct ServerPolicy(AccessList? access, DenyAction denyAction, RateLimiter? limiter) : IClientPolicy
{
    public PolicyVerdict Evaluate(in RequestContext context)
    {
        if (access is not null && !access.Allows(context.Client))
        {
            return denyAction == DenyAction.Kod ? PolicyVerdict.DenyKiss : PolicyVerdict.DenyIgnore;
        }
        if (limiter is null)
        {
            return PolicyVerdict.Allow;
        }
        return limiter.Check(context.Client, context.ReceiveUnixNanoseconds) switch
        {
            RateDecision.Allow => PolicyVerdict.Allow,
            RateDecision.Leak => limiter.Settings.Kod ? PolicyVerdict.RateKiss : PolicyVerdict.RateLeak,
            _ => PolicyVerdict.RateDrop,
        };
    }
}
