namespace Appliance.Server.Configuration;

/// <summary>A check that involves more than one key, or the shape of the file: the fix it suggests, and where.</summary>
/// <param name="Context">The path the fix's YAML example is written at ("" for the top level).</param>
/// <param name="Fix">What to tell the operator; YAML examples in backticks, each one valid (ConfigFixTests).</param>
public sealed record ConfigRule(string Context, string Fix);

/// <summary>
/// Every fix the binders give that is not a key's own (<see cref="ConfigKey.Fix"/>): with the table,
/// the whole set of advice a configuration error can carry.
/// </summary>
public static class ConfigRules
{
    public static ConfigRule YamlSyntax { get; } = new("", "fix the YAML syntax at this position");

    public static ConfigRule YamlIncomplete { get; } = new("", "check the brackets, quotes and indentation here");

    public static ConfigRule YamlShape { get; } = new("", "write keys as plain words, nest at most a few levels, and use an alias (*name) only after its anchor's node has ended");

    public static ConfigRule OneDocument { get; } = new("", "keep a single document (remove '---')");

    public static ConfigRule TopLevel { get; } = new("",
        "write the sections ntp, nts-ke, clock, sources and metrics as 'key: value' lines, e.g. `clock: { local: { stratum: 10 } }`");

    public static ConfigRule DuplicateKey { get; } = new("", "keep one of them");

    public static ConfigRule NoTimeSource { get; } = new("",
        "list upstream servers under sources, e.g. `sources: [{ ntp: { address: \"ntp.example.net\" } }]`, "
        + "or serve the host clock with clock.local: `clock: { local: { stratum: 10 } }`");

    public static ConfigRule RequireNtsWithoutNts { get; } = new("",
        "add an nts-ke section, e.g. `nts-ke: { certificate: /etc/appliance/tls/fullchain.pem, private-key: /etc/appliance/tls/key.pem }`, or remove require-nts");

    public static ConfigRule SourceEntry { get; } = new("sources",
        "write each entry as its kind and its settings: `- ntp: { address: \"ntp.example.net\" }` (kinds: ntp, gpsd, pps, phc, ptp)");

    public static ConfigRule ListenEntry { get; } = new("ntp",
        "write a listen entry as an address or as a mapping: `listen: [\"0.0.0.0:123\", { address: \"0.0.0.0:4123\", require-nts: true }]`");

    public static ConfigRule PollOrder { get; } = new("sources[].ntp",
        "make minpoll at most maxpoll (log2 seconds: 6 = 64 s, 10 = 1024 s), e.g. `{ minpoll: 6, maxpoll: 10 }`");

    public static ConfigRule NtsOnly { get; } = new("sources[].ntp", "add `nts: true`, or remove name, trust and aeads");

    public static ConfigRule DenyKodWithoutRateLimit { get; } = new("ntp",
        "turn rate limiting on, e.g. `rate-limit: { interval: 2s }`, or deny without an answer: `access: { deny-action: ignore }`");

    public static ConfigRule SmearSharesAddress { get; } = new("ntp",
        "give the smear listener an address or port of its own, e.g. `smear: { listen: [\"0.0.0.0:1123\"] }`: one socket cannot serve both times");

    /// <summary>Every rule, for the test that checks their examples.</summary>
    public static IReadOnlyList<ConfigRule> All { get; } =
    [
        YamlSyntax, YamlIncomplete, YamlShape, OneDocument, TopLevel, DuplicateKey, NoTimeSource,
        RequireNtsWithoutNts, SourceEntry, ListenEntry, PollOrder, NtsOnly, DenyKodWithoutRateLimit,
        SmearSharesAddress,
    ];
}
