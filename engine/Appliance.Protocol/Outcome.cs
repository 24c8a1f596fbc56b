namespace Appliance.Protocol;

/// <summary>What happened to a packet. A stable metric label (<see cref="OutcomeNames"/>).</summary>
public enum ResponseAction : byte
{
    /// <summary>Nothing sent.</summary>
    Drop,

    /// <summary>A time response (possibly unsynchronised or a crypto-NAK).</summary>
    Respond,

    /// <summary>A Kiss-o'-Death response (RFC 5905 §7.4).</summary>
    KissOfDeath,

    /// <summary>
    /// Not an outcome yet: an NTS request that parsed and waits for its batch's cryptography
    /// (<see cref="Nts.NtsPacketHandler.Answer"/> gives the real one). Never counted, never a label.
    /// </summary>
    Deferred,
}

/// <summary>Why it happened. Stable metric labels; add, never renumber.</summary>
public enum ResponseReason : byte
{
    /// <summary>Answered with synchronised time.</summary>
    Served,

    /// <summary>Answered, but the server is unsynchronised (LI=3, stratum 16).</summary>
    Unsynchronised,

    /// <summary>The request carried a legacy MAC with a key this server does not have: crypto-NAK (RFC 5905 §7.3).</summary>
    UnknownKey,

    /// <summary>Shorter than the 48-byte header.</summary>
    TooShort,

    /// <summary>Version other than 3 or 4.</summary>
    UnsupportedVersion,

    /// <summary>Mode other than client (3): symmetric, server, broadcast and reserved modes.</summary>
    UnexpectedMode,

    /// <summary>Mode 6 (ntpq control): never answered, it is a well-known amplification vector.</summary>
    ControlQuery,

    /// <summary>Mode 7 (ntpdc private, "monlist"): never answered.</summary>
    PrivateQuery,

    /// <summary>Extension fields or MAC that do not parse (RFC 7822 §7.5).</summary>
    MalformedExtensionField,

    /// <summary>The client is outside the allow list or inside the deny list.</summary>
    Denied,

    /// <summary>The client exceeded its rate.</summary>
    RateLimited,

    /// <summary>Longer than the receive buffer: cut by the kernel, so never parsed.</summary>
    Oversized,

    /// <summary>A plain NTP request to a listener that requires NTS.</summary>
    NtsRequired,

    /// <summary>NTS fields present but not as RFC 8915 §5.7 requires (one UID, one cookie, the authenticator last).</summary>
    NtsMalformed,

    /// <summary>NAK: the cookie's key is not in the ring (rotated out, or never ours).</summary>
    NtsCookieUnknownKey,

    /// <summary>NAK: the cookie does not authenticate.</summary>
    NtsCookieInvalid,

    /// <summary>The request's authenticator does not verify under the cookie's C2S key.</summary>
    NtsBadAuthenticator,

    /// <summary>
    /// Waited in the socket's queue longer than the budget (<c>ntp.max-queue-delay</c>) while the
    /// worker was overloaded (its queue standing): shed unanswered, before any parsing or decryption (issue #20).
    /// </summary>
    Stale,
}

/// <summary>
/// One typed outcome per packet: the action taken, the reason, and whether the request was NTS
/// (DESIGN.md boundary 6): a ready-made metric label set.
/// </summary>
public readonly record struct Outcome(ResponseAction Action, ResponseReason Reason, bool Nts = false)
{
    public static Outcome Drop(ResponseReason reason, bool nts = false) => new(ResponseAction.Drop, reason, nts);
}

/// <summary>Metric label values for outcomes; stable strings, allocated once.</summary>
public static class OutcomeNames
{
    private static readonly string[] s_actions = ["drop", "respond", "kod"];

    private static readonly string[] s_reasons =
    [
        "served", "unsynchronised", "unknown_key", "too_short", "unsupported_version", "unexpected_mode",
        "control_query", "private_query", "malformed_extension_field", "denied", "rate_limited", "oversized",
        "nts_required", "nts_malformed", "nts_cookie_unknown_key", "nts_cookie_invalid", "nts_bad_authenticator", "stale",
    ];

    public static int ActionCount => s_actions.Length;
    public static int ReasonCount => s_reasons.Length;

    public static string Action(ResponseAction action) => s_actions[(int)action];

    public static string Reason(ResponseReason reason) => s_reasons[(int)reason];
}
