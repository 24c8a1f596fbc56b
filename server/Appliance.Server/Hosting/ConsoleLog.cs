using Microsoft.Extensions.Logging;

namespace Appliance.Server.Hosting;

/// <summary>
/// The one console log format choice. Under systemd with stdout on the journal (JOURNAL_STREAM set)
/// each line starts with its syslog priority, as sd-daemon(3) reads it ("&lt;3&gt;" error, "&lt;4&gt;"
/// warning, "&lt;6&gt;" info, "&lt;7&gt;" debug), with no colour and no timestamp (journald adds its
/// own): the console logger's "systemd" formatter writes exactly that, one line per entry
/// (newlines in a message or an exception become spaces). Otherwise the single-line simple format.
/// </summary>
public static class ConsoleLog
{
    /// <param name="timestamps">Whether the simple format carries a UTC timestamp (the running host's lines do).</param>
    public static ILoggingBuilder AddApplianceConsole(this ILoggingBuilder builder, SystemdEnvironment systemd, bool timestamps = true)
    {
        if (systemd.LogsToJournal)
        {
            return builder.AddSystemdConsole(o => o.TimestampFormat = null);
        }
        return builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            if (timestamps)
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            }
        });
    }
}
