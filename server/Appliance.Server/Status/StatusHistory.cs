using Appliance.Discipline;
using Appliance.Server.Clock;

namespace Appliance.Server.Status;

/// <summary>
/// The last hour of the clock for the status page's plots: one point every <see cref="Interval"/> in a
/// ring of <see cref="Capacity"/> points, each the system offset, its uncertainty and every source's
/// jitter. Every array is allocated once, here: recording a point allocates nothing and memory stays
/// bounded whatever the sources do. At most <see cref="MaxSources"/> sources are plotted; a source that
/// leaves keeps its column until a new one needs it (its history is cleared then).
/// </summary>
public sealed class StatusHistory
{
    /// <summary>One point per 10 s for an hour.</summary>
    public const int DefaultCapacity = 360;

    public const int MaxSources = 16;

    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    private readonly Lock _lock = new();
    private readonly long _intervalNanoseconds;
    private readonly long[] _at;
    private readonly double[] _offset;
    private readonly double[] _uncertainty;
    private readonly double[][] _jitter;
    private readonly string?[] _names = new string?[MaxSources];
    private readonly bool[] _seen = new bool[MaxSources];
    private int _next;
    private int _count;
    private long _lastAt;

    public StatusHistory(int capacity = DefaultCapacity, TimeSpan? interval = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        Interval = interval ?? DefaultInterval;
        _intervalNanoseconds = (long)(Interval.TotalSeconds * 1e9);
        _at = new long[capacity];
        _offset = new double[capacity];
        _uncertainty = new double[capacity];
        _jitter = new double[MaxSources][];
        for (int s = 0; s < MaxSources; s++)
        {
            _jitter[s] = new double[capacity];
            Array.Fill(_jitter[s], double.NaN);
        }
    }

    public int Capacity { get; }

    public TimeSpan Interval { get; }

    /// <summary>
    /// Offers the clock's state at <paramref name="nowNanoseconds"/> (monotonic). Taken as a point when
    /// at least <see cref="Interval"/> has passed since the last one (the first is always taken), so the
    /// caller may offer every second. Returns whether it was taken.
    /// </summary>
    public bool Record(long nowNanoseconds, ClockSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_lock)
        {
            if (_count > 0 && nowNanoseconds - _lastAt < _intervalNanoseconds)
            {
                return false;
            }
            _lastAt = nowNanoseconds;
            int i = _next;
            _at[i] = nowNanoseconds;
            // Unsynchronised, the servo's offset is not an estimate of anything: a gap, not a zero.
            bool estimated = snapshot.Status != ClockCoreStatus.Unsynchronised;
            _offset[i] = estimated ? snapshot.Offset : double.NaN;
            _uncertainty[i] = estimated ? snapshot.OffsetStdDev : double.NaN;
            for (int s = 0; s < MaxSources; s++)
            {
                _jitter[s][i] = double.NaN;
                _seen[s] = false;
            }
            IReadOnlyList<SourceSnapshot> sources = snapshot.Sources;
            for (int k = 0; k < sources.Count; k++)
            {
                if (SlotOf(sources[k].Name) is int slot)
                {
                    _seen[slot] = true;
                }
            }
            for (int k = 0; k < sources.Count; k++)
            {
                SourceSnapshot source = sources[k];
                int slot = SlotOf(source.Name) ?? Claim(source.Name);
                if (slot >= 0 && source.Offset is not null)
                {
                    _jitter[slot][i] = source.Jitter;
                }
            }
            _next = (i + 1) % Capacity;
            _count = Math.Min(_count + 1, Capacity);
            return true;
        }
    }

    private int? SlotOf(string name)
    {
        for (int s = 0; s < MaxSources; s++)
        {
            if (string.Equals(_names[s], name, StringComparison.Ordinal))
            {
                return s;
            }
        }
        return null;
    }

    /// <summary>A free column, else one whose source is gone (its history cleared); -1 when all are in use.</summary>
    private int Claim(string name)
    {
        int slot = Array.IndexOf(_names, null);
        if (slot < 0)
        {
            slot = Array.IndexOf(_seen, false);
            if (slot < 0)
            {
                return -1;
            }
            Array.Fill(_jitter[slot], double.NaN);
        }
        _names[slot] = name;
        _seen[slot] = true;
        return slot;
    }

    /// <summary>A copy of the points, oldest first, with times in seconds relative to <paramref name="nowNanoseconds"/> (≤ 0).</summary>
    public HistoryView Read(long nowNanoseconds)
    {
        lock (_lock)
        {
            var ago = new double[_count];
            var offset = new double[_count];
            var uncertainty = new double[_count];
            int first = (_next - _count + Capacity) % Capacity;
            for (int k = 0; k < _count; k++)
            {
                int i = (first + k) % Capacity;
                ago[k] = (_at[i] - nowNanoseconds) / 1e9;
                offset[k] = _offset[i];
                uncertainty[k] = _uncertainty[i];
            }
            var sources = new List<HistorySeries>();
            for (int s = 0; s < MaxSources; s++)
            {
                if (_names[s] is not { } name)
                {
                    continue;
                }
                var jitter = new double[_count];
                for (int k = 0; k < _count; k++)
                {
                    jitter[k] = _jitter[s][(first + k) % Capacity];
                }
                if (Array.Exists(jitter, double.IsFinite))
                {
                    sources.Add(new HistorySeries(name, jitter));
                }
            }
            return new HistoryView(ago, offset, uncertainty, sources);
        }
    }
}

/// <summary>What <see cref="StatusHistory.Read"/> copies out: parallel arrays, oldest first; NaN is a gap.</summary>
/// <param name="SecondsAgo">Each point's time relative to now (≤ 0).</param>
public sealed record HistoryView(double[] SecondsAgo, double[] Offset, double[] OffsetUncertainty, IReadOnlyList<HistorySeries> Jitter)
{
    public static HistoryView Empty { get; } = new([], [], [], []);
}

public sealed record HistorySeries(string Name, double[] Values);
