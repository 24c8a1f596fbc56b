using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Timestamping;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Clock;

/// <summary>
/// Serves the host clock as a reference of a configured stratum, like chrony's <c>local stratum N</c>.
/// It "polls" the host clock every <see cref="UpdateInterval"/>: each update publishes a new
/// <see cref="ServerState"/> whose reference time is the update time (so clients see a reference
/// timestamp in the recent past, never "now") and whose dispersion then grows with PHI.
/// Stand-in for the clock core (issue 6).
/// </summary>
internal sealed class LocalReferenceService(
    LocalReferenceConfig config, ServerStateCell cell, ILogger<LocalReferenceService> logger) : BackgroundService
{
    /// <summary>127.127.1.1, the reference id chrony and ntpd give their local clock.</summary>
    public const uint LocalReferenceId = 0x7F7F0101;

    public static readonly TimeSpan UpdateInterval = TimeSpan.FromSeconds(16);

    public static ServerState Snapshot(byte stratum, sbyte precision, long nowUnixNanoseconds) => new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = stratum,
        ReferenceId = LocalReferenceId,
        ReferenceTime = NtpTimestamp.FromUnixNanoseconds(nowUnixNanoseconds),
        RootDelay = 0,
        // The host clock is its own reference: its error bound starts at its reading precision.
        RootDispersion = Math.ScaleB(1.0, precision),
        UpdatedAtUnixNanoseconds = nowUnixNanoseconds,
        Precision = precision,
        Transform = TimeTransform.Identity,
    };

    private readonly sbyte _precision = cell.Current.Precision;

    /// <summary>Publishes the first snapshot before the NTP listeners start, so no client sees a spurious "unsynchronised".</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        Publish();
        logger.LogInformation("time reference: the host clock as a local reference at stratum {Stratum} (precision 2^{Precision} s)",
            config.Stratum, _precision);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(UpdateInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Publish();
        }
    }

    private void Publish() => cell.Publish(Snapshot(config.Stratum, _precision, SystemClock.RealtimeNanoseconds()));
}
