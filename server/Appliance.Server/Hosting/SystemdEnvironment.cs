using System.Globalization;

namespace Appliance.Server.Hosting;

/// <summary>
/// What systemd tells a service through its environment (sd_notify(3), sd_watchdog_enabled(3),
/// systemd.exec(5) "$JOURNAL_STREAM"). Production reads the process's own; tests pass their own.
/// </summary>
/// <param name="NotifySocket">NOTIFY_SOCKET: the datagram socket to notify (a path, or '@' for the abstract namespace); null: not under a Type=notify unit.</param>
/// <param name="WatchdogUsec">WATCHDOG_USEC: the watchdog interval in microseconds.</param>
/// <param name="WatchdogPid">WATCHDOG_PID: the process the watchdog is meant for; unset means this one.</param>
/// <param name="JournalStream">JOURNAL_STREAM: set when stdout/stderr go to the journal.</param>
public sealed record SystemdEnvironment(string? NotifySocket = null, string? WatchdogUsec = null, string? WatchdogPid = null, string? JournalStream = null)
{
    /// <summary>Nothing from systemd: no notifications, the plain log format.</summary>
    public static SystemdEnvironment None { get; } = new();

    /// <summary>This process's environment.</summary>
    public static SystemdEnvironment FromProcess() => new(
        Environment.GetEnvironmentVariable("NOTIFY_SOCKET"),
        Environment.GetEnvironmentVariable("WATCHDOG_USEC"),
        Environment.GetEnvironmentVariable("WATCHDOG_PID"),
        Environment.GetEnvironmentVariable("JOURNAL_STREAM"));

    /// <summary>Whether log lines go to the journal: then they carry syslog priorities and no timestamps.</summary>
    public bool LogsToJournal => !string.IsNullOrEmpty(JournalStream);

    /// <summary>
    /// The watchdog interval for process <paramref name="pid"/>, or null when there is none: unset or
    /// unparsable WATCHDOG_USEC, zero, or a WATCHDOG_PID naming another process (sd_watchdog_enabled(3):
    /// a child must not ping for its parent).
    /// </summary>
    public TimeSpan? WatchdogInterval(int pid)
    {
        if (!long.TryParse(WatchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out long usec) || usec <= 0)
        {
            return null;
        }
        if (!string.IsNullOrEmpty(WatchdogPid)
            && (!int.TryParse(WatchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out int owner) || owner != pid))
        {
            return null;
        }
        return TimeSpan.FromMicroseconds(usec);
    }
}
