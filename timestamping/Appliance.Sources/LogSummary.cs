using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>
/// Never one log line per packet or per connection (issue #15): an event that can repeat at that
/// rate goes through one of these. The first of a spell is logged in full (<see cref="Occurred"/>
/// returns true and the caller logs it); the ones after it are only counted, and once per window one
/// line says how many ("NTS-KE session failures: 1234 more in the last 60 s (latest: …)"). A window
/// with none ends the spell, and the next one is logged in full again. Thread-safe; one lock and no
/// allocation per event (the caller's detail string aside).
/// </summary>
public sealed class LogSummary : IDisposable
{
    private readonly Lock _lock = new();
    private readonly ILogger _logger;
    private readonly LogLevel _level;
    private readonly string _what;
    private readonly TimeSpan _window;
    private readonly ITimer _timer;
    private bool _inSpell;
    private long _suppressed;
    private string? _latest;

    /// <param name="what">Names the event in the summary line, e.g. "NTP worker failures".</param>
    /// <param name="window">How often the count is said (a minute unless a test asks otherwise).</param>
    public LogSummary(ILogger logger, LogLevel level, string what, TimeSpan? window = null, TimeProvider? time = null)
    {
        _logger = logger;
        _level = level;
        _what = what;
        _window = window ?? TimeSpan.FromMinutes(1);
        _timer = (time ?? TimeProvider.System).CreateTimer(_ => Flush(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Counts one event; true when the caller should log it in full (the first of a spell).</summary>
    /// <param name="latest">What to say about this one if the summary names the latest (optional).</param>
    public bool Occurred(string? latest = null)
    {
        lock (_lock)
        {
            if (!_inSpell)
            {
                _inSpell = true;
                _timer.Change(_window, _window);
                return true;
            }
            _suppressed++;
            _latest = latest ?? _latest;
            return false;
        }
    }

    private void Flush()
    {
        long count;
        string? latest;
        lock (_lock)
        {
            count = _suppressed;
            latest = _latest;
            _suppressed = 0;
            _latest = null;
            if (count == 0)
            {
                _inSpell = false;
                _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                return;
            }
        }
#pragma warning disable CA2254 // the level is the caller's; the template is constant
        _logger.Log(_level, "{What}: {Count} more in the last {Seconds:0.###} s{Latest}", _what, count, _window.TotalSeconds,
            latest is null ? "" : $" (latest: {latest})");
#pragma warning restore CA2254
    }

    public void Dispose() => _timer.Dispose();
}
