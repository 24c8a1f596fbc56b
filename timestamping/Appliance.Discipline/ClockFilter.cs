namespace Appliance.Discipline;

/// <summary>
/// The per-source clock filter (RFC 5905 §10): the last eight samples; the one with the smallest
/// delay is the source's offset (a low-delay exchange is the least disturbed by queueing), the jitter
/// is the RMS difference of the others' offsets from it, and the dispersion weights older samples
/// less and grows with PHI as the samples age.
/// </summary>
public sealed class ClockFilter
{
    private readonly Sample[] _samples = new Sample[Constants.FilterStages];
    private int _count;
    private int _next;

    public int Count => _count;

    /// <summary>The sample last chosen (minimum delay), or null before any.</summary>
    public Sample? Best { get; private set; }

    /// <summary>RMS of the offset differences from the best sample (RFC 5905 §10 "jitter"), at least the precision floor.</summary>
    public double Jitter { get; private set; }

    /// <summary>Filter dispersion at the best sample's time.</summary>
    public double Dispersion { get; private set; }

    /// <summary>The local time of the newest sample.</summary>
    public long LastSampleTime { get; private set; }

    /// <summary>
    /// The smallest round trip seen, allowed to creep up slowly (1 µs per 100 s) so a route change is
    /// followed. A sample's delay above it is queueing, and queueing bounds its offset error:
    /// |error| ≤ (delay − minimum) / 2.
    /// </summary>
    public double MinimumDelay { get; private set; } = double.PositiveInfinity;

    private long _minimumDelayTime;

    /// <summary>
    /// The variance the servo should give <paramref name="sample"/> (one of this source's): its
    /// queueing bound — a round trip longer than the minimum by q errs by at most q/2 — plus a little
    /// of the jitter. Every sample is usable this way, weighted by how clean its path was, rather
    /// than only the one of least delay. Until the filter holds a few samples neither the minimum
    /// delay nor the jitter is known, so the sample gets the worst case its own delay allows,
    /// |error| ≤ δ/2 (RFC 5905 §8): an overconfident first sample on a long path would otherwise
    /// teach the servo a wild frequency. A reference clock's sample (stratum 0) has no round trip:
    /// its "delay" is a fixed uncertainty window, so the queueing bound says nothing and its scatter,
    /// the jitter, is the measure of its noise (serial GPS time jitters by milliseconds).
    /// </summary>
    public double VarianceOf(in Sample sample)
    {
        double bound = Math.Max(0, sample.Delay - MinimumDelay) / 2;
        double variance = (bound * bound / 3) + Math.Pow(Jitter / 10, 2) + 1e-14;
        if (sample.Stratum == 0)
        {
            variance = Math.Max(variance, Jitter * Jitter);
        }
        return _count < 4 ? Math.Max(variance, sample.Delay * sample.Delay / 12) : variance;
    }

    /// <summary>Adds a sample; returns true when it changed the chosen sample (a new, fresher best).</summary>
    public bool Add(Sample sample)
    {
        _samples[_next] = sample;
        _next = (_next + 1) % _samples.Length;
        _count = Math.Min(_count + 1, _samples.Length);
        LastSampleTime = sample.LocalTime;
        double aged = MinimumDelay + (1e-8 * Math.Max(0, (sample.LocalTime - _minimumDelayTime) / 1e9));
        if (sample.Delay <= aged)
        {
            MinimumDelay = sample.Delay;
            _minimumDelayTime = sample.LocalTime;
        }
        Sample? previous = Best;
        Recompute(sample.LocalTime);
        return Best is { } best && (previous is null || best.LocalTime != previous.Value.LocalTime);
    }

    public void Clear()
    {
        _count = 0;
        _next = 0;
        Best = null;
        Jitter = 0;
        Dispersion = 0;
        MinimumDelay = double.PositiveInfinity;
    }

    private static bool Before(in Sample a, in Sample b) => a.Delay < b.Delay || (a.Delay == b.Delay && a.LocalTime > b.LocalTime);

    private void Recompute(long now)
    {
        Span<int> order = stackalloc int[Constants.FilterStages];
        for (int i = 0; i < _count; i++)
        {
            order[i] = i;
        }
        order = order[.._count];
        // Sort by delay (RFC 5905 §10: the sample of least delay is selected), the newer first on a tie.
        for (int i = 1; i < order.Length; i++)
        {
            for (int j = i; j > 0 && Before(_samples[order[j]], _samples[order[j - 1]]); j--)
            {
                (order[j], order[j - 1]) = (order[j - 1], order[j]);
            }
        }
        Sample best = _samples[order[0]];
        double dispersion = 0, jitter = 0, weight = 0.5;
        foreach (int i in order)
        {
            Sample s = _samples[i];
            double age = Math.Max(0, (now - s.LocalTime) / 1e9);
            dispersion += weight * (s.Dispersion + (Constants.Phi * age));
            weight /= 2;
            double d = s.Offset - best.Offset;
            jitter += d * d;
        }
        Best = best;
        Dispersion = dispersion;
        Jitter = Math.Max(Math.Sqrt(jitter / Math.Max(1, _count - 1)), 1e-9);
    }
}
