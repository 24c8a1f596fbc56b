using Appliance.Protocol.Client;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>A kernel PPS device and how to use its edges.</summary>
public sealed record PpsOptions
{
    /// <summary>Use the clear edge instead of the assert edge (receivers differ in which is on time).</summary>
    public bool ClearEdge { get; init; }

    /// <summary>An edge further than this from the median of the recent ones is dropped (a spurious or missed pulse).</summary>
    public double MaxDeviation { get; init; } = 100e-6;
}

/// <summary>
/// Kernel PPS (RFC 2783): every pulse marks the start of a second, but says not which one. A
/// time-of-day estimate numbers it — the offset (true − system) that gpsd, an upstream NTP source
/// or the disciplined clock currently believes — and must agree with the edge to within 0.4 s, or
/// the edge is not used (a wrong second number would be a whole-second error). Edges that jump away
/// from the median of the last eight are dropped too. What passes is a stratum-0 sample with refid
/// PPS and no delay: the edge's own timestamp is the measurement.
/// </summary>
public sealed class PpsSource(IPpsDevice device, PpsOptions options, Func<long, double?> timeOfDay, ILogger logger) : ITimeSource
{
    public const double NumberingMargin = 0.4;

    private const int Window = 8;

    private readonly List<double> _recent = new(Window);
    private bool _timeOfDayKnown;
    private bool _connected;

    /// <summary>A failing device fails every fetch, once a second: summarised.</summary>
    private readonly LogSummary _fetchErrors = new(logger, LogLevel.Warning, $"source pps {device.Path}: fetch errors");

    public string Name => device.Path;

    public string Kind => "pps";

    public uint ReferenceId => ReferenceIds.Pps;

    public SourceState State => !_connected ? SourceState.Starting : !_timeOfDayKnown ? SourceState.NoFix : Reach == 0 ? SourceState.Unreachable : SourceState.Reachable;

    public byte Reach { get; private set; }

    public double PollSeconds => 1;

    public SourceCounters Counters { get; } = new();

    public Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken) =>
        // PPS_FETCH blocks in the kernel until the next edge: a thread of its own.
        Task.Factory.StartNew(() => Run(sink, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(MeasurementSink sink, CancellationToken cancellationToken)
    {
        _connected = true;
        while (!cancellationToken.IsCancellationRequested)
        {
            PpsEdge? edge;
            try
            {
                edge = device.Fetch(options.ClearEdge, TimeSpan.FromSeconds(1.5));
            }
            catch (IOException e)
            {
                if (_fetchErrors.Occurred(e.Message))
                {
                    logger.LogWarning("source pps {Source}: {Error}", Name, e.Message);
                }
                Reach <<= 1;
                cancellationToken.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
                continue;
            }
            if (edge is not { } e2)
            {
                Reach <<= 1; // a second without a pulse
                continue;
            }
            if (Process(e2) is { } measurement)
            {
                Reach = (byte)((Reach << 1) | 1);
                Counters.Answers++;
                sink(this, measurement);
            }
            else
            {
                Reach <<= 1;
            }
        }
    }

    /// <summary>Numbers and checks one edge; the measurement, or null when it cannot be used.</summary>
    internal Measurement? Process(PpsEdge edge)
    {
        double? estimate = timeOfDay(edge.SystemNanoseconds);
        _timeOfDayKnown = estimate is not null;
        if (estimate is not { } tod)
        {
            Counters.Invalid++;
            return null; // nothing to number the second with yet
        }
        // The second the pulse marks: the whole second nearest to the time of day at the edge.
        long estimatedTrue = edge.SystemNanoseconds + (long)Math.Round(tod * 1e9);
        long second = (long)Math.Round(estimatedTrue / 1e9) * 1_000_000_000L;
        double offset = (second - edge.SystemNanoseconds) / 1e9;
        bool numbered = Math.Abs(offset - tod) < NumberingMargin;
        bool steady = Steady(offset);
        if (!numbered || !steady)
        {
            Counters.Invalid++;
            return null;
        }
        return Measurement.FromReferenceClock(edge.SystemNanoseconds, second, 0, 1e-7, ReferenceIds.Pps);
    }

    /// <summary>Keeps the last offsets (used or not, so a real step is followed) and says whether this one fits them.</summary>
    private bool Steady(double offset)
    {
        bool fits = true;
        if (_recent.Count >= 4)
        {
            double median = _recent.Order().ElementAt(_recent.Count / 2);
            fits = Math.Abs(offset - median) <= options.MaxDeviation;
        }
        if (_recent.Count == Window)
        {
            _recent.RemoveAt(0);
        }
        _recent.Add(offset);
        return fits;
    }

    public void Dispose()
    {
        device.Dispose();
        _fetchErrors.Dispose();
    }
}
