using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;

namespace Appliance.Server.Configuration;

/// <summary>The whole configuration, validated. Every key is documented in docs/configuration.md.</summary>
public sealed record ApplianceConfig(NtpConfig Ntp, NtsKeConfig? NtsKe, ClockConfig Clock, IReadOnlyList<SourceConfig> Sources, MetricsConfig Metrics)
{
    public ControlConfig Control { get; init; } = ControlConfig.Auto;

    public LogConfig Log { get; init; } = LogConfig.Default;

    /// <summary>The user to switch to when started as root; null: stay the user that started it.</summary>
    public string? User { get; init; }

    /// <summary>The Roughtime server, or null when it is off (the default).</summary>
    public RoughtimeConfig? Roughtime { get; init; }
}

/// <summary>The control socket.</summary>
/// <param name="Socket">The socket's path; null when off. <see cref="ControlConfig.AutoPath"/> when not written.</param>
/// <param name="Explicit">The path was written in the file (not <c>auto</c>): a socket another running appliance holds is then an error, not a warning.</param>
public sealed record ControlConfig(string? Socket, bool Explicit)
{
    public static ControlConfig Auto => new(AutoPath(), false);

    /// <summary>
    /// Where <c>auto</c> puts the socket: in the runtime directory systemd made for the service
    /// (<c>RuntimeDirectory=appliance</c> sets <c>$RUNTIME_DIRECTORY</c>), else /run/appliance. The CLI
    /// looks in the same place.
    /// </summary>
    public static string AutoPath() =>
        Environment.GetEnvironmentVariable("RUNTIME_DIRECTORY") is { Length: > 0 } runtime
            ? System.IO.Path.Combine(runtime.Split(':')[0], "control.sock")
            : "/run/appliance/control.sock";
}

/// <param name="Level">The least severe messages logged.</param>
public sealed record LogConfig(Microsoft.Extensions.Logging.LogLevel Level)
{
    public static LogConfig Default { get; } = new(Microsoft.Extensions.Logging.LogLevel.Information);
}

/// <summary>A time source: one of the kinds below.</summary>
public abstract record SourceConfig;

/// <summary>An upstream NTP or NTS server to take time from.</summary>
/// <param name="Port">The NTP port, or with <paramref name="Nts"/> the NTS-KE port.</param>
/// <param name="TlsName">NTS: the name the certificate must carry, when not the host.</param>
/// <param name="Trust">NTS: a PEM file of trust anchors instead of the system's.</param>
/// <param name="Aeads">NTS: the AEADs offered in the key exchange, the preferred first.</param>
public sealed record NtpSourceConfig(string Host, int Port, bool Nts, string? TlsName, string? Trust, bool Iburst, int MinPoll, int MaxPoll, AeadList Aeads) : SourceConfig;

/// <summary>
/// AEADs in order of preference, compared and printed by their contents: a record compares a list
/// member by reference, which would make every reload see the list changed.
/// </summary>
public sealed record AeadList(IReadOnlyList<AeadAlgorithm> Items)
{
    public bool Equals(AeadList? other) => other is not null && Items.SequenceEqual(other.Items);

    public override int GetHashCode() => Items.Aggregate(17, (hash, aead) => (hash * 31) + (int)aead);

    public override string ToString() => $"[{string.Join(", ", Items.Select(AeadAlgorithms.Name))}]";
}

/// <summary>A gpsd to take GPS time and PPS edges from.</summary>
/// <param name="Delay">The uncertainty window of serial time.</param>
/// <param name="Offset">Added to serial time (the receiver's known lateness).</param>
public sealed record GpsdSourceConfig(string Host, int Port, bool Pps, TimeSpan Delay, TimeSpan Offset, int MinSatellites) : SourceConfig;

/// <summary>A kernel PPS device (RFC 2783).</summary>
/// <param name="Lock">The source (as named in metrics) whose time of day numbers the pulses; null: the disciplined clock.</param>
public sealed record PpsSourceConfig(string Device, bool ClearEdge, string? Lock, TimeSpan MaxDeviation) : SourceConfig;

/// <summary>A PTP hardware clock.</summary>
/// <param name="UtcOffset">PHC time minus UTC (37 s for a PHC on TAI).</param>
public sealed record PhcSourceConfig(string Device, int Poll, TimeSpan UtcOffset) : SourceConfig;

/// <summary>A PTP master reached over UDP/IPv4 on an interface (slave-only ordinary clock).</summary>
/// <param name="DelayInterval">log2 seconds between Delay_Req messages.</param>
public sealed record PtpSourceConfig(string Interface, byte Domain, int DelayInterval) : SourceConfig;

/// <param name="Workers">Worker threads; 0 means one per core.</param>
/// <param name="CpuAffinity">CPUs to pin workers to, or null for no pinning.</param>
/// <param name="BackgroundNice">Nice steps below the workers for every other thread (<c>ntp.background-nice</c>).</param>
/// <param name="RateLimit">Null when rate limiting is off.</param>
/// <param name="RequireNts">Per listen address (same order): answer NTS requests only.</param>
public sealed record NtpConfig(
    IReadOnlyList<IPEndPoint> Listen,
    IReadOnlyList<bool> RequireNts,
    int Workers,
    int Batch,
    IReadOnlyList<int>? CpuAffinity,
    int BackgroundNice,
    bool HardwareTimestamps,
    TimeSpan BusyPoll,
    RateLimitSettings? RateLimit,
    AccessList Access,
    DenyAction DenyAction)
{
    /// <summary>The worker count with "auto" resolved to the cores this process may use.</summary>
    public int EffectiveWorkers => Workers > 0 ? Workers : Environment.ProcessorCount;

    /// <summary>The smear listener (<c>ntp.smear</c>); its address list is empty when it is off.</summary>
    public SmearConfig Smear { get; init; } = SmearConfig.Off;

    /// <summary>Answer interleaved-mode requests in interleaved mode (RFC 9769).</summary>
    public bool Interleaved { get; init; } = true;

    /// <summary>Shed requests that waited longer than this while a worker is overloaded; zero: never (<c>ntp.max-queue-delay</c>).</summary>
    public TimeSpan MaxQueueDelay { get; init; } = TimeSpan.FromMilliseconds(2);
}

/// <summary>The leap-smear listener (docs/leap-smear.md).</summary>
/// <param name="Listen">Its addresses; none: off.</param>
/// <param name="ReferenceId">The reference id it serves while synchronised (four ASCII bytes, NUL-padded, RFC 5905 §7.3).</param>
/// <param name="RequireNts">Answer NTS requests only (<c>ntp.require-nts</c>, the default for every listen address).</param>
public sealed record SmearConfig(IReadOnlyList<IPEndPoint> Listen, uint ReferenceId, bool RequireNts = false)
{
    /// <summary>"SMER": the default reference id.</summary>
    public const uint DefaultReferenceId = 0x534D4552;

    public static SmearConfig Off { get; } = new([], DefaultReferenceId);

    public bool Enabled => Listen.Count > 0;
}

public enum ClockMode
{
    /// <summary>Steer CLOCK_REALTIME; serve kernel timestamps as they are (production).</summary>
    Kernel,

    /// <summary>Never touch the system clock; serve kernel timestamps through the published transform.</summary>
    Software,
}

/// <param name="Local">Serve the host clock at this stratum when no source is usable; null for never.</param>
/// <param name="LeapSeconds">A leap-seconds.list file (IERS/NIST format), or null to follow the sources' leap bits.</param>
/// <param name="Holdover">How long to serve the free-running estimate after the sources are lost.</param>
/// <param name="StepThreshold">Offsets beyond this are stepped, smaller ones slewed.</param>
/// <param name="PanicThreshold">Offsets beyond this are refused (after the first setting of the clock).</param>
/// <param name="MinSources">Survivors needed before the clock is disciplined.</param>
/// <param name="LastKnownTime">clock.last-known-time, <c>auto</c> resolved by the mode; null when off.</param>
/// <param name="SkipCertificateDates">clock.skip-certificate-dates: clock updates before NTS-KE checks certificate dates.</param>
/// <param name="Roughtime">clock.roughtime: the cold-start bootstrap's servers.</param>
/// <param name="RoughtimeQuorum">clock.roughtime-quorum, <c>auto</c> resolved to a majority.</param>
public sealed record ClockConfig(ClockMode Mode, LocalReferenceConfig? Local, string? LeapSeconds = null, TimeSpan? Holdover = null,
    TimeSpan? StepThreshold = null, TimeSpan? PanicThreshold = null, int MinSources = 1, string? LastKnownTime = null, int SkipCertificateDates = 0,
    RoughtimeServerList? Roughtime = null, int RoughtimeQuorum = 1)
{
    /// <summary>Where <c>auto</c> keeps the last known time in kernel mode (systemd's StateDirectory=appliance).</summary>
    public const string DefaultLastKnownTime = "/var/lib/appliance/last-known-time";
}

/// <summary>A Roughtime server the cold-start bootstrap asks (clock.roughtime[]).</summary>
/// <param name="PublicKey">Its long-term Ed25519 public key, 32 bytes.</param>
public sealed record RoughtimeServerConfig(string Host, int Port, byte[] PublicKey)
{
    public string Name => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    public bool Equals(RoughtimeServerConfig? other) =>
        other is not null && Host == other.Host && Port == other.Port && PublicKey.AsSpan().SequenceEqual(other.PublicKey);

    public override int GetHashCode() => HashCode.Combine(Host, Port);
}

/// <summary>clock.roughtime, compared by its entries.</summary>
public sealed record RoughtimeServerList(IReadOnlyList<RoughtimeServerConfig> Items)
{
    public static RoughtimeServerList Empty { get; } = new([]);

    public bool Equals(RoughtimeServerList? other) => other is not null && Items.SequenceEqual(other.Items);

    public override int GetHashCode() => Items.Count;
}

/// <summary>Serve the host clock as a reference of this stratum (like chrony's <c>local stratum N</c>).</summary>
public sealed record LocalReferenceConfig(byte Stratum);

/// <summary>Where /metrics is served; null when off.</summary>
public sealed record MetricsConfig(IPEndPoint? Listen);

/// <summary>The Roughtime server (RFC 10049): where it listens, its long-term key's file, how long an online key serves.</summary>
public sealed record RoughtimeConfig(IReadOnlyList<IPEndPoint> Listen, bool Tcp, string Key, TimeSpan OnlineKeyLifetime);

/// <summary>The NTS-KE server (RFC 8915 §4) and the cookie keys the NTP path shares with it.</summary>
/// <param name="NtpServer">Host for the NTPv4 Server record, or null to name none.</param>
/// <param name="NtpPort">Port for the NTPv4 Port record, or null to send none.</param>
/// <param name="RequestTimeout">With <paramref name="HandshakeTimeout"/>, the one deadline of an exchange from accept.</param>
/// <param name="ClientConcurrent">Connections one client (IPv4 address, IPv6 /64) may hold open at once.</param>
/// <param name="Access">Who may connect: <c>ntp.access</c>, applied at accept before any TLS work.</param>
/// <param name="Aeads">The AEADs agreed to; the client's order picks among them (RFC 8915 §4.1.5).</param>
public sealed record NtsKeConfig(
    IReadOnlyList<IPEndPoint> Listen,
    string Certificate,
    string PrivateKey,
    NtsKeysConfig Keys,
    string? NtpServer,
    ushort? NtpPort,
    int MaxConnections,
    TimeSpan HandshakeTimeout,
    TimeSpan IdleTimeout,
    TimeSpan RequestTimeout,
    int MaxRequest,
    int ClientConnections,
    TimeSpan ClientInterval,
    int ClientConcurrent,
    AccessList Access,
    AeadList Aeads);

/// <summary>The master-key ring: where it is kept, how often it turns, how many old keys still open cookies.</summary>
/// <param name="FleetSecret">A file holding the fleet secret, or null for random keys of this appliance alone.</param>
public sealed record NtsKeysConfig(string Storage, TimeSpan Rotation, int Keep, string? FleetSecret);
