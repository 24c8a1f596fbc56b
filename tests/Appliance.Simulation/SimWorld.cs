using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Protocol.Nts;

namespace Appliance.Simulation;

/// <summary>
/// A local oscillator in simulated true time. Its frequency error f (θ = true − local grows at f)
/// starts at <see cref="SimSettings.Frequency"/> and random-walks; a steered clock adds the applied
/// correction u (so θ changes at f − u) and can be stepped. Times are kept as seconds since the
/// scenario's start: a double holding a Unix time (1.8e9 s) resolves only 0.24 µs, which would
/// quantise the oscillator's frequency in 0.24 ppm steps and show up as servo error. In kernel mode it
/// is the clock the core steers, through the same <see cref="ISteeredClock"/> as CLOCK_REALTIME.
/// </summary>
public sealed class Oscillator(SimSettings settings, Random random) : ISteeredClock
{
    private readonly long _startNanoseconds = (long)settings.Start * 1_000_000_000;
    private double _trueTime;                          // seconds since the start
    private double _local = -settings.InitialOffset;   // seconds since the start
    private double _frequency = settings.Frequency;

    /// <summary>True time, seconds since the start.</summary>
    public double TrueTime => _trueTime;

    public double Frequency => _frequency;

    public double AppliedCorrection { get; set; }

    /// <summary>θ = true − local, seconds.</summary>
    public double Offset => _trueTime - _local;

    public long LocalNanoseconds => ToNanoseconds(_local);

    public void Advance(double seconds)
    {
        if (settings.FrequencyStepAt is { } at && _trueTime < at.TotalSeconds && _trueTime + seconds >= at.TotalSeconds)
        {
            _frequency += settings.FrequencyStep;
        }
        _trueTime += seconds;
        _local += seconds * (1 - _frequency + AppliedCorrection);
        _frequency += settings.Wander * Math.Sqrt(seconds) * Gaussian(random);
    }

    /// <summary>The local clock reading at true time <paramref name="trueTime"/> (a little ahead of now), without advancing.</summary>
    public long LocalNanosecondsAt(double trueTime) => ToNanoseconds(_local + ((trueTime - _trueTime) * (1 - _frequency + AppliedCorrection)));

    /// <summary>Unix nanoseconds of a true time given as seconds since the start.</summary>
    public long ToNanoseconds(double sinceStart) => _startNanoseconds + (long)Math.Round(sinceStart * 1e9);

    public void Step(double seconds) => _local += seconds;

    public long Now() => LocalNanoseconds;

    public TimeTransform Transform => TimeTransform.Identity;

    public void SetFrequency(double correction) => AppliedCorrection = correction;

    /// <summary>The last status the core set (the kernel's STA_INS/STA_UNSYNC word, as a kernel would keep it).</summary>
    public (LeapIndicator Leap, bool Synchronised) Status { get; private set; }

    public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset) =>
        Status = (leap, synchronised);

    public static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}

/// <summary>Knobs of a scenario: defaults are a good LAN with three honest stratum-1 upstreams.</summary>
public sealed record SimSettings
{
    public double Start { get; init; } = 1_795_435_200;          // 2026-11-23
    public double InitialOffset { get; init; } = 0.003;          // the local clock starts 3 ms off
    public double Frequency { get; init; } = 12e-6;              // 12 ppm fast or slow
    public double Wander { get; init; } = 2e-10;                 // random walk of frequency, per √s
    public TimeSpan? FrequencyStepAt { get; init; }               // a sudden change (a door opened in the machine room)
    public double FrequencyStep { get; init; }
    public double BaseDelay { get; init; } = 150e-6;             // one way
    public double Jitter { get; init; } = 100e-6;                // mean of the exponential queueing delay, each way
    public double Asymmetry { get; init; }                        // extra one-way delay server → client
    public double Loss { get; init; } = 0.01;
    public int Poll { get; init; } = 16;                          // seconds between polls of each source
    public TimeSpan Duration { get; init; } = TimeSpan.FromHours(6);
    public TimeSpan Settle { get; init; } = TimeSpan.FromHours(2);
    public double[] ServerOffsets { get; init; } = [0, 0, 0];    // each upstream's error; 0.5 makes a falseticker
    public bool SteerClock { get; init; }

    /// <summary>
    /// Stratum 1: instead of upstream servers, a GPS receiver's PPS edge every second (timestamped
    /// with this jitter) and its serial time of day (5 ms jitter, 200 ms window), as gpsd hands them over.
    /// </summary>
    public double? PpsJitter { get; init; }
    public TimeSpan? LoseSourcesAfter { get; init; }
}

/// <summary>
/// What a run measured: error statistics after it settled (and before any loss of sources), the time
/// after which |error| stayed under 25 µs, and a per-second trace from the start.
/// </summary>
public sealed record SimResult(
    int Seed,
    double ServedErrorP50,
    double ServedErrorP99,
    double ServedErrorMax,
    double FrequencyError,
    double ConvergedAfter,
    IReadOnlyList<(double Time, double Error, double RootDispersion, bool Synchronised)> Trace,
    IReadOnlyDictionary<string, PeerStatus> FinalStatus,
    IReadOnlySet<string> EverSelected);

/// <summary>
/// Runs the real <see cref="ClockCore"/> against the simulated world, second by second: each upstream
/// is polled by the daemon's own <see cref="NtpAssociation"/> (its requests, poll schedule and reply
/// checks) and answered by the daemon's own <see cref="NtpResponder"/> running on a clock off by the
/// server's error; the core's commands reach the steered clock through the daemon's dispatch.
/// </summary>
public static class Simulator
{
    private static readonly double s_precision = Math.ScaleB(1.0, -24);

    public static SimResult Run(SimSettings settings, int seed, ClockCoreOptions? options = null)
    {
        var random = new Random(seed);
        var clock = new Oscillator(settings, random);
        var core = new ClockCore(options ?? new ClockCoreOptions { Precision = -24 });
        // Software mode steers a virtual clock over the free-running oscillator; kernel mode steers the oscillator.
        ISteeredClock steered = settings.SteerClock ? clock : new VirtualClock(() => clock.LocalNanoseconds);
        bool refclock = settings.PpsJitter is not null;
        var peers = refclock
            ? [core.AddPeer("pps", 0x50505300), core.AddPeer("gps", 0x47505300)]
            : settings.ServerOffsets.Select((_, i) => core.AddPeer($"server{i}", 0xC0000200u + (uint)i)).ToArray();
        int pollExponent = (int)Math.Round(Math.Log2(settings.Poll));
        var randomness = new SeededRandom(random);
        NtpAssociation[] associations = refclock ? [] : [.. peers.Select(_ => new NtpAssociation(new AssociationOptions
        {
            MinPoll = pollExponent,
            MaxPoll = pollExponent,
            Iburst = true,
        }, randomness))];
        foreach (Peer peer in peers)
        {
            peer.PollSeconds = refclock ? 1 : settings.Poll;
        }
        var packet = new byte[1280];
        var errors = new List<double>();
        var trace = new List<(double, double, double, bool)>();
        var everSelected = new HashSet<string>();
        double settleAt = settings.Settle.TotalSeconds;
        double end = settings.Duration.TotalSeconds;
        double loseAt = settings.LoseSourcesAfter?.TotalSeconds ?? double.MaxValue;
        double frequencyError = double.NaN;
        double convergedAfter = 0;

        void Take(Peer peer, Sample sample)
        {
            ClockUpdate update = core.OnSample(peer, sample, steered.Now());
            steered.Apply(update.Commands);
            everSelected.UnionWith(update.Selection.Survivors.Select(p => p.Name));
        }

        while (clock.TrueTime < end)
        {
            clock.Advance(1);
            bool lost = clock.TrueTime >= loseAt;
            for (int i = 0; i < peers.Length; i++)
            {
                if (refclock)
                {
                    if (!lost && random.NextDouble() >= settings.Loss)
                    {
                        Measurement edge = ReferenceClock(clock, i == 0, settings.PpsJitter!.Value, random);
                        Take(peers[i], Sample.FromMeasurement(edge, steered.Transform, s_precision));
                    }
                    continue;
                }
                NtpAssociation association = associations[i];
                long monotonic = (long)Math.Round(clock.TrueTime * 1e9);
                if (monotonic < association.WakeAt || association.Poll(monotonic, packet, out int length) != PollAction.Send)
                {
                    continue;
                }
                // A lost server, or a lost datagram: the association times the request out by itself.
                if (lost || random.NextDouble() < settings.Loss
                    || Exchange(clock, settings, settings.ServerOffsets[i], random, association, packet, length) is not { } measurement)
                {
                    continue;
                }
                Sample sample = Sample.FromMeasurement(measurement, steered.Transform, s_precision);
                Take(peers[i], sample);
                association.Adapt(core.Agrees(peers[i], sample, s_precision));
                peers[i].PollSeconds = association.Schedule.PollSeconds;
            }
            ClockUpdate last = core.Tick(steered.Now());
            steered.Apply(last.Commands);

            // Served time: the (steered) kernel clock, or the free-running one through the virtual clock.
            long served = steered.Now();
            double error = (served - clock.ToNanoseconds(clock.TrueTime)) / 1e9;
            trace.Add((clock.TrueTime, error, last.State.RootDispersionAt(served), last.State.IsSynchronised));
            if (!lost && (Math.Abs(error) >= 25e-6 || !last.State.IsSynchronised))
            {
                convergedAfter = clock.TrueTime;
            }
            if (clock.TrueTime >= settleAt && !lost)
            {
                errors.Add(Math.Abs(error));
                // The servo's frequency estimate against the oscillator's true error (kernel mode:
                // the applied correction is what cancels it).
                frequencyError = core.Servo.Frequency - clock.Frequency;
            }
        }
        errors.Sort();
        double Percentile(double q) => errors.Count == 0 ? double.NaN : errors[(int)(q * (errors.Count - 1))];
        return new SimResult(seed, Percentile(0.5), Percentile(0.99), Percentile(1), frequencyError,
            convergedAfter,
            trace,
            peers.ToDictionary(p => p.Name, p => p.Status),
            everSelected);
    }

    /// <summary>
    /// A GPS receiver's report for the second that just began, as its driver measures it: the PPS edge
    /// (the true second, timestamped on the local clock with <paramref name="ppsJitter"/>), or the serial
    /// time of day (the same second, ± 5 ms of serial jitter in a 200 ms window, its known lateness
    /// already taken off).
    /// </summary>
    private static Measurement ReferenceClock(Oscillator clock, bool pps, double ppsJitter, Random random)
    {
        double edge = Math.Floor(clock.TrueTime);
        double stamp = edge + (pps ? ppsJitter * Oscillator.Gaussian(random) : 5e-3 * Oscillator.Gaussian(random));
        long system = clock.LocalNanosecondsAt(stamp);
        long reference = clock.ToNanoseconds(edge);
        return pps
            ? Measurement.FromReferenceClock(system, reference, 0, 1e-7, 0x50505300u)
            : Measurement.FromReferenceClock(system, reference, 0.2, 1e-3, 0x47505300u);
    }

    /// <summary>
    /// The request the association wrote goes out now (T1 on the local clock), reaches a server whose
    /// clock is off by <paramref name="serverError"/> and is answered by the real responder; the answer
    /// comes back through the association's checks. Null when it found no sample in it.
    /// </summary>
    private static Measurement? Exchange(Oscillator clock, SimSettings s, double serverError, Random random,
        NtpAssociation association, byte[] packet, int length)
    {
        double now = clock.TrueTime;
        double outbound = s.BaseDelay + (s.Jitter * -Math.Log(1 - random.NextDouble()));
        double inbound = s.BaseDelay + s.Asymmetry + (s.Jitter * -Math.Log(1 - random.NextDouble()));
        const double processing = 20e-6;
        association.Sent(clock.LocalNanosecondsAt(now), (long)Math.Round(now * 1e9));
        long t2 = clock.ToNanoseconds(now + outbound + serverError);
        var policy = default(AllowAllPolicy);
        var context = new RequestContext(default, t2, NtpTimestamp.FromUnixNanoseconds(t2));
        NtpResponder.Respond(packet, length, context, s_server, ref policy, out int answer);
        NtpResponder.StampTransmit(packet, NtpTimestamp.FromUnixNanoseconds(t2 + (long)(processing * 1e9)));
        long t4 = clock.LocalNanosecondsAt(now + outbound + processing + inbound);
        ReplyReason reason = association.Receive(packet.AsSpan(0, answer), t4, (long)Math.Round(now * 1e9), out Measurement measurement);
        return reason == ReplyReason.Sample ? measurement : null;
    }

    /// <summary>What every simulated upstream says about itself: a stratum-1 server with a GPS reference.</summary>
    private static readonly ServerState s_server = new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 1,
        ReferenceId = 0x47505300,
        RootDispersion = 10e-6,
        Precision = -24,
        // Never grows: the server's own dispersion is not what the scenarios vary.
        UpdatedAtUnixNanoseconds = long.MaxValue,
    };

    /// <summary>The scenario's seeded randomness as the association's random source: every run replays.</summary>
    private sealed class SeededRandom(Random random) : IRandomSource
    {
        public void Fill(Span<byte> destination) => random.NextBytes(destination);
    }
}
