using Appliance.Protocol.Client;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>A PTP hardware clock and how to read it.</summary>
public sealed record PhcOptions
{
    /// <summary>log2 seconds between readings.</summary>
    public int Poll { get; init; }

    /// <summary>Readings per poll (PTP_SYS_OFFSET takes up to 25); the one with the narrowest bracket is used.</summary>
    public int Samples { get; init; } = 10;

    /// <summary>PHC time minus UTC, seconds: 37 for a PHC on the PTP timescale (TAI) as ptp4l keeps it, 0 for UTC.</summary>
    public double UtcOffset { get; init; } = 37;
}

/// <summary>
/// A PHC (/dev/ptpN) as a source: each poll takes a burst of PTP_SYS_OFFSET readings, each PHC
/// reading bracketed by system readings before and after, and uses the narrowest bracket — exactly
/// an NTP exchange with T1, T4 the system readings and T2 = T3 the PHC's: its delay is the bracket.
/// </summary>
public sealed class PhcSource(IPhcDevice device, PhcOptions options, ILogger logger) : ITimeSource
{
    /// <summary>A failing device fails every poll (down to 2^-n s): summarised.</summary>
    private readonly LogSummary _readErrors = new(logger, LogLevel.Warning, $"source phc {device.Path}: read errors");

    public string Name => device.Path;

    public string Kind => "phc";

    public uint ReferenceId => ReferenceIds.Phc;

    public SourceState State => Counters.Requests == 0 ? SourceState.Starting : Reach == 0 ? SourceState.Unreachable : SourceState.Reachable;

    public byte Reach { get; private set; }

    public double PollSeconds => Math.ScaleB(1.0, options.Poll);

    public SourceCounters Counters { get; } = new();

    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Counters.Requests++;
            try
            {
                Measurement measurement = Take();
                Reach = (byte)((Reach << 1) | 1);
                Counters.Answers++;
                sink(this, measurement);
            }
            catch (IOException e)
            {
                Reach <<= 1;
                Counters.Invalid++;
                if (_readErrors.Occurred(e.Message))
                {
                    logger.LogWarning("source phc {Source}: {Error}", Name, e.Message);
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(PollSeconds), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>One burst of readings, reduced to the best.</summary>
    internal Measurement Take()
    {
        IReadOnlyList<PhcReading> readings = device.Read(options.Samples);
        PhcReading best = readings.MinBy(r => r.SystemAfter - r.SystemBefore);
        long phc = best.Phc - (long)Math.Round(options.UtcOffset * 1e9);
        return new Measurement(best.SystemBefore, phc, phc, best.SystemAfter, new Protocol.NtpHeader
        {
            Leap = Protocol.LeapIndicator.NoWarning,
            Version = 4,
            Mode = Protocol.NtpMode.Server,
            Stratum = 0,
            ReferenceId = ReferenceIds.Phc,
        });
    }

    public void Dispose()
    {
        device.Dispose();
        _readErrors.Dispose();
    }
}
