namespace Appliance.Engine;

/// <summary>
/// One socket's overload rule (issue #20, docs/overload.md): whether its worker sheds stale
/// requests now, and the receive buffer the socket should have. Clock readings are passed in, so
/// the rule is tested with injected times; the worker calls it once per receive, no allocation.
/// </summary>
internal sealed class QueueGovernor
{
    /// <summary>
    /// How long a queue must stand (every receive full, its oldest request past the budget) before
    /// the worker sheds, how long it goes on after its last shed request, and how often the buffer
    /// changes: CoDel's interval (RFC 8289 §3: a minimum sojourn time over the target for an
    /// interval), which tells a standing queue (overload) from a burst or a stall of the host that
    /// the worker drains by itself.
    /// </summary>
    public const long IntervalNanoseconds = 100_000_000;

    /// <summary>The least a shedding worker lowers a socket's receive buffer to (a SO_RCVBUF value).</summary>
    public const int MinBuffer = 64 << 10;

    private readonly long _budget;
    private readonly int _opened;
    private long _behindSince;
    private long _lastShed;
    private long _lookedAt;
    private bool _shedSinceChange;
    private int _receives;
    private int _fullReceives;
    private int _standingReceives;

    /// <param name="budgetNanoseconds">ntp.max-queue-delay.</param>
    /// <param name="openedBuffer">The receive buffer in force when the socket opened (after the kernel's rmem_max cap): the most it grows back to.</param>
    /// <param name="monotonic">Now, on the monotonic clock.</param>
    public QueueGovernor(long budgetNanoseconds, int openedBuffer, long monotonic)
    {
        _budget = budgetNanoseconds;
        _opened = Math.Max(MinBuffer, openedBuffer);
        Buffer = _opened;
        _lookedAt = monotonic;
    }

    /// <summary>The receive buffer the socket should have now (a SO_RCVBUF value).</summary>
    public int Buffer { get; private set; }

    /// <summary>
    /// The arrival (system clock) before which this receive's requests are shed, or 0 for none.
    /// The worker sheds while its queue stands: each receive full, and the oldest request of each
    /// (the first: the queue is FIFO) past the budget, for a whole interval; and goes on until it
    /// has shed nothing for an interval. A burst, or a stall of the host the worker catches up
    /// from, is answered whole, however late; a lone request always is. (Shedding does not end at
    /// the first receive that comes back less than full: a worker that sheds dequeues fast enough
    /// to empty its queue now and then while still overloaded, and each restart would wait out
    /// another interval of a standing queue, 35 ms deep at 1.5× with a 4 MiB buffer.)
    /// </summary>
    /// <param name="full">The receive filled the batch.</param>
    /// <param name="oldestArrival">The kernel's receive timestamp of its first request (0: none).</param>
    public long ShedBefore(bool full, long oldestArrival, long realtime, long monotonic)
    {
        _receives++;
        long before = realtime - _budget;
        if (!full || !IsStale(oldestArrival, before))
        {
            _behindSince = 0;
        }
        else if (_behindSince == 0)
        {
            _behindSince = monotonic;
        }
        if (full)
        {
            _fullReceives++;
        }
        if (_behindSince != 0)
        {
            _standingReceives++;
        }
        bool overloaded = (_behindSince != 0 && monotonic - _behindSince >= IntervalNanoseconds)
            || (_lastShed != 0 && monotonic - _lastShed < IntervalNanoseconds);
        return overloaded ? before : 0;
    }

    /// <summary>The worker shed part of the receive just ruled on.</summary>
    public void Shed(long monotonic)
    {
        _lastShed = monotonic;
        _shedSinceChange = true;
    }

    /// <summary>
    /// Past capacity, a request the worker sheds still costs it a dequeue: at 3× its capacity,
    /// most of its time; and a stale request of a client within its rate is answered, not shed. So
    /// an interval in which most receives found the queue standing (full, the oldest request past
    /// the budget) halves the buffer (to at least <see cref="MinBuffer"/>): the kernel then drops
    /// the excess as it arrives, at no cost to the worker, and the queue holds about what the
    /// worker answers within the budget, as chronyd's default-sized buffer does. A queue that stood
    /// for a moment only (a stall of the host, drained by shedding) keeps its buffer: the kernel
    /// drops by arrival, blind to who sent what, and such a backlog is better drained than lost. The buffer grows back (a doubling per interval since it was last
    /// looked at, so an idle socket is back to full size at its first receive) only after an
    /// interval without shedding in which most receives came back less than full: the queue was
    /// empty most of the time. A queue that stays full at the lowered size is overload the kernel is shedding
    /// for the worker; growing then would only let it stand again.
    /// </summary>
    /// <returns>True when <see cref="Buffer"/> changed, to be set on the socket.</returns>
    public bool AdjustBuffer(long monotonic)
    {
        long elapsed = monotonic - _lookedAt;
        if (elapsed < IntervalNanoseconds)
        {
            return false;
        }
        int wanted = Buffer;
        if (_standingReceives * 2 > _receives)
        {
            wanted = Math.Max(MinBuffer, Buffer / 2);
        }
        else if (!_shedSinceChange && _fullReceives * 2 < _receives)
        {
            int doublings = (int)Math.Min(31, elapsed / IntervalNanoseconds);
            wanted = (int)Math.Min(_opened, (long)Buffer << doublings);
        }
        _lookedAt = monotonic;
        _receives = _fullReceives = _standingReceives = 0;
        _shedSinceChange = false;
        bool changed = wanted != Buffer;
        Buffer = wanted;
        return changed;
    }

    /// <summary>
    /// True when a request the kernel stamped at <paramref name="arrival"/> (its software receive
    /// timestamp; 0: none) arrived before <paramref name="shedBefore"/>. One that seems to have waited
    /// over a second arrived before a step of the system clock, not in a queue (a receive buffer holds
    /// milliseconds): it is answered.
    /// </summary>
    public static bool IsStale(long arrival, long shedBefore) =>
        arrival != 0 && arrival < shedBefore && shedBefore - arrival < 1_000_000_000;
}
