using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Sources;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>
/// Turns the key ring at every rotation boundary, persists it, and publishes it to the workers and
/// NTS-KE; a reload's rotation and keep, and a forced rotation, go through it too (one lock: the
/// store is not thread-safe), and wake the schedule so that the next rotation follows them.
/// A save that fails (the disk full or read-only, EACCES, EIO) stops nothing: the ring in memory is
/// published and serves (a rotation still turns it), the error is logged once and then summarised,
/// counted (<c>appliance_nts_key_persist_failures_total</c>), and the save is tried again with a
/// back-off until it succeeds, which is logged too.
/// </summary>
internal sealed class KeyRingService(KeyRingStore store, CookieKeyRingCell cell, NtsMetrics metrics, ILogger<KeyRingService> logger) : BackgroundService
{
    /// <summary>The first retry after a failed save; each failure after it doubles the wait, up to <see cref="MaxRetry"/>.</summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);

    /// <summary>A disk freed is noticed within a minute; a retry costs two small writes, nothing to spare.</summary>
    public static readonly TimeSpan MaxRetry = TimeSpan.FromMinutes(1);

    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _rescheduled = new(0, 1);
    private LogSummary _saveFailures = new(logger, LogLevel.Error, "NTS key ring save failures");
    private long _failedSaves;
    // Retries are timed on the monotonic clock: this appliance steps the system clock, and a step
    // back would otherwise put the next try off by the size of the step.
    private long _firstFailureMs;
    private TimeSpan _retryAfter;
    private long? _retryAtMs;

    /// <summary>
    /// Loads, updates and publishes before anything serves NTS; a broken key file (and no good copy)
    /// stops the start. A save that fails here stops the start only when nothing was on disk (a first
    /// start: the keys would not outlive a restart, and a wrong owner is a setup error to name);
    /// otherwise the ring from disk serves and the service retries the save.
    /// </summary>
    public static void Initialise(KeyRingStore store, CookieKeyRingCell cell)
    {
        store.Load();
        store.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring);
        if (store.Unsaved)
        {
            try
            {
                store.Save();
            }
            catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && store.LoadedFromDisk)
            {
                // Left Unsaved: ExecuteAsync logs it and retries.
            }
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
        return saveError is null ? (true, message)
            : (true, $"{message}; but the ring could not be saved ({saveError}): it serves from memory and the save is retried; until it succeeds, a restart loses the new keys");
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
        return TrySave();
    }

    /// <summary>
    /// Saves (under the lock); on failure keeps serving with the ring in memory: one error line for
    /// the first failure of a spell (the LogSummary says how many followed, once a minute), a count,
    /// and the next try after a doubling back-off. Returns the error, or null.
    /// </summary>
    private string? TrySave()
    {
        long now = Environment.TickCount64;
        try
        {
            store.Save();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            metrics.CountKeyPersistFailure();
            if (_failedSaves++ == 0)
            {
                _firstFailureMs = now;
                _retryAfter = FirstRetry;
            }
            else
            {
                _retryAfter = _retryAfter * 2 > MaxRetry ? MaxRetry : _retryAfter * 2;
            }
            _retryAtMs = now + (long)_retryAfter.TotalMilliseconds;
            if (_saveFailures.Occurred(e.Message))
            {
                logger.LogError("NTS key ring could not be saved to {Path}: {Error}. Serving with the keys in memory (rotations go on); "
                    + "retrying with a back-off of up to {Max} s; until a save succeeds, a restart loses the keys made since the last one",
                    store.Config.Storage, e.Message, MaxRetry.TotalSeconds);
            }
            return e.Message;
        }
        if (_failedSaves > 0)
        {
            logger.LogInformation("NTS key ring saved to {Path} again, after {Count} failed attempts over {Seconds:0} s: the files hold the ring in memory",
                store.Config.Storage, _failedSaves, (now - _firstFailureMs) / 1000.0);
            // A new spell starts logged in full: the summary of this one is in the line above.
            _saveFailures.Dispose();
            _saveFailures = new LogSummary(logger, LogLevel.Error, "NTS key ring save failures");
            _failedSaves = 0;
        }
        _retryAtMs = null;
        return null;
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
        if (store.Recovered is { } recovered)
        {
            logger.LogWarning("NTS cookie keys: {Recovered}", recovered);
        }
        if (store.CopyProblem is { } copyProblem)
        {
            logger.LogWarning("NTS cookie keys: {CopyProblem}", copyProblem);
        }
        logger.LogInformation("NTS cookie keys: {Mode}, current key id {Id}", store.FleetMode ? "fleet (derived from the fleet secret)" : "random, persisted",
            cell.Current?.Current.Id);
        lock (_lock)
        {
            if (store.Unsaved)
            {
                TrySave(); // the start-up save failed (or a recovery is not written back yet)
            }
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            lock (_lock)
            {
                DateTimeOffset now = DateTimeOffset.UtcNow;
                wait = store.NextRotation(now) - now + TimeSpan.FromMilliseconds(50);
                if (_retryAtMs is { } retry && TimeSpan.FromMilliseconds(retry - Environment.TickCount64) is var untilRetry && untilRetry < wait)
                {
                    wait = untilRetry;
                }
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
                else if (store.Unsaved && _retryAtMs <= Environment.TickCount64)
                {
                    TrySave();
                }
            }
        }
    }

    public override void Dispose()
    {
        _rescheduled.Dispose();
        _saveFailures.Dispose();
        base.Dispose();
    }
}
