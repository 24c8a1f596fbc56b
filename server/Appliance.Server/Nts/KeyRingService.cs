using Appliance.Protocol.Nts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>Turns the key ring at every rotation boundary, persists it, and publishes it to the workers and NTS-KE.</summary>
internal sealed class KeyRingService(KeyRingStore store, CookieKeyRingCell cell, NtsMetrics metrics, ILogger<KeyRingService> logger) : BackgroundService
{
    /// <summary>Loads, updates and publishes before anything serves NTS; a broken key file stops the start.</summary>
    public static void Initialise(KeyRingStore store, CookieKeyRingCell cell)
    {
        store.Load();
        if (store.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring))
        {
            store.Save();
        }
        cell.Publish(ring);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (store.Discarded is { } discarded)
        {
            logger.LogWarning("NTS cookie keys: {Discarded}", discarded);
        }
        logger.LogInformation("NTS cookie keys: {Mode}, current key id {Id}", store.FleetMode ? "fleet (derived from the fleet secret)" : "random, persisted",
            cell.Current?.Current.Id);
        while (!stoppingToken.IsCancellationRequested)
        {
            DateTimeOffset now = DateTimeOffset.UtcNow;
            TimeSpan wait = store.NextRotation(now) - now + TimeSpan.FromMilliseconds(50);
            await Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, stoppingToken).ConfigureAwait(false);
            try
            {
                if (store.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring))
                {
                    cell.Publish(ring);
                    metrics.CountRotation();
                    logger.LogInformation("NTS cookie key rotated: current key id {Id}, {Count} keys open cookies", ring.Current.Id, ring.Keys.Count);
                    store.Save();
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Keep serving with the ring we have; the next rotation tries again.
                logger.LogError(e, "NTS key ring could not be saved; cookies stay valid until the next restart only");
            }
        }
    }
}
