using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Nts;

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

    /// <summary>
    /// How long a worker keeps polling its sockets without blocking after the last datagram. A worker
    /// that sleeps pays the kernel's (and, in a VM, the hypervisor's) wake-up latency on the next
    /// packet, which lands between its receive and transmit timestamps. Zero: always block.
    /// </summary>
    public TimeSpan BusyPoll { get; init; } = TimeSpan.FromMicroseconds(50);

    /// <summary>Null: every client is allowed.</summary>
    public AccessList? Access { get; init; }

    public DenyAction DenyAction { get; init; } = DenyAction.Ignore;

    /// <summary>Null: no rate limiting.</summary>
    public RateLimitSettings? RateLimit { get; init; }

    /// <summary>The NTS cookie keys; null: NTS requests are answered as plain NTP (clients reject that).</summary>
    public CookieKeyRingCell? NtsKeys { get; init; }

    /// <summary>Listen addresses (by index in <see cref="Listen"/>) that answer NTS requests only.</summary>
    public IReadOnlySet<int> RequireNts { get; init; } = new HashSet<int>();
}
