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
