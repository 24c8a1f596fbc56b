using System.Net;

namespace Appliance.Server.Configuration;

/// <summary>The whole configuration, validated. Every key is documented in docs/configuration.md.</summary>
public sealed record ApplianceConfig(NtpConfig Ntp, ClockConfig Clock, MetricsConfig Metrics);

public sealed record NtpConfig(IReadOnlyList<IPEndPoint> Listen);

public enum ClockMode
{
    /// <summary>Steer CLOCK_REALTIME; serve kernel timestamps as they are (production).</summary>
    Kernel,

    /// <summary>Never touch the system clock; serve kernel timestamps through the published transform.</summary>
    Software,
}

public sealed record ClockConfig(ClockMode Mode, LocalReferenceConfig? Local);

/// <summary>Serve the host clock as a reference of this stratum (like chrony's <c>local stratum N</c>).</summary>
public sealed record LocalReferenceConfig(byte Stratum);

/// <summary>Where /metrics is served; null when off.</summary>
public sealed record MetricsConfig(IPEndPoint? Listen);
