using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.LoadTest;

/// <summary>Where to send, and the client population to simulate.</summary>
internal sealed record GeneratorOptions
{
    /// <summary>Source addresses (IP_PKTINFO per datagram): the simulated clients' addresses.</summary>
    public required IReadOnlyList<IPAddress> Sources { get; init; }

    /// <summary>Source ports (one socket each).</summary>
    public int Ports { get; init; } = 4;

    public int BatchSize { get; init; } = 64;

    /// <summary>Pin the generator thread to this CPU.</summary>
    public int? Cpu { get; init; }

    /// <summary>Create the sockets inside this network namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>How long to keep receiving after the last request of a step.</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// Traffic at the step's rate before measuring starts: lets both ends reach steady state (caches,
    /// page faults, a freshly started generator) so the step measures the server, not the start-up.
    /// </summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When above 0, a flood from this many distinct random addresses of 127.0.0.0/8 instead of
    /// <see cref="Sources"/>: <see cref="Ports"/> wildcard-bound sockets, each datagram's source
    /// chosen with IP_PKTINFO (ipi_spec_dst) in sendmmsg. A socket per address (the other mode)
    /// stops at the process's file limit, some 20,000 here; this mode has no such bound.
    /// </summary>
    public int SpoofedSources { get; init; }

    /// <summary>Seeds the choice of the spoofed addresses: the same seed, the same addresses.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>
    /// A legitimate client beside the load: its own socket on this address, polling the target once
    /// per <see cref="LegitInterval"/> during the measured part; its share of answers is reported apart.
    /// </summary>
    public IPAddress? LegitClient { get; init; }

    /// <summary>
    /// Legitimate clients on consecutive addresses from <see cref="LegitClient"/>, each polling once
    /// per <see cref="LegitInterval"/>: more polls in a short run, each client within its own rate.
    /// </summary>
    public int LegitClients { get; init; } = 1;

    public TimeSpan LegitInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When above 0, the requests stand for this many clients polling in turn (each polls again
    /// after this many requests, as ntpperf's clients do): an answer that arrives after its client's
    /// next request was sent is counted stale, the rest fresh.
    /// </summary>
    public int Pollers { get; init; }
}

/// <summary>A snapshot for the live progress line.</summary>
internal readonly record struct Progress(string Target, double Rate, double Elapsed, long Sent, long Answered, double DelayP50Micros, double DelayP99Micros);

/// <summary>
/// The open-loop generator: sends at the target rate whatever the answers, from K source addresses ×
/// M source ports, in sendmmsg batches (IP_PKTINFO picks each datagram's source address), and reads
/// answers with recvmmsg and kernel receive timestamps. Every request carries a sequence number in
/// the low bits of its transmit timestamp (above the lowest, which stays clear: an interleaved
/// codec's receive timestamp is the same value with it set), so each answer is matched to its
/// request exactly.
/// </summary>
internal sealed class Generator : IDisposable
{
    private const int RingBits = 20;
    private const int RingSize = 1 << RingBits;
    private const ulong RingMask = RingSize - 1;
    private const byte Closed = 0;
    private const byte Measured = 1;
    private const byte Warming = 2;

    private readonly GeneratorOptions _options;
    private readonly Dictionary<(IPEndPoint, int), (TimestampedSocket[] Sockets, Poller Poller, TimestampedSocket[] Legit)> _sockets = [];
    private readonly SpoofedSources? _spoofed;
    private readonly PacketBatch _legitSend = new(1);
    private int _spoofNext;
    private readonly PacketBatch _send;
    private readonly byte[] _segments = GC.AllocateArray<byte>(TimestampedSocket.MaxSegments * PacketBatch.SlotSize, pinned: true);
    private readonly PacketBatch _receive;
    private readonly long[] _ringT1 = new long[RingSize];
    private readonly ulong[] _ringTransmit = new ulong[RingSize];
    private readonly int[] _ringClient = new int[RingSize];
    private readonly byte[] _ringState = new byte[RingSize];
    private readonly ulong[] _ringSequence = new ulong[RingSize];
    private readonly Reservoir _delay = new(200_000);
    private readonly Reservoir _offset = new(200_000);
    private readonly Reservoir _absOffset = new(200_000);
    private readonly Reservoir _processing = new(200_000);
    private readonly Reservoir _response = new(200_000);
    private readonly int[] _sendClients = new int[TimestampedSocket.MaxSegments];
    private readonly ulong[] _sendTransmits = new ulong[TimestampedSocket.MaxSegments];
    private readonly int[] _pendingSlots;
    private readonly ulong[] _pendingSeq;
    private readonly int[] _pendingClients;
    private readonly ulong[] _pendingTransmits;
    private readonly CodecVerdict[] _verdicts;
    private readonly string?[] _reasons;
    private ulong _sequence;
    private bool _pinned;

    /// <summary>This step's requests are interleaved ones: an answer's origin may be their receive value.</summary>
    private bool _interleaved;

    public Generator(GeneratorOptions options)
    {
        _options = options;
        _send = new PacketBatch(Math.Min(options.BatchSize, TimestampedSocket.MaxSegments));
        _receive = new PacketBatch(options.BatchSize);
        _pendingSlots = new int[options.BatchSize];
        _pendingSeq = new ulong[options.BatchSize];
        _pendingClients = new int[options.BatchSize];
        _pendingTransmits = new ulong[options.BatchSize];
        _verdicts = new CodecVerdict[options.BatchSize];
        _reasons = new string?[options.BatchSize];
        if (options.SpoofedSources > 0)
        {
            _spoofed = new SpoofedSources(options.SpoofedSources, options.Seed, LegitAddresses());
        }
    }

    /// <summary>The legitimate clients' addresses: <see cref="GeneratorOptions.LegitClients"/> from <see cref="GeneratorOptions.LegitClient"/> on.</summary>
    private IPAddress[] LegitAddresses()
    {
        if (_options.LegitClient is not { } first)
        {
            return [];
        }
        uint start = NetAddress.FromIPAddress(first).IPv4;
        return [.. Enumerable.Range(0, Math.Max(1, _options.LegitClients)).Select(i => NetAddress.FromIPv4(start + (uint)i).ToIPAddress())];
    }

    public int Clients => _spoofed?.Count ?? (_options.Sources.Count * _options.Ports);

    /// <summary>
    /// One socket per simulated client (source address × port), bound to its source address and
    /// connected to the target: the kernel then skips the per-datagram route lookup, which is most of
    /// the generator's cost on loopback, and only the target's answers reach it.
    /// </summary>
    /// <remarks>
    /// With <see cref="GeneratorOptions.SpoofedSources"/>, <see cref="GeneratorOptions.Ports"/> sockets
    /// bound to the wildcard instead, not connected: an answer to any 127.x.y.z:port is delivered to
    /// the wildcard socket of that port. The legitimate clients' sockets, when there are any, are the
    /// poller's last entries.
    /// </remarks>
    private (TimestampedSocket[] Sockets, Poller Poller, TimestampedSocket[] Legit) SocketsFor(IPEndPoint target, int segmentSize)
    {
        if (_sockets.TryGetValue((target, segmentSize), out var existing))
        {
            return existing;
        }
        var options = new TimestampedSocketOptions { ReceiveBufferBytes = 4 << 20, ReceiveTimeout = TimeSpan.FromMilliseconds(50) };
        TimestampedSocket[] Open()
        {
            var sockets = new TimestampedSocket[_spoofed is null ? _options.Sources.Count * _options.Ports : _options.Ports];
            for (int i = 0; i < sockets.Length; i++)
            {
                if (_spoofed is not null)
                {
                    sockets[i] = TimestampedSocket.Open(new IPEndPoint(IPAddress.Any, 0), options);
                    continue;
                }
                sockets[i] = TimestampedSocket.Open(new IPEndPoint(_options.Sources[i % _options.Sources.Count], 0), options);
                sockets[i].Connect(target);
                if (segmentSize > 0)
                {
                    sockets[i].EnableSegmentation(segmentSize);
                }
            }
            return sockets;
        }
        TimestampedSocket[] OpenLegit() => [.. LegitAddresses().Select(address =>
        {
            TimestampedSocket legit = TimestampedSocket.Open(new IPEndPoint(address, 0), options);
            legit.Connect(target);
            return legit;
        })];
        TimestampedSocket[] opened = _options.Namespace is { } ns ? NetworkNamespaceThread.Run(ns, Open) : Open();
        TimestampedSocket[] legitSockets = _options.Namespace is { } ns2 ? NetworkNamespaceThread.Run(ns2, OpenLegit) : OpenLegit();
        var entry = (opened, new Poller([.. opened, .. legitSockets]), legitSockets);
        _sockets[(target, segmentSize)] = entry;
        return entry;
    }

    /// <summary>
    /// Sends at <paramref name="rate"/> per second for the warm-up and then <paramref name="duration"/>,
    /// drains, and reports on the measured part.
    /// </summary>
    public StepResult Run(IPEndPoint target, IRequestCodec codec, double rate, TimeSpan duration, ProcessProbe? server,
        Action<Progress>? progress, CancellationToken cancellationToken, string? label = null)
    {
        _interleaved = codec is InterleavedCodec;
        if (_options.Cpu is int cpu && !_pinned)
        {
            _pinned = ThreadAffinity.PinCurrentThread(cpu, out _);
        }
        // Spoofed sources leave one datagram per source address: one segmented send has one source.
        int segmentSize = _spoofed is null ? codec.FixedRequestLength : 0;
        (TimestampedSocket[] sockets, Poller poller, TimestampedSocket[] legitSockets) = SocketsFor(target, segmentSize);
        byte[] peer = PacketBatch.PeerAddress(target);
        DrainStale(sockets);
        var legit = legitSockets.Length == 0 ? null : new LegitClient(legitSockets, _legitSend);
        legit?.Drain(_receive);
        Array.Clear(_ringState);
        _delay.Clear();
        _offset.Clear();
        _absOffset.Clear();
        _processing.Clear();
        _response.Clear();
        long fresh = 0, stale = 0;

        var invalid = new Dictionary<string, long>();
        var kod = new Dictionary<string, long>();
        long sent = 0, sendErrors = 0, received = 0, answered = 0, valid = 0, invalidCount = 0, kodCount = 0;
        double cpuBefore = server?.CpuSeconds() ?? double.NaN;

        long warmupNs = (long)_options.Warmup.TotalMilliseconds * 1_000_000L;
        long start = SystemClock.MonotonicNanoseconds();
        long measureFrom = start + warmupNs;
        long durationNs = (long)duration.TotalMilliseconds * 1_000_000L;
        long end = measureFrom + durationNs;
        long warmupSent = 0;
        bool measuring = warmupNs == 0;
        long drainEnd = end + ((long)_options.Drain.TotalMilliseconds * 1_000_000L);
        long nextProgress = start + 500_000_000L;
        double perNs = rate / 1e9;
        int socketIndex = 0;
        long sendingStoppedAt = end;
        // The clients take turns: each polls once per interval.
        long legitIntervalNs = Math.Max(1, (long)(_options.LegitInterval.TotalMilliseconds * 1_000_000L) / Math.Max(1, legitSockets.Length));
        long nextLegit = measureFrom;
        while (!cancellationToken.IsCancellationRequested)
        {
            long now = SystemClock.MonotonicNanoseconds();
            bool busy = false;
            if (!measuring && now >= measureFrom)
            {
                measuring = true;
                warmupSent = sent;
                cpuBefore = server?.CpuSeconds() ?? double.NaN;
            }
            if (legit is not null && measuring && now >= nextLegit && now < end)
            {
                legit.Poll();
                nextLegit += legitIntervalNs;
                busy = true;
            }
            if (now < end)
            {
                long due = (long)((now - start) * perNs) - sent;
                if (due > 0)
                {
                    int n = (int)Math.Min(due, _send.Capacity);
                    TimestampedSocket socket = sockets[socketIndex];
                    _send.Clear();
                    long t1 = SystemClock.RealtimeNanoseconds();
                    ulong t1Ntp = NtpTimestamp.FromUnixNanoseconds(t1).Value & ~((RingMask << 1) | 1);
                    for (int i = 0; i < n; i++)
                    {
                        ulong seq = _sequence++ & RingMask;
                        ulong transmit = t1Ntp | (seq << 1);
                        // One send leaves from one socket (one source address, UDP GSO), but its
                        // requests speak for different simulated clients in turn: a server then meets
                        // each request under other NTS keys than the one before, as it would from a
                        // real population, not runs of one client's keys (which it could reuse).
                        int client = (socketIndex + i) % sockets.Length;
                        if (segmentSize > 0)
                        {
                            _sendClients[i] = client;
                            _sendTransmits[i] = transmit;
                        }
                        else
                        {
                            int length = codec.WriteRequest(_send.Payload(i), client, transmit);
                            if (_spoofed is not null)
                            {
                                _send.Prepare(i, peer, _spoofed[_spoofNext], length);
                                _spoofNext = (_spoofNext + 1) % _spoofed.Count;
                            }
                            else
                            {
                                _send.Prepare(i, [], default, length);
                            }
                        }
                        _ringT1[seq] = t1;
                        _ringSequence[seq] = _sequence - 1;
                        _ringTransmit[seq] = transmit;
                        _ringClient[seq] = client;
                        _ringState[seq] = measuring ? Measured : Warming;
                    }
                    if (segmentSize > 0)
                    {
                        codec.WriteRequests(_segments.AsSpan(0, n * segmentSize), segmentSize, _sendClients.AsSpan(0, n), _sendTransmits.AsSpan(0, n));
                    }
                    // Equal-sized requests leave as one segmented send (UDP GSO): the generator's
                    // send cost per datagram drops several-fold, so it can outrun a server core.
                    sendErrors += segmentSize > 0
                        ? (socket.SendSegmented(_segments.AsSpan(0, n * segmentSize)) == 0 ? 0 : n)
                        : socket.Send(_send);
                    sent += n;
                    socketIndex = (socketIndex + 1) % sockets.Length;
                    busy = true;
                }
            }
            else if (now >= drainEnd || (answered == sent - warmupSent && now >= end + 20_000_000L))
            {
                sendingStoppedAt = Math.Min(sendingStoppedAt, now);
                break;
            }

            int ready = poller.Wait(0);
            for (int r = 0; r < ready; r++)
            {
                if (poller.Ready(r) >= sockets.Length)
                {
                    busy |= legit!.Receive(poller.Ready(r) - sockets.Length, _receive, peer) > 0;
                    continue;
                }
                int n = sockets[poller.Ready(r)].ReceiveNoWait(_receive);
                if (n <= 0)
                {
                    continue;
                }
                busy = true;
                received += n;
                int pending = 0;
                for (int i = 0; i < n; i++)
                {
                    string? bad = Check(i, peer, out bool matched, out bool warming, out string? kodCode, out ulong seq);
                    if (warming)
                    {
                        continue;
                    }
                    answered += matched ? 1 : 0;
                    if (kodCode is not null)
                    {
                        kodCount++;
                        kod[kodCode] = kod.GetValueOrDefault(kodCode) + 1;
                    }
                    else if (bad is not null)
                    {
                        invalidCount++;
                        invalid[bad] = invalid.GetValueOrDefault(bad) + 1;
                    }
                    else
                    {
                        // The protocol's own checks run for the whole receive batch at once, below.
                        _pendingSlots[pending] = i;
                        _pendingSeq[pending] = seq;
                        _pendingClients[pending] = _ringClient[seq];
                        _pendingTransmits[pending] = _ringTransmit[seq];
                        pending++;
                    }
                }
                if (pending > 0)
                {
                    var responses = new ResponseSet(_receive, _pendingSlots.AsSpan(0, pending), _pendingClients.AsSpan(0, pending), _pendingTransmits.AsSpan(0, pending));
                    codec.CheckResponses(responses, _verdicts.AsSpan(0, pending), _reasons.AsSpan(0, pending));
                    for (int p = 0; p < pending; p++)
                    {
                        if (_verdicts[p] == CodecVerdict.Ok)
                        {
                            valid++;
                            Record(_pendingSlots[p], _pendingSeq[p]);
                            // Stale: its client's next request (Pollers requests later) has left already.
                            bool late = _options.Pollers > 0 && _sequence - _ringSequence[_pendingSeq[p]] > (ulong)_options.Pollers;
                            stale += late ? 1 : 0;
                            fresh += late ? 0 : 1;
                        }
                        else
                        {
                            string bad = _reasons[p] ?? codec.Name;
                            invalidCount++;
                            invalid[bad] = invalid.GetValueOrDefault(bad) + 1;
                        }
                    }
                }
            }

            if (progress is not null && now >= nextProgress)
            {
                nextProgress = now + 500_000_000L;
                double[] q = _delay.Quantiles([0.5, 0.99]);
                progress(new Progress(target.ToString(), rate, (now - start) / 1e9, sent, answered, q[0] / 1000, q[1] / 1000));
            }
            if (!busy)
            {
                long nextDue = now < end ? start + (long)((sent + 1) / perNs) : drainEnd;
                if (nextDue - now > 2_000_000)
                {
                    poller.Wait(1);
                }
                else
                {
                    // Yield rather than spin: on loopback the kernel delivers packets in softirq
                    // context, and a spinning generator starves ksoftirqd on its core, which shows
                    // up as milliseconds of queueing charged to the server (T3 − T2).
                    Thread.Yield();
                }
            }
        }

        sent -= warmupSent;
        double seconds = durationNs / 1e9;
        double cpuAfter = server?.CpuSeconds() ?? double.NaN;
        double[] delay = _delay.Quantiles([0.5, 0.99, 0.999]);
        double[] processing = _processing.Quantiles([0.5, 0.9, 0.99, 0.999]);
        double[] response = _response.Quantiles([0.5, 0.99]);
        return new StepResult
        {
            Target = label ?? target.ToString(),
            Protocol = codec.Name,
            TargetRate = rate,
            DurationSeconds = seconds,
            Sent = sent,
            SendErrors = sendErrors,
            Received = received,
            Answered = answered,
            Valid = valid,
            Invalid = invalidCount,
            InvalidReasons = invalid,
            Kod = kodCount,
            KodCodes = kod,
            SentRate = sent / seconds,
            ValidRate = valid / seconds,
            LossPercent = sent == 0 ? 0 : 100.0 * (sent - answered) / sent,
            InvalidPercent = sent == 0 ? 0 : 100.0 * invalidCount / sent,
            DelayP50Micros = delay[0] / 1000,
            DelayP99Micros = delay[1] / 1000,
            DelayP999Micros = delay[2] / 1000,
            OffsetP50Micros = _offset.Quantile(0.5) / 1000,
            OffsetP99Micros = _absOffset.Quantile(0.99) / 1000,
            ProcessingP50Micros = processing[0] / 1000,
            ProcessingP90Micros = processing[1] / 1000,
            ProcessingP99Micros = processing[2] / 1000,
            ProcessingP999Micros = processing[3] / 1000,
            ResponseTimeP50Micros = response[0] / 1000,
            ResponseTimeP99Micros = response[1] / 1000,
            Fresh = _options.Pollers > 0 ? fresh : null,
            Stale = _options.Pollers > 0 ? stale : null,
            FreshRate = _options.Pollers > 0 ? fresh / seconds : null,
            ServerCpuMicrosPerResponse = server is null || answered == 0 ? null : (cpuAfter - cpuBefore) * 1e6 / answered,
            ServerPeakRssMiB = server is null ? null : server.PeakRssBytes() / (1 << 20),
            GeneratorLimited = sent < rate * seconds * 0.97,
            Extra = codec.TakeCounts(),
            Legit = legit?.Result(),
        };
    }

    /// <summary>
    /// Validates one received datagram: from the target, a mode-4 NTPv4 answer to a request of ours
    /// (origin = that request's transmit), synchronised, or a KoD. Returns the reason it is invalid.
    /// </summary>
    /// <summary>
    /// The NTP checks of one response: its source, its origin against the requests in flight (the
    /// slot of the ring it closes in <paramref name="seq"/>), mode, version, KoD, leap. Null when it
    /// passes; the protocol's own checks come next (<see cref="IRequestCodec.CheckResponses"/>).
    /// </summary>
    private string? Check(int slot, byte[] peer, out bool matched, out bool warming, out string? kodCode, out ulong seq)
    {
        matched = false;
        warming = false;
        kodCode = null;
        seq = 0;
        if (!_receive.CameFrom(slot, peer))
        {
            return "source";
        }
        ReadOnlySpan<byte> response = _receive.Payload(slot)[.._receive.Length(slot)];
        if (response.Length < NtpHeader.Length)
        {
            return "short";
        }
        var header = NtpHeader.Read(response);
        // A basic answer's origin is the request's transmit value; an interleaved one's (RFC 9769 §2)
        // the request's receive value, the same with the lowest bit set.
        ulong value = header.Origin.Value & ~1UL;
        seq = (value >> 1) & RingMask;
        if (_ringState[seq] == Closed || _ringTransmit[seq] != value || (value != header.Origin.Value && !_interleaved))
        {
            return "origin";
        }
        warming = _ringState[seq] == Warming;
        _ringState[seq] = Closed;
        if (warming)
        {
            return null;
        }
        matched = true;
        if (header.Mode != NtpMode.Server)
        {
            return "mode";
        }
        if (header.Version != 4)
        {
            return "version";
        }
        if (header.Stratum == 0)
        {
            kodCode = KissCodeText(header.ReferenceId);
            return null;
        }
        if (header.Leap == LeapIndicator.Unsynchronised || header.Stratum >= 16)
        {
            return "unsynchronised";
        }
        return null;
    }

    /// <summary>
    /// The response time (T4 − T1) of a valid response, and the delay, offset and server processing
    /// time of a basic-mode one (RFC 5905 §8). An interleaved answer's transmit timestamp belongs to
    /// an earlier exchange, so it gives none of the three.
    /// </summary>
    private void Record(int slot, ulong seq)
    {
        var header = NtpHeader.Read(_receive.Payload(slot)[.._receive.Length(slot)]);
        long t1 = _ringT1[seq];
        long t4 = _receive.ReceiveTimestamp(slot) != 0 ? _receive.ReceiveTimestamp(slot) : SystemClock.RealtimeNanoseconds();
        _response.Add(t4 - t1);
        if ((header.Origin.Value & 1) != 0)
        {
            return;
        }
        long t2 = header.Receive.ToUnixNanoseconds(t1);
        long t3 = header.Transmit.ToUnixNanoseconds(t1);
        long processing = t3 - t2;
        long delay = t4 - t1 - processing;
        double offset = ((t2 - t1) + (double)(t3 - t4)) / 2;
        _delay.Add(delay);
        _offset.Add(offset);
        _absOffset.Add(Math.Abs(offset));
        _processing.Add(processing);
    }

    private static string KissCodeText(uint code) => string.Create(4, code, static (span, c) =>
    {
        for (int i = 0; i < 4; i++)
        {
            byte b = (byte)(c >> (24 - (8 * i)));
            span[i] = b is >= 0x20 and < 0x7F ? (char)b : '?';
        }
    });

    /// <summary>Discards answers still arriving from an earlier step.</summary>
    private void DrainStale(TimestampedSocket[] sockets)
    {
        foreach (TimestampedSocket socket in sockets)
        {
            while (socket.ReceiveNoWait(_receive) > 0)
            {
            }
        }
    }

    public void Dispose()
    {
        foreach ((TimestampedSocket[] sockets, Poller poller, TimestampedSocket[] legit) in _sockets.Values)
        {
            foreach (TimestampedSocket socket in (TimestampedSocket[])[.. sockets, .. legit])
            {
                socket.Dispose();
            }
            poller.Dispose();
        }
        _legitSend.Dispose();
        _send.Dispose();
        _receive.Dispose();
    }
}
