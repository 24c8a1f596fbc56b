using System.Globalization;
using Appliance.Server.Configuration;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Migration;

/// <summary>An upstream NTP or NTS server (sources[].ntp).</summary>
public sealed record MigratedNtpSource
{
    public required string Host { get; init; }

    /// <summary>The port written, or null for the table's default (123, or 4460 with NTS).</summary>
    public int? Port { get; set; }

    public bool Nts { get; set; }

    public string? Trust { get; set; }

    /// <summary>AEAD names, the preferred first (chrony's ntsaeads), or null for the default.</summary>
    public List<string>? Aeads { get; set; }

    public bool? Iburst { get; set; }

    public int? MinPoll { get; set; }

    public int? MaxPoll { get; set; }
}

/// <summary>A gpsd (sources[].gpsd): chrony's SOCK and SHM refclocks fed by gpsd become one.</summary>
public sealed class MigratedGpsdSource
{
    public bool? Pps { get; set; }

    public TimeSpan? Delay { get; set; }

    public TimeSpan? Offset { get; set; }

    /// <summary>The refids of the chrony refclocks it replaces, for a PPS refclock's lock.</summary>
    public List<string> RefIds { get; } = [];
}

/// <summary>A kernel PPS device (sources[].pps).</summary>
public sealed class MigratedPpsSource
{
    public required string Device { get; init; }

    public bool Clear { get; set; }

    public string? Lock { get; set; }
}

/// <summary>A PTP hardware clock (sources[].phc).</summary>
public sealed class MigratedPhcSource
{
    public required string Device { get; init; }

    public int? Poll { get; set; }

    public required TimeSpan UtcOffset { get; set; }
}

/// <summary>The NTS-KE server (nts-ke).</summary>
public sealed class MigratedNtsKe
{
    public string? Certificate { get; set; }

    public string? PrivateKey { get; set; }

    /// <summary>Null: the table's default listen addresses.</summary>
    public List<string>? Listen { get; set; }

    public string? Storage { get; set; }

    public TimeSpan? Rotation { get; set; }

    public string? NtpServer { get; set; }

    public int? MaxConnections { get; set; }

    public int? ClientConnections { get; set; }

    public TimeSpan? ClientInterval { get; set; }

    /// <summary>AEAD names (chrony's ntsaeads), or null for the default.</summary>
    public List<string>? Aeads { get; set; }
}

/// <summary>
/// The appliance configuration a chrony.conf migrates to: only what the migration sets, each value
/// typed. <see cref="ToYaml"/> writes it through YamlDotNet's representation model with the key
/// names of <see cref="ConfigKeys"/>, so no text from the chrony file reaches the YAML except as a
/// quoted scalar; a value left null is not written and the table's default applies.
/// </summary>
public sealed class MigratedConfig
{
    public List<string>? Listen { get; set; }

    public bool? HardwareTimestamps { get; set; }

    /// <summary><c>rate-limit: off</c>.</summary>
    public bool RateLimitOff { get; set; }

    public TimeSpan? RateLimitInterval { get; set; }

    public int? RateLimitBurst { get; set; }

    public int? RateLimitLeak { get; set; }

    public int? RateLimitClients { get; set; }

    /// <summary>Null: the table's default access (everyone).</summary>
    public List<string>? Allow { get; set; }

    public List<string>? Deny { get; set; }

    public MigratedNtsKe? NtsKe { get; set; }

    /// <summary>Null: the table's default, <c>kernel</c>, which steers the clock as chronyd did.</summary>
    public string? ClockMode { get; set; }

    public int? LocalStratum { get; set; }

    public string? LeapSeconds { get; set; }

    public TimeSpan? StepThreshold { get; set; }

    public TimeSpan? PanicThreshold { get; set; }

    public int? MinSources { get; set; }

    public int? SkipCertificateDates { get; set; }

    /// <summary>In the order of the chrony file: <see cref="MigratedNtpSource"/>, <see cref="MigratedGpsdSource"/>, <see cref="MigratedPpsSource"/>, <see cref="MigratedPhcSource"/>.</summary>
    public List<object> Sources { get; } = [];

    public YamlMappingNode ToNode()
    {
        var root = new YamlMappingNode();
        var ntp = new YamlMappingNode();
        Add(ntp, K.NtpListen, Strings(Listen));
        Add(ntp, K.NtpHardwareTimestamps, Bool(HardwareTimestamps));
        if (RateLimitOff)
        {
            Add(ntp, K.NtpRateLimit, new YamlScalarNode("off"));
        }
        else
        {
            var rateLimit = new YamlMappingNode();
            Add(rateLimit, K.NtpRateLimitInterval, Duration(RateLimitInterval));
            Add(rateLimit, K.NtpRateLimitBurst, Number(RateLimitBurst));
            Add(rateLimit, K.NtpRateLimitLeak, Number(RateLimitLeak));
            Add(rateLimit, K.NtpRateLimitClients, Number(RateLimitClients));
            Add(ntp, K.NtpRateLimit, rateLimit);
        }
        var access = new YamlMappingNode();
        Add(access, K.NtpAccessAllow, Strings(Allow));
        Add(access, K.NtpAccessDeny, Strings(Deny));
        Add(ntp, K.NtpAccess, access);
        Add(root, K.Ntp, ntp);

        if (NtsKe is { } nts)
        {
            var ntsKe = new YamlMappingNode();
            Add(ntsKe, K.NtsKeListen, Strings(nts.Listen));
            Add(ntsKe, K.NtsKeCertificate, Text(nts.Certificate));
            Add(ntsKe, K.NtsKePrivateKey, Text(nts.PrivateKey));
            var keys = new YamlMappingNode();
            Add(keys, K.NtsKeKeysStorage, Text(nts.Storage));
            Add(keys, K.NtsKeKeysRotation, Duration(nts.Rotation));
            Add(ntsKe, K.NtsKeKeys, keys);
            Add(ntsKe, K.NtsKeNtpServer, Text(nts.NtpServer));
            Add(ntsKe, K.NtsKeMaxConnections, Number(nts.MaxConnections));
            Add(ntsKe, K.NtsKeAeads, Strings(nts.Aeads));
            var clientLimit = new YamlMappingNode();
            Add(clientLimit, K.NtsKeClientLimitConnections, Number(nts.ClientConnections));
            Add(clientLimit, K.NtsKeClientLimitInterval, Duration(nts.ClientInterval));
            Add(ntsKe, K.NtsKeClientLimit, clientLimit);
            root.Add(K.NtsKe.Name, ntsKe);
        }

        var clock = new YamlMappingNode();
        Add(clock, K.ClockMode, Text(ClockMode, quoted: false));
        if (LocalStratum is { } stratum)
        {
            clock.Add(K.ClockLocal.Name, new YamlMappingNode { { K.ClockLocalStratum.Name, Number(stratum)! } });
        }
        Add(clock, K.ClockLeapSeconds, Text(LeapSeconds));
        Add(clock, K.ClockStepThreshold, Duration(StepThreshold));
        Add(clock, K.ClockPanicThreshold, Duration(PanicThreshold));
        Add(clock, K.ClockMinSources, Number(MinSources));
        Add(clock, K.ClockSkipCertificateDates, Number(SkipCertificateDates));
        Add(root, K.Clock, clock);

        if (Sources.Count > 0)
        {
            var sources = new YamlSequenceNode();
            foreach (object source in Sources)
            {
                sources.Add(Source(source));
            }
            root.Add(K.Sources.Name, sources);
        }
        return root;
    }

    /// <summary>The YAML text, with a header saying where it came from.</summary>
    public string ToYaml(string header)
    {
        var stream = new YamlStream(new YamlDocument(ToNode()));
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        foreach (string line in header.Split('\n'))
        {
            // The header is the migration's own text (file names are the caller's), one comment per line.
            writer.WriteLine("# " + line.Replace('\r', ' '));
        }
        stream.Save(writer, assignAnchors: false);
        string text = writer.ToString();
        // YamlStream ends a document with "...": one document, no marker needed.
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text.Replace("\r\n...\r\n", "\r\n", StringComparison.Ordinal);
    }

    private static YamlMappingNode Source(object source)
    {
        var body = new YamlMappingNode();
        ConfigKey kind;
        switch (source)
        {
            case MigratedNtpSource ntp:
                kind = K.NtpSource;
                Add(body, K.NtpSourceAddress, Text(HostPort(ntp.Host, ntp.Port)));
                Add(body, K.NtpSourceNts, ntp.Nts ? Bool(true) : null);
                Add(body, K.NtpSourceTrust, Text(ntp.Trust));
                Add(body, K.NtpSourceAeads, Strings(ntp.Aeads));
                Add(body, K.NtpSourceIburst, Bool(ntp.Iburst));
                Add(body, K.NtpSourceMinPoll, Number(ntp.MinPoll));
                Add(body, K.NtpSourceMaxPoll, Number(ntp.MaxPoll));
                break;
            case MigratedGpsdSource gpsd:
                kind = K.GpsdSource;
                Add(body, K.GpsdSourcePps, Bool(gpsd.Pps));
                Add(body, K.GpsdSourceDelay, Duration(gpsd.Delay));
                Add(body, K.GpsdSourceOffset, Duration(gpsd.Offset));
                break;
            case MigratedPpsSource pps:
                kind = K.PpsSource;
                Add(body, K.PpsSourceDevice, Text(pps.Device));
                Add(body, K.PpsSourceEdge, pps.Clear ? new YamlScalarNode("clear") : null);
                Add(body, K.PpsSourceLock, Text(pps.Lock));
                break;
            case MigratedPhcSource phc:
                kind = K.PhcSource;
                Add(body, K.PhcSourceDevice, Text(phc.Device));
                Add(body, K.PhcSourcePoll, Number(phc.Poll));
                Add(body, K.PhcSourceUtcOffset, Duration(phc.UtcOffset));
                break;
            default:
                throw new InvalidOperationException($"no source kind for {source.GetType().Name}");
        }
        // An entry written as "kind: {}" takes every default of its kind.
        return new YamlMappingNode { { kind.Name, body } };
    }

    /// <summary>host:port, an IPv6 literal in brackets; just the host when no port was written.</summary>
    public static string HostPort(string host, int? port) =>
        port is not { } p ? host
        : host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{p.ToString(CultureInfo.InvariantCulture)}"
        : $"{host}:{p.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Adds <paramref name="value"/> under the key's name; nothing for null or an empty mapping (the table's defaults apply).</summary>
    private static void Add(YamlMappingNode mapping, ConfigKey key, YamlNode? value)
    {
        if (value is null or YamlMappingNode { Children.Count: 0 })
        {
            return;
        }
        mapping.Add(key.Name, value);
    }

    private static YamlScalarNode? Text(string? value, bool quoted = true) =>
        value is null ? null : new YamlScalarNode(value) { Style = quoted ? ScalarStyle.DoubleQuoted : ScalarStyle.Plain };

    private static YamlScalarNode? Bool(bool? value) => value is { } b ? new YamlScalarNode(b ? "true" : "false") : null;

    private static YamlScalarNode? Number(int? value) => value is { } n ? new YamlScalarNode(n.ToString(CultureInfo.InvariantCulture)) : null;

    private static YamlScalarNode? Duration(TimeSpan? value) =>
        value is not { } d ? null
        : d == TimeSpan.Zero ? new YamlScalarNode("0s")
        : d < TimeSpan.Zero ? new YamlScalarNode("-" + DurationText.Format(-d))
        : new YamlScalarNode(DurationText.Format(d));

    private static YamlSequenceNode? Strings(List<string>? values)
    {
        if (values is null)
        {
            return null;
        }
        var sequence = new YamlSequenceNode { Style = YamlDotNet.Core.Events.SequenceStyle.Flow };
        foreach (string value in values)
        {
            sequence.Add(new YamlScalarNode(value) { Style = ScalarStyle.DoubleQuoted });
        }
        return sequence;
    }
}
