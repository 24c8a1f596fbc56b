namespace Appliance.Discipline;

/// <summary>
/// The servo: a two-state Kalman filter over the free-running oscillator's offset θ (true − raw
/// local time, seconds) and its frequency error f (s/s). The clock core turns every measurement
/// into this frame by adding the steering it has applied, so the model stays θ' = θ + f·dt however
/// the clock was slewed or stepped in between; it corrects with each new offset measurement weighted
/// by its variance. Process noise models white phase noise and a random walk
/// of frequency (oscillator wander). Why Kalman rather than the RFC 5905 PLL/FLL: it uses each
/// measurement's own uncertainty, gives honest uncertainties for root dispersion and holdover, and
/// converges without hand-tuned time constants; docs/clock.md shows the simulation results.
/// </summary>
public sealed class KalmanServo(double phaseNoise = 1e-15, double frequencyWander = 4e-20)
{
    private double _theta;
    private double _f;
    private double _p00, _p01, _p11;
    private int _run; // innovations in a row with the same sign, signed

    /// <summary>
    /// Innovations in a row with one sign, each beyond half its standard deviation, that make the
    /// model suspect. Under the model each is such with p ≈ 0.31 (eight in a row: p ≈ 2 × 10⁻⁴);
    /// a real change of frequency (temperature, a migrated VM) produces them within a few polls. Counting signs rather than sizes keeps the test sound
    /// when a measurement variance is misjudged.
    /// </summary>
    private const int RunLimit = 8;

    /// <summary>
    /// The frequency uncertainty a suspect run may widen to, (1 ppm)², four times per update: wide
    /// enough to relearn a real change within minutes, narrow enough that a false alarm cannot
    /// make the servo swing (a jump to the size the run suggests overshot in simulation).
    /// </summary>
    private const double RunVarianceCap = 1e-12;

    public bool Initialised { get; private set; }

    /// <summary>Local time (Unix ns) the estimates refer to.</summary>
    public long Time { get; private set; }

    public double Offset => _theta;

    public double Frequency => _f;

    public double OffsetStdDev => Math.Sqrt(Math.Max(0, _p00));

    public double FrequencyStdDev => Math.Sqrt(Math.Max(0, _p11));

    /// <summary>The estimated offset at <paramref name="time"/> (no update).</summary>
    public double OffsetAt(long time) => _theta + (_f * ((time - Time) / 1e9));

    /// <summary>Starts over from one measurement; the frequency error is unknown (±100 ppm).</summary>
    public void Reset(long time, double offset, double variance, double frequency = 0, double frequencyVariance = 1e-8)
    {
        Time = time;
        _theta = offset;
        _f = frequency;
        _p00 = variance;
        _p01 = 0;
        _p11 = frequencyVariance;
        _run = 0;
        Initialised = true;
    }

    /// <summary>Moves the state to <paramref name="time"/>.</summary>
    public void Predict(long time)
    {
        double dt = (time - Time) / 1e9;
        if (dt <= 0)
        {
            return;
        }
        _theta += _f * dt;
        // P = F P Fᵀ + Q with F = [[1, dt], [0, 1]].
        double p00 = _p00 + (2 * dt * _p01) + (dt * dt * _p11);
        double p01 = _p01 + (dt * _p11);
        double q = frequencyWander;
        _p00 = p00 + (phaseNoise * dt) + (q * dt * dt * dt / 3);
        _p01 = p01 + (q * dt * dt / 2);
        _p11 += q * dt;
        Time = time;
    }

    /// <summary>
    /// Corrects with a measured offset. A measurement older than the state is carried forward by the
    /// estimated frequency. Returns the innovation (measurement − prediction).
    /// </summary>
    public double Update(long time, double offset, double variance)
    {
        if (time > Time)
        {
            Predict(time);
        }
        else
        {
            double back = (Time - time) / 1e9;
            offset += _f * back;
            variance += back * back * _p11;
        }
        double innovation = offset - _theta;
        double s = _p00 + variance;
        // Innovations that keep one sign say the frequency moved more than the random-walk model
        // allows: widen the frequency uncertainty so the filter relearns it, instead of lagging for
        // hours (chrony reaches the same end with its runs test on regression residuals).
        double z = innovation / Math.Sqrt(s);
        _run = Math.Abs(z) < 0.5 ? 0 : z > 0 ? Math.Max(_run, 0) + 1 : Math.Min(_run, 0) - 1;
        if (Math.Abs(_run) >= RunLimit)
        {
            _p11 = Math.Max(_p11, Math.Min(_p11 * 4, RunVarianceCap));
        }
        double k0 = _p00 / s, k1 = _p01 / s;
        _theta += k0 * innovation;
        _f = Math.Clamp(_f + (k1 * innovation), -Constants.MaxFrequency, Constants.MaxFrequency);
        double p00 = (1 - k0) * _p00;
        double p01 = (1 - k0) * _p01;
        double p11 = _p11 - (k1 * _p01);
        _p00 = p00;
        _p01 = p01;
        _p11 = Math.Max(p11, 1e-30);
        return innovation;
    }

    /// <summary>The clock's readings jumped by <paramref name="nanoseconds"/> (a step): the state's time moves with them.</summary>
    public void ShiftTime(long nanoseconds) => Time += nanoseconds;
}
