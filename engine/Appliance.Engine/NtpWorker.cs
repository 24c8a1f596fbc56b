using System.Security.Cryptography;
using Appliance.Protocol;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>
/// One worker: a thread that owns one socket per listen address, one batch, one rate-limit table and
/// its counters. Each turn receives a batch with one recvmmsg (kernel receive timestamps), answers
/// every request in place with the pure responder, takes the transmit timestamp once just before
/// sending, and sends the batch with one sendmmsg. Nothing on that path allocates.
/// </summary>
public sealed class NtpWorker : IDisposable
{
    /// <summary>How long an epoll wait blocks with nothing to read, so the worker can notice a stop request (as the sockets' receive timeout).</summary>
    private const int PollerTimeoutMilliseconds = 250;

    /// <summary>A timed blocking call whose wall time exceeds its CPU time by more than this slept.</summary>
    private const long OffCpuNanoseconds = 1000;

    private readonly TimestampedSocket[] _sockets;
    private readonly ServerStateCell _state;

    /// <summary>Per socket: the state it serves (the main one, or the smear listener's).</summary>
    private readonly ServerStateCell[] _states;
    private readonly PacketBatch _batch;

    /// <summary>The kernel's looped transmit timestamps, read from the sockets' error queues; null when none are asked for.</summary>
    private readonly PacketBatch? _looped;

    /// <summary>
    /// How long after its latest request a socket's error queue is still read before each batch
    /// when stamps are missing: a NIC's stamp comes from its driver's interrupt or work item,
    /// milliseconds after the send returned; past this they are taken as lost.
    /// </summary>
    private const long LateStampNanoseconds = 100_000_000;

    /// <summary>Per socket: transmit timestamps asked for and not read yet (a driver may stamp after the send returns).</summary>
    private readonly int[] _outstanding;

    /// <summary>Per socket: when (monotonic) a send last asked for transmit timestamps.</summary>
    private readonly long[] _askedAt;

    /// <summary>Per socket: its overload rule (issue #20); null with ntp.max-queue-delay off.</summary>
    private readonly QueueGovernor[]? _queues;
    private readonly BatchScratch _scratch;
    private readonly bool[] _requireNts;
    private readonly Poller? _poller;
    private readonly int? _cpu;
    private volatile WorkerPolicy _policy;
    private WorkerPolicy _applied;
    private readonly BusyPollGovernor _governor;
    private Thread? _thread;
    private int _osThreadId;
    private long _heartbeat;
    private volatile bool _stopping;

    public NtpWorker(int index, IReadOnlyList<TimestampedSocket> sockets, ServerStateCell state, EngineOptions options)
    {
        Index = index;
        _sockets = [.. sockets];
        _state = state;
        _batch = new PacketBatch(options.BatchSize);
        NtsPacketHandler? nts = options.NtsKeys is { } keys ? new NtsPacketHandler(keys, new CsprngBuffer(), options.BatchSize) : null;
        // The tables' hash keys are random per worker, so that nobody can aim at one of their sets.
        Span<ulong> seeds = stackalloc ulong[3];
        RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(seeds));
        _scratch = new BatchScratch(options.BatchSize, nts,
            options.InterleavedEntries > 0 ? new InterleavedTable(options.InterleavedEntries, seeds[2]) : null);
        _requireNts = Enumerable.Range(0, _sockets.Length).Select(options.RequireNts.Contains).ToArray();
        _states = Enumerable.Range(0, _sockets.Length)
            .Select(s => options.Smeared.Contains(s) ? options.SmearState ?? throw new ArgumentException("smeared listen addresses need a SmearState", nameof(options)) : state)
            .ToArray();
        _poller = _sockets.Length > 1 ? new Poller(_sockets) : null;
        _looped = _scratch.Interleaved is not null && _sockets.Any(socket => socket.TransmitTimestamps) ? new PacketBatch(options.BatchSize) : null;
        _outstanding = new int[_sockets.Length];
        _askedAt = new long[_sockets.Length];
        long maxQueueDelay = (long)(options.MaxQueueDelay.TotalMicroseconds * 1000);
        // Each grows its buffer back to what the socket opened with, which without CAP_NET_ADMIN is
        // net.core.rmem_max, not ReceiveBufferBytes: halvings from the larger figure would do nothing.
        _queues = maxQueueDelay > 0
            ? [.. _sockets.Select(socket => new QueueGovernor(maxQueueDelay,
                socket.ReceiveBuffer is > 0 and int opened ? opened : options.ReceiveBufferBytes, SystemClock.MonotonicNanoseconds()))]
            : null;
        _cpu = options.CpuAffinity is { Count: > 0 } cpus ? cpus[index % cpus.Count] : null;
        _policy = _applied = new WorkerPolicy(options.Access, options.DenyAction, options.RateLimit);
        _governor = new BusyPollGovernor((long)(options.BusyPoll.TotalMicroseconds * 1000), options.AdaptiveBusyPoll);
        if (options.RateLimit is { } rate)
        {
            // Each worker owns its share of the client table.
            int share = Math.Max(64, rate.Clients / Math.Max(1, options.Workers));
            RateLimiter = new RateLimiter(rate, share, seeds[0], seeds[1]);
        }
    }

    public int Index { get; }

    /// <summary>The worker thread's kernel id (its /proc/self/task entry) once it runs; 0 before.</summary>
    public int OsThreadId => Volatile.Read(ref _osThreadId);

    /// <summary>The busy-poll window the worker uses now (the governor's choice).</summary>
    public TimeSpan BusyPollWindow => TimeSpan.FromTicks(_governor.WindowNanoseconds / 100);

    public WorkerCounters Counters { get; } = new();

    /// <summary>
    /// Turns of the receive loop, idle wake-ups (every receive timeout, 250 ms) included: the
    /// watchdog's proof that the thread still runs its loop. One plain increment per turn, none per packet.
    /// </summary>
    public long Heartbeat => Volatile.Read(ref _heartbeat);

    /// <summary>This worker's interleaved-mode table (RFC 9769), or null when interleaved mode is off.</summary>
    public InterleavedTable? Interleaved => _scratch.Interleaved;

    /// <summary>This worker's client table, or null without rate limiting.</summary>
    public RateLimiter? RateLimiter { get; }

    public IReadOnlyList<TimestampedSocket> Sockets => _sockets;

    /// <summary>The policy the worker answered its latest batch by.</summary>
    public WorkerPolicy AppliedPolicy => Volatile.Read(ref _applied);

    /// <summary>The policy the worker answers by from its next batch on (a reload); see <see cref="NtpEngine.UpdatePolicy"/>.</summary>
    internal WorkerPolicy Policy
    {
        get => _policy;
        set => _policy = value;
    }

    /// <summary>Told about every failure of the loop; the worker restarts itself after <see cref="RestartPause"/>.</summary>
    public Action<NtpWorker, Exception>? OnFault { get; set; }

    /// <summary>Told about a problem the worker serves on despite (it could not be pinned to its CPU).</summary>
    public Action<NtpWorker, string>? OnWarning { get; set; }

    /// <summary>The pauses before a restart; set before <see cref="Start"/> (tests shorten them).</summary>
    public RestartBackoff Backoff { get; set; } = RestartBackoff.Default;

    /// <summary>The pause before the restart after the latest fault; read it in <see cref="OnFault"/>.</summary>
    public TimeSpan RestartPause { get; private set; }

    /// <summary>Called before each batch is answered. Tests use it to inject a failure.</summary>
    internal Action<NtpWorker>? BeforeBatch { get; set; }

    public void Start()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = $"ntp worker {Index}" };
        _thread.Start();
    }

    private void Run()
    {
        Volatile.Write(ref _osThreadId, OsThread.CurrentId());
        if (_cpu is int cpu && !ThreadAffinity.PinCurrentThread(cpu, out string error))
        {
            OnWarning?.Invoke(this, $"cannot pin worker {Index} to CPU {cpu}: {error}");
        }
        while (!_stopping)
        {
            long started = SystemClock.MonotonicNanoseconds();
            try
            {
                Warmup.RequestPath(_state.Current, _scratch.Nts);
                if (_states.Any(cell => cell != _state))
                {
                    // The smear listener's path too, with a smear in force (an hour to its leap).
                    var smear = new LeapSmear(SystemClock.RealtimeNanoseconds() + (3600 * LeapSmear.SecondNanoseconds), Insert: true, 0, StepSeen: false);
                    Warmup.RequestPath(_state.Current with { Smear = smear }, _scratch.Nts);
                }
                _sockets[0].WarmUp(_batch);
                Loop();
            }
            catch (Exception e)
            {
                // A worker's failure is logged and the worker restarted, never the process lost.
                Counters.CountRestart();
                TimeSpan ranFor = TimeSpan.FromTicks((SystemClock.MonotonicNanoseconds() - started) / 100);
                RestartPause = Backoff.Next(RestartPause, ranFor);
                OnFault?.Invoke(this, e);
                Thread.Sleep(RestartPause);
            }
        }
    }

    /// <summary>
    /// Each turn begins with the sockets found empty: poll them for the governor's window, then sleep
    /// in a blocking receive; serve what comes, and go on polling without sleeping while receives
    /// come back full. The governor learns from every idle period how long the gap to the next
    /// datagram was, and from a sampled sleep now and then what a sleep costs.
    /// </summary>
    private void Loop()
    {
        var policy = Adopt(_policy);
        long gap = 0;
        bool slept = false;
        long servedBefore = Counters.Received;
        while (!_stopping)
        {
            _heartbeat++;
            long idleSince = SystemClock.RealtimeNanoseconds();
            long received = Counters.Received;
            if (received != servedBefore)
            {
                _governor.RecordPeriod(gap, slept, (int)Math.Min(int.MaxValue, received - servedBefore));
            }
            long window = _governor.BeginIdle(out bool probe);
            long arrival = 0;
            bool full = false;
            if (window > 0)
            {
                long now;
                do
                {
                    arrival = PollOnce(ref policy, out full);
                    now = SystemClock.RealtimeNanoseconds();
                }
                while (arrival == 0 && now - idleSince < window && !_stopping);
                Counters.CountSpin(now - idleSince);
            }
            slept = arrival == 0;
            if (slept)
            {
                arrival = Sleep(ref policy, probe, out full);
                if (arrival == 0)
                {
                    continue; // stopping
                }
            }
            gap = arrival - idleSince;
            servedBefore = received;
            // A full batch leaves more queued; a short one means the queue was empty when it was taken.
            while (full && !_stopping && PollOnce(ref policy, out full) != 0)
            {
                _heartbeat++;
            }
        }
    }

    /// <summary>
    /// Blocks until a datagram arrives (the socket's receive timeout wakes it to check for a stop) and
    /// serves what came; returns the earliest arrival, or 0 when stopping. The sleeps the governor
    /// asks for are timed on the thread's CPU clock: its price of a sleep.
    /// </summary>
    private long Sleep(ref ServerPolicy policy, bool probe, out bool full)
    {
        full = false;
        while (!_stopping)
        {
            _heartbeat++;
            Counters.CountSleep();
            bool timed = _governor.BeginSleep(probe);
            long cpuBefore = timed ? OsThread.CpuNanoseconds() : 0;
            long calledAt = timed ? SystemClock.RealtimeNanoseconds() : 0;
            long arrival;
            long cpu = 0;
            long wall = 0;
            if (_poller is null)
            {
                int n = _sockets[0].Receive(_batch);
                if (timed)
                {
                    wall = SystemClock.RealtimeNanoseconds() - calledAt;
                    cpu = OsThread.CpuNanoseconds() - cpuBefore;
                }
                arrival = ArrivalOf(n);
                full = n == _batch.Capacity;
                Serve(0, n, ref policy);
            }
            else
            {
                int ready = _poller.Wait(PollerTimeoutMilliseconds);
                if (ready == 0)
                {
                    continue;
                }
                // A socket whose error queue holds a late transmit timestamp stays ready (EPOLLERR)
                // until it is read: read it here, or the wait would return at once for ever.
                for (int r = 0; _looped is not null && r < ready; r++)
                {
                    ReadTransmitTimestamps(_poller.Ready(r));
                }
                if (timed)
                {
                    wall = SystemClock.RealtimeNanoseconds() - calledAt;
                    cpu = OsThread.CpuNanoseconds() - cpuBefore;
                }
                arrival = PollOnce(ref policy, out full);
            }
            if (arrival != 0)
            {
                if (timed)
                {
                    // Off the CPU for a while inside the call: it slept (or, rarely, was preempted).
                    _governor.RecordSleep(arrival - calledAt, cpu, slept: wall - cpu > OffCpuNanoseconds);
                }
                return arrival;
            }
        }
        return 0;
    }

    /// <summary>One non-blocking receive on every socket, each batch served; the earliest arrival seen, or 0.</summary>
    private long PollOnce(ref ServerPolicy policy, out bool full)
    {
        long earliest = 0;
        full = false;
        for (int s = 0; s < _sockets.Length; s++)
        {
            int n = _sockets[s].ReceiveNoWait(_batch);
            long arrival = ArrivalOf(n);
            if (arrival != 0 && (earliest == 0 || arrival < earliest))
            {
                earliest = arrival;
            }
            full |= n == _batch.Capacity;
            Serve(s, n, ref policy);
        }
        return earliest;
    }

    /// <summary>
    /// When the first (earliest queued) datagram of the batch just received arrived, on the system
    /// clock: the kernel's software timestamp, or the clock now when there is none; 0 for no datagram.
    /// </summary>
    private long ArrivalOf(int received)
    {
        if (received <= 0)
        {
            return 0;
        }
        long stamped = _batch.SoftwareTimestamp(0);
        return stamped != 0 ? stamped : SystemClock.RealtimeNanoseconds();
    }

    private void Serve(int socketIndex, int received, ref ServerPolicy policy)
    {
        if (received <= 0)
        {
            if (received < 0)
            {
                Counters.CountReceiveError();
            }
            return;
        }
        BeforeBatch?.Invoke(this);
        // A reload's new policy, taken up between batches: one volatile read, no lock, no allocation.
        WorkerPolicy wanted = _policy;
        if (!ReferenceEquals(wanted, _applied))
        {
            policy = Adopt(wanted);
        }
        ServerState state = _states[socketIndex].Current;
        QueueGovernor? queue = _queues?[socketIndex];
        _scratch.ShedBefore = queue?.ShedBefore(received == _batch.Capacity, _batch.SoftwareTimestamp(0),
            SystemClock.RealtimeNanoseconds(), SystemClock.MonotonicNanoseconds()) ?? 0;
        // Late stamps (the NIC's) first, so that a client's next request finds its previous response's.
        if (_outstanding[socketIndex] > 0 && ReadTransmitTimestamps(socketIndex) == 0
            && SystemClock.MonotonicNanoseconds() - _askedAt[socketIndex] > LateStampNanoseconds)
        {
            _outstanding[socketIndex] = 0; // lost (the error queue was full, or the driver stamps none): stop looking before each batch
        }
        ProcessBatch(_batch, state, ref policy, Counters, _scratch, _requireNts[socketIndex]);
        StampAndSeal(_batch, state, _scratch, Counters);
        Counters.CountSendErrors(_sockets[socketIndex].Send(_batch));
        // After the send: the table's writes must not sit between the transmit timestamp and the wire.
        SaveInterleaved(_batch, _scratch);
        if (queue is not null)
        {
            long monotonic = SystemClock.MonotonicNanoseconds();
            if (_scratch.Shed > 0)
            {
                queue.Shed(monotonic);
            }
            if (queue.AdjustBuffer(monotonic))
            {
                _sockets[socketIndex].SetReceiveBuffer(queue.Buffer);
            }
        }
        if (_looped is not null && _scratch.TransmitRequests > 0 && _sockets[socketIndex].TransmitTimestamps)
        {
            // The software stamps of a send are queued before it returns (the driver stamps as it
            // takes the packet): read now, they are in the table before the client's next request.
            _outstanding[socketIndex] += _scratch.TransmitRequests;
            _askedAt[socketIndex] = SystemClock.MonotonicNanoseconds();
            ReadTransmitTimestamps(socketIndex);
        }
        Counters.SetAllocatedBytes(GC.GetAllocatedBytesForCurrentThread());
    }

    /// <summary>
    /// Reads the socket's error queue until it is empty (it is charged to the receive buffer: left
    /// full, it would drop requests) and puts each transmit timestamp into the interleaved table.
    /// Returns how many were read.
    /// </summary>
    private int ReadTransmitTimestamps(int socketIndex)
    {
        PacketBatch looped = _looped!;
        int total = 0;
        int n;
        do
        {
            n = _sockets[socketIndex].ReceiveTransmitTimestamps(looped);
            if (n > 0)
            {
                total += n;
                ApplyTransmitTimestamps(looped, _states[socketIndex].Current, _scratch, Counters);
            }
        }
        while (n == looped.Capacity);
        _outstanding[socketIndex] = Math.Max(0, _outstanding[socketIndex] - total);
        return total;
    }

    /// <summary>
    /// Puts the kernel's transmit timestamps of sent responses (looped back with the datagrams they
    /// stamped) into the interleaved table, in place of the daemon's reading saved at the send. Each
    /// is matched to its response by the receive timestamp the response carries, which is the table's
    /// key (as chrony's server does): nothing about the order of sends is kept, and a timestamp whose
    /// response is no longer held changes nothing.
    /// </summary>
    internal static void ApplyTransmitTimestamps(PacketBatch looped, ServerState state, BatchScratch scratch, WorkerCounters counters)
    {
        if (scratch.Interleaved is not { } table)
        {
            return;
        }
        SmearReading now = ReadNow(state);
        for (int i = 0; i < looped.Count; i++)
        {
            long stamped = looped.ReceiveTimestamp(i);
            ReadOnlySpan<byte> response = LoopedFrame.UdpPayload(looped.Payload(i)[..looped.Length(i)]);
            if (!looped.IsLoopedTransmit(i) || stamped == 0 || response.Length < NtpHeader.Length)
            {
                // No timestamp, or no UDP datagram found in what came back.
                counters.CountUnreadableTransmitTimestamp();
                continue;
            }
            TimestampSource source = looped.TimestampSource(i);
            var transmit = NtpResponder.MarkTransmit(NtpTimestamp.FromUnixNanoseconds(state.ServedTime(stamped, now)));
            bool saved = table.UpdateTransmit(NtpTimestamp.Read(response[NtpHeader.ReceiveOffset..]), transmit, (byte)source);
            counters.CountKernelTransmitTimestamp(source, saved);
        }
    }

    /// <summary>
    /// The policy for <paramref name="wanted"/>, on this worker's thread (the only one that touches its
    /// rate table): the table keeps every client's bucket and takes the new parameters. Without a table
    /// (rate limiting was off at start) a policy that asks for one limits nobody: the server reports
    /// that a restart is needed.
    /// </summary>
    private ServerPolicy Adopt(WorkerPolicy wanted)
    {
        _applied = wanted;
        if (wanted.RateLimit is { } rate && RateLimiter is { } limiter && !ReferenceEquals(rate, limiter.Settings))
        {
            limiter.UpdateSettings(rate);
        }
        return new ServerPolicy(wanted.Access, wanted.DenyAction, wanted.RateLimit is null ? null : RateLimiter);
    }

    /// <summary>
    /// Answers every datagram of the batch in place and marks the responses to send. The same code
    /// serves the socket loop and the in-memory engine of the benchmarks.
    /// </summary>
    internal static void ProcessBatch<TPolicy>(PacketBatch batch, ServerState state, ref TPolicy policy, WorkerCounters counters, BatchScratch scratch, bool requireNts = false)
        where TPolicy : struct, IClientPolicy
    {
        int count = batch.Count;
        counters.CountReceived(count);
        long fallback = 0;
        int pending = 0;
        // The rate limiter's clock, once per batch: monotonic, because the receive timestamps are on
        // the system clock, which steps (the appliance itself steps it in kernel mode, issue #14 item 10).
        long monotonic = SystemClock.MonotonicNanoseconds();
        // The smear listener's reading of now, once per batch: it tells the two passes of a repeated
        // leap second apart. The main listeners' states have no smear and read nothing more.
        SmearReading now = ReadNow(state);
        InterleavedTable? interleaved = scratch.Interleaved;
        scratch.TransmitRequests = 0;
        long shedBefore = scratch.ShedBefore;
        long previousRx = 0, previousStamp = 0;
        scratch.Shed = 0;
        for (int i = 0; i < count; i++)
        {
            scratch.Kind[i] = SlotKind.None;
            TimestampSource source = batch.TimestampSource(i);
            counters.CountTimestamp(source);
            if (shedBefore != 0 && QueueGovernor.IsStale(batch.SoftwareTimestamp(i), shedBefore)
                && !policy.WithinRate(batch.Source(i), monotonic))
            {
                // Before any parsing: an NTS request is shed without its cookie opened (issue #20).
                // Not a client the rate limiter knows to poll within its rate: the late answer is of
                // use to it (a spoofed flood's sources are over their rate, the victims of it are not).
                counters.Count(Outcome.Drop(ResponseReason.Stale));
                scratch.Shed++;
                continue;
            }
            long stamp = batch.ReceiveTimestamp(i);
            long rx = stamp;
            if (rx == 0)
            {
                // No kernel timestamp: the clock now is the best (late) estimate of the arrival, a
                // nanosecond apart per slot so that no two responses share a receive timestamp (the
                // interleaved state keys on them, RFC 9769 §2).
                rx = (fallback != 0 ? fallback : fallback = SystemClock.RealtimeNanoseconds()) + i;
            }
            else if (interleaved is not null && stamp == previousStamp)
            {
                // Datagrams the kernel coalesced (GRO, or a client's UDP GSO send on loopback) share
                // one receive stamp: a nanosecond apart, they keep their own keys in the interleaved
                // state. Only equal stamps: a queue need not be in stamp order (several NIC queues),
                // and moving an earlier stamp forward would misstate its arrival.
                rx = previousRx + 1;
            }
            previousStamp = stamp;
            previousRx = rx;
            if (batch.Truncated(i))
            {
                counters.Count(Outcome.Drop(ResponseReason.Oversized));
                continue;
            }
            Span<byte> payload = batch.Payload(i);
            var served = NtpTimestamp.FromUnixNanoseconds(state.ServedTime(rx, now));
            // RFC 9769 §2: the request's origin, receive and transmit decide interleaved mode; read before the response overwrites them.
            NtpTimestamp origin = default, receive = default, transmit = default;
            if (interleaved is not null)
            {
                served = NtpResponder.MarkReceive(served);
                origin = NtpTimestamp.Read(payload[NtpHeader.OriginOffset..]);
                receive = NtpTimestamp.Read(payload[NtpHeader.ReceiveOffset..]);
                transmit = NtpTimestamp.Read(payload[NtpHeader.TransmitOffset..]);
            }
            var context = new RequestContext(batch.Source(i), rx, served, monotonic);
            Outcome outcome = NtpResponder.Respond(payload, batch.Length(i), context, state, ref policy,
                scratch.Nts, i, requireNts, out int length);
            if (outcome.Action == ResponseAction.Deferred)
            {
                scratch.Kind[i] = SlotKind.NtsPending;
                pending++;
                continue;
            }
            counters.Count(outcome);
            batch.SetResponse(i, length);
            if (outcome.Action == ResponseAction.Respond)
            {
                scratch.Kind[i] = SlotKind.Plain;
                // Only time served in sync, and a plain header: a crypto-NAK or unsynchronised time stays basic.
                if (interleaved is not null && outcome.Reason == ResponseReason.Served && length == NtpHeader.Length
                    && NtpResponder.Interleave(payload, origin, receive, transmit, context.Client, interleaved, out byte carried))
                {
                    scratch.Kind[i] = SlotKind.Interleaved;
                    counters.CountInterleaved();
                    // The transmit timestamp it carries, by where it came from; and the kernel's of this
                    // one asked for, for the client's next request. Only clients that answer in the
                    // interleaved mode make the kernel loop their responses back.
                    counters.CountTransmitTimestamps((TimestampSource)carried, 1);
                    batch.RequestTransmitTimestamp(i);
                    scratch.TransmitRequests++;
                }
            }
        }
        if (pending > 0)
        {
            AnswerNts(batch, state, counters, scratch);
        }
    }

    /// <summary>The accepted NTS requests, <see cref="AesSivLanes.Width"/> at a time so their AES-SIV work runs side by side.</summary>
    private static void AnswerNts(PacketBatch batch, ServerState state, WorkerCounters counters, BatchScratch scratch)
    {
        NtsPacketHandler nts = scratch.Nts!;
        var group = default(NtsGroup);
        for (int next = NextGroup(batch, scratch, SlotKind.NtsPending, 0, ref group); group.Count > 0;
             next = NextGroup(batch, scratch, SlotKind.NtsPending, next, ref group))
        {
            nts.Answer(ref group, state);
            for (int m = 0; m < group.Count; m++)
            {
                int slot = group.Slot(m);
                (Outcome outcome, int length) = nts.Result(slot);
                counters.Count(outcome);
                batch.SetResponse(slot, length);
                scratch.Kind[slot] = outcome.Action == ResponseAction.Respond ? SlotKind.Nts : SlotKind.None;
            }
        }
    }

    /// <summary>
    /// Transmit timestamps as late as possible: NTS responses are stamped <see cref="AesSivLanes.Width"/> at a time, each group
    /// with its own clock reading just before it is sealed (the timestamp is inside what the
    /// authenticator covers); then one reading, taken after all sealing and just before the send,
    /// goes into every plain basic-mode time response. KoDs get none. Every one of these timestamps is
    /// the daemon's own clock reading (a basic-mode response cannot carry the kernel's, which exists
    /// only once it is sent): counted as <see cref="TimestampSource.UserSpace"/>, like chrony's "NTP
    /// daemon TX timestamps". Interleaved responses were counted by what they carry in <see cref="ProcessBatch"/>.
    /// </summary>
    internal static void StampAndSeal(PacketBatch batch, ServerState state, BatchScratch scratch, WorkerCounters counters)
    {
        var group = default(NtsGroup);
        int stamped = 0;
        for (int next = NextGroup(batch, scratch, SlotKind.Nts, 0, ref group); group.Count > 0;
             next = NextGroup(batch, scratch, SlotKind.Nts, next, ref group))
        {
            long clock = SystemClock.RealtimeNanoseconds();
            var transmit = NtpTimestamp.FromUnixNanoseconds(state.ServedTime(clock, ReadNow(state)));
            if (scratch.Interleaved is not null)
            {
                transmit = NtpResponder.MarkTransmit(transmit); // never equal to the (odd) receive timestamp, NTS too
            }
            for (int m = 0; m < group.Count; m++)
            {
                NtpResponder.StampTransmit(group.Buffer(m), transmit);
            }
            scratch.Nts!.Seal(ref group);
            for (int m = 0; m < group.Count; m++)
            {
                counters.CountCookies(scratch.Nts.Cookies(group.Slot(m)));
            }
            stamped += group.Count;
        }
        stamped += StampTransmit(batch, state, scratch, SystemClock.RealtimeNanoseconds());
        counters.CountTransmitTimestamps(TimestampSource.UserSpace, stamped);
    }

    /// <summary>Refills <paramref name="group"/> with the next (up to <see cref="AesSivLanes.Width"/>) slots of <paramref name="kind"/> from <paramref name="next"/>; returns where to go on.</summary>
    private static int NextGroup(PacketBatch batch, BatchScratch scratch, SlotKind kind, int next, ref NtsGroup group)
    {
        group.Clear();
        for (; next < batch.Count && !group.IsFull; next++)
        {
            if (scratch.Kind[next] == kind)
            {
                group.Add(next, batch.Payload(next));
            }
        }
        return next;
    }

    /// <summary>
    /// Writes one transmit timestamp into every plain basic-mode time response (an interleaved one
    /// carries an earlier response's already) and keeps it for <see cref="SaveInterleaved"/> (the
    /// kernel's replaces it there when it comes). Returns how many responses it stamped.
    /// </summary>
    internal static int StampTransmit(PacketBatch batch, ServerState state, BatchScratch scratch, long nowUnixNanoseconds)
    {
        var transmit = NtpTimestamp.FromUnixNanoseconds(state.ServedTime(nowUnixNanoseconds, ReadNow(state)));
        if (scratch.Interleaved is not null)
        {
            transmit = NtpResponder.MarkTransmit(transmit);
        }
        scratch.Transmit = transmit;
        int stamped = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            SlotKind kind = scratch.Kind[i];
            if (kind == SlotKind.Plain)
            {
                NtpResponder.StampTransmit(batch.Payload(i), transmit);
                stamped++;
            }
        }
        return stamped;
    }

    /// <summary>
    /// With interleaved state, saves each plain synchronised time response's receive timestamp with the
    /// batch's transmit timestamp, for the client's next, interleaved, request (RFC 9769 §2: "the
    /// server SHOULD save the new receive and transmit timestamps"). Called after the send. Crypto-NAKs
    /// and unsynchronised answers (LI = 3) are not saved: their timestamps must never come back as a
    /// synchronised interleaved answer's.
    /// </summary>
    internal static void SaveInterleaved(PacketBatch batch, BatchScratch scratch)
    {
        if (scratch.Interleaved is not { } interleaved)
        {
            return;
        }
        for (int i = 0; i < batch.Count; i++)
        {
            Span<byte> response = batch.Payload(i);
            if (scratch.Kind[i] is SlotKind.Plain or SlotKind.Interleaved && batch.ResponseLength(i) == NtpHeader.Length
                && (response[0] >> 6) != (int)LeapIndicator.Unsynchronised)
            {
                interleaved.Save(NtpTimestamp.Read(response[NtpHeader.ReceiveOffset..]), scratch.Transmit, batch.Source(i));
            }
        }
    }

    /// <summary>The smear's reading of now for a state with one; nothing is read for a state without.</summary>
    private static SmearReading ReadNow(ServerState state) => state.Smear is null ? default : SmearClock.Now(state.Transform);

    /// <summary>Stops the thread (it wakes within the receive timeout), then frees the sockets and buffers.</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_thread is null || _thread.Join(TimeSpan.FromSeconds(5)))
        {
            foreach (TimestampedSocket socket in _sockets)
            {
                socket.Dispose();
            }
            _poller?.Dispose();
            _batch.Dispose();
            _looped?.Dispose();
        }
    }
}
