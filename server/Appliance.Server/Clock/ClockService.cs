using System.Security.Cryptography.X509Certificates;
using Appliance.Discipline;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Protocol.Roughtime;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Sources;
using Appliance.Timestamping;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Clock;

/// <summary>One source as the metrics see it.</summary>
public sealed record SourceSnapshot(string Name, string Kind, SourceState State, PeerStatus Selection, byte Reach, double PollSeconds,
    double? Offset, double? Delay, double Jitter, int Stratum, SourceCounters Counters);

/// <summary>The clock core's state as the metrics see it (refreshed at least once a second).</summary>
/// <param name="Correction">Served time minus the system clock now: the software-mode correction (0 in kernel mode).</param>
public sealed record ClockSnapshot(ClockCoreStatus Status, double Offset, double Frequency, double FrequencyStdDev, double OffsetStdDev,
    double Correction, IReadOnlyList<SourceSnapshot> Sources)
{
    public static ClockSnapshot Empty { get; } = new(ClockCoreStatus.Unsynchronised, 0, 0, 0, 0, 0, []);

    /// <summary>The name of the source the clock follows, or null.</summary>
    public string? SystemPeer => Sources.FirstOrDefault(s => s.Selection == PeerStatus.SystemPeer)?.Name;
}

/// <summary>
/// Runs the clock core (DESIGN.md "Time"): the upstream sources feed it measurements, it steers the
/// clock — CLOCK_REALTIME through clock_adjtime in kernel mode, a <see cref="VirtualClock"/> over the
/// untouched system clock in software mode — and every update publishes the next
/// <see cref="ServerState"/> (with the software-mode transform) for the workers. The core is not
/// thread-safe: every call into it holds one lock.
/// </summary>
public sealed class ClockService : BackgroundService
{
    private static readonly TimeSpan s_tick = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private readonly ClockCore _core;
    private readonly ServerStateCell _cell;
    private readonly ServerStateCell? _smearCell;
    private readonly SmearSchedule _smear;
    private readonly uint _smearReferenceId;
    private readonly ILogger _logger;
    private readonly ISteeredClock _clock;
    private readonly Dictionary<ITimeSource, Peer> _peers = [];
    private readonly Dictionary<ITimeSource, SourceConfig> _configs = [];
    private readonly Dictionary<ITimeSource, (CancellationTokenSource Stop, Task Run)> _running = [];
    private readonly ILoggerFactory _loggers;
    private readonly bool _steersNothing;
    private CancellationToken _stoppingToken;
    private readonly double _precisionSeconds;
    private ClockCoreStatus _loggedStatus = ClockCoreStatus.Unsynchronised;
    private Peer? _loggedSystemPeer;
    private long _heartbeat;
    private long _leapChecked;

    /// <summary>The earliest "now" can be (issue #21): the build, the last known time, a GPS fix. Under <see cref="_lock"/>.</summary>
    private TimeFloor _floor;
    private readonly string? _lastKnownTimePath;
    private readonly int _skipCertificateDates;

    /// <summary>Samples taken while synchronised: clock.skip-certificate-dates counts these.</summary>
    private int _clockUpdates;

    /// <summary>When (monotonic) the last known time was last written this run; 0: not yet.</summary>
    private long _lastKnownWrittenAt;
    private bool _lastKnownFailed;

    /// <summary>clock.roughtime: asked while unsynchronised; and what those that agree bound "now" to (under <see cref="_lock"/>).</summary>
    private readonly IReadOnlyList<RoughtimeTarget> _roughtime;
    private readonly int _roughtimeQuorum;
    private TimeBound? _bound;

    private bool _unboundSaid;

    /// <summary>Per source: when (monotonic) a sample outside the bound was last logged, so a refused source says so once a minute.</summary>
    private readonly Dictionary<ITimeSource, long> _refusedLoggedAt = [];
    private volatile ClockSnapshot _snapshot = ClockSnapshot.Empty;

    /// <summary>How each kind of configured source becomes its driver.</summary>
    private static readonly Dictionary<Type, Func<SourceConfig, ClockService, ILoggerFactory, ITimeSource>> s_drivers = new()
    {
        [typeof(NtpSourceConfig)] = Driver<NtpSourceConfig>((ntp, service, loggers) => new UpstreamSource(new UpstreamOptions
        {
            Host = ntp.Host,
            Port = ntp.Port,
            Nts = ntp.Nts,
            TlsName = ntp.TlsName,
            CertificateTime = service.CertificateTimeNow,
            Trust = ntp.Trust is { } trust ? LoadTrust(trust) : null,
            Aeads = ntp.Aeads.Items,
            Iburst = ntp.Iburst,
            MinPoll = ntp.MinPoll,
            MaxPoll = ntp.MaxPoll,
        }, loggers.CreateLogger<UpstreamSource>())),
        [typeof(GpsdSourceConfig)] = Driver<GpsdSourceConfig>((gpsd, _, loggers) => new GpsdSource(new GpsdOptions
        {
            Host = gpsd.Host,
            Port = gpsd.Port,
            Pps = gpsd.Pps,
            SerialDelay = gpsd.Delay.TotalSeconds,
            SerialOffset = gpsd.Offset.TotalSeconds,
            MinSatellites = gpsd.MinSatellites,
        }, loggers.CreateLogger<GpsdSource>())),
        [typeof(PpsSourceConfig)] = Driver<PpsSourceConfig>((pps, service, loggers) => new PpsSource(OpenDevice(() => KernelPpsDevice.Open(pps.Device)),
            new PpsOptions { ClearEdge = pps.ClearEdge, MaxDeviation = pps.MaxDeviation.TotalSeconds },
            system => service.TimeOfDay(system, pps.Lock), loggers.CreateLogger<PpsSource>())),
        [typeof(PhcSourceConfig)] = Driver<PhcSourceConfig>((phc, _, loggers) => new PhcSource(OpenDevice(() => KernelPhcDevice.Open(phc.Device)),
            new PhcOptions { Poll = phc.Poll, UtcOffset = phc.UtcOffset.TotalSeconds }, loggers.CreateLogger<PhcSource>())),
        [typeof(PtpSourceConfig)] = Driver<PtpSourceConfig>((ptp, _, loggers) => new PtpSource(
            new PtpOptions { Interface = ptp.Interface, Domain = ptp.Domain, DelayRequestInterval = ptp.DelayInterval },
            loggers.CreateLogger<PtpSource>())),
    };

    /// <summary>The configuration kinds a driver exists for (a test checks every kind has one).</summary>
    public static IReadOnlyCollection<Type> DriverKinds => s_drivers.Keys;

    private static Func<SourceConfig, ClockService, ILoggerFactory, ITimeSource> Driver<T>(Func<T, ClockService, ILoggerFactory, ITimeSource> make)
        where T : SourceConfig => (configured, service, loggers) => make((T)configured, service, loggers);

    /// <param name="kernel">The kernel clock to steer in kernel mode (injectable for tests); the real one when null.</param>
    /// <param name="smear">Where the smear listener's state is published (<c>ntp.smear</c>), or null when it is off.</param>
    public ClockService(ApplianceConfig config, ServerStateCell cell, ILoggerFactory loggers, KernelClock? kernel = null, ServerStateCell? smear = null)
    {
        _cell = cell;
        _smearCell = smear;
        _smearReferenceId = config.Ntp.Smear.ReferenceId;
        _logger = loggers.CreateLogger<ClockService>();
        _loggers = loggers;
        sbyte precision = cell.Current.Precision;
        _precisionSeconds = Math.ScaleB(1.0, precision);
        ClockConfig clock = config.Clock;
        LeapSeconds = clock.LeapSeconds is { } path ? LoadLeapSeconds(path) : null;
        _smear = new SmearSchedule(LeapSeconds);
        var defaults = new ClockCoreOptions();
        _lastKnownTimePath = clock.LastKnownTime;
        _roughtime = [.. (clock.Roughtime ?? RoughtimeServerList.Empty).Items.Select(r => new RoughtimeTarget(r.Name, r.Host, r.Port, r.PublicKey))];
        _roughtimeQuorum = clock.RoughtimeQuorum;
        _skipCertificateDates = clock.SkipCertificateDates;
        _floor = Floor(BuildInfo.BuildUnixSeconds, clock.LastKnownTime, _logger);
        long system = SystemClock.RealtimeNanoseconds();
        ClockBehindFloor = _floor.IsAfter(system);
        if (ClockBehindFloor)
        {
            // One line that says it all; the local reference would serve the wrong clock as if right.
            _logger.LogWarning("clock: the system clock reads {System}, before {Floor} ({Origin}): it is wrong. Serving LI=3, stratum 16 until synchronised{Local}{Step}",
                LastKnownTime.Show(system), LastKnownTime.Show(_floor.UnixNanoseconds), _floor.Origin,
                clock.Local is null ? "" : "; clock.local is not served this run",
                clock.Mode == ClockMode.Kernel && config.Sources.Count > 0 ? "; stepping it to that time first (kernel mode)" : "");
        }
        _core = new ClockCore(new ClockCoreOptions
        {
            Precision = precision,
            LocalStratum = ClockBehindFloor ? null : clock.Local?.Stratum,
            LeapSeconds = LeapSeconds,
            MinSources = clock.MinSources,
            Holdover = clock.Holdover ?? defaults.Holdover,
            StepThreshold = clock.StepThreshold?.TotalSeconds ?? defaults.StepThreshold,
            PanicThreshold = clock.PanicThreshold?.TotalSeconds ?? defaults.PanicThreshold,
            // With a single source there is no majority to wait for.
            StartupWait = config.Sources.Count <= 1 ? TimeSpan.Zero : defaults.StartupWait,
        });
        Mode = clock.Mode;
        // Kernel mode with only the local reference has nothing to steer: the clock is left alone.
        _clock = clock.Mode == ClockMode.Software ? new VirtualClock(SystemClock.RealtimeNanoseconds, SystemClock.MonotonicNanoseconds)
            : config.Sources.Count > 0 ? kernel ?? KernelClock.Realtime
            : new HostClock();
        _steersNothing = _clock is HostClock;
        foreach (SourceConfig configured in config.Sources)
        {
            Add(MakeDriver(configured), configured);
        }
    }

    private ITimeSource MakeDriver(SourceConfig configured)
    {
        if (!s_drivers.TryGetValue(configured.GetType(), out Func<SourceConfig, ClockService, ILoggerFactory, ITimeSource>? make))
        {
            throw new StartupFailedException($"no driver for a source of kind {configured.GetType().Name}");
        }
        return make(configured, this, _loggers);
    }

    private static T OpenDevice<T>(Func<T> open)
    {
        try
        {
            return open();
        }
        catch (IOException e)
        {
            throw new StartupFailedException(e.Message, e);
        }
    }

    /// <summary>
    /// What numbers a PPS pulse: the offset (true − system clock, seconds) at system time
    /// <paramref name="system"/> according to the source named <paramref name="lockTo"/> (gpsd, an
    /// upstream…), or else the disciplined clock once other sources have set it; null when neither knows.
    /// </summary>
    private double? TimeOfDay(long system, string? lockTo)
    {
        lock (_lock)
        {
            // Offsets the core holds are against the clock it steers; add what that clock is ahead of the system clock.
            long local = ToLocal(system);
            double steered = (local - system) / 1e9;
            if (lockTo is not null)
            {
                Peer? peer = _peers.Values.FirstOrDefault(p => p.Name == lockTo);
                return peer?.Filter.Best is { } best && !peer.IsStale(local) ? steered + best.Offset : null;
            }
            return _core.Status is ClockCoreStatus.Synchronised or ClockCoreStatus.Holdover ? steered + _core.OffsetAt(local) : null;
        }
    }

    private void Add(ITimeSource source, SourceConfig configured)
    {
        Peer peer = _core.AddPeer(source.Name, source.ReferenceId);
        peer.PollSeconds = source.PollSeconds;
        _peers.Add(source, peer);
        _configs.Add(source, configured);
    }

    /// <summary>
    /// Makes the running sources those of <paramref name="wanted"/> (a reload): an entry equal to a
    /// running one keeps its driver, filter and reach; one no longer listed is stopped and disposed,
    /// its peer taken out of selection; a new one gets a driver and a peer and starts. A changed
    /// entry is the old source removed and the new one added. All drivers are made before anything
    /// changes, so a driver that cannot be made (a device that will not open) changes nothing and
    /// throws <see cref="StartupFailedException"/>. Returns one line per change.
    /// </summary>
    public async Task<IReadOnlyList<string>> UpdateSourcesAsync(IReadOnlyList<SourceConfig> wanted)
    {
        List<ITimeSource> removed;
        List<(ITimeSource Source, SourceConfig Config)> added = [];
        lock (_lock)
        {
            var unmatched = _configs.ToList();
            var fresh = new List<SourceConfig>();
            foreach (SourceConfig configured in wanted)
            {
                int match = unmatched.FindIndex(c => c.Value.Equals(configured));
                if (match >= 0)
                {
                    unmatched.RemoveAt(match);
                }
                else
                {
                    fresh.Add(configured);
                }
            }
            if (fresh.Count == 0 && unmatched.Count == 0)
            {
                return [];
            }
            if (fresh.Count > 0 && _steersNothing)
            {
                throw new RestartNeededException("kernel mode started without sources leaves the host clock alone: a restart with sources steers it");
            }
            try
            {
                foreach (SourceConfig configured in fresh)
                {
                    added.Add((MakeDriver(configured), configured));
                }
            }
            catch
            {
                foreach ((ITimeSource source, _) in added)
                {
                    source.Dispose();
                }
                throw;
            }
            removed = unmatched.Select(c => c.Key).ToList();
            foreach (ITimeSource source in removed)
            {
                _core.RemovePeer(_peers[source]);
                _peers.Remove(source);
                _configs.Remove(source);
            }
            foreach ((ITimeSource source, SourceConfig configured) in added)
            {
                Add(source, configured);
            }
            _snapshot = BuildSnapshot();
        }
        var lines = new List<string>();
        var addedNames = added.Select(a => a.Source.Name).ToHashSet(StringComparer.Ordinal);
        foreach (ITimeSource source in removed)
        {
            await StopAsync(source).ConfigureAwait(false);
            lines.Add(addedNames.Contains(source.Name)
                ? $"sources: {source.Name} ({source.Kind}) changed: removed and added again, its state starts afresh"
                : $"sources: removed {source.Name} ({source.Kind})");
        }
        var removedNames = removed.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
        foreach ((ITimeSource source, _) in added)
        {
            StartRunning(source);
            if (!removedNames.Contains(source.Name))
            {
                lines.Add($"sources: added {source.Name} ({source.Kind})");
            }
        }
        return lines;
    }

    /// <summary>Starts supervising <paramref name="source"/>, once the service runs (before, <see cref="ExecuteAsync"/> starts it).</summary>
    private void StartRunning(ITimeSource source)
    {
        lock (_lock)
        {
            if (!_stoppingToken.CanBeCanceled || _stoppingToken.IsCancellationRequested || _running.ContainsKey(source))
            {
                return;
            }
            var stop = CancellationTokenSource.CreateLinkedTokenSource(_stoppingToken);
            _running[source] = (stop, SuperviseAsync(source, stop.Token));
        }
    }

    /// <summary>Stops a removed source, waits for its driver to end, and disposes it.</summary>
    private async Task StopAsync(ITimeSource source)
    {
        (CancellationTokenSource Stop, Task Run) running;
        lock (_lock)
        {
            if (!_running.Remove(source, out running))
            {
                source.Dispose();
                return;
            }
        }
        await running.Stop.CancelAsync().ConfigureAwait(false);
        await running.Run.ConfigureAwait(false);
        running.Stop.Dispose();
        source.Dispose();
    }

    public ClockMode Mode { get; }

    public LeapSecondTable? LeapSeconds { get; }

    /// <summary>The sources now (a copy: a reload may add and remove them).</summary>
    public IReadOnlyCollection<ITimeSource> Sources
    {
        get
        {
            lock (_lock)
            {
                return [.. _peers.Keys];
            }
        }
    }

    public ClockSnapshot Snapshot => _snapshot;

    /// <summary>The system clock was behind the floor at start (<see cref="Floor"/>): treated as wrong until synchronised.</summary>
    public bool ClockBehindFloor { get; }

    /// <summary>What the Roughtime servers that agree bound "now" to; null before they have (or when none are configured).</summary>
    public TimeBound? Bound
    {
        get
        {
            lock (_lock)
            {
                return _bound;
            }
        }
    }

    /// <summary>The floor for "now" as it stands.</summary>
    public TimeFloor CurrentFloor
    {
        get
        {
            lock (_lock)
            {
                return _floor;
            }
        }
    }

    /// <summary>
    /// The floor at start: the time of the commit built, raised by the last known time when its file
    /// holds one. A file that cannot be read is logged and left out, never fatal: the build time still holds.
    /// </summary>
    public static TimeFloor Floor(long buildUnixSeconds, string? lastKnownTimePath, ILogger logger)
    {
        // A day before the commit: a committer's or build machine's clock may run a little ahead, and
        // the floor is there to catch clocks years off, not to argue about hours.
        TimeFloor floor = buildUnixSeconds > 0
            ? TimeFloor.None.Raise((buildUnixSeconds - 86_400) * 1_000_000_000, "a day before the commit this appliance was built from")
            : TimeFloor.None;
        if (lastKnownTimePath is null)
        {
            return floor;
        }
        try
        {
            return LastKnownTime.Read(lastKnownTimePath) is { } known ? floor.Raise(known, $"the last known good time, from {lastKnownTimePath}") : floor;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            logger.LogWarning("clock: cannot read the last known time: {Error}", e.Message);
            return floor;
        }
    }

    /// <summary>
    /// What an NTS source checks its server's certificate dates against at a key exchange (issue #21):
    /// the clock once synchronised, never below the floor before; and nothing, while fewer than
    /// clock.skip-certificate-dates clock updates have been made.
    /// </summary>
    public CertificateTime CertificateTimeNow()
    {
        lock (_lock)
        {
            bool synchronised = _core.Status is ClockCoreStatus.Synchronised or ClockCoreStatus.Holdover;
            long now = Now();
            // Signed time from servers that agree beats both a clock that may be years off and a
            // floor that may be wrong (a last-known time planted too far ahead): the clock where it
            // lies within their bound, else the bound's nearest edge. Without a bound, the floor.
            long at = !synchronised && _bound is { } bound
                ? bound.Clamp(now, SystemClock.MonotonicNanoseconds())
                : _floor.VerificationTime(now, synchronised);
            return new CertificateTime(DateTimeOffset.UnixEpoch.AddTicks(at / 100), _clockUpdates < _skipCertificateDates);
        }
    }

    /// <summary>Turns of the once-a-second tick loop (each one through the core's lock): the watchdog's proof that the clock service runs.</summary>
    public long Heartbeat => Volatile.Read(ref _heartbeat);

    /// <summary>The clock the core steers and measures against: served time (software mode) or CLOCK_REALTIME.</summary>
    private long Now() => _clock.Now();

    private long ToLocal(long system) => _clock.Transform.Apply(system);

    /// <summary>Publishes the first state before the NTP listeners start, and checks kernel-mode permissions.</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Honest from the first moment: STA_UNSYNC until the core has set the clock (and in
            // kernel mode this is where a missing CAP_SYS_TIME shows, before anything is served).
            _clock.SetStatus(LeapIndicator.NoWarning, synchronised: false, 16, 16, LeapSeconds?.TaiOffset(SystemClock.RealtimeNanoseconds() / 1_000_000_000) ?? 0);
        }
        catch (InvalidOperationException e)
        {
            throw new StartupFailedException(e.Message, e);
        }
        lock (_lock)
        {
            long behind = _floor.UnixNanoseconds - Now();
            if (ClockBehindFloor && behind > 0 && _clock is not VirtualClock && !_steersNothing)
            {
                // Before anything else reads it (TLS, the log's timestamps, the first samples): the
                // floor is nearer the truth than a clock that is behind it.
                _clock.Step(behind / 1e9); // said in the constructor's one line
            }
            Apply(_core.Tick(Now()));
        }
        _logger.LogInformation("clock: {Mode}, {Count} source(s){Local}{Leap}",
            Mode == ClockMode.Software ? "software mode (the system clock is never touched)" : "kernel mode (steering CLOCK_REALTIME)",
            _peers.Count, _core.Status != ClockCoreStatus.Local ? ""
                : _peers.Count == 0 ? $", serving the host clock as a local reference at stratum {_core.State.Stratum}"
                : $", serving the host clock at stratum {_core.State.Stratum} until a source is usable",
            LeapSeconds is null ? "" : $", leap seconds from the table (TAI−UTC {LeapSeconds.TaiOffset(SystemClock.RealtimeNanoseconds() / 1_000_000_000)} s)");
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        lock (_lock)
        {
            _stoppingToken = stoppingToken;
        }
        Task? bootstrap = null;
        if (_roughtime.Count > 0)
        {
            // The first round before any NTS-KE starts, so that its certificate check has the bound
            // (a few round trips; each server at most 3 tries of a second). Then on, until synchronised.
            bootstrap = BootstrapAsync(stoppingToken);
            await Task.WhenAny(bootstrap, Task.Delay(TimeSpan.FromSeconds(4), stoppingToken)).ConfigureAwait(false);
        }
        foreach (ITimeSource source in Sources.ToList())
        {
            StartRunning(source);
        }
        using var timer = new PeriodicTimer(s_tick);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                long? known;
                lock (_lock)
                {
                    Apply(_core.Tick(Now()));
                    ScheduleLeapCheck();
                    known = LastKnownTimeDue(force: false);
                }
                WriteLastKnownTime(known);
                Volatile.Write(ref _heartbeat, _heartbeat + 1);
            }
        }
        catch (OperationCanceledException)
        {
        }
        long? atStop;
        lock (_lock)
        {
            atStop = LastKnownTimeDue(force: true);
        }
        WriteLastKnownTime(atStop);
        if (bootstrap is not null)
        {
            await bootstrap.ConfigureAwait(false);
        }
        List<(CancellationTokenSource Stop, Task Run)> running;
        List<ITimeSource> sources;
        lock (_lock)
        {
            running = [.. _running.Values];
            sources = [.. _peers.Keys];
        }
        await Task.WhenAll(running.Select(r => r.Run)).ConfigureAwait(false);
        foreach ((CancellationTokenSource stop, _) in running)
        {
            stop.Dispose();
        }
        foreach (ITimeSource source in sources)
        {
            source.Dispose();
        }
    }

    /// <summary>
    /// The Roughtime bootstrap (issue #21, docs/deploying.md#cold-start): while unsynchronised, asks
    /// every configured server, and once enough agree keeps the intersection as the bound for "now";
    /// asks again every 10 s (then 60 s) while they do not. Stops at the first synchronisation.
    /// </summary>
    private async Task BootstrapAsync(CancellationToken stoppingToken)
    {
        TimeSpan wait = TimeSpan.FromSeconds(10);
        while (!stoppingToken.IsCancellationRequested)
        {
            lock (_lock)
            {
                if (_core.Servo.Initialised)
                {
                    return;
                }
            }
            IReadOnlyList<RoughtimeOutcome> outcomes;
            try
            {
                outcomes = await RoughtimeBootstrap.AskAllAsync(_roughtime, TimeSpan.FromSeconds(1), 3, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
#pragma warning disable CA1031 // the bootstrap is an aid: its failure of any kind must not end the clock service
            catch (Exception e)
#pragma warning restore CA1031
            {
                _logger.LogError(e, "clock: Roughtime bootstrap failed: {Error}; the first synchronisation goes on without a bound", e.Message);
                return;
            }
            long monotonic = SystemClock.MonotonicNanoseconds();
            RoughtimeSample[] samples = [.. outcomes.Where(o => o.Sample is not null).Select(o => o.Sample!.Value)];
            TimeBound? bound = TimeBound.Agree(samples, _roughtimeQuorum, monotonic);
            string each = string.Join("; ", outcomes.Select(o => o.Sample is { } sample
                ? $"{o.Server.Name}: {LastKnownTime.Show(sample.EarliestUnixNanoseconds)} to {LastKnownTime.Show(sample.LatestUnixNanoseconds)}"
                : $"{o.Server.Name}: {o.Problem}"));
            if (bound is { } b)
            {
                long clock;
                lock (_lock)
                {
                    _bound = b;
                    clock = Now();
                }
                _logger.LogInformation("clock: Roughtime: {Agreeing} of {Count} servers agree that now is {Earliest} to {Latest}; the clock reads {Clock} ({Off:F1} s {Direction}) ({Each})",
                    b.Agreeing, _roughtime.Count, LastKnownTime.Show(b.EarliestUnixNanoseconds), LastKnownTime.Show(b.LatestUnixNanoseconds),
                    LastKnownTime.Show(clock), Math.Abs(clock - ((b.EarliestUnixNanoseconds / 2) + (b.LatestUnixNanoseconds / 2))) / 1e9,
                    clock < b.EarliestUnixNanoseconds ? "behind" : clock > b.LatestUnixNanoseconds ? "ahead" : "off, within it", each);
                return;
            }
            _logger.LogWarning("clock: Roughtime: fewer than {Quorum} of {Count} servers agree, so nothing bounds the time yet; asking again in {Wait:F0} s ({Each})",
                _roughtimeQuorum, _roughtime.Count, wait.TotalSeconds, each);
            try
            {
                await Task.Delay(wait, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            wait = TimeSpan.FromSeconds(60);
        }
    }

    /// <summary>
    /// Before the first synchronisation, a sample whose time lies outside the Roughtime bound is
    /// refused (issue #21): the servers that agree signed what "now" is, and a source that says
    /// otherwise is wrong, or someone on its path is. Logged loudly, once a minute per source.
    /// </summary>
    private bool OutsideTheBound(ITimeSource source, Sample sample)
    {
        if (_bound is not { } bound || _core.Servo.Initialised)
        {
            return false;
        }
        long monotonic = SystemClock.MonotonicNanoseconds();
        long says = Now() + (long)(sample.Offset * 1e9);
        // The sample's own uncertainty: half its round trip and its root distance (RFC 5905 §8, §11.2.1).
        long slack = (long)(((sample.Delay + sample.RootDelay) * 0.5e9) + ((sample.RootDispersion + sample.Dispersion) * 1e9));
        (long earliest, long latest) = bound.At(monotonic);
        if (says + slack >= earliest && says - slack <= latest)
        {
            return false;
        }
        if (!_refusedLoggedAt.TryGetValue(source, out long logged) || monotonic - logged > 60_000_000_000)
        {
            _refusedLoggedAt[source] = monotonic;
            _logger.LogError("clock: refused {Source}: it says the time is {Says}, outside {Earliest} to {Latest}, which {Agreeing} Roughtime server(s) signed; "
                + "a first synchronisation must lie within it (check the source, and clock.roughtime)",
                source.Name, LastKnownTime.Show(says), LastKnownTime.Show(earliest), LastKnownTime.Show(latest), bound.Agreeing);
        }
        return true;
    }

    /// <summary>
    /// The time to write as the last known one now, or null: while synchronised, at the first tick
    /// of this run that finds it so and every <see cref="LastKnownTime.Interval"/> after (and at
    /// stop, <paramref name="force"/>). Under <see cref="_lock"/>; the write is outside it.
    /// </summary>
    private long? LastKnownTimeDue(bool force)
    {
        if (_lastKnownTimePath is null || _core.Status != ClockCoreStatus.Synchronised || !Trusted(_core.Selection))
        {
            return null;
        }
        long monotonic = SystemClock.MonotonicNanoseconds();
        if (!force && _lastKnownWrittenAt != 0 && monotonic - _lastKnownWrittenAt < (long)LastKnownTime.Interval.TotalNanoseconds)
        {
            return null;
        }
        _lastKnownWrittenAt = monotonic;
        return Now();
    }

    /// <summary>
    /// Whether a synchronisation may set the floor of later starts: when its system peer is
    /// authenticated (NTS) or a reference clock, or at least two sources agree. One unauthenticated
    /// source (or someone spoofing it) could otherwise plant a far-future time that every later
    /// start would step the clock to and check certificates against.
    /// </summary>
    private bool Trusted(SelectionResult selection)
    {
        if (selection.Survivors.Count >= 2)
        {
            return true;
        }
        ITimeSource? system = selection.SystemPeer is { } peer ? _peers.FirstOrDefault(p => p.Value == peer).Key : null;
        return system is not null && _configs[system] is not NtpSourceConfig { Nts: false };
    }

    private void WriteLastKnownTime(long? known)
    {
        if (known is not { } time || _lastKnownTimePath is null)
        {
            return;
        }
        try
        {
            LastKnownTime.Write(_lastKnownTimePath, time);
            _lastKnownFailed = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!_lastKnownFailed)
            {
                // Once per spell of failures: a read-only disk would otherwise say it every 10 minutes.
                _logger.LogWarning("clock: cannot write the last known time to {Path}: {Error} (a cold start then has only the build time as its floor)", _lastKnownTimePath, e.Message);
                _lastKnownFailed = true;
            }
        }
    }

    /// <summary>
    /// Software mode, a leap second due within two seconds: one more tick half a second after its
    /// midnight. That falls after the host's own step, if its daemon inserts the leap in the kernel,
    /// and before the moment the virtual clock would repeat the second once more; the tick sees the
    /// host's step and leaves the leap to it (<see cref="VirtualClock"/>).
    /// </summary>
    private void ScheduleLeapCheck()
    {
        if (_clock is not VirtualClock { PendingLeap: > 0 and long leap } clock || leap == _leapChecked)
        {
            return;
        }
        long until = leap + 500_000_000 - clock.Now();
        if (until is > 0 and <= 2_000_000_000)
        {
            _leapChecked = leap;
            _ = LeapCheckAsync(TimeSpan.FromTicks(until / 100));
        }
    }

    private async Task LeapCheckAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        lock (_lock)
        {
            Apply(_core.Tick(Now()));
        }
    }

    /// <summary>
    /// Runs one source; a driver that fails (a vanished interface, a bug) is logged and restarted
    /// after ten seconds, never taking the clock or the other sources with it.
    /// </summary>
    private async Task SuperviseAsync(ITimeSource source, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await source.RunAsync(OnMeasurement, stoppingToken).ConfigureAwait(false);
                return; // it stopped by itself (a KoD DENY) or was cancelled
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // a driver's failure of any kind must not end the clock service
            catch (Exception e)
#pragma warning restore CA1031
            {
                _logger.LogError(e, "source {Source} failed: {Error}; restarting it in 10 s", source.Name, e.Message);
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>A source's measurement (on its thread): into the core; true when it agreed with the core's estimate.</summary>
    private bool OnMeasurement(ITimeSource source, Measurement m)
    {
        lock (_lock)
        {
            if (!_peers.TryGetValue(source, out Peer? peer))
            {
                return false; // removed by a reload while this measurement was on its way
            }
            peer.PollSeconds = source.PollSeconds;
            peer.ReferenceId = source.ReferenceId; // resolved names, and a GPS source that turns PPS
            // T1 and T4 were read from the system clock; the core measures the clock it steers.
            Sample sample = Sample.FromMeasurement(m, _clock.Transform, _precisionSeconds);
            if (OutsideTheBound(source, sample))
            {
                return false;
            }
            Apply(_core.OnSample(peer, sample, Now()));
            if (_core.Status == ClockCoreStatus.Synchronised && _core.Selection.SystemPeer == peer)
            {
                // A clock update, as chrony's nocerttimecheck counts them: a sample of the source the clock follows.
                _clockUpdates = _clockUpdates == int.MaxValue ? int.MaxValue : _clockUpdates + 1;
            }
            if (source is GpsdSource && peer.Status is not (PeerStatus.Falseticker or PeerStatus.Unfit) && peer.Filter.Best is { } fix)
            {
                // A GPS fix is time from the sky: it lifts the floor before any TLS needs one (issue #21);
                // not while selection outvotes the receiver (a spoofed or confused one).
                _floor = _floor.Raise(Now() + (long)(fix.Offset * 1e9), $"a GPS fix from {source.Name}");
            }
            return _core.Agrees(peer, sample, _precisionSeconds);
        }
    }

    private void Apply(ClockUpdate update)
    {
        foreach (ClockCommand.Step step in update.Commands.OfType<ClockCommand.Step>())
        {
            _logger.LogWarning("clock: stepped by {Seconds:F6} s", step.Seconds);
        }
        _clock.Apply(update.Commands);
        // The workers grow the dispersion from receive timestamps, which are system-clock readings:
        // anchor the growth in that frame, whatever the software-mode transform adds.
        ServerState main = update.State with
        {
            Transform = _clock.Transform,
            UpdatedAtUnixNanoseconds = SystemClock.RealtimeNanoseconds(),
        };
        _cell.Publish(main);
        if (_smearCell is not null)
        {
            _smearCell.Publish(SmearState(main));
        }
        LogChanges(update);
        _snapshot = BuildSnapshot();
    }

    /// <summary>
    /// The smear listener's state beside <paramref name="main"/> (docs/leap-smear.md): the same clock
    /// and error bounds, the leap smeared instead of announced (a smearing server's clients must never
    /// step, so it says LI=0), and its own reference id while synchronised. LI=3 stays LI=3.
    /// </summary>
    private ServerState SmearState(ServerState main)
    {
        SmearReading now = SmearClock.Now(main.Transform);
        LeapSmear? smear = _smear.Update(main, now);
        if (!main.IsSynchronised)
        {
            return main with { Smear = smear };
        }
        // The reference timestamp is the main clock's too: smeared, like every other timestamp.
        long reference = main.ReferenceTime.ToUnixNanoseconds(now.Served);
        return main with
        {
            Leap = LeapIndicator.NoWarning,
            ReferenceId = _smearReferenceId,
            ReferenceTime = smear is null ? main.ReferenceTime : NtpTimestamp.FromUnixNanoseconds(smear.Apply(reference, now)),
            Smear = smear,
        };
    }

    /// <summary>The smeared minus the main listeners' time now, seconds; null when the smear listener is off.</summary>
    public double? SmearOffset
    {
        get
        {
            if (_smearCell?.Current is not { } state)
            {
                return null;
            }
            if (state.Smear is not { } smear)
            {
                return 0;
            }
            return smear.OffsetSecondsAt(SmearClock.Now(state.Transform));
        }
    }

    private void LogChanges(ClockUpdate update)
    {
        Peer? system = update.Selection.SystemPeer;
        if (_core.Status == _loggedStatus && system == _loggedSystemPeer)
        {
            return;
        }
        Peer? previous = _loggedSystemPeer;
        _loggedStatus = _core.Status;
        _loggedSystemPeer = system;
        ServerState s = update.State;
        if (previous is not null && system is not null && previous != system)
        {
            // A reference clock lost (or regained) shows here: stratum 1 ↔ 2 and the new refid.
            _logger.LogWarning("clock: system peer changed from {Previous} ({PreviousStatus}) to {Current}; now stratum {Stratum}",
                previous.Name, previous.Status, system.Name, s.Stratum);
            return;
        }
        switch (_core.Status)
        {
            case ClockCoreStatus.Synchronised:
                _logger.LogInformation("clock: synchronised to {Source}, stratum {Stratum}, root dispersion {Dispersion:F6} s",
                    system?.Name ?? "(combined survivors)", s.Stratum, s.RootDispersion);
                if (_roughtime.Count > 0 && _bound is null && !_unboundSaid)
                {
                    _unboundSaid = true;
                    _logger.LogWarning("clock: synchronised with no Roughtime bound (fewer than {Quorum} of clock.roughtime agreed): nothing checked this first synchronisation", _roughtimeQuorum);
                }
                break;
            case ClockCoreStatus.Holdover:
                _logger.LogWarning("clock: no usable source; holdover (dispersion grows with PHI plus the frequency uncertainty)");
                break;
            case ClockCoreStatus.Local when _peers.Count == 0:
                break; // the configured reference, said at start
            case ClockCoreStatus.Local:
                _logger.LogWarning("clock: no usable source; serving the host clock at stratum {Stratum}", s.Stratum);
                break;
            case ClockCoreStatus.Panic:
                _logger.LogError("clock: the sources say the clock is off by more than clock.panic-threshold; refusing to step. "
                    + "Check the sources, or restart the appliance to allow one step at start-up");
                break;
            default:
                _logger.LogWarning("clock: unsynchronised (LI=3, stratum 16)");
                break;
        }
    }

    private ClockSnapshot BuildSnapshot()
    {
        var sources = new List<SourceSnapshot>(_peers.Count);
        foreach ((ITimeSource source, Peer peer) in _peers)
        {
            Sample? best = peer.Filter.Best;
            sources.Add(new SourceSnapshot(source.Name, source.Kind, source.State, peer.Status, source.Reach, source.PollSeconds,
                best?.Offset, best?.Delay, peer.Filter.Jitter, best?.Stratum ?? 0, source.Counters));
        }
        KalmanServo servo = _core.Servo;
        long system = SystemClock.RealtimeNanoseconds();
        long now = ToLocal(system);
        return new ClockSnapshot(_core.Status, _core.OffsetAt(now), servo.Frequency, servo.FrequencyStdDev, servo.OffsetStdDev,
            (now - system) / 1e9, sources);
    }

    private LeapSecondTable LoadLeapSeconds(string path)
    {
        LeapSecondTable table;
        try
        {
            table = LeapSecondTable.Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new StartupFailedException($"cannot use the leap-seconds file {path}: {e.Message} (get a fresh copy: Debian package tzdata, /usr/share/zoneinfo/leap-seconds.list)", e);
        }
        long now = SystemClock.RealtimeNanoseconds() / 1_000_000_000;
        if (table.IsExpired(now))
        {
            _logger.LogWarning("the leap-seconds file {Path} expired on {Expiry:yyyy-MM-dd}: a leap second announced after it would be missed; update tzdata",
                path, DateTimeOffset.FromUnixTimeSeconds(table.Expires));
        }
        return table;
    }

    private static X509Certificate2Collection LoadTrust(string path)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPemFile(path);
        return collection;
    }

    /// <summary>Kernel mode with nothing to steer (only the local reference): the host clock, read and left alone.</summary>
    private sealed class HostClock : ISteeredClock
    {
        public TimeTransform Transform => TimeTransform.Identity;

        public long Now() => SystemClock.RealtimeNanoseconds();

        public void Step(double seconds)
        {
        }

        public void SetFrequency(double correction)
        {
        }

        public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset)
        {
        }
    }
}

/// <summary>A change a reload cannot make while the appliance runs; the message says why.</summary>
public sealed class RestartNeededException(string message) : Exception(message);
