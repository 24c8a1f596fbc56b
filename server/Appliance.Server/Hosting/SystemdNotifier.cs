using System.Net.Sockets;
using System.Text;

namespace Appliance.Server.Hosting;

/// <summary>
/// sd_notify(3) of our own: each message is one datagram of newline-separated assignments
/// ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1") to the Unix datagram socket named by
/// NOTIFY_SOCKET, a path or, with a leading '@', a name in the abstract namespace. Without
/// NOTIFY_SOCKET nothing is opened and <see cref="Notify"/> returns at once. A lost message (systemd
/// gone, the socket full) is not an error: sd_notify's callers ignore it too.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;

    public SystemdNotifier(SystemdEnvironment environment)
    {
        string? address = environment.NotifySocket;
        // sd_notify(3): an absolute path, or '@' for an abstract socket (the kernel's leading NUL).
        if (string.IsNullOrEmpty(address) || (address[0] != '/' && address[0] != '@'))
        {
            return;
        }
        _endPoint = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        WatchdogInterval = environment.WatchdogInterval(Environment.ProcessId);
    }

    /// <summary>True when NOTIFY_SOCKET named a socket: the service runs under a Type=notify unit (or a test).</summary>
    public bool IsEnabled => _socket is not null;

    /// <summary>systemd's watchdog interval for this process; null when it has none. Ping at half of it.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>Sends one message; false when there is no socket or it was not delivered.</summary>
    public bool Notify(string message)
    {
        if (_socket is null)
        {
            return false;
        }
        byte[] bytes = Encoding.UTF8.GetBytes(message);
        lock (_lock)
        {
            try
            {
                return _socket.SendTo(bytes, SocketFlags.None, _endPoint!) == bytes.Length;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return false;
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _socket?.Dispose();
        }
    }
}
