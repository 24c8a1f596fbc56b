using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>
/// Turns the key ring at every rotation boundary, persists it, and publishes it to the workers and
/// NTS-KE; a reload's rotation and keep, and a forced rotation, go through it too (one lock: the
/// store is not thread-safe), and wake the schedule so that the next rotation follows them.
/// </summary>
internal sealed class KeyRingService(KeyRingStore store, CookieKeyRingCell cell, NtsMetrics metrics, ILogger<KeyRingService> logger) : BackgroundService
{
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _rescheduled = new(0, 1);

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

    /// <summary>When the key current now stops sealing new cookies.</summary>
    public DateTimeOffset NextRotation
    {
        get
        {
            lock (_lock)
            {
                return store.NextRotation(DateTimeOffset.UtcNow);
            }
        }
    }

    /// <summary>A reload's <c>nts-ke.keys.rotation</c> and <c>keep</c>: applied, published, saved, and the schedule follows.</summary>
    public void Reconfigure(NtsKeysConfig keys)
    {
        lock (_lock)
        {
            Publish(store.Reconfigure(keys, DateTimeOffset.UtcNow), rotated: false);
        }
        Wake();
    }

    /// <summary>
    /// A forced rotation (<c>appliance rotate-keys</c>): a fresh current key, the earlier ones kept
    /// (<c>keep</c>), persisted, published and counted. Refused with fleet keys: they are derived
    /// from the shared secret and the time, so this appliance alone turning would split the fleet.
    /// </summary>
    public (bool Ok, string Message) RotateNow()
    {
        if (store.FleetMode)
        {
            return (false, "refused: the keys are derived from the fleet secret (nts-ke.keys.fleet-secret) and the time, so every "
                + "appliance of the fleet holds the same ring; rotating here alone would split the fleet (its cookies would not open "
                + "on the others). To retire the keys, give every appliance of the fleet a new fleet secret and restart them");
        }
        CookieKeyRing ring;
        string? saveError;
        lock (_lock)
        {
            ring = store.ForceRotate(DateTimeOffset.UtcNow);
            saveError = Publish(ring, rotated: true);
        }
        Wake();
        string message = $"rotated: current key id {ring.Current.Id}, {ring.Keys.Count} keys open cookies";
        return saveError is null ? (true, message) : (true, $"{message}; but the ring could not be saved ({saveError}): cookies stay valid until the next restart only");
    }

    /// <summary>Publishes, counts a rotation, saves; returns the save's error, or null.</summary>
    private string? Publish(CookieKeyRing ring, bool rotated)
    {
        cell.Publish(ring);
        if (rotated)
        {
            metrics.CountRotation();
            logger.LogInformation("NTS cookie key rotated: current key id {Id}, {Count} keys open cookies", ring.Current.Id, ring.Keys.Count);
        }
        try
        {
            store.Save();
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Keep serving with the ring we have; the next rotation tries again.
            logger.LogError(e, "NTS key ring could not be saved; cookies stay valid until the next restart only");
            return e.Message;
        }
    }

    private void Wake()
    {
        try
        {
            _rescheduled.Release();
        }
        catch (SemaphoreFullException)
        {
            // already woken: one wake-up recomputes the schedule for every change before it
        }
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
            TimeSpan wait;
            lock (_lock)
            {
                DateTimeOffset now = DateTimeOffset.UtcNow;
                wait = store.NextRotation(now) - now + TimeSpan.FromMilliseconds(50);
            }
            // At most an hour at a time: a wait takes at most int.MaxValue ms, and a rotation may be 30 days.
            wait = wait < TimeSpan.Zero ? TimeSpan.Zero : wait > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : wait;
            if (await _rescheduled.WaitAsync(wait, stoppingToken).ConfigureAwait(false))
            {
                continue; // a reload or a forced rotation: the schedule is computed again
            }
            lock (_lock)
            {
                if (store.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring))
                {
                    Publish(ring, rotated: true);
                }
            }
        }
    }

    public override void Dispose()
    {
        _rescheduled.Dispose();
        base.Dispose();
    }
}
