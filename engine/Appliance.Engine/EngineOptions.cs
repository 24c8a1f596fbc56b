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
    /// The longest a worker keeps polling its empty sockets before it sleeps. A sleep costs the thread
    /// a switch out and back in (a few µs of CPU on a VM) and adds the wake-up latency to the next
    /// request's T3 − T2; polling costs all the CPU it spins. Zero: never poll, sleep at once.
    /// </summary>
    public TimeSpan BusyPoll { get; init; } = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// True: each worker picks its window between 0 and <see cref="BusyPoll"/> from what it observes
    /// (<see cref="BusyPollGovernor"/>: the gaps to the next datagram against what its sleeps cost,
    /// per datagram), so that it polls only while that is cheaper than sleeping. False: it polls for
    /// the whole <see cref="BusyPoll"/> each time its sockets run empty, whatever that costs.
    /// </summary>
    public bool AdaptiveBusyPoll { get; init; } = true;

    /// <summary>
    /// The longest a request may have waited in its socket's queue (from its kernel receive timestamp
    /// to the worker reaching it) and still be answered while the worker has a backlog; older ones are
    /// shed unanswered (<see cref="ResponseReason.Stale"/>). Past capacity every request would
    /// otherwise wait for the whole receive buffer and be answered too late to be of use. Zero: never shed.
    /// </summary>
    public TimeSpan MaxQueueDelay { get; init; } = DefaultMaxQueueDelay;

    public static readonly TimeSpan DefaultMaxQueueDelay = TimeSpan.FromMilliseconds(2);

    /// <summary>Each socket's receive buffer (SO_RCVBUFFORCE, else SO_RCVBUF up to rmem_max): large, so that bursts are queued, not dropped.</summary>
    public int ReceiveBufferBytes { get; init; } = 4 << 20;

    /// <summary>Null: every client is allowed.</summary>
    public AccessList? Access { get; init; }

    public DenyAction DenyAction { get; init; } = DenyAction.Ignore;

    /// <summary>Null: no rate limiting.</summary>
    public RateLimitSettings? RateLimit { get; init; }

    /// <summary>The NTS cookie keys; null: NTS requests are answered as plain NTP (clients reject that).</summary>
    public CookieKeyRingCell? NtsKeys { get; init; }

    /// <summary>Listen addresses (by index in <see cref="Listen"/>) that answer NTS requests only.</summary>
    public IReadOnlySet<int> RequireNts { get; init; } = new HashSet<int>();

    /// <summary>
    /// Listen addresses (by index in <see cref="Listen"/>) that serve <see cref="SmearState"/>, the
    /// leap-smeared time (docs/leap-smear.md), instead of the main state.
    /// </summary>
    public IReadOnlySet<int> Smeared { get; init; } = new HashSet<int>();

    /// <summary>What the <see cref="Smeared"/> addresses serve; required when there are any.</summary>
    public ServerStateCell? SmearState { get; init; }

    /// <summary>
    /// Responses each worker keeps the timestamps of for clients in interleaved mode (RFC 9769;
    /// <see cref="InterleavedTable"/>); 0: basic mode only.
    /// </summary>
    public int InterleavedEntries { get; init; } = DefaultInterleavedEntries;

    /// <summary>
    /// Per worker: 16,384 responses (512 KiB). Every response takes an entry, so one lasts 16,384 of
    /// the worker's responses: 55 s at 300 a second, longer than a 64 s poll only below 256 a second
    /// (chrony's table has the same limit); an entry lost costs its client one basic-mode answer.
    /// </summary>
    public const int DefaultInterleavedEntries = 16_384;
}
