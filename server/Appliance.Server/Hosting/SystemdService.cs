using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Server.Clock;
using Appliance.Timestamping;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Hosting;

/// <summary>
/// The service side of a systemd Type=notify unit (sd_notify(3)): READY=1 once everything is bound and
/// running (<see cref="Ready"/>, called after the host has started), STATUS= with the sync state
/// whenever it changes, STOPPING=1 when shutdown begins, and WATCHDOG=1 at half of WATCHDOG_USEC, sent
/// only while every NTP worker and the clock service show progress (<see cref="ProgressMonitor"/>):
/// a stuck worker stops the pings and systemd restarts the service after WatchdogSec. Pings resume
/// when the part makes progress again (a hang shorter than WatchdogSec is survived). Without
/// NOTIFY_SOCKET nothing runs.
/// </summary>
public sealed class SystemdService : IHostedService, IDisposable
{
    /// <summary>How often the state is looked at (the clock service ticks once a second).</summary>
    private static readonly TimeSpan s_period = TimeSpan.FromSeconds(1);

    /// <summary>An offset that moved, with nothing else changed, is sent at most this often.</summary>
    private static readonly TimeSpan s_offsetOnlyPeriod = TimeSpan.FromSeconds(10);

    /// <summary>An idle worker turns every receive timeout (250 ms): four missed turns.</summary>
    private static readonly TimeSpan s_workerGrace = TimeSpan.FromSeconds(1);

    /// <summary>The clock service ticks every second: three missed ticks.</summary>
    private static readonly TimeSpan s_clockGrace = TimeSpan.FromSeconds(3);

    private readonly SystemdNotifier _notifier;
    private readonly NtpEngine _engine;
    private readonly ClockService _clock;
    private readonly ServerStateCell _state;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly ProgressMonitor _monitor = new();
    private readonly HashSet<string> _stalled = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private CancellationTokenRegistration _stopping;
    private Task _loop = Task.CompletedTask;
    private bool _stopped;
    private string? _sentStatus;
    private string? _sentHeadline;
    private long _sentAt;

    public SystemdService(SystemdNotifier notifier, NtpEngine engine, ClockService clock, ServerStateCell state,
        IHostApplicationLifetime lifetime, ILogger<SystemdService> logger)
    {
        _notifier = notifier;
        _engine = engine;
        _clock = clock;
        _state = state;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_notifier.IsEnabled)
        {
            _stopping = _lifetime.ApplicationStopping.Register(Stopping);
        }
        return Task.CompletedTask;
    }

    /// <summary>Every socket is bound and every service runs: READY=1 with the first status, then the status and watchdog loop.</summary>
    public void Ready()
    {
        if (!_notifier.IsEnabled)
        {
            return;
        }
        long now = Now();
        foreach (NtpWorker worker in _engine.Workers)
        {
            _monitor.Add($"NTP worker {worker.Index}", () => worker.Heartbeat, s_workerGrace, now,
                () => worker.Counters.Restarts, () => worker.RestartPause > worker.Backoff.First);
        }
        _monitor.Add("clock service", () => _clock.Heartbeat, s_clockGrace, now);
        string status = StatusLine.Format(_clock.Snapshot, _state.Current, []);
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }
            _notifier.Notify($"READY=1\nSTATUS={status}");
            _sentStatus = status;
            _sentHeadline = StatusLine.Format(_clock.Snapshot, _state.Current, [], offset: false);
            _sentAt = now;
        }
        TimeSpan? watchdog = _notifier.WatchdogInterval;
        _logger.LogInformation("systemd: ready{Watchdog}", watchdog is { } w ? $"; watchdog pings every {(w / 2).TotalSeconds:F1} s while every worker and the clock service make progress" : "");
        _loop = Task.Run(() => RunAsync(watchdog / 2, _stop.Token));
    }

    private async Task RunAsync(TimeSpan? ping, CancellationToken stop)
    {
        long period = Nanoseconds(s_period);
        long pingPeriod = ping is { } p ? Nanoseconds(p) : 0;
        long now = Now();
        long nextPing = now; // the first ping at once: systemd's timer runs from the start
        long nextLook = now + period;
        while (!stop.IsCancellationRequested)
        {
            long due = pingPeriod > 0 ? Math.Min(nextLook, nextPing) : nextLook;
            if (due > now)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromTicks((due - now + 99) / 100), stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            now = Now();
            IReadOnlyList<Stall> stalls = _monitor.Check(now);
            Report(stalls);
            if (pingPeriod > 0 && now >= nextPing)
            {
                if (stalls.Count == 0)
                {
                    Send("WATCHDOG=1");
                    nextPing += pingPeriod;
                    if (nextPing <= now)
                    {
                        nextPing = now + pingPeriod; // woken late (a loaded host): the cadence restarts from this ping
                    }
                }
                else
                {
                    nextPing = now + Math.Min(pingPeriod, period); // as soon as progress resumes
                }
            }
            if (now >= nextLook)
            {
                UpdateStatus(stalls, now);
                nextLook = Math.Max(nextLook + period, now + (period / 2));
            }
        }
    }

    /// <summary>STATUS= when the state changed; an offset that moved alone, at most every <see cref="s_offsetOnlyPeriod"/>.</summary>
    private void UpdateStatus(IReadOnlyList<Stall> stalls, long now)
    {
        ClockSnapshot clock = _clock.Snapshot;
        ServerState state = _state.Current;
        string status = StatusLine.Format(clock, state, stalls);
        string headline = StatusLine.Format(clock, state, stalls, offset: false);
        lock (_gate)
        {
            if (_stopped || status == _sentStatus || (headline == _sentHeadline && now - _sentAt < Nanoseconds(s_offsetOnlyPeriod)))
            {
                return;
            }
            _notifier.Notify($"STATUS={status}");
            _sentStatus = status;
            _sentHeadline = headline;
            _sentAt = now;
        }
    }

    /// <summary>Logs a part once when it stalls and once when it makes progress again.</summary>
    private void Report(IReadOnlyList<Stall> stalls)
    {
        foreach (Stall stall in stalls)
        {
            if (_stalled.Add(stall.Part))
            {
                _logger.LogError("systemd watchdog: {Part} {Problem}; {Consequence}", stall.Part, stall.Problem,
                    _notifier.WatchdogInterval is null ? "no watchdog is configured (WatchdogSec=)"
                        : "WATCHDOG=1 is withheld, so systemd restarts the service once WatchdogSec passes");
            }
        }
        foreach (string part in _stalled.Except(stalls.Select(s => s.Part)).ToList())
        {
            _stalled.Remove(part);
            _logger.LogWarning("systemd watchdog: {Part} makes progress again", part);
        }
    }

    private void Send(string message)
    {
        lock (_gate)
        {
            if (!_stopped)
            {
                _notifier.Notify(message);
            }
        }
    }

    /// <summary>Shutdown has begun: STOPPING=1, and nothing after it.</summary>
    private void Stopping()
    {
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }
            _stopped = true;
            _notifier.Notify("STOPPING=1\nSTATUS=stopping");
        }
        _stop.Cancel();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Stopping();
        await _loop.ConfigureAwait(false);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _stop.Dispose();
    }

    private static long Now() => SystemClock.MonotonicNanoseconds();

    private static long Nanoseconds(TimeSpan span) => span.Ticks * 100;
}
