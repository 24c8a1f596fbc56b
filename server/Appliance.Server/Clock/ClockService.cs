using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Server.Ntp;
using Appliance.Sources;
using Appliance.Timestamping;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Clock;

/// <summary>One source as the metrics see it.</summary>
public sealed record SourceSnapshot(string Name, UpstreamState State, PeerStatus Selection, byte Reach, double PollSeconds,
    double? Offset, double? Delay, double Jitter, int Stratum, long Requests, long Answers, long Invalid, long KissOfDeath,
    long NtsNaks, long KeyExchanges);

/// <summary>The clock core's state as the metrics see it (refreshed at least once a second).</summary>
public sealed record ClockSnapshot(ClockCoreStatus Status, double Offset, double Frequency, double FrequencyStdDev, double OffsetStdDev,
    IReadOnlyList<SourceSnapshot> Sources)
{
    public static ClockSnapshot Empty { get; } = new(ClockCoreStatus.Unsynchronised, 0, 0, 0, 0, []);
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
    private readonly ILogger _logger;
    private readonly VirtualClock? _virtual;
    private readonly KernelClock? _kernel;
    private readonly Dictionary<UpstreamSource, Peer> _peers = [];
    private readonly double _precisionSeconds;
    private ClockCoreStatus _loggedStatus = ClockCoreStatus.Unsynchronised;
    private Peer? _loggedSystemPeer;
    private (LeapIndicator, bool) _kernelStatus;
    private long _kernelStatusTime = long.MinValue;
    private volatile ClockSnapshot _snapshot = ClockSnapshot.Empty;

    /// <param name="kernel">The kernel clock to steer in kernel mode (injectable for tests); the real one when null.</param>
    public ClockService(ApplianceConfig config, ServerStateCell cell, ILoggerFactory loggers, KernelClock? kernel = null)
    {
        _cell = cell;
        _logger = loggers.CreateLogger<ClockService>();
        sbyte precision = cell.Current.Precision;
        _precisionSeconds = Math.ScaleB(1.0, precision);
        ClockConfig clock = config.Clock;
        LeapSeconds = clock.LeapSeconds is { } path ? LoadLeapSeconds(path) : null;
        var defaults = new ClockCoreOptions();
        _core = new ClockCore(new ClockCoreOptions
        {
            Precision = precision,
            LocalStratum = clock.Local?.Stratum,
            LeapSeconds = LeapSeconds,
            MinSources = clock.MinSources,
            Holdover = clock.Holdover ?? defaults.Holdover,
            StepThreshold = clock.StepThreshold?.TotalSeconds ?? defaults.StepThreshold,
            PanicThreshold = clock.PanicThreshold?.TotalSeconds ?? defaults.PanicThreshold,
            // With a single source there is no majority to wait for.
            StartupWait = config.Sources.Count <= 1 ? TimeSpan.Zero : defaults.StartupWait,
        });
        Mode = clock.Mode;
        if (clock.Mode == ClockMode.Software)
        {
            _virtual = new VirtualClock();
        }
        else if (config.Sources.Count > 0)
        {
            // Kernel mode with only the local reference has nothing to steer: the clock is left alone.
            _kernel = kernel ?? KernelClock.Realtime;
        }
        foreach (SourceConfig source in config.Sources)
        {
            var options = new UpstreamOptions
            {
                Host = source.Host,
                Port = source.Port,
                Nts = source.Nts,
                TlsName = source.TlsName,
                Trust = source.Trust is { } trust ? LoadTrust(trust) : null,
                Iburst = source.Iburst,
                MinPoll = source.MinPoll,
                MaxPoll = source.MaxPoll,
            };
            var upstream = new UpstreamSource(options, loggers.CreateLogger<UpstreamSource>());
            Peer peer = _core.AddPeer(upstream.Name, IPAddress.TryParse(source.Host, out IPAddress? ip) ? ReferenceId(ip) : 0);
            peer.PollSeconds = upstream.Schedule.PollSeconds;
            _peers.Add(upstream, peer);
        }
    }

    public ClockMode Mode { get; }

    public LeapSecondTable? LeapSeconds { get; }

    public IReadOnlyCollection<UpstreamSource> Sources => _peers.Keys;

    public ClockSnapshot Snapshot => _snapshot;

    /// <summary>The clock the core steers and measures against: served time (software mode) or CLOCK_REALTIME.</summary>
    private long Now() => ToLocal(SystemClock.RealtimeNanoseconds());

    private long ToLocal(long system) => _virtual?.ToServed(system) ?? system;

    /// <summary>Publishes the first state before the NTP listeners start, and checks kernel-mode permissions.</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (_kernel is not null)
        {
            try
            {
                // Honest from the first moment: STA_UNSYNC until the core has set the clock.
                _kernel.SetStatus(0, synchronised: false, 16, 16, LeapSeconds?.TaiOffset(SystemClock.RealtimeNanoseconds() / 1_000_000_000) ?? 0);
            }
            catch (InvalidOperationException e)
            {
                throw new StartupFailedException(e.Message, e);
            }
        }
        lock (_lock)
        {
            Apply(_core.Tick(Now()));
        }
        _logger.LogInformation("clock: {Mode}, {Count} source(s){Local}{Leap}",
            Mode == ClockMode.Software ? "software mode (the system clock is never touched)" : "kernel mode (steering CLOCK_REALTIME)",
            _peers.Count, _core.Status == ClockCoreStatus.Local ? $", serving the host clock at stratum {_core.State.Stratum} while no source is usable" : "",
            LeapSeconds is null ? "" : $", leap seconds from the table (TAI−UTC {LeapSeconds.TaiOffset(SystemClock.RealtimeNanoseconds() / 1_000_000_000)} s)");
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var running = _peers.Keys.Select(s => s.RunAsync(OnMeasurement, stoppingToken)).ToList();
        using var timer = new PeriodicTimer(s_tick);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                lock (_lock)
                {
                    Apply(_core.Tick(Now()));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        await Task.WhenAll(running).ConfigureAwait(false);
        foreach (UpstreamSource source in _peers.Keys)
        {
            source.Dispose();
        }
    }

    /// <summary>A source's measurement (on its thread): into the core; true when it agreed with the core's estimate.</summary>
    private bool OnMeasurement(UpstreamSource source, Measurement m)
    {
        lock (_lock)
        {
            Peer peer = _peers[source];
            peer.PollSeconds = source.Schedule.PollSeconds;
            if (peer.ReferenceId == 0 && source.NtpEndPoint is { } endPoint)
            {
                peer.ReferenceId = ReferenceId(endPoint.Address);
            }
            // T1 and T4 were read from the system clock; the core measures the clock it steers.
            Sample sample = Sample.FromTimestamps(ToLocal(m.T1), m.T2, m.T3, ToLocal(m.T4), _precisionSeconds, m.Response);
            Apply(_core.OnSample(peer, sample, Now()));
            // Poll adaptation (RFC 5905 §A.5.5.2): a sample within four jitters of the estimate is "steady".
            double expected = _core.OffsetAt(sample.LocalTime);
            return Math.Abs(sample.Offset - expected) < 4 * Math.Max(peer.Filter.Jitter, _precisionSeconds);
        }
    }

    private void Apply(ClockUpdate update)
    {
        foreach (ClockCommand command in update.Commands)
        {
            switch (command)
            {
                case ClockCommand.Step step:
                    _logger.LogWarning("clock: stepped by {Seconds:F6} s", step.Seconds);
                    _virtual?.Apply(step, SystemClock.RealtimeNanoseconds());
                    _kernel?.Step(step.Seconds);
                    break;
                case ClockCommand.SetFrequency frequency:
                    _virtual?.Apply(frequency, SystemClock.RealtimeNanoseconds());
                    _kernel?.SetFrequency(frequency.Correction);
                    break;
                case ClockCommand.SetStatus status when _kernel is not null:
                    SetKernelStatus(status);
                    break;
            }
        }
        // The workers grow the dispersion from receive timestamps, which are system-clock readings:
        // anchor the growth in that frame, whatever the software-mode transform adds.
        _cell.Publish(update.State with
        {
            Transform = _virtual?.Transform ?? TimeTransform.Identity,
            UpdatedAtUnixNanoseconds = SystemClock.RealtimeNanoseconds(),
        });
        LogChanges(update);
        _snapshot = BuildSnapshot();
    }

    /// <summary>The kernel's status word and error bounds: at once when leap or sync change, else every 16 s.</summary>
    private void SetKernelStatus(ClockCommand.SetStatus status)
    {
        long now = SystemClock.MonotonicNanoseconds();
        if (_kernelStatus == (status.Leap, status.Synchronised) && now - _kernelStatusTime < 16_000_000_000L)
        {
            return;
        }
        _kernelStatus = (status.Leap, status.Synchronised);
        _kernelStatusTime = now;
        _kernel!.SetStatus((int)status.Leap, status.Synchronised, status.MaxError, status.EstimatedError, status.TaiOffset);
    }

    private void LogChanges(ClockUpdate update)
    {
        Peer? system = update.Selection.SystemPeer;
        if (_core.Status == _loggedStatus && system == _loggedSystemPeer)
        {
            return;
        }
        _loggedStatus = _core.Status;
        _loggedSystemPeer = system;
        ServerState s = update.State;
        switch (_core.Status)
        {
            case ClockCoreStatus.Synchronised:
                _logger.LogInformation("clock: synchronised to {Source}, stratum {Stratum}, root dispersion {Dispersion:F6} s",
                    system?.Name ?? "(combined survivors)", s.Stratum, s.RootDispersion);
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
        foreach ((UpstreamSource source, Peer peer) in _peers)
        {
            Sample? best = peer.Filter.Best;
            sources.Add(new SourceSnapshot(source.Name, source.State, peer.Status, source.Schedule.Reach, source.Schedule.PollSeconds,
                best?.Offset, best?.Delay, peer.Filter.Jitter, best?.Stratum ?? 0, source.Requests, source.Answers, source.Invalid,
                source.KissOfDeathReceived, source.NtsNaks, source.KeyExchanges));
        }
        KalmanServo servo = _core.Servo;
        return new ClockSnapshot(_core.Status, _core.OffsetAt(Now()), servo.Frequency, servo.FrequencyStdDev, servo.OffsetStdDev, sources);
    }

    /// <summary>RFC 5905 §7.3: an IPv4 server's refid is its address; an IPv6 server's, the first four octets of the address's MD5.</summary>
    private static uint ReferenceId(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6)
        {
            return BinaryPrimitives.ReadUInt32BigEndian(address.MapToIPv4().GetAddressBytes());
        }
#pragma warning disable CA5351 // MD5 is what RFC 5905 specifies for the IPv6 refid; not a security use
        return BinaryPrimitives.ReadUInt32BigEndian(MD5.HashData(address.GetAddressBytes()));
#pragma warning restore CA5351
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
}
