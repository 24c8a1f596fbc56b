using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Server.Metrics;

/// <summary>
/// The NTP workers' counters summed over all workers at one moment: what /metrics exposes and what
/// <c>appliance serverstats</c> prints. Workers only increment their own counters (DESIGN.md boundary 5);
/// this reads them, a value possibly a request behind.
/// </summary>
public sealed class ServerStatistics
{
    private readonly long[,] _outcomes = new long[OutcomeNames.ActionCount, OutcomeNames.ReasonCount];
    private readonly long[,] _nts = new long[OutcomeNames.ActionCount, OutcomeNames.ReasonCount];
    private readonly long[] _timestamps = new long[TimestampSourceNames.Count];
    private readonly long[] _transmitTimestamps = new long[TimestampSourceNames.Count];

    private ServerStatistics(IReadOnlyList<NtpWorker> workers)
    {
        PerWorker = new long[workers.Count];
        foreach (NtpWorker worker in workers)
        {
            WorkerCounters counters = worker.Counters;
            PerWorker[worker.Index] = counters.Received;
            Received += counters.Received;
            SendErrors += counters.SendErrors;
            ReceiveErrors += counters.ReceiveErrors;
            Restarts += counters.Restarts;
            WorkerAllocatedBytes += counters.AllocatedBytes;
            CookiesIssued += counters.CookiesIssued;
            TableEntries += worker.RateLimiter?.Count ?? 0;
            TableCapacity += worker.RateLimiter?.Capacity ?? 0;
            TableEvictions += worker.RateLimiter?.Evictions ?? 0;
            for (int s = 0; s < _timestamps.Length; s++)
            {
                _timestamps[s] += counters.Timestamps((TimestampSource)s);
                _transmitTimestamps[s] += counters.TransmitTimestamps((TimestampSource)s);
            }
            for (int a = 0; a < OutcomeNames.ActionCount; a++)
            {
                for (int r = 0; r < OutcomeNames.ReasonCount; r++)
                {
                    _outcomes[a, r] += counters.Get((ResponseAction)a, (ResponseReason)r);
                    _nts[a, r] += counters.Get((ResponseAction)a, (ResponseReason)r, nts: true);
                }
            }
        }
    }

    public static ServerStatistics Collect(NtpEngine engine) => new(engine.Workers);

    /// <summary>
    /// The requests received and how they ended (answered, KoD, dropped), summed over every worker
    /// without a whole <see cref="Collect"/>: what the once-a-second sample keeps for the rates by outcome.
    /// </summary>
    public static RequestTotals Totals(NtpEngine engine)
    {
        long received = 0, answered = 0, kod = 0, dropped = 0, shed = 0;
        foreach (NtpWorker worker in engine.Workers)
        {
            WorkerCounters counters = worker.Counters;
            received += counters.Received;
            for (int r = 0; r < OutcomeNames.ReasonCount; r++)
            {
                answered += counters.Get(ResponseAction.Respond, (ResponseReason)r);
                kod += counters.Get(ResponseAction.KissOfDeath, (ResponseReason)r);
                dropped += counters.Get(ResponseAction.Drop, (ResponseReason)r);
            }
            shed += counters.Get(ResponseAction.Drop, ResponseReason.Stale);
        }
        return new RequestTotals(received, answered, kod, dropped, shed);
    }

    /// <summary>Datagrams received by each worker, by worker index.</summary>
    public long[] PerWorker { get; }

    public long Received { get; }
    public long SendErrors { get; }
    public long ReceiveErrors { get; }
    public long Restarts { get; }
    public long WorkerAllocatedBytes { get; }

    /// <summary>NTS cookies sent in NTP responses.</summary>
    public long CookiesIssued { get; }

    public long TableEntries { get; }
    public long TableCapacity { get; }

    /// <summary>Clients the rate-limit tables dropped to make room for new ones.</summary>
    public long TableEvictions { get; }

    /// <summary>Requests (plain and NTS) that ended in <paramref name="action"/> for <paramref name="reason"/>.</summary>
    public long Outcome(ResponseAction action, ResponseReason reason) => _outcomes[(int)action, (int)reason];

    /// <summary>NTS requests alone.</summary>
    public long NtsOutcome(ResponseAction action, ResponseReason reason) => _nts[(int)action, (int)reason];

    /// <summary>Requests (plain and NTS) that ended in <paramref name="action"/>, any reason.</summary>
    public long Total(ResponseAction action) => Sum(_outcomes, action);

    public long NtsTotal(ResponseAction action) => Sum(_nts, action);

    /// <summary>Requests whose receive timestamp came from <paramref name="source"/>.</summary>
    public long Timestamps(TimestampSource source) => _timestamps[(int)source];

    /// <summary>Time responses whose transmit timestamp came from <paramref name="source"/>.</summary>
    public long TransmitTimestamps(TimestampSource source) => _transmitTimestamps[(int)source];

    private static long Sum(long[,] table, ResponseAction action)
    {
        long sum = 0;
        for (int r = 0; r < OutcomeNames.ReasonCount; r++)
        {
            sum += table[(int)action, r];
        }
        return sum;
    }
}

/// <summary>Request counters at one moment (or, as rates, per second): received, and each action they ended in.</summary>
/// <param name="Answered">Time responses (plain and NTS, as <see cref="ServerStatistics.Total"/> of Respond).</param>
/// <param name="KissOfDeath">Kiss-o'-Death responses and NTS NAKs.</param>
/// <param name="Dropped">Requests given no response.</param>
/// <param name="Shed">Of those dropped, the ones shed as stale (a worker behind, docs/overload.md).</param>
public readonly record struct RequestTotals(long Received, long Answered, long KissOfDeath, long Dropped, long Shed = 0);
