using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>How the clock core runs.</summary>
public sealed record ClockCoreOptions
{
    /// <summary>Offsets beyond this are stepped rather than slewed (RFC 5905 STEPT, 128 ms).</summary>
    public double StepThreshold { get; init; } = 0.128;

    /// <summary>An offset beyond this is refused (RFC 5905 PANICT, 1000 s) — except once at start when allowed.</summary>
    public double PanicThreshold { get; init; } = 1000;

    public bool AllowPanicStepAtStart { get; init; } = true;

    /// <summary>How long an offset beyond the step threshold must persist before it is believed (RFC 5905 stepout).</summary>
    public TimeSpan StepOut { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>How long to keep serving from the free-running estimate after the last usable sample.</summary>
    public TimeSpan Holdover { get; init; } = TimeSpan.FromHours(12);

    /// <summary>Sources that must agree before the clock is set (chrony's minsources).</summary>
    public int MinSources { get; init; } = 1;

    /// <summary>
    /// Before the clock is first set, how long to wait for a majority of the configured sources to
    /// answer. Selecting from the first source to answer would trust a falseticker that happens to be
    /// quickest; with iburst a majority answers within seconds.
    /// </summary>
    public TimeSpan StartupWait { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Time constant of slewing an offset away in kernel mode.</summary>
    public TimeSpan SlewTime { get; init; } = TimeSpan.FromSeconds(16);

    public sbyte Precision { get; init; } = -20;

    /// <summary>Serve the local clock at this stratum when nothing better exists (chrony's local orphan), or null.</summary>
    public byte? LocalStratum { get; init; }

    public LeapSecondTable? LeapSeconds { get; init; }
}

/// <summary>Where the core stands, for logs and metrics.</summary>
public enum ClockCoreStatus : byte
{
    /// <summary>No usable source yet.</summary>
    Unsynchronised,

    Synchronised,

    /// <summary>Sources lost: serving the free-running estimate with growing dispersion.</summary>
    Holdover,

    /// <summary>Nothing usable, serving the local clock as a low-stratum fallback.</summary>
    Local,

    /// <summary>A source offset beyond the panic threshold was refused.</summary>
    Panic,
}

/// <summary>What one step of the core produced.</summary>
public sealed record ClockUpdate(IReadOnlyList<ClockCommand> Commands, ServerState State, SelectionResult Selection);

/// <summary>
/// The disciplined-clock core (pure): samples in, selection (RFC 5905 §11.2), the Kalman servo, step
/// versus slew, holdover, leap announcements; clock commands and the next <see cref="ServerState"/>
/// out. It always steers "the clock" with <see cref="ClockCommand"/>s: in kernel mode that is
/// CLOCK_REALTIME (clock_adjtime), in software mode a <see cref="VirtualClock"/> over the untouched
/// system clock. All times given to it are that clock's readings (Unix nanoseconds), and samples are
/// measured against it, so the same algorithm serves both modes.
/// </summary>
public sealed class ClockCore
{
    private readonly ClockCoreOptions _options;
    private readonly List<Peer> _peers = [];
    private int _nextPeerId;
    private readonly KalmanServo _servo = new();
    private SelectionResult _selection = SelectionResult.None;
    private long _lastUpdate;          // local time of the last servo update from a survivor
    private long _spikeSince = -1;     // when offsets beyond the step threshold started
    private long _lastStep = long.MinValue;
    private bool _everSet;
    private bool _panic;               // the last offset was refused as beyond the panic threshold
    private long _firstSample = -1;    // local time of the first sample from any source
    private SystemReference? _reference;

    // The steering applied to the clock so far, C(t) = anchor + u·(t − anchorTime): every slew and
    // step the core has commanded. A measured offset θ (true − steered clock) plus C(t) is the
    // free-running oscillator's offset, the frame the servo works in, so a measurement stays valid
    // however the clock was steered after it was taken.
    private double _applied;           // u, s/s
    private double _steeringAnchor;    // seconds
    private long _steeringAnchorTime;

    public ClockCore(ClockCoreOptions options)
    {
        _options = options;
        State = ServerState.Unsynchronised(options.Precision);
    }

    public IReadOnlyList<Peer> Peers => _peers;

    public ServerState State { get; private set; }

    public ClockCoreStatus Status { get; private set; } = ClockCoreStatus.Unsynchronised;

    public KalmanServo Servo => _servo;

    public SelectionResult Selection => _selection;

    /// <summary>Frequency correction currently applied to the steered clock, s/s.</summary>
    public double AppliedFrequency => _applied;

    /// <summary>The estimated offset of the steered clock (true − clock) at <paramref name="now"/>: what is still to be slewed away.</summary>
    public double OffsetAt(long now) => _servo.Initialised ? _servo.OffsetAt(now) - SteeringAt(now) : 0;

    /// <summary>
    /// Whether <paramref name="sample"/> (already taken in) agreed with the core's estimate, for the poll
    /// adaptation (RFC 5905 §A.5.5.2): within four jitters of the offset the core expected.
    /// </summary>
    public bool Agrees(Peer peer, in Sample sample, double precisionSeconds) =>
        Math.Abs(sample.Offset - OffsetAt(sample.LocalTime)) < 4 * Math.Max(peer.Filter.Jitter, precisionSeconds);

    public Peer AddPeer(string name, uint referenceId)
    {
        var peer = new Peer(_nextPeerId++, name, referenceId);
        _peers.Add(peer);
        return peer;
    }

    /// <summary>
    /// Takes <paramref name="peer"/> out of every later selection (a source removed at a reload); the
    /// other peers keep their filters. The system variables it gave stay until the next selection
    /// names another system peer, as they stay through holdover (RFC 5905 §11.2.3).
    /// </summary>
    public bool RemovePeer(Peer peer) => _peers.Remove(peer);

    /// <summary>A new measurement from <paramref name="peer"/> at local time <paramref name="now"/>.</summary>
    public ClockUpdate OnSample(Peer peer, Sample sample, long now)
    {
        var commands = new List<ClockCommand>();
        if (sample.LocalTime < _lastStep)
        {
            return Finish(now, commands); // measured against the clock before a step: meaningless now
        }
        sample = sample with { Steering = SteeringAt(sample.LocalTime) };
        peer.Filter.Add(sample);
        _firstSample = _firstSample < 0 ? now : _firstSample;
        Select(now);
        if (_selection.Survivors.Contains(peer) && StartupQuorum(now))
        {
            now += Discipline(peer, sample, now, commands);
        }
        return Finish(now, commands);
    }

    /// <summary>Periodic work (once a second is plenty): holdover, leap announcements, slewing, republishing.</summary>
    public ClockUpdate Tick(long now)
    {
        var commands = new List<ClockCommand>();
        Select(now);
        return Finish(now, commands);
    }

    /// <summary>
    /// One selection round (RFC 5905 §11.2), and the system peer's variables copied into the
    /// system's as clock_update does (§11.2.3, A.5.5.1). They are taken before the servo may step
    /// (a step clears every filter), and they persist while no peer has a sample: right after a
    /// step, and in holdover. A system peer that does not name its reference (reference id 0)
    /// leaves none, so nothing synchronised is published from it.
    /// </summary>
    private void Select(long now)
    {
        _selection = SourceSelection.Select(_peers, now, _options.MinSources);
        if (_selection.SystemPeer is { Filter.Best: { } best } system)
        {
            _reference = system.ReferenceId != 0 ? new SystemReference(system.ReferenceId, best, system.Filter.Dispersion, system.Filter.Jitter) : null;
        }
    }

    private double SteeringAt(long time) => _steeringAnchor + (_applied * ((time - _steeringAnchorTime) / 1e9));

    /// <summary>True once the clock may be set: it was set before, a majority has answered, or the start-up wait is over.</summary>
    private bool StartupQuorum(long now) =>
        _servo.Initialised
        || 2 * _peers.Count(p => p.Filter.Best is not null) > _peers.Count
        || now - _firstSample >= _options.StartupWait.Ticks * 100;

    /// <summary>
    /// Feeds the servo with a survivor's sample, weighted by its own variance (the selection itself
    /// still works on each filter's least-delay sample, RFC 5905 §10–11). Returns how far a step
    /// moved the clock's readings, in nanoseconds.
    /// </summary>
    private long Discipline(Peer peer, Sample best, long now, List<ClockCommand> commands)
    {
        double variance = peer.Filter.VarianceOf(best);
        double raw = best.Offset + best.Steering;
        if (!_servo.Initialised)
        {
            if (Math.Abs(best.Offset) > _options.PanicThreshold && !(_options.AllowPanicStepAtStart && !_everSet))
            {
                _panic = true;
                return 0;
            }
            _lastUpdate = now;
            return SetTo(best, variance, commands);
        }
        double innovation = raw - _servo.OffsetAt(best.LocalTime);
        if (Math.Abs(innovation) > _options.StepThreshold)
        {
            // A spike (RFC 5905 §11.3): believed only once it has lasted the stepout interval.
            if (_spikeSince < 0)
            {
                _spikeSince = now;
                return 0;
            }
            if (now - _spikeSince < _options.StepOut.Ticks * 100)
            {
                return 0;
            }
            if (Math.Abs(best.Offset) > _options.PanicThreshold)
            {
                _panic = true;
                return 0;
            }
            _lastUpdate = now;
            return SetTo(best, variance, commands);
        }
        _spikeSince = -1;
        _panic = false;
        _servo.Update(best.LocalTime, raw, variance);
        _lastUpdate = now;
        return 0;
    }

    /// <summary>
    /// Starts the servo from one sample. An offset beyond the step threshold is stepped (on a
    /// steered clock, ADJ_SETOFFSET; in software mode, a jump of the transform); a smaller one is
    /// left for the slew. Returns the step in nanoseconds.
    /// </summary>
    private long SetTo(Sample best, double variance, List<ClockCommand> commands)
    {
        double frequency = _servo.Initialised ? _servo.Frequency : 0;
        double frequencyVariance = _servo.Initialised ? Math.Max(_servo.FrequencyStdDev * _servo.FrequencyStdDev, 1e-14) : 1e-8;
        _servo.Reset(best.LocalTime, best.Offset + best.Steering, variance, frequency, frequencyVariance);
        _spikeSince = -1;
        _panic = false;
        _everSet = true;
        if (Math.Abs(best.Offset) <= _options.StepThreshold)
        {
            return 0;
        }
        commands.Add(new ClockCommand.Step(best.Offset));
        foreach (Peer p in _peers)
        {
            p.Filter.Clear(); // every stored offset was measured against the clock before the step
        }
        // The clock's readings jump by the step; every local time the core holds moves with them.
        long shift = (long)Math.Round(best.Offset * 1e9);
        _steeringAnchor = SteeringAt(best.LocalTime) + best.Offset;
        _steeringAnchorTime = best.LocalTime + shift;
        _servo.ShiftTime(shift);
        _lastUpdate += shift;
        _firstSample += shift;
        _lastStep = _steeringAnchorTime;
        return shift;
    }

    private ClockUpdate Finish(long now, List<ClockCommand> commands)
    {
        bool survivors = _selection.SystemPeer is not null;
        bool inHoldover = _servo.Initialised && now - _lastUpdate > 0 && !survivors;
        bool holdoverOver = _servo.Initialised && (now - _lastUpdate) / 1e9 > _options.Holdover.TotalSeconds;
        // Panic: the sources say the clock is off by more than the panic threshold and the core
        // refused to believe it; either side is badly wrong, so nothing is claimed until it clears.
        Status = _panic ? ClockCoreStatus.Panic
            : !_servo.Initialised ? ClockCoreStatus.Unsynchronised
            : holdoverOver ? ClockCoreStatus.Unsynchronised
            : inHoldover ? ClockCoreStatus.Holdover
            : ClockCoreStatus.Synchronised;
        if (Status is (ClockCoreStatus.Synchronised or ClockCoreStatus.Holdover) && _reference is null)
        {
            // A synchronised answer names its reference (RFC 5905 §7.3): without one it is not synchronised.
            Status = ClockCoreStatus.Unsynchronised;
        }
        if (Status == ClockCoreStatus.Unsynchronised && _options.LocalStratum is not null && !survivors)
        {
            Status = ClockCoreStatus.Local;
        }

        if (_servo.Initialised)
        {
            // Drift correction plus a slew that removes the remaining offset over SlewTime.
            double slew = OffsetAt(now) / _options.SlewTime.TotalSeconds;
            double next = Math.Clamp(_servo.Frequency + slew, -Constants.MaxFrequency, Constants.MaxFrequency);
            _servo.Predict(now);
            if (Math.Abs(next - _applied) > 1e-12)
            {
                _steeringAnchor = SteeringAt(now);
                _steeringAnchorTime = now;
                _applied = next;
                commands.Add(new ClockCommand.SetFrequency(next));
            }
        }

        State = BuildState(now);
        {
            int tai = _options.LeapSeconds?.TaiOffset(now / 1_000_000_000) ?? 0;
            double maxError = State.IsSynchronised ? State.RootDispersion + (State.RootDelay / 2) : 16;
            commands.Add(new ClockCommand.SetStatus(State.IsSynchronised ? State.Leap : LeapIndicator.NoWarning, State.IsSynchronised,
                maxError, _servo.Initialised ? _servo.OffsetStdDev : 16, tai));
        }
        return new ClockUpdate(commands, State, _selection);
    }

    private ServerState BuildState(long now)
    {
        LeapIndicator leap = _options.LeapSeconds?.Announcement(now / 1_000_000_000) ?? UpstreamLeap();
        if (Status == ClockCoreStatus.Local)
        {
            return new ServerState
            {
                Leap = leap,
                Stratum = _options.LocalStratum!.Value,
                ReferenceId = 0x7F7F0101,
                ReferenceTime = NtpTimestamp.FromUnixNanoseconds(now),
                RootDispersion = Math.ScaleB(1.0, _options.Precision),
                UpdatedAtUnixNanoseconds = now,
                Precision = _options.Precision,
            };
        }
        if (Status is not (ClockCoreStatus.Synchronised or ClockCoreStatus.Holdover))
        {
            // LI = 3, stratum 16: never a lie.
            return ServerState.Unsynchronised(_options.Precision);
        }
        // The system variables (RFC 5905 §11.2.3): from the system peer at the last selection that had
        // one; Finish has made sure there is one.
        SystemReference reference = _reference!.Value;
        Sample best = reference.Sample;
        double sinceUpdate = Math.Max(0, (now - _lastUpdate) / 1e9);
        // Honest error bound: the path to the primary reference, the source's own dispersion and
        // jitter, the selection jitter, the servo's uncertainty (3σ: a bound, not a typical value),
        // and (in holdover) the frequency uncertainty on top of PHI; ServerState adds PHI × time
        // from here on.
        double dispersion = best.RootDispersion + reference.Dispersion + reference.Jitter + _selection.Jitter
            + (3 * _servo.OffsetStdDev) + ((Constants.Phi + (3 * _servo.FrequencyStdDev)) * sinceUpdate)
            + Math.Abs(OffsetAt(now)); // the offset not yet slewed away is served error too
        return new ServerState
        {
            Leap = leap,
            Stratum = (byte)Math.Min(15, best.Stratum + 1),
            ReferenceId = reference.ReferenceId,
            ReferenceTime = NtpTimestamp.FromUnixNanoseconds(_lastUpdate),
            RootDelay = best.RootDelay + best.Delay,
            RootDispersion = dispersion,
            UpdatedAtUnixNanoseconds = now,
            Precision = _options.Precision,
        };
    }

    /// <summary>Without a leap table: what most survivors announce.</summary>
    private LeapIndicator UpstreamLeap()
    {
        int insert = 0, delete = 0;
        foreach (Peer p in _selection.Survivors)
        {
            insert += p.Filter.Best?.Leap == LeapIndicator.InsertSecond ? 1 : 0;
            delete += p.Filter.Best?.Leap == LeapIndicator.DeleteSecond ? 1 : 0;
        }
        int half = _selection.Survivors.Count / 2;
        return insert > half ? LeapIndicator.InsertSecond : delete > half ? LeapIndicator.DeleteSecond : LeapIndicator.NoWarning;
    }
}

/// <summary>
/// The system peer's variables as the last selection that had one saw them (RFC 5905 §11.2.3): whom
/// the server names as its reference (never 0: a system peer without one leaves no reference), and the
/// sample, dispersion and jitter its stratum, root delay and root dispersion come from.
/// </summary>
internal readonly record struct SystemReference(uint ReferenceId, Sample Sample, double Dispersion, double Jitter);
