using System.Net;
using Appliance.Protocol;

namespace Appliance.Engine;

/// <summary>How the packet engine runs: addresses, workers, batches and the client policy.</summary>
public sealed record EngineOptions
{
    public required IReadOnlyList<IPEndPoint> Listen { get; init; }

    /// <summary>Worker threads; each owns one socket per listen address (SO_REUSEPORT group).</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Datagrams per recvmmsg/sendmmsg.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>CPUs to pin workers to (worker i → CpuAffinity[i % n]); null: no pinning.</summary>
    public IReadOnlyList<int>? CpuAffinity { get; init; }

    public bool HardwareTimestamps { get; init; }

    /// <summary>Null: every client is allowed.</summary>
    public AccessList? Access { get; init; }

    public DenyAction DenyAction { get; init; } = DenyAction.Ignore;

    /// <summary>Null: no rate limiting.</summary>
    public RateLimitSettings? RateLimit { get; init; }
}
